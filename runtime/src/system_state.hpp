// system_state: what a troupe::system owns — the executor (work-stealing
// scheduler or deterministic queue), the timer service, detached actors'
// threads, and the registry of live actors that shutdown walks.
//
// Thread safety: all members may be used from any thread unless noted.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "scheduler.hpp"
#include "timer_service.hpp"
#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/detail/cell.hpp"

namespace troupe::detail {

// Deterministic mode: runnable cells in a FIFO, run by the test's thread.
class manual_executor final : public executor {
 public:
  void schedule(cell* c) noexcept override { runnable_.push_back(c); }
  // Runs one message of the next runnable cell. False if none is runnable.
  bool step();
  [[nodiscard]] bool empty() const noexcept { return runnable_.empty(); }

 private:
  std::deque<cell*> runnable_;
};

// A detached actor's own thread.
class detached_executor final : public executor {
 public:
  detached_executor() = default;
  ~detached_executor();
  detached_executor(const detached_executor&) = delete;
  detached_executor& operator=(const detached_executor&) = delete;
  void schedule(cell* c) noexcept override;
  void join();
  // The actor ended and its thread is leaving: the executor can be reaped.
  [[nodiscard]] bool finished() const noexcept {
    // acquire: pairs with the release store at the end of run().
    return finished_.load(std::memory_order_acquire);
  }

 private:
  void run(cell* c);
  std::atomic<std::uint32_t> signal_{0};
  std::atomic<bool> launched_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

class system_state {
 public:
  explicit system_state(const config& cfg);
  ~system_state();

  // A fresh actor id: unique in this system, taken from a block of ids this
  // thread holds, so that threads spawning at once do not share a counter.
  [[nodiscard]] std::uint64_t next_actor_id() noexcept;

  // Live-actor registry.
  // Registers a new actor. Throws troupe_error(system_stopped) once shutdown has
  // begun (checked under its shard's lock, so no spawn slips past shutdown).
  void on_started(cell* c);
  void on_terminated(cell* c) noexcept;
  [[nodiscard]] std::size_t live() const noexcept;

  // Arms `asker`'s ask timer for `at` (cell::add_pending()); returns the timer's id.
  std::uint64_t arm_ask_sweep(cell* asker, std::chrono::steady_clock::time_point at);
  void cancel_timer(std::uint64_t id) noexcept;

  executor& scheduler_executor() noexcept;
  executor& new_detached_executor() TROUPE_EXCLUDES(detached_mutex_);

  void shutdown() TROUPE_EXCLUDES(shutdown_mutex_, detached_mutex_);
  bool step();
  std::size_t run_until_idle();

  config cfg;
  std::atomic<bool> refusing_spawns{false};
  std::shared_ptr<timer_service> timers;
  std::unique_ptr<scheduler> workers;       // threaded mode
  std::unique_ptr<manual_executor> manual;  // deterministic mode

 private:
  void stop_all_and_wait() TROUPE_EXCLUDES(empty_mutex_);

  // Ids: each thread takes a block of id_block ids at a time (next_actor_id()).
  static constexpr std::uint64_t id_block = 256;
  std::atomic<std::uint64_t> next_id_{1};
  const std::uint64_t serial_;  // tells this system's blocks from another's (same address, later)

  // The registry: lists threaded through the live cells (their registry_prev and
  // registry_next, which only code holding their shard's mutex touches). A cell
  // lives in the shard of its id's block, so one thread's spawns stay on one
  // shard and different threads' mostly on different ones: no global lock.
  static constexpr std::size_t registry_shards = 16;
  struct alignas(cache_line) registry_shard {
    troupe::mutex mutex;
    cell* head TROUPE_GUARDED_BY(mutex) = nullptr;
    bool closed TROUPE_GUARDED_BY(mutex) = false;  // shutdown took its snapshot: no more actors
    // Written under `mutex`, read without it (live()): a statistic there.
    std::atomic<std::size_t> live{0};
  };
  [[nodiscard]] registry_shard& shard_of(const cell* c) noexcept;
  std::array<registry_shard, registry_shards> registry_;
  // Shutdown waits on it for the last actors; a shard that empties while
  // closed notifies it.
  troupe::mutex empty_mutex_;
  std::condition_variable_any registry_empty_;
  troupe::mutex detached_mutex_;
  std::vector<std::unique_ptr<detached_executor>> detached_ TROUPE_GUARDED_BY(detached_mutex_);
  // Held for all of shutdown(): a second caller waits until the first is done.
  troupe::mutex shutdown_mutex_;
  bool shut_down_ TROUPE_GUARDED_BY(shutdown_mutex_) = false;
};

}  // namespace troupe::detail
