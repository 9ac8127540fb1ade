// timer_service: one thread (or, in deterministic mode, a virtual clock advanced
// by the test) that runs callbacks at deadlines. Used for send_after/send_every
// and for ask timeouts.
//
// Thread safety: schedule() and cancel() from any thread. A cancel() that returns
// true guarantees the callback will not start afterwards, and waits for a run of
// it that is in progress on the timer thread (unless called from that callback).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>

#include "troupe/mailbox/mutex.hpp"

namespace troupe::detail {

class timer_service {
 public:
  using clock = std::chrono::steady_clock;

  explicit timer_service(bool virtual_clock);
  ~timer_service();
  timer_service(const timer_service&) = delete;
  timer_service& operator=(const timer_service&) = delete;

  // Runs `fire` at now()+delay, then every `period` if period > 0 for as long as
  // it returns true (a periodic send stops when its receiver is gone). Returns an id > 0.
  std::uint64_t schedule(std::chrono::nanoseconds delay, std::chrono::nanoseconds period, std::function<bool()> fire)
      TROUPE_EXCLUDES(mutex_);
  // True if the timer was pending (it will not fire again).
  bool cancel(std::uint64_t id) TROUPE_EXCLUDES(mutex_);
  // Cancels everything and stops the thread. Idempotent.
  void stop() TROUPE_EXCLUDES(mutex_);

  [[nodiscard]] clock::time_point now() const TROUPE_EXCLUDES(mutex_);
  // Virtual clock only: the earliest deadline, if any.
  [[nodiscard]] std::optional<clock::time_point> next_deadline() const TROUPE_EXCLUDES(mutex_);
  // Virtual clock only: moves the clock to `to`, firing due timers in order.
  void advance_to(clock::time_point to) TROUPE_EXCLUDES(mutex_);
  [[nodiscard]] std::size_t pending() const TROUPE_EXCLUDES(mutex_);

 private:
  struct entry {
    std::chrono::nanoseconds period;
    std::function<bool()> fire;
  };
  using key = std::pair<clock::time_point, std::uint64_t>;

  void run() TROUPE_EXCLUDES(mutex_);
  // Pops the earliest entry due at or before `limit`. Sets firing_.
  std::optional<std::pair<key, entry>> pop_due(clock::time_point limit) TROUPE_REQUIRES(mutex_);
  // After a callback ran: re-arm a periodic timer unless cancelled meanwhile.
  void finish_firing(const key& k, entry e, bool keep) TROUPE_EXCLUDES(mutex_);
  // Runs a callback; an exception counts as "stop" and never reaches the timer thread.
  static bool run_callback(entry& e) noexcept;

  const bool virtual_;
  mutable troupe::mutex mutex_;
  std::condition_variable_any changed_;  // new earliest deadline, or stop
  std::condition_variable_any fired_;    // a callback finished (for cancel's wait)
  std::map<key, entry> by_deadline_ TROUPE_GUARDED_BY(mutex_);
  std::unordered_map<std::uint64_t, clock::time_point> deadline_of_ TROUPE_GUARDED_BY(mutex_);
  std::uint64_t next_id_ TROUPE_GUARDED_BY(mutex_) = 1;
  std::uint64_t firing_ TROUPE_GUARDED_BY(mutex_) = 0;  // id whose callback is running, 0 if none
  bool firing_cancelled_ TROUPE_GUARDED_BY(mutex_) = false;
  std::thread::id firing_thread_ TROUPE_GUARDED_BY(mutex_){};
  bool stopped_ TROUPE_GUARDED_BY(mutex_) = false;
  clock::time_point virtual_now_ TROUPE_GUARDED_BY(mutex_){};
  std::thread thread_;  // the constructor starts it, stop() joins it
};

}  // namespace troupe::detail
