// ref<P>: spawn + tell + ask, what a ref is as a value (copy, ==, hash, print),
// per-sender FIFO, and the compile-time contract of protocol<...>.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

// --- the bank from DESIGN.md ---------------------------------------------------
struct deposit {
  std::string account;
  std::int64_t cents;
};
struct balance {
  std::string account;
  using reply = std::int64_t;
};
struct whoami {
  using reply = std::string;
};
using bank = troupe::protocol<deposit, balance, whoami>;

struct bank_actor : troupe::actor<bank> {
  std::unordered_map<std::string, std::int64_t> accounts;
  void on(const deposit& d) { accounts[d.account] += d.cents; }
  std::int64_t on(const balance& b) { return accounts[b.account]; }
  std::string on(whoami) { return address(); }
};

// --- compile-time contract -----------------------------------------------------
struct not_in_bank {};
static_assert(troupe::accepts<bank, deposit>);
static_assert(troupe::accepts<bank, balance>);
static_assert(troupe::accepts<bank, const deposit&>, "cv/ref qualifiers do not matter to accepts");
static_assert(!troupe::accepts<bank, not_in_bank>);
static_assert(!troupe::accepts<bank, int>);
static_assert(!troupe::accepts<int, deposit>, "accepts needs a protocol");
static_assert(troupe::request<balance>);
static_assert(!troupe::request<deposit>);
static_assert(std::is_same_v<troupe::reply_t<balance>, std::int64_t>);
static_assert(std::is_same_v<troupe::reply_t<deposit>, void>);
static_assert(bank::size == 3);
static_assert(bank::index_of<balance> == 1);
static_assert(troupe::a_protocol<bank> && !troupe::a_protocol<deposit>);
static_assert(std::is_copy_constructible_v<troupe::ref<bank>> && std::is_copy_assignable_v<troupe::ref<bank>>);

TEST(ref, bank_example_from_the_design_answers_the_deposited_balance) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  troupe::ref<bank> b = sys.spawn<bank_actor>();
  EXPECT_FALSE(b.tell(deposit{"alice", 500}));
  EXPECT_FALSE(b.tell(deposit{"alice", 250}));
  EXPECT_FALSE(b.tell(deposit{"bob", 1}));
  EXPECT_EQ(b.ask(balance{"alice"}, 10s).get(), 750);
  EXPECT_EQ(b.ask(balance{"bob"}, 10s).get(), 1);
  EXPECT_EQ(b.ask(balance{"carol"}, 10s).get(), 0);
}

TEST(ref, copies_compare_equal_and_refs_to_different_actors_do_not) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  troupe::ref<bank> a = sys.spawn<bank_actor>();
  troupe::ref<bank> b = sys.spawn<bank_actor>();
  // NOLINTNEXTLINE(performance-unnecessary-copy-initialization): the copy is what this test is about
  troupe::ref<bank> a_copy = a;
  troupe::ref<bank> assigned;
  assigned = b;
  EXPECT_TRUE(a == a_copy);
  EXPECT_TRUE(assigned == b);
  EXPECT_FALSE(a == b);
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(a.id(), a_copy.id());
  // A copy reaches the same actor.
  EXPECT_FALSE(a_copy.tell(deposit{"alice", 7}));
  EXPECT_EQ(a.ask(balance{"alice"}, 10s).get(), 7);
  EXPECT_EQ(b.ask(balance{"alice"}, 10s).get(), 0);
}

TEST(ref, is_hashable_so_refs_can_be_kept_in_an_unordered_set) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  troupe::ref<bank> a = sys.spawn<bank_actor>();
  troupe::ref<bank> b = sys.spawn<bank_actor>();
  std::unordered_set<troupe::ref<bank>> set;
  set.insert(a);
  set.insert(b);
  set.insert(troupe::ref<bank>(a));
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(set.count(a), 1u);
  EXPECT_EQ(set.count(b), 1u);
  EXPECT_EQ(set.count(troupe::ref<bank>{}), 0u);
}

TEST(ref, prints_as_a_troupe_local_address_naming_the_actor_id) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  troupe::ref<bank> a = sys.spawn<bank_actor>();
  ASSERT_NE(a.id(), 0u);
  const std::string expected = "troupe://local/" + std::to_string(a.id());
  std::ostringstream out;
  out << a;
  EXPECT_EQ(out.str(), expected);
  EXPECT_EQ(a.address(), expected);
  // The actor sees the same address for itself.
  EXPECT_EQ(a.ask(whoami{}, 10s).get(), expected);
}

TEST(ref, empty_ref_is_false_and_reports_no_such_actor) {
  troupe::test_support::watchdog guard;
  troupe::ref<bank> empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.id(), 0u);
  EXPECT_EQ(empty.address(), "troupe://<none>");
  EXPECT_EQ(empty.tell(deposit{"alice", 1}), troupe::errc::no_such_actor);
  troupe::expected<std::int64_t> r = empty.ask(balance{"alice"}, 1s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::no_such_actor);
  EXPECT_TRUE(empty == troupe::ref<bank>{});
}

