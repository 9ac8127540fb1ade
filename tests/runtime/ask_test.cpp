// ask(): request/response from outside (futures, callbacks) and inside actors
// (co_await, as_expected, then), coroutine handlers (task<R>), await policies,
// timeouts and late replies.
#include <atomic>
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

// A source of values; `explode` makes it fail with "boom".
struct get_value {
  using reply = int;
};
struct explode {
  using reply = int;
};
struct ping_void {
  using reply = void;
};
using source_protocol = troupe::protocol<get_value, explode, ping_void>;

struct source : troupe::actor<source_protocol> {
  explicit source(int v) : value(v) {}
  int value;
  int pings = 0;
  int on(get_value) { return value; }
  int on(explode) { throw std::runtime_error("boom"); }
  void on(ping_void) { ++pings; }
};

// --- coroutine handlers ---------------------------------------------------------
struct sum_of {
  troupe::ref<source_protocol> left, right;
  using reply = int;
};
struct sum_nested {
  troupe::ref<source_protocol> left, right;
  using reply = int;
};
struct catch_failure {
  troupe::ref<source_protocol> target;
  using reply = std::string;
};
struct expect_failure {
  troupe::ref<source_protocol> target;
  using reply = std::string;
};
struct fail_after_resume {
  troupe::ref<source_protocol> target;
  using reply = int;
};
struct try_blocking {
  troupe::ref<source_protocol> target;
  using reply = int;  // the errc of try_get() inside a handler
};
struct throw_blocking {
  troupe::ref<source_protocol> target;
  using reply = int;  // the errc of the troupe_error get() throws inside a handler
};
struct alive {
  using reply = bool;
};
using summer_protocol = troupe::protocol<sum_of, sum_nested, catch_failure, expect_failure, fail_after_resume,
                                         try_blocking, throw_blocking, alive>;

struct summer : troupe::actor<summer_protocol> {
  troupe::task<int> on(sum_of s) {
    const int a = co_await s.left.ask(get_value{}, 10s);
    const int b = co_await s.right.ask(get_value{}, 10s);
    co_return a + b;
  }

  // Nested task<T> helpers, two levels deep, plus a task<void> one.
  troupe::task<int> fetch(troupe::ref<source_protocol> r) { co_return co_await r.ask(get_value{}, 10s); }
  troupe::task<int> fetch_both(troupe::ref<source_protocol> l, troupe::ref<source_protocol> r) {
    const int a = co_await fetch(l);
    const int b = co_await fetch(r);
    co_return a + b;
  }
  troupe::task<void> ping(troupe::ref<source_protocol> r) { co_await r.ask(ping_void{}, 10s); }
  troupe::task<int> on(sum_nested s) {
    co_await ping(s.left);
    co_return co_await fetch_both(s.left, s.right);
  }

  troupe::task<std::string> on(catch_failure c) {
    try {
      (void)co_await c.target.ask(explode{}, 10s);
    } catch (const troupe::troupe_error& e) {
      co_return std::string(troupe::to_string(e.error().code())) + "|" + e.error().text();
    }
    co_return "no exception";
  }

  troupe::task<std::string> on(expect_failure c) {
    troupe::expected<int> r = co_await c.target.ask(explode{}, 10s).as_expected();
    if (r) co_return "value";
    co_return std::string(troupe::to_string(r.error().code())) + "|" + r.error().text();
  }

  troupe::task<int> on(fail_after_resume f) {
    const int v = co_await f.target.ask(get_value{}, 10s);
    if (v >= 0) throw std::logic_error("after resume");
    co_return v;
  }

  int on(const try_blocking& t) {
    troupe::expected<int> r = t.target.ask(get_value{}, 10s).try_get();
    return static_cast<int>(r ? troupe::errc::ok : r.error().code());
  }
  int on(const throw_blocking& t) {
    try {
      (void)t.target.ask(get_value{}, 10s).get();
    } catch (const troupe::troupe_error& e) {
      return static_cast<int>(e.error().code());
    }
    return static_cast<int>(troupe::errc::ok);
  }
  bool on(alive) { return true; }
};

