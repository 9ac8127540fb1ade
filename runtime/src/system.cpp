#include "troupe/runtime/system.hpp"

#include <cstdio>

#include "cpu_budget.hpp"
#include "system_state.hpp"
#include "troupe/mailbox/futex.hpp"

namespace troupe {
namespace detail {

namespace {
// An ask's deadline passed: fail it (in the asker's context) unless answered.
// An actor's ask timer fired (cell::add_pending()).
struct ask_sweep_envelope final : system_envelope {
  explicit ask_sweep_envelope(std::chrono::steady_clock::time_point when) : at(when) {}
  void run(cell& receiver) override { receiver.sweep_asks(at); }
  std::chrono::steady_clock::time_point at;  // when the timer was armed to fire
};
}  // namespace

bool manual_executor::step() {
  if (runnable_.empty()) return false;
  cell* c = runnable_.front();
  runnable_.pop_front();
  if (c->resume(1) == resume_result::again) runnable_.push_back(c);
  return true;
}

detached_executor::~detached_executor() { join(); }

void detached_executor::schedule(cell* c) noexcept {
  // acq_rel: exactly one schedule() launches the thread; later ones (from any
  // thread) see the flag and never touch thread_ while it is being assigned.
  if (!launched_.exchange(true, std::memory_order_acq_rel)) {
    // First schedule: the spawn itself, on the spawning thread.
    try {
      thread_ = std::thread([this, c] { run(c); });
    } catch (...) {
      std::fputs("troupe: cannot start a detached actor's thread\n", stderr);
      std::abort();
    }
    return;
  }
  // release: pairs with the acquire load in run(); the pushed message is visible
  // (the mailbox push already published it; this orders the wake-up).
  signal_.store(1, std::memory_order_release);
  futex_wake(signal_, 1);
}

void detached_executor::run(cell* c) {
  cell_ptr keep(c);  // the cell must outlive this loop even after it terminates
  for (;;) {
    const resume_result r = c->resume(SIZE_MAX);
    if (r == resume_result::terminated) {
      // release: pairs with the acquire in finished(); nothing here is touched after.
      finished_.store(true, std::memory_order_release);
      return;
    }
    if (r == resume_result::again) continue;
    // acquire: pairs with the release store in schedule().
    while (signal_.load(std::memory_order_acquire) == 0) futex_wait(signal_, 0);
    // relaxed: only this thread resets it; the next schedule() happens after the
    // next successful try_block(), which is after this store.
    signal_.store(0, std::memory_order_relaxed);
  }
}

void detached_executor::join() {
  if (thread_.joinable()) thread_.join();
}

namespace {
// Systems made so far: each system's id blocks are tagged with its number.
std::atomic<std::uint64_t> systems_made{0};

struct id_range {
  std::uint64_t system = 0;  // serial of the system the range belongs to (0: none)
  std::uint64_t next = 0;
  std::uint64_t end = 0;
};
thread_local id_range thread_ids;
}  // namespace

system_state::system_state(const config& c)
    // relaxed: serials only need to differ.
    : cfg(c), serial_(systems_made.fetch_add(1, std::memory_order_relaxed) + 1) {
  if (cfg.deterministic_mode) {
    cfg.max_throughput = 1;
    manual = std::make_unique<manual_executor>();
  } else {
    std::size_t n = cfg.worker_threads;
    if (n == 0) n = cpu_budget();  // the affinity mask and the cgroup CPU quota, not just the host's CPUs
    cfg.worker_threads = n;
    workers = std::make_unique<scheduler>(n, cfg.max_throughput, cfg.idle_spins);
  }
  timers = std::make_shared<timer_service>(cfg.deterministic_mode);
}

system_state::~system_state() { shutdown(); }

std::uint64_t system_state::next_actor_id() noexcept {
  id_range& ids = thread_ids;
  if (ids.system != serial_ || ids.next == ids.end) {
    // relaxed: ids only need to be unique; the RMW hands out disjoint blocks.
    const std::uint64_t first = next_id_.fetch_add(id_block, std::memory_order_relaxed);
    ids = id_range{serial_, first, first + id_block};
  }
  return ids.next++;
}

system_state::registry_shard& system_state::shard_of(const cell* c) noexcept {
  return registry_[(c->id() / id_block) % registry_shards];
}

void system_state::on_started(cell* c) {
  registry_shard& shard = shard_of(c);
  troupe::mutex_lock lock(shard.mutex);
  if (shard.closed) {
    throw troupe_error(error(errc::system_stopped, "spawn while the system is shutting down"));
  }
  c->registry_next = shard.head;
  c->registry_prev = nullptr;
  if (shard.head != nullptr) shard.head->registry_prev = c;
  shard.head = c;
  // relaxed: written under the shard's mutex; live() only sums.
  shard.live.store(shard.live.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void system_state::on_terminated(cell* c) noexcept {
  registry_shard& shard = shard_of(c);
  bool emptied_while_closed = false;
  {
    troupe::mutex_lock lock(shard.mutex);
    // Scoped inboxes are cells that were never registered (nor owned) by the system.
    if (shard.head != c && c->registry_prev == nullptr) return;
    if (c->registry_prev != nullptr) c->registry_prev->registry_next = c->registry_next;
    if (c->registry_next != nullptr) c->registry_next->registry_prev = c->registry_prev;
    if (shard.head == c) shard.head = c->registry_next;
    c->registry_prev = c->registry_next = nullptr;
    // relaxed: as in on_started().
    const std::size_t left = shard.live.load(std::memory_order_relaxed) - 1;
    shard.live.store(left, std::memory_order_relaxed);
    emptied_while_closed = left == 0 && shard.closed;
  }
  if (emptied_while_closed) {
    // Under empty_mutex_: stop_all_and_wait() checks the counts under it, so
    // this notify cannot fall between its check and its wait.
    troupe::mutex_lock lock(empty_mutex_);
    registry_empty_.notify_all();
  }
  c->release();  // the reference the system held while the actor was alive
}

std::size_t system_state::live() const noexcept {
  std::size_t n = 0;
  // relaxed: a count at some moment of each shard, not a consistent cut.
  for (const registry_shard& shard : registry_) n += shard.live.load(std::memory_order_relaxed);
  return n;
}

std::uint64_t system_state::arm_ask_sweep(cell* asker, std::chrono::steady_clock::time_point at) {
  return timers->schedule(at - timers->now(), std::chrono::nanoseconds::zero(), [target = cell_ptr(asker), at] {
    (void)target->enqueue(new ask_sweep_envelope(at));
    return true;
  });
}

void system_state::cancel_timer(std::uint64_t id) noexcept {
  try {
    timers->cancel(id);
  } catch (...) {
  }
}

executor& system_state::scheduler_executor() noexcept {
  if (manual) return *manual;
  return *workers;
}

executor& system_state::new_detached_executor() {
  troupe::mutex_lock lock(detached_mutex_);
  // Reap the threads of detached actors that have ended (they are leaving
  // already, so the joins are short), so that many short-lived detached actors
  // do not pile up unjoined threads (and their stacks) until shutdown.
  std::erase_if(detached_, [](const std::unique_ptr<detached_executor>& d) { return d->finished(); });
  detached_.push_back(std::make_unique<detached_executor>());
  return *detached_.back();
}

bool system_state::step() { return manual && manual->step(); }

std::size_t system_state::run_until_idle() {
  std::size_t steps = 0;
  while (step()) ++steps;
  return steps;
}

void system_state::stop_all_and_wait() {
  std::vector<cell_ptr> alive;
  for (registry_shard& shard : registry_) {
    troupe::mutex_lock lock(shard.mutex);
    shard.closed = true;  // from here on on_started() refuses: the snapshot is complete
    for (cell* c = shard.head; c != nullptr; c = c->registry_next) alive.emplace_back(c);
  }
  for (auto& c : alive) c->request_stop(exit_reason::kind::shutdown);
  alive.clear();
  if (manual) {
    run_until_idle();
    return;
  }
  troupe::mutex_lock lock(empty_mutex_);
  // The counts are read under empty_mutex_, which on_terminated() takes to notify
  // after a shard empties: no wake-up is lost.
  registry_empty_.wait(lock, [&] { return live() == 0; });
}

void system_state::shutdown() {
  troupe::mutex_lock guard(shutdown_mutex_);
  if (shut_down_) return;
  shut_down_ = true;
  // release: pairs with the acquire in system::check_spawn_allowed().
  refusing_spawns.store(true, std::memory_order_release);
  timers->stop();
  const auto deadline = std::chrono::steady_clock::now() + cfg.shutdown_grace;
  if (manual) {
    // Let the actors finish what is queued, within a bounded number of steps.
    for (std::size_t i = 0; i < 1'000'000 && manual->step(); ++i) {
    }
  } else {
    workers->wait_idle(deadline);
  }
  stop_all_and_wait();
  if (workers) workers->stop();
  troupe::mutex_lock lock(detached_mutex_);
  for (auto& d : detached_) d->join();
}

bool drive_until(troupe::system& sys, const std::function<bool()>& done,
                 std::chrono::steady_clock::time_point deadline) {
  system_state& s = sys.state();
  for (;;) {
    if (done()) return true;
    if (s.step()) continue;
    auto next = s.timers->next_deadline();
    if (next && *next <= deadline) {
      s.timers->advance_to(*next);
      continue;
    }
    if (deadline > s.timers->now()) s.timers->advance_to(deadline);
    return done();
  }
}

void close_unregistered(cell& c) noexcept {
  c.request_stop(exit_reason::kind::shutdown);
  (void)c.resume(SIZE_MAX);
}

std::chrono::steady_clock::time_point system_now(const troupe::system& sys) noexcept { return sys.now(); }

timer call_after(troupe::system& sys, std::chrono::nanoseconds delay, std::function<void()> fire) {
  const std::shared_ptr<timer_service>& timers = sys.state().timers;
  const std::uint64_t id = timers->schedule(delay, std::chrono::nanoseconds::zero(), [fire = std::move(fire)] {
    fire();
    return false;
  });
  return {timers, id};
}

bool is_deterministic(const troupe::system& sys) noexcept {
  return const_cast<troupe::system&>(sys).state().manual != nullptr;
}

}  // namespace detail

bool timer::cancel() noexcept {
  if (id_ == 0) return false;
  auto service = service_.lock();
  if (!service) return false;
  try {
    return service->cancel(id_);
  } catch (...) {
    return false;
  }
}

system::system(troupe::config cfg) : state_(std::make_unique<detail::system_state>(cfg)) {}

system::~system() { shutdown(); }

void system::shutdown() { state_->shutdown(); }

const config& system::config() const noexcept { return state_->cfg; }

std::size_t system::worker_count() const noexcept { return state_->workers ? state_->workers->worker_count() : 0; }

std::vector<worker_stats> system::scheduler_stats() const {
  return state_->workers ? state_->workers->stats() : std::vector<worker_stats>{};
}

std::size_t system::live_actors() const noexcept { return state_->live(); }

std::size_t system::pending_timers() const { return state_->timers->pending(); }

void system::check_spawn_allowed() const {
  // acquire: pairs with the release in shutdown().
  if (state_->refusing_spawns.load(std::memory_order_acquire)) {
    throw troupe_error(error(errc::system_stopped, "spawn after the system began shutting down"));
  }
}

detail::executor& system::scheduler_executor() noexcept { return state_->scheduler_executor(); }

detail::executor& system::make_detached_executor() {
  if (state_->manual) {
    throw troupe_error(error(errc::would_block, "detached actors are not available in deterministic mode"));
  }
  return state_->new_detached_executor();
}

void detail::start_cell(troupe::system& sys, cell* c) {
  try {
    sys.state().on_started(c);
  } catch (...) {
    c->release();  // the reference the system would have held; the actor never ran
    throw;
  }
  c->exec().schedule(c);
}

void system::start(detail::cell* c) { detail::start_cell(*this, c); }

detail::executor& detail::scheduler_of(troupe::system& sys) noexcept { return sys.scheduler_executor(); }

timer system::schedule_timer(std::chrono::nanoseconds delay, std::chrono::nanoseconds period,
                             std::function<bool()> fire) {
  const std::uint64_t id = state_->timers->schedule(delay, period, std::move(fire));
  return timer(state_->timers, id);
}

bool system::step() { return state_->step(); }

std::size_t system::run_until_idle() { return state_->run_until_idle(); }

void system::advance_time(std::chrono::nanoseconds by) {
  if (!state_->manual) {
    throw troupe_error(error(errc::would_block, "advance_time() is only available in deterministic mode"));
  }
  detail::timer_service& timers = *state_->timers;
  const auto target = timers.now() + by;
  // One deadline at a time: fire what is due then, and let the actors it woke
  // (and any other runnable actor) run before the clock moves on.
  while (auto next = timers.next_deadline()) {
    if (*next > target) break;
    timers.advance_to(*next);
    state_->run_until_idle();
  }
  timers.advance_to(target);
  state_->run_until_idle();
}

std::chrono::steady_clock::time_point system::now() const noexcept { return state_->timers->now(); }

}  // namespace troupe
