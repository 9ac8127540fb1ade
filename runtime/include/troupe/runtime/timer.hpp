// timer: a handle on a scheduled send (send_after) or a periodic one
// (send_every). Cancel it to stop the message; dropping the handle does not
// cancel (fire-and-forget timers are the common case).
//
//   troupe::timer t = sys.send_every(ticker, 100ms, tick{});
//   ...
//   t.cancel();   // no tick is sent after cancel() returns
//
// Thread safety: cancel() from any thread; a handle may outlive its system
// (cancel() then does nothing).
#pragma once

#include <cstdint>
#include <memory>

namespace troupe {

namespace detail {
class timer_service;
}

class timer {
 public:
  timer() = default;
  timer(std::weak_ptr<detail::timer_service> service, std::uint64_t id) noexcept
      : service_(std::move(service)), id_(id) {}
  // Stops the timer. Returns true if it was still pending (a one-shot timer that
  // already fired, or a cancelled one, returns false).
  bool cancel() noexcept;
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }

 private:
  std::weak_ptr<detail::timer_service> service_;
  std::uint64_t id_ = 0;
};

}  // namespace troupe
