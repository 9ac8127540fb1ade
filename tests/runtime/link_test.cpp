// Links, monitors and exit signals: deterministic, exact.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

namespace {

using namespace std::chrono_literals;

struct crash {
  std::string why;
};
struct finish {};
using worker_protocol = troupe::protocol<crash, finish>;

struct worker : troupe::actor<worker_protocol> {
  void on(const crash& c) { throw std::runtime_error(c.why); }
  void on(finish) { stop(); }
};

struct watch {
  troupe::actor_addr who;
};
struct bind {
  troupe::actor_addr who;
};
struct forget {
  std::uint64_t id;
};
struct unbind {
  troupe::actor_addr who;
};
struct signal_exit {
  troupe::actor_addr to;
  troupe::exit_reason reason;
};
using watcher_protocol = troupe::protocol<watch, bind, forget, unbind, signal_exit>;

// Records every down/exit it gets; traps exits only when Trap.
template <bool Trap>
struct watcher_base : troupe::actor<watcher_protocol> {
  explicit watcher_base(std::vector<std::string>* log) : log_(log) {}
  void on(const watch& w) { ids.push_back(monitor(w.who)); }
  void on(const bind& b) { link(b.who); }
  void on(const forget& f) { demonitor(f.id); }
  void on(const unbind& u) { unlink(u.who); }
  void on(const signal_exit& s) { send_exit(s.to, s.reason); }
  void on(const troupe::down& d) { log_->push_back("down " + d.reason.to_string()); }
  void on_stop(const troupe::exit_reason& r) { log_->push_back("stopped " + r.to_string()); }
  std::vector<std::uint64_t> ids;

 protected:
  std::vector<std::string>* log_;
};

struct plain_watcher : watcher_base<false> {
  using watcher_base::watcher_base;
};

struct trapping_watcher : watcher_base<true> {
  using watcher_base::on;  // a derived on() hides the base's overloads otherwise
  using watcher_base::watcher_base;
  void on(const troupe::exit& e) { log_->push_back("exit " + e.reason.to_string()); }
};

// Records down and exit signals in detail: "down #<monitor id> <who> <reason>",
// "exit <who> <reason>" (who as an actor id, 0 for nobody). Traps exits.
struct recorder : troupe::actor<watcher_protocol> {
  explicit recorder(std::vector<std::string>* log) : log_(log) {}
  void on(const watch& w) { ids.push_back(monitor(w.who)); }
  void on(const bind& b) { link(b.who); }
  void on(const forget& f) { demonitor(f.id); }
  void on(const unbind& u) { unlink(u.who); }
  void on(const signal_exit& s) { send_exit(s.to, s.reason); }
  void on(const troupe::down& d) {
    log_->push_back("down #" + std::to_string(d.monitor) + " " + std::to_string(d.who.id()) + " " +
                    d.reason.to_string());
  }
  void on(const troupe::exit& e) { log_->push_back("exit " + std::to_string(e.who.id()) + " " + e.reason.to_string()); }
  std::vector<std::uint64_t> ids;

 private:
  std::vector<std::string>* log_;
};

TEST(monitor, delivers_down_with_the_exception_text_when_the_target_fails) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto m = sys.spawn<plain_watcher>(&log);
  m.tell(watch{w});
  sys.run_until_idle();
  w.tell(crash{"bad input"});
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "down error: bad input (std::runtime_error)");
  EXPECT_EQ(sys.live_actors(), 1u);  // the watcher is unaffected
}

TEST(monitor, delivers_down_at_once_when_the_target_is_already_dead) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  w.tell(finish{});
  sys.run_until_idle();
  auto m = sys.spawn<plain_watcher>(&log);
  m.tell(watch{w});
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "down normal");
}

TEST(monitor, demonitor_drops_a_down_that_was_already_on_its_way) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto m = sys.spawn<plain_watcher>(&log);
  m.tell(watch{w});
  sys.run_until_idle();
  w.tell(finish{});
  sys.step();  // worker... (start already ran) handles finish: the down is now queued for the watcher
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 1u);  // sanity: without demonitor it arrives
  // Again, but demonitor before the down is handled.
  log.clear();
  auto w2 = sys.spawn<worker>();
  auto m2 = sys.spawn<plain_watcher>(&log);
  m2.tell(watch{w2});
  sys.run_until_idle();
  w2.tell(finish{});
  m2.tell(forget{1});  // queued before the down that finish will produce
  sys.run_until_idle();
  EXPECT_TRUE(log.empty());
}

