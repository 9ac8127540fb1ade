// Bounded mailboxes: capacity and overflow policies.
#include <gtest/gtest.h>

#include <future>
#include <thread>
#include <vector>

#include <troupe/troupe.hpp>

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

}  // namespace
