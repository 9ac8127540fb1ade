// Supervisors: deterministic, exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

namespace {

using namespace std::chrono_literals;

struct work {
  int n;
};
struct fail_now {};
struct quit {};
struct count {
  using reply = int;
};
using worker_protocol = troupe::protocol<work, fail_now, quit, count>;

// Logs "<name>:start", "<name>:work n", "<name>:stop <reason>".
struct worker : troupe::actor<worker_protocol> {
  worker(std::string name, std::vector<std::string>* log) : name_(std::move(name)), log_(log) {}
  void on_start() { log_->push_back(name_ + ":start"); }
  void on(work w) {
    ++handled_;
    log_->push_back(name_ + ":work " + std::to_string(w.n));
  }
  void on(fail_now) { throw std::runtime_error(name_ + " failed"); }
  void on(quit) { stop(); }
  int on(count) { return handled_; }
  void on_stop(const troupe::exit_reason& r) { log_->push_back(name_ + ":stop " + r.to_string()); }

 private:
  std::string name_;
  std::vector<std::string>* log_;
  int handled_ = 0;
};

troupe::supervisor_spec spec_of(troupe::supervision_strategy s, std::vector<std::string>* log) {
  troupe::supervisor_spec spec;
  spec.strategy = s;
  spec.log_events = false;
  spec.children.push_back(troupe::child<worker>("a", std::string("a"), log));
  spec.children.push_back(troupe::child<worker>("b", std::string("b"), log));
  spec.children.push_back(troupe::child<worker>("c", std::string("c"), log));
  return spec;
}

TEST(supervisor, restarts_only_the_failed_child_under_one_for_one_and_its_ref_stays_valid) {
  std::vector<std::string> log;
  troupe::system sys{troupe::config::deterministic()};
  auto sup = troupe::spawn_supervisor(sys, spec_of(troupe::supervision_strategy::one_for_one, &log));
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
  auto sup = troupe::spawn_supervisor(sys, spec_of(troupe::supervision_strategy::one_for_all, &log));
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
  auto sup = troupe::spawn_supervisor(sys, spec_of(troupe::supervision_strategy::rest_for_one, &log));
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
  auto spec = spec_of(troupe::supervision_strategy::one_for_one, &log);
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

}  // namespace