TEST(link, an_abnormal_exit_stops_the_linked_actor_with_the_same_reason) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto l = sys.spawn<plain_watcher>(&log);
  l.tell(bind{w});
  sys.run_until_idle();
  w.tell(crash{"boom"});
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "stopped error: boom (std::runtime_error)");
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(link, a_normal_exit_does_not_stop_the_linked_actor) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto l = sys.spawn<plain_watcher>(&log);
  l.tell(bind{w});
  sys.run_until_idle();
  w.tell(finish{});
  sys.run_until_idle();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(sys.live_actors(), 1u);
}

TEST(link, is_bidirectional) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto l = sys.spawn<plain_watcher>(&log);
  l.tell(bind{w});
  sys.run_until_idle();
  sys.send_exit(l, troupe::exit_reason::error("external"));
  sys.run_until_idle();
  EXPECT_EQ(sys.live_actors(), 0u);  // the worker followed its linked partner
}

TEST(link, a_trapping_actor_gets_exit_messages_and_keeps_running) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w1 = sys.spawn<worker>();
  auto w2 = sys.spawn<worker>();
  auto t = sys.spawn<trapping_watcher>(&log);
  t.tell(bind{w1});
  t.tell(bind{w2});
  sys.run_until_idle();
  w1.tell(crash{"first"});
  w2.tell(finish{});
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], "exit error: first (std::runtime_error)");
  EXPECT_EQ(log[1], "exit normal");
  EXPECT_EQ(sys.live_actors(), 1u);
}

TEST(link, linking_to_a_dead_actor_delivers_its_exit_at_once) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  w.tell(crash{"gone"});
  sys.run_until_idle();
  auto t = sys.spawn<trapping_watcher>(&log);
  t.tell(bind{w});
  sys.run_until_idle();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "exit error: gone (std::runtime_error)");
}

TEST(send_exit, killed_cannot_be_trapped_and_skips_on_stop) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto t = sys.spawn<trapping_watcher>(&log);
  sys.run_until_idle();
  sys.send_exit(t, troupe::exit_reason::killed());
  sys.run_until_idle();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(monitor, two_monitors_on_one_target_each_deliver_a_down_with_their_id_and_the_target) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto r = sys.spawn<recorder>(&log);
  r.tell(watch{w});
  r.tell(watch{w});
  sys.run_until_idle();
  w.tell(crash{"twice"});
  sys.run_until_idle();
  const std::string who = std::to_string(w.id());
  EXPECT_EQ(log, (std::vector<std::string>{"down #1 " + who + " error: twice (std::runtime_error)",
                                           "down #2 " + who + " error: twice (std::runtime_error)"}));
}

TEST(monitor, of_an_actor_that_already_failed_delivers_its_failure_reason) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  w.tell(crash{"earlier"});
  sys.run_until_idle();
  ASSERT_EQ(sys.live_actors(), 0u);
  auto r = sys.spawn<recorder>(&log);
  r.tell(watch{w});
  sys.run_until_idle();
  EXPECT_EQ(log,
            (std::vector<std::string>{"down #1 " + std::to_string(w.id()) + " error: earlier (std::runtime_error)"}));
}

TEST(monitor, demonitor_before_the_target_stops_means_no_down_arrives) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto r = sys.spawn<recorder>(&log);
  r.tell(watch{w});
  r.tell(watch{w});
  r.tell(forget{1});
  sys.run_until_idle();
  w.tell(crash{"late"});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"down #2 " + std::to_string(w.id()) + " error: late (std::runtime_error)"}));
}

TEST(monitor, a_killed_actor_reports_killed_to_its_monitors) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto r = sys.spawn<recorder>(&log);
  r.tell(watch{w});
  sys.run_until_idle();
  sys.send_exit(w, troupe::exit_reason::killed());
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"down #1 " + std::to_string(w.id()) + " killed"}));
}

// Counts the copies of itself alive: the test's copy plus those held (through
// the supervisor's child spec and the child cell's factory) for each watcher.
using token = std::shared_ptr<int>;

struct ping {
  using reply = int;
};
using service_protocol = troupe::protocol<ping>;
struct service : troupe::actor<service_protocol> {
  int on(ping) { return 1; }
};

struct nothing {};
using short_lived_watcher_protocol = troupe::protocol<nothing>;
// Monitors its target, then stops at once.
struct short_lived_watcher : troupe::actor<short_lived_watcher_protocol> {
  short_lived_watcher(troupe::actor_addr target, token t) : target_(std::move(target)), token_(std::move(t)) {}
  void on_start() {
    monitor(target_);
    stop();
  }
  void on(nothing) {}

 private:
  troupe::actor_addr target_;
  token token_;
};

