// Tests for troupe/mailbox/mpsc_queue.hpp: exact single-threaded behaviour of the
// open / blocked / closed states, then stress runs of the actor protocol that check
// exactly-once delivery, per-producer FIFO, one scheduling per block (no double
// scheduling, no lost wake-up) and that close() loses or duplicates nothing.
#include "troupe/mailbox/mpsc_queue.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "support/watchdog.hpp"

namespace {

using troupe::mpsc_queue;
using troupe::push_result;
using troupe::test_support::watchdog;

struct message : troupe::mpsc_node {
  message() = default;
  message(int producer_id, int sequence_number) : producer(producer_id), sequence(sequence_number) {}
  int producer = 0;
  int sequence = 0;
};

// Sizes keep each stress test within a few seconds under TSan on two cores.
constexpr int stress_producers = 4;
constexpr int stress_messages_per_producer = 50'000;

// ---------------------------------------------------------------------------
// Single-threaded, exact.

TEST(mpsc_queue, a_new_queue_is_empty_open_and_not_blocked) {
  mpsc_queue<message> queue;
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_FALSE(queue.blocked());
  EXPECT_FALSE(queue.closed());
}

TEST(mpsc_queue, pops_messages_in_the_order_they_were_pushed) {
  mpsc_queue<message> queue;
  std::vector<message> messages(5);
  for (int i = 0; i < 5; ++i) {
    messages[i].sequence = i;
    EXPECT_EQ(queue.push(&messages[i]), push_result::ok);
  }
  EXPECT_FALSE(queue.empty());
  for (int i = 0; i < 5; ++i) {
    message* popped = queue.pop();
    ASSERT_NE(popped, nullptr);
    EXPECT_EQ(popped->sequence, i);
    EXPECT_EQ(popped->next, nullptr) << "pop() hands out an unlinked node";
  }
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_TRUE(queue.empty());
}

TEST(mpsc_queue, keeps_fifo_order_across_batches_pushed_between_pops) {
  mpsc_queue<message> queue;
  std::vector<message> messages(6);
  for (int i = 0; i < 6; ++i) messages[i].sequence = i;
  ASSERT_EQ(queue.push(&messages[0]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[1]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[2]), push_result::ok);
  ASSERT_EQ(queue.pop()->sequence, 0);  // takes the batch 0..2 into the cache
  ASSERT_EQ(queue.push(&messages[3]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[4]), push_result::ok);
  ASSERT_EQ(queue.pop()->sequence, 1);
  ASSERT_EQ(queue.pop()->sequence, 2);
  ASSERT_EQ(queue.push(&messages[5]), push_result::ok);
  ASSERT_EQ(queue.pop()->sequence, 3);
  ASSERT_EQ(queue.pop()->sequence, 4);
  ASSERT_EQ(queue.pop()->sequence, 5);
  EXPECT_EQ(queue.pop(), nullptr);
}

TEST(mpsc_queue, try_block_succeeds_on_an_empty_queue_and_marks_it_blocked) {
  mpsc_queue<message> queue;
  EXPECT_TRUE(queue.try_block());
  EXPECT_TRUE(queue.blocked());
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.pop(), nullptr) << "popping a blocked empty queue finds nothing";
  EXPECT_TRUE(queue.blocked()) << "an empty pop leaves the blocked state alone";
}

TEST(mpsc_queue, only_the_first_push_after_try_block_reports_became_nonempty) {
  mpsc_queue<message> queue;
  std::vector<message> messages(3);
  ASSERT_TRUE(queue.try_block());
  EXPECT_EQ(queue.push(&messages[0]), push_result::became_nonempty);
  EXPECT_FALSE(queue.blocked());
  EXPECT_EQ(queue.push(&messages[1]), push_result::ok);
  EXPECT_EQ(queue.push(&messages[2]), push_result::ok);
  EXPECT_EQ(queue.pop(), &messages[0]);
  EXPECT_EQ(queue.pop(), &messages[1]);
  EXPECT_EQ(queue.pop(), &messages[2]);
}

TEST(mpsc_queue, each_successful_try_block_arms_exactly_one_became_nonempty) {
  mpsc_queue<message> queue;
  std::vector<message> messages(4);
  for (std::size_t round = 0; round < 2; ++round) {
    ASSERT_TRUE(queue.try_block());
    EXPECT_EQ(queue.push(&messages[2 * round]), push_result::became_nonempty);
    EXPECT_EQ(queue.push(&messages[2 * round + 1]), push_result::ok);
    EXPECT_EQ(queue.pop(), &messages[2 * round]);
    EXPECT_EQ(queue.pop(), &messages[2 * round + 1]);
  }
}

