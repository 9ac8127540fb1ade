// Supervision, beyond the basics of supervisor_test.cpp: the full strategy x
// restart-type table, intensity and escalation through a two-level tree, stable
// refs and surviving mailboxes, the event hook, ordered shutdown (also of nested
// trees; the threaded kill path is in supervision_kill_test.cpp), backoff on the virtual clock, and
// dynamic children. Deterministic and exact except where a test says threaded.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using event_kind = troupe::supervisor_event::kind;

struct work {
  int n;
};
struct fail_now {};
struct quit {};
struct count {
  using reply = int;
};
struct explode {
  using reply = int;
};  // a request whose handler throws
using worker_protocol = troupe::protocol<work, fail_now, quit, count, explode>;

// Logs "<name>:start", "<name>:work n", "<name>:stop <reason>". If `self_slot`
// is given, every instance writes its self() there on start.
struct worker : troupe::actor<worker_protocol> {
  worker(std::string name, std::vector<std::string>* log, troupe::ref<worker_protocol>* self_slot = nullptr)
      : name_(std::move(name)), log_(log), self_slot_(self_slot) {}
  void on_start() {
    log_->push_back(name_ + ":start");
    if (self_slot_ != nullptr) *self_slot_ = self();
  }
  void on(work w) {
    ++handled_;
    log_->push_back(name_ + ":work " + std::to_string(w.n));
  }
  void on(fail_now) { throw std::runtime_error(name_ + " failed"); }
  void on(quit) { stop(); }
  int on(count) { return handled_; }
  int on(explode) { throw std::runtime_error(name_ + " exploded"); }
  void on_stop(const troupe::exit_reason& r) { log_->push_back(name_ + ":stop " + r.to_string()); }

 private:
  std::string name_;
  std::vector<std::string>* log_;
  troupe::ref<worker_protocol>* self_slot_;
  int handled_ = 0;
};

// Monitors whatever it is told to and logs "down <name> <reason>" in arrival order.
struct observe {
  troupe::actor_addr who;
  std::string name;
};
using observer_protocol = troupe::protocol<observe>;
struct observer : troupe::actor<observer_protocol> {
  explicit observer(std::vector<std::string>* log) : log_(log) {}
  void on(const observe& o) { names_[monitor(o.who)] = o.name; }
  void on(const troupe::down& d) { log_->push_back("down " + names_[d.monitor] + " " + d.reason.to_string()); }

 private:
  std::vector<std::string>* log_;
  std::map<std::uint64_t, std::string> names_;
};

std::vector<std::string> matching(const std::vector<std::string>& log, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& line : log)
    if (line.find(part) != std::string::npos) out.push_back(line);
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

troupe::supervisor_spec three_children(troupe::supervision_strategy strategy, std::vector<std::string>* log,
                                       troupe::restart_type b_restart = troupe::restart_type::permanent) {
  troupe::supervisor_spec spec;
  spec.strategy = strategy;
  spec.log_events = false;
  spec.children.push_back(troupe::child<worker>("a", std::string("a"), log));
  spec.children.push_back(troupe::child<worker>("b", std::string("b"), log).with_restart(b_restart));
  spec.children.push_back(troupe::child<worker>("c", std::string("c"), log));
  return spec;
}

// --- strategy x restart type ---------------------------------------------------

struct matrix_case {
  troupe::supervision_strategy strategy;
  troupe::restart_type restart;
  bool abnormal;                       // b fails (throws) or stops normally
  std::vector<std::string> restarted;  // which children start again, sorted
  std::string name;
};

void PrintTo(const matrix_case& c, std::ostream* out) { *out << c.name; }

class strategy_and_restart_type : public ::testing::TestWithParam<matrix_case> {};

