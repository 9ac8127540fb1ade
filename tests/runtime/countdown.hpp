// countdown: a counter that test threads (and actors) decrement and the test
// waits on with a deadline — docs/style.md's "wait on the event, not sleep".
//
//   troupe_test::countdown finished(3);
//   ... actors call finished.count_down() ...
//   ASSERT_TRUE(finished.wait_for(30s));
//
// Thread safety: every member from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace troupe_test {

class countdown {
 public:
  explicit countdown(std::size_t count) : count_(count) {}
  void count_down(std::size_t n = 1) {
    std::lock_guard lock(mutex_);
    count_ = n >= count_ ? 0 : count_ - n;
    if (count_ == 0) zero_.notify_all();
  }
  // True if the count reached zero before `timeout`.
  bool wait_for(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return zero_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }
  [[nodiscard]] std::size_t left() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable zero_;
  std::size_t count_;
};

}  // namespace troupe_test
