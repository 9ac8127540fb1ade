// Dynamic children: start_child at run time, pools of workers, temporary
// children leaving the table when they end, and start_child racing with the
// end of the supervisor. Deterministic and exact except where a test says threaded.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "supervised_worker.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using troupe_test::fail_now;
using troupe_test::quit;
using troupe_test::work;
using troupe_test::worker;
using troupe_test::worker_protocol;

TEST(supervisor, start_child_adds_a_supervised_child_at_run_time) {
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

TEST(supervisor, a_pool_restarts_only_the_failed_worker_and_lists_every_worker) {
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

TEST(supervisor, each_pool_numbers_its_workers_from_one) {
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

TEST(supervisor, start_child_on_a_stopped_supervisor_throws_no_such_actor) {
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

TEST(supervisor, a_child_started_just_before_its_supervisor_stops_is_stopped_not_left_unstarted) {
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

// Threaded: children that end at once while spawn_supervisor still starts their siblings.
struct nothing {};
using nothing_protocol = troupe::protocol<nothing>;
struct fails_on_start : troupe::actor<nothing_protocol> {
  void on_start() { throw std::runtime_error("cannot start"); }
  void on(nothing) {}
};

struct watch_this {
  troupe::actor_addr who;
};
struct down_counter : troupe::actor<troupe::protocol<watch_this>> {
  explicit down_counter(troupe_test::countdown* downs) : downs_(downs) {}
  void on(const watch_this& w) { monitor(w.who); }
  void on(const troupe::down&) { downs_->count_down(); }

 private:
  troupe_test::countdown* downs_;
};

TEST(supervisor, temporary_children_that_fail_on_start_leave_the_table_while_spawn_supervisor_still_starts_the_rest) {
  // Threaded: the supervisor removes each ended temporary child from its table
  // while spawn_supervisor, on the test's thread, is still starting the later
  // ones (a data race on the table before the fix; TSan/ASan report it).
  troupe::test_support::watchdog guard;
  constexpr int rounds = 100;
  constexpr int children = 64;
  troupe_test::countdown supervisors_down(rounds);
  troupe::config cfg;
  cfg.worker_threads = 4;  // more workers than cores: the supervisor runs while the test's thread is preempted
  troupe::system sys{cfg};
  auto watcher = sys.spawn<down_counter>(&supervisors_down);
  for (int round = 0; round < rounds; ++round) {
    troupe::supervisor_spec spec;
    spec.log_events = false;
    spec.max_restarts = 1000;
    for (int i = 0; i < children; ++i) {
      spec.children.push_back(
          troupe::child<fails_on_start>("c" + std::to_string(i)).with_restart(troupe::restart_type::temporary));
    }
    auto sup = troupe::spawn_supervisor(sys, std::move(spec));
    ASSERT_FALSE(watcher.tell(watch_this{sup.self()}));
    (void)sup.self().tell(troupe::shutdown_supervisor{});
  }
  ASSERT_TRUE(supervisors_down.wait_for(30s)) << supervisors_down.left() << " supervisors never stopped";
  // Every child ended and every supervisor stopped: only the watcher is left.
  EXPECT_EQ(sys.live_actors(), 1u);
}

}  // namespace
