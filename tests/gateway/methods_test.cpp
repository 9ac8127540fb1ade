// The method table: an actor's described message types as methods, parameters
// by name and by position, replies as JSON, every failure kind, the in-flight
// bound, and exactly one completion per call.
#include <gtest/gtest.h>

#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "troupe/gateway/methods.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;
namespace json = boost::json;

namespace bank {
struct deposit {
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
struct balance {
  std::string account;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(balance, (), (account))
struct statement {
  std::string account;
  std::int64_t cents;
  std::vector<std::string> history;
};
BOOST_DESCRIBE_STRUCT(statement, (), (account, cents, history))
struct get_statement {
  std::string account;
  using reply = statement;
};
BOOST_DESCRIBE_STRUCT(get_statement, (), (account))
struct audit {
  using reply = void;
  static constexpr std::string_view rpc_name = "run_audit";
};
BOOST_DESCRIBE_STRUCT(audit, (), ())
struct crash {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(crash, (), ())
struct stall {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(stall, (), ())
// Not described: not a method.
struct internal_note {
  int n;
};
using protocol = troupe::protocol<deposit, balance, get_statement, audit, crash, stall, internal_note>;
}  // namespace bank

struct bank_actor : troupe::actor<bank::protocol> {
  void on(const bank::deposit& d) {
    accounts_[d.account] += d.cents;
    history_[d.account].push_back("deposit " + std::to_string(d.cents));
  }
  std::int64_t on(const bank::balance& b) { return accounts_[b.account]; }
  bank::statement on(const bank::get_statement& s) { return {s.account, accounts_[s.account], history_[s.account]}; }
  void on(bank::audit /*unused*/) { ++audits_; }
  bool on(bank::crash /*unused*/) { throw std::runtime_error("the vault is on fire"); }
  // Never replies: the request is kept and dropped only when the actor stops.
  void on(bank::stall /*unused*/, troupe::reply_promise<bool> later) { stalled_.push_back(std::move(later)); }
  void on(bank::internal_note /*unused*/) {}

 private:
  std::map<std::string, std::int64_t> accounts_;
  std::map<std::string, std::vector<std::string>> history_;
  std::vector<troupe::reply_promise<bool>> stalled_;
  int audits_ = 0;
};

// Calls and waits (with a deadline) for the one completion.
gw::call_result call(const gw::methods& m, std::string_view method, std::string_view params,
                     std::optional<std::chrono::nanoseconds> timeout = std::nullopt) {
  auto done = std::make_shared<std::promise<gw::call_result>>();
  auto calls = std::make_shared<std::atomic<int>>(0);
  m.call(method, params.empty() ? json::value(nullptr) : json::parse(params), timeout,
         [done, calls](gw::call_result r) {
           if (calls->fetch_add(1) == 0) done->set_value(std::move(r));
         });
  std::future<gw::call_result> f = done->get_future();
  if (f.wait_for(10s) != std::future_status::ready)
    return gw::call_failure{gw::failure::internal, "test: no completion"};
  gw::call_result r = f.get();
  EXPECT_EQ(calls->load(), 1);
  return r;
}

std::string reply_text(const gw::call_result& r) {
  if (const auto* v = std::get_if<json::value>(&r)) return json::serialize(*v);
  const auto& f = std::get<gw::call_failure>(r);
  return std::string("failure: ") + std::string(gw::to_string(f.kind)) + ": " + f.message;
}

gw::failure failure_kind(const gw::call_result& r) {
  const auto* f = std::get_if<gw::call_failure>(&r);
  EXPECT_NE(f, nullptr) << reply_text(r);
  return f ? f->kind : gw::failure::internal;
}

TEST(gateway_methods, described_message_types_become_methods_named_after_the_type) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  std::vector<std::string> names;
  for (const gw::method_info& i : m.list()) names.push_back(i.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bank.balance", "bank.crash", "bank.deposit", "bank.get_statement",
                                             "bank.run_audit", "bank.stall"}));
  const gw::method_info* deposit = m.find("bank.deposit");
  ASSERT_NE(deposit, nullptr);
  EXPECT_FALSE(deposit->is_request);
  EXPECT_EQ(deposit->params, (std::vector<std::string>{"account", "cents"}));
  ASSERT_NE(m.find("bank.balance"), nullptr);
  EXPECT_TRUE(m.find("bank.balance")->is_request);
  EXPECT_EQ(m.find("bank.internal_note"), nullptr);
}

TEST(gateway_methods, parameters_by_name_and_by_position_reach_the_actor_and_the_reply_comes_back_as_json) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  EXPECT_EQ(reply_text(call(m, "bank.deposit", R"({"account":"alice","cents":250})")), "null");
  EXPECT_EQ(reply_text(call(m, "bank.deposit", R"(["alice", 100])")), "null");
  EXPECT_EQ(reply_text(call(m, "bank.balance", R"({"account":"alice"})")), "350");
  EXPECT_EQ(reply_text(call(m, "bank.balance", R"(["alice"])")), "350");
  EXPECT_EQ(reply_text(call(m, "bank.get_statement", R"({"account":"alice"})")),
            R"({"account":"alice","cents":350,"history":["deposit 250","deposit 100"]})");
  EXPECT_EQ(reply_text(call(m, "bank.run_audit", "")), "null");
}

