// troupe/bridge/kafka.hpp against librdkafka's built-in mock cluster
// (rdkafka_mock.h): a real Kafka protocol server in this process, with
// consumer groups and offset commits, and broker failures it injects. No other
// mocks: the sink, the source and the read-backs are real librdkafka clients.
#include "troupe/bridge/kafka.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <boost/describe/class.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bridge/kafka_mock.hpp"
#include "bridge/source_control.hpp"
#include "support/watchdog.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace kafka = troupe::bridge::kafka;
namespace bridge = troupe::bridge;
using troupe::bridge::publish;
using troupe::bridge::published;
using troupe::bridge::received;

struct order {
  std::int64_t id = 0;
  std::string note;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, note))

// --- the broker -----------------------------------------------------------------------

using mock_cluster = troupe::test_support::kafka_mock;

// Quick group membership on the mock: the defaults (45 s sessions) are for real networks.
kafka::config_list quick_group() {
  return {{"session.timeout.ms", "3000"},
          {"heartbeat.interval.ms", "500"},
          {"topic.metadata.refresh.interval.ms", "1000"},
          {"fetch.wait.max.ms", "20"},
          {"fetch.error.backoff.ms", "20"}};
}

kafka::source_config consumer_for(const mock_cluster& mock, const std::string& group, const std::string& topic) {
  kafka::source_config s;
  s.brokers = mock.bootstraps();
  s.group = group;
  s.topics = {topic};
  s.config = quick_group();
  s.flow.handler_timeout = 10s;
  s.flow.retry_backoff = 5ms;
  s.flow.max_backoff = 50ms;
  return s;
}

// For each partition of `topic`: {the group's committed offset, the end of the log}.
std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> committed_and_end(const mock_cluster& mock,
                                                                                const std::string& group,
                                                                                const std::string& topic,
                                                                                int partitions) {
  char why[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  (void)rd_kafka_conf_set(conf, "bootstrap.servers", mock.bootstraps().c_str(), why, sizeof why);
  (void)rd_kafka_conf_set(conf, "group.id", group.c_str(), why, sizeof why);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) (void)rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> out;
  if (rd_kafka_committed(rk, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < list->cnt; ++i) {
      std::int64_t low = 0;
      std::int64_t high = 0;
      (void)rd_kafka_query_watermark_offsets(rk, topic.c_str(), list->elems[i].partition, &low, &high, 10000);
      out[list->elems[i].partition] = {list->elems[i].offset, high};
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return out;
}

std::int64_t committed_sum(const mock_cluster& mock, const std::string& group, const std::string& topic,
                           int partitions) {
  std::int64_t sum = 0;
  for (const auto& [partition, at] : committed_and_end(mock, group, topic, partitions))
    sum += std::max<std::int64_t>(at.first, 0);
  return sum;
}

void expect_all_committed(const mock_cluster& mock, const std::string& group, const std::string& topic, int partitions,
                          std::int64_t total) {
  const auto offsets = committed_and_end(mock, group, topic, partitions);
  ASSERT_EQ(offsets.size(), static_cast<std::size_t>(partitions));
  std::int64_t sum = 0;
  for (const auto& [partition, at] : offsets) {
    // A second consumer of the group starts at the committed offset: at the end, it gets nothing.
    EXPECT_EQ(at.first, at.second) << "partition " << partition << ": committed " << at.first << ", end " << at.second;
    sum += at.second;
  }
  EXPECT_EQ(sum, total);
}

// --- the actors -------------------------------------------------------------------------

// What the test's actors saw, shared with the test thread.
struct tally {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::int64_t, int> asked;                 // id -> handler calls
  std::map<std::int64_t, int> handled;               // id -> handler returns (each acknowledges)
  std::map<std::int32_t, std::int64_t> last_offset;  // partition -> last first-delivery offset
  bool in_order = true;
  // The handler throws when refuse(id, attempt) says so.
  std::function<bool(std::int64_t, int)> refuse = [](std::int64_t, int) { return false; };

  // True when `done` held before `timeout`; `done` runs under the mutex.
  bool wait(const std::function<bool(const tally&)>& done, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return done(*this); });
  }
  [[nodiscard]] std::size_t total_handled() const {
    std::size_t n = 0;
    for (const auto& [id, times] : handled) n += static_cast<std::size_t>(times);
    return n;
  }
};

