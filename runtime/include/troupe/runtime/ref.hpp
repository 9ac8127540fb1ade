// ref<P>: the address of an actor whose mailbox speaks protocol P. Copyable,
// cheap (one pointer), comparable, hashable, printable as an address.
//
//   troupe::ref<bank> b = sys.spawn<bank_actor>();
//   b.tell(deposit{"alice", 500});                       // fire and forget
//   std::int64_t c = b.ask(balance{"alice"}, 1s).get();  // request/response
//   b.tell(42);  // error: "troupe: this message type is not in the receiver's protocol"
//
// tell() returns an empty std::error_code when the message was enqueued, and
// errc::no_such_actor when the actor is already gone (delivery is at-most-once:
// an enqueued message may still be dropped if the actor stops before handling it).
//
// Thread safety: a ref may be copied and used from any thread and any actor.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/response.hpp"

namespace troupe {

template <class P>
class ref;

namespace detail {
struct ref_access {
  template <class P>
  static cell* get(const ref<P>& r) noexcept {
    return r.cell_.get();
  }
  template <class P>
  static ref<P> make(cell* c) {
    return ref<P>(cell_ptr(c));
  }
};
}  // namespace detail

template <class P>
class ref {
  static_assert(is_protocol<P>::value, "troupe::ref<P>: P must be a troupe::protocol<...>");

 public:
  using protocol_type = P;

  ref() noexcept = default;

  // Sends `message`; does not wait. See the header comment for the result.
  template <class M>
  std::error_code tell(M&& message) const {
    using message_type = std::remove_cvref_t<M>;
    static_assert(accepts<P, message_type>,
                  "troupe: this message type is not in the receiver's protocol "
                  "(see 'M = ...' and 'P = troupe::protocol<...>' in this error's context)");
    if (!cell_) return make_error_code(errc::no_such_actor);
    constexpr std::uint32_t index = P::template index_of<message_type>;
    // A remote actor: encoded straight from here, no envelope (net/'s proxies).
    if (cell_->is_remote()) return cell_->forward_message(index, &message);
    detail::envelope* e;
    if constexpr (request<message_type>) {
      e = new detail::message_envelope<message_type>(index, {}, std::forward<M>(message));
    } else {
      e = new detail::message_envelope<message_type>(index, std::forward<M>(message));
    }
    return cell_->enqueue(e);
  }

  // Sends a request and returns its future reply (see response.hpp). The ask
  // fails with errc::timeout if no reply comes within `timeout`.
  template <class M>
  response<reply_t<std::remove_cvref_t<M>>> ask(M&& message, std::chrono::nanoseconds timeout) const {
    using message_type = std::remove_cvref_t<M>;
    using reply_type = reply_t<message_type>;
    static_assert(accepts<P, message_type>,
                  "troupe: this message type is not in the receiver's protocol "
                  "(see 'M = ...' and 'P = troupe::protocol<...>' in this error's context)");
    static_assert(request<message_type>,
                  "troupe: ask() needs a request type: declare `using reply = R;` in the message");
    if (!cell_) return response<reply_type>(error(errc::no_such_actor, "ask() on an empty ref"));
    constexpr std::uint32_t index = P::template index_of<message_type>;
    if (detail::cell* asker = detail::current_cell()) {
      auto slot = std::make_shared<detail::ask_slot<reply_type>>();
      const std::uint64_t id = asker->add_pending(slot, timeout);
      (void)cell_->enqueue(new detail::message_envelope<message_type>(
          index, detail::reply_to<reply_type>(detail::cell_ptr(asker), id), std::forward<M>(message)));
      return response<reply_type>(std::move(slot));
    }
    auto state = std::make_shared<detail::future_state<reply_type>>();
    if (cell_->enqueue(new detail::message_envelope<message_type>(index, detail::reply_to<reply_type>(state),
                                                                  std::forward<M>(message)))) {
      // The actor is gone (and its system may be too): the abandoned request
      // already failed the future with the actor's exit reason.
      return response<reply_type>(state->take().error());
    }
    // Enqueued: the actor was alive, so its system still exists. Its clock is
    // virtual in deterministic mode.
    troupe::system& sys = cell_->owner();
    return response<reply_type>(std::move(state), detail::is_deterministic(sys) ? &sys : nullptr,
                                detail::system_now(sys) + timeout);
  }

