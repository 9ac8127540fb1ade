// Issue 18's kill -9 test for the Kafka bridge (troupe/bridge/kafka.hpp):
// the consuming *process* (bridge_consumer) is killed -9 mid-stream, a second
// one in the same consumer group finishes the topic. The broker is
// librdkafka's mock cluster, created here in the parent so that it outlives
// both consumers (its bootstraps are real TCP listeners). What it shows: no
// message is lost, and what comes again is exactly what the first had handled
// past its last commit that reached the broker: every committed offset was
// handled by the first (a commit never skips one), nothing below it is
// delivered again, and the second delivers each offset from there once.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bridge/consumer_process.hpp"
#include "bridge/kafka_mock.hpp"
#include "support/watchdog.hpp"
#include "troupe/bridge/kafka.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;
namespace kafka = troupe::bridge::kafka;
using troupe::test_support::account;
using troupe::test_support::consumer_process;
using troupe::test_support::handled_line;
using troupe::test_support::some_of;

using mock_cluster = troupe::test_support::kafka_mock;

// Reads a group's committed offsets and the partitions' ends, without joining the group.
class offsets_reader {
 public:
  offsets_reader(const std::string& bootstraps, const std::string& group) {
    char why[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps.c_str(), why, sizeof why) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "group.id", group.c_str(), why, sizeof why) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(why);
    }
    handle_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (handle_ == nullptr) throw std::runtime_error(why);
  }
  offsets_reader(const offsets_reader&) = delete;
  offsets_reader& operator=(const offsets_reader&) = delete;
  ~offsets_reader() { rd_kafka_destroy(handle_); }

  // partition -> committed offset (-1: none yet); empty if the broker did not answer.
  std::map<std::int32_t, std::int64_t> committed(const std::string& topic, int partitions) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) (void)rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
    std::map<std::int32_t, std::int64_t> out;
    if (rd_kafka_committed(handle_, list, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < list->cnt; ++i)
        out[list->elems[i].partition] = std::max<std::int64_t>(list->elems[i].offset, -1);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }
  std::int64_t end(const std::string& topic, std::int32_t partition) {
    std::int64_t low = 0;
    std::int64_t high = -1;
    (void)rd_kafka_query_watermark_offsets(handle_, topic.c_str(), partition, &low, &high, 10000);
    return high;
  }

 private:
  rd_kafka_t* handle_ = nullptr;
};

// For state nothing signals (the group's offsets on the broker): re-read until `done` or the deadline.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);  // a re-read interval, not a guess at when the event happens
  }
  return done();
}

// partition -> the offsets a run handled, in the order it handled them.
std::map<std::int32_t, std::vector<std::int64_t>> offsets_by_partition(const std::vector<handled_line>& run) {
  std::map<std::int32_t, std::vector<std::int64_t>> out;
  for (const handled_line& h : run) out[h.partition].push_back(h.offset);
  return out;
}

// [from, from + count) in order?
bool is_run_from(const std::vector<std::int64_t>& offsets, std::int64_t from) {
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] != from + static_cast<std::int64_t>(i)) return false;
  }
  return true;
}

