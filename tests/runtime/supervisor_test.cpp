// Supervisors, deterministic and exact: which children restart (each strategy
// with each restart type), restart intensity and escalation (also through a
// two-level tree), restart in place (the same ref, the queued messages, a fresh
// instance), the event hook and its log lines, and backoff on the virtual clock.
// Dynamic children are in supervisor_children_test.cpp, ordered shutdown in
// supervisor_shutdown_test.cpp, the threaded kill path in supervision_kill_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "supervised_worker.hpp"

namespace {

using namespace std::chrono_literals;
using event_kind = troupe::supervisor_event::kind;
using troupe_test::count;
using troupe_test::explode;
using troupe_test::fail_now;
using troupe_test::matching;
using troupe_test::quit;
using troupe_test::sorted;
using troupe_test::three_children;
using troupe_test::work;
using troupe_test::worker;
using troupe_test::worker_protocol;

// --- which children restart -----------------------------------------------------

TEST(supervisor, restarts_only_the_failed_child_under_one_for_one_and_its_ref_stays_valid) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::one_for_one, &log));
  sys.run_until_idle();
  auto b = sup.child<worker_protocol>("b");
  log.clear();
  b.tell(work{1});
  b.tell(fail_now{});
  b.tell(work{2});  // already in the mailbox when b fails: survives the restart
  sys.run_until_idle();
  const std::vector<std::string> expected = {"b:work 1", "b:stop error: b failed (std::runtime_error)", "b:start",
                                             "b:work 2"};
  EXPECT_EQ(log, expected);
  EXPECT_EQ(b.ask(count{}, 1s).get(), 1);  // a fresh instance: it handled only work 2
  EXPECT_EQ(sys.live_actors(), 4u);
}

TEST(supervisor, restarts_every_child_under_one_for_all) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::one_for_all, &log));
  sys.run_until_idle();
  log.clear();
  sup.child<worker_protocol>("b").tell(fail_now{});
  sys.run_until_idle();
  std::vector<std::string> starts;
  for (auto& l : log)
    if (l.find(":start") != std::string::npos) starts.push_back(l);
  // Each sibling restarts in its own context: all three restart, in any order.
  std::sort(starts.begin(), starts.end());
  EXPECT_EQ(starts, (std::vector<std::string>{"a:start", "b:start", "c:start"}));
}

TEST(supervisor, restarts_the_failed_child_and_later_ones_under_rest_for_one) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, three_children(troupe::supervision_strategy::rest_for_one, &log));
  sys.run_until_idle();
  log.clear();
  sup.child<worker_protocol>("b").tell(fail_now{});
  sys.run_until_idle();
  std::vector<std::string> starts;
  for (auto& l : log)
    if (l.find(":start") != std::string::npos) starts.push_back(l);
  EXPECT_EQ(starts, (std::vector<std::string>{"b:start", "c:start"}));
}

TEST(supervisor, does_not_restart_a_transient_child_that_exits_normally) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.children.push_back(
      troupe::child<worker>("t", std::string("t"), &log).with_restart(troupe::restart_type::transient));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto t = sup.child<worker_protocol>("t");
  t.tell(quit{});
  sys.run_until_idle();
  EXPECT_EQ(t.tell(work{1}), troupe::make_error_code(troupe::errc::no_such_actor));
  EXPECT_EQ(sys.live_actors(), 1u);  // only the supervisor
}

TEST(supervisor, escalates_when_restart_intensity_is_exceeded) {
  std::vector<std::string> log;
  std::vector<troupe::supervisor_event::kind> events;
  troupe::system sys{troupe::config::deterministic()};
  auto spec = three_children(troupe::supervision_strategy::one_for_one, &log);
  spec.max_restarts = 2;
  spec.within = 10s;
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e.what); };
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto a = sup.child<worker_protocol>("a");
  for (int i = 0; i < 3; ++i) {
    a.tell(fail_now{});
    sys.run_until_idle();
  }
  using k = troupe::supervisor_event::kind;
  EXPECT_EQ(events, (std::vector<k>{k::restarted, k::restarted, k::escalated}));
  EXPECT_EQ(sys.live_actors(), 0u);  // children stopped, then the supervisor
}

