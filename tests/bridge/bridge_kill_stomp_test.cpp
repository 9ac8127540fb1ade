// Issue 18's kill -9 test for the STOMP bridge (troupe/bridge/stomp.hpp) on
// ActiveMQ: the consuming *process* (bridge_consumer) is killed -9
// mid-stream twice — once running flat out, once stuck with its prefetch
// window full — a third finishes the queue and a fourth finds it empty.
// Against the real, private ActiveMQ of activemq_server.hpp. What it shows:
// nothing acknowledged is lost (every id is handled by one of the three), and
// only what a killed one had not acknowledged (client-individual ACKs) comes
// again, each marked redelivered by ActiveMQ, at most the prefetch of them.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "bridge/consumer_process.hpp"
#include "support/activemq_server.hpp"
#include "support/watchdog.hpp"
#include "troupe/bridge/stomp.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;
using troupe::test_support::account;
using troupe::test_support::activemq_server;
using troupe::test_support::consumer_process;
using troupe::test_support::handled_line;
using troupe::test_support::marked_redelivered;

// Publishes ids [first, first + count) as text bodies through the bridge's
// sink (persistent, each confirmed by a RECEIPT).
void publish_ids(std::uint16_t port, const std::string& queue, std::int64_t first, std::int64_t count) {
  troupe::system sys;
  bridge::stomp::endpoint endpoint;
  endpoint.port = std::to_string(port);
  auto sink = sys.spawn<bridge::stomp::sink<std::string>>(bridge::stomp::sink_config{endpoint, queue});
  std::vector<troupe::response<bridge::published>> confirms;
  confirms.reserve(static_cast<std::size_t>(count));
  for (std::int64_t id = first; id < first + count; ++id) {
    confirms.push_back(sink.ask(bridge::publish<std::string>{std::to_string(id), {}}, 30s));
  }
  for (auto& c : confirms) {
    const troupe::expected<bridge::published> p = c.try_get();
    ASSERT_TRUE(p) << p.error().to_string();
  }
}

bool has_id(const std::vector<handled_line>& lines, std::int64_t id) {
  for (const handled_line& h : lines) {
    if (h.id == id) return true;
  }
  return false;
}

TEST(stomp_kill,
     a_consumer_process_killed_mid_stream_loses_nothing_acknowledged_and_only_its_unacknowledged_come_back) {
  TROUPE_REQUIRE_ACTIVEMQ();
  activemq_server& broker = activemq_server::shared();
  troupe::test_support::watchdog guard(120s);
  const auto started = std::chrono::steady_clock::now();
  constexpr std::int64_t n = 2000;
  constexpr std::size_t killed_after = 400;  // lines read from each killed consumer
  constexpr std::size_t prefetch = 16;
  const std::string queue = "/queue/troupe.kill." + std::to_string(::getpid());
  const std::vector<std::string> args{"stomp", std::to_string(broker.stomp_port()), queue, std::to_string(prefetch)};
  publish_ids(broker.stomp_port(), queue, 0, n);

  // The first is killed while it runs flat out: handled messages whose ACKs
  // had not reached the broker come again.
  consumer_process first(args);
  ASSERT_TRUE(first.read_until(killed_after, 30s)) << "the first consumer handled " << first.lines().size();
  first.kill();
  // The second is killed stuck: its handler blocked (the test stopped
  // reading), a delivered message unacknowledged for certain.
  consumer_process second(args);
  ASSERT_TRUE(second.read_until(killed_after, 30s)) << "the second consumer handled " << second.lines().size();
  ASSERT_TRUE(second.wait_until_stuck(20s)) << "the second consumer's handler never blocked (seen in "
                                               "/proc/<pid>/task/*/syscall, which needs ptrace access to the child)";
  second.kill();
  ASSERT_LT(first.lines().size() + second.lines().size(), static_cast<std::size_t>(n)) << "not killed mid-stream";

  // The third finishes the queue.
  consumer_process third(args);
  std::set<std::int64_t> seen;
  for (const auto* run : {&first, &second}) {
    for (const handled_line& h : run->lines()) seen.insert(h.id);
  }
  std::size_t read = 0;
  const bool all = third.read_until(
      [&](const std::vector<handled_line>& lines) {
        for (; read < lines.size(); ++read) seen.insert(lines[read].id);
        return seen.size() >= static_cast<std::size_t>(n);
      },
      30s);
  EXPECT_TRUE(all) << "handled " << seen.size() << " distinct of " << n;
  // A marker behind everything: once the third handled it, the queue has
  // handed it all it held; then it drains (ACKs what is in flight) and ends.
  publish_ids(broker.stomp_port(), queue, n, 1);
  EXPECT_TRUE(third.read_until([](const std::vector<handled_line>& l) { return has_id(l, n); }, 30s));
  EXPECT_EQ(third.finish(30s), "exited with status 0");

  // Nothing left unacknowledged: a fourth consumer's only message is a marker sent now.
  publish_ids(broker.stomp_port(), queue, n + 1, 1);
  consumer_process fourth(args);
  EXPECT_TRUE(fourth.read_until([](const std::vector<handled_line>& l) { return has_id(l, n + 1); }, 30s));
  EXPECT_EQ(fourth.finish(30s), "exited with status 0");
  EXPECT_EQ(fourth.lines().size(), 1U) << "the queue held more than the marker: the third left some unacknowledged";

  const std::vector<const std::vector<handled_line>*> runs{&first.lines(), &second.lines(), &third.lines()};
  troupe::test_support::expect_redeliveries_within_the_window(runs, n + 1, prefetch);  // n: the third's marker
  // The second died with a message in its handler: ActiveMQ redelivers it, marked redelivered.
  EXPECT_GE(marked_redelivered(third.lines()), 1U);
  ASSERT_TRUE(third.stats().has_value()) << "the last consumer wrote no stats line";
  const auto& stats = *third.stats();
  EXPECT_EQ(stats.delivered, third.lines().size());
  EXPECT_EQ(stats.acknowledged, stats.delivered);
  EXPECT_EQ(stats.redelivered, marked_redelivered(third.lines()));
  EXPECT_EQ(stats.dead_lettered, 0U);
  const auto a = account(runs, n + 1);
  std::printf(
      "stomp kill test: %lld messages, prefetch %zu. Killed flat out: handled %zu. Killed stuck: handled %zu, "
      "%zu of them again (%zu marked redelivered). Last: delivered %llu, acknowledged %llu, redelivered %llu, "
      "%zu handled again. %lld ms\n",
      static_cast<long long>(n), prefetch, first.lines().size(), second.lines().size(), a.again[1].size(),
      marked_redelivered(second.lines()), static_cast<unsigned long long>(stats.delivered),
      static_cast<unsigned long long>(stats.acknowledged), static_cast<unsigned long long>(stats.redelivered),
      a.again[2].size(),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()));
}

}  // namespace