TEST_P(strategy_and_restart_type, restart_exactly_the_children_the_table_says_when_b_exits) {
  const matrix_case& c = GetParam();
  std::vector<std::string> log;
  std::vector<troupe::supervisor_event> events;
  troupe::system sys{troupe::config::deterministic()};
  auto spec = three_children(c.strategy, &log, c.restart);
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e); };
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto b = sup.child<worker_protocol>("b");
  log.clear();
  b.tell(work{1});
  if (c.abnormal) {
    b.tell(fail_now{});
  } else {
    b.tell(quit{});
  }
  sys.run_until_idle();

  std::vector<std::string> starts;
  for (const auto& line : matching(log, ":start")) starts.push_back(line.substr(0, line.find(':')));
  EXPECT_EQ(sorted(starts), c.restarted);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].child_id, "b");
  const bool b_restarts = !c.restarted.empty();
  EXPECT_EQ(events[0].what, b_restarts ? event_kind::restarted : event_kind::not_restarted);
  // Siblings outside the restart group were not touched at all.
  for (const std::string sibling : {"a", "c"}) {
    const bool in_group = std::find(c.restarted.begin(), c.restarted.end(), sibling) != c.restarted.end();
    EXPECT_EQ(matching(log, sibling + ":stop").size(), in_group ? 1u : 0u) << sibling;
  }
  if (b_restarts) {
    auto n = b.ask(count{}, 1s).try_get();
    ASSERT_TRUE(n.has_value()) << n.error();
    EXPECT_EQ(*n, 0);  // a fresh instance
    EXPECT_EQ(sys.live_actors(), 4u);
  } else {
    EXPECT_EQ(b.tell(work{2}), troupe::make_error_code(troupe::errc::no_such_actor));
    auto n = b.ask(count{}, 1s).try_get();  // an ask to a gone actor carries its exit reason
    ASSERT_FALSE(n.has_value());
    EXPECT_EQ(n.error().code(), troupe::errc::actor_down);
    EXPECT_EQ(sys.live_actors(), 3u);
    auto infos = sup.self().ask(troupe::which_children{}, 1s).get();
    if (c.restart == troupe::restart_type::temporary) {
      // As in OTP, a temporary child's spec leaves the table when it ends.
      ASSERT_EQ(infos.size(), 2u);
      EXPECT_EQ(infos[0].id, "a");
      EXPECT_EQ(infos[1].id, "c");
      EXPECT_TRUE(infos[0].running && infos[1].running);
    } else {
      ASSERT_EQ(infos.size(), 3u);
      EXPECT_FALSE(infos[1].running);
      EXPECT_TRUE(infos[0].running && infos[2].running);
    }
  }
}

