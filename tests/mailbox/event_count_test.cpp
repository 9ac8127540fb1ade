// Tests for troupe/mailbox/event_count.hpp: the prepare_wait / re-check / wait
// protocol never loses a wake-up, a notify happens-before the end of the wait it
// ends, and wait_for gives up when nobody notifies.
#include "troupe/mailbox/event_count.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::event_count;
using troupe::test_support::watchdog;

// ---------------------------------------------------------------------------
// Single-threaded, exact.

TEST(event_count, wait_for_times_out_and_returns_false_when_nobody_notifies) {
  event_count events;
  const event_count::key key = events.prepare_wait();
  EXPECT_TRUE(events.has_waiters());
  // Waiting out a short timeout is the behaviour under test, not a sleep for sync.
  EXPECT_FALSE(events.wait_for(key, 20ms));
  EXPECT_FALSE(events.has_waiters()) << "a timed-out waiter no longer counts";
}

TEST(event_count, a_notify_between_prepare_wait_and_wait_is_not_lost) {
  event_count events;
  const event_count::key key = events.prepare_wait();
  events.notify_one();
  EXPECT_TRUE(events.wait_for(key, 60s)) << "returns at once: the epoch already moved";
  EXPECT_FALSE(events.has_waiters());

  const event_count::key second = events.prepare_wait();
  events.notify_all();
  events.wait(second);  // must not block
  EXPECT_FALSE(events.has_waiters());
}

TEST(event_count, a_notify_before_prepare_wait_does_not_satisfy_a_later_wait) {
  event_count events;
  events.notify_one();  // nobody waits: a no-op
  const event_count::key key = events.prepare_wait();
  EXPECT_FALSE(events.wait_for(key, 20ms));
}

TEST(event_count, cancel_wait_withdraws_the_waiter) {
  event_count events;
  const event_count::key key = events.prepare_wait();
  (void)key;
  events.cancel_wait();
  EXPECT_FALSE(events.has_waiters());
}

// ---------------------------------------------------------------------------
// Multi-threaded.

TEST(event_count, a_parked_waiter_is_woken_by_notify_one_after_the_condition_is_published) {
  watchdog guard;
  event_count events;
  // acquire/release: the usual way to publish a condition before notifying.
  std::atomic<bool> ready{false};
  bool saw_ready = false;

  std::thread waiter([&] {
    // acquire: pairs with the release store of ready.
    while (!ready.load(std::memory_order_acquire)) {
      const event_count::key key = events.prepare_wait();
      // acquire: as above; the re-check after announcing ourselves.
      if (ready.load(std::memory_order_acquire)) {
        events.cancel_wait();
        break;
      }
      events.wait(key);
    }
    // relaxed: the loop above already acquired it.
    saw_ready = ready.load(std::memory_order_relaxed);
  });

  // Wait (on the event, with a deadline) until the waiter has announced itself,
  // so that the notify below usually has someone to wake.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!events.has_waiters() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(events.has_waiters()) << "the waiter never called prepare_wait()";
  // release: pairs with the waiter's acquire loads.
  ready.store(true, std::memory_order_release);
  events.notify_one();
  waiter.join();
  EXPECT_TRUE(saw_ready);
}

// The waiter skips the re-check (legal here: the notify is known to come after
// prepare_wait), so the only thing ordering `payload` is the event_count itself:
// ThreadSanitizer checks "a notify happens-before the end of the wait it ends".
TEST(event_count, what_the_notifier_wrote_before_notifying_is_visible_after_wait) {
  watchdog guard;
  event_count events;
  int payload = 0;  // plain data on purpose
  int seen = -1;

  std::thread waiter([&] {
    const event_count::key key = events.prepare_wait();
    events.wait(key);
    seen = payload;
  });

  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!events.has_waiters() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_TRUE(events.has_waiters()) << "the waiter never called prepare_wait()";
  payload = 42;
  events.notify_one();
  waiter.join();
  EXPECT_EQ(seen, 42);
}

