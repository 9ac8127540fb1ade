// bridge_kafka_bench — bridge_kafka_consume of WORKLOADS.md (troupe_bridge_bench,
// bridge_bench.hpp): a topic of librdkafka's built-in mock cluster (a Kafka
// protocol server in this process, rdkafka_mock.h, as tests/bridge/kafka_test.cpp
// uses it), filled once before any timing, consumed in a fresh consumer group
// per repetition through troupe's kafka::source<order> into an actor (broker
// -> fetch thread -> actor -> offset settled and committed), vs, with
// --baseline, a raw librdkafka consumer in the same group configuration
// (enable.auto.commit=false, offsets committed every commit_interval) decoding
// the same JSON in a tight poll loop. Compiled only when troupe::bridge_kafka
// is built. May use: troupe::bridge_kafka, librdkafka, bench_common.hpp.
//
// Timed from the group's assignment (the mock holds a group's first join for
// 3 s, the broker's group.initial.rebalance.delay.ms: not the consumer's cost)
// to the n-th message settled: acknowledged (troupe: source_stats through
// stats_query) or decoded with its offset marked for commit (the baseline).
// Untimed afterwards: each side commits the rest and leaves the group, and
// the group's committed offsets must add up to n. Every wait has a deadline;
// no sleeps.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <troupe/bridge/kafka.hpp>
#include <troupe/troupe.hpp>
#include <vector>

#include "bench_common.hpp"
#include "bridge/kafka_mock.hpp"
#include "bridge_bench.hpp"
#include "runtime/countdown.hpp"

