// system: an actor world — the scheduler's worker threads, the timer thread,
// and every actor spawned in it.
//
//   troupe::system sys;                                    // all cores
//   auto b = sys.spawn<bank_actor>();                      // a class-based actor
//   auto echo = sys.spawn<troupe::protocol<ping>>([](ping p) { ... });   // lambda handlers
//   auto io = sys.spawn_detached<blocking_reader>(path);   // its own thread, may block
//   sys.send_after(b, 1s, deposit{"alice", 1});
//
// Shutdown (the destructor, or shutdown()): no new actors; timers are cancelled;
// actors get up to config::shutdown_grace to run out of work; those still alive
// are stopped with exit_reason::shutdown (on_stop runs, pending asks fail); then
// the threads are joined. Refs that outlive the system stay safe to use: sends
// report errc::no_such_actor.
//
// Deterministic mode (config::deterministic()): no threads at all. The test calls
// step() to handle exactly one message, run_until_idle(), and advance_time() on a
// virtual clock that drives timers and ask timeouts. Blocking calls (get() on an
// ask, scoped<P>::receive) drive the system themselves until they can return.
//
// Thread safety: spawn, send_after/send_every and shutdown from any thread
// (actors included). step/run_until_idle/advance_time from the test's thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/detail/typed_cell.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/timer.hpp"

namespace troupe {

namespace detail {
class system_state;
}

// A bounded mailbox for spawn(): at most `capacity` queued messages, and what
// happens to one more (see overflow_policy in mailbox/mailbox_bound.hpp).
struct bounded {
  std::int64_t capacity;
  overflow_policy policy = overflow_policy::reject;
};

// What one scheduler worker did since the system started
// (system::scheduler_stats()). Each counter is written by its worker alone and
// read without stopping it: a snapshot, not a consistent cut.
struct worker_stats {
  std::uint64_t activations = 0;     // actors it ran (an activation: up to max_throughput messages)
  std::uint64_t steals = 0;          // actors it took from another worker's queue
  std::uint64_t next_steals = 0;     // ... from another worker's next slot, from behind a long handler
  std::uint64_t next_bumps = 0;      // actors a newer one moved from its next slot to its queue
  std::uint64_t parks = 0;           // times it went to sleep for want of work
  std::uint64_t timed_wakeups = 0;   // times it woke by itself to look for stranded work
  std::uint64_t wakeups_issued = 0;  // sleeping workers it woke
  // The first worker's entry only: wake-ups issued by threads that are not
  // workers (main(), timers, transports).
  std::uint64_t wakeups_from_outside = 0;
};

template <class A>
concept actor_class = requires {
  typename A::protocol_type;
}
&&std::is_base_of_v<actor<typename A::protocol_type>, A>;

class system {
 public:
  explicit system(troupe::config cfg = {});
  ~system();
  system(const system&) = delete;
  system& operator=(const system&) = delete;

  // Spawns an actor of class A, constructed from args, on the scheduler.
  // Throws what A's constructor throws, or troupe_error(system_stopped).
  template <actor_class A, class... Args>
  ref<typename A::protocol_type> spawn(Args&&... args) {
    check_spawn_allowed();
    return spawn_on<A>(scheduler_executor(), nullptr, std::forward<Args>(args)...);
  }

  // As spawn(), with a bounded mailbox (unbounded is the default).
  template <actor_class A, class... Args>
  ref<typename A::protocol_type> spawn(bounded mailbox, Args&&... args) {
    check_spawn_allowed();
    return spawn_on<A>(scheduler_executor(), std::make_unique<mailbox_bound>(mailbox.capacity, mailbox.policy),
                       std::forward<Args>(args)...);
  }

  // Spawns a lambda-based actor speaking P: one callable per message type.
  template <a_protocol P, class... Handlers>
  ref<P> spawn(Handlers&&... handlers) {
    using actor_type = detail::function_actor<P, std::decay_t<Handlers>...>;
    check_spawn_allowed();
    return spawn_on<actor_type>(scheduler_executor(), nullptr, std::forward<Handlers>(handlers)...);
  }

  // Spawns an actor on a thread of its own, for handlers that block (I/O,
  // legacy calls). Not available in deterministic mode.
  template <actor_class A, class... Args>
  ref<typename A::protocol_type> spawn_detached(Args&&... args) {
    check_spawn_allowed();
    return spawn_on<A>(make_detached_executor(), nullptr, std::forward<Args>(args)...);
  }