TEST(ask, coroutine_handler_replies_with_the_sum_of_two_awaited_asks) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(20);
  auto b = sys.spawn<source>(22);
  auto s = sys.spawn<summer>();
  EXPECT_EQ(s.ask(sum_of{a, b}, 10s).get(), 42);
  EXPECT_EQ(s.ask(sum_of{b, b}, 10s).get(), 44);
}

TEST(ask, nested_task_helpers_compose_inside_a_handler) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(1);
  auto b = sys.spawn<source>(2);
  auto s = sys.spawn<summer>();
  EXPECT_EQ(s.ask(sum_nested{a, b}, 10s).get(), 3);
}

TEST(ask, a_failed_co_await_throws_troupe_error_that_the_coroutine_can_catch) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto bomb = sys.spawn<source>(0);
  auto s = sys.spawn<summer>();
  const std::string r = s.ask(catch_failure{bomb}, 10s).get();
  EXPECT_EQ(r.rfind("actor_down|", 0), 0u) << r;
  EXPECT_NE(r.find("boom"), std::string::npos) << r;
  EXPECT_NE(r.find("std::runtime_error"), std::string::npos) << r;
  EXPECT_TRUE(s.ask(alive{}, 10s).get()) << "the asker caught the failure and lives on";
}

TEST(ask, as_expected_yields_the_failure_as_a_value_instead_of_throwing) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto bomb = sys.spawn<source>(0);
  auto s = sys.spawn<summer>();
  const std::string r = s.ask(expect_failure{bomb}, 10s).get();
  EXPECT_EQ(r.rfind("actor_down|", 0), 0u) << r;
  EXPECT_NE(r.find("boom"), std::string::npos) << r;
}

TEST(ask, an_exception_escaping_a_coroutine_after_it_resumed_fails_the_actor_and_the_original_asker) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(5);
  auto s = sys.spawn<summer>();
  troupe::expected<int> r = s.ask(fail_after_resume{a}, 10s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down) << r.error();
  EXPECT_NE(r.error().text().find("after resume"), std::string::npos) << r.error();
  EXPECT_NE(r.error().text().find("std::logic_error"), std::string::npos) << r.error();
  troupe::expected<bool> after = s.ask(alive{}, 10s).try_get();
  ASSERT_FALSE(after) << "the actor must have stopped";
  EXPECT_EQ(after.error().code(), troupe::errc::actor_down);
  EXPECT_EQ(a.ask(get_value{}, 10s).get(), 5) << "the other actor is unaffected";
}

// A task<R> handler's message lives as long as the coroutine, whatever the
// handler takes it by.
struct lookup {
  using reply = int;
};
using backend_protocol = troupe::protocol<lookup>;
struct backend : troupe::actor<backend_protocol> {
  int on(lookup) { return 7; }
};

struct greet {
  std::string name;
  using reply = std::string;
};
using frontend_protocol = troupe::protocol<greet>;
struct frontend : troupe::actor<frontend_protocol> {
  explicit frontend(troupe::ref<backend_protocol> b) : backend_(std::move(b)) {}
  // By const&: the message must outlive the suspension (the envelope it came in does not).
  troupe::task<std::string> on(const greet& g) {
    const int n = co_await backend_.ask(lookup{}, 30s);
    co_return g.name + ":" + std::to_string(n);
  }

 private:
  troupe::ref<backend_protocol> backend_;
};

TEST(ask, a_coroutine_handler_taking_its_message_by_const_ref_can_use_it_after_a_co_await) {
  troupe::system sys{troupe::config::deterministic()};
  auto b = sys.spawn<backend>();
  auto f = sys.spawn<frontend>(b);
  // Longer than any small-string buffer: the text lives on the heap.
  const std::string name(64, 'n');
  EXPECT_EQ(f.ask(greet{name}, 30s).get(), name + ":7");
}