TEST(mpsc_queue, try_block_on_an_already_blocked_queue_succeeds_and_still_arms_one_wake_up) {
  mpsc_queue<message> queue;
  std::vector<message> messages(2);
  ASSERT_TRUE(queue.try_block());
  EXPECT_TRUE(queue.try_block());
  EXPECT_TRUE(queue.blocked());
  EXPECT_EQ(queue.push(&messages[0]), push_result::became_nonempty);
  EXPECT_EQ(queue.push(&messages[1]), push_result::ok);
}

TEST(mpsc_queue, try_block_on_a_closed_queue_fails) {
  mpsc_queue<message> queue;
  (void)queue.close();
  EXPECT_FALSE(queue.try_block());
  EXPECT_TRUE(queue.closed());
  EXPECT_FALSE(queue.blocked());
}

TEST(mpsc_queue, try_block_fails_while_pushed_messages_are_waiting) {
  mpsc_queue<message> queue;
  message m;
  ASSERT_EQ(queue.push(&m), push_result::ok);
  EXPECT_FALSE(queue.try_block());
  EXPECT_FALSE(queue.blocked());
  EXPECT_EQ(queue.pop(), &m);
  EXPECT_TRUE(queue.try_block());
}

TEST(mpsc_queue, try_block_fails_while_the_consumer_cache_holds_messages) {
  mpsc_queue<message> queue;
  std::vector<message> messages(2);
  ASSERT_EQ(queue.push(&messages[0]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[1]), push_result::ok);
  ASSERT_EQ(queue.pop(), &messages[0]);  // messages[1] now sits in the private cache
  EXPECT_FALSE(queue.empty());
  EXPECT_FALSE(queue.try_block());
  EXPECT_FALSE(queue.blocked());
  EXPECT_EQ(queue.pop(), &messages[1]);
}

TEST(mpsc_queue, unblock_leaves_the_blocked_state_so_the_next_push_reports_ok) {
  mpsc_queue<message> queue;
  message m;
  ASSERT_TRUE(queue.try_block());
  EXPECT_TRUE(queue.unblock());
  EXPECT_FALSE(queue.blocked());
  EXPECT_EQ(queue.push(&m), push_result::ok);
  EXPECT_EQ(queue.pop(), &m);
}

TEST(mpsc_queue, unblock_returns_false_when_the_queue_was_not_blocked) {
  mpsc_queue<message> queue;
  EXPECT_FALSE(queue.unblock());
  message m;
  ASSERT_EQ(queue.push(&m), push_result::ok);
  EXPECT_FALSE(queue.unblock());
  EXPECT_EQ(queue.pop(), &m) << "a failed unblock leaves queued messages alone";
}

TEST(mpsc_queue, claim_chain_of_one_takes_a_blocked_queue_with_its_message_and_nothing_else) {
  mpsc_queue<message> queue;
  message a, b, c;
  EXPECT_FALSE(queue.claim_chain(&a)) << "not blocked: the consumer is running";
  ASSERT_TRUE(queue.try_block());
  ASSERT_TRUE(queue.claim_chain(&a));
  EXPECT_FALSE(queue.blocked());
  EXPECT_FALSE(queue.claim_chain(&b)) << "claimed already";
  EXPECT_EQ(queue.push(&b), push_result::ok) << "the claimer is the running consumer";
  EXPECT_EQ(queue.pop(), &a);
  EXPECT_EQ(queue.pop(), &b);
  EXPECT_EQ(queue.pop(), nullptr);
  ASSERT_TRUE(queue.try_block());
  EXPECT_EQ(queue.push(&c), push_result::became_nonempty) << "a claim arms the next wake-up like any run";
  EXPECT_EQ(queue.pop(), &c);
  (void)queue.close();
  EXPECT_FALSE(queue.claim_chain(&a)) << "closed";
}