std::vector<matrix_case> the_table() {
  using s = troupe::supervision_strategy;
  using r = troupe::restart_type;
  const std::vector<std::pair<s, std::vector<std::string>>> groups = {
      {s::one_for_one, {"b"}}, {s::one_for_all, {"a", "b", "c"}}, {s::rest_for_one, {"b", "c"}}};
  const char* strategy_names[] = {"one_for_one", "one_for_all", "rest_for_one"};
  const std::pair<r, const char*> types[] = {
      {r::permanent, "permanent"}, {r::transient, "transient"}, {r::temporary, "temporary"}};
  std::vector<matrix_case> out;
  for (const auto& [strategy, group] : groups) {
    for (const auto& [type, type_name] : types) {
      for (bool abnormal : {true, false}) {
        const bool restarts = type == r::permanent || (type == r::transient && abnormal);
        out.push_back({strategy, type, abnormal, restarts ? group : std::vector<std::string>{},
                       std::string(strategy_names[static_cast<int>(strategy)]) + "_" + type_name +
                           (abnormal ? "_after_a_failure" : "_after_a_normal_stop")});
      }
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(supervision, strategy_and_restart_type, ::testing::ValuesIn(the_table()),
                         [](const ::testing::TestParamInfo<matrix_case>& param) { return param.param.name; });

// --- intensity and escalation ----------------------------------------------------

TEST(supervision, an_inner_supervisor_over_its_intensity_is_restarted_in_place_with_its_children) {
  std::vector<std::string> log;
  troupe::ref<worker_protocol> leaf_slot;
  std::vector<troupe::supervisor_event> inner_events;
  std::vector<troupe::supervisor_event> outer_events;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec inner;
  inner.log_events = false;
  inner.max_restarts = 1;
  inner.within = 60s;
  inner.on_event = [&](const troupe::supervisor_event& e) { inner_events.push_back(e); };
  inner.children.push_back(troupe::child<worker>("leaf", std::string("leaf"), &log, &leaf_slot));
  troupe::supervisor_spec outer;
  outer.log_events = false;
  outer.on_event = [&](const troupe::supervisor_event& e) { outer_events.push_back(e); };
  outer.children.push_back(troupe::supervisor_child("inner", std::move(inner)));
  auto top = troupe::spawn_supervisor(sys, std::move(outer));
  sys.run_until_idle();
  const troupe::ref<worker_protocol> leaf = leaf_slot;  // obtained before any failure
  ASSERT_TRUE(leaf);

  leaf.tell(fail_now{});
  sys.run_until_idle();  // restart 1 of 1: fine
  leaf.tell(fail_now{});
  leaf.tell(work{7});    // waits in the mailbox through the escalation
  sys.run_until_idle();  // restart 2 of 1: the inner supervisor gives up and fails

  ASSERT_EQ(inner_events.size(), 2u);
  EXPECT_EQ(inner_events[0].what, event_kind::restarted);
  EXPECT_EQ(inner_events[1].what, event_kind::escalated);
  EXPECT_EQ(inner_events[1].child_id, "leaf");
  ASSERT_EQ(outer_events.size(), 1u);
  EXPECT_EQ(outer_events[0].what, event_kind::restarted);
  EXPECT_EQ(outer_events[0].child_id, "inner");
  EXPECT_EQ(outer_events[0].reason.what(), troupe::exit_reason::kind::error);
  EXPECT_NE(outer_events[0].reason.text().find("restart intensity exceeded"), std::string::npos)
      << outer_events[0].reason;

  // The ref from before answers; the new instance handled the surviving message.
  auto handled = leaf.ask(count{}, 1s).try_get();
  ASSERT_TRUE(handled.has_value()) << handled.error();
  EXPECT_EQ(*handled, 1);
  EXPECT_EQ(leaf, leaf_slot);  // the restarted instance's self() is the same ref
  EXPECT_EQ(matching(log, "leaf:work 7").size(), 1u);
  EXPECT_EQ(sys.live_actors(), 3u);

  // The restarted inner supervisor starts with a fresh intensity: one more
  // failure is a plain restart.
  leaf.tell(fail_now{});
  sys.run_until_idle();
  ASSERT_EQ(inner_events.size(), 3u);
  EXPECT_EQ(inner_events[2].what, event_kind::restarted);
  EXPECT_EQ(outer_events.size(), 1u);
  EXPECT_EQ(leaf.ask(count{}, 1s).get(), 0);
}

TEST(supervision, a_top_level_supervisor_over_its_intensity_stops_its_children_in_reverse_order_and_itself) {
  std::vector<std::string> log;
  std::vector<troupe::supervisor_event> events;
  troupe::system sys{troupe::config::deterministic()};
  auto spec = three_children(troupe::supervision_strategy::one_for_one, &log);
  spec.max_restarts = 1;
  spec.within = 60s;
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e); };
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto a = sup.child<worker_protocol>("a");
  auto b = sup.child<worker_protocol>("b");
  auto c = sup.child<worker_protocol>("c");
  a.tell(fail_now{});
  sys.run_until_idle();
  log.clear();
  a.tell(fail_now{});
  sys.run_until_idle();

  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].what, event_kind::escalated);
  EXPECT_EQ(events[1].restarts, 2u);
  const std::vector<std::string> expected = {"a:stop error: a failed (std::runtime_error)", "c:stop shutdown",
                                             "b:stop shutdown"};
  EXPECT_EQ(log, expected);
  EXPECT_EQ(sys.live_actors(), 0u);
  for (const auto& r : {a, b, c}) EXPECT_EQ(r.tell(work{1}), troupe::make_error_code(troupe::errc::no_such_actor));
  EXPECT_EQ(sup.self().tell(troupe::which_children{}), troupe::make_error_code(troupe::errc::no_such_actor));
}

// --- stable refs, mailboxes, failing asks, events --------------------------------

TEST(supervision, a_restarted_child_keeps_its_ref_and_handles_the_queued_messages_in_order_with_fresh_state) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::one_for_one, &log));
  sys.run_until_idle();
  auto b = sup.child<worker_protocol>("b");
  b.tell(work{1});
  b.tell(work{2});
  sys.run_until_idle();
  ASSERT_EQ(b.ask(count{}, 1s).get(), 2);
  log.clear();
  b.tell(fail_now{});
  for (int i = 3; i <= 6; ++i) b.tell(work{i});
  auto after = b.ask(count{}, 1s);  // queued last: answered by the new instance
  auto n = after.try_get();
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(*n, 4);  // 3..6 only: the state is fresh
  const std::vector<std::string> expected = {
      "b:stop error: b failed (std::runtime_error)", "b:start", "b:work 3", "b:work 4", "b:work 5", "b:work 6"};
  EXPECT_EQ(log, expected);
  EXPECT_EQ(sup.child<worker_protocol>("b"), b);
}

