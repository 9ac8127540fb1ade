// reply_promise.hpp: a request handler that answers later.
#include "troupe/runtime/reply_promise.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;

struct wait_for_release {
  using reply = int;
};
struct release {
  int value = 0;
};
struct drop_all {};
using later_protocol = troupe::protocol<wait_for_release, release, drop_all>;

struct later_actor : troupe::actor<later_protocol> {
  std::vector<troupe::reply_promise<int>> waiting;
  void on(wait_for_release /*unused*/, troupe::reply_promise<int> reply) { waiting.push_back(std::move(reply)); }
  void on(release r) {
    for (auto& w : waiting) w.deliver(r.value);
    waiting.clear();
  }
  void on(drop_all /*unused*/) { waiting.clear(); }
};

TEST(reply_promise, a_request_held_by_its_handler_is_answered_when_the_actor_delivers_later) {
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<later_actor>();
  auto first = a.ask(wait_for_release{}, 5s);
  auto second = a.ask(wait_for_release{}, 5s);
  sys.run_until_idle();
  ASSERT_FALSE(a.tell(release{42}));
  EXPECT_EQ(first.get(), 42);
  EXPECT_EQ(second.get(), 42);
}

TEST(reply_promise, a_promise_dropped_unanswered_fails_the_ask_with_request_dropped) {
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<later_actor>();
  auto pending = a.ask(wait_for_release{}, 5s);
  sys.run_until_idle();
  ASSERT_FALSE(a.tell(drop_all{}));
  auto r = pending.try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::request_dropped);
}

TEST(reply_promise, an_unanswered_ask_still_times_out_at_its_own_deadline) {
  troupe::system sys{troupe::config::deterministic()};
  auto a = sys.spawn<later_actor>();
  auto r = a.ask(wait_for_release{}, 100ms).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::timeout);
}

}  // namespace
