// Tests for troupe/mailbox/work_stealing_deque.hpp: exact single-threaded order and
// capacity, then stress runs where the owner pushes and takes (with pop(), or with
// steal() as troupe's scheduler does) while one to three thieves steal; every item
// must be taken exactly once.
#include "troupe/mailbox/work_stealing_deque.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <numeric>
#include <thread>
#include <vector>

#include "support/watchdog.hpp"

namespace {

using troupe::work_stealing_deque;
using troupe::test_support::watchdog;

std::vector<int> numbered(int count) {
  std::vector<int> items(static_cast<std::size_t>(count));
  std::iota(items.begin(), items.end(), 0);
  return items;
}

// ---------------------------------------------------------------------------
// Single-threaded, exact.

TEST(work_stealing_deque, pop_and_steal_of_an_empty_deque_return_null) {
  work_stealing_deque<int, 8> deque;
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_EQ(deque.size_hint(), 0u);
  EXPECT_EQ(deque.pop(), nullptr) << "a pop of an empty deque leaves it consistent";
}

TEST(work_stealing_deque, pop_returns_the_most_recently_pushed_element_first) {
  work_stealing_deque<int, 8> deque;
  std::vector<int> items = numbered(5);
  for (int& item : items) ASSERT_TRUE(deque.push(&item));
  EXPECT_EQ(deque.size_hint(), 5u);
  for (int expected = 4; expected >= 0; --expected) {
    int* item = deque.pop();
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(*item, expected);
  }
  EXPECT_EQ(deque.pop(), nullptr);
}

TEST(work_stealing_deque, steal_returns_the_oldest_element_first) {
  work_stealing_deque<int, 8> deque;
  std::vector<int> items = numbered(5);
  for (int& item : items) ASSERT_TRUE(deque.push(&item));
  for (int expected = 0; expected < 5; ++expected) {
    int* item = deque.steal();
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(*item, expected);
  }
  EXPECT_EQ(deque.steal(), nullptr);
  EXPECT_EQ(deque.size_hint(), 0u);
}

TEST(work_stealing_deque, pop_and_steal_take_from_opposite_ends) {
  work_stealing_deque<int, 8> deque;
  std::vector<int> items = numbered(4);
  for (int& item : items) ASSERT_TRUE(deque.push(&item));
  EXPECT_EQ(deque.steal(), &items[0]);
  EXPECT_EQ(deque.pop(), &items[3]);
  EXPECT_EQ(deque.steal(), &items[1]);
  EXPECT_EQ(deque.pop(), &items[2]);
  EXPECT_EQ(deque.pop(), nullptr);
  EXPECT_EQ(deque.steal(), nullptr);
}

TEST(work_stealing_deque, the_last_element_is_taken_once_by_either_end) {
  work_stealing_deque<int, 8> deque;
  int item = 7;
  ASSERT_TRUE(deque.push(&item));
  EXPECT_EQ(deque.steal(), &item);
  EXPECT_EQ(deque.pop(), nullptr);
  ASSERT_TRUE(deque.push(&item));
  EXPECT_EQ(deque.pop(), &item);
  EXPECT_EQ(deque.steal(), nullptr);
}

TEST(work_stealing_deque, push_fails_at_capacity_and_succeeds_again_after_a_take) {
  work_stealing_deque<int, 4> deque;
  std::vector<int> items = numbered(6);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(deque.push(&items[i]));
  EXPECT_EQ(deque.size_hint(), deque.capacity());
  EXPECT_FALSE(deque.push(&items[4]));
  EXPECT_EQ(deque.size_hint(), 4u) << "a refused push leaves the deque unchanged";

  EXPECT_EQ(deque.steal(), &items[0]);
  EXPECT_TRUE(deque.push(&items[4]));  // reuses the slot the steal freed
  EXPECT_FALSE(deque.push(&items[5]));
  EXPECT_EQ(deque.pop(), &items[4]);
  EXPECT_TRUE(deque.push(&items[5]));

  for (int expected : {1, 2, 3, 5}) {
    int* item = deque.steal();
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(*item, expected);
  }
  EXPECT_EQ(deque.steal(), nullptr);
}

TEST(work_stealing_deque, an_owner_that_takes_with_steal_gets_fifo_order_across_many_wraps) {
  work_stealing_deque<int, 4> deque;
  std::vector<int> items = numbered(100);
  int next_pushed = 0;
  int next_expected = 0;
  while (next_expected < 100) {
    // Keep one to three items queued so the indices wrap the buffer many times.
    while (next_pushed < 100 && next_pushed - next_expected < 3) {
      ASSERT_TRUE(deque.push(&items[static_cast<std::size_t>(next_pushed)]));
      ++next_pushed;
    }
    int* item = deque.steal();
    ASSERT_NE(item, nullptr);
    EXPECT_EQ(*item, next_expected);
    ++next_expected;
  }
  EXPECT_EQ(deque.steal(), nullptr);
}

// ---------------------------------------------------------------------------
// Multi-threaded stress.

TEST(work_stealing_deque, a_push_from_a_thread_that_is_not_the_owner_aborts) {
  if (!TROUPE_ASSERTIONS) GTEST_SKIP() << "TROUPE_ASSERTIONS is off in this build (on in Debug and sanitizer builds)";
  // The child re-runs this test alone: no other test's threads in the fork.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  using small_deque = troupe::work_stealing_deque<int, 4>;  // no comma inside the macro's argument
  EXPECT_DEATH(
      {
        small_deque deque;
        int item = 0;
        (void)deque.push(&item);  // this thread owns the deque now
        std::thread thief([&] { (void)deque.push(&item); });
        thief.join();
      },
      "work_stealing_deque: push\\(\\) or pop\\(\\) from a thread that is not the deque's owner");
}

enum class owner_takes { with_pop, with_steal };

struct stress_result {
  int items_taken_not_once = 0;
  int thief_order_violations = 0;
  int total_taken = 0;
};

// The owner pushes `item_count` items into a small deque (so that it can fill up
// and the indices wrap), taking one back after every `take_every`-th push and
// whenever the deque is full, then drains it; `thieves` threads steal until the
// owner is done. take_every == 1 keeps the deque at zero or one element, so the
// owner and the thieves race for the last element most of the time; larger values
// let it fill. Each thief's steals must come out oldest first.
stress_result run_stress(int thieves, owner_takes how, int take_every, int item_count) {
  work_stealing_deque<int, 64> deque;
  // The owner writes each item just before pushing it, so that ThreadSanitizer
  // checks "an element pushed happens-before its pop() or steal() returns it".
  std::vector<int> items(static_cast<std::size_t>(item_count), -1);
  std::vector<std::atomic<int>> take_counts(static_cast<std::size_t>(item_count));
  for (auto& count : take_counts) count.store(0, std::memory_order_relaxed);
  // release/acquire: the owner's last take happens-before a thief's final check.
  std::atomic<bool> owner_done{false};
  std::atomic<int> order_violations{0};

  auto take = [&](int* item) {
    // relaxed: counters, read after join().
    take_counts[static_cast<std::size_t>(*item)].fetch_add(1, std::memory_order_relaxed);
  };
  auto owner_take = [&]() -> int* { return how == owner_takes::with_pop ? deque.pop() : deque.steal(); };

  std::vector<std::thread> thief_threads;
  for (int t = 0; t < thieves; ++t) {
    thief_threads.emplace_back([&] {
      int last = -1;
      auto steal_one = [&] {
        int* item = deque.steal();
        if (item == nullptr) return false;
        if (*item <= last) order_violations.fetch_add(1, std::memory_order_relaxed);
        last = *item;
        take(item);
        return true;
      };
      // acquire: pairs with the owner's release store of owner_done.
      while (!owner_done.load(std::memory_order_acquire)) {
        if (!steal_one()) std::this_thread::yield();  // nothing to steal yet; spin politely
      }
      while (steal_one()) {
      }
    });
  }

  for (int i = 0; i < item_count; ++i) {
    int& item_to_push = items[static_cast<std::size_t>(i)];
    item_to_push = i;
    while (!deque.push(&item_to_push)) {
      if (int* item = owner_take()) take(item);
    }
    if (i % take_every == take_every - 1) {
      if (int* item = owner_take()) take(item);
    }
  }
  // Drain. pop() returns null only when the deque is empty (possibly after losing
  // the last element to a thief); steal() may also fail by losing a race, so an
  // owner taking with steal() re-checks the size.
  for (;;) {
    if (int* item = owner_take()) {
      take(item);
    } else if (how == owner_takes::with_pop || deque.size_hint() == 0) {
      break;
    }
  }
  // release: pairs with the thieves' acquire loads.
  owner_done.store(true, std::memory_order_release);
  for (std::thread& t : thief_threads) t.join();

  stress_result result;
  for (auto& count : take_counts) {
    const int n = count.load(std::memory_order_relaxed);
    result.total_taken += n;
    if (n != 1) ++result.items_taken_not_once;
  }
  result.thief_order_violations = order_violations.load(std::memory_order_relaxed);
  return result;
}

constexpr int stress_items = 100'000;

void expect_every_item_taken_once(owner_takes how) {
  for (int take_every : {1, 3}) {
    for (int thieves = 1; thieves <= 3; ++thieves) {
      SCOPED_TRACE(::testing::Message() << thieves << " thieves, owner takes after every " << take_every << " pushes");
      const stress_result result = run_stress(thieves, how, take_every, stress_items);
      EXPECT_EQ(result.items_taken_not_once, 0);
      EXPECT_EQ(result.total_taken, stress_items);
      EXPECT_EQ(result.thief_order_violations, 0) << "a thief's steals went backwards";
    }
  }
}

TEST(work_stealing_deque, every_item_is_taken_once_while_thieves_race_an_owner_that_pops) {
  watchdog guard;
  expect_every_item_taken_once(owner_takes::with_pop);
}

TEST(work_stealing_deque, every_item_is_taken_once_while_thieves_race_an_owner_that_steals) {
  watchdog guard;
  expect_every_item_taken_once(owner_takes::with_steal);
}

}  // namespace