  // Sends a request and runs `done(troupe::expected<R>)` with its reply, for
  // code outside actors that must not block (an I/O thread: net/gateway's
  // servers). `done` runs exactly once, on the thread that brings the result:
  // the replier's (a scheduler worker: keep it short and non-blocking), the
  // system's timer thread when `timeout` passes first (errc::timeout), or this
  // one, before ask() returns, when the actor is already gone. It must not
  // throw. Inside an actor, use response::then(), which runs in the actor's
  // context; this one never does.
  template <class M, class Done>
  requires std::invocable<Done&, expected<reply_t<std::remove_cvref_t<M>>>>
  void ask(M&& message, std::chrono::nanoseconds timeout, Done&& done) const {
    using message_type = std::remove_cvref_t<M>;
    using reply_type = reply_t<message_type>;
    static_assert(accepts<P, message_type>,
                  "troupe: this message type is not in the receiver's protocol "
                  "(see 'M = ...' and 'P = troupe::protocol<...>' in this error's context)");
    static_assert(request<message_type>,
                  "troupe: ask() needs a request type: declare `using reply = R;` in the message");
    if (!cell_) {
      done(expected<reply_type>(error(errc::no_such_actor, "ask() on an empty ref")));
      return;
    }
    constexpr std::uint32_t index = P::template index_of<message_type>;
    auto sink = std::make_shared<detail::callback_sink<reply_type>>(std::forward<Done>(done));
    if (cell_->enqueue(new detail::message_envelope<message_type>(index, detail::reply_to<reply_type>(sink),
                                                                  std::forward<M>(message)))) {
      return;  // the actor is gone: abandoning the request has run `done`
    }
    // Enqueued: the actor was alive, so its system still exists.
    sink->arm(detail::call_after(cell_->owner(), timeout, [sink] { sink->expire(); }));
  }

  // Messages a bounded mailbox dropped or rejected so far (0 when unbounded).
  [[nodiscard]] std::uint64_t dropped_messages() const noexcept { return cell_ ? cell_->dropped_messages() : 0; }

  explicit operator bool() const noexcept { return static_cast<bool>(cell_); }
  // The actor's id, unique within its system (0 for an empty ref).
  [[nodiscard]] std::uint64_t id() const noexcept { return cell_ ? cell_->id() : 0; }
  // "troupe://local/42"; "troupe://<none>" for an empty ref.
  [[nodiscard]] std::string address() const { return detail::address_of(cell_.get()); }

  friend bool operator==(const ref& a, const ref& b) noexcept { return a.cell_ == b.cell_; }
  friend std::ostream& operator<<(std::ostream& out, const ref& r) { return out << r.address(); }

 private:
  friend struct detail::ref_access;
  explicit ref(detail::cell_ptr c) noexcept : cell_(std::move(c)) {}
  detail::cell_ptr cell_;
};

namespace detail {

// Tells `to` the `count` messages make(0), make(1), ... in that order, as if
// by one tell() each; to a local actor that takes chains (cell::takes_chains)
// they are queued as one chain: one atomic step and at most one wake-up for
// the lot, instead of one each (net/'s reliable channels hand a batch to
// their consumer this way). make(i) returns an M; it is called in order, and
// not at all for an actor known to be gone. Returns what the tells would:
// no_such_actor when the actor is gone (the messages are dropped).
template <class M, class P, class Make>
std::error_code tell_each(const ref<P>& to, std::size_t count, Make&& make) {
  static_assert(accepts<P, M> && !request<M>, "troupe: tell_each sends messages of the receiver's protocol");
  cell* target = ref_access::get(to);
  if (target == nullptr) return make_error_code(errc::no_such_actor);
  if (target->is_remote() || !target->takes_chains() || count < 2) {
    std::error_code result;
    for (std::size_t i = 0; i < count; ++i) {
      if (std::error_code ec = to.tell(make(i))) result = ec;
    }
    return result;
  }
  constexpr std::uint32_t index = P::template index_of<M>;
  envelope* newest = nullptr;
  envelope* oldest = nullptr;
  try {
    for (std::size_t i = 0; i < count; ++i) {
      envelope* e = new message_envelope<M>(index, make(i));
      e->next = newest;
      newest = e;
      if (oldest == nullptr) oldest = e;
    }
  } catch (...) {
    while (newest != nullptr) {
      auto* next = static_cast<envelope*>(newest->next);
      delete newest;
      newest = next;
    }
    throw;
  }
  return target->enqueue_chain(newest, oldest, nullptr);
}

}  // namespace detail

}  // namespace troupe

template <class P>
struct std::hash<troupe::ref<P>> {
  std::size_t operator()(const troupe::ref<P>& r) const noexcept { return std::hash<std::uint64_t>{}(r.id()); }
};
