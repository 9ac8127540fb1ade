// actor<P>: class-based and lambda actors, lifecycle hooks (on_start, on_stop,
// stop()), and what an exception escaping a handler does.
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
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
struct quit {};
struct fail {
  std::string what;
};
struct fail_request {
  using reply = int;
};
struct block {
  std::shared_future<void> until;
};
using counter_protocol = troupe::protocol<add, total, quit, fail, fail_request, block>;

// What an actor saw, for the test to inspect. In threaded tests the test reads it
// only after an event that happens-after the writes (a future, a reply).
struct journal {
  std::vector<std::string> log;
  bool stopped = false;
  troupe::exit_reason reason;
  std::promise<troupe::exit_reason> stop_reason;
};

struct counter : troupe::actor<counter_protocol> {
  explicit counter(journal* j = nullptr) : seen(j) {}
  journal* seen;
  int sum = 0;
  void on_start() {
    if (seen) seen->log.push_back("start");
  }
  void on_stop(const troupe::exit_reason& r) {
    if (!seen) return;
    seen->log.push_back("stop");
    seen->stopped = true;
    seen->reason = r;
    seen->stop_reason.set_value(r);
  }
  void on(add a) {
    if (seen) seen->log.push_back("add " + std::to_string(a.n));
    sum += a.n;
  }
  int on(total) { return sum; }
  void on(quit) { stop(); }
  void on(const fail& f) { throw std::runtime_error(f.what); }
  int on(fail_request) { throw std::invalid_argument("bad request"); }
  void on(const block& b) { b.until.wait(); }
};

TEST(actor, lambda_actor_handles_each_message_type_with_its_own_lambda) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto sum = std::make_shared<int>(0);
  using P = troupe::protocol<add, total>;
  troupe::ref<P> a = sys.spawn<P>([sum](add m) { *sum += m.n; }, [sum](total) { return *sum; });
  for (int i = 1; i <= 10; ++i) ASSERT_FALSE(a.tell(add{i}));
  EXPECT_EQ(a.ask(total{}, 10s).get(), 55);
}

TEST(actor, mutable_lambda_actor_keeps_its_state_between_messages) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  using P = troupe::protocol<total>;
  troupe::ref<P> a = sys.spawn<P>([calls = 0](total) mutable { return ++calls; });
  EXPECT_EQ(a.ask(total{}, 10s).get(), 1);
  EXPECT_EQ(a.ask(total{}, 10s).get(), 2);
  EXPECT_EQ(a.ask(total{}, 10s).get(), 3);
}

TEST(actor, on_start_runs_before_the_first_message) {
  troupe::test_support::watchdog guard;
  journal j;
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<counter>(&j);
  ASSERT_FALSE(a.tell(add{1}));
  ASSERT_FALSE(a.tell(add{2}));
  EXPECT_TRUE(j.log.empty()) << "nothing runs before the test steps a deterministic system";
  sys.run_until_idle();
  EXPECT_EQ(j.log, (std::vector<std::string>{"start", "add 1", "add 2"}));
}

TEST(actor, on_start_runs_before_the_first_message_on_worker_threads) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  struct probe : troupe::actor<troupe::protocol<total>> {
    bool started = false;
    void on_start() { started = true; }
    int on(total) { return started ? 1 : 0; }
  };
  auto a = sys.spawn<probe>();
  EXPECT_EQ(a.ask(total{}, 10s).get(), 1);
}

TEST(actor, on_stop_runs_with_a_normal_reason_when_the_actor_calls_stop) {
  troupe::test_support::watchdog guard;
  journal j;
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<counter>(&j);
  ASSERT_FALSE(a.tell(add{1}));
  ASSERT_FALSE(a.tell(quit{}));
  sys.run_until_idle();
  EXPECT_TRUE(j.stopped);
  EXPECT_EQ(j.reason.what(), troupe::exit_reason::kind::normal);
  EXPECT_EQ(j.log, (std::vector<std::string>{"start", "add 1", "stop"}));
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(actor, messages_after_stop_fail_tell_with_no_such_actor_and_ask_with_actor_down) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<counter>();
  ASSERT_FALSE(a.tell(quit{}));
  sys.run_until_idle();
  EXPECT_EQ(a.tell(add{1}), troupe::errc::no_such_actor);
  troupe::expected<int> r = a.ask(total{}, 1s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
}

TEST(actor, messages_queued_behind_stop_are_not_handled_and_their_asks_fail_with_actor_down) {
  troupe::test_support::watchdog guard;
  journal j;
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<counter>(&j);
  ASSERT_FALSE(a.tell(quit{}));
  ASSERT_FALSE(a.tell(add{5}));
  auto pending = a.ask(total{}, 1s);
  sys.run_until_idle();
  troupe::expected<int> r = pending.try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
  EXPECT_EQ(j.log, (std::vector<std::string>{"start", "stop"}));
}

TEST(actor, asks_queued_behind_stop_fail_with_actor_down_on_worker_threads) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<counter>();
  ASSERT_FALSE(a.tell(quit{}));
  std::vector<troupe::response<int>> asks;
  for (int i = 0; i < 10; ++i) asks.push_back(a.ask(total{}, 30s));
  for (auto& r : asks) {
    troupe::expected<int> got = r.try_get();
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code(), troupe::errc::actor_down) << got.error();
  }
}