// Two producers publish items by bumping a counter; two consumers claim them and
// park on the event_count when there is nothing to claim. A lost wake-up leaves a
// consumer asleep with items unclaimed and the watchdog fires.
TEST(event_count, many_hand_offs_between_producers_and_parking_consumers_lose_no_wake_up) {
  watchdog guard;
  constexpr std::uint64_t items = 100'000;
  constexpr int producers_count = 2;
  constexpr int consumers_count = 2;
  event_count events;
  // release (producers) / acquire (consumers): publishing an item.
  std::atomic<std::uint64_t> published{0};
  // acq_rel CAS: consumers race to claim the next published item.
  std::atomic<std::uint64_t> claimed{0};
  std::vector<std::uint64_t> claimed_by(consumers_count, 0);

  // Claims one item if one is published and unclaimed. Sets `all_done` when
  // every item has been claimed.
  auto try_claim = [&](bool& all_done) {
    // relaxed: the CAS below re-reads it.
    std::uint64_t next = claimed.load(std::memory_order_relaxed);
    for (;;) {
      if (next == items) {
        all_done = true;
        return false;
      }
      // acquire: pairs with the producers' release increments.
      if (next >= published.load(std::memory_order_acquire)) return false;
      // acq_rel: claims are totally ordered; relaxed on failure (just retry).
      if (claimed.compare_exchange_weak(next, next + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        if (next + 1 == items) all_done = true;
        return true;
      }
    }
  };

  std::vector<std::thread> consumers;
  for (int c = 0; c < consumers_count; ++c) {
    consumers.emplace_back([&, c] {
      bool all_done = false;
      while (!all_done) {
        if (try_claim(all_done)) {
          ++claimed_by[static_cast<std::size_t>(c)];
          continue;
        }
        if (all_done) break;
        const event_count::key key = events.prepare_wait();
        if (try_claim(all_done)) {  // the re-check after announcing ourselves
          events.cancel_wait();
          ++claimed_by[static_cast<std::size_t>(c)];
          continue;
        }
        if (all_done) {
          events.cancel_wait();
          break;
        }
        events.wait(key);
      }
      // Whoever sees the end wakes the other consumers, who may be parked.
      events.notify_all();
    });
  }

  std::vector<std::thread> producers;
  for (int p = 0; p < producers_count; ++p) {
    producers.emplace_back([&] {
      for (std::uint64_t i = 0; i < items / producers_count; ++i) {
        // release: pairs with the consumers' acquire loads.
        published.fetch_add(1, std::memory_order_release);
        events.notify_one();
      }
    });
  }
  for (std::thread& t : producers) t.join();
  for (std::thread& t : consumers) t.join();

  std::uint64_t total = 0;
  for (std::uint64_t n : claimed_by) total += n;
  EXPECT_EQ(total, items);
  EXPECT_EQ(claimed.load(std::memory_order_relaxed), items);
  EXPECT_FALSE(events.has_waiters());
}

// One item in flight: each side parks until the other has moved, so nearly every
// hand-off goes through a park and a wake.
TEST(event_count, a_ping_pong_where_each_side_parks_on_every_turn_completes) {
  watchdog guard;
  constexpr std::uint32_t turns = 50'000;
  event_count events;
  // Odd: the ball is with the responder; even: with the initiator.
  // release on every store / acquire on every load: each turn publishes the last.
  std::atomic<std::uint32_t> ball{0};

  auto await_value = [&](std::uint32_t wanted) {
    // acquire: pairs with the other side's release store.
    while (ball.load(std::memory_order_acquire) != wanted) {
      const event_count::key key = events.prepare_wait();
      if (ball.load(std::memory_order_acquire) == wanted) {
        events.cancel_wait();
        return;
      }
      events.wait(key);
    }
  };

  std::thread responder([&] {
    for (std::uint32_t turn = 0; turn < turns; ++turn) {
      await_value(2 * turn + 1);
      // release: publishes the turn to the initiator.
      ball.store(2 * turn + 2, std::memory_order_release);
      events.notify_one();  // only the other side can be parked
    }
  });
  for (std::uint32_t turn = 0; turn < turns; ++turn) {
    await_value(2 * turn);
    // release: publishes the turn to the responder.
    ball.store(2 * turn + 1, std::memory_order_release);
    events.notify_one();  // only the other side can be parked
  }
  await_value(2 * turns);
  responder.join();
  EXPECT_EQ(ball.load(std::memory_order_relaxed), 2 * turns);
}

}  // namespace
