// scheduler: the work-stealing executor that runs actors on N worker threads.
//
// Each worker has
//   - a "next" slot: the actor most recently made runnable by this worker runs
//     next on the same core (message ping-pong stays cache-warm and wakes
//     nobody; Go's runnext, Tokio's LIFO slot). A streak limit keeps two chatty
//     actors from starving the rest of the queue. Another worker may steal the
//     slot's actor, but only from a worker that has been in the same activation
//     for a while (a long handler): the owner keeps its ping-pong. Once a
//     thief has taken the slot during an activation, that activation is a long
//     one, and whatever else it wakes goes to the deque, where any worker takes
//     it at once (a producer looping in one handler wakes its consumer there,
//     not once per steal delay). The owner's side of the slot is plain loads and
//     stores; the rare thief pays for the arbitration (see "The next slot" in
//     scheduler.cpp);
//   - a bounded work-stealing deque, used as a FIFO (the owner takes from the top
//     like the thieves), so actors are served in the order they became runnable.
// Threads that are not workers (main(), timers, detached actors, transports)
// push into a shared injection queue (an intrusive lock-free stack that a
// worker takes whole, one batch at a time, oldest first), which workers also
// poll every few activations so it cannot starve.
//
// Finding work and sleeping (as Go's and Tokio's schedulers):
//   - A worker without work becomes a *searcher*: it spins a bounded number of
//     times over its slot, its deque, the injection queue and the others'
//     deques (and their next slots, see above), then keeps looking between
//     sched_yield()s for an adaptive budget (4–256 µs: longer while work keeps
//     arriving just after it would have parked), then parks on an event_count.
//   - Whoever makes work available wakes a parked worker only if nobody is
//     searching: a searcher will find the work. So a stream of sends from one
//     thread costs one wake-up, not one per message.
//   - A searcher that finds work and was the last one wakes another worker if
//     more work is queued, so work spreads one wake-up at a time.
//   - The park protocol (searching_ and the event_count, both with seq_cst
//     RMWs) never loses a wake-up: see park().
//   - A parked worker sleeps until woken, but while any other worker is
//     running an actor at most 1 ms: an actor in that worker's next slot could
//     otherwise wait for a long handler to end while this core is idle. In an
//     idle system every worker is parked and looks again every 100 ms (ten
//     wake-ups a second, no measurable CPU).
//
// Thread safety: schedule() from any thread; stats() from any thread (a
// snapshot of per-worker counters, each written by its worker only); the rest
// is internal.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/event_count.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/mailbox/work_stealing_deque.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::detail {

class scheduler final : public executor {
  using time_point = std::chrono::steady_clock::time_point;

 public:
  scheduler(std::size_t workers, std::size_t max_throughput, std::size_t idle_spins);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  void schedule(cell* c) noexcept override;

  // Waits until every worker is parked with no queued work, or `deadline`.
  bool wait_idle(std::chrono::steady_clock::time_point deadline) TROUPE_EXCLUDES(idle_mutex_);
  // Stops and joins the workers. Work still queued is not run.
  void stop();
  [[nodiscard]] std::size_t worker_count() const noexcept { return workers_.size(); }
  // Each worker's counters since start (see troupe::worker_stats).
  [[nodiscard]] std::vector<worker_stats> stats() const;

 private:
  // A counter written by one worker only: no RMW on the hot path. Readers on
  // other threads get a value that was true at some point (relaxed).
  class counter {
   public:
    void add(std::uint64_t n = 1) noexcept {
      // relaxed: single writer; readers only need some recent value.
      value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t get() const noexcept {
      // relaxed: a statistic.
      return value_.load(std::memory_order_relaxed);
    }

   private:
    std::atomic<std::uint64_t> value_{0};
  };