using shop_protocol = troupe::protocol<received<order>>;
struct shop : troupe::actor<shop_protocol> {
  explicit shop(std::shared_ptr<tally> t) : seen(std::move(t)) {}
  void on(const received<order>& m) {
    std::unique_lock lock(seen->mutex);
    const int attempt = ++seen->asked[m.body.id];
    if (seen->refuse(m.body.id, attempt)) {
      lock.unlock();
      throw std::runtime_error("order " + std::to_string(m.body.id) + " refused");
    }
    if (m.from.delivery_count == 1) {
      // One sender, a FIFO mailbox: a partition's first deliveries come in offset order.
      auto [last, fresh] = seen->last_offset.try_emplace(m.from.partition, m.from.offset);
      if (!fresh) {
        if (m.from.offset <= last->second) seen->in_order = false;
        last->second = m.from.offset;
      }
    }
    ++seen->handled[m.body.id];
    seen->changed.notify_all();
  }
  std::shared_ptr<tally> seen;
};

// A message read back from a topic with a plain librdkafka consumer.
struct letter {
  std::string body;
  std::string key;
  std::map<std::string, std::string> headers;
};

// Reads `count` messages of partition 0 of `topic` from its start (assigned,
// no group: no join to wait for), each poll bounded, all within `timeout`.
std::vector<letter> read_back(const mock_cluster& mock, const std::string& topic, std::size_t count,
                              std::chrono::milliseconds timeout) {
  char why[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  (void)rd_kafka_conf_set(conf, "bootstrap.servers", mock.bootstraps().c_str(), why, sizeof why);
  (void)rd_kafka_conf_set(conf, "group.id", "read-back", why, sizeof why);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
  (void)rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<letter> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      letter l;
      l.body.assign(static_cast<const char*>(m->payload), m->len);
      if (m->key != nullptr) l.key.assign(static_cast<const char*>(m->key), m->key_len);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        std::size_t size = 0;
        for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          l.headers[name] = std::string(static_cast<const char*>(value), size);
        }
      }
      out.push_back(std::move(l));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

// The source's events.
struct event_log {
  std::mutex mutex;
  std::condition_variable changed;
  int assigned = 0;  // partitions held now
  int revocations = 0;
  int errors = 0;
  bool wait(const std::function<bool(const event_log&)>& done, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return done(*this); });
  }
};
using watcher_protocol = troupe::protocol<kafka::partitions_assigned, kafka::partitions_revoked, kafka::broker_error>;
struct watcher : troupe::actor<watcher_protocol> {
  explicit watcher(std::shared_ptr<event_log> l) : log(std::move(l)) {}
  void on(const kafka::partitions_assigned& a) {
    bump([&] { log->assigned += static_cast<int>(a.partitions.size()); });
  }
  void on(const kafka::partitions_revoked& r) {
    bump([&] {
      log->assigned -= static_cast<int>(r.partitions.size());
      ++log->revocations;
    });
  }
  void on(const kafka::broker_error& /*unused*/) {
    bump([&] { ++log->errors; });
  }
  template <class F>
  void bump(F f) {
    std::lock_guard lock(log->mutex);
    f();
    log->changed.notify_all();
  }
  std::shared_ptr<event_log> log;
};

using troupe::test_support::eventually;
using troupe::test_support::stats_reach;

// Publishes orders [from, to) through `sink`, keyed by id % 8; returns where each landed.
std::vector<published> publish_orders(const troupe::ref<troupe::protocol<publish<order>>>& sink, std::int64_t from,
                                      std::int64_t to, std::chrono::nanoseconds timeout = 20s) {
  std::vector<troupe::response<published>> pending;
  for (std::int64_t id = from; id < to; ++id) {
    pending.push_back(
        sink.ask(publish<order>{{id, "note " + std::to_string(id)}, "k" + std::to_string(id % 8)}, timeout));
  }
  std::vector<published> out;
  for (auto& p : pending) {
    auto r = p.try_get();
    EXPECT_TRUE(r) << r.error().to_string();
    if (r) out.push_back(*r);
  }
  return out;
}