TEST(ask, try_get_inside_a_handler_fails_with_would_block_instead_of_deadlocking) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(5);
  auto s = sys.spawn<summer>();
  EXPECT_EQ(s.ask(try_blocking{a}, 10s).get(), static_cast<int>(troupe::errc::would_block));
  EXPECT_EQ(s.ask(throw_blocking{a}, 10s).get(), static_cast<int>(troupe::errc::would_block));
  // The abandoned asks' replies arrive later and do no harm.
  EXPECT_TRUE(s.ask(alive{}, 10s).get());
}

TEST(ask, then_outside_an_actor_throws_would_block) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(5);
  auto r = a.ask(get_value{}, 10s);
  try {
    r.then([](int) {}, [](const troupe::error&) {});
    ADD_FAILURE() << "then() outside an actor must throw";
  } catch (const troupe::troupe_error& e) {
    EXPECT_EQ(e.error().code(), troupe::errc::would_block);
  }
}

TEST(ask, a_request_with_a_void_reply_completes_when_handled) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(0);
  EXPECT_TRUE(a.ask(ping_void{}, 10s).try_get());
  EXPECT_NO_THROW(a.ask(ping_void{}, 10s).get());
}

// --- the callback form ------------------------------------------------------------
struct use_then {
  troupe::ref<source_protocol> target;
  bool make_it_fail;
  std::shared_ptr<std::promise<std::string>> result;
};
using then_protocol = troupe::protocol<use_then>;
struct then_user : troupe::actor<then_protocol> {
  void on(const use_then& u) {
    auto done = u.result;
    auto on_value = [done](int v) { done->set_value("value " + std::to_string(v)); };
    auto on_error = [done](const troupe::error& e) {
      done->set_value(std::string("error ") + troupe::to_string(e.code()) + " " + e.text());
    };
    if (u.make_it_fail) {
      u.target.ask(explode{}, 10s).then(on_value, on_error);
    } else {
      u.target.ask(get_value{}, 10s).then(on_value, on_error);
    }
  }
};

TEST(ask, then_runs_the_value_callback_inside_the_actor_with_the_reply) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(9);
  auto t = sys.spawn<then_user>();
  auto result = std::make_shared<std::promise<std::string>>();
  auto got = result->get_future();
  ASSERT_FALSE(t.tell(use_then{a, false, result}));
  ASSERT_EQ(got.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(got.get(), "value 9");
}

TEST(ask, then_runs_the_error_callback_when_the_receiver_fails) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(9);
  auto t = sys.spawn<then_user>();
  auto result = std::make_shared<std::promise<std::string>>();
  auto got = result->get_future();
  ASSERT_FALSE(t.tell(use_then{a, true, result}));
  ASSERT_EQ(got.wait_for(30s), std::future_status::ready);
  const std::string r = got.get();
  EXPECT_EQ(r.rfind("error actor_down", 0), 0u) << r;
  EXPECT_NE(r.find("boom"), std::string::npos) << r;
}

// --- await policies ----------------------------------------------------------------
struct first {};
struct second {};
struct third {};
using awaiting_protocol = troupe::protocol<first, second, third>;

// first awaits an ask; second and third only log. The log is read by the test
// after an event that happens-after every write (deterministic: the same thread).
struct await_log {
  std::vector<std::string> entries;
  std::promise<void> second_done;
  std::promise<void> first_done;
};

template <troupe::await_policy Policy>
struct awaiting_actor : troupe::actor<awaiting_protocol> {
  static constexpr auto awaits = Policy;
  awaiting_actor(troupe::ref<source_protocol> t, await_log* l) : target(std::move(t)), log(l) {}
  troupe::ref<source_protocol> target;
  await_log* log;
  troupe::task<void> on(first) {
    log->entries.push_back("first:start");
    const int v = co_await target.ask(get_value{}, 1h);
    log->entries.push_back("first:end " + std::to_string(v));
    log->first_done.set_value();
  }
  void on(second) {
    log->entries.push_back("second");
    log->second_done.set_value();
  }
  void on(third) { log->entries.push_back("third"); }
};