TEST(supervisor, a_child_supervisor_that_gives_up_is_restarted_by_its_parent) {
  std::vector<std::string> log;
  std::vector<std::string> parent_events;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec inner;
  inner.log_events = false;
  inner.max_restarts = 0;
  inner.children.push_back(troupe::child<worker>("leaf", std::string("leaf"), &log));
  troupe::supervisor_spec outer;
  outer.log_events = false;
  outer.on_event = [&](const troupe::supervisor_event& e) { parent_events.push_back(e.child_id); };
  outer.children.push_back(troupe::supervisor_child("inner", std::move(inner)));
  auto top = troupe::spawn_supervisor(sys, std::move(outer));
  sys.run_until_idle();
  auto infos = top.self().ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(infos[0].id, "inner");
  EXPECT_EQ(sys.live_actors(), 3u);
  // The leaf fails; the inner supervisor (intensity 0) gives up and fails; the
  // outer one restarts it, and with it the leaf — same refs throughout.
  auto inner_ref = top.child<troupe::supervisor_protocol>("inner");
  auto leaf = troupe::supervisor_ref(inner_ref, nullptr);
  log.clear();
  // Reach the leaf through which_children of the inner supervisor.
  auto inner_children = inner_ref.ask(troupe::which_children{}, 1s).get();
  ASSERT_EQ(inner_children.size(), 1u);
  sys.send_exit(inner_children[0].address, troupe::exit_reason::error("leaf broke"));
  sys.run_until_idle();
  EXPECT_EQ(parent_events, (std::vector<std::string>{"inner"}));
  EXPECT_NE(std::find(log.begin(), log.end(), "leaf:start"), log.end());
  EXPECT_EQ(sys.live_actors(), 3u);
  (void)leaf;
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

INSTANTIATE_TEST_SUITE_P(supervisor, strategy_and_restart_type, ::testing::ValuesIn(the_table()),
                         [](const ::testing::TestParamInfo<matrix_case>& param) { return param.param.name; });

// --- intensity and escalation ----------------------------------------------------

TEST(supervisor, an_inner_supervisor_over_its_intensity_is_restarted_in_place_with_its_children) {
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

TEST(supervisor, a_top_level_supervisor_over_its_intensity_stops_its_children_in_reverse_order_and_itself) {
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

// Two children failing before their supervisor hears of either: one restart.
using failing_protocol = troupe::protocol<fail_now>;
struct counts_constructions : troupe::actor<failing_protocol> {
  explicit counts_constructions(const std::shared_ptr<std::vector<std::string>>& log, std::string name) {
    log->push_back(std::move(name));
  }
  void on(fail_now) { throw std::runtime_error("failed"); }
};

TEST(supervisor, two_children_failing_at_once_under_one_for_all_restart_once) {
  auto constructed = std::make_shared<std::vector<std::string>>();
  std::vector<troupe::supervisor_event> events;
  troupe::system sys{troupe::config::deterministic()};
  troupe::supervisor_spec spec;
  spec.strategy = troupe::supervision_strategy::one_for_all;
  spec.max_restarts = 1;  // a second restart would exceed the intensity and escalate
  spec.log_events = false;
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e); };
  spec.children.push_back(troupe::child<counts_constructions>("a", constructed, std::string("a")));
  spec.children.push_back(troupe::child<counts_constructions>("b", constructed, std::string("b")));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  constructed->clear();

  // Both fail before the supervisor hears of either failure.
  ASSERT_FALSE(sup.child<failing_protocol>("a").tell(fail_now{}));
  ASSERT_FALSE(sup.child<failing_protocol>("b").tell(fail_now{}));
  sys.run_until_idle();

  std::sort(constructed->begin(), constructed->end());
  EXPECT_EQ(*constructed, (std::vector<std::string>{"a", "b"}));  // one restart of each child
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].what, event_kind::restarted);
  EXPECT_EQ(events[0].restarts, 1u);  // counted once against the intensity
  EXPECT_EQ(sys.live_actors(), 3u);
  auto infos = sup.self().ask(troupe::which_children{}, 30s).get();
  ASSERT_EQ(infos.size(), 2u);
  for (const auto& info : infos) {
    EXPECT_TRUE(info.running) << info.id;
    EXPECT_EQ(info.restarts, 1u) << info.id;
  }
}

// --- restart in place: refs, mailboxes, failing asks; events ----------------------

TEST(supervisor, a_restarted_child_keeps_its_ref_and_handles_the_queued_messages_in_order_with_fresh_state) {
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

TEST(supervisor, the_ask_whose_handler_threw_fails_with_actor_down_and_the_exception_text) {
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

TEST(supervisor, the_event_hook_reports_restarted_not_restarted_and_escalated_with_child_and_reason) {
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

TEST(supervisor, logs_one_stderr_line_per_event_unless_log_events_is_false) {
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

// --- backoff -------------------------------------------------------------------------

TEST(supervisor, backoff_delays_a_restart_by_the_initial_delay_then_doubles_it_within_the_period) {
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

TEST(supervisor, a_restarted_supervisor_does_not_fire_the_timers_of_its_previous_instance) {
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

}  // namespace
