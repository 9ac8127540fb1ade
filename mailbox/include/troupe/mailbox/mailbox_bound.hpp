// mailbox_bound: the capacity and overflow policy of a bounded mailbox, and the
// counters that enforce it. An unbounded mailbox (the default) has none, so its
// send path pays one null check.
//
//   troupe::mailbox_bound bound{1000, troupe::overflow_policy::reject};
//   switch (bound.admit(may_block)) { ... }      // producer, before pushing
//   bound.consumed();                             // consumer, per message taken out
//
// The count is of user messages in the mailbox (runtime messages — replies,
// exits, downs — are never counted or dropped). Producers reserve a slot with
// admit() before they push; the consumer releases it with consumed() when the
// message leaves (handled or discarded). drop_oldest never refuses: it admits
// and the consumer discards the oldest messages while the count exceeds the
// capacity (should_drop_oldest()).
//
// Thread safety: admit() from any producer thread; consumed(), take_excess() by
// the mailbox's consumer; dropped() and size() from any thread (approximate).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "troupe/mailbox/event_count.hpp"

namespace troupe {

enum class overflow_policy : std::uint8_t {
  drop_newest,  // a message that finds the mailbox full is dropped (counted; a request fails)
  drop_oldest,  // the oldest queued message is dropped to make room (counted; a request fails)
  reject,       // the send fails: tell() returns errc::mailbox_full, ask fails with it
  block,        // a sender that is not an actor waits for room; an actor sender is rejected
};

enum class admission : std::uint8_t { admitted, dropped, rejected };

class mailbox_bound {
 public:
  mailbox_bound(std::int64_t capacity, overflow_policy policy) noexcept
      : capacity_(capacity < 1 ? 1 : capacity), policy_(policy) {}
  mailbox_bound(const mailbox_bound&) = delete;
  mailbox_bound& operator=(const mailbox_bound&) = delete;

  // Producer: may this message enter? `may_block` is false on actor threads.
  admission admit(bool may_block) noexcept {
    if (policy_ == overflow_policy::drop_oldest) {
      // relaxed: a counter; the message itself is published by the mailbox push.
      size_.fetch_add(1, std::memory_order_relaxed);
      return admission::admitted;
    }
    for (;;) {
      // relaxed: reservation counter only; see above.
      std::int64_t current = size_.load(std::memory_order_relaxed);
      while (current < capacity_) {
        if (size_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed,
                                        std::memory_order_relaxed)) {
          return admission::admitted;
        }
      }
      if (policy_ == overflow_policy::block && may_block) {
        auto key = space_.prepare_wait();
        // Re-check after announcing (event_count protocol): a consumed() that
        // raced with the announcement is either seen here or wakes us.
        if (size_.load(std::memory_order_relaxed) < capacity_) {
          space_.cancel_wait();
        } else {
          space_.wait(key);
        }
        continue;
      }
      // relaxed: statistics.
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return policy_ == overflow_policy::drop_newest ? admission::dropped : admission::rejected;
    }
  }

  // Producer: an admitted message could not be pushed (the actor is gone).
  void unadmit() noexcept { consumed(); }

  // Consumer: a counted message left the mailbox.
  void consumed() noexcept {
    // relaxed: counter; blocked senders re-check it after the event_count handshake.
    size_.fetch_sub(1, std::memory_order_relaxed);
    if (policy_ == overflow_policy::block) space_.notify_one();
  }

  // Consumer, drop_oldest only, right after consumed() for the message in hand
  // (the oldest): true if at least `capacity` newer messages wait behind it, so
  // the mailbox overflowed and this one must be dropped.
  [[nodiscard]] bool should_drop_oldest() const noexcept {
    // relaxed: counter only.
    return policy_ == overflow_policy::drop_oldest && size_.load(std::memory_order_relaxed) >= capacity_;
  }
  void count_dropped() noexcept {
    // relaxed: statistics.
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }

  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] overflow_policy policy() const noexcept { return policy_; }

 private:
  const std::int64_t capacity_;
  const overflow_policy policy_;
  std::atomic<std::int64_t> size_{0};
  std::atomic<std::uint64_t> dropped_{0};
  event_count space_;  // block policy: senders waiting for room
};

}  // namespace troupe