TEST(ask, sequential_actor_handles_no_other_message_while_a_handler_awaits_and_then_handles_them_in_order) {
  troupe::test_support::watchdog guard;
  await_log log;
  troupe::system sys{troupe::config::deterministic()};
  auto src = sys.spawn<source>(7);
  auto a = sys.spawn<awaiting_actor<troupe::await_policy::sequential>>(src, &log);
  ASSERT_FALSE(a.tell(first{}));
  ASSERT_FALSE(a.tell(second{}));
  ASSERT_FALSE(a.tell(third{}));
  sys.run_until_idle();
  EXPECT_EQ(log.entries, (std::vector<std::string>{"first:start", "first:end 7", "second", "third"}));
}

TEST(ask, interleaving_actor_handles_other_messages_while_a_handler_awaits) {
  troupe::test_support::watchdog guard;
  await_log log;
  troupe::system sys{troupe::config::deterministic()};
  auto src = sys.spawn<source>(7);
  auto a = sys.spawn<awaiting_actor<troupe::await_policy::interleave>>(src, &log);
  ASSERT_FALSE(a.tell(first{}));
  ASSERT_FALSE(a.tell(second{}));
  ASSERT_FALSE(a.tell(third{}));
  sys.run_until_idle();
  // The reply reached the mailbox behind second and third.
  EXPECT_EQ(log.entries, (std::vector<std::string>{"first:start", "second", "third", "first:end 7"}));
}

// A source that blocks on a gate the test opens (a detached actor: it may block).
struct gated_get {
  using reply = int;
};
struct gated_source : troupe::actor<troupe::protocol<get_value, explode, ping_void>> {
  explicit gated_source(std::shared_future<void> g) : gate(std::move(g)) {}
  std::shared_future<void> gate;
  int on(get_value) {
    gate.wait();
    return 7;
  }
  int on(explode) { throw std::runtime_error("boom"); }
  void on(ping_void) {}
};