TEST(monitor, watchers_that_monitor_a_long_lived_actor_and_stop_are_not_kept_alive_by_it) {
  // The observable of a watcher's cell: a supervised child's cell keeps the
  // arguments of its factory (for restarts) until the cell itself is freed.
  // Temporary children leave the supervisor's table when they end, so once
  // they have all ended only the target's monitor list could still hold them.
  troupe::system sys{troupe::config::deterministic()};
  auto target = sys.spawn<service>();
  troupe::supervisor_spec spec;
  spec.log_events = false;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto counted = std::make_shared<int>(0);
  constexpr int watchers = 20;
  for (int i = 0; i < watchers; ++i) {
    (void)sup.start_child<short_lived_watcher>(
        troupe::child<short_lived_watcher>("w" + std::to_string(i), troupe::actor_addr(target), counted)
            .with_restart(troupe::restart_type::temporary));
  }
  sys.run_until_idle();
  // The target has handled everything sent to it before this ask (the
  // watchers' monitor requests, and their removal).
  EXPECT_EQ(target.ask(ping{}, 30s).get(), 1);
  sys.run_until_idle();
  EXPECT_EQ(sup.self().ask(troupe::which_children{}, 30s).get().size(), 0u);
  EXPECT_EQ(sys.live_actors(), 2u);  // the target and the supervisor
  EXPECT_EQ(counted.use_count(), 1) << "dead watchers' cells are still referenced";
}

TEST(link, a_trapping_actor_learns_which_linked_actor_failed) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto r = sys.spawn<recorder>(&log);
  r.tell(bind{w});
  sys.run_until_idle();
  w.tell(crash{"who"});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"exit " + std::to_string(w.id()) + " error: who (std::runtime_error)"}));
  EXPECT_EQ(sys.live_actors(), 1u);
}

TEST(link, unlink_stops_the_propagation_of_a_failure) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto l = sys.spawn<plain_watcher>(&log);
  l.tell(bind{w});
  sys.run_until_idle();
  l.tell(unbind{w});
  sys.run_until_idle();
  w.tell(crash{"alone"});
  sys.run_until_idle();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(sys.live_actors(), 1u);  // the watcher lives on
}

TEST(link, unlink_also_stops_propagation_in_the_other_direction) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto w = sys.spawn<worker>();
  auto l = sys.spawn<plain_watcher>(&log);
  l.tell(bind{w});
  sys.run_until_idle();
  l.tell(unbind{w});
  sys.run_until_idle();
  sys.send_exit(l, troupe::exit_reason::error("watcher dies"));
  sys.run_until_idle();
  ASSERT_EQ(log, (std::vector<std::string>{"stopped error: watcher dies"}));
  EXPECT_EQ(sys.live_actors(), 1u);  // the worker lives on
  EXPECT_FALSE(w.tell(finish{}));
}

TEST(send_exit, a_normal_reason_is_ignored_by_an_actor_that_does_not_trap_exits) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto l = sys.spawn<plain_watcher>(&log);
  sys.run_until_idle();
  sys.send_exit(l, troupe::exit_reason::normal());
  sys.run_until_idle();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(sys.live_actors(), 1u);
}

TEST(send_exit, a_normal_reason_reaches_a_trapping_actor_as_a_message_from_its_sender) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto r = sys.spawn<recorder>(&log);
  auto sender = sys.spawn<recorder>(&log);
  sys.run_until_idle();
  sys.send_exit(r, troupe::exit_reason::normal());  // from outside any actor: nobody
  sys.run_until_idle();
  sender.tell(signal_exit{r, troupe::exit_reason::normal()});
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"exit 0 normal", "exit " + std::to_string(sender.id()) + " normal"}));
  EXPECT_EQ(sys.live_actors(), 2u);
}

TEST(send_exit, killed_skips_on_stop_and_linked_actors_see_killed) {
  std::vector<std::string> log;  // outlives the system: on_stop writes to it at shutdown
  troupe::system sys{troupe::config::deterministic()};
  auto l = sys.spawn<plain_watcher>(&log);
  auto r = sys.spawn<recorder>(&log);
  r.tell(bind{l});
  sys.run_until_idle();
  r.tell(signal_exit{l, troupe::exit_reason::killed()});  // from inside an actor
  sys.run_until_idle();
  EXPECT_EQ(log, (std::vector<std::string>{"exit " + std::to_string(l.id()) + " killed"}));
  EXPECT_EQ(sys.live_actors(), 1u);
}

TEST(exit_reason, is_printable_and_comparable) {
  EXPECT_EQ(troupe::exit_reason::error("x", "std::logic_error").to_string(), "error: x (std::logic_error)");
  EXPECT_EQ(troupe::exit_reason::normal(), troupe::exit_reason::normal());
  EXPECT_NE(troupe::exit_reason::shutdown(), troupe::exit_reason::killed());
  EXPECT_EQ(troupe::exit_reason::node_down("host b").to_string(), "node_down: host b");
}

}  // namespace