namespace {

namespace bench = troupe::bench;
namespace bb = troupe::bench::bridge_bench;
namespace kafka = troupe::bridge::kafka;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int partitions = 4;
constexpr auto run_deadline = 120s;  // one repetition's consumption, at most

void check_conf(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
  char why[512];
  bench::require(rd_kafka_conf_set(conf, name, value.c_str(), why, sizeof why) == RD_KAFKA_CONF_OK,
                 std::string("librdkafka refused ") + name + ": " + why);
}

// The mock cluster (tests/bridge/kafka_mock.hpp): one broker, one topic of
// `partitions` partitions.
std::unique_ptr<troupe::test_support::kafka_mock> make_mock(const std::string& topic) {
  try {
    auto mock = std::make_unique<troupe::test_support::kafka_mock>(1);
    mock->create_topic(topic, partitions);
    return mock;
  } catch (const std::exception& e) {
    bench::require(false, e.what());
    throw;
  }
}

// Produces orders [0, n) round-robin over the partitions and waits for every
// delivery report (untimed).
void fill(const std::string& brokers, const std::string& topic, std::int64_t n) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  check_conf(conf, "bootstrap.servers", brokers);
  check_conf(conf, "linger.ms", "5");
  std::int64_t failed = 0;
  rd_kafka_conf_set_opaque(conf, &failed);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t* /*handle*/, const rd_kafka_message_t* m, void* opaque) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) ++*static_cast<std::int64_t*>(opaque);
  });
  char why[512];
  rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
  bench::require(producer != nullptr, std::string("the filler's producer: ") + why);
  rd_kafka_topic_t* t = rd_kafka_topic_new(producer, topic.c_str(), nullptr);
  for (std::int64_t id = 0; id < n; ++id) {
    std::string body = bb::order_json(id);
    for (;;) {
      if (rd_kafka_produce(t, static_cast<std::int32_t>(id % partitions), RD_KAFKA_MSG_F_COPY, body.data(), body.size(),
                           nullptr, 0, nullptr) == 0) {
        break;
      }
      bench::require(rd_kafka_last_error() == RD_KAFKA_RESP_ERR__QUEUE_FULL,
                     std::string("producing: ") + rd_kafka_err2str(rd_kafka_last_error()));
      (void)rd_kafka_poll(producer, 100);  // serves delivery reports, which free queue space
    }
  }
  bench::require(rd_kafka_flush(producer, 60'000) == RD_KAFKA_RESP_ERR_NO_ERROR, "the fill did not flush in 60 s");
  bench::require(failed == 0, std::to_string(failed) + " messages of the fill were not delivered");
  rd_kafka_topic_destroy(t);
  rd_kafka_destroy(producer);
}

// The sum of `group`'s committed offsets over the topic's partitions.
std::int64_t committed_total(const std::string& brokers, const std::string& group, const std::string& topic) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  check_conf(conf, "bootstrap.servers", brokers);
  check_conf(conf, "group.id", group);
  char why[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  bench::require(rk != nullptr, std::string("the checker's consumer: ") + why);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) (void)rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  bench::require(rd_kafka_committed(rk, list, 10'000) == RD_KAFKA_RESP_ERR_NO_ERROR, "reading committed offsets");
  std::int64_t sum = 0;
  for (int i = 0; i < list->cnt; ++i) sum += std::max<std::int64_t>(list->elems[i].offset, 0);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return sum;
}

double per_second(std::int64_t n, clock_type::time_point from, clock_type::time_point to) {
  return static_cast<double>(n) / std::chrono::duration<double>(to - from).count();
}

// --- the baseline: librdkafka's consumer in a tight loop -------------------------

struct raw_consumer_state {
  std::optional<clock_type::time_point> assigned_at;
};

double consume_raw(const std::string& brokers, const std::string& topic, const std::string& group, std::int64_t n) {
  // The source's own group configuration (kafka.cpp) and its default intervals.
  const kafka::source_config defaults;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  check_conf(conf, "bootstrap.servers", brokers);
  check_conf(conf, "group.id", group);
  check_conf(conf, "auto.offset.reset", "earliest");
  check_conf(conf, "enable.auto.commit", "false");
  check_conf(conf, "enable.auto.offset.store", "false");
  raw_consumer_state state;
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_conf_set_rebalance_cb(
      conf, [](rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
          (void)rd_kafka_assign(rk, parts);
          auto* s = static_cast<raw_consumer_state*>(opaque);
          if (!s->assigned_at) s->assigned_at = clock_type::now();
        } else {
          (void)rd_kafka_assign(rk, nullptr);
        }
      });
  char why[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  bench::require(rk != nullptr, std::string("the baseline's consumer: ") + why);
  (void)rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  (void)rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  bench::require(rd_kafka_subscribe(rk, topics) == RD_KAFKA_RESP_ERR_NO_ERROR, "subscribing");
  rd_kafka_topic_partition_list_destroy(topics);

  std::vector<std::int64_t> next(partitions, -1);       // per partition: the offset to commit
  std::vector<std::int64_t> committed(partitions, -1);  // what was last sent as a commit
  // Commits the partitions whose offset moved, as the source does.
  const auto commit = [&](bool sync) {
    rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      if (next[p] <= committed[p]) continue;
      rd_kafka_topic_partition_list_add(offsets, topic.c_str(), p)->offset = next[p];
      committed[p] = next[p];
    }
    if (offsets->cnt > 0) {
      const rd_kafka_resp_err_t err = rd_kafka_commit(rk, offsets, sync ? 0 : 1);
      bench::require(!sync || err == RD_KAFKA_RESP_ERR_NO_ERROR, std::string("commit: ") + rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(offsets);
  };

  bb::tally seen;
  const auto deadline = clock_type::now() + run_deadline;
  auto last_commit = clock_type::now();
  const int poll_ms = static_cast<int>(defaults.poll_timeout.count());
  while (seen.handled < n) {
    bench::require(clock_type::now() < deadline, "the baseline did not get every message in time");
    if (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, poll_ms)) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        std::fprintf(stderr, "bridge_kafka_consume (raw): %s\n", rd_kafka_message_errstr(m));
      } else {
        troupe::expected<bb::order> o = troupe::bridge::json_codec<bb::order>::decode(
            std::string_view(static_cast<const char*>(m->payload), m->len));
        bench::require(o.has_value(), "a message that does not decode");
        seen.cents += o->cents;
        ++seen.handled;
        next[static_cast<std::size_t>(m->partition)] = m->offset + 1;
      }
      rd_kafka_message_destroy(m);
    }
    if (clock_type::now() - last_commit >= defaults.commit_interval) {
      commit(false);
      last_commit = clock_type::now();
    }
  }
  const auto done_at = clock_type::now();
  commit(true);
  (void)rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  bench::require(state.assigned_at.has_value(), "no assignment");
  bench::require(seen.cents == bb::expected_cents(n), "the baseline's cents do not add up");
  return per_second(n, *state.assigned_at, done_at);
}