TEST(gateway_methods, parameters_that_do_not_convert_are_invalid_and_reach_no_actor) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  for (const char* bad :
       {R"({"account":"alice","cents":"many"})", R"({"account":"alice"})", R"({"account":"alice","cents":1,"extra":2})",
        R"(["alice"])", R"(["alice",1,2])", R"("alice")", R"(42)"}) {
    EXPECT_EQ(failure_kind(call(m, "bank.deposit", bad)), gw::failure::invalid_params) << bad;
  }
  EXPECT_EQ(failure_kind(call(m, "bank.deposit", "")), gw::failure::invalid_params);
  // None of them was a deposit.
  EXPECT_EQ(reply_text(call(m, "bank.balance", R"({"account":"alice"})")), "0");
}

TEST(gateway_methods, an_unknown_method_is_method_not_found) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  EXPECT_EQ(failure_kind(call(m, "bank.rob", "{}")), gw::failure::method_not_found);
  EXPECT_EQ(failure_kind(call(m, "internal_note", "{}")), gw::failure::method_not_found);
  EXPECT_EQ(failure_kind(call(m, "bank.internal_note", R"({"n":1})")), gw::failure::method_not_found);
}

TEST(gateway_methods, an_actor_that_fails_the_call_reports_its_exit_reason_and_later_calls_see_it_down) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  gw::call_result r = call(m, "bank.crash", "");
  EXPECT_EQ(failure_kind(r), gw::failure::actor_down);
  EXPECT_NE(reply_text(r).find("the vault is on fire"), std::string::npos) << reply_text(r);
  EXPECT_EQ(failure_kind(call(m, "bank.balance", R"({"account":"a"})")), gw::failure::actor_down);
  EXPECT_EQ(failure_kind(call(m, "bank.deposit", R"({"account":"a","cents":1})")), gw::failure::actor_down);
}

TEST(gateway_methods, the_callers_deadline_bounds_the_ask_and_a_timeout_is_reported_as_one) {
  troupe::system sys;
  gw::methods m(sys, gw::settings{.ask_timeout = 30s});
  m.expose("bank", sys.spawn<bank_actor>());
  EXPECT_EQ(failure_kind(call(m, "bank.stall", "", 50ms)), gw::failure::timeout);
  EXPECT_EQ(m.in_flight(), 0U);
}

TEST(gateway_methods, calls_beyond_the_in_flight_bound_are_refused_at_once_and_the_others_complete) {
  troupe::system sys;
  gw::methods m(sys, gw::settings{.ask_timeout = 500ms, .max_in_flight = 4});
  m.expose("bank", sys.spawn<bank_actor>());
  std::vector<std::future<gw::call_result>> stalled;
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<gw::call_result>>();
    stalled.push_back(p->get_future());
    m.call("bank.stall", nullptr, std::nullopt, [p](gw::call_result r) { p->set_value(std::move(r)); });
  }
  EXPECT_EQ(m.in_flight(), 4U);
  EXPECT_EQ(failure_kind(call(m, "bank.balance", R"({"account":"a"})")), gw::failure::overloaded);
  for (auto& f : stalled) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(failure_kind(f.get()), gw::failure::timeout);
  }
  EXPECT_EQ(m.in_flight(), 0U);
  EXPECT_EQ(reply_text(call(m, "bank.balance", R"({"account":"a"})")), "0");
}

