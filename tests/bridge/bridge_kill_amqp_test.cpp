// Issue 18's kill -9 test for the RabbitMQ bridge (troupe/bridge/amqp.hpp):
// the consuming *process* (bridge_consumer) is killed -9 mid-stream twice —
// once running flat out, once stuck with its prefetch window full — and a
// third finishes the queue. Against a real, private rabbitmq-server
// (rabbitmq_broker.hpp) started by the test. What it shows: nothing
// acknowledged is lost (every id is handled by one of the three), and only
// what a killed one had not acknowledged comes again, each marked redelivered
// by the broker, at most the prefetch of them.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bridge/consumer_process.hpp"
#include "bridge/rabbitmq_broker.hpp"
#include "support/watchdog.hpp"
#include "troupe/bridge/amqp.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;
namespace amqp = troupe::bridge::amqp;
using troupe::test_support::account;
using troupe::test_support::consumer_process;
using troupe::test_support::handled_line;
using troupe::test_support::marked_redelivered;
using troupe::test_support::rabbitmq_broker;

bool brokers_required() {
  const char* value = std::getenv("TROUPE_REQUIRE_BROKERS");
  return value != nullptr && std::string_view(value) == "1";
}

// The test's own AMQP connection: declares the queue as the source does
// (durable) and counts its ready messages (a passive declare).
class queue_client {
 public:
  explicit queue_client(std::uint16_t port) : c_(amqp_new_connection()) {
    amqp_socket_t* s = amqp_tcp_socket_new(c_);
    timeval tv{10, 0};
    if (amqp_socket_open_noblock(s, "127.0.0.1", port, &tv) != AMQP_STATUS_OK) {
      amqp_destroy_connection(c_);
      throw std::runtime_error("test client: cannot connect to RabbitMQ on port " + std::to_string(port));
    }
    amqp_set_rpc_timeout(c_, &tv);
    check(amqp_login(c_, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"), "login");
    amqp_channel_open(c_, 1);
    check(amqp_get_rpc_reply(c_), "channel.open");
  }
  queue_client(const queue_client&) = delete;
  queue_client& operator=(const queue_client&) = delete;
  ~queue_client() {
    amqp_channel_close(c_, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c_);
  }
  // Declares `queue` durable (as the source does); returns its ready messages
  // (delivered and unacknowledged ones not counted). passive: it must exist.
  std::uint32_t declare(const std::string& queue, bool passive) {
    const amqp_bytes_t name{queue.size(), const_cast<char*>(queue.data())};  // NOLINT: rabbitmq-c's API is not const
    const amqp_queue_declare_ok_t* ok = amqp_queue_declare(c_, 1, name, passive ? 1 : 0, 1, 0, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(c_), "queue.declare");
    return ok->message_count;
  }

 private:
  static void check(const amqp_rpc_reply_t& r, const char* what) {
    if (r.reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error(std::string("test client: ") + what + " failed");
  }
  amqp_connection_state_t c_;
};

// Publishes ids [0, n) as text bodies, persistent, through the bridge's sink;
// each confirmed by the broker.
void publish_ids(std::uint16_t port, const std::string& queue, std::int64_t n) {
  troupe::system sys;
  amqp::sink_config out;
  out.connection.port = port;
  out.routing_key = queue;  // the default exchange: the routing key is the queue
  out.content_type = "text/plain";
  auto sink = sys.spawn<amqp::sink<std::string>>(out);
  std::vector<troupe::response<bridge::published>> confirms;
  confirms.reserve(static_cast<std::size_t>(n));
  for (std::int64_t id = 0; id < n; ++id)
    confirms.push_back(sink.ask(bridge::publish<std::string>{std::to_string(id), {}}, 30s));
  for (auto& c : confirms) {
    const troupe::expected<bridge::published> p = c.try_get();
    ASSERT_TRUE(p) << p.error().to_string();
  }
}

// For state nothing signals (the broker's queue depth): re-read until `done` or the deadline.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);  // a re-read interval, not a guess at when the event happens
  }
  return done();
}

TEST(amqp_kill, a_consumer_process_killed_mid_stream_loses_nothing_acknowledged_and_only_its_unacknowledged_come_back) {
  if (const auto why = rabbitmq_broker::unavailable_reason()) {
    if (brokers_required()) FAIL() << *why << " (and TROUPE_REQUIRE_BROKERS=1)";
    GTEST_SKIP() << *why;
  }
  // Before any thread of this test starts (it sets ERL_EPMD_PORT).
  rabbitmq_broker broker;
  troupe::test_support::watchdog guard(120s);
  const auto started = std::chrono::steady_clock::now();
  constexpr std::int64_t n = 2000;
  constexpr std::size_t killed_after = 400;  // lines read from each killed consumer
  constexpr std::size_t prefetch = 16;
  const std::string queue = "troupe.test.kill." + std::to_string(::getpid());
  const std::vector<std::string> args{"amqp", std::to_string(broker.port()), queue, std::to_string(prefetch)};
  queue_client check(broker.port());
  (void)check.declare(queue, false);
  publish_ids(broker.port(), queue, n);
  ASSERT_EQ(check.declare(queue, true), static_cast<std::uint32_t>(n));

  // The first is killed while it runs flat out: handled messages whose acks
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
  // Everything the broker holds was delivered to the third: now it may drain and end.
  EXPECT_TRUE(eventually([&] { return check.declare(queue, true) == 0; }, 10s));
  EXPECT_EQ(third.finish(30s), "exited with status 0");
  // Its connection is closed: anything unacknowledged would be back in the queue.
  EXPECT_EQ(check.declare(queue, true), 0U) << "the last consumer left messages unacknowledged";

  const std::vector<const std::vector<handled_line>*> runs{&first.lines(), &second.lines(), &third.lines()};
  troupe::test_support::expect_redeliveries_within_the_window(runs, n, prefetch);
  // The second died with a message in its handler: RabbitMQ requeued it (and
  // the rest of the window), flagged redelivered.
  EXPECT_GE(marked_redelivered(third.lines()), 1U);
  ASSERT_TRUE(third.stats().has_value()) << "the last consumer wrote no stats line";
  const auto& stats = *third.stats();
  EXPECT_EQ(stats.delivered, third.lines().size());
  EXPECT_EQ(stats.acknowledged, stats.delivered);
  EXPECT_EQ(stats.redelivered, marked_redelivered(third.lines()));
  EXPECT_EQ(stats.dead_lettered, 0U);
  const auto a = account(runs, n);
  std::printf(
      "amqp kill test: %lld messages, prefetch %zu. Killed flat out: handled %zu. Killed stuck: handled %zu, "
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
