// troupe/bridge/bridge.hpp: source_core, the broker-independent half of every
// source, driven the way a bridge drives it — a fetch thread that waits for a
// slot and delivers, actors that complete the asks on their workers — with an
// in-memory settler standing for the broker. No librdkafka here, so this is the
// bridge's thread-safety test under ThreadSanitizer.
#include "troupe/bridge/bridge.hpp"

#include <gtest/gtest.h>

#include <boost/describe/class.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/watchdog.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::bridge::received;

struct item {
  std::int64_t id = 0;
};
BOOST_DESCRIBE_STRUCT(item, (), (id))

// What the broker would do with each token: record it, once.
struct ledger final : troupe::bridge::settler {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::uint64_t, int> acknowledged;
  std::map<std::uint64_t, std::string> dead;  // token -> reason
  void acknowledge(std::uint64_t token) override {
    std::lock_guard lock(mutex);
    ++acknowledged[token];
    changed.notify_all();
  }
  void dead_letter(std::uint64_t token, std::string_view /*bytes*/, const troupe::bridge::origin& /*from*/,
                   const std::string& reason) override {
    std::lock_guard lock(mutex);
    dead[token] = reason;
    changed.notify_all();
  }
  bool wait_settled(std::size_t n, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return acknowledged.size() + dead.size() >= n; });
  }
};

struct worker_state {
  std::mutex mutex;
  std::map<std::int64_t, int> attempts;
};
using worker_protocol = troupe::protocol<received<item>>;
// Handles an item; ids divisible by 5 fail on their first try, id 13 always.
struct worker : troupe::actor<worker_protocol> {
  explicit worker(std::shared_ptr<worker_state> s) : state(std::move(s)) {}
  void on(const received<item>& m) {
    int attempt = 0;
    {
      std::lock_guard lock(state->mutex);
      attempt = ++state->attempts[m.body.id];
    }
    if (m.body.id == 13 || (m.body.id % 5 == 0 && attempt == 1)) {
      throw std::runtime_error("item " + std::to_string(m.body.id) + " failed");
    }
  }
  std::shared_ptr<worker_state> state;
};

std::string bytes_of(std::int64_t id) { return troupe::bridge::json_codec<item>::encode(item{id}); }

TEST(source_core, a_fetch_thread_and_the_workers_settle_every_message_once_retrying_then_dead_lettering_failures) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto state = std::make_shared<worker_state>();
  troupe::supervisor_spec spec;
  spec.max_restarts = 1000;
  spec.within = 60s;
  spec.children.push_back(troupe::child<worker>("worker", state));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  auto broker = std::make_shared<ledger>();
  troupe::bridge::source_settings settings;
  settings.max_in_flight = 8;
  settings.max_deliveries = 3;
  settings.retry_backoff = 1ms;
  settings.max_backoff = 4ms;
  troupe::bridge::source_core<item> core(sys, sup.child<worker_protocol>("worker"), settings, broker);

  constexpr std::uint64_t n = 200;
  std::size_t most_in_flight = 0;
  std::thread fetcher([&] {
    for (std::uint64_t token = 0; token < n; ++token) {
      while (!core.wait_for_slot(100ms)) {
      }
      most_in_flight = std::max(most_in_flight, core.stats().in_flight);
      troupe::bridge::origin from;
      from.broker = "memory";
      from.offset = static_cast<std::int64_t>(token);
      // Token 77 does not decode.
      core.deliver(token, token == 77 ? std::string("{oops") : bytes_of(static_cast<std::int64_t>(token)), from);
    }
  });
  fetcher.join();
  ASSERT_TRUE(broker->wait_settled(n, 30s));
  ASSERT_TRUE(core.drain(10s));

  std::lock_guard lock(broker->mutex);
  for (const auto& [token, times] : broker->acknowledged) EXPECT_EQ(times, 1) << token;
  EXPECT_EQ(broker->acknowledged.size(), n - 2);
  ASSERT_EQ(broker->dead.size(), 2U);
  EXPECT_NE(broker->dead[13].find("failed 3 times"), std::string::npos) << broker->dead[13];
  EXPECT_NE(broker->dead[13].find("item 13 failed"), std::string::npos) << broker->dead[13];
  EXPECT_NE(broker->dead[77].find("does not decode"), std::string::npos) << broker->dead[77];
  const troupe::bridge::source_stats stats = core.stats();
  EXPECT_EQ(stats.delivered, n);
  EXPECT_EQ(stats.acknowledged, n - 2);
  EXPECT_EQ(stats.dead_lettered, 2U);
  EXPECT_EQ(stats.decode_errors, 1U);
  // 40 multiples of 5 below 200, one retry each, 77 not decoded; 13 retried twice.
  EXPECT_EQ(stats.retried, 40U + 2U);
  EXPECT_EQ(stats.in_flight, 0U);
  EXPECT_LE(most_in_flight, settings.max_in_flight);
}

TEST(source_core, retry_pause_doubles_from_retry_backoff_up_to_max_backoff) {
  troupe::bridge::source_settings s;
  s.retry_backoff = 100ms;
  s.max_backoff = 1s;
  EXPECT_EQ(troupe::bridge::retry_pause(s, 1), 100ms);
  EXPECT_EQ(troupe::bridge::retry_pause(s, 2), 200ms);
  EXPECT_EQ(troupe::bridge::retry_pause(s, 4), 800ms);
  EXPECT_EQ(troupe::bridge::retry_pause(s, 5), 1s);
  EXPECT_EQ(troupe::bridge::retry_pause(s, 4'000'000'000U), 1s);
}

// Holds replies until released: a drain has something to wait for.
struct release {};
using holder_protocol = troupe::protocol<received<item>, release>;
struct holder : troupe::actor<holder_protocol> {
  void on(const received<item>& /*unused*/, troupe::reply_promise<void> reply) { held.push_back(std::move(reply)); }
  void on(release /*unused*/) {
    for (auto& r : held) r.deliver();
    held.clear();
  }
  std::vector<troupe::reply_promise<void>> held;
};

TEST(source_core, a_drain_refuses_new_slots_and_waits_for_the_messages_in_flight) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto target = sys.spawn<holder>();
  auto broker = std::make_shared<ledger>();
  troupe::bridge::source_settings settings;
  settings.max_in_flight = 4;
  troupe::bridge::source_core<item> core(sys, target, settings, broker);
  for (std::uint64_t token = 0; token < 4; ++token) {
    ASSERT_TRUE(core.wait_for_slot(1s));
    core.deliver(token, bytes_of(static_cast<std::int64_t>(token)), {});
  }
  EXPECT_FALSE(core.wait_for_slot(0ns)) << "full";
  EXPECT_FALSE(core.drain(0ns)) << "four in flight";
  EXPECT_FALSE(core.wait_for_slot(0ns)) << "stopping: no slot, even once some are free";
  ASSERT_FALSE(target.tell(release{}));
  EXPECT_TRUE(core.drain(10s));
  std::lock_guard lock(broker->mutex);
  EXPECT_EQ(broker->acknowledged.size(), 4U);
}

}  // namespace