TEST(ask, interleaving_actor_answers_another_message_while_its_handler_awaits_on_worker_threads) {
  troupe::test_support::watchdog guard;
  std::promise<void> gate;
  await_log log;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto src = sys.spawn_detached<gated_source>(gate.get_future().share());
  auto second_done = log.second_done.get_future();
  auto first_done = log.first_done.get_future();
  auto a = sys.spawn<awaiting_actor<troupe::await_policy::interleave>>(src, &log);
  ASSERT_FALSE(a.tell(first{}));
  ASSERT_FALSE(a.tell(second{}));
  // The source cannot reply before the gate opens: second is handled meanwhile.
  const bool second_ran_meanwhile = second_done.wait_for(30s) == std::future_status::ready;
  gate.set_value();
  ASSERT_TRUE(second_ran_meanwhile);
  ASSERT_EQ(first_done.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(log.entries, (std::vector<std::string>{"first:start", "second", "first:end 7"}));
}

TEST(ask, sequential_actor_handles_the_next_message_only_after_the_awaiting_handler_completes_on_worker_threads) {
  troupe::test_support::watchdog guard;
  std::promise<void> gate;
  await_log log;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto src = sys.spawn_detached<gated_source>(gate.get_future().share());
  auto second_done = log.second_done.get_future();
  auto a = sys.spawn<awaiting_actor<troupe::await_policy::sequential>>(src, &log);
  ASSERT_FALSE(a.tell(first{}));
  ASSERT_FALSE(a.tell(second{}));
  gate.set_value();
  ASSERT_EQ(second_done.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(log.entries, (std::vector<std::string>{"first:start", "first:end 7", "second"}));
}

// --- timeouts and late replies ------------------------------------------------------
// An actor that replies `delay` after a request arrives (virtual time in the
// deterministic mode): it waits by asking itself with that timeout — its own
// request queues behind the suspended handler (sequential policy) until it times out.
struct slow_get {
  std::chrono::nanoseconds delay;
  using reply = int;
};
struct nap {
  using reply = int;
};
using slow_protocol = troupe::protocol<slow_get, nap>;
struct slow_source : troupe::actor<slow_protocol> {
  troupe::task<int> on(slow_get s) {
    (void)co_await self().ask(nap{}, s.delay).as_expected();
    co_return 42;
  }
  int on(nap) { return 0; }
};

struct asker_journal {
  std::vector<std::string> results;
  std::chrono::steady_clock::time_point failed_at{};
};
struct ask_slow {
  troupe::ref<slow_protocol> target;
  std::chrono::nanoseconds delay;
  std::chrono::nanoseconds timeout;
};
struct late_count {
  using reply = std::uint64_t;
};
using asker_protocol = troupe::protocol<ask_slow, late_count>;
struct asker : troupe::actor<asker_protocol> {
  explicit asker(asker_journal* j) : journal(j) {}
  asker_journal* journal;
  troupe::task<void> on(ask_slow a) {
    troupe::expected<int> r = co_await a.target.ask(slow_get{a.delay}, a.timeout).as_expected();
    if (r) {
      journal->results.push_back("value " + std::to_string(*r));
    } else {
      journal->results.push_back(troupe::to_string(r.error().code()));
      journal->failed_at = system().now();
    }
  }
  std::uint64_t on(late_count) { return late_replies(); }
};

TEST(ask, an_ask_inside_an_actor_times_out_exactly_at_its_deadline_and_the_late_reply_is_counted) {
  troupe::test_support::watchdog guard;
  asker_journal journal;
  troupe::system sys{troupe::config::deterministic()};
  auto slow = sys.spawn<slow_source>();
  auto a = sys.spawn<asker>(&journal);
  sys.run_until_idle();
  const auto t0 = sys.now();
  ASSERT_FALSE(a.tell(ask_slow{slow, 50ms, 10ms}));
  sys.run_until_idle();
  sys.advance_time(9ms);
  sys.run_until_idle();
  EXPECT_TRUE(journal.results.empty()) << "no timeout before the deadline";
  sys.advance_time(1ms);
  sys.run_until_idle();
  ASSERT_EQ(journal.results, std::vector<std::string>{"timeout"});
  EXPECT_EQ(journal.failed_at - t0, 10ms);
  EXPECT_EQ(a.ask(late_count{}, 1s).get(), 0u) << "the reply has not come yet";
  sys.advance_time(100ms);  // the slow actor replies at 50ms
  sys.run_until_idle();
  EXPECT_EQ(journal.results, std::vector<std::string>{"timeout"}) << "the late reply is discarded";
  EXPECT_EQ(a.ask(late_count{}, 1s).get(), 1u);
}

// An actor's outstanding asks share one timer, armed for the earliest deadline
// (cell::add_pending()): asks made later with shorter timeouts re-arm it
// earlier, and each ask still fails exactly at its own deadline, in deadline order.
struct ask_three {
  troupe::ref<slow_protocol> target;
};
using three_asker_protocol = troupe::protocol<ask_three>;
struct three_asker : troupe::actor<three_asker_protocol> {
  explicit three_asker(std::vector<std::pair<std::string, std::chrono::nanoseconds>>* f) : failures(f) {}
  std::vector<std::pair<std::string, std::chrono::nanoseconds>>* failures;
  std::chrono::steady_clock::time_point t0{};
  void on(const ask_three& a) {
    t0 = system().now();
    for (const auto& [name, timeout] : {std::pair{"a", 30ms}, std::pair{"b", 10ms}, std::pair{"c", 20ms}}) {
      a.target.ask(slow_get{1h}, timeout)
          .then([](int) {},
                [this, label = std::string(name)](const troupe::error& e) {
                  failures->emplace_back(label + " " + troupe::to_string(e.code()), system().now() - t0);
                });
    }
  }
};

TEST(ask, asks_with_different_timeouts_each_fail_exactly_at_their_own_deadline_in_deadline_order) {
  troupe::test_support::watchdog guard;
  std::vector<std::pair<std::string, std::chrono::nanoseconds>> failures;
  troupe::system sys{troupe::config::deterministic()};
  auto slow = sys.spawn<slow_source>();  // answers its first request after an hour, the others later still
  auto a = sys.spawn<three_asker>(&failures);
  ASSERT_FALSE(a.tell(ask_three{slow}));
  sys.run_until_idle();
  sys.advance_time(9ms);
  EXPECT_TRUE(failures.empty()) << "nothing is due before 10 ms";
  sys.advance_time(100ms);
  const std::vector<std::pair<std::string, std::chrono::nanoseconds>> expected{
      {"b timeout", 10ms}, {"c timeout", 20ms}, {"a timeout", 30ms}};
  EXPECT_EQ(failures, expected);
}

// The ask timer is shared and stays armed after the answers (add_pending()):
// many asks in a row arm it once, and an actor that stops cancels it, so the
// timer does not keep the stopped actor's cell alive until its deadline.
struct ask_n_times {
  troupe::ref<slow_protocol> target;
  int times;
  using reply = int;
};
struct stop_now {};
using serial_asker_protocol = troupe::protocol<ask_n_times, stop_now>;
struct serial_asker : troupe::actor<serial_asker_protocol> {
  troupe::task<int> on(ask_n_times a) {
    int sum = 0;
    for (int i = 0; i < a.times; ++i) sum += co_await a.target.ask(nap{}, 1h);
    co_return sum + a.times;
  }
  void on(stop_now) { stop(); }
};

TEST(ask, asks_in_a_row_arm_one_timer_and_stopping_the_actor_cancels_it) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto target = sys.spawn<slow_source>();
  auto a = sys.spawn<serial_asker>();
  sys.run_until_idle();
  ASSERT_EQ(sys.pending_timers(), 0u);
  EXPECT_EQ(a.ask(ask_n_times{target, 100}, 1s).get(), 100);
  EXPECT_EQ(sys.pending_timers(), 1u) << "100 answered asks with the same timeout: one timer, left armed";
  ASSERT_FALSE(a.tell(stop_now{}));
  sys.run_until_idle();
  EXPECT_EQ(sys.pending_timers(), 0u) << "the stopped actor's ask timer is still armed";
}

TEST(ask, an_ask_inside_an_actor_gets_the_reply_when_it_comes_before_the_deadline) {
  troupe::test_support::watchdog guard;
  asker_journal journal;
  troupe::system sys{troupe::config::deterministic()};
  auto slow = sys.spawn<slow_source>();
  auto a = sys.spawn<asker>(&journal);
  ASSERT_FALSE(a.tell(ask_slow{slow, 10ms, 50ms}));
  sys.run_until_idle();
  sys.advance_time(100ms);
  sys.run_until_idle();
  EXPECT_EQ(journal.results, std::vector<std::string>{"value 42"});
  EXPECT_EQ(a.ask(late_count{}, 1s).get(), 0u);
}

TEST(ask, get_outside_an_actor_throws_troupe_error_with_timeout_when_no_reply_comes_in_time) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto slow = sys.spawn<slow_source>();
  try {
    (void)slow.ask(slow_get{1h}, 50ms).get();
    ADD_FAILURE() << "get() must throw on timeout";
  } catch (const troupe::troupe_error& e) {
    EXPECT_EQ(e.error().code(), troupe::errc::timeout) << e.what();
  }
  troupe::expected<int> r = slow.ask(slow_get{1h}, 50ms).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::timeout);
}

