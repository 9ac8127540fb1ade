// scheduler: see scheduler.hpp for the design.
#include "scheduler.hpp"

#include <algorithm>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "troupe/mailbox/assert.hpp"

namespace troupe::detail {
namespace {

// The worker running on this thread, and the scheduler it belongs to.
thread_local void* current_scheduler = nullptr;
thread_local void* current_worker = nullptr;

// Runs from the next slot in a row before the slot's actor must queue like the rest.
constexpr std::uint32_t max_next_streak = 32;
// Every this many activations a worker polls the injection queue first.
constexpr std::uint32_t injector_poll_interval = 61;
// A searcher steals another worker's next slot once it has seen that worker in
// the same activation, with the slot full, for this long: long enough for an
// ordinary activation (up to max_throughput messages) to end and the owner to
// take the slot itself, so that the steal's heavy fence (a few microseconds
// and an interrupt of every running thread of the process) is paid only for
// an actor really stranded behind a long handler.
constexpr auto stranded_after = std::chrono::microseconds(50);
// A searcher looks at the others' activation counts once in this many spins:
// each look pulls the owner's counter line into shared state, and the owner's
// next store to it then misses.
constexpr std::uint64_t stranded_poll_interval = 8;

// The mark a thief leaves in a next slot while it decides: its own worker's
// address with the low bit set (never a real cell, never dereferenced). Each
// thief's mark is its own, so a thief whose claim was overwritten can never
// mistake another thief's later claim for its own.
template <class Worker>
cell* claim_mark(const Worker& thief) noexcept {
  return reinterpret_cast<cell*>(reinterpret_cast<std::uintptr_t>(&thief) | 1U);  // NOLINT: a tagged pointer
}
bool is_claim(const cell* c) noexcept { return (reinterpret_cast<std::uintptr_t>(c) & 1U) != 0; }  // NOLINT: ditto

// Asymmetric fences (membarrier(2)): the thief's expensive fence stands in for
// a fence on every other thread, so the owners' fast paths need none.
bool register_membarrier() noexcept {
  return ::syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}
void heavy_fence() noexcept { (void)::syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0); }

// The owner's side: a compiler barrier, which the thief's heavy_fence() makes a
// full one whenever it matters.
void light_fence() noexcept { std::atomic_signal_fence(std::memory_order_seq_cst); }
// How long a parked worker sleeps at most while others run actors, and while
// none does (see park()).
constexpr auto stranded_check_interval = std::chrono::milliseconds(1);
constexpr auto idle_check_interval = std::chrono::milliseconds(100);
// The yielding phase of a search (see run()): how long a worker keeps looking,
// giving its core away between looks, before it parks. Adaptive per worker,
// between these bounds: it doubles when work turned up in time, halves when it
// ran out for nothing.
constexpr auto min_yield_budget = std::chrono::microseconds(4);
constexpr auto max_yield_budget = std::chrono::microseconds(256);

}  // namespace

scheduler::scheduler(std::size_t workers, std::size_t max_throughput, std::size_t idle_spins)
    : max_throughput_(max_throughput == 0 ? 1 : max_throughput), idle_spins_(idle_spins) {
  if (workers == 0) workers = 1;
  // Without membarrier (a kernel before 4.14, or a seccomp filter), next slots
  // are the owner's alone, as before: stranding is possible, never wrong.
  can_steal_next_ = workers > 1 && register_membarrier();
  workers_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) {
    workers_.push_back(std::make_unique<worker>());
    workers_.back()->steal_seed = 0x9E3779B97F4A7C15ull * (i + 1);
  }
  for (auto& w : workers_) {
    worker* self = w.get();
    self->thread = std::thread([this, self] { run(*self); });
  }
}

scheduler::~scheduler() { stop(); }

