// Timers: send_after, send_every, cancel(), on the virtual clock of the
// deterministic mode (exact) and on the real timer thread.
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct tick {};
struct sentinel {
  std::shared_ptr<std::promise<int>> ticks_so_far;
};
struct tick_count {
  using reply = int;
};
using ticker_protocol = troupe::protocol<tick, sentinel, tick_count>;

struct tick_journal {
  std::vector<std::chrono::nanoseconds> at;  // virtual time of each tick, from `origin`
  std::chrono::steady_clock::time_point origin{};
};

struct ticker : troupe::actor<ticker_protocol> {
  explicit ticker(tick_journal* j = nullptr, troupe_test::countdown* c = nullptr) : journal(j), each_tick(c) {}
  tick_journal* journal;
  troupe_test::countdown* each_tick;
  int ticks = 0;
  void on(tick) {
    ++ticks;
    if (journal) journal->at.push_back(system().now() - journal->origin);
    if (each_tick) each_tick->count_down();
  }
  void on(const sentinel& s) { s.ticks_so_far->set_value(ticks); }
  int on(tick_count) { return ticks; }
};

TEST(timer, send_after_delivers_once_exactly_at_its_virtual_deadline) {
  troupe::test_support::watchdog guard;
  tick_journal journal;
  troupe::system sys{troupe::config::deterministic()};
  journal.origin = sys.now();
  auto t = sys.spawn<ticker>(&journal);
  troupe::timer handle = sys.send_after(t, 100ms, tick{});
  sys.run_until_idle();
  sys.advance_time(99ms);
  sys.run_until_idle();
  EXPECT_TRUE(journal.at.empty()) << "not before the deadline";
  sys.advance_time(1ms);
  sys.run_until_idle();
  EXPECT_EQ(journal.at, std::vector<std::chrono::nanoseconds>{100ms});
  sys.advance_time(1h);
  sys.run_until_idle();
  EXPECT_EQ(journal.at.size(), 1u) << "once";
  EXPECT_FALSE(handle.cancel()) << "a one-shot timer that fired is no longer pending";
}

TEST(timer, send_every_delivers_one_message_per_period) {
  troupe::test_support::watchdog guard;
  tick_journal journal;
  troupe::system sys{troupe::config::deterministic()};
  journal.origin = sys.now();
  auto t = sys.spawn<ticker>(&journal);
  troupe::timer handle = sys.send_every(t, 10ms, tick{});
  sys.advance_time(100ms);
  sys.run_until_idle();
  EXPECT_EQ(journal.at.size(), 10u);
  sys.advance_time(9ms);
  sys.run_until_idle();
  EXPECT_EQ(journal.at.size(), 10u);
  sys.advance_time(1ms);
  sys.run_until_idle();
  EXPECT_EQ(journal.at.size(), 11u);
  EXPECT_TRUE(handle.cancel());
}

TEST(timer, advance_time_hands_each_due_message_to_its_actor_at_the_timers_deadline) {
  troupe::test_support::watchdog guard;
  // system.hpp: advance_time "moves the virtual clock forward, firing due timers
  // (and stepping the actors they wake) in deadline order" — no run_until_idle here.
  tick_journal journal;
  troupe::system sys{troupe::config::deterministic()};
  journal.origin = sys.now();
  auto t = sys.spawn<ticker>(&journal);
  sys.run_until_idle();
  troupe::timer periodic = sys.send_every(t, 10ms, tick{});
  sys.advance_time(30ms);
  EXPECT_EQ(journal.at, (std::vector<std::chrono::nanoseconds>{10ms, 20ms, 30ms}));
  periodic.cancel();
}

TEST(timer, cancel_stops_a_periodic_timer_for_good) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto t = sys.spawn<ticker>();
  troupe::timer handle = sys.send_every(t, 10ms, tick{});
  sys.advance_time(30ms);
  sys.run_until_idle();
  EXPECT_EQ(t.ask(tick_count{}, 1s).get(), 3);
  EXPECT_TRUE(handle.cancel());
  sys.advance_time(1s);
  sys.run_until_idle();
  EXPECT_EQ(t.ask(tick_count{}, 1s).get(), 3);
  EXPECT_FALSE(handle.cancel()) << "a cancelled timer is no longer pending";
}

TEST(timer, a_cancelled_send_after_never_delivers) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto t = sys.spawn<ticker>();
  troupe::timer handle = sys.send_after(t, 10ms, tick{});
  EXPECT_TRUE(handle.cancel());
  sys.advance_time(1s);
  sys.run_until_idle();
  EXPECT_EQ(t.ask(tick_count{}, 1s).get(), 0);
}