TEST(ask, try_get_in_deterministic_mode_times_out_after_exactly_the_ask_timeout_of_virtual_time) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto slow = sys.spawn<slow_source>();
  sys.run_until_idle();
  const auto t0 = sys.now();
  troupe::expected<int> r = slow.ask(slow_get{1h}, 1s).try_get();
  ASSERT_FALSE(r) << "the reply comes after an hour of virtual time, the ask waits one second";
  EXPECT_EQ(r.error().code(), troupe::errc::timeout);
  EXPECT_EQ(sys.now() - t0, 1s) << "try_get drives the virtual clock to the ask's deadline, no further";
}

// Threaded late reply: the asker's ask times out while the replier is held at a
// gate; the replier then answers and tells the asker, behind the reply, to report.
struct held_get {
  using reply = int;
};
struct report_late {
  std::shared_ptr<std::promise<std::uint64_t>> result;
};
struct start_held_ask {
  std::shared_ptr<std::promise<std::string>> outcome;
};
using late_asker_protocol = troupe::protocol<start_held_ask, report_late>;
struct notify_asker {
  troupe::ref<late_asker_protocol> asker;
  std::shared_ptr<std::promise<std::uint64_t>> result;
};
using held_protocol = troupe::protocol<held_get, notify_asker>;
struct held_source : troupe::actor<held_protocol> {
  explicit held_source(std::shared_future<void> g) : gate(std::move(g)) {}
  std::shared_future<void> gate;
  int on(held_get) {
    gate.wait();
    return 1;
  }
  void on(const notify_asker& n) { (void)n.asker.tell(report_late{n.result}); }
};
struct late_asker : troupe::actor<late_asker_protocol> {
  explicit late_asker(troupe::ref<held_protocol> t) : target(std::move(t)) {}
  troupe::ref<held_protocol> target;
  troupe::task<void> on(start_held_ask s) {
    troupe::expected<int> r = co_await target.ask(held_get{}, 20ms).as_expected();
    s.outcome->set_value(r ? "value" : troupe::to_string(r.error().code()));
  }
  void on(const report_late& r) { r.result->set_value(late_replies()); }
};