TEST(mpsc_queue, push_chain_queues_a_chain_oldest_first_in_one_step) {
  mpsc_queue<message> queue;
  message a, b, c, d;
  ASSERT_EQ(queue.push(&a), push_result::ok);
  // b, c, d linked newest first: d -> c -> b.
  d.next = &c;
  c.next = &b;
  b.next = nullptr;
  ASSERT_EQ(queue.push_chain(&d, &b), push_result::ok);
  for (message* expected : {&a, &b, &c, &d}) EXPECT_EQ(queue.pop(), expected);
  EXPECT_EQ(queue.pop(), nullptr);
  ASSERT_TRUE(queue.try_block());
  d.next = &c;
  c.next = nullptr;
  EXPECT_EQ(queue.push_chain(&d, &c), push_result::became_nonempty) << "one wake-up for the whole chain";
  EXPECT_EQ(queue.pop(), &c);
  EXPECT_EQ(queue.pop(), &d);
  ASSERT_TRUE(queue.try_block());
  b.next = &a;
  a.next = nullptr;
  ASSERT_TRUE(queue.claim_chain(&b));
  EXPECT_EQ(queue.pop(), &a);
  EXPECT_EQ(queue.pop(), &b);
  (void)queue.close();
  d.next = &c;
  c.next = nullptr;
  EXPECT_EQ(queue.push_chain(&d, &c), push_result::closed);
  EXPECT_EQ(c.next, nullptr) << "a refused chain is handed back unchanged";
}

TEST(mpsc_queue, close_returns_cached_and_pushed_messages_oldest_first) {
  mpsc_queue<message> queue;
  std::vector<message> messages(5);
  for (int i = 0; i < 5; ++i) messages[i].sequence = i;
  ASSERT_EQ(queue.push(&messages[0]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[1]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[2]), push_result::ok);
  ASSERT_EQ(queue.pop(), &messages[0]);  // 1 and 2 are cached
  ASSERT_EQ(queue.push(&messages[3]), push_result::ok);
  ASSERT_EQ(queue.push(&messages[4]), push_result::ok);  // 3 and 4 are on the stack

  message* remaining = queue.close();
  EXPECT_TRUE(queue.closed());
  std::vector<int> order;
  for (message* m = remaining; m != nullptr; m = static_cast<message*>(m->next)) {
    order.push_back(m->sequence);
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_TRUE(queue.empty());
}

TEST(mpsc_queue, close_of_an_empty_queue_returns_nothing) {
  mpsc_queue<message> queue;
  EXPECT_EQ(queue.close(), nullptr);
  EXPECT_TRUE(queue.closed());
}

TEST(mpsc_queue, close_of_a_blocked_queue_returns_nothing_and_closes_it) {
  mpsc_queue<message> queue;
  ASSERT_TRUE(queue.try_block());
  EXPECT_EQ(queue.close(), nullptr);
  EXPECT_TRUE(queue.closed());
  EXPECT_FALSE(queue.blocked());
}

TEST(mpsc_queue, pushes_after_close_are_refused_and_the_caller_keeps_the_node) {
  mpsc_queue<message> queue;
  message m;
  (void)queue.close();
  EXPECT_EQ(queue.push(&m), push_result::closed);
  EXPECT_EQ(queue.push(&m), push_result::closed);
  EXPECT_EQ(queue.pop(), nullptr);
  EXPECT_EQ(queue.close(), nullptr) << "a refused node never enters the queue";
}

TEST(mpsc_queue, close_is_idempotent) {
  mpsc_queue<message> queue;
  message m;
  ASSERT_EQ(queue.push(&m), push_result::ok);
  EXPECT_EQ(queue.close(), &m);
  EXPECT_EQ(queue.close(), nullptr);
  EXPECT_TRUE(queue.closed());
  EXPECT_EQ(queue.push(&m), push_result::closed);
}

// ---------------------------------------------------------------------------
// The consumer role, as builds with TROUPE_ASSERTIONS check it (elsewhere the
// first test still runs, and checks nothing but the queue's behaviour).

TEST(mpsc_queue, the_consumer_role_moves_to_another_thread_after_try_block_release_consumer_or_close) {
  mpsc_queue<message> queue;
  message a;
  message b;
  message c;
  message d;
  ASSERT_EQ(queue.push(&a), push_result::ok);
  EXPECT_EQ(queue.pop(), &a);      // this thread takes the role ...
  ASSERT_TRUE(queue.try_block());  // ... and gives it up
  ASSERT_EQ(queue.push(&b), push_result::became_nonempty);
  std::thread([&] {
    EXPECT_EQ(queue.pop(), &b);  // the thread the push scheduled
    queue.release_consumer();    // stops without blocking, as an actor at its throughput limit
  }).join();
  ASSERT_EQ(queue.push(&c), push_result::ok);
  EXPECT_EQ(queue.pop(), &c);  // back on this thread
  ASSERT_TRUE(queue.try_block());
  std::thread([&] {
    EXPECT_TRUE(queue.claim_chain(&d));  // a claim takes the role with the message
    EXPECT_EQ(queue.pop(), &d);
    EXPECT_EQ(queue.close(), nullptr);  // nothing left to consume
  }).join();
  EXPECT_EQ(queue.pop(), nullptr);  // closed: any thread may drain it
}

TEST(mpsc_queue, a_consumer_only_call_from_a_second_thread_while_the_first_holds_the_role_aborts) {
  if (!TROUPE_ASSERTIONS) GTEST_SKIP() << "TROUPE_ASSERTIONS is off in this build (on in Debug and sanitizer builds)";
  // The child re-runs this test alone: no other test's threads in the fork.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        mpsc_queue<message> queue;
        message m;
        (void)queue.push(&m);
        (void)queue.pop();  // this thread is the consumer now, and keeps the role
        std::thread intruder([&] { (void)queue.pop(); });
        intruder.join();
      },
      "mpsc_queue: a consumer-only call from a thread that is not the consumer");
}

