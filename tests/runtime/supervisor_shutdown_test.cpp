// Ordered shutdown of a supervisor, deterministic and exact: its children in
// reverse start order and then itself, kill_on_shutdown, and nested trees depth
// first. The threaded kill path (a child stuck past its shutdown timeout) is in
// supervision_kill_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "supervised_worker.hpp"

namespace {

using namespace std::chrono_literals;
using troupe_test::matching;
using troupe_test::observe;
using troupe_test::observer;
using troupe_test::three_children;
using troupe_test::work;
using troupe_test::worker;
using troupe_test::worker_protocol;

TEST(supervisor, shutdown_supervisor_stops_children_in_reverse_start_order_then_itself) {
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

TEST(supervisor, a_child_marked_kill_on_shutdown_stops_without_on_stop) {
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

TEST(supervisor, shutting_down_a_tree_stops_the_inner_supervisors_children_before_the_earlier_siblings) {
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

}  // namespace