kafka::sink_config producer_for(const mock_cluster& mock, const std::string& topic) {
  kafka::sink_config s;
  s.brokers = mock.bootstraps();
  s.topic = topic;
  return s;
}

// --- the tests -----------------------------------------------------------------------------

TEST(kafka_bridge, a_sink_publishes_and_a_source_consumes_each_message_once_in_partition_order_and_commits_it) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(3);
  mock.create_topic("orders", 4);
  constexpr std::int64_t n = 200;
  auto seen = std::make_shared<tally>();
  {
    troupe::system sys;
    auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
    const std::vector<published> landed = publish_orders(out, 0, n);
    ASSERT_EQ(landed.size(), static_cast<std::size_t>(n));
    std::set<std::pair<std::int32_t, std::int64_t>> places;
    for (const published& p : landed) {
      EXPECT_EQ(p.destination, "orders");
      places.emplace(p.partition, p.offset);
    }
    EXPECT_EQ(places.size(), static_cast<std::size_t>(n)) << "each publish confirmed at its own offset";

    auto target = sys.spawn<shop>(seen);
    auto source = sys.spawn<kafka::source<order>>(consumer_for(mock, "g1", "orders"), target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.acknowledged == n; }, 10s));
    const auto stats = source.ask(bridge::stats_query{}, 5s).get();
    EXPECT_EQ(stats.delivered, static_cast<std::uint64_t>(n));
    EXPECT_EQ(stats.retried, 0U);
    EXPECT_EQ(stats.dead_lettered, 0U);
    EXPECT_EQ(stats.in_flight, 0U);
  }  // the system's shutdown stops the source: drain, commit, leave the group
  std::lock_guard lock(seen->mutex);
  EXPECT_EQ(seen->total_handled(), static_cast<std::size_t>(n)) << "each message handled exactly once";
  EXPECT_TRUE(seen->in_order);
  expect_all_committed(mock, "g1", "orders", 4, n);
}

TEST(kafka_bridge, a_handler_that_throws_is_retried_then_its_message_is_dead_lettered_with_the_reason) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(1);
  mock.create_topic("orders", 2);
  mock.create_topic("orders.dlq", 1);
  constexpr std::int64_t n = 50;
  auto seen = std::make_shared<tally>();
  // Multiples of 10 fail twice, then succeed; 7 always fails.
  seen->refuse = [](std::int64_t id, int attempt) { return id == 7 || (id % 10 == 0 && attempt <= 2); };
  {
    troupe::system sys;
    troupe::supervisor_spec spec;
    spec.max_restarts = 1000;  // every refusal fails the shop; its supervisor restarts it in place
    spec.within = 60s;
    spec.children.push_back(troupe::child<shop>("shop", seen));
    auto sup = troupe::spawn_supervisor(sys, std::move(spec));
    auto target = sup.child<shop_protocol>("shop");

    auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
    ASSERT_EQ(publish_orders(out, 0, n).size(), static_cast<std::size_t>(n));
    kafka::source_config in = consumer_for(mock, "g2", "orders");
    in.dead_letter_topic = "orders.dlq";
    in.flow.max_deliveries = 3;
    auto source = sys.spawn<kafka::source<order>>(in, target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n - 1; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.acknowledged == n - 1 && s.dead_lettered == 1 && s.in_flight == 0; },
        10s));
    const auto stats = source.ask(bridge::stats_query{}, 5s).get();
    EXPECT_EQ(stats.retried, 5U * 2 + 2) << "5 multiples of 10 retried twice, and 7 twice before giving up";
    EXPECT_EQ(stats.decode_errors, 0U);
  }
  std::lock_guard lock(seen->mutex);
  EXPECT_EQ(seen->asked[7], 3);
  EXPECT_EQ(seen->handled.count(7), 0U);
  EXPECT_EQ(seen->asked[10], 3);
  EXPECT_EQ(seen->handled[10], 1);
  std::vector<letter> dead = read_back(mock, "orders.dlq", 1, 20s);
  ASSERT_EQ(dead.size(), 1U);
  EXPECT_EQ(dead[0].body, troupe::bridge::json_codec<order>::encode(order{7, "note 7"}));
  EXPECT_EQ(dead[0].key, "k7");
  const std::string reason = dead[0].headers["troupe.dead_letter.reason"];
  EXPECT_NE(reason.find("failed 3 times"), std::string::npos) << reason;
  EXPECT_NE(reason.find("order 7 refused"), std::string::npos) << reason;
  EXPECT_EQ(dead[0].headers["troupe.dead_letter.topic"], "orders");
  // The dead-lettered message is settled: its offset is committed like the rest.
  expect_all_committed(mock, "g2", "orders", 2, n);
}