// ---------------------------------------------------------------------------
// Multi-threaded stress.

// "The consumer was scheduled": raised by the producer whose push reported
// became_nonempty, taken by the consumer. Counts raises so that two producers
// scheduling the same idle consumer (a double scheduling) are visible.
class schedule_signal {
 public:
  void raise() {
    {
      std::lock_guard lock(mutex_);
      ++pending_;
      if (pending_ > 1) ++double_schedules_;
    }
    changed_.notify_one();
  }

  // Waits for a raise, with a deadline so that a lost wake-up fails instead of hanging.
  [[nodiscard]] bool take(std::chrono::steady_clock::duration deadline) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, deadline, [this] { return pending_ > 0; })) return false;
    --pending_;
    return true;
  }

  int double_schedules() {
    std::lock_guard lock(mutex_);
    return double_schedules_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int pending_ = 0;           // guarded by mutex_
  int double_schedules_ = 0;  // guarded by mutex_
};

TEST(mpsc_queue, delivers_every_message_once_in_producer_order_and_schedules_once_per_block) {
  watchdog guard;
  mpsc_queue<message> queue;
  constexpr int total = stress_producers * stress_messages_per_producer;
  std::vector<std::vector<message>> messages(stress_producers);
  // Payloads are written by the producers just before each push, so that
  // ThreadSanitizer checks "a node pushed happens-before the consumer's pop()".
  for (auto& per_producer : messages) per_producer.resize(stress_messages_per_producer);

  schedule_signal scheduled;
  // relaxed: a statistic read after join(), which orders it.
  std::atomic<int> became_nonempty_count{0};

  // Consumer state: plain data, touched only by the consumer thread.
  std::vector<int> next_expected(stress_producers, 0);
  int received = 0;
  int successful_blocks = 0;
  int out_of_order = 0;
  int lost_wake_ups = 0;

  // The consumer starts idle, so the blocked state is exercised on every run however
  // the threads happen to be scheduled (thread creation orders this consumer call
  // before the consumer thread's).
  ASSERT_TRUE(queue.try_block());
  successful_blocks = 1;

  std::thread consumer([&] {
    if (!scheduled.take(std::chrono::seconds(30))) {
      ++lost_wake_ups;
      return;
    }
    while (received < total) {
      while (message* m = queue.pop()) {
        if (m->sequence != next_expected[m->producer]) ++out_of_order;
        next_expected[m->producer] = m->sequence + 1;
        ++received;
      }
      if (received == total) break;
      if (!queue.try_block()) continue;  // a push raced in: keep draining
      ++successful_blocks;
      // Idle: only the producer that ends the blocked state may wake us.
      if (!scheduled.take(std::chrono::seconds(30))) {
        ++lost_wake_ups;
        return;
      }
    }
    queue.release_consumer();  // the test's thread checks the queue after join()
  });

  std::vector<std::thread> producers;
  for (int p = 0; p < stress_producers; ++p) {
    producers.emplace_back([&, p] {
      for (int s = 0; s < stress_messages_per_producer; ++s) {
        message& m = messages[p][s];
        m.producer = p;
        m.sequence = s;
        const push_result result = queue.push(&m);
        if (result == push_result::became_nonempty) {
          // relaxed: a counter; join() publishes it.
          became_nonempty_count.fetch_add(1, std::memory_order_relaxed);
          scheduled.raise();
        }
        ASSERT_NE(result, push_result::closed);
        // Yield now and then so that the consumer often runs dry and blocks.
        if (m.sequence % 64 == 0) std::this_thread::yield();
      }
    });
  }
  for (std::thread& t : producers) t.join();
  consumer.join();

  EXPECT_EQ(lost_wake_ups, 0) << "the consumer blocked and nobody scheduled it";
  EXPECT_EQ(received, total);
  EXPECT_EQ(out_of_order, 0);
  for (int p = 0; p < stress_producers; ++p) {
    EXPECT_EQ(next_expected[p], stress_messages_per_producer) << "producer " << p;
  }
  EXPECT_EQ(became_nonempty_count.load(std::memory_order_relaxed), successful_blocks);
  EXPECT_EQ(scheduled.double_schedules(), 0);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.close(), nullptr);
}

