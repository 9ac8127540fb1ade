// reply_promise<R>: a request answered later. A handler that takes one as its
// second parameter replies when it is ready — after a disk commit, when a
// message arrives for a long poll — instead of by returning:
//
//   struct store : troupe::actor<troupe::protocol<put>> {         // put: using reply = bool;
//     std::vector<troupe::reply_promise<bool>> waiting;
//     void on(put p, troupe::reply_promise<bool> reply) { write(p); waiting.push_back(std::move(reply)); }
//     void on(committed) { for (auto& r : waiting) r.deliver(true); waiting.clear(); }
//   };
//
// The asker sees no difference: its ask completes when deliver() or fail() is
// called, or fails with its own timeout. A reply_promise is one-shot and never
// silent: destroyed unanswered, it answers errc::request_dropped (so an ask
// cannot hang on a forgotten promise, and an actor that stops drops its own).
// Works for asks from plain threads, other actors and other nodes alike.
//
// Thread safety: move-only; deliver()/fail() from any thread, by its one owner.
#pragma once

#include <type_traits>
#include <utility>

#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe {

template <class R>
class reply_promise {
 public:
  reply_promise() = default;
  explicit reply_promise(detail::reply_to<R> to) noexcept : to_(std::move(to)) {}

  // True until deliver() or fail() (false for a default-constructed one).
  [[nodiscard]] bool pending() const noexcept { return to_.pending(); }

  template <class V = R>
  requires(!std::is_void_v<V>) void deliver(V value) noexcept { to_.deliver(expected<R>(std::move(value))); }
  template <class V = R>
  requires std::is_void_v<V>
  void deliver() noexcept { to_.deliver(expected<void>{}); }
  // The asker's ask fails with `why`.
  void fail(error why) noexcept { to_.deliver(std::move(why)); }

 private:
  detail::reply_to<R> to_;
};

}  // namespace troupe