TEST(timer, timers_fire_in_deadline_order) {
  troupe::test_support::watchdog guard;
  std::vector<int> order;
  troupe::system sys{troupe::config::deterministic()};
  struct mark {
    int n;
  };
  using P = troupe::protocol<mark>;
  auto r = sys.spawn<P>([&order](mark m) { order.push_back(m.n); });
  (void)sys.send_after(r, 30ms, mark{3});
  (void)sys.send_after(r, 10ms, mark{1});
  (void)sys.send_after(r, 20ms, mark{2});
  sys.advance_time(1s);
  sys.run_until_idle();
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(timer, send_after_delivers_once_on_the_timer_thread) {
  troupe::test_support::watchdog guard;
  troupe_test::countdown first_tick(1);
  troupe::system sys;
  auto t = sys.spawn<ticker>(nullptr, &first_tick);
  (void)sys.send_after(t, 5ms, tick{});
  ASSERT_TRUE(first_tick.wait_for(30s));
  // The timer thread sends in deadline order: a later sentinel arrives after any
  // (wrong) second tick would have.
  auto ticks = std::make_shared<std::promise<int>>();
  auto ticks_future = ticks->get_future();
  (void)sys.send_after(t, 20ms, sentinel{ticks});
  ASSERT_EQ(ticks_future.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(ticks_future.get(), 1);
}

TEST(timer, no_periodic_message_is_sent_after_cancel_returns_on_the_timer_thread) {
  troupe::test_support::watchdog guard;
  troupe_test::countdown three_ticks(3);
  troupe::system sys;
  auto t = sys.spawn<ticker>(nullptr, &three_ticks);
  troupe::timer handle = sys.send_every(t, 1ms, tick{});
  ASSERT_TRUE(three_ticks.wait_for(30s));
  EXPECT_TRUE(handle.cancel());
  // Every tick sent before cancel() returned is in the mailbox ahead of this ask.
  const int at_cancel = t.ask(tick_count{}, 30s).get();
  EXPECT_GE(at_cancel, 3);
  // Had the timer kept going, 1ms ticks would precede a sentinel due 30ms later.
  auto ticks = std::make_shared<std::promise<int>>();
  auto ticks_future = ticks->get_future();
  (void)sys.send_after(t, 30ms, sentinel{ticks});
  ASSERT_EQ(ticks_future.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(ticks_future.get(), at_cancel);
}

TEST(timer, a_handle_that_outlives_its_system_can_still_be_cancelled_safely) {
  troupe::test_support::watchdog guard;
  troupe::timer one_shot;
  troupe::timer periodic;
  {
    troupe::system sys;
    auto t = sys.spawn<ticker>();
    one_shot = sys.send_after(t, 1h, tick{});
    periodic = sys.send_every(t, 1h, tick{});
  }
  EXPECT_FALSE(one_shot.cancel());
  EXPECT_FALSE(periodic.cancel());
}

TEST(timer, a_default_handle_cancels_nothing) {
  troupe::test_support::watchdog guard;
  troupe::timer none;
  EXPECT_FALSE(none.cancel());
}

TEST(timer, a_periodic_timer_to_a_stopped_actor_does_no_harm) {
  troupe::test_support::watchdog guard;
  struct quit {};
  struct fragile : troupe::actor<troupe::protocol<tick, quit>> {
    void on(tick) {}
    void on(quit) { stop(); }
  };
  troupe::system sys{troupe::config::deterministic()};
  auto f = sys.spawn<fragile>();
  troupe::timer handle = sys.send_every(f, 10ms, tick{});
  sys.advance_time(30ms);
  ASSERT_FALSE(f.tell(quit{}));
  sys.run_until_idle();
  sys.advance_time(100ms);
  sys.run_until_idle();
  EXPECT_EQ(f.tell(tick{}), troupe::errc::no_such_actor);
  (void)handle.cancel();
}

struct quit_ticking {};
using quitting_ticker_protocol = troupe::protocol<tick, quit_ticking>;
struct quitting_ticker : troupe::actor<quitting_ticker_protocol> {
  explicit quitting_ticker(int* ticks) : ticks_(ticks) {}
  void on(tick) { ++*ticks_; }
  void on(quit_ticking) { stop(); }

 private:
  int* ticks_;
};

TEST(timer, a_periodic_timer_stops_once_its_receiver_has_stopped) {
  int ticks = 0;
  troupe::system sys{troupe::config::deterministic()};
  auto t = sys.spawn<quitting_ticker>(&ticks);
  troupe::timer periodic = sys.send_every(t, 10ms, tick{});
  sys.advance_time(30ms);
  EXPECT_EQ(ticks, 3);
  ASSERT_FALSE(t.tell(quit_ticking{}));
  sys.run_until_idle();
  sys.advance_time(50ms);  // the next firing finds the receiver gone
  EXPECT_EQ(ticks, 3);
  EXPECT_FALSE(periodic.cancel()) << "the timer is still pending, sending to a stopped actor";
}

// The timer thread never waits for room in a bounded mailbox: a timer that
// finds one full must not delay every other timer (ask timeouts included).
struct self_check {
  using reply = int;
};
struct suspended {};
struct resumed {
  troupe::errc outcome;
};
using report_protocol = troupe::protocol<suspended, resumed>;
struct start_asking {
  troupe::ref<report_protocol> report;
};
struct filler {};
using self_asker_protocol = troupe::protocol<start_asking, self_check, filler>;
struct self_asker : troupe::actor<self_asker_protocol> {
  int on(self_check) { return 1; }
  void on(filler) {}
  // Sequential: the self-ask cannot be answered while this handler awaits, so
  // only its timeout — a timer — resumes it.
  troupe::task<void> on(start_asking s) {
    auto pending = self().ask(self_check{}, 200ms);
    (void)s.report.tell(suspended{});
    auto r = co_await pending.as_expected();
    (void)s.report.tell(resumed{r ? troupe::errc::ok : r.error().code()});
  }
};

TEST(timer, a_send_after_to_a_full_block_policy_mailbox_does_not_stall_the_timer_thread) {
  troupe::test_support::watchdog guard;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  troupe::scoped<report_protocol> inbox{sys};
  auto a = sys.spawn<self_asker>(troupe::bounded{1, troupe::overflow_policy::block});
  ASSERT_FALSE(a.tell(start_asking{inbox.self()}));
  ASSERT_TRUE(inbox.receive<suspended>(30s));
  // The waiting self_check fills the one slot: this send finds the mailbox full
  // on the timer thread, before the ask's timeout is due.
  (void)sys.send_after(a, 1ms, filler{});
  auto r = inbox.receive<resumed>(30s);
  ASSERT_TRUE(r) << "the ask timeout never fired: the timer thread is stuck in a send";
  EXPECT_EQ(r->outcome, troupe::errc::timeout);
}

}  // namespace