TEST(gateway_methods, many_threads_calling_at_once_each_get_their_own_reply_exactly_once) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>());
  constexpr int threads = 4;
  constexpr int per_thread = 500;
  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int t = 0; t < threads; ++t) {
    callers.emplace_back([&, t] {
      const std::string account = "acct" + std::to_string(t);
      for (int i = 1; i <= per_thread; ++i) {
        (void)call(m, "bank.deposit", R"({"account":")" + account + R"(","cents":1})");
        if (reply_text(call(m, "bank.balance", R"({"account":")" + account + R"("})")) == std::to_string(i)) {
          right.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& c : callers) c.join();
  EXPECT_EQ(right.load(), threads * per_thread);
  EXPECT_EQ(m.in_flight(), 0U);
}

TEST(gateway_methods, a_call_in_flight_when_the_system_stops_completes_as_dropped) {
  auto sys = std::make_unique<troupe::system>();
  auto m = std::make_unique<gw::methods>(*sys, gw::settings{.ask_timeout = 30s});
  m->expose("bank", sys->spawn<bank_actor>());
  auto p = std::make_shared<std::promise<gw::call_result>>();
  m->call("bank.stall", nullptr, std::nullopt, [p](gw::call_result r) { p->set_value(std::move(r)); });
  std::future<gw::call_result> f = p->get_future();
  sys->shutdown();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const gw::failure kind = failure_kind(f.get());
  EXPECT_TRUE(kind == gw::failure::internal || kind == gw::failure::actor_down) << gw::to_string(kind);
  m.reset();
}

}  // namespace

// --- streams ---------------------------------------------------------------

namespace ticker {
struct tick {
  std::int64_t n;
  std::string label;
};
BOOST_DESCRIBE_STRUCT(tick, (), (n, label))
struct count_to {
  std::int64_t n;
  troupe::gateway::stream_sink<tick> sink;
  using stream = tick;
};
BOOST_DESCRIBE_STRUCT(count_to, (), (n))
// Sends `n` ticks, then stops without ending the stream.
struct count_and_die {
  std::int64_t n;
  troupe::gateway::stream_sink<tick> sink;
  using stream = tick;
};
BOOST_DESCRIBE_STRUCT(count_and_die, (), (n))
// Keeps the sink; sends nothing until told.
struct hold {
  troupe::gateway::stream_sink<tick> sink;
  using stream = tick;
};
BOOST_DESCRIBE_STRUCT(hold, (), ())
struct release {
  using reply = bool;  // whether the held stream still took an item
};
BOOST_DESCRIBE_STRUCT(release, (), ())
using protocol = troupe::protocol<count_to, count_and_die, hold, release>;
}  // namespace ticker

struct ticker_actor : troupe::actor<ticker::protocol> {
  void on(const ticker::count_to& c) {
    for (std::int64_t i = 1; i <= c.n; ++i) {
      if (!c.sink.send({i, "tick " + std::to_string(i)})) return;
    }
    c.sink.end();
  }
  void on(const ticker::count_and_die& c) {
    for (std::int64_t i = 1; i <= c.n; ++i) (void)c.sink.send({i, "last words"});
    stop(troupe::exit_reason::error("out of ticks"));
  }
  void on(ticker::hold h) { held_ = std::move(h.sink); }
  bool on(ticker::release /*unused*/) { return held_.send({0, "late"}); }

 private:
  troupe::gateway::stream_sink<ticker::tick> held_;
};

// A stream's items and its end, gathered; waits with a deadline.
struct gathered {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> items;
  std::optional<std::optional<gw::call_failure>> end;
  int ends = 0;

  gw::stream_callbacks callbacks(std::size_t take_at_most = SIZE_MAX) {
    return {[this, take_at_most](const json::value& v) {
              std::lock_guard lock(mutex);
              if (items.size() >= take_at_most) return false;
              items.push_back(json::serialize(v));
              return true;
            },
            [this](std::optional<gw::call_failure> f) {
              std::lock_guard lock(mutex);
              ++ends;
              end = std::move(f);
              cv.notify_all();
            }};
  }
  bool wait_end() {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 10s, [&] { return end.has_value(); });
  }
};

TEST(gateway_streams, a_stream_method_is_listed_with_its_item_shape_and_without_the_sink) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("ticker", sys.spawn<ticker_actor>());
  const gw::method_info* c = m.find("ticker.count_to");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->is_stream);
  EXPECT_FALSE(c->is_request);
  EXPECT_EQ(c->params, std::vector<std::string>{"n"});
  EXPECT_EQ(c->reply.name, "tick");
}

