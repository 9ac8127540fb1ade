// Topics across real processes on one host: subscribers in child processes
// (remote-spawned, each subscribing on its own node) get every publication of
// the parent once per process on the wire, in publish order; the subscribers
// of a process that is killed leave the topic, and the others go on.
#include <gtest/gtest.h>

#include "process_fixture.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;

namespace it {
namespace {

std::vector<std::int64_t> zero_to(std::int64_t n) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) all[static_cast<std::size_t>(i)] = i;
  return all;
}

TEST_F(processes, a_topic_reaches_subscribers_in_child_processes_once_per_process_and_in_order) {
  troupe::test_support::watchdog guard(120s);
  tick_log log;  // outlives the node (its actors write here)
  troupe::node parent(config("parent"));
  auto report = parent.spawn<tick_collector>(&log);
  auto ticks = parent.topic<tick>("ticks");
  constexpr std::int64_t per_child = 3;
  std::vector<troupe::node_handle> children;
  for (const char* name : {"b", "c"}) {
    auto child = parent.spawn_node(name, {"ticks"});
    ASSERT_TRUE(child) << child.error();
    for (std::int64_t k = 0; k < per_child; ++k) {
      ASSERT_TRUE(parent.spawn<tick_forwarder>(troupe::on(*child), report, k));
    }
    children.push_back(*child);
  }
  ASSERT_TRUE(ticks.await_subscribers(2 * per_child, 30s)) << ticks.stats().subscribers();

  constexpr std::int64_t count = 2000;
  for (std::int64_t i = 0; i < count; ++i) ASSERT_FALSE(ticks.publish(tick{i}));
  ASSERT_TRUE(log.wait_for(2 * per_child * count, 60s));
  for (const troupe::node_handle& child : children) {
    for (std::int64_t k = 0; k < per_child; ++k) {
      EXPECT_EQ(log.of(child.pid(), k), zero_to(count)) << child.name() << " subscriber " << k;
    }
  }
  const troupe::topic_stats s = ticks.stats();
  EXPECT_EQ(s.subscribed_nodes, 2u);
  EXPECT_EQ(s.remote_subscribers, static_cast<std::size_t>(2 * per_child));
  EXPECT_EQ(s.published, static_cast<std::uint64_t>(count));
  EXPECT_EQ(s.sent, static_cast<std::uint64_t>(2 * count));  // one record per process, not per subscriber
  EXPECT_EQ(s.dropped, 0u);
}

TEST_F(processes, the_subscribers_of_a_killed_process_leave_the_topic_and_the_others_go_on) {
  troupe::test_support::watchdog guard(120s);
  tick_log log;
  troupe::node parent(config("parent"));
  auto report = parent.spawn<tick_collector>(&log);
  auto ticks = parent.topic<tick>("ticks");
  auto doomed = parent.spawn_node("doomed", {"ticks"});
  auto survivor = parent.spawn_node("survivor", {"ticks"});
  ASSERT_TRUE(doomed && survivor);
  for (std::int64_t k = 0; k < 2; ++k) {
    ASSERT_TRUE(parent.spawn<tick_forwarder>(troupe::on(*doomed), report, k));
    ASSERT_TRUE(parent.spawn<tick_forwarder>(troupe::on(*survivor), report, k));
  }
  ASSERT_TRUE(ticks.await_subscribers(4, 30s));
  ASSERT_FALSE(ticks.publish(tick{0}));
  ASSERT_TRUE(log.wait_for(4, 30s));

  parent.kill_node(*doomed);
  ASSERT_TRUE(ticks.await_stats(
      [](const troupe::topic_stats& s) { return s.subscribed_nodes == 1 && s.remote_subscribers == 2; }, 30s))
      << ticks.stats().remote_subscribers;
  for (std::int64_t i = 1; i < 100; ++i) ASSERT_FALSE(ticks.publish(tick{i}));
  ASSERT_TRUE(log.wait_for(std::size_t{2} * 100, 30s, survivor->pid()));
  EXPECT_EQ(log.of(survivor->pid(), 0), zero_to(100));
  EXPECT_EQ(log.of(survivor->pid(), 1), zero_to(100));
  EXPECT_EQ(log.of(doomed->pid(), 0), zero_to(1));
  EXPECT_EQ(ticks.stats().sent, 1u * 2 + 99u);  // after the kill, only the survivor's process got copies
}

}  // namespace
}  // namespace it
