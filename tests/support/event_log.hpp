// event_log: lines a test's actors report (membership events, monitors' downs),
// and waits for them with deadlines.
//
//   troupe::test_support::event_log log;   // declared before the nodes: it must outlive their actors
//   ... an actor calls log.add("up b") ...
//   ASSERT_TRUE(log.wait_for("up b", 20s));
//
// Thread safety: every member from any thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace troupe::test_support {

class event_log {
 public:
  void add(std::string line) {
    std::lock_guard lock(mutex_);
    lines_.push_back(std::move(line));
    changed_.notify_all();  // under the lock: a waiter that saw its line may destroy the log
  }
  // Until `line` has been seen (at any time), or the timeout.
  bool wait_for(const std::string& line, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return std::find(lines_.begin(), lines_.end(), line) != lines_.end(); });
  }
  // Until `line` has been seen after the last `marker`, or the timeout.
  bool wait_for_after(const std::string& marker, const std::string& line,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      const auto from = std::find(lines_.rbegin(), lines_.rend(), marker);
      return from != lines_.rend() && std::find(lines_.rbegin(), from, line) != from;
    });
  }
  // Until `seen(lines)` is true, or the timeout.
  template <class Predicate>
  bool wait_until(Predicate seen, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return seen(lines_); });
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

}  // namespace troupe::test_support
