// write_lock: the writers' lock of a shared-memory connection. Owns: that lock.
// May use: mailbox/ (cpu_relax).
#pragma once

#include <atomic>
#include <thread>

#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/thread_annotations.hpp"

namespace troupe::detail {

// The writers' lock of a connection: a test-and-set lock whose unlock is a plain
// release store. A std::mutex unlock is a locked instruction — a full fence
// that waits for the record just copied into the ring to leave the store
// buffer (perf: 15% of a cross-process ping-pong); here that wait overlaps
// with whatever the sender does next. Critical sections are short (a ring
// write or a queue append): a contender spins a little, then yields its core.
// A capability for clang's analysis: fields it guards are TROUPE_GUARDED_BY it,
// and troupe::mutex_lock is its scoped lock.
class TROUPE_CAPABILITY("mutex") write_lock {
 public:
  void lock() noexcept TROUPE_ACQUIRE() {
    for (int attempt = 0;; ++attempt) {
      // acquire: pairs with the release in unlock(); the previous writer's ring
      // writes and queue changes are visible.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // relaxed: only a hint of when to retry the exchange.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++attempt < 100) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept TROUPE_RELEASE() {
    // release: publishes the critical section to the next lock().
    locked_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace troupe::detail