TEST(ask, a_reply_after_the_timeout_is_discarded_and_counted_as_late_on_worker_threads) {
  troupe::test_support::watchdog guard;
  std::promise<void> gate;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto held = sys.spawn_detached<held_source>(gate.get_future().share());
  auto a = sys.spawn<late_asker>(held);
  auto outcome = std::make_shared<std::promise<std::string>>();
  auto outcome_future = outcome->get_future();
  ASSERT_FALSE(a.tell(start_held_ask{outcome}));
  const bool timed_out = outcome_future.wait_for(30s) == std::future_status::ready;
  if (!timed_out) gate.set_value();
  ASSERT_TRUE(timed_out);
  EXPECT_EQ(outcome_future.get(), "timeout");
  // The held request is in held's mailbox; notify_asker goes behind it, so the
  // asker hears report_late after the late reply.
  auto late = std::make_shared<std::promise<std::uint64_t>>();
  auto late_future = late->get_future();
  ASSERT_FALSE(held.tell(notify_asker{a, late}));
  gate.set_value();
  ASSERT_EQ(late_future.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(late_future.get(), 1u);
}

// --- ask with a callback (outside actors, never blocking) ---------------------------
// The callback runs exactly once: with the reply, the receiver's failure, the
// deadline's timeout, or at once when the receiver is gone.

TEST(ask_callback, runs_once_with_the_reply_on_worker_threads) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(7);
  std::promise<troupe::expected<int>> got;
  a.ask(get_value{}, 10s, [&got](troupe::expected<int> r) { got.set_value(std::move(r)); });
  std::future<troupe::expected<int>> f = got.get_future();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  troupe::expected<int> r = f.get();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 7);
}

TEST(ask_callback, a_void_reply_and_a_failing_receiver_each_complete_it) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(1);
  std::promise<bool> pinged;
  a.ask(ping_void{}, 10s, [&pinged](const troupe::expected<void>& r) { pinged.set_value(r.has_value()); });
  std::future<bool> p = pinged.get_future();
  ASSERT_EQ(p.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(p.get());
  std::promise<troupe::expected<int>> failed;
  a.ask(explode{}, 10s, [&failed](troupe::expected<int> r) { failed.set_value(std::move(r)); });
  std::future<troupe::expected<int>> f = failed.get_future();
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  troupe::expected<int> r = f.get();
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().to_string().find("boom"), std::string::npos) << r.error().to_string();
}

TEST(ask_callback, runs_at_once_before_ask_returns_when_the_receiver_is_gone) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto a = sys.spawn<source>(1);
  const troupe::actor_addr addr = troupe::actor_addr(a);
  sys.send_exit(addr, troupe::exit_reason::killed());
  // Gone once an ask fails; the future flavour waits for that without sleeping.
  while (a.ask(get_value{}, 10s).try_get()) {
  }
  int calls = 0;
  troupe::expected<int> r = 0;
  a.ask(get_value{}, 10s, [&](troupe::expected<int> x) {
    ++calls;
    r = std::move(x);
  });
  EXPECT_EQ(calls, 1) << "the callback must have run inside ask()";
  EXPECT_FALSE(r);
  EXPECT_EQ(sys.pending_timers(), 0u) << "no deadline is armed for a request that was never sent";
  troupe::ref<source_protocol> empty;
  empty.ask(get_value{}, 10s, [&](const troupe::expected<int>& x) {
    ++calls;
    EXPECT_EQ(x.error().code(), troupe::errc::no_such_actor);
  });
  EXPECT_EQ(calls, 2);
}