TEST(kafka_bridge, a_message_that_does_not_decode_goes_to_the_dead_letter_topic_with_the_decode_error) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(1);
  mock.create_topic("orders", 1);
  mock.create_topic("orders.dlq", 1);
  auto seen = std::make_shared<tally>();
  {
    troupe::system sys;
    auto raw = sys.spawn<kafka::sink<std::string>>(producer_for(mock, "orders"));
    auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
    ASSERT_TRUE(out.ask(publish<order>{{1, "fine"}, {}}, 20s).try_get());
    ASSERT_TRUE(raw.ask(publish<std::string>{"{not json", {}}, 20s).try_get());
    ASSERT_TRUE(raw.ask(publish<std::string>{R"({"id":"two"})", {}}, 20s).try_get());
    ASSERT_TRUE(out.ask(publish<order>{{3, "fine"}, {}}, 20s).try_get());

    auto target = sys.spawn<shop>(seen);
    kafka::source_config in = consumer_for(mock, "g3", "orders");
    in.dead_letter_topic = "orders.dlq";
    auto source = sys.spawn<kafka::source<order>>(in, target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == 2; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.dead_lettered == 2 && s.in_flight == 0; }, 10s));
    const auto stats = source.ask(bridge::stats_query{}, 5s).get();
    EXPECT_EQ(stats.decode_errors, 2U);
    EXPECT_EQ(stats.acknowledged, 2U);
    EXPECT_EQ(stats.retried, 0U) << "a message that does not decode is not retried";
  }
  std::vector<letter> dead = read_back(mock, "orders.dlq", 2, 20s);
  ASSERT_EQ(dead.size(), 2U);
  EXPECT_EQ(dead[0].body, "{not json");
  EXPECT_NE(dead[0].headers["troupe.dead_letter.reason"].find("not JSON"), std::string::npos)
      << dead[0].headers["troupe.dead_letter.reason"];
  EXPECT_EQ(dead[0].headers["troupe.dead_letter.offset"], "1");
  EXPECT_EQ(dead[1].body, R"({"id":"two"})");
  EXPECT_NE(dead[1].headers["troupe.dead_letter.reason"].find("wrong shape"), std::string::npos)
      << dead[1].headers["troupe.dead_letter.reason"];
  expect_all_committed(mock, "g3", "orders", 1, 4);
}

// Holds every reply until the test releases them: the source sees a handler
// that does not return, so only the in-flight bound decides how many it sends.
struct hold_state {
  std::mutex mutex;
  std::condition_variable changed;
  std::size_t held = 0;
  std::size_t most_held = 0;
  std::size_t released = 0;
};
struct release_all {};
using holder_protocol = troupe::protocol<received<order>, release_all>;
struct holder : troupe::actor<holder_protocol> {
  explicit holder(std::shared_ptr<hold_state> s) : state(std::move(s)) {}
  void on(const received<order>& /*unused*/, troupe::reply_promise<void> reply) {
    waiting.push_back(std::move(reply));
    std::lock_guard lock(state->mutex);
    ++state->held;
    state->most_held = std::max(state->most_held, state->held);
    state->changed.notify_all();
  }
  void on(release_all /*unused*/) {
    {
      std::lock_guard lock(state->mutex);
      state->released += state->held;
      state->held = 0;
    }
    for (auto& r : waiting) r.deliver();
    waiting.clear();
  }
  std::shared_ptr<hold_state> state;
  std::vector<troupe::reply_promise<void>> waiting;
};