// The runtime's shape: the producer whose push reports became_nonempty runs the
// consumer itself, so the consumer hops between threads. The queue alone must
// order successive consumer runs (try_block's release, push's acquire): the
// consumer's state is plain data and ThreadSanitizer checks that claim.
// `claiming`: producers send chains of 1 to 3 messages (push_chain), each
// first trying claim_chain() (a link's reader taking an idle actor with its
// messages) and pushing when the queue is not blocked, so claims race pushes
// for the consumer role. A producer whose run of the consumer ended idle tries
// a claim right after: claims happen under any interleaving that ever lets the
// consumer go idle. Returns how many claims succeeded.
int migrating_consumer_runs(bool claiming) {
  watchdog guard;
  mpsc_queue<message> queue;
  constexpr int total = stress_producers * stress_messages_per_producer;
  std::vector<std::vector<message>> messages(stress_producers);
  // Payloads are written by the producers just before each push, so that
  // ThreadSanitizer checks "a node pushed happens-before the consumer's pop()".
  for (auto& per_producer : messages) per_producer.resize(stress_messages_per_producer);

  // Consumer state: plain data, handed from run to run by the queue alone.
  std::vector<int> next_expected(stress_producers, 0);
  int received = 0;
  int out_of_order = 0;
  // relaxed is enough: an overlap is detected by the exchange itself (an RMW),
  // and the queue, not this flag, must provide the ordering under test.
  std::atomic<bool> consumer_running{false};
  std::atomic<int> overlapping_runs{0};
  std::atomic<int> claims{0};

  auto run_consumer = [&] {
    if (consumer_running.exchange(true, std::memory_order_relaxed)) {
      overlapping_runs.fetch_add(1, std::memory_order_relaxed);
    }
    for (;;) {
      while (message* m = queue.pop()) {
        if (m->sequence != next_expected[m->producer]) ++out_of_order;
        next_expected[m->producer] = m->sequence + 1;
        ++received;
      }
      consumer_running.store(false, std::memory_order_relaxed);
      if (queue.try_block()) return;  // idle; the next became_nonempty runs us again
      // A push raced in: we are still the consumer.
      if (consumer_running.exchange(true, std::memory_order_relaxed)) {
        overlapping_runs.fetch_add(1, std::memory_order_relaxed);
      }
    }
  };

  if (!queue.try_block()) ADD_FAILURE() << "a new queue did not block";  // the consumer starts idle
  std::vector<std::thread> producers;
  for (int p = 0; p < stress_producers; ++p) {
    producers.emplace_back([&, p] {
      for (int s = 0; s < stress_messages_per_producer;) {
        // Claiming producers send runs of 1 to 3 messages as one chain (a
        // link's reader queueing a batch to one actor), claim first, push else.
        const int run = claiming ? std::min(1 + s % 3, stress_messages_per_producer - s) : 1;
        message* newest = nullptr;
        for (int i = 0; i < run; ++i) {
          message& m = messages[p][s + i];
          m.producer = p;
          m.sequence = s + i;
          m.next = newest;
          newest = &m;
        }
        message* oldest = &messages[p][s];
        s += run;
        if (claiming && queue.claim_chain(newest)) {
          // relaxed: a counter; join() publishes it.
          claims.fetch_add(1, std::memory_order_relaxed);
          run_consumer();
          continue;
        }
        const push_result result = queue.push_chain(newest, oldest);
        if (result == push_result::became_nonempty) run_consumer();
        ASSERT_NE(result, push_result::closed);
      }
    });
  }
  for (std::thread& t : producers) t.join();

  EXPECT_EQ(overlapping_runs.load(std::memory_order_relaxed), 0) << "double scheduling";
  EXPECT_TRUE(queue.blocked()) << "the last run went idle";
  EXPECT_EQ(received, total) << "a message was stranded: lost wake-up";
  EXPECT_EQ(out_of_order, 0);
  for (int p = 0; p < stress_producers; ++p) {
    EXPECT_EQ(next_expected[p], stress_messages_per_producer) << "producer " << p;
  }
  EXPECT_EQ(queue.close(), nullptr);
  return claims.load(std::memory_order_relaxed);
}

