// Deterministic mode (config::deterministic()): no threads; the test steps the
// system one message at a time on a virtual clock, so interleavings are exact
// and reproducible.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct add {
  int n;
};
struct total {
  using reply = int;
};
using counter_protocol = troupe::protocol<add, total>;

struct counter : troupe::actor<counter_protocol> {
  explicit counter(std::vector<std::thread::id>* threads = nullptr) : seen_on(threads) {}
  std::vector<std::thread::id>* seen_on;
  int sum = 0;
  int handled = 0;
  void on(add a) {
    sum += a.n;
    ++handled;
    if (seen_on) seen_on->push_back(std::this_thread::get_id());
  }
  int on(total) { return sum; }
};

TEST(deterministic, step_handles_exactly_one_message) {
  troupe::test_support::watchdog guard;
  std::vector<std::thread::id> handled;
  troupe::system sys{troupe::config::deterministic()};
  auto c = sys.spawn<counter>(&handled);
  sys.run_until_idle();
  ASSERT_FALSE(c.tell(add{1}));
  ASSERT_FALSE(c.tell(add{2}));
  ASSERT_FALSE(c.tell(add{3}));
  EXPECT_EQ(handled.size(), 0u) << "nothing runs until the test steps";
  EXPECT_TRUE(sys.step());
  EXPECT_EQ(handled.size(), 1u);
  EXPECT_TRUE(sys.step());
  EXPECT_EQ(handled.size(), 2u);
  EXPECT_TRUE(sys.step());
  EXPECT_EQ(handled.size(), 3u);
  sys.run_until_idle();
  EXPECT_EQ(handled.size(), 3u);
  EXPECT_FALSE(sys.step()) << "no actor is runnable";
}

TEST(deterministic, run_until_idle_handles_everything_and_reports_its_steps) {
  troupe::test_support::watchdog guard;
  std::vector<std::thread::id> handled;
  troupe::system sys{troupe::config::deterministic()};
  auto c = sys.spawn<counter>(&handled);
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(c.tell(add{1}));
  EXPECT_GE(sys.run_until_idle(), 5u);
  EXPECT_EQ(handled.size(), 5u);
  EXPECT_EQ(sys.run_until_idle(), 0u);
  EXPECT_FALSE(sys.step());
}

TEST(deterministic, handlers_run_on_the_test_thread) {
  troupe::test_support::watchdog guard;
  std::vector<std::thread::id> handled;
  troupe::system sys{troupe::config::deterministic()};
  auto c = sys.spawn<counter>(&handled);
  ASSERT_FALSE(c.tell(add{1}));
  sys.run_until_idle();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0], std::this_thread::get_id());
  EXPECT_EQ(sys.worker_count(), 0u);
}

TEST(deterministic, ask_get_drives_the_system_until_the_reply) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto c = sys.spawn<counter>();
  ASSERT_FALSE(c.tell(add{20}));
  ASSERT_FALSE(c.tell(add{22}));
  EXPECT_EQ(c.ask(total{}, 1s).get(), 42);  // no step() or run_until_idle() by the test
}

TEST(deterministic, time_does_not_pass_on_its_own) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto c = sys.spawn<counter>();
  const auto t0 = sys.now();
  (void)sys.send_after(c, 1ms, add{1});
  sys.run_until_idle();
  EXPECT_EQ(sys.now(), t0);
  EXPECT_EQ(c.ask(total{}, 1ms).get(), 0) << "the timer is not due: the clock did not move";
  sys.advance_time(1ms);
  sys.run_until_idle();
  EXPECT_EQ(c.ask(total{}, 1ms).get(), 1);
}

TEST(deterministic, spawn_detached_is_refused) {
  troupe::test_support::watchdog guard;
  struct blocking : troupe::actor<counter_protocol> {
    void on(add) {}
    int on(total) { return 0; }
  };
  troupe::system sys{troupe::config::deterministic()};
  EXPECT_THROW((void)sys.spawn_detached<blocking>(), troupe::troupe_error);
}