TEST(ref, get_throws_troupe_error_with_the_code_when_the_ask_fails) {
  troupe::test_support::watchdog guard;
  troupe::ref<bank> empty;
  try {
    (void)empty.ask(balance{"alice"}, 1s).get();
    ADD_FAILURE() << "get() on a failed ask must throw";
  } catch (const troupe::troupe_error& e) {
    EXPECT_EQ(e.error().code(), troupe::errc::no_such_actor);
  }
}

// --- FIFO per sender ----------------------------------------------------------------
struct numbered {
  std::uint32_t sender;
  std::uint64_t seq;
};
struct order_report {
  using reply = std::vector<std::uint64_t>;  // per sender: messages received
};
struct order_violations {
  using reply = std::uint64_t;
};
using ordered = troupe::protocol<numbered, order_report, order_violations>;

struct order_checker : troupe::actor<ordered> {
  explicit order_checker(std::size_t senders) : next(senders, 0) {}
  std::vector<std::uint64_t> next;  // the sequence number expected next, per sender
  std::uint64_t violations = 0;
  void on(numbered n) {
    if (n.seq != next[n.sender]) ++violations;
    next[n.sender] = n.seq + 1;
  }
  std::vector<std::uint64_t> on(order_report) { return next; }
  std::uint64_t on(order_violations) { return violations; }
};

TEST(ref, messages_from_one_sender_arrive_in_send_order) {
  troupe::test_support::watchdog guard;
  constexpr std::uint64_t count = 100'000;
  troupe::system sys;
  auto checker = sys.spawn<order_checker>(std::size_t{1});
  for (std::uint64_t i = 0; i < count; ++i) ASSERT_FALSE(checker.tell(numbered{0, i}));
  // The ask is sent after every numbered message by the same sender: it is
  // handled after all of them.
  EXPECT_EQ(checker.ask(order_violations{}, 60s).get(), 0u);
  EXPECT_EQ(checker.ask(order_report{}, 60s).get(), std::vector<std::uint64_t>{count});
}

TEST(ref, many_concurrent_senders_each_keep_their_order_and_no_message_is_lost) {
  troupe::test_support::watchdog guard;
  constexpr std::uint32_t senders = 4;
  constexpr std::uint64_t per_sender = 25'000;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto checker = sys.spawn<order_checker>(std::size_t{senders});
  std::atomic<std::uint64_t> refused{0};
  std::vector<std::thread> threads;
  for (std::uint32_t s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      for (std::uint64_t i = 0; i < per_sender; ++i) {
        if (checker.tell(numbered{s, i})) refused.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(refused.load(), 0u);
  EXPECT_EQ(checker.ask(order_violations{}, 60s).get(), 0u);
  EXPECT_EQ(checker.ask(order_report{}, 60s).get(), std::vector<std::uint64_t>(senders, per_sender));
}

// Actors as senders too: each of several actors relays its numbers to the checker.
struct relay_go {
  std::uint32_t sender;
  std::uint64_t count;
};
using relay_protocol = troupe::protocol<relay_go>;
struct relay : troupe::actor<relay_protocol> {
  relay(troupe::ref<ordered> to, troupe_test::countdown* finished) : target(std::move(to)), done(finished) {}
  troupe::ref<ordered> target;
  troupe_test::countdown* done;
  void on(relay_go go) {
    for (std::uint64_t i = 0; i < go.count; ++i) (void)target.tell(numbered{go.sender, i});
    done->count_down();
  }
};

TEST(ref, messages_from_one_actor_to_another_arrive_in_send_order) {
  troupe::test_support::watchdog guard;
  constexpr std::uint32_t senders = 3;
  constexpr std::uint64_t per_sender = 20'000;
  troupe_test::countdown finished(senders);
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto checker = sys.spawn<order_checker>(std::size_t{senders});
  std::vector<troupe::ref<relay_protocol>> relays;
  for (std::uint32_t s = 0; s < senders; ++s) relays.push_back(sys.spawn<relay>(checker, &finished));
  for (std::uint32_t s = 0; s < senders; ++s) ASSERT_FALSE(relays[s].tell(relay_go{s, per_sender}));
  ASSERT_TRUE(finished.wait_for(60s)) << "relays still sending";
  // Every relayed message was enqueued before `finished` reached zero, so this
  // ask is behind all of them in the checker's mailbox.
  EXPECT_EQ(checker.ask(order_report{}, 60s).get(), std::vector<std::uint64_t>(senders, per_sender));
  EXPECT_EQ(checker.ask(order_violations{}, 60s).get(), 0u);
}

}  // namespace