// --- troupe: kafka::source<order> into an actor ---------------------------------------

// Stamps the group's first assignment: the clock starts there.
struct assignment_watch : troupe::actor<troupe::protocol<kafka::partitions_assigned>> {
  assignment_watch(troupe_test::countdown* assigned, clock_type::time_point* at) : assigned_(assigned), at_(at) {}
  void on(const kafka::partitions_assigned& /*unused*/) {
    if (stamped_) return;
    stamped_ = true;
    *at_ = clock_type::now();
    assigned_->count_down();  // its mutex orders the stamp before the waiter's read
  }

 private:
  troupe_test::countdown* assigned_;
  clock_type::time_point* at_;
  bool stamped_ = false;
};

// The troupe side in one function, so that a change of the source's public
// shape touches only this.
double consume_troupe(const bench::options& opts, const std::string& brokers, const std::string& topic,
                      const std::string& group, std::int64_t n) {
  // Before the system: its actors point at them until it is gone.
  troupe_test::countdown assigned(1);
  troupe_test::countdown done(1);
  clock_type::time_point assigned_at;
  bb::tally seen;
  double rate = 0;
  {
    troupe::config cfg;
    cfg.worker_threads = opts.threads;
    troupe::system sys(cfg);
    auto handler = sys.spawn<bb::order_counter>(n, &done, &seen);
    auto events = sys.spawn<assignment_watch>(&assigned, &assigned_at);
    kafka::source_config in;  // the default flow: max_in_flight, commit_interval, poll_timeout
    in.brokers = brokers;
    in.group = group;
    in.topics = {topic};
    auto source = sys.spawn<kafka::source<bb::order>>(in, handler, events);
    bench::require(assigned.wait_for(60s), "the troupe source was assigned no partitions");
    if (!done.wait_for(run_deadline)) {
      const troupe::bridge::source_stats s = source.ask(troupe::bridge::stats_query{}, 5s).get();
      bench::fail("the troupe source did not get every message: delivered " + std::to_string(s.delivered) +
                  ", acknowledged " + std::to_string(s.acknowledged) + ", in flight " + std::to_string(s.in_flight));
    }
    // acknowledged follows the last handler's return (the ask's completion);
    // nothing signals it, so it is asked for until it is there.
    troupe::bridge::source_stats stats;
    const auto deadline = clock_type::now() + 30s;
    do {
      stats = source.ask(troupe::bridge::stats_query{}, 5s).get();
    } while (stats.acknowledged < static_cast<std::uint64_t>(n) && clock_type::now() < deadline);
    const auto acknowledged_at = clock_type::now();
    bench::require(stats.acknowledged == static_cast<std::uint64_t>(n),
                   "acknowledged " + std::to_string(stats.acknowledged) + " of " + std::to_string(n));
    bench::require(stats.delivered == static_cast<std::uint64_t>(n) && stats.retried == 0 && stats.dead_lettered == 0,
                   "the troupe source delivered more than once or dead-lettered");
    rate = per_second(n, assigned_at, acknowledged_at);
  }  // the system's shutdown stops the source: it drains, commits and leaves the group
  bench::require(seen.cents == bb::expected_cents(n), "the actor's cents do not add up");
  return rate;
}

}  // namespace

void troupe::bench::bridge_bench::run_kafka(const options& opts, bool baseline) {
  if (!opts.selected("bridge_kafka_consume")) return;
  const std::int64_t n = opts.quick ? 200'000 : 500'000;
  const std::string topic = "orders";
  const auto mock = make_mock(topic);
  fill(mock->bootstraps(), topic, n);
  int rep = 0;
  bench::run_reps("bridge_kafka_consume", "msgs/s", opts.reps, [&] {
    const std::string group = std::string(baseline ? "raw" : "troupe") + "-" + std::to_string(rep++);
    const double rate = baseline ? consume_raw(mock->bootstraps(), topic, group, n)
                                 : consume_troupe(opts, mock->bootstraps(), topic, group, n);
    const std::int64_t committed = committed_total(mock->bootstraps(), group, topic);
    bench::require(committed == n,
                   "group " + group + " committed " + std::to_string(committed) + " of " + std::to_string(n));
    return rate;
  });
}
