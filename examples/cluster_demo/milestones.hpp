// milestones: what the coordinator's main thread waits for, posted by actors
// (the dispatcher, the node keepers' deploy, the supervisor's event hook).
// Every wait has a deadline; a predicate sees the whole record under the lock.
//
//   board.wait_until(deadline, [](const milestones::record& r) { return r.finished; });
//
// Thread safety: every member from any thread; the predicate runs under the
// lock, so it must not call back into the board.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace cluster_demo {

class milestones {
 public:
  using clock_type = std::chrono::steady_clock;

  struct deployment {
    pid_t pid = 0;
    std::uint64_t incarnation = 0;
    clock_type::time_point at;
  };
  struct record {
    // Worker labels that joined at least once.
    std::set<std::string> joined;
    // Label -> the time of every join (a restarted worker joins again).
    std::map<std::string, std::vector<clock_type::time_point>> joins;
    // Node slot ("shm-1") -> every start of its process.
    std::map<std::string, std::vector<deployment>> deployments;
    // The child ids the supervisor restarted, in order.
    std::vector<std::string> restarts;
    // The dispatcher has stopped producing and has every result.
    bool finished = false;
    // Set when the demo cannot go on (the supervisor gave up).
    std::string failure;
  };

  void update(const std::function<void(record&)>& change) {
    {
      std::lock_guard lock(mutex_);
      change(record_);
    }
    changed_.notify_all();
  }
  // True once `done(record)` holds; false at the deadline.
  bool wait_until(clock_type::time_point deadline, const std::function<bool(const record&)>& done) {
    std::unique_lock lock(mutex_);
    return changed_.wait_until(lock, deadline, [&] { return done(record_); });
  }
  [[nodiscard]] record snapshot() {
    std::lock_guard lock(mutex_);
    return record_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  record record_;
};

}  // namespace cluster_demo
