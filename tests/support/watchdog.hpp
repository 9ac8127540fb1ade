// watchdog: turns a hung concurrency test into a failed one.
//
// A lost wake-up or a livelock in a concurrent type shows up as a test that never
// ends; CTest's timeout would kill it with no hint of which test hung. A watchdog
// guards one test body: if the body has not finished by the deadline it prints the
// test's name and aborts the process (other threads may still be running on the
// test's stack, so continuing would be unsafe), which CTest reports as a failure.
//
//   TEST(mpsc_queue, ...) {
//     troupe::test_support::watchdog guard;   // 60 s unless told otherwise
//     ... start threads, join them ...
//   }
//
// Thread safety: construct and destroy on the test's thread. The deadline is a
// safety net, never a timing assertion: it is generous enough for sanitizer builds
// on a loaded two-core machine.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace troupe::test_support {

inline constexpr std::chrono::seconds default_watchdog_deadline{60};

class watchdog {
 public:
  explicit watchdog(std::chrono::steady_clock::duration deadline = default_watchdog_deadline)
      : name_(current_test_name()), thread_([this, deadline] { guard(deadline); }) {}

  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
    }
    finished_changed_.notify_one();
    thread_.join();
  }

 private:
  static std::string current_test_name() {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    if (info == nullptr) return "(outside a test)";
    return std::string(info->test_suite_name()) + "." + info->name();
  }

  void guard(std::chrono::steady_clock::duration deadline) {
    std::unique_lock lock(mutex_);
    if (finished_changed_.wait_for(lock, deadline, [this] { return finished_; })) return;
    std::fprintf(stderr,
                 "watchdog: %s did not finish within %lld ms; aborting (hang, lost wake-up "
                 "or livelock)\n",
                 name_.c_str(),
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline).count()));
    std::fflush(stderr);
    std::abort();
  }

  std::string name_;
  std::mutex mutex_;
  std::condition_variable finished_changed_;
  bool finished_ = false;  // guarded by mutex_
  std::thread thread_;     // last: starts after the fields it reads are built
};

}  // namespace troupe::test_support
