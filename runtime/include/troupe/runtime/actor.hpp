// actor<P>: the base class of a class-based actor whose mailbox speaks P.
//
//   struct counter : troupe::actor<troupe::protocol<inc, get>> {
//     int n = 0;
//     void on(inc) { ++n; }                 // a plain message
//     int on(const get&) { return n; }      // a request: the return value is the reply
//   };
//
// Handlers are member functions named on(M), one per message type of P (a
// missing one is a compile error at spawn). A handler for a request returns the
// reply type, or task<R> to co_await other actors first. Optional hooks:
// on_start() runs before the first message; on_stop(const exit_reason&) or
// on_stop() runs when the actor stops (not when killed).
//
// An actor runs on at most one thread at a time and its state needs no locks.
// An exception escaping a handler stops the actor with exit_reason::error carrying
// the exception's text and type; its pending requests fail with that reason and
// other actors are unaffected.
//
// While a task<> handler is suspended, await_policy decides what the actor does:
//   sequential (default): nothing else — later messages wait in the mailbox, in
//                         order, so the handler sees the state it left;
//   interleave:           other messages are handled meanwhile (declare
//                         `static constexpr auto awaits = troupe::await_policy::interleave;`).
//
// Thread safety: the members below are for the actor's own handlers only.
#pragma once

#include <chrono>
#include <cstdint>
#include <utility>

#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/timer.hpp"

namespace troupe {

class system;
namespace detail {
struct actor_access;
}  // namespace detail

enum class await_policy : unsigned char { sequential, interleave };

class actor_base {
 public:
  actor_base(const actor_base&) = delete;
  actor_base& operator=(const actor_base&) = delete;

  // The system this actor lives in.
  [[nodiscard]] troupe::system& system() const noexcept { return cell_->owner(); }
  // Stops this actor after the current handler returns.
  void stop(exit_reason reason = exit_reason::normal()) { cell_->stop_self(std::move(reason)); }
  // Replies that arrived after their ask had timed out (and were discarded).
  [[nodiscard]] std::uint64_t late_replies() const noexcept { return cell_->late_replies(); }
  // This actor's address as text, e.g. "troupe://local/7".
  [[nodiscard]] std::string address() const { return detail::address_of(cell_); }

  // Links and monitors (see signals.hpp for what arrives, and the defaults).
  // monitor(): a down{who, reason} arrives when `who` stops — at once if it
  // already has. Returns an id for demonitor(), after which no down for it
  // arrives (also not one already on its way).
  std::uint64_t monitor(const actor_addr& who) { return cell_->monitor(detail::addr_access::get(who)); }
  void demonitor(std::uint64_t monitor_id) { cell_->demonitor(monitor_id); }
  // link(): bidirectional; when either side stops abnormally the other stops
  // with the same reason, unless it traps exits (declares on(const exit&)).
  void link(const actor_addr& other) { cell_->link(detail::addr_access::get(other)); }
  void unlink(const actor_addr& other) { cell_->unlink(detail::addr_access::get(other)); }
  // Sends an exit signal, as if this actor were linked to `to` and stopped with
  // `reason` (exit_reason::killed stops it without on_stop, and cannot be trapped).
  void send_exit(const actor_addr& to, exit_reason reason) {
    detail::cell::send_exit(detail::addr_access::get(to), cell_, std::move(reason));
  }

 protected:
  actor_base() noexcept;
  ~actor_base() = default;

 private:
  friend struct detail::actor_access;
  detail::cell* cell_;  // the cell outlives the actor object
};

namespace detail {
// What the runtime reaches inside an actor object; users never name it.
struct actor_access {
  static cell* cell_of(const actor_base& a) noexcept { return a.cell_; }
};
}  // namespace detail

template <class P>
class actor : public actor_base {
  static_assert(is_protocol<P>::value, "troupe::actor<P>: P must be a troupe::protocol<...>");

 public:
  using protocol_type = P;

  // A ref to this actor, to hand to others.
  [[nodiscard]] ref<P> self() const { return detail::ref_access::make<P>(detail::actor_access::cell_of(*this)); }

 protected:
  actor() noexcept = default;
};

namespace detail {
// Sets, for the duration of an actor's construction, the cell its actor_base
// binds to (so user constructors need not forward anything).
class constructing_scope {
 public:
  explicit constructing_scope(cell* c) noexcept;
  ~constructing_scope();
  constructing_scope(const constructing_scope&) = delete;
  constructing_scope& operator=(const constructing_scope&) = delete;

 private:
  cell* previous_;
};
}  // namespace detail

}  // namespace troupe