TEST(kafka_kill, a_consumer_process_killed_mid_stream_loses_nothing_and_only_what_it_had_not_committed_comes_again) {
  troupe::test_support::watchdog guard(120s);
  const auto started = std::chrono::steady_clock::now();
  constexpr std::int64_t n = 2000;
  constexpr int partitions = 4;
  constexpr std::size_t killed_after = 500;  // lines read from the first consumer before its commits are awaited
  constexpr std::size_t read_on = 300;       // lines read after that, then it is killed
  constexpr std::size_t in_flight = 16;
  const std::string topic = "orders";
  const std::string group = "kill";
  mock_cluster mock(1);
  mock.create_topic(topic, partitions);
  {
    troupe::system sys;
    kafka::sink_config out;
    out.brokers = mock.bootstraps();
    out.topic = topic;
    auto sink = sys.spawn<kafka::sink<std::string>>(out);
    std::vector<troupe::response<bridge::published>> confirms;
    confirms.reserve(static_cast<std::size_t>(n));
    for (std::int64_t id = 0; id < n; ++id) {
      confirms.push_back(sink.ask(bridge::publish<std::string>{std::to_string(id), "k" + std::to_string(id % 8)}, 30s));
    }
    for (auto& c : confirms) {
      const troupe::expected<bridge::published> p = c.try_get();
      ASSERT_TRUE(p) << p.error().to_string();
    }
  }
  offsets_reader offsets(mock.bootstraps(), group);
  std::map<std::int32_t, std::int64_t> ends;
  for (std::int32_t p = 0; p < partitions; ++p) ends[p] = offsets.end(topic, p);

  const std::vector<std::string> args{"kafka", mock.bootstraps(), topic, std::to_string(in_flight), group};
  consumer_process first(args);
  ASSERT_TRUE(first.read_until(killed_after, 60s)) << "the first consumer handled " << first.lines().size();
  // Not read for now: its handler soon blocks on the full pipe. Its commits
  // go on (the fetch thread's): wait until they cover every line read, so
  // that what can come again is bounded by what it wrote after those.
  std::map<std::int32_t, std::int64_t> covered;  // partition -> one past the highest offset read so far
  for (const handled_line& h : first.lines()) covered[h.partition] = std::max(covered[h.partition], h.offset + 1);
  std::map<std::int32_t, std::int64_t> committed_at_kill;
  ASSERT_TRUE(eventually(
      [&] {
        committed_at_kill = offsets.committed(topic, partitions);
        return std::all_of(covered.begin(), covered.end(),
                           [&](const auto& c) { return committed_at_kill[c.first] >= c.second; });
      },
      20s))
      << "the first consumer's commits never covered what it had handled";
  // Read on, and kill it while it runs flat out: what it handled in the last
  // commit interval is handled but not committed.
  ASSERT_TRUE(first.read_until(killed_after + read_on, 30s)) << "the first consumer handled " << first.lines().size();
  first.kill();
  const std::size_t written_after_covered = first.lines().size() - killed_after;
  ASSERT_LT(first.lines().size(), static_cast<std::size_t>(n)) << "not killed mid-stream";

  consumer_process second(args);
  std::set<std::int64_t> seen;
  for (const handled_line& h : first.lines()) seen.insert(h.id);
  std::size_t read = 0;
  // Generous: the mock's group waits for the killed member's session to time out.
  const bool all = second.read_until(
      [&](const std::vector<handled_line>& lines) {
        for (; read < lines.size(); ++read) seen.insert(lines[read].id);
        return seen.size() >= static_cast<std::size_t>(n);
      },
      60s);
  EXPECT_TRUE(all) << "handled " << seen.size() << " distinct of " << n;
  // Every partition committed to its end: the second has handled all it will get.
  EXPECT_TRUE(eventually(
      [&] {
        const auto now = offsets.committed(topic, partitions);
        return std::all_of(ends.begin(), ends.end(), [&](const auto& e) {
          const auto at = now.find(e.first);
          return at != now.end() && at->second == e.second;
        });
      },
      20s))
      << "the group's offsets did not reach the ends of the partitions";
  EXPECT_EQ(second.finish(30s), "exited with status 0");

  const auto runs = account({&first.lines(), &second.lines()}, n);
  EXPECT_TRUE(runs.missing.empty()) << "lost: " << some_of(runs.missing);
  EXPECT_TRUE(runs.strangers.empty()) << some_of(runs.strangers);
  EXPECT_TRUE(runs.twice_in_a_run.empty()) << some_of(runs.twice_in_a_run);
  const auto by_first = offsets_by_partition(first.lines());
  const auto by_second = offsets_by_partition(second.lines());
  std::size_t duplicates = 0;
  for (std::int32_t p = 0; p < partitions; ++p) {
    const std::vector<std::int64_t> none;
    const auto& one = by_first.count(p) != 0 ? by_first.at(p) : none;
    const auto& two = by_second.count(p) != 0 ? by_second.at(p) : none;
    // The first handled a prefix of the partition, in order (one actor, the partition's order).
    EXPECT_TRUE(is_run_from(one, 0)) << "partition " << p << ": the first consumer skipped or repeated an offset";
    // The second starts where the group's commit was and goes to the end, each offset once.
    const std::int64_t start = two.empty() ? ends[p] : two.front();
    EXPECT_TRUE(is_run_from(two, start)) << "partition " << p << ": the second consumer skipped or repeated an offset";
    EXPECT_EQ(start + static_cast<std::int64_t>(two.size()), ends[p]) << "partition " << p;
    // Nothing committed comes again.
    EXPECT_GE(start, committed_at_kill[p]) << "partition " << p << ": delivered again below a commit";
    // Nothing is committed that the first had not handled.
    EXPECT_LE(start, static_cast<std::int64_t>(one.size())) << "partition " << p << ": committed past what was handled";
    duplicates += static_cast<std::size_t>(std::max<std::int64_t>(0, static_cast<std::int64_t>(one.size()) - start));
  }
  EXPECT_EQ(duplicates, runs.duplicates());
  // What comes again is what the first handled after its commits covered
  // the first lines read: at most what it wrote since.
  EXPECT_LE(duplicates, written_after_covered);
  for (const handled_line& h : first.lines()) EXPECT_EQ(h.delivery_count, 1U) << "order " << h.id;
  ASSERT_TRUE(second.stats().has_value()) << "the second consumer wrote no stats line";
  const auto& stats = *second.stats();
  EXPECT_EQ(stats.delivered, second.lines().size());
  EXPECT_EQ(stats.acknowledged, stats.delivered);
  EXPECT_EQ(stats.redelivered, 0U) << "Kafka does not say it redelivers";
  EXPECT_EQ(stats.dead_lettered, 0U);
  std::printf(
      "kafka kill test: %lld messages in %d partitions, in flight %zu; first consumer handled %zu (its commits "
      "covering the first %zu, killed %zu lines later); second delivered %llu, acknowledged %llu; handled by both %zu "
      "(uncommitted "
      "at the kill); %lld ms\n",
      static_cast<long long>(n), partitions, in_flight, first.lines().size(), killed_after, read_on,
      static_cast<unsigned long long>(stats.delivered), static_cast<unsigned long long>(stats.acknowledged), duplicates,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count()));
}

}  // namespace
