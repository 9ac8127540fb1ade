// mailbox_bound: the capacity and overflow policy of a bounded mailbox, and the
// counters that enforce it. An unbounded mailbox (the default) has none, so its
// send path pays one null check.
//
//   troupe::mailbox_bound bound{1000, troupe::overflow_policy::reject};
//   switch (bound.admit([] { return true; })) { ... }   // producer, before pushing
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

#include "troupe/mailbox/cache_line.hpp"
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

  // Producer: may this message enter? `may_block()` is asked only when the
  // mailbox is full under the block policy (false on actor threads).
  //
  // The count is pushed_ - popped_: producers bump pushed_ (one RMW per send),
  // the consumer alone advances popped_ with a plain store (no RMW on the
  // receive path). A producer may read a stale popped_, which only makes the
  // mailbox look fuller: the capacity is never exceeded, a sender may be turned
  // away a moment early.
  template <class MayBlock>
  admission admit(MayBlock&& may_block) noexcept {
    for (;;) {
      // relaxed: a ticket counter; the message itself is published by the
      // mailbox push, and popped_ is only an estimate (see above).
      const std::int64_t ticket = pushed_.fetch_add(1, std::memory_order_relaxed);
      if (policy_ == overflow_policy::drop_oldest) return admission::admitted;
      if (ticket - popped_.load(std::memory_order_relaxed) < capacity_) return admission::admitted;
      // Full: give the ticket back.
      pushed_.fetch_sub(1, std::memory_order_relaxed);
      if (policy_ == overflow_policy::block && may_block()) {
        // acquire: pairs with the release in close(); a closed mailbox admits
        // (the push then fails and the sender learns the actor is gone).
        if (closed_.load(std::memory_order_acquire)) return admission::admitted;
        auto key = space_.prepare_wait();
        // Re-check after announcing (event_count protocol): a consumed() or
        // close() that raced with the announcement is either seen here or wakes us.
        if (size() < capacity_ || closed_.load(std::memory_order_acquire)) {
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
  void unadmit() noexcept {
    // relaxed: counter only.
    pushed_.fetch_sub(1, std::memory_order_relaxed);
    if (policy_ == overflow_policy::block) space_.notify_one();
  }

  // Consumer, when the actor ends: every sender waiting for room gives up.
  void close() noexcept {
    // release: pairs with the acquire loads in admit().
    closed_.store(true, std::memory_order_release);
    if (policy_ == overflow_policy::block) space_.notify_all();
  }

  // Consumer: a counted message left the mailbox.
  void consumed() noexcept {
    // relaxed, and a plain store: the consumer is popped_'s only writer.
    popped_.store(popped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (policy_ == overflow_policy::block) space_.notify_one();
  }

  // Consumer, drop_oldest only, right after consumed() for the message in hand
  // (the oldest): true if at least `capacity` newer messages wait behind it, so
  // the mailbox overflowed and this one must be dropped.
  [[nodiscard]] bool should_drop_oldest() const noexcept {
    return policy_ == overflow_policy::drop_oldest && size() >= capacity_;
  }
  void count_dropped() noexcept {
    // relaxed: statistics.
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }

  // Any thread: approximate.
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t size() const noexcept {
    // relaxed: an estimate (exact for the consumer when no send is in flight).
    return pushed_.load(std::memory_order_relaxed) - popped_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] overflow_policy policy() const noexcept { return policy_; }

 private:
  const std::int64_t capacity_;
  const overflow_policy policy_;
  // Written by producers / by the consumer: separate lines.
  alignas(cache_line) std::atomic<std::int64_t> pushed_{0};
  alignas(cache_line) std::atomic<std::int64_t> popped_{0};
  alignas(cache_line) std::atomic<std::uint64_t> dropped_{0};
  std::atomic<bool> closed_{false};
  event_count space_;  // block policy: senders waiting for room
};

static_assert(alignof(mailbox_bound) == cache_line, "mailbox_bound: counters on separate cache lines");

}  // namespace troupe