TEST(kafka_bridge, the_in_flight_bound_is_never_exceeded_however_slow_the_handler) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(1);
  mock.create_topic("orders", 3);
  constexpr std::size_t n = 40;
  constexpr std::size_t bound = 4;
  auto state = std::make_shared<hold_state>();
  troupe::system sys;
  auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
  ASSERT_EQ(publish_orders(out, 0, n).size(), n);
  auto target = sys.spawn<holder>(state);
  kafka::source_config in = consumer_for(mock, "g4", "orders");
  in.flow.max_in_flight = bound;
  auto source = sys.spawn<kafka::source<order>>(in, target);
  std::size_t rounds = 0;
  for (;;) {
    std::size_t released = 0;
    {
      std::unique_lock lock(state->mutex);
      // The source fills every slot, then must wait: exactly `bound` held (fewer at the end).
      ASSERT_TRUE(
          state->changed.wait_for(lock, 30s, [&] { return state->held == std::min(bound, n - state->released); }))
          << "held " << state->held << " after " << state->released << " released";
      released = state->released;
    }
    if (released == n) break;
    auto stats = source.ask(bridge::stats_query{}, 5s).get();
    EXPECT_LE(stats.in_flight, bound);
    ++rounds;
    ASSERT_FALSE(target.tell(release_all{}));
    // Nothing to wait for on the last round but the acknowledgements.
    std::unique_lock lock(state->mutex);
    ASSERT_TRUE(state->changed.wait_for(lock, 30s, [&] { return state->held > 0 || state->released == n; }) ||
                state->released == n);
    if (state->released == n) break;
  }
  std::lock_guard lock(state->mutex);
  EXPECT_EQ(state->most_held, bound);
  EXPECT_EQ(state->released, n);
  EXPECT_GE(rounds, n / bound);
}

// On the mock cluster, a commit made while the group rebalances is refused
// (REBALANCE_IN_PROGRESS: its coordinator refuses OffsetCommit in its joining
// state, where a real broker takes commits of the current generation), so the
// revocation's commit does not reach it and a partition that moves is
// delivered again from its last commit. What holds here: the events, one
// owner per partition, every message handled at least once, and the commits
// complete once the group is stable again.
TEST(kafka_bridge, a_rebalance_is_told_to_the_events_actor_and_loses_no_message) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(1);
  mock.create_topic("orders", 4);
  constexpr std::int64_t n = 300;
  auto seen = std::make_shared<tally>();
  auto events_a = std::make_shared<event_log>();
  auto events_b = std::make_shared<event_log>();
  {
    troupe::system sys;
    auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
    ASSERT_EQ(publish_orders(out, 0, n).size(), static_cast<std::size_t>(n));
    auto target = sys.spawn<shop>(seen);
    auto source_a =
        sys.spawn<kafka::source<order>>(consumer_for(mock, "g7", "orders"), target, sys.spawn<watcher>(events_a));
    ASSERT_TRUE(events_a->wait([](const event_log& e) { return e.assigned == 4; }, 30s));
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() >= n / 4; }, 30s));
    // A second member: the group rebalances and the partitions are shared.
    auto source_b =
        sys.spawn<kafka::source<order>>(consumer_for(mock, "g7", "orders"), target, sys.spawn<watcher>(events_b));
    ASSERT_TRUE(events_b->wait([](const event_log& e) { return e.assigned > 0; }, 30s));
    // Eager rebalancing: the first gives all four up, then gets its share back.
    ASSERT_TRUE(
        events_a->wait([](const event_log& e) { return e.revocations > 0 && e.assigned > 0 && e.assigned < 4; }, 30s));
    int held = 0;
    for (const auto& log : {events_a, events_b}) {
      std::lock_guard lock(log->mutex);
      held += log->assigned;
    }
    EXPECT_EQ(held, 4) << "every partition has one owner after the rebalance";
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 30s));
    // The second stops (drains, leaves); the first gets everything back.
    sys.send_exit(troupe::actor_addr(source_b), troupe::exit_reason::shutdown());
    ASSERT_TRUE(events_a->wait([](const event_log& e) { return e.revocations > 1 && e.assigned == 4; }, 30s));
    ASSERT_TRUE(eventually([&] { return committed_sum(mock, "g7", "orders", 4) == n; }, 30s));
  }
  std::lock_guard lock(seen->mutex);
  std::printf("kafka rebalance test: %zu handled, %zu redelivered\n", seen->total_handled(),
              seen->total_handled() - static_cast<std::size_t>(n));
  EXPECT_EQ(seen->handled.size(), static_cast<std::size_t>(n));
  expect_all_committed(mock, "g7", "orders", 4, n);
}

