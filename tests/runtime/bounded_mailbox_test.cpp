// Bounded mailboxes: capacity and overflow policies, and senders waiting for room.
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "gate.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct item {
  int n;
};
struct probe {
  using reply = int;
};
using sink_protocol = troupe::protocol<item, probe>;

struct sink : troupe::actor<sink_protocol> {
  explicit sink(std::vector<int>* seen) : seen_(seen) {}
  void on(item i) { seen_->push_back(i.n); }
  int on(probe) { return static_cast<int>(seen_->size()); }
  std::vector<int>* seen_;
};

TEST(bounded_mailbox, reject_makes_tell_return_mailbox_full_and_counts_it) {
  std::vector<int> seen;
  troupe::system sys{troupe::config::deterministic()};
  auto s = sys.spawn<sink>(troupe::bounded{2, troupe::overflow_policy::reject}, &seen);
  EXPECT_FALSE(s.tell(item{1}));
  EXPECT_FALSE(s.tell(item{2}));
  EXPECT_EQ(s.tell(item{3}), troupe::make_error_code(troupe::errc::mailbox_full));
  auto r = s.ask(probe{}, 1s);  // the mailbox is still full: the ask fails at once
  sys.run_until_idle();
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  auto failed = r.try_get();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), troupe::errc::mailbox_full);
  EXPECT_EQ(s.dropped_messages(), 2u);
  EXPECT_TRUE(s.tell(item{4}) == std::error_code{});  // room again
}

TEST(bounded_mailbox, drop_newest_drops_silently_and_counts) {
  std::vector<int> seen;
  troupe::system sys{troupe::config::deterministic()};
  auto s = sys.spawn<sink>(troupe::bounded{2, troupe::overflow_policy::drop_newest}, &seen);
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(s.tell(item{i}));
  sys.run_until_idle();
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(s.dropped_messages(), 3u);
}

TEST(bounded_mailbox, drop_oldest_keeps_the_newest_messages) {
  std::vector<int> seen;
  troupe::system sys{troupe::config::deterministic()};
  auto s = sys.spawn<sink>(troupe::bounded{2, troupe::overflow_policy::drop_oldest}, &seen);
  sys.run_until_idle();  // started
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(s.tell(item{i}));
  sys.run_until_idle();
  EXPECT_EQ(seen, (std::vector<int>{4, 5}));
  EXPECT_EQ(s.dropped_messages(), 3u);
}

TEST(bounded_mailbox, an_unbounded_mailbox_reports_no_drops) {
  std::vector<int> seen;
  troupe::system sys{troupe::config::deterministic()};
  auto s = sys.spawn<sink>(&seen);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(s.tell(item{i}));
  sys.run_until_idle();
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(s.dropped_messages(), 0u);
}

struct gate {
  std::shared_future<void> open;
};
using gated_protocol = troupe::protocol<gate, item>;
using done_protocol = troupe::protocol<item>;
struct gated : troupe::actor<gated_protocol> {
  gated(std::atomic<int>* handled, troupe::ref<done_protocol> done) : handled_(handled), done_(std::move(done)) {}
  void on(const gate& g) { g.open.wait(); }  // holds its worker until the test opens the gate
  void on(item) {
    if (handled_->fetch_add(1) + 1 == 100) done_.tell(item{100});
  }
  std::atomic<int>* handled_;
  troupe::ref<done_protocol> done_;
};

TEST(bounded_mailbox, block_makes_a_plain_thread_wait_for_room_and_loses_nothing) {
  troupe::test_support::watchdog guard;
  std::atomic<int> handled{0};
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  troupe::scoped<done_protocol> done{sys};
  auto g = sys.spawn<gated>(troupe::bounded{4, troupe::overflow_policy::block}, &handled, done.self());
  std::promise<void> open;
  ASSERT_FALSE(g.tell(gate{open.get_future().share()}));
  std::atomic<int> sent{0};
  std::thread sender([&] {
    for (int i = 0; i < 100; ++i) {
      if (!g.tell(item{i})) sent.fetch_add(1);
    }
  });
  // The sender fills the mailbox and then blocks; opening the gate lets it finish.
  open.set_value();
  sender.join();
  EXPECT_EQ(sent.load(), 100);
  EXPECT_TRUE(done.receive<item>(30s));  // the 100th message was handled
  EXPECT_EQ(handled.load(), 100);
  EXPECT_EQ(g.dropped_messages(), 0u);
}

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

// An actor that stops when its one handler returns, the test deciding when.
struct hold {
  std::shared_ptr<troupe_test::gate> g;
};
using holder_protocol = troupe::protocol<hold, item>;
struct holds_then_stops : troupe::actor<holder_protocol> {
  void on(const hold& h) {
    h.g->wait();
    stop();
  }
  void on(item) {}
};

TEST(bounded_mailbox, senders_blocked_on_a_full_block_policy_mailbox_all_return_when_the_actor_stops) {
  troupe::test_support::watchdog guard;
  troupe_test::open_on_exit handler;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
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

}  // namespace
