// mutex: std::mutex with the annotations clang's thread-safety analysis reads
// (thread_annotations.hpp), and mutex_lock, the scoped lock that the analysis
// understands. Use them for every mutex whose rule would otherwise be a comment
// ("under registry_mutex_"): the compiler then checks the rule.
//
//   troupe::mutex mutex_;
//   std::size_t live_ TROUPE_GUARDED_BY(mutex_) = 0;
//   std::condition_variable_any empty_;
//   troupe::mutex_lock lock(mutex_);
//   empty_.wait(lock, [&]() TROUPE_REQUIRES(mutex_) { return live_ == 0; });
//
// mutex_lock locks in its constructor and unlocks in its destructor, like
// std::unique_lock it can unlock() early and lock() again, and it works with any
// lock class annotated as a capability (a spin lock, see thread_annotations.hpp).
// To wait on a condition, use std::condition_variable_any with the mutex_lock:
// it unlocks and relocks it through lock()/unlock() (std::condition_variable
// takes only a std::unique_lock<std::mutex>). A predicate lambda that reads
// guarded fields is annotated TROUPE_REQUIRES(mutex_), as above.
//
// Thread safety: troupe::mutex as std::mutex. A mutex_lock belongs to the thread
// that made it.
#pragma once

#include <mutex>

#include "troupe/mailbox/thread_annotations.hpp"

namespace troupe {

class TROUPE_CAPABILITY("mutex") mutex {
 public:
  mutex() = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  ~mutex() = default;

  void lock() TROUPE_ACQUIRE() { mutex_.lock(); }
  void unlock() noexcept TROUPE_RELEASE() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

template <class Mutex>
class TROUPE_SCOPED_CAPABILITY mutex_lock {
 public:
  explicit mutex_lock(Mutex& m) TROUPE_ACQUIRE(m) : mutex_(m) { mutex_.lock(); }
  ~mutex_lock() TROUPE_RELEASE() {
    if (locked_) mutex_.unlock();
  }
  mutex_lock(const mutex_lock&) = delete;
  mutex_lock& operator=(const mutex_lock&) = delete;

  // Releases the lock before the end of the scope (e.g. to notify without it).
  void unlock() noexcept TROUPE_RELEASE() {
    locked_ = false;
    mutex_.unlock();
  }
  // Takes it again after unlock().
  void lock() TROUPE_ACQUIRE() {
    mutex_.lock();
    locked_ = true;
  }

 private:
  Mutex& mutex_;
  bool locked_ = true;
};

}  // namespace troupe