void scheduler::stop() {
  // release: pairs with the acquire loads in run(); a worker that sees the flag
  // also sees everything shutdown did before it.
  if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
  idle_.notify_all();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

std::vector<worker_stats> scheduler::stats() const {
  std::vector<worker_stats> out;
  out.reserve(workers_.size());
  for (const auto& w : workers_) {
    worker_stats s;
    s.activations = w->activations.get();
    s.steals = w->steals.get();
    s.next_steals = w->next_steals.get();
    s.next_bumps = w->next_bumps.get();
    s.parks = w->parks.get();
    s.timed_wakeups = w->timed_wakeups.get();
    s.wakeups_issued = w->wakeups_issued.get();
    out.push_back(s);
  }
  // Wake-ups from threads that are not workers are told with the first worker's.
  // relaxed: a statistic.
  if (!out.empty()) out.front().wakeups_from_outside = external_wakeups_.load(std::memory_order_relaxed);
  return out;
}

// --- making work available ----------------------------------------------------------------

void scheduler::wake_one(worker* self) noexcept {
  // The producer's half of the park protocol (see park()): the work is
  // published; this seq_cst RMW reads the latest searching_ in the total order
  // of RMWs on it. A searcher that is still counted will find the work; one
  // that stopped counting has announced itself to idle_ first, so the notify
  // below reaches it.
  if (searching_.fetch_add(0, std::memory_order_seq_cst) != 0) return;
  if (!idle_.notify_one()) return;
  if (self != nullptr) {
    self->wakeups_issued.add();
  } else {
    // relaxed: a statistic, on the path that just made a system call anyway.
    external_wakeups_.fetch_add(1, std::memory_order_relaxed);
  }
}

void scheduler::schedule(cell* c) noexcept {
  if (current_scheduler == this) {
    push_local(*static_cast<worker*>(current_worker), c);
    return;
  }
  inject(c);
  wake_one(nullptr);
}

void scheduler::push_queue(worker& self, cell* c) noexcept {
  if (!self.queue.push(c)) inject(c);
  wake_one(&self);
}

// The injection queue: an intrusive stack (a push is one CAS, no allocation)
// that a worker empties whole with one exchange, so producers and workers
// meet on one word per batch, not per cell (a lock-free MPMC queue made the
// workers' polls and main()'s pushes fight over its nodes). The taker reverses
// the batch: cells run in the order they were injected.
void scheduler::inject(cell* c) noexcept {
  // relaxed: a first guess for the CAS, which re-reads on failure.
  cell* head = injected_.load(std::memory_order_relaxed);
  do {
    c->run_next = head;
    // release: publishes the cell's state and its run_next to the taker's acquire exchange.
  } while (!injected_.compare_exchange_weak(head, c, std::memory_order_release, std::memory_order_relaxed));
}

cell* scheduler::take_injected(worker& self) noexcept {
  // The spill holds cells older than anything still in the stack: first.
  // relaxed: a hint; take_spilled() decides under the lock.
  if (spilled_.load(std::memory_order_relaxed)) {
    if (cell* c = take_spilled(self)) return c;
  }
  // relaxed: a hint that spares the exchange (and the line's ownership) when empty.
  if (injected_.load(std::memory_order_relaxed) == nullptr) return nullptr;
  // acquire: pairs with the release CAS of every inject() in the batch (a release sequence).
  cell* newest = injected_.exchange(nullptr, std::memory_order_acquire);
  cell* oldest = nullptr;
  while (newest != nullptr) {
    cell* older = newest->run_next;
    newest->run_next = oldest;
    oldest = newest;
    newest = older;
  }
  if (oldest == nullptr) return nullptr;
  cell* rest = oldest->run_next;
  oldest->run_next = nullptr;
  if (rest == nullptr) return oldest;
  // The rest of the batch goes to this worker's deque, where other workers
  // steal it; what does not fit goes to the spill, in order.
  // A cell's run_next is cleared before it is pushed: once in the deque it may
  // be stolen, run and injected again at once.
  while (rest != nullptr) {
    cell* next = rest->run_next;
    rest->run_next = nullptr;
    if (!self.queue.push(rest)) {
      rest->run_next = next;  // still ours: the push failed
      spill(rest);
      break;
    }
    rest = next;
  }
  wake_one(&self);
  return oldest;
}

// The spill: a FIFO under a mutex for injected cells that found no room in the
// deque of the worker that took them (a burst of more than the deque holds:
// main() spawning or telling thousands of actors). Rare by design, so a lock
// is fine here; each cell passes through it at most once, so a burst of n
// cells costs O(n), never a re-injection per take.
void scheduler::spill(cell* chain) noexcept {
  cell* last = chain;
  while (last->run_next != nullptr) last = last->run_next;
  troupe::mutex_lock lock(spill_mutex_);
  if (spill_tail_ == nullptr) {
    spill_head_ = chain;
  } else {
    spill_tail_->run_next = chain;
  }
  spill_tail_ = last;
  // relaxed: the mutex publishes the cells; the flag is a hint for
  // take_injected(), and has_work_anywhere() reads it after the park
  // protocol's RMWs (see park()).
  spilled_.store(true, std::memory_order_relaxed);
}

cell* scheduler::take_spilled(worker& self) noexcept {
  constexpr int batch = 128;  // a share, not all: the other workers take theirs
  cell* first = nullptr;
  bool queued = false;
  {
    troupe::mutex_lock lock(spill_mutex_);
    for (int i = 0; i < batch && spill_head_ != nullptr; ++i) {
      cell* c = spill_head_;
      cell* next = c->run_next;
      c->run_next = nullptr;  // before the push, as in take_injected()
      if (first != nullptr && !self.queue.push(c)) {
        c->run_next = next;  // the deque is full: it stays first in line
        break;
      }
      spill_head_ = next;
      if (first == nullptr) {
        first = c;
      } else {
        queued = true;
      }
    }
    if (spill_head_ == nullptr) {
      spill_tail_ = nullptr;
      spilled_.store(false, std::memory_order_relaxed);  // relaxed: see spill()
    }
  }
  if (queued) wake_one(&self);
  return first;
}

// The next slot. Its owner mostly uses plain loads and stores; a thief pays for
// the arbitration with compare-and-swaps and a heavy fence:
//   owner, inside an activation (push_local): load the slot (waiting while a
//     thief holds it); empty -> store the new cell (thieves never touch an
//     empty slot); full -> CAS the old cell to the new one and bump the old
//     one to the deque (a thief may be claiming it at the same moment);
//   owner, between activations (find_work): mark the activation ended, light
//     fence, load the slot (waiting while a thief holds it), store null;
//   thief: claim the cell it saw (CAS cell -> its mark), heavy fence, read the
//     owner's activation count: still the activation it watched -> commit
//     (CAS mark -> null) and run the cell; otherwise give it back (CAS mark ->
//     cell).
// Why a cell is never run twice nor lost:
//   - inside an activation the owner changes a full slot only by CAS, so the
//     owner or the thief takes the cell, never both; a claimed slot makes the
//     owner wait for the thief's decision;
//   - between activations the heavy fence and the owner's light fence are a
//     Dekker pair (as a full fence on both sides): either the thief sees the
//     owner's "ended" mark and gives the cell back, or the owner's load sees
//     the claim and waits for the decision. An owner that loaded the cell
//     before the claim runs it, and its store of null makes the thief's
//     give-back CAS fail.
cell* scheduler::load_slot(worker& self) noexcept {
  // acquire: pairs with the release store or CAS of push_local(), or a thief's give-back.
  cell* c = self.next.load(std::memory_order_acquire);
  while (is_claim(c)) {  // a thief decides: a heavy fence long
    cpu_relax();
    c = self.next.load(std::memory_order_acquire);
  }
  return c;
}

void scheduler::push_local(worker& self, cell* c) {
  TROUPE_ASSERT(current_worker == &self, "scheduler: push_local() off its worker");
  cell* bumped = load_slot(self);
  if (bumped == nullptr) {
    // relaxed: the owner's own counter.
    const std::uint64_t activation = self.activation.load(std::memory_order_relaxed);
    if (self.filled_in == activation) {
      // A thief took what this activation put in the slot: the activation is a
      // long one (a producer in a loop, a long handler), and whatever it wakes
      // now would wait in the slot for the next steal (stranded_after). Queue
      // it where any worker can take it at once.
      push_queue(self, c);
      return;
    }
    self.filled_in = activation;
    // release: publishes `c` (the cell it made runnable) to whoever takes the
    // slot, the owner or a thief (their loads and CAS are acquire).
    self.next.store(c, std::memory_order_release);
    // An empty slot wakes nobody as a rule: the owner runs `c` next, and a
    // searcher, or a parked worker's periodic check, takes it if the owner stays
    // busy (park()). A worker asleep for long (nobody was running when it
    // parked) is woken once, so that it sleeps the short way from now on.
    // relaxed: a hint; a sleeper missed here looks by itself within idle_check_interval.
    if (long_sleepers_.load(std::memory_order_relaxed) != 0) wake_one(&self);
    return;
  }
  // acq_rel: release publishes `c` as above; acquire pairs with the release
  // that put `bumped` there. On failure a thief claimed `bumped` (or took it):
  // wait for its decision and try again with what it left.
  while (!self.next.compare_exchange_weak(bumped, c, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    bumped = load_slot(self);
    if (bumped == nullptr) {
      self.next.store(c, std::memory_order_release);  // release: as above
      return;
    }
  }
  self.next_bumps.add();
  push_queue(self, bumped);
}

// --- finding work -----------------------------------------------------------------------

cell* scheduler::steal(worker& self) {
  const std::size_t n = workers_.size();
  if (n < 2) return nullptr;
  // xorshift: a cheap random start so thieves spread over victims.
  self.steal_seed ^= self.steal_seed << 13;
  self.steal_seed ^= self.steal_seed >> 7;
  self.steal_seed ^= self.steal_seed << 17;
  const std::size_t start = static_cast<std::size_t>(self.steal_seed % n);
  for (std::size_t i = 0; i < n; ++i) {
    worker& victim = *workers_[(start + i) % n];
    if (&victim == &self) continue;
    if (cell* c = victim.queue.steal()) {
      self.steals.add();
      return c;
    }
  }
  return steal_stranded_next(self);
}

// An actor waiting in the next slot of a worker that has been inside one
// activation since this searcher first saw it there: the owner will not get to
// it soon, so it runs here.
cell* scheduler::steal_stranded_next(worker& self) {
  if (!can_steal_next_ || self.spin_count % stranded_poll_interval != 0) return nullptr;
  const std::size_t n = workers_.size();
  for (std::size_t i = 0; i < n; ++i) {
    worker& victim = *workers_[i];
    if (&victim == &self) continue;
    // relaxed: a hint; the heavy fence below decides.
    const std::uint64_t activation = victim.activation.load(std::memory_order_relaxed);
    if (activation % 2 == 0) {  // between activations: it takes its slot itself
      if (self.watched_victim == i) self.watched_victim = SIZE_MAX;
      continue;
    }
    if (self.watched_victim != i || self.watched_activation != activation) {
      self.watched_victim = i;
      self.watched_activation = activation;
      self.watched_since = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - self.watched_since < stranded_after) continue;
    // relaxed: only a candidate; the CAS below takes it with acquire.
    cell* c = victim.next.load(std::memory_order_relaxed);
    if (c == nullptr || is_claim(c)) continue;
    cell* const mine = claim_mark(self);
    // acquire: pairs with the release in push_local(); the cell's state is visible.
    if (!victim.next.compare_exchange_strong(c, mine, std::memory_order_acquire, std::memory_order_relaxed)) {
      continue;
    }
    heavy_fence();
    // relaxed: the heavy fence orders it (see "The next slot").
    const bool still_stuck = victim.activation.load(std::memory_order_relaxed) == activation;
    cell* mark = mine;
    if (still_stuck) {
      // relaxed: the claim's acquire already made the cell ours to read.
      if (victim.next.compare_exchange_strong(mark, nullptr, std::memory_order_relaxed)) {
        // The watch stays, its clock restarts: the next steal from this
        // activation waits as long again, so a victim in a long batch of
        // messages (each landing in its slot) costs at most one heavy fence
        // per stranded_after, not one per message.
        self.watched_since = std::chrono::steady_clock::now();
        self.next_steals.add();
        return c;
      }
    } else {
      // release: pairs with the owner's acquire load (load_slot()): it takes the cell back.
      (void)victim.next.compare_exchange_strong(mark, c, std::memory_order_release, std::memory_order_relaxed);
    }
    // The owner overwrote the claim between activations: the cell is its to run.
  }
  return nullptr;
}

cell* scheduler::find_work(worker& self) {
  TROUPE_ASSERT(current_worker == &self, "scheduler: find_work() off its worker");
  cell* c = nullptr;
  if (++self.ticks % injector_poll_interval == 0 && (c = take_injected(self)) != nullptr) return c;
  // relaxed: only this worker fills the slot, so a null read is current.
  if (self.next.load(std::memory_order_relaxed) != nullptr) {
    cell* mine = load_slot(self);
    if (mine != nullptr) {
      // relaxed: the owner's own slot; a thief that claimed it meanwhile sees
      // its commit or give-back fail (see "The next slot").
      self.next.store(nullptr, std::memory_order_relaxed);
      if (self.next_streak < max_next_streak || self.queue.size_hint() == 0) {
        ++self.next_streak;
        return mine;
      }
      // The slot's actor has had its turn: queue it behind the others.
      push_queue(self, mine);
    }
  }
  self.next_streak = 0;
  // The owner takes from the top too: FIFO among the queued actors.
  if ((c = self.queue.steal()) != nullptr) return c;
  if ((c = take_injected(self)) != nullptr) return c;
  return steal(self);
}

bool scheduler::has_work_anywhere() const {
  // acquire: pairs with inject()'s release (see park() for why it suffices).
  if (injected_.load(std::memory_order_acquire) != nullptr) return true;
  // acquire: orders it like the above; the spill's cells are published by its mutex.
  if (spilled_.load(std::memory_order_acquire)) return true;
  for (const auto& w : workers_) {
    if (w->queue.size_hint() != 0) return true;
  }
  return false;
}

bool scheduler::others_running(const worker& self) const noexcept {
  for (const auto& w : workers_) {
    // relaxed: a hint that only chooses between a timed and an untimed sleep.
    if (w.get() != &self && w->activation.load(std::memory_order_relaxed) % 2 != 0) return true;
  }
  return false;
}

// --- searching and parking --------------------------------------------------------------

// The second phase of a search, after the spins: look again after each
// sched_yield() until the worker's yield budget runs out. A worker in this
// phase still counts as a searcher, so producers issue no wake-up system call
// for the work it finds, and the core goes to whichever thread has work,
// the producer first, on a machine with fewer cores than threads. The budget
// adapts: work that keeps arriving within it (a producer just slower than the
// workers, fork_join's main()) grows it until the worker stops parking between
// messages; an idle system shrinks it back, and the worker parks after a few
// microseconds.
bool scheduler::keep_yielding(worker& self) noexcept {
  const time_point now = std::chrono::steady_clock::now();
  if (self.yield_until == time_point{}) {
    self.yield_until = now + self.yield_budget;
    return true;
  }
  if (now < self.yield_until) return true;
  self.yield_budget = std::max(self.yield_budget / 2, std::chrono::nanoseconds(min_yield_budget));
  self.yield_until = time_point{};
  return false;
}

void scheduler::start_searching(worker& self) noexcept {
  if (self.searching) return;
  self.searching = true;
  // seq_cst: see park(); producers that read a non-zero count skip their notify.
  searching_.fetch_add(1, std::memory_order_seq_cst);
}

void scheduler::stop_searching(worker& self) noexcept {
  if (!self.searching) return;
  self.searching = false;
  // seq_cst: see park(). The last searcher to find work makes sure another
  // worker looks for the rest (Go's and Tokio's "last searcher wakes one").
  if (searching_.fetch_sub(1, std::memory_order_seq_cst) == 1 && has_work_anywhere()) wake_one(&self);
}

// The worker's half of the park protocol. In order: announce the wait to idle_
// (an RMW), stop counting as a searcher (an RMW on searching_), re-check every
// queue, sleep. A producer publishes its work, then reads searching_ with an
// RMW (wake_one()):
//   - if it reads this worker's count, this worker's later decrement reads the
//     producer's RMW or a later one, so it synchronizes with the producer and
//     the re-check sees the work;
//   - if it reads the decremented count (0), the announcement to idle_ came
//     before, so the producer's notify (idle_'s own RMW protocol) wakes this
//     worker, or its re-check already saw the work.
// Either way no work is left queued while every worker sleeps.
void scheduler::park(worker& self) {
  auto key = idle_.prepare_wait();
  const bool was_searching = self.searching;
  self.searching = false;
  // seq_cst: the decrement of the protocol above.
  if (was_searching) searching_.fetch_sub(1, std::memory_order_seq_cst);
  // acquire: pairs with the release in stop().
  if (has_work_anywhere() || stopping_.load(std::memory_order_acquire)) {
    idle_.cancel_wait();
    return;
  }
  // relaxed: a count for wait_idle(), which re-reads it under idle_mutex_.
  if (parked_.fetch_add(1, std::memory_order_relaxed) + 1 == workers_.size()) {
    troupe::mutex_lock lock(idle_mutex_);
    all_idle_.notify_all();
  }
  self.parks.add();
  // While others run actors, an actor may sit in one's next slot behind a long
  // handler (push_local() wakes nobody for it): look again every millisecond.
  // With nobody running, sleep long; push_local() wakes a long sleeper when a
  // slot fills, and the timeout covers the race where neither saw the other.
  const bool others = others_running(self);
  // relaxed: a hint for push_local() (see there).
  if (!others) long_sleepers_.fetch_add(1, std::memory_order_relaxed);
  if (!idle_.wait_for(key, others ? stranded_check_interval : idle_check_interval)) self.timed_wakeups.add();
  if (!others) long_sleepers_.fetch_sub(1, std::memory_order_relaxed);
  parked_.fetch_sub(1, std::memory_order_relaxed);
}

bool scheduler::wait_idle(std::chrono::steady_clock::time_point deadline) {
  troupe::mutex_lock lock(idle_mutex_);
  return all_idle_.wait_until(lock, deadline, [&] {
    // relaxed: the mutex orders this with the notifying worker.
    return parked_.load(std::memory_order_relaxed) == workers_.size() && !has_work_anywhere();
  });
}

void scheduler::run(worker& self) {
  current_scheduler = this;
  current_worker = &self;
  std::size_t spins = 0;
  // acquire: pairs with the release in stop().
  while (!stopping_.load(std::memory_order_acquire)) {
    cell* c = find_work(self);
    if (c == nullptr) {
      start_searching(self);
      ++self.spin_count;
      if (spins++ < idle_spins_) {
        cpu_relax();
        continue;
      }
      if (keep_yielding(self)) {
        std::this_thread::yield();
        continue;
      }
      spins = 0;
      park(self);
      continue;
    }
    if (self.yield_until != time_point{}) {
      // Work turned up while yielding: a park would have cost a wake-up.
      self.yield_budget = std::min(self.yield_budget * 2, std::chrono::nanoseconds(max_yield_budget));
      self.yield_until = time_point{};
    }
    spins = 0;
    stop_searching(self);
    self.activations.add();
    // relaxed: read by thieves, whose heavy fence orders it (see "The next slot").
    const std::uint64_t activation = self.activation.load(std::memory_order_relaxed);
    self.activation.store(activation + 1, std::memory_order_relaxed);  // odd: running
    const resume_result r = c->resume(max_throughput_);
    self.activation.store(activation + 2, std::memory_order_relaxed);  // even: between activations
    // The owner's half of the Dekker pair: the "ended" mark before the slot's next load.
    light_fence();
    switch (r) {
      case resume_result::again:
        // Throughput limit reached: back of this worker's queue (fairness).
        push_queue(self, c);
        break;
      case resume_result::idle:
      case resume_result::terminated:
        break;
    }
  }
  stop_searching(self);
  current_scheduler = nullptr;
  current_worker = nullptr;
}

}  // namespace troupe::detail