TEST(supervision, the_ask_whose_handler_threw_fails_with_actor_down_and_the_exception_text) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::one_for_one, &log));
  sys.run_until_idle();
  auto b = sup.child<worker_protocol>("b");
  auto failing = b.ask(explode{}, 1s);
  b.tell(work{1});
  auto r = failing.try_get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down);
  EXPECT_NE(r.error().text().find("b exploded"), std::string::npos) << r.error();
  // The failing message was dropped, not replayed: the new instance saw only work 1.
  EXPECT_EQ(b.ask(count{}, 1s).get(), 1);
  EXPECT_EQ(matching(log, "b:start").size(), 2u);
}

TEST(supervision, the_event_hook_reports_restarted_not_restarted_and_escalated_with_child_and_reason) {
  std::vector<std::string> log;
  std::vector<troupe::supervisor_event> events;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.max_restarts = 1;
  spec.within = 60s;
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e); };
  spec.children.push_back(troupe::child<worker>("p", std::string("p"), &log));
  spec.children.push_back(
      troupe::child<worker>("t", std::string("t"), &log).with_restart(troupe::restart_type::temporary));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto p = sup.child<worker_protocol>("p");
  auto t = sup.child<worker_protocol>("t");
  p.tell(fail_now{});
  sys.run_until_idle();
  t.tell(quit{});
  sys.run_until_idle();
  p.tell(fail_now{});
  sys.run_until_idle();

  ASSERT_EQ(events.size(), 3u);
  const auto failed = troupe::exit_reason::error("p failed", "std::runtime_error");
  EXPECT_EQ(events[0].what, event_kind::restarted);
  EXPECT_EQ(events[0].child_id, "p");
  EXPECT_EQ(events[0].child, p.address());
  EXPECT_EQ(events[0].supervisor, sup.self().address());
  EXPECT_EQ(events[0].reason, failed);
  EXPECT_EQ(events[0].restarts, 1u);
  EXPECT_EQ(events[1].what, event_kind::not_restarted);
  EXPECT_EQ(events[1].child_id, "t");
  EXPECT_EQ(events[1].child, t.address());
  EXPECT_EQ(events[1].reason, troupe::exit_reason::normal());
  EXPECT_EQ(events[2].what, event_kind::escalated);
  EXPECT_EQ(events[2].child_id, "p");
  EXPECT_EQ(events[2].reason, failed);
}

TEST(supervision, logs_one_stderr_line_per_event_unless_log_events_is_false) {
  for (bool log_events : {true, false}) {
    std::vector<std::string> log;
    troupe::system sys{troupe::config::deterministic()};
    auto spec = three_children(troupe::supervision_strategy::one_for_one, &log);
    spec.log_events = log_events;
    auto sup = troupe::spawn_supervisor(sys, std::move(spec));
    sys.run_until_idle();
    ::testing::internal::CaptureStderr();
    sup.child<worker_protocol>("b").tell(fail_now{});
    sys.run_until_idle();
    const std::string err = ::testing::internal::GetCapturedStderr();
    if (log_events) {
      EXPECT_NE(err.find("restarted child 'b'"), std::string::npos) << err;
      EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
    } else {
      EXPECT_EQ(err, "");
    }
  }
}

// --- ordered shutdown --------------------------------------------------------------

TEST(supervision, shutdown_supervisor_stops_children_in_reverse_start_order_then_itself) {
  std::vector<std::string> log;
  std::vector<std::string> downs;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::one_for_one, &log));
  auto watch = sys.spawn<observer>(&downs);
  for (const char* id : {"a", "b", "c"}) watch.tell(observe{sup.child<worker_protocol>(id), id});
  watch.tell(observe{sup.self(), "sup"});
  sys.run_until_idle();
  log.clear();
  sup.self().tell(troupe::shutdown_supervisor{});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"c:stop shutdown", "b:stop shutdown", "a:stop shutdown"}));
  EXPECT_EQ(downs,
            (std::vector<std::string>{"down c shutdown", "down b shutdown", "down a shutdown", "down sup shutdown"}));
  EXPECT_EQ(sys.live_actors(), 1u);  // the observer
}

