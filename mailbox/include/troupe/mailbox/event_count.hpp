// event_count: lets threads sleep until "something may have changed" without
// losing a wake-up, for a condition that lives elsewhere (lock-free queues).
// Idle scheduler workers park on it; producers notify after publishing work.
//
//   auto key = ec.prepare_wait();             // waiter: announce intent
//   if (work_available()) ec.cancel_wait();   //         re-check the condition
//   else ec.wait(key);                        //         sleep until notified
//   publish_work(); ec.notify_one();          // notifier
//
// The waiter's announcement (an RMW on waiters_) and the notifier's check (an RMW
// on waiters_ too) are totally ordered: either the notifier sees the waiter and
// bumps the epoch, or the waiter's re-check sees the published work. Using RMWs
// rather than a seq_cst fence keeps this visible to ThreadSanitizer.
//
// Thread safety: all functions from any thread. Each prepare_wait() is followed by
// exactly one cancel_wait() or wait() on the same thread. notify_* calls
// synchronise-with the wait() they end: what the notifier wrote before notifying is
// visible after wait() returns.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/futex.hpp"

namespace troupe {

class event_count {
 public:
  using key = std::uint32_t;

  [[nodiscard]] key prepare_wait() noexcept {
    // seq_cst RMW: ordered against the RMW in notify_*(); see the header comment.
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    // acquire: pairs with the release increment in notify_*().
    return epoch_.load(std::memory_order_acquire);
  }

  void cancel_wait() noexcept {
    // relaxed: only a count; a notifier that still sees us merely wakes no one.
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Sleeps until the epoch moves past `k` (a notify after prepare_wait()).
  void wait(key k) noexcept {
    // acquire: pairs with the release increment in notify_*().
    while (epoch_.load(std::memory_order_acquire) == k) futex_wait(epoch_, k);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
  }

  // As wait(), but returns false if `timeout` passes first.
  bool wait_for(key k, std::chrono::nanoseconds timeout) noexcept {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool notified = true;
    // acquire: pairs with the release increment in notify_*().
    while (epoch_.load(std::memory_order_acquire) == k) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) {
        notified = false;
        break;
      }
      futex_wait_for(epoch_, k, left);
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return notified;
  }

  // Wakes one waiter if there is one. Cheap when nobody waits (one RMW).
  // True if somebody was waiting (and a wake-up was issued).
  bool notify_one() noexcept { return notify(1); }
  bool notify_all() noexcept { return notify(INT32_MAX); }

  // Any thread, as a hint: is anybody between prepare_wait() and the end of wait()?
  [[nodiscard]] bool has_waiters() const noexcept {
    // relaxed: heuristic only.
    return waiters_.load(std::memory_order_relaxed) != 0;
  }

 private:
  bool notify(int count) noexcept {
    // seq_cst RMW (adding zero): reads the latest waiters_ in the total order of
    // RMWs on it, pairing with prepare_wait(); a plain load could read a stale 0.
    if (waiters_.fetch_add(0, std::memory_order_seq_cst) == 0) return false;
    // release: pairs with the acquire loads of epoch_ in prepare_wait()/wait().
    epoch_.fetch_add(1, std::memory_order_release);
    futex_wake(epoch_, count);
    return true;
  }

  // Waiters write waiters_ and read epoch_, notifiers the reverse: separate lines.
  alignas(cache_line) std::atomic<std::uint32_t> waiters_{0};
  alignas(cache_line) std::atomic<std::uint32_t> epoch_{0};
};

static_assert(alignof(event_count) == cache_line && sizeof(event_count) == 2 * cache_line,
              "event_count: waiters_ and epoch_ must sit on separate cache lines");

}  // namespace troupe
