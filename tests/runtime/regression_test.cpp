// Regression tests for the findings of the runtime review (fixed in 10ba3c6):
// one test per finding, each asserting the correct behaviour so that it fails
// (or reports under ASan/TSan) on the code before the fix. Deterministic where
// the scenario allows it; threaded tests have a watchdog and wait on events
// with deadlines, never on time passing.
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using event_kind = troupe::supervisor_event::kind;

troupe::config two_workers() {
  troupe::config cfg;
  cfg.worker_threads = 2;
  return cfg;
}

// The test decides when a blocked handler (or constructor) may return.
struct gate {
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::once_flag entered_once;
  std::once_flag opened;
  void enter() {
    std::call_once(entered_once, [this] { entered.set_value(); });
  }
  void wait() {
    enter();
    // Bounded so that a failed test cannot leave a thread blocked forever.
    (void)released.wait_for(60s);
  }
  void open() {
    std::call_once(opened, [this] { release.set_value(); });
  }
};

// Opens the gate on every path out of a test, so that a blocked thread finishes.
struct open_on_exit {
  std::shared_ptr<gate> g = std::make_shared<gate>();
  ~open_on_exit() { g->open(); }
};

// Where an actor reports its starts (and its current ref), for threaded tests
// that need a child's typed ref or wait for a restart.
template <class P>
class start_record {
 public:
  void started(troupe::ref<P> self) {
    {
      std::lock_guard lock(mutex_);
      self_ = std::move(self);
      ++starts_;
    }
    changed_.notify_all();
  }
  bool wait_for_starts(int n, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return starts_ >= n; });
  }
  [[nodiscard]] int starts() const {
    std::lock_guard lock(mutex_);
    return starts_;
  }
  [[nodiscard]] troupe::ref<P> self() const {
    std::lock_guard lock(mutex_);
    return self_;
  }
  // The actor's cell keeps this record (its factory's argument): dropping the
  // ref breaks that cycle.
  void forget() {
    std::lock_guard lock(mutex_);
    self_ = {};
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  int starts_ = 0;
  troupe::ref<P> self_;
};

// Declared before the system, so it runs after the system's shutdown.
template <class P>
struct forget_on_exit {
  std::shared_ptr<start_record<P>> record;
  ~forget_on_exit() { record->forget(); }
};

// Lines appended by actors and supervisor hooks, waited on by the test.
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
    return changed_.wait_for(lock, timeout, [&] { return count_locked(line) > 0; });
  }
  [[nodiscard]] std::size_t count(const std::string& line) const {
    std::lock_guard lock(mutex_);
    return count_locked(line);
  }

 private:
  [[nodiscard]] std::size_t count_locked(const std::string& line) const {
    return static_cast<std::size_t>(std::count(lines_.begin(), lines_.end(), line));
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

// True once the thread `tid` of this process sleeps in the futex syscall (a
// sender waiting for room in a bounded mailbox), false if it does not within
// `timeout` or /proc cannot tell. Linux-specific, like the futex the mailbox uses.
bool sleeps_in_futex(pid_t tid, std::chrono::seconds timeout) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(path);
    long number = -1;
    if (!(in >> number)) return false;
    if (number == SYS_futex) return true;
    std::this_thread::yield();
  }
  return false;
}

// --- 1: a task<R> handler keeps its message alive across co_await ------------------

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

TEST(regression, a_coroutine_handler_taking_its_message_by_const_ref_can_use_it_after_a_co_await) {
  troupe::system sys{troupe::config::deterministic()};
  auto b = sys.spawn<backend>();
  auto f = sys.spawn<frontend>(b);
  // Longer than any small-string buffer: the text lives on the heap.
  const std::string name(64, 'n');
  EXPECT_EQ(f.ask(greet{name}, 30s).get(), name + ":7");
}

// --- 2: temporary children that end at once while their supervisor starts them --------

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