TEST(gateway_streams, every_item_arrives_in_order_then_the_end) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("ticker", sys.spawn<ticker_actor>());
  gathered g;
  (void)m.call_stream("ticker.count_to", json::parse(R"({"n":3})"), std::nullopt, g.callbacks());
  ASSERT_TRUE(g.wait_end());
  EXPECT_FALSE(g.end->has_value());
  EXPECT_EQ(g.items, (std::vector<std::string>{R"({"n":1,"label":"tick 1"})", R"({"n":2,"label":"tick 2"})",
                                               R"({"n":3,"label":"tick 3"})"}));
  EXPECT_EQ(g.ends, 1);
  EXPECT_EQ(m.in_flight(), 0U);
}

TEST(gateway_streams, a_protocol_without_streams_gets_the_whole_stream_as_one_array) {
  troupe::system sys;
  gw::methods m(sys, gw::settings{.max_stream_items = 5});
  m.expose("ticker", sys.spawn<ticker_actor>());
  EXPECT_EQ(reply_text(call(m, "ticker.count_to", R"([2])")), R"([{"n":1,"label":"tick 1"},{"n":2,"label":"tick 2"}])");
  EXPECT_EQ(failure_kind(call(m, "ticker.count_to", R"([6])")), gw::failure::overloaded);
  EXPECT_EQ(m.in_flight(), 0U);
}

TEST(gateway_streams, an_actor_that_stops_mid_stream_ends_it_as_actor_down_with_its_reason) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("ticker", sys.spawn<ticker_actor>());
  gathered g;
  (void)m.call_stream("ticker.count_and_die", json::parse("[2]"), std::nullopt, g.callbacks());
  ASSERT_TRUE(g.wait_end());
  ASSERT_TRUE(g.end->has_value());
  EXPECT_EQ((*g.end)->kind, gw::failure::actor_down);
  EXPECT_NE((*g.end)->message.find("out of ticks"), std::string::npos) << (*g.end)->message;
  EXPECT_EQ(g.items.size(), 2U);
}

TEST(gateway_streams, a_cancelled_or_expired_stream_ends_once_and_the_actor_sees_its_sends_refused) {
  troupe::system sys;
  gw::methods m(sys);
  auto t = sys.spawn<ticker_actor>();
  m.expose("ticker", t);
  {
    gathered g;
    std::function<void()> cancel = m.call_stream("ticker.hold", nullptr, std::nullopt, g.callbacks());
    cancel();
    cancel();  // idempotent
    ASSERT_TRUE(g.wait_end());
    ASSERT_TRUE(g.end->has_value());
    EXPECT_NE((*g.end)->message.find("cancelled"), std::string::npos) << (*g.end)->message;
    EXPECT_FALSE(t.ask(ticker::release{}, 10s).get());
    EXPECT_EQ(g.ends, 1);
  }
  {
    gathered g;
    (void)m.call_stream("ticker.hold", nullptr, 50ms, g.callbacks());
    ASSERT_TRUE(g.wait_end());
    ASSERT_TRUE(g.end->has_value());
    EXPECT_EQ((*g.end)->kind, gw::failure::timeout);
    EXPECT_FALSE(t.ask(ticker::release{}, 10s).get());
  }
  EXPECT_EQ(m.in_flight(), 0U);
}

TEST(gateway_streams, a_consumer_that_takes_no_more_fails_the_stream_as_overloaded) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("ticker", sys.spawn<ticker_actor>());
  gathered g;
  (void)m.call_stream("ticker.count_to", json::parse("[100]"), std::nullopt, g.callbacks(10));
  ASSERT_TRUE(g.wait_end());
  ASSERT_TRUE(g.end->has_value());
  EXPECT_EQ((*g.end)->kind, gw::failure::overloaded);
  EXPECT_EQ(g.items.size(), 10U);
}
