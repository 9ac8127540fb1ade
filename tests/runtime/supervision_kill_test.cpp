// Supervision in threaded mode: the shutdown timeout's kill path, where a child
// is stuck in a handler (blocked on a gate the test controls) and cannot stop.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using event_kind = troupe::supervisor_event::kind;
// --- threaded: the shutdown timeout's kill path ------------------------------------------

// What the threaded tests wait for: lines appended by actors and hooks.
class shared_log {
 public:
  void add(std::string line) {
    {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::move(line));
    }
    changed_.notify_all();
  }
  bool wait_for_line(const std::string& line, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout,
                             [&] { return std::find(lines_.begin(), lines_.end(), line) != lines_.end(); });
  }
  bool wait_for_prefix(const std::string& prefix, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return has_prefix_locked(prefix); });
  }
  bool has_prefix(const std::string& prefix) const {
    std::lock_guard lock(mutex_);
    return has_prefix_locked(prefix);
  }
  bool contains(const std::string& line) const {
    std::lock_guard lock(mutex_);
    return std::find(lines_.begin(), lines_.end(), line) != lines_.end();
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  bool has_prefix_locked(const std::string& prefix) const {
    return std::any_of(lines_.begin(), lines_.end(), [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

// The test decides when a blocked handler may return.
struct gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::once_flag opened;
  void open() {
    std::call_once(opened, [this] { release.set_value(); });
  }
};

struct hold {
  std::shared_ptr<gate> g;
};
using blocker_protocol = troupe::protocol<hold>;

struct blocker : troupe::actor<blocker_protocol> {
  blocker(std::string name, shared_log* log) : name_(std::move(name)), log_(log) {}
  void on(const hold& h) {
    h.g->entered.set_value();
    // Bounded so that a failed test cannot leave a worker blocked forever.
    (void)h.g->released.wait_for(60s);
  }
  void on_stop(const troupe::exit_reason& r) { log_->add(name_ + ":stop " + r.to_string()); }

 private:
  std::string name_;
  shared_log* log_;
};

struct watch_down {
  troupe::actor_addr who;
  std::string name;
};
struct threaded_observer : troupe::actor<troupe::protocol<watch_down>> {
  explicit threaded_observer(shared_log* log) : log_(log) {}
  void on(const watch_down& w) { names_[monitor(w.who)] = w.name; }
  void on(const troupe::down& d) { log_->add("down " + names_[d.monitor] + " " + d.reason.to_string()); }

 private:
  shared_log* log_;
  std::map<std::uint64_t, std::string> names_;
};

// Releases the gate on every path out of a test, so the worker thread finishes.
struct release_on_exit {
  std::shared_ptr<gate> g;
  void release() { g->open(); }
  ~release_on_exit() { release(); }
};

troupe::config two_workers() {
  troupe::config cfg;
  cfg.worker_threads = 2;
  return cfg;
}

// If `open_on_kill` is given, the hook itself releases the stuck handler on
// child_killed and waits (bounded) for the child's down before it returns —
// so the child ends between the report and whatever the supervisor does after it.
troupe::supervisor_spec blocking_tree(shared_log* log, const std::shared_ptr<gate>& open_on_kill = nullptr) {
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.on_event = [log, open_on_kill](const troupe::supervisor_event& e) {
    if (e.what != event_kind::child_killed) return;
    log->add("killed " + e.child_id);
    if (open_on_kill) {
      open_on_kill->open();
      (void)log->wait_for_prefix("down " + e.child_id + " ", 30s);
    }
  };
  spec.children.push_back(troupe::child<blocker>("first", std::string("first"), log));
  spec.children.push_back(troupe::child<blocker>("stuck", std::string("stuck"), log).with_shutdown(50ms));
  return spec;
}

TEST(supervision, a_child_stuck_past_its_shutdown_timeout_is_reported_killed_and_the_supervisor_then_stops) {
  troupe::test_support::watchdog guard;
  shared_log log;  // outlives the system: on_stop writes to it
  troupe::system sys{two_workers()};
  auto sup = troupe::spawn_supervisor(sys, blocking_tree(&log));
  auto watch = sys.spawn<threaded_observer>(&log);
  auto stuck = sup.child<blocker_protocol>("stuck");
  watch.tell(watch_down{sup.self(), "sup"});
  watch.tell(watch_down{stuck, "stuck"});
  watch.tell(watch_down{sup.child<blocker_protocol>("first"), "first"});
  release_on_exit releaser{std::make_shared<gate>()};
  stuck.tell(hold{releaser.g});
  ASSERT_EQ(releaser.g->entered.get_future().wait_for(30s), std::future_status::ready);

  sup.self().tell(troupe::shutdown_supervisor{});
  ASSERT_TRUE(log.wait_for_line("killed stuck", 30s));
  EXPECT_FALSE(log.has_prefix("down stuck "));  // still in its handler: it cannot end yet
  releaser.release();
  ASSERT_TRUE(log.wait_for_line("down sup shutdown", 30s));
  ASSERT_TRUE(log.wait_for_prefix("down stuck ", 30s));
  EXPECT_TRUE(log.contains("down stuck killed")) << ::testing::PrintToString(log.lines());
  EXPECT_FALSE(log.contains("stuck:stop shutdown"));  // killed: no on_stop
  EXPECT_TRUE(log.contains("down first shutdown"));
  EXPECT_TRUE(log.contains("first:stop shutdown"));
}

TEST(supervision, a_child_reported_killed_stops_as_killed_without_on_stop) {
  // The hook releases the stuck handler the moment child_killed is reported:
  // the kill must already be requested by then, or the child stops with a
  // plain shutdown (and runs on_stop) although it was reported killed.
  troupe::test_support::watchdog guard;
  shared_log log;  // outlives the system: on_stop writes to it
  auto stuck_gate = std::make_shared<gate>();
  troupe::system sys{two_workers()};
  release_on_exit releaser{stuck_gate};  // after the system: releases before its shutdown waits
  auto sup = troupe::spawn_supervisor(sys, blocking_tree(&log, stuck_gate));
  auto watch = sys.spawn<threaded_observer>(&log);
  auto stuck = sup.child<blocker_protocol>("stuck");
  watch.tell(watch_down{sup.self(), "sup"});
  watch.tell(watch_down{stuck, "stuck"});
  stuck.tell(hold{stuck_gate});
  ASSERT_EQ(stuck_gate->entered.get_future().wait_for(30s), std::future_status::ready);

  sup.self().tell(troupe::shutdown_supervisor{});
  ASSERT_TRUE(log.wait_for_line("down sup shutdown", 30s));
  EXPECT_TRUE(log.contains("killed stuck"));
  EXPECT_TRUE(log.contains("down stuck killed"));
  EXPECT_FALSE(log.contains("stuck:stop shutdown"));
}

TEST(supervision, after_killing_a_stuck_child_the_supervisor_goes_on_without_waiting_for_its_handler) {
  // Erlang's kill is immediate; here a killed child cannot end before its
  // handler returns, so the supervisor must not wait for it once it has given
  // up on it — otherwise the shutdown timeout bounds nothing.
  troupe::test_support::watchdog guard;
  shared_log log;  // outlives the system: on_stop writes to it
  troupe::system sys{two_workers()};
  auto sup = troupe::spawn_supervisor(sys, blocking_tree(&log));
  auto watch = sys.spawn<threaded_observer>(&log);
  auto stuck = sup.child<blocker_protocol>("stuck");
  watch.tell(watch_down{sup.self(), "sup"});
  release_on_exit releaser{std::make_shared<gate>()};
  stuck.tell(hold{releaser.g});
  ASSERT_EQ(releaser.g->entered.get_future().wait_for(30s), std::future_status::ready);

  sup.self().tell(troupe::shutdown_supervisor{});
  ASSERT_TRUE(log.wait_for_line("killed stuck", 30s));
  // Deadline for an event that needs no further input; not a timing assertion.
  EXPECT_TRUE(log.wait_for_line("down sup shutdown", 10s)) << "the supervisor waits for a killed, stuck child";
  EXPECT_TRUE(log.contains("first:stop shutdown"));
  releaser.release();
  EXPECT_TRUE(log.wait_for_line("down sup shutdown", 30s));
}

}  // namespace