  // Sends `message` to `to` after `delay`. Returns a handle to cancel it.
  template <class P, class M>
  timer send_after(const ref<P>& to, std::chrono::nanoseconds delay, M&& message) {
    static_assert(accepts<P, M>, "troupe: this message type is not in the receiver's protocol");
    return schedule_timer(delay, std::chrono::nanoseconds::zero(),
                          [to, m = std::remove_cvref_t<M>(std::forward<M>(message))]() mutable {
                            (void)to.tell(std::move(m));
                            return true;
                          });
  }

  // Sends a copy of `message` to `to` every `period` until cancelled (or the
  // receiver is gone, or the system shuts down).
  template <class P, class M>
  timer send_every(const ref<P>& to, std::chrono::nanoseconds period, M&& message) {
    static_assert(accepts<P, M>, "troupe: this message type is not in the receiver's protocol");
    static_assert(std::is_copy_constructible_v<std::remove_cvref_t<M>>, "troupe: send_every needs a copyable message");
    return schedule_timer(period, period, [to, m = std::remove_cvref_t<M>(std::forward<M>(message))]() {
      // Stops (and lets go of the receiver) once the receiver is gone.
      return to.tell(m) != make_error_code(errc::no_such_actor);
    });
  }

  // Sends an exit signal to `to` from outside any actor: it stops with `reason`
  // unless it traps exits or the reason is normal; exit_reason::killed stops it
  // without on_stop and cannot be trapped.
  void send_exit(const actor_addr& to, exit_reason reason) {
    if (to) detail::cell::send_exit(detail::addr_access::get(to), nullptr, std::move(reason));
  }

  // See the header comment. Idempotent; the destructor calls it.
  void shutdown();

  [[nodiscard]] const troupe::config& config() const noexcept;
  [[nodiscard]] std::size_t worker_count() const noexcept;
  // One entry per scheduler worker (none in deterministic mode).
  [[nodiscard]] std::vector<worker_stats> scheduler_stats() const;
  // Actors spawned and not yet stopped.
  [[nodiscard]] std::size_t live_actors() const noexcept;
  // Timers armed and not yet fired or cancelled: send_after/send_every, and
  // each actor's ask timer (one per actor with asks outstanding, see
  // cell::add_pending()).
  [[nodiscard]] std::size_t pending_timers() const;

  // --- deterministic mode (config::deterministic()) -------------------------
  // Handles one message (or one start-up) of the next runnable actor. False if
  // no actor is runnable.
  bool step();
  // Steps until no actor is runnable; returns the number of steps.
  std::size_t run_until_idle();
  // Moves the virtual clock forward one timer deadline at a time: at each, fires
  // the timers due then and runs the actors until idle; finally runs until idle
  // at the target time. Throws troupe_error outside deterministic mode.
  void advance_time(std::chrono::nanoseconds by);
  // The system's clock: virtual in deterministic mode, steady_clock otherwise.
  [[nodiscard]] std::chrono::steady_clock::time_point now() const noexcept;

  detail::system_state& state() noexcept { return *state_; }

 private:
  // The one spawn path: build the cell (bounded if `bound`), register and schedule it.
  template <class A, class... Args>
  ref<typename A::protocol_type> spawn_on(detail::executor& exec, std::unique_ptr<mailbox_bound> bound,
                                          Args&&... args) {
    auto* c = new detail::typed_cell<A>(*this, exec, std::forward<Args>(args)...);
    if (bound) c->set_bound(std::move(bound));
    // The caller's ref; the cell's initial reference becomes the system's.
    auto handle = detail::ref_access::make<typename A::protocol_type>(c);
    start(c);
    return handle;
  }

  friend detail::executor& detail::scheduler_of(troupe::system& sys) noexcept;
  void check_spawn_allowed() const;
  detail::executor& scheduler_executor() noexcept;
  detail::executor& make_detached_executor();
  void start(detail::cell* c);
  // `fire` returns false to stop a periodic timer.
  timer schedule_timer(std::chrono::nanoseconds delay, std::chrono::nanoseconds period, std::function<bool()> fire);

  std::unique_ptr<detail::system_state> state_;
};

}  // namespace troupe