  struct alignas(cache_line) worker {
    work_stealing_deque<cell, 1024> queue;
    // The next slot: null, a cell, or a thief's claim mark while it decides.
    // Written by its owner on every hop; thieves touch it only to steal.
    alignas(cache_line) std::atomic<cell*> next{nullptr};
    // The owner's activations: odd while one runs, even between them. Thieves
    // poll it now and then; a line of its own, away from the slot.
    alignas(cache_line) std::atomic<std::uint64_t> activation{0};
    // Owner only.
    alignas(cache_line) std::uint32_t next_streak = 0;  // consecutive runs from the next slot
    // The activation (its odd count) in which this worker last filled its empty
    // slot: finding the slot empty again in the same activation means a thief
    // took the cell (only thieves empty a slot during an activation).
    std::uint64_t filled_in = 0;
    std::uint32_t ticks = 0;  // activations, for the injection-queue poll
    std::uint64_t steal_seed = 0;
    bool searching = false;  // counted in searching_
    // A next slot this worker, as a thief, is watching: whose, and at which of
    // the victim's activations and when it was first seen there.
    std::size_t watched_victim = SIZE_MAX;
    std::uint64_t watched_activation = 0;
    time_point watched_since{};
    std::uint64_t spin_count = 0;  // spins as a searcher, ever
    // The yielding phase of a search (keep_yielding()): its end, or the epoch
    // outside the phase, and this worker's current budget for it.
    time_point yield_until{};
    std::chrono::nanoseconds yield_budget{std::chrono::microseconds(16)};
    // Statistics (troupe::worker_stats).
    counter activations, steals, next_steals, next_bumps, parks, timed_wakeups, wakeups_issued;
    std::thread thread;
  };

  void run(worker& self);
  cell* find_work(worker& self);
  cell* steal(worker& self);
  cell* steal_stranded_next(worker& self);
  void push_local(worker& self, cell* c);
  void push_queue(worker& self, cell* c) noexcept;
  void inject(cell* c) noexcept;
  // The whole injection queue: returns the oldest cell, the rest goes to
  // `self`'s deque, and what does not fit there to the spill.
  cell* take_injected(worker& self) noexcept;
  void spill(cell* chain) noexcept TROUPE_EXCLUDES(spill_mutex_);
  cell* take_spilled(worker& self) noexcept TROUPE_EXCLUDES(spill_mutex_);
  // The owner's side of the next slot: waits while a thief holds it.
  [[nodiscard]] static cell* load_slot(worker& self) noexcept;
  [[nodiscard]] static bool keep_yielding(worker& self) noexcept;
  void park(worker& self) TROUPE_EXCLUDES(idle_mutex_);
  void start_searching(worker& self) noexcept;
  void stop_searching(worker& self) noexcept;
  // Wakes a parked worker unless one is searching; `self` (or null off the
  // workers) counts the wake-up.
  void wake_one(worker* self) noexcept;
  [[nodiscard]] bool has_work_anywhere() const;
  [[nodiscard]] bool others_running(const worker& self) const noexcept;

  std::vector<std::unique_ptr<worker>> workers_;
  // The injection queue (inject()): a stack of cells linked through run_next.
  alignas(cache_line) std::atomic<cell*> injected_{nullptr};
  // The spill (spill()): injected cells that did not fit a worker's deque, oldest first.
  alignas(cache_line) std::atomic<bool> spilled_{false};  // spill_head_ != nullptr, as a hint
  troupe::mutex spill_mutex_;
  cell* spill_head_ TROUPE_GUARDED_BY(spill_mutex_) = nullptr;
  cell* spill_tail_ TROUPE_GUARDED_BY(spill_mutex_) = nullptr;
  event_count idle_;
  std::atomic<bool> stopping_{false};
  alignas(cache_line) std::atomic<std::uint32_t> searching_{0};  // workers searching for work
  alignas(cache_line) std::atomic<std::size_t> parked_{0};
  std::atomic<std::uint32_t> long_sleepers_{0};  // parked with the long timeout (park())
  // The process can issue asymmetric fences (membarrier): next slots may be stolen.
  bool can_steal_next_ = false;
  std::atomic<std::uint64_t> external_wakeups_{0};  // wake-ups issued by threads that are not workers
  // Guards no field: it orders the last worker's notify of all_idle_ (park())
  // with wait_idle()'s check of parked_, so the wake-up cannot fall between the
  // check and the wait.
  troupe::mutex idle_mutex_;
  std::condition_variable_any all_idle_;
  std::size_t max_throughput_;
  std::size_t idle_spins_;
};

}  // namespace troupe::detail
