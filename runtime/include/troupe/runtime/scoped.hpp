// scoped<P>: a mailbox for a plain thread — main(), a test — so it can receive
// messages from actors by blocking, with a deadline.
//
//   troupe::scoped<troupe::protocol<pong, done>> inbox{sys};
//   pinger.tell(start{inbox.self()});
//   troupe::expected<done> d = inbox.receive<done>(5s);   // other types wait their turn
//
// Messages of other types that arrive while waiting for M are kept, in order, for
// later receive calls. Requests sent to a scoped inbox are not answered (their
// askers get errc::request_dropped). In deterministic mode receive() drives the
// system (and its virtual clock) instead of blocking.
//
// Thread safety: receive*() from one thread at a time (the owner); self() refs
// may be used anywhere. Destroy the scoped before its system.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <variant>

#include "troupe/mailbox/futex.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe {

namespace detail {
// Closes a scoped inbox's cell from its owner thread.
void close_unregistered(cell& c) noexcept;

template <class P>
struct variant_of;
template <class... Ms>
struct variant_of<protocol<Ms...>> {
  using type = std::variant<Ms...>;
};

// The executor of a scoped inbox: "scheduling" it wakes the blocked owner.
class wake_signal final : public owned_executor {
 public:
  void schedule(cell*) noexcept override {
    // release: pairs with the acquire in wait_until().
    signal_.store(1, std::memory_order_release);
    futex_wake(signal_, 1);
  }
  void reset() noexcept {
    // relaxed: the owner's own flag; a schedule() can only happen after the next
    // successful try_block() in resume(), which follows this store.
    signal_.store(0, std::memory_order_relaxed);
  }
  [[nodiscard]] bool signalled() const noexcept {
    // acquire: pairs with the release in schedule().
    return signal_.load(std::memory_order_acquire) != 0;
  }
  bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
    while (!signalled()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      futex_wait_for(signal_, 0, left);
    }
    return true;
  }

 private:
  std::atomic<std::uint32_t> signal_{0};
};

template <class P>
class inbox_actor final : public actor<P> {
 public:
  using message = typename variant_of<P>::type;
  // Requests are kept like any message, but not answered: their askers get
  // errc::request_dropped.
  // (clang-format 14 would join the requires-clause to the declaration)
  // clang-format off
  template <class M>
    requires accepts<P, M>
  no_reply on(M&& m) {
    // clang-format on
    received.emplace_back(std::in_place_type<std::remove_cvref_t<M>>, std::forward<M>(m));
    return {};
  }
  std::deque<message> received;
};
}  // namespace detail

template <class P>
class scoped {
 public:
  using message = typename detail::variant_of<P>::type;

  explicit scoped(troupe::system& sys) : system_(&sys) {
    // The wake-up belongs to the cell: a sender that scheduled the inbox may
    // still touch it after this scoped object is gone.
    auto signal = std::make_unique<detail::wake_signal>();
    signal_ = signal.get();
    cell_ = new detail::typed_cell<detail::inbox_actor<P>>(sys, *signal);
    cell_->own_executor(std::move(signal));
  }
  ~scoped() {
    detail::close_unregistered(*cell_);
    cell_->release();
  }
  scoped(const scoped&) = delete;
  scoped& operator=(const scoped&) = delete;

  [[nodiscard]] ref<P> self() const { return detail::ref_access::make<P>(cell_); }

  // The next message of type M (earlier messages of other types stay queued).
  template <class M>
  expected<M> receive(std::chrono::nanoseconds timeout) {
    static_assert(accepts<P, M>, "troupe: scoped::receive<M>: M is not in this inbox's protocol");
    auto found = wait_for([](const message& m) { return std::holds_alternative<M>(m); }, timeout);
    if (!found) return found.error();
    return std::get<M>(std::move(*found));
  }

  // The next message, whatever its type.
  expected<message> receive_any(std::chrono::nanoseconds timeout) {
    return wait_for([](const message&) { return true; }, timeout);
  }

  // Messages received and not yet taken.
  [[nodiscard]] std::size_t buffered() const noexcept { return inbox().received.size(); }

 private:
  detail::inbox_actor<P>& inbox() const noexcept { return cell_->instance(); }

  template <class Match>
  expected<message> wait_for(Match match, std::chrono::nanoseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto virtual_deadline = system_->now() + timeout;
    for (;;) {
      signal_->reset();
      // Moves queued messages into `received`, a batch at a time: a sender that
      // floods the inbox cannot keep receive() from returning.
      const detail::resume_result r = cell_->resume(batch);
      auto& received = inbox().received;
      for (auto it = received.begin(); it != received.end(); ++it) {
        if (match(*it)) {
          message m = std::move(*it);
          received.erase(it);
          return m;
        }
      }
      if (r == detail::resume_result::again) {  // more queued: take the next batch, within the deadline
        if (!detail::is_deterministic(*system_) && std::chrono::steady_clock::now() >= deadline) {
          return error(errc::timeout, "scoped::receive: nothing matching before the deadline");
        }
        continue;
      }
      bool woken;
      if (detail::is_deterministic(*system_)) {
        woken = detail::drive_until(
            *system_, [this] { return signal_->signalled(); }, virtual_deadline);
      } else {
        woken = signal_->wait_until(deadline);
      }
      if (!woken) return error(errc::timeout, "scoped::receive: nothing matching before the deadline");
    }
  }

  static constexpr std::size_t batch = 1024;
  troupe::system* system_;
  detail::wake_signal* signal_;  // owned by the cell
  detail::typed_cell<detail::inbox_actor<P>>* cell_;
};

}  // namespace troupe