TEST(mpsc_queue, orders_consumer_runs_that_migrate_to_the_scheduling_producer) {
  EXPECT_EQ(migrating_consumer_runs(/*claiming=*/false), 0);
}

TEST(mpsc_queue, orders_consumer_runs_taken_by_claim_chain_and_chains_racing_pushes) {
  EXPECT_GT(migrating_consumer_runs(/*claiming=*/true), 0) << "no claim ever found the queue blocked";
}

// Producers push heap nodes while the consumer pops for a while and then closes.
// Every node ends in exactly one place: popped, returned by close(), or refused
// (the producer deletes it). ASan catches a node that ends nowhere (a leak) or
// twice (a double delete); the take-counts catch it without ASan.
TEST(mpsc_queue, close_while_producers_push_loses_and_duplicates_nothing) {
  watchdog guard;
  constexpr int producers_count = stress_producers;
  constexpr int per_producer = 5'000;
  constexpr int total = producers_count * per_producer;
  constexpr int rounds = 20;

  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(::testing::Message() << "round " << round);
    mpsc_queue<message> queue;
    // Written by whichever thread disposes of a node; read after join().
    std::vector<std::atomic<int>> dispositions(total);
    for (auto& d : dispositions) d.store(0, std::memory_order_relaxed);
    auto dispose = [&](message* m) {
      // relaxed: a counter; join() orders it before the checks.
      dispositions[m->producer * per_producer + m->sequence].fetch_add(1, std::memory_order_relaxed);
      delete m;
    };

    // Close at a different point each round, from "almost at once" to "near the end".
    const int close_after = (total / rounds) * round;
    std::atomic<int> refused{0};
    std::atomic<int> unexpected_results{0};

    std::vector<std::thread> producers;
    for (int p = 0; p < producers_count; ++p) {
      producers.emplace_back([&, p] {
        bool seen_closed = false;
        for (int s = 0; s < per_producer; ++s) {
          auto node = std::make_unique<message>(p, s);
          switch (queue.push(node.get())) {
            case push_result::ok:
              if (seen_closed) unexpected_results.fetch_add(1, std::memory_order_relaxed);
              (void)node.release();  // the queue owns it now
              break;
            case push_result::became_nonempty:  // the consumer never blocks here
              unexpected_results.fetch_add(1, std::memory_order_relaxed);
              (void)node.release();
              break;
            case push_result::closed:
              seen_closed = true;
              refused.fetch_add(1, std::memory_order_relaxed);
              dispose(node.release());  // refused: still ours
              break;
          }
        }
      });
    }

    int popped = 0;
    int drained = 0;
    std::thread consumer([&] {
      while (popped < close_after) {
        if (message* m = queue.pop()) {
          dispose(m);
          ++popped;
        } else {
          std::this_thread::yield();  // producers are still coming; not a timed wait
        }
      }
      message* rest = queue.close();
      while (rest != nullptr) {
        message* next = static_cast<message*>(rest->next);
        dispose(rest);
        ++drained;
        rest = next;
      }
    });

    for (std::thread& t : producers) t.join();
    consumer.join();

    EXPECT_EQ(unexpected_results.load(std::memory_order_relaxed), 0);
    EXPECT_EQ(popped + drained + refused.load(std::memory_order_relaxed), total);
    int wrong = 0;
    for (auto& d : dispositions) wrong += d.load(std::memory_order_relaxed) != 1 ? 1 : 0;
    EXPECT_EQ(wrong, 0) << "nodes lost or disposed of twice";
    EXPECT_TRUE(queue.closed());
    EXPECT_EQ(queue.pop(), nullptr);
  }
}

}  // namespace