TEST(actor, an_exception_escaping_a_handler_stops_the_actor_with_its_text_and_type) {
  troupe::test_support::watchdog guard;
  journal j;
  troupe::system sys;
  auto stopped = j.stop_reason.get_future();
  auto a = sys.spawn<counter>(&j);
  ASSERT_FALSE(a.tell(fail{"boom"}));
  ASSERT_EQ(stopped.wait_for(30s), std::future_status::ready);
  troupe::exit_reason r = stopped.get();
  EXPECT_EQ(r.what(), troupe::exit_reason::kind::error);
  EXPECT_EQ(r.text(), "boom");
  EXPECT_EQ(r.exception_type(), "std::runtime_error");
  EXPECT_NE(r.to_string().find("boom"), std::string::npos);
}

TEST(actor, a_pending_ask_fails_with_actor_down_naming_the_exception_text_and_type) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<counter>();
  troupe::expected<int> r = a.ask(fail_request{}, 30s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
  EXPECT_NE(r.error().text().find("bad request"), std::string::npos) << r.error();
  EXPECT_NE(r.error().text().find("std::invalid_argument"), std::string::npos) << r.error();
}

TEST(actor, asks_queued_behind_the_failing_message_fail_too_instead_of_hanging) {
  troupe::test_support::watchdog guard;
  std::promise<void> gate;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto a = sys.spawn<counter>();
  // Hold the actor inside a handler so that everything below queues up behind `fail`.
  ASSERT_FALSE(a.tell(block{gate.get_future().share()}));
  ASSERT_FALSE(a.tell(fail{"boom"}));
  std::vector<troupe::response<int>> queued;
  for (int i = 0; i < 20; ++i) queued.push_back(a.ask(total{}, 30s));
  gate.set_value();
  for (auto& r : queued) {
    troupe::expected<int> got = r.try_get();
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code(), troupe::errc::actor_down) << got.error();
    EXPECT_NE(got.error().text().find("boom"), std::string::npos) << got.error();
    EXPECT_NE(got.error().text().find("std::runtime_error"), std::string::npos) << got.error();
  }
}

TEST(actor, a_failing_actor_does_not_affect_other_actors) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto failing = sys.spawn<counter>();
  auto healthy = sys.spawn<counter>();
  ASSERT_FALSE(healthy.tell(add{3}));
  troupe::expected<int> r = failing.ask(fail_request{}, 30s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
  ASSERT_FALSE(healthy.tell(add{4}));
  EXPECT_EQ(healthy.ask(total{}, 10s).get(), 7);
  // A new actor of the same class works too.
  auto fresh = sys.spawn<counter>();
  ASSERT_FALSE(fresh.tell(add{1}));
  EXPECT_EQ(fresh.ask(total{}, 10s).get(), 1);
}

TEST(actor, an_exception_in_on_start_stops_the_actor_and_its_asks_fail_with_the_text) {
  troupe::test_support::watchdog guard;
  struct fragile : troupe::actor<troupe::protocol<total>> {
    void on_start() { throw std::runtime_error("cannot start"); }
    int on(total) { return 1; }
  };
  troupe::system sys;
  auto a = sys.spawn<fragile>();
  troupe::expected<int> r = a.ask(total{}, 30s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
  EXPECT_NE(r.error().text().find("cannot start"), std::string::npos) << r.error();
}

TEST(actor, an_actor_can_send_to_itself_through_self) {
  troupe::test_support::watchdog guard;
  struct countdown_actor : troupe::actor<troupe::protocol<add, total>> {
    int handled = 0;
    void on(add a) {
      ++handled;
      if (a.n > 0) (void)self().tell(add{a.n - 1});
    }
    int on(total) { return handled; }
  };
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<countdown_actor>();
  ASSERT_FALSE(a.tell(add{9}));
  sys.run_until_idle();
  EXPECT_EQ(a.ask(total{}, 1s).get(), 10);
}

TEST(actor, one_actor_never_runs_on_two_threads_at_once) {
  troupe::test_support::watchdog guard;
  // Many senders hammer one actor; its handler would see another run of itself
  // in progress if the runtime ever ran it twice concurrently (TSan also watches
  // the plain `inside` flag).
  struct exclusive : troupe::actor<troupe::protocol<add, total>> {
    bool inside = false;
    int overlaps = 0;
    int handled = 0;
    void on(add) {
      if (inside) ++overlaps;
      inside = true;
      ++handled;
      inside = false;
    }
    int on(total) { return overlaps * 1'000'000 + handled; }
  };
  troupe::config cfg;
  cfg.worker_threads = 2;
  cfg.max_throughput = 1;  // hand the actor between workers as often as possible
  troupe::system sys{cfg};
  auto a = sys.spawn<exclusive>();
  std::vector<std::thread> senders;
  for (int t = 0; t < 3; ++t) {
    senders.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) (void)a.tell(add{1});
    });
  }
  for (auto& t : senders) t.join();
  EXPECT_EQ(a.ask(total{}, 60s).get(), 15000);
}

}  // namespace