TEST(ask_callback, times_out_exactly_at_its_deadline_and_ignores_the_late_reply) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto slow = sys.spawn<slow_source>();
  sys.run_until_idle();
  const auto t0 = sys.now();
  std::vector<std::string> results;
  std::chrono::nanoseconds at{};
  slow.ask(slow_get{50ms}, 10ms, [&](troupe::expected<int> r) {
    results.push_back(r ? "value " + std::to_string(*r) : troupe::to_string(r.error().code()));
    at = sys.now() - t0;
  });
  sys.run_until_idle();
  sys.advance_time(9ms);
  EXPECT_TRUE(results.empty()) << "no timeout before the deadline";
  sys.advance_time(1ms);
  ASSERT_EQ(results, std::vector<std::string>{"timeout"});
  EXPECT_EQ(at, 10ms);
  sys.advance_time(100ms);  // the slow actor replies at 50 ms
  EXPECT_EQ(results, std::vector<std::string>{"timeout"}) << "the late reply must not run the callback again";
}

TEST(ask_callback, a_reply_before_the_deadline_cancels_its_timer) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<source>(3);
  sys.run_until_idle();
  std::vector<int> values;
  for (int i = 0; i < 5; ++i) {
    a.ask(get_value{}, 1h, [&values](troupe::expected<int> r) { values.push_back(r ? *r : -1); });
  }
  EXPECT_EQ(sys.pending_timers(), 5u) << "one deadline per ask, armed once the request is queued";
  sys.run_until_idle();
  EXPECT_EQ(values, (std::vector<int>{3, 3, 3, 3, 3}));
  EXPECT_EQ(sys.pending_timers(), 0u) << "an answered ask's deadline must be cancelled, not left to fire";
  sys.advance_time(2h);
  EXPECT_EQ(values.size(), 5u);
}

// The reply and the deadline race on two threads (timeouts of a few
// microseconds against a handler of about as long): whichever wins, each
// callback runs exactly once, and nothing is left armed.
TEST(ask_callback, runs_exactly_once_when_the_reply_races_the_deadline) {
  troupe::test_support::watchdog guard;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  auto a = sys.spawn<source>(9);
  constexpr int asks = 20'000;
  std::vector<std::atomic<int>> runs(asks);
  std::atomic<int> values{0};
  std::atomic<int> timeouts{0};
  troupe_test::countdown finished(asks);
  for (int i = 0; i < asks; ++i) {
    const auto timeout = std::chrono::microseconds(i % 40);
    a.ask(get_value{}, timeout, [&, i](troupe::expected<int> r) {
      // Relaxed: the countdown's mutex publishes these to the test thread.
      runs[static_cast<std::size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      if (r) {
        values.fetch_add(*r == 9 ? 1 : 0, std::memory_order_relaxed);
      } else if (r.error().code() == troupe::errc::timeout) {
        timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      finished.count_down();
    });
  }
  ASSERT_TRUE(finished.wait_for(60s)) << finished.left() << " callbacks never ran";
  int twice = 0;
  for (const std::atomic<int>& n : runs) twice += n.load() != 1 ? 1 : 0;
  EXPECT_EQ(twice, 0) << "callbacks that ran more than once";
  EXPECT_EQ(values.load() + timeouts.load(), asks) << "every result is the value or a timeout";
  EXPECT_GT(timeouts.load(), 0) << "zero-length deadlines must time out at least sometimes";
  // Cancelled or fired: a late reply's cancel() and a fired timer both leave nothing.
  EXPECT_EQ(sys.pending_timers(), 0u);
}

}  // namespace