// --- ping-pong: two matches of two lambda actors each, running at once -------------
struct ball {
  int hits_left;
};
struct serve {};

std::vector<std::string> play_two_matches() {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  // Lambda actors capture the partner through a shared slot the test fills in.
  using P = troupe::protocol<ball, serve>;
  auto make_player = [&](const std::string& name, const std::shared_ptr<troupe::ref<P>>& partner) {
    return sys.spawn<P>(
        [name, partner, &log](ball b) {
          log.push_back(name + ":" + std::to_string(b.hits_left));
          if (b.hits_left > 0) (void)partner->tell(ball{b.hits_left - 1});
        },
        [partner](serve) { (void)partner->tell(ball{5}); });
  };
  auto a_partner = std::make_shared<troupe::ref<P>>();
  auto b_partner = std::make_shared<troupe::ref<P>>();
  auto c_partner = std::make_shared<troupe::ref<P>>();
  auto d_partner = std::make_shared<troupe::ref<P>>();
  auto a = make_player("a", a_partner);
  auto b = make_player("b", b_partner);
  auto c = make_player("c", c_partner);
  auto d = make_player("d", d_partner);
  *a_partner = b;
  *b_partner = a;
  *c_partner = d;
  *d_partner = c;
  (void)a.tell(serve{});
  (void)c.tell(serve{});
  sys.run_until_idle();
  return log;
}

TEST(deterministic, the_interleaving_of_two_ping_pong_matches_is_the_same_on_every_run) {
  troupe::test_support::watchdog guard;
  const std::vector<std::string> first = play_two_matches();
  const std::vector<std::string> second = play_two_matches();
  EXPECT_EQ(first, second);
  ASSERT_EQ(first.size(), 12u);  // 6 hits per match
  // Within a match the players alternate and count down.
  std::vector<std::string> match_ab;
  std::vector<std::string> match_cd;
  for (const auto& entry : first) (entry[0] == 'a' || entry[0] == 'b' ? match_ab : match_cd).push_back(entry);
  EXPECT_EQ(match_ab, (std::vector<std::string>{"b:5", "a:4", "b:3", "a:2", "b:1", "a:0"}));
  EXPECT_EQ(match_cd, (std::vector<std::string>{"d:5", "c:4", "d:3", "c:2", "d:1", "c:0"}));
  // Both matches progress together (the runnable queue is served in turn), not one
  // after the other.
  const auto position = [&](const std::string& entry) {
    return std::find(first.begin(), first.end(), entry) - first.begin();
  };
  EXPECT_LT(position("d:5"), position("a:0"));
  EXPECT_LT(position("b:5"), position("c:0"));
}

// --- scoped receive drives the deterministic system ----------------------------------
struct answer {
  int value;
};
struct ask_me {
  troupe::ref<troupe::protocol<answer>> reply_to;
};

TEST(deterministic, scoped_receive_drives_the_system_until_the_message_arrives) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto responder = sys.spawn<troupe::protocol<ask_me>>([](const ask_me& m) { (void)m.reply_to.tell(answer{7}); });
  troupe::scoped<troupe::protocol<answer>> inbox{sys};
  ASSERT_FALSE(responder.tell(ask_me{inbox.self()}));
  troupe::expected<answer> got = inbox.receive<answer>(1s);  // no step() by the test
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->value, 7);
}

TEST(deterministic, scoped_receive_drives_timers_on_the_virtual_clock) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  troupe::scoped<troupe::protocol<answer>> inbox{sys};
  const auto t0 = sys.now();
  (void)sys.send_after(inbox.self(), 1h, answer{1});
  troupe::expected<answer> got = inbox.receive<answer>(2h);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(sys.now() - t0, 1h) << "the clock moves to the timer's deadline, no further";
}

}  // namespace