TEST(supervision, a_child_marked_kill_on_shutdown_stops_without_on_stop) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.children.push_back(troupe::child<worker>("gentle", std::string("gentle"), &log));
  spec.children.push_back(troupe::child<worker>("brutal", std::string("brutal"), &log).with_kill_on_shutdown());
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  log.clear();
  sup.self().tell(troupe::shutdown_supervisor{});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"gentle:stop shutdown"}));
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(supervision, shutting_down_a_tree_stops_the_inner_supervisors_children_before_the_earlier_siblings) {
  std::vector<std::string> log;
  std::vector<std::string> downs;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec inner;
  inner.log_events = false;
  inner.children.push_back(troupe::child<worker>("leaf1", std::string("leaf1"), &log));
  inner.children.push_back(troupe::child<worker>("leaf2", std::string("leaf2"), &log));
  troupe::supervisor_spec outer;
  outer.log_events = false;
  outer.children.push_back(troupe::child<worker>("x", std::string("x"), &log));
  outer.children.push_back(troupe::supervisor_child("inner", std::move(inner)));
  auto top = troupe::spawn_supervisor(sys, std::move(outer));
  sys.run_until_idle();
  auto inner_ref = top.child<troupe::supervisor_protocol>("inner");
  auto leaves = inner_ref.ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(leaves.size(), 2u);
  auto watch = sys.spawn<observer>(&downs);
  watch.tell(observe{leaves[0].address, "leaf1"});
  watch.tell(observe{leaves[1].address, "leaf2"});
  watch.tell(observe{inner_ref, "inner"});
  watch.tell(observe{top.child<worker_protocol>("x"), "x"});
  watch.tell(observe{top.self(), "outer"});
  sys.run_until_idle();
  log.clear();
  top.self().tell(troupe::shutdown_supervisor{});
  sys.run_until_idle();
  // Reverse start order, depth first: the subtree (itself in reverse order) goes
  // before x, which was started before it.
  EXPECT_EQ(log, (std::vector<std::string>{"leaf2:stop shutdown", "leaf1:stop shutdown", "x:stop shutdown"}));
  EXPECT_EQ(downs, (std::vector<std::string>{"down leaf2 shutdown", "down leaf1 shutdown", "down inner shutdown",
                                             "down x shutdown", "down outer shutdown"}));
  EXPECT_EQ(sys.live_actors(), 1u);
}

// --- backoff -------------------------------------------------------------------------

TEST(supervision, backoff_delays_a_restart_by_the_initial_delay_then_doubles_it_within_the_period) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto spec = three_children(troupe::supervision_strategy::one_for_one, &log);
  spec.backoff_initial = 100ms;
  spec.backoff_jitter = 0;
  spec.within = 60s;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto b = sup.child<worker_protocol>("b");
  log.clear();
  b.tell(fail_now{});
  b.tell(work{1});  // waits for the restart
  sys.run_until_idle();
  sys.advance_time(99ms);
  EXPECT_TRUE(matching(log, "b:start").empty());
  EXPECT_TRUE(matching(log, "b:work").empty());
  sys.advance_time(1ms);
  EXPECT_EQ(log, (std::vector<std::string>{"b:stop error: b failed (std::runtime_error)", "b:start", "b:work 1"}));

  // The second restart within the period waits twice as long.
  log.clear();
  b.tell(fail_now{});
  sys.run_until_idle();
  sys.advance_time(199ms);
  EXPECT_TRUE(matching(log, "b:start").empty());
  sys.advance_time(1ms);
  EXPECT_EQ(matching(log, "b:start").size(), 1u);
}