// Acknowledges the first `limit` messages, then holds every reply: the
// messages it holds are in flight when its source is killed.
struct stalling_shop : troupe::actor<shop_protocol> {
  stalling_shop(std::shared_ptr<tally> t, std::size_t l) : seen(std::move(t)), limit(l) {}
  void on(const received<order>& m, troupe::reply_promise<void> reply) {
    std::lock_guard lock(seen->mutex);
    if (seen->total_handled() >= limit) {
      ++seen->asked[m.body.id];
      held.push_back(std::move(reply));
      seen->changed.notify_all();
      return;
    }
    ++seen->handled[m.body.id];
    seen->changed.notify_all();
    reply.deliver();
  }
  std::shared_ptr<tally> seen;
  std::size_t limit;
  std::vector<troupe::reply_promise<void>> held;
};

TEST(kafka_bridge, a_consumer_killed_mid_stream_loses_nothing_acknowledged_and_its_successor_redelivers_the_rest) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(1);
  mock.create_topic("orders", 4);
  constexpr std::int64_t n = 400;
  constexpr std::size_t acknowledged_by_first = 100;
  auto first = std::make_shared<tally>();
  auto second = std::make_shared<tally>();
  {
    troupe::system sys;
    auto out = sys.spawn<kafka::sink<order>>(producer_for(mock, "orders"));
    ASSERT_EQ(publish_orders(out, 0, n).size(), static_cast<std::size_t>(n));
  }
  std::size_t held_at_kill = 0;
  {
    troupe::system sys;
    auto target = sys.spawn<stalling_shop>(first, acknowledged_by_first);
    kafka::source_config in = consumer_for(mock, "g5", "orders");
    in.commit_interval = 20ms;
    auto source = sys.spawn<kafka::source<order>>(in, target);
    // The first consumer acknowledged its share, holds a full window, and
    // committed some of what it acknowledged (a partition's commit stops at its first held message).
    ASSERT_TRUE(first->wait(
        [](const tally& t) { return t.total_handled() == acknowledged_by_first && t.asked.size() >= 1; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.in_flight == 64; }, 10s));
    ASSERT_TRUE(eventually([&] { return committed_sum(mock, "g5", "orders", 4) > 0; }, 10s));
    {
      std::lock_guard lock(first->mutex);
      held_at_kill = first->asked.size();
    }
    // Killed: no on_stop, no drain, no further commit; what it had in flight is abandoned.
    sys.send_exit(troupe::actor_addr(source), troupe::exit_reason::killed());
  }
  const auto started = std::chrono::steady_clock::now();
  {
    troupe::system sys;
    auto target = sys.spawn<shop>(second);
    auto source = sys.spawn<kafka::source<order>>(consumer_for(mock, "g5", "orders"), target);
    // Every message handled (acknowledged) at least once across both consumers.
    const auto everything = [&](const tally& t) {
      std::lock_guard lock(first->mutex);
      for (std::int64_t id = 0; id < n; ++id) {
        if (t.handled.count(id) == 0 && first->handled.count(id) == 0) return false;
      }
      return true;
    };
    // Generous: should the first consumer's leaving not reach the mock, its
    // member lingers until its session times out and the group rebalances again.
    ASSERT_TRUE(second->wait(everything, 60s));
    ASSERT_TRUE(stats_reach(
        source, [&](const auto& s) { return s.in_flight == 0 && s.acknowledged > 0; }, 10s));
  }
  std::scoped_lock lock(first->mutex, second->mutex);
  const std::size_t deliveries = first->total_handled() + held_at_kill + second->total_handled();
  const std::size_t redelivered = deliveries - static_cast<std::size_t>(n);
  std::printf(
      "kafka kill test: %zu acknowledged by the first consumer, %zu held in flight at the kill, "
      "%zu handled by the second (in %lld ms), %zu redelivered\n",
      first->total_handled(), held_at_kill, second->total_handled(),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()),
      redelivered);
  // Nothing acknowledged is lost, nothing in flight is lost: every message
  // that was held is handled by the successor.
  for (const auto& [id, times] : first->asked) EXPECT_EQ(second->handled.count(id), 1U) << "held order " << id;
  // The successor starts at the last commit, not at the beginning.
  EXPECT_LT(second->total_handled(), static_cast<std::size_t>(n));
  EXPECT_GE(redelivered, held_at_kill) << "each message in flight at the kill is delivered again";
  expect_all_committed(mock, "g5", "orders", 4, n);
}