TEST(regression, temporary_children_that_fail_on_start_leave_the_table_while_spawn_supervisor_still_starts_the_rest) {
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

// --- 3: a spawn racing with shutdown ---------------------------------------------------

struct probe {
  using reply = int;
};
using probe_protocol = troupe::protocol<probe>;
struct slow_to_construct : troupe::actor<probe_protocol> {
  explicit slow_to_construct(gate* g) { g->wait(); }
  int on(probe) { return 1; }
};

TEST(regression, a_spawn_in_flight_when_shutdown_completes_throws_system_stopped_or_yields_a_stopped_actor) {
  troupe::test_support::watchdog guard;
  open_on_exit constructor;
  troupe::system sys{two_workers()};
  troupe::ref<probe_protocol> spawned;
  std::optional<troupe::errc> refused;
  std::thread spawner([&] {
    try {
      spawned = sys.spawn<slow_to_construct>(constructor.g.get());
    } catch (const troupe::troupe_error& e) {
      refused = e.error().code();
    }
  });
  // The spawn passed its "system running?" check and is inside the constructor.
  ASSERT_EQ(constructor.g->entered.get_future().wait_for(30s), std::future_status::ready);
  sys.shutdown();  // knows nothing of the actor under construction, so it returns
  constructor.g->open();
  spawner.join();

  EXPECT_EQ(sys.live_actors(), 0u) << "an actor came alive after shutdown() returned";
  if (refused) {
    EXPECT_EQ(*refused, troupe::errc::system_stopped);
  } else {
    EXPECT_EQ(spawned.tell(probe{}), troupe::make_error_code(troupe::errc::no_such_actor));
  }
}

// --- 4: senders blocked on a full mailbox return when the actor ends -----------------

struct hold {
  std::shared_ptr<gate> g;
};
struct item {};
using holder_protocol = troupe::protocol<hold, item>;
struct holds_then_stops : troupe::actor<holder_protocol> {
  void on(const hold& h) {
    h.g->wait();
    stop();
  }
  void on(item) {}
};

TEST(regression, senders_blocked_on_a_full_block_policy_mailbox_all_return_when_the_actor_stops) {
  troupe::test_support::watchdog guard;
  open_on_exit handler;
  troupe::system sys{two_workers()};
  auto a = sys.spawn<holds_then_stops>(troupe::bounded{1, troupe::overflow_policy::block});
  ASSERT_FALSE(a.tell(hold{handler.g}));
  ASSERT_EQ(handler.g->entered.get_future().wait_for(30s), std::future_status::ready);
  ASSERT_FALSE(a.tell(item{}));  // the one slot: the mailbox is full now

  // Shared with the senders, which a failing run leaves blocked (detached).
  struct senders_state {
    troupe_test::countdown returned{3};
    std::mutex mutex;
    std::vector<std::error_code> results;
    std::vector<pid_t> tids;
  };
  auto state = std::make_shared<senders_state>();
  std::vector<std::thread> senders;
  troupe_test::countdown tids_known(3);
  for (int i = 0; i < 3; ++i) {
    senders.emplace_back([a, state, &tids_known] {
      {
        std::lock_guard lock(state->mutex);
        state->tids.push_back(::gettid());
      }
      tids_known.count_down();
      const std::error_code result = a.tell(item{});
      {
        std::lock_guard lock(state->mutex);
        state->results.push_back(result);
      }
      state->returned.count_down();
    });
  }
  ASSERT_TRUE(tids_known.wait_for(30s));
  // Each sender is waiting for room before the actor stops (where /proc can say so).
  std::vector<pid_t> tids;
  {
    std::lock_guard lock(state->mutex);
    tids = state->tids;
  }
  for (pid_t tid : tids) (void)sleeps_in_futex(tid, 10s);
  handler.g->open();  // the handler returns and the actor stops

  const bool all_returned = state->returned.wait_for(30s);
  EXPECT_TRUE(all_returned) << state->returned.left() << " of 3 senders still blocked after the actor stopped";
  for (auto& t : senders) {
    if (all_returned) {
      t.join();
    } else {
      t.detach();  // blocked for good: only the shared state is touched if they ever return
    }
  }
  if (all_returned) {
    std::lock_guard lock(state->mutex);
    for (const auto& r : state->results) EXPECT_EQ(r, troupe::make_error_code(troupe::errc::no_such_actor));
  }
}

// --- 5: the timer thread never blocks in a send ------------------------------------

struct self_check {
  using reply = int;
};
struct suspended {};
struct resumed {
  troupe::errc outcome;
};
using report_protocol = troupe::protocol<suspended, resumed>;
struct start_asking {
  troupe::ref<report_protocol> report;
};
struct filler {};
using self_asker_protocol = troupe::protocol<start_asking, self_check, filler>;
struct self_asker : troupe::actor<self_asker_protocol> {
  int on(self_check) { return 1; }
  void on(filler) {}
  // Sequential: the self-ask cannot be answered while this handler awaits, so
  // only its timeout — a timer — resumes it.
  troupe::task<void> on(start_asking s) {
    auto pending = self().ask(self_check{}, 200ms);
    (void)s.report.tell(suspended{});
    auto r = co_await pending.as_expected();
    (void)s.report.tell(resumed{r ? troupe::errc::ok : r.error().code()});
  }
};

TEST(regression, a_send_after_to_a_full_block_policy_mailbox_does_not_stall_the_timer_thread) {
  troupe::test_support::watchdog guard;
  troupe::system sys{two_workers()};
  troupe::scoped<report_protocol> inbox{sys};
  auto a = sys.spawn<self_asker>(troupe::bounded{1, troupe::overflow_policy::block});
  ASSERT_FALSE(a.tell(start_asking{inbox.self()}));
  ASSERT_TRUE(inbox.receive<suspended>(30s));
  // The waiting self_check fills the one slot: this send finds the mailbox full
  // on the timer thread, before the ask's timeout is due.
  (void)sys.send_after(a, 1ms, filler{});
  auto r = inbox.receive<resumed>(30s);
  ASSERT_TRUE(r) << "the ask timeout never fired: the timer thread is stuck in a send";
  EXPECT_EQ(r->outcome, troupe::errc::timeout);
}

// --- 6: dead watchers leave their target's monitor list ------------------------------

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

using watcher_protocol = troupe::protocol<nothing>;
struct short_lived_watcher : troupe::actor<watcher_protocol> {
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

TEST(regression, watchers_that_monitor_a_long_lived_actor_and_stop_are_not_kept_alive_by_it) {
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

// --- 7: two children failing at once restart once under one_for_all ------------------

struct fail_now {};
using failing_protocol = troupe::protocol<fail_now>;
struct counts_constructions : troupe::actor<failing_protocol> {
  explicit counts_constructions(const std::shared_ptr<std::vector<std::string>>& log, std::string name) {
    log->push_back(std::move(name));
  }
  void on(fail_now) { throw std::runtime_error("failed"); }
};

TEST(regression, two_children_failing_at_once_under_one_for_all_restart_once) {
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

// --- 8: send_every stops when its receiver is gone -------------------------------------

struct tick {};
struct quit {};
using ticker_protocol = troupe::protocol<tick, quit>;
struct ticker : troupe::actor<ticker_protocol> {
  explicit ticker(int* ticks) : ticks_(ticks) {}
  void on(tick) { ++*ticks_; }
  void on(quit) { stop(); }

 private:
  int* ticks_;
};

TEST(regression, a_periodic_timer_stops_once_its_receiver_has_stopped) {
  int ticks = 0;
  troupe::system sys{troupe::config::deterministic()};
  auto t = sys.spawn<ticker>(&ticks);
  troupe::timer periodic = sys.send_every(t, 10ms, tick{});
  sys.advance_time(30ms);
  EXPECT_EQ(ticks, 3);
  ASSERT_FALSE(t.tell(quit{}));
  sys.run_until_idle();
  sys.advance_time(50ms);  // the next firing finds the receiver gone
  EXPECT_EQ(ticks, 3);
  EXPECT_FALSE(periodic.cancel()) << "the timer is still pending, sending to a stopped actor";
}

// --- 9: a stuck child killed while its supervisor gives up is restarted with it -------

struct how_many {
  using reply = int;
};
using stuck_protocol = troupe::protocol<hold, fail_now, how_many>;
struct stuck_child : troupe::actor<stuck_protocol> {
  explicit stuck_child(std::shared_ptr<start_record<stuck_protocol>> record) : record_(std::move(record)) {}
  void on_start() { record_->started(self()); }
  void on(const hold& h) {
    ++handled_;
    h.g->wait();
  }
  void on(fail_now) { throw std::runtime_error("failed"); }
  int on(how_many) { return handled_; }

 private:
  std::shared_ptr<start_record<stuck_protocol>> record_;
  int handled_ = 0;
};

TEST(regression, a_child_killed_past_its_shutdown_timeout_while_its_supervisor_gives_up_is_restarted_with_the_subtree) {
  troupe::test_support::watchdog guard;
  shared_log log;
  open_on_exit handler;
  auto stuck_record = std::make_shared<start_record<stuck_protocol>>();
  auto failer_record = std::make_shared<start_record<stuck_protocol>>();
  forget_on_exit<stuck_protocol> forget_stuck{stuck_record};
  forget_on_exit<stuck_protocol> forget_failer{failer_record};
  troupe::system sys{two_workers()};

  troupe::supervisor_spec inner;
  inner.log_events = false;
  inner.max_restarts = 0;  // the first failure makes it give up
  inner.on_event = [&log](const troupe::supervisor_event& e) {
    if (e.what == event_kind::child_killed) log.add("killed " + e.child_id);
  };
  inner.children.push_back(troupe::child<stuck_child>("stuck", stuck_record).with_shutdown(50ms));
  inner.children.push_back(troupe::child<stuck_child>("failer", failer_record).with_shutdown(50ms));
  troupe::supervisor_spec outer;
  outer.log_events = false;
  outer.on_event = [&log](const troupe::supervisor_event& e) {
    if (e.what == event_kind::restarted) log.add("restarted " + e.child_id);
  };
  outer.children.push_back(troupe::supervisor_child("inner", std::move(inner)));
  auto top = troupe::spawn_supervisor(sys, std::move(outer));
  ASSERT_TRUE(stuck_record->wait_for_starts(1, 30s));
  ASSERT_TRUE(failer_record->wait_for_starts(1, 30s));
  auto stuck = stuck_record->self();

  ASSERT_FALSE(stuck.tell(hold{handler.g}));
  ASSERT_EQ(handler.g->entered.get_future().wait_for(30s), std::future_status::ready);
  // The inner supervisor gives up: it pauses its children; the stuck one
  // outlives its shutdown timeout and is killed.
  ASSERT_FALSE(failer_record->self().tell(fail_now{}));
  ASSERT_TRUE(log.wait_for_line("killed stuck", 30s));
  ASSERT_TRUE(log.wait_for_line("restarted inner", 30s));
  handler.g->open();  // the kill takes effect when the handler returns

  EXPECT_TRUE(stuck_record->wait_for_starts(2, 30s)) << "the killed child was not restarted with its subtree";
  EXPECT_TRUE(failer_record->wait_for_starts(2, 30s));
  auto handled = stuck.ask(how_many{}, 30s).try_get();
  ASSERT_TRUE(handled) << handled.error().to_string();
  EXPECT_EQ(*handled, 0);            // a fresh instance, same ref
  EXPECT_EQ(sys.live_actors(), 4u);  // outer, inner and both children
}

// --- 10: destroying a scoped inbox while a thread sends to it ------------------------

struct number {
  int value;
};
using number_protocol = troupe::protocol<number>;

TEST(regression, destroying_a_scoped_inbox_while_another_thread_keeps_sending_to_it_is_safe) {
  // A send that finds the inbox idle wakes its owner through the inbox's
  // wake-up; before the fix that wake-up died with the scoped object while the
  // sender could still be using it (ASan: heap-use-after-free when the free
  // wins the race; TSan: the free is unordered with the wake-up). Many rounds:
  // the window is a few instructions wide.
  troupe::test_support::watchdog guard;
  troupe::system sys{two_workers()};
  for (int round = 0; round < 300; ++round) {
    auto inbox = std::make_unique<troupe::scoped<number_protocol>>(sys);
    troupe::ref<number_protocol> to = inbox->self();
    std::atomic<bool> go{false};
    std::atomic<bool> done{false};
    std::atomic<int> attempts{0};
    // relaxed throughout: start and stop flags only (join() orders the rest);
    // the test must not synchronise with the sender's wake-up of the inbox.
    std::thread sender([to, &go, &done, &attempts] {
      (void)to.tell(number{1});
      while (!go.load(std::memory_order_relaxed)) {
      }
      while (!done.load(std::memory_order_relaxed)) {
        attempts.fetch_add(1, std::memory_order_relaxed);
        (void)to.tell(number{2});
      }
    });
    // Leaves the inbox idle: the sender's next message wakes it (the racy path).
    ASSERT_TRUE(inbox->receive<number>(30s));
    go.store(true, std::memory_order_relaxed);
    while (attempts.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
    inbox.reset();  // while that send is under way
    done.store(true, std::memory_order_relaxed);
    sender.join();
    EXPECT_EQ(to.tell(number{3}), troupe::make_error_code(troupe::errc::no_such_actor));
  }
}

// --- 11: a kill and the system's shutdown at nearly the same time -------------------

using plain_protocol = troupe::protocol<nothing>;
struct idle_actor : troupe::actor<plain_protocol> {
  void on(nothing) {}
};

// Stopped by the shutdown right after the child (the registry stops the newest
// first): kills the child then, so the kill lands after the child's shutdown
// request, and lets the child's handler return.
struct kill_plan {
  troupe::actor_addr child;
  std::shared_ptr<gate> child_gate;
};
struct kills_on_stop : troupe::actor<plain_protocol> {
  explicit kills_on_stop(std::shared_ptr<kill_plan> plan) : plan_(std::move(plan)) {}
  void on(nothing) {}
  void on_stop() {
    system().send_exit(plan_->child, troupe::exit_reason::killed());
    plan_->child_gate->open();
  }

 private:
  std::shared_ptr<kill_plan> plan_;
};

TEST(regression, a_supervised_child_killed_as_the_system_shuts_down_ends_for_good) {
  // Best effort: the kill must not replace the shutdown's "for good" with a
  // restartable failure. Whether the supervisor would then restart the child
  // before it stops itself depends on the schedule; the actors between the
  // child and the supervisor in stop order widen that window.
  troupe::test_support::watchdog guard;
  open_on_exit handler;
  auto record = std::make_shared<start_record<stuck_protocol>>();
  forget_on_exit<stuck_protocol> forget_child{record};
  auto plan = std::make_shared<kill_plan>();
  plan->child_gate = handler.g;
  troupe::config cfg = two_workers();
  cfg.shutdown_grace = 0ms;  // the stuck child would use all of it
  troupe::system sys{cfg};
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.max_restarts = 100;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  for (int i = 0; i < 10000; ++i) (void)sys.spawn<idle_actor>();
  (void)sys.spawn<kills_on_stop>(plan);
  auto child = sup.start_child<stuck_child>("child", record);
  plan->child = child;
  ASSERT_TRUE(record->wait_for_starts(1, 30s));
  ASSERT_FALSE(child.tell(hold{handler.g}));
  ASSERT_EQ(handler.g->entered.get_future().wait_for(30s), std::future_status::ready);

  sys.shutdown();
  EXPECT_EQ(sys.live_actors(), 0u);
  EXPECT_EQ(record->starts(), 1) << "the child was restarted during shutdown";
  EXPECT_EQ(child.tell(how_many{}), troupe::make_error_code(troupe::errc::no_such_actor));
}

}  // namespace