TEST(supervision, a_restarted_supervisor_does_not_fire_the_timers_of_its_previous_instance) {
  // The inner supervisor's first instance arms a 10 s backoff timer for its
  // failed leaf. Before it fires, the inner supervisor is killed and its parent
  // restarts it; the new instance restarts the leaf at once. The stale timer
  // must not restart the leaf a second time when it fires.
  std::vector<std::string> log;
  troupe::ref<worker_protocol> leaf;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec inner;
  inner.log_events = false;
  inner.backoff_initial = 10s;
  inner.backoff_jitter = 0;
  inner.within = 60s;
  inner.children.push_back(troupe::child<worker>("leaf", std::string("leaf"), &log, &leaf));
  troupe::supervisor_spec outer;
  outer.log_events = false;
  outer.children.push_back(troupe::supervisor_child("inner", std::move(inner)));
  auto top = troupe::spawn_supervisor(sys, std::move(outer));
  sys.run_until_idle();
  log.clear();
  leaf.tell(fail_now{});
  sys.run_until_idle();  // the leaf waits for its 10 s backoff
  EXPECT_TRUE(matching(log, "leaf:start").empty());
  sys.send_exit(top.child<troupe::supervisor_protocol>("inner"), troupe::exit_reason::killed());
  sys.run_until_idle();  // the outer restarts inner, which restarts the leaf at once
  EXPECT_EQ(matching(log, "leaf:start").size(), 1u);
  sys.advance_time(11s);  // past the stale backoff timer of the first instance
  EXPECT_EQ(matching(log, "leaf:start").size(), 1u) << "the previous instance's timer restarted the leaf again";
}

TEST(supervision, start_child_adds_a_supervised_child_at_run_time) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  auto d = sup.start_child<worker>("d", std::string("d"), &log);
  d.tell(work{1});  // sent before the supervisor adopted it: handled once it starts
  sys.run_until_idle();
  d.tell(fail_now{});
  d.tell(work{2});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"d:start", "d:work 1", "d:stop error: d failed (std::runtime_error)",
                                           "d:start", "d:work 2"}));
  EXPECT_EQ(sup.child<worker_protocol>("d"), d);
  auto infos = sup.self().ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].id, "d");
  EXPECT_EQ(infos[0].address, d);
  EXPECT_TRUE(infos[0].running);
  EXPECT_EQ(infos[0].restarts, 1u);
  EXPECT_EQ(sys.live_actors(), 2u);
}

TEST(supervision, a_pool_restarts_only_the_failed_worker_and_lists_every_worker) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  troupe::pool<worker> workers(sys, std::move(spec));
  auto w1 = workers.start(std::string("w1"), &log);
  auto w2 = workers.start(std::string("w2"), &log);
  sys.run_until_idle();
  log.clear();
  w2.tell(fail_now{});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"w2:stop error: w2 failed (std::runtime_error)", "w2:start"}));
  auto infos = workers.supervisor().self().ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].id, "worker-1");
  EXPECT_EQ(infos[0].address, w1);
  EXPECT_EQ(infos[0].restarts, 0u);
  EXPECT_EQ(infos[1].id, "worker-2");
  EXPECT_EQ(infos[1].address, w2);
  EXPECT_EQ(infos[1].restarts, 1u);
  EXPECT_EQ(sys.live_actors(), 3u);
}

TEST(supervision, each_pool_numbers_its_workers_from_one) {
  // docs/supervision.md: "ids worker-1, worker-2, ..." — per pool, so that a
  // pool's workers can be found by id whatever other pools exist.
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  troupe::pool<worker> first(sys, spec);
  troupe::pool<worker> second(sys, spec);
  (void)first.start(std::string("f1"), &log);
  auto s1 = second.start(std::string("s1"), &log);
  sys.run_until_idle();
  auto infos = second.supervisor().self().ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].id, "worker-1");
  EXPECT_EQ(infos[0].address, s1);
}

TEST(supervision, start_child_on_a_stopped_supervisor_throws_no_such_actor) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sup.self().tell(troupe::shutdown_supervisor{});
  sys.run_until_idle();
  try {
    (void)sup.start_child<worker>("late", std::string("late"), &log);
    FAIL() << "start_child on a stopped supervisor returned";
  } catch (const troupe::troupe_error& e) {
    EXPECT_EQ(e.error().code(), troupe::errc::no_such_actor);
  }
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(supervision, a_child_started_just_before_its_supervisor_stops_is_stopped_not_left_unstarted) {
  // start_child's adopt message is queued behind shutdown_supervisor: the
  // supervisor stops (it has no other child to wait for) before adopting it.
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  sup.self().tell(troupe::shutdown_supervisor{});
  auto late = sup.start_child<worker>("late", std::string("late"), &log);
  sys.run_until_idle();
  EXPECT_EQ(late.tell(work{1}), troupe::make_error_code(troupe::errc::no_such_actor));
  EXPECT_EQ(sys.live_actors(), 0u);
}

}  // namespace