TEST(kafka_bridge, a_broker_down_under_load_leaves_the_count_exact_once_it_is_back) {
  troupe::test_support::watchdog guard;
  mock_cluster mock(3);
  mock.create_topic("orders", 4);
  // Partitions 0 and 1 on broker 1, which goes down; 2 and 3 on broker 2; the group's coordinator on 3.
  for (int p = 0; p < 4; ++p) {
    ASSERT_EQ(rd_kafka_mock_partition_set_leader(mock.get(), "orders", p, p < 2 ? 1 : 2), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_mock_coordinator_set(mock.get(), "group", "g6", 3), RD_KAFKA_RESP_ERR_NO_ERROR);
  constexpr std::int64_t n = 400;
  auto seen = std::make_shared<tally>();
  auto events = std::make_shared<event_log>();
  std::set<std::pair<std::int32_t, std::int64_t>> places;
  {
    troupe::system sys;
    kafka::sink_config p = producer_for(mock, "orders");
    p.config = {{"enable.idempotence", "true"}};  // the sink's retries during the outage write each message once
    auto out = sys.spawn<kafka::sink<order>>(p);
    for (const published& at : publish_orders(out, 0, n / 2)) places.emplace(at.partition, at.offset);
    auto target = sys.spawn<shop>(seen);
    auto log = sys.spawn<watcher>(events);
    auto source = sys.spawn<kafka::source<order>>(consumer_for(mock, "g6", "orders"), target, log);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() >= n / 8; }, 30s));

    ASSERT_EQ(rd_kafka_mock_broker_set_down(mock.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    // The rest is published while the broker is down (the sink's asks wait for the delivery reports).
    std::thread publisher([&] {
      for (const published& at : publish_orders(out, n / 2, n, 60s)) places.emplace(at.partition, at.offset);
    });
    // The source notices (librdkafka reports the lost connection) before the broker comes back.
    const bool noticed = events->wait([](const event_log& e) { return e.errors > 0; }, 30s);
    ASSERT_EQ(rd_kafka_mock_broker_set_up(mock.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
    publisher.join();
    EXPECT_TRUE(noticed) << "no broker_error reported while broker 1 was down";
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 60s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.in_flight == 0; }, 10s));
  }
  EXPECT_EQ(places.size(), static_cast<std::size_t>(n)) << "each publish confirmed once, at its own offset";
  std::lock_guard lock(seen->mutex);
  EXPECT_EQ(seen->handled.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(seen->total_handled(), static_cast<std::size_t>(n)) << "no message handled twice";
  expect_all_committed(mock, "g6", "orders", 4, n);
}

}  // namespace
