// Reliable channels across real processes on one host (shared memory): a
// consumer process killed with SIGKILL mid-stream under load, and a new one
// started; work pulling over several consumer processes, one killed. Every
// item must be reported at least once, and the duplicates are exactly the
// items the killed process had handled but the producer had not yet heard
// confirmed: at most one window.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "reliable_fixture.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;

namespace it {
namespace {

struct accounting {
  std::map<std::int64_t, std::size_t> times;  // id -> reports
  std::map<std::int64_t, std::set<std::int64_t>> by_pid;
  std::size_t reports = 0;
};

accounting account(const std::vector<item_seen>& seen) {
  accounting a;
  for (const item_seen& s : seen) {
    ++a.times[s.id];
    a.by_pid[s.pid].insert(s.id);
    ++a.reports;
  }
  return a;
}

TEST_F(reliable_processes, a_consumer_process_killed_mid_stream_loses_nothing_and_its_duplicates_stay_within_a_window) {
  troupe::test_support::watchdog guard(180s);
  item_log log;  // both outlive the node
  confirmations confirmed;
  troupe::node parent(config("parent"));
  constexpr std::int64_t total = 30000;
  constexpr std::uint64_t window = 256;
  auto report = parent.spawn<item_collector>(&log);
  auto out =
      troupe::spawn_producer<work_item>(parent, parent.spawn<item_source>(total),
                                        {.window = window, .buffer = window, .on_confirmed = confirmed.callback()});

  auto first = parent.spawn_node("consumer-1");
  ASSERT_TRUE(first) << first.error();
  ASSERT_TRUE(parent.spawn<reliable_worker>(troupe::on(*first), out, report, window));
  // Under load: a third of the stream has been handled when the process dies.
  ASSERT_TRUE(log.wait_from(first->pid(), total / 3, 60s));
  parent.kill_node(*first);

  auto second = parent.spawn_node("consumer-2");
  ASSERT_TRUE(second) << second.error();
  ASSERT_TRUE(parent.spawn<reliable_worker>(troupe::on(*second), out, report, window));
  ASSERT_TRUE(log.wait_distinct(total, 120s));

  ASSERT_TRUE(confirmed.wait_for(total, 60s));
  const troupe::producer_stats p = out.ask(troupe::producer_stats_request{}, 10s).get();
  EXPECT_EQ(p.accepted, static_cast<std::uint64_t>(total));
  EXPECT_EQ(p.confirmed, static_cast<std::uint64_t>(total));
  EXPECT_EQ(p.unconfirmed + p.queued, 0u);
  EXPECT_EQ(p.consumers, 1u);
  EXPECT_LE(p.requeued, window);

  accounting a = account(log.snapshot());
  ASSERT_EQ(a.times.size(), static_cast<std::size_t>(total));  // every item, at least once
  EXPECT_EQ(a.times.begin()->first, 1);
  EXPECT_EQ(a.times.rbegin()->first, total);
  const std::set<std::int64_t>& by_first = a.by_pid.at(first->pid());
  const std::set<std::int64_t>& by_second = a.by_pid.at(second->pid());
  EXPECT_GE(by_first.size(), static_cast<std::size_t>(total / 3));
  std::size_t duplicates = 0;
  for (const auto& [id, n] : a.times) {
    EXPECT_LE(n, 2u) << "item " << id;
    if (n == 2) {
      ++duplicates;
      // A duplicate is an item the killed process handled and the new one got again.
      EXPECT_TRUE(by_first.count(id) == 1 && by_second.count(id) == 1) << "item " << id;
    }
  }
  EXPECT_EQ(a.reports, static_cast<std::size_t>(total) + duplicates);
  EXPECT_LE(duplicates, window);
  EXPECT_LE(duplicates, p.requeued);  // only what was given back can come twice
  std::printf("killed consumer: %zu items by the first process, %zu by the second, %zu duplicates, %llu requeued\n",
              by_first.size(), by_second.size(), duplicates, static_cast<unsigned long long>(p.requeued));
}

TEST_F(reliable_processes, work_pulling_over_three_consumer_processes_with_one_killed_accounts_for_every_item) {
  troupe::test_support::watchdog guard(180s);
  item_log log;
  confirmations confirmed;
  troupe::node parent(config("parent"));
  constexpr std::int64_t total = 30000;
  constexpr std::uint64_t window = 128;
  auto report = parent.spawn<item_collector>(&log);
  auto out =
      troupe::spawn_producer<work_item>(parent, parent.spawn<item_source>(total),
                                        {.window = window, .buffer = window, .on_confirmed = confirmed.callback()});
  std::vector<troupe::node_handle> children;
  for (const char* name : {"puller-1", "puller-2", "puller-3"}) {
    auto child = parent.spawn_node(name);
    ASSERT_TRUE(child) << child.error();
    ASSERT_TRUE(parent.spawn<reliable_worker>(troupe::on(*child), out, report, window));
    children.push_back(*child);
  }
  const troupe::node_handle doomed = children[1];
  ASSERT_TRUE(log.wait_from(doomed.pid(), total / 6, 60s));
  parent.kill_node(doomed);
  ASSERT_TRUE(log.wait_distinct(total, 120s));

  ASSERT_TRUE(confirmed.wait_for(total, 60s));
  const troupe::producer_stats p = out.ask(troupe::producer_stats_request{}, 10s).get();
  EXPECT_EQ(p.confirmed, static_cast<std::uint64_t>(total));
  EXPECT_EQ(p.unconfirmed + p.queued, 0u);
  EXPECT_EQ(p.consumers, 2u);
  EXPECT_LE(p.requeued, window);

  accounting a = account(log.snapshot());
  ASSERT_EQ(a.times.size(), static_cast<std::size_t>(total));
  std::size_t duplicates = 0;
  for (const auto& [id, n] : a.times) {
    EXPECT_LE(n, 2u) << "item " << id;
    if (n == 2) {
      ++duplicates;
      EXPECT_EQ(a.by_pid.at(doomed.pid()).count(id), 1u) << "item " << id;
    }
  }
  EXPECT_EQ(a.reports, static_cast<std::size_t>(total) + duplicates);
  EXPECT_LE(duplicates, window);
  // Every process did a share of the work.
  for (const troupe::node_handle& child : children) EXPECT_GT(a.by_pid[child.pid()].size(), 0u) << child.name();
  std::printf("work pulling: %zu / %zu / %zu items, %zu duplicates\n", a.by_pid[children[0].pid()].size(),
              a.by_pid[children[1].pid()].size(), a.by_pid[children[2].pid()].size(), duplicates);
}

#if defined(TROUPE_TEST_DURABLE)
// Waits for a store's callbacks (they run on the outbox's writer thread).
class progress {
 public:
  std::function<void(std::uint64_t)> callback() {
    return [this](std::uint64_t up_to) {
      std::lock_guard lock(mutex_);
      reached_ = std::max(reached_, up_to);
      changed_.notify_all();
    };
  }
  bool wait_for(std::uint64_t up_to, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return reached_ >= up_to; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t reached_ = 0;
};

TEST_F(reliable_processes, the_durable_store_gives_back_what_is_unconfirmed_and_the_last_id_when_nothing_is) {
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("troupe-store-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(file);
  const std::vector<std::byte> bytes = troupe::to_bytes(work_item{7});
  {
    auto store = troupe::durable::open_producer_store(file, "items");
    ASSERT_TRUE(store) << store.error();
    progress durable, forgotten;
    (*store)->on_durable(durable.callback());
    (*store)->on_forgotten(forgotten.callback());
    auto loaded = (*store)->load();
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(loaded->unconfirmed.empty());
    EXPECT_EQ(loaded->last_id, 0u);
    for (std::uint64_t id = 1; id <= 5; ++id) (*store)->append(id, bytes);
    ASSERT_TRUE(durable.wait_for(5, 10s));
    (*store)->confirm(3);
    ASSERT_TRUE(forgotten.wait_for(3, 10s));
  }
  {
    auto store = troupe::durable::open_producer_store(file, "items");
    ASSERT_TRUE(store) << store.error();
    progress forgotten;
    (*store)->on_forgotten(forgotten.callback());
    auto loaded = (*store)->load();
    ASSERT_TRUE(loaded);
    ASSERT_EQ(loaded->unconfirmed.size(), 2u);
    EXPECT_EQ(loaded->unconfirmed[0].id, 4u);
    EXPECT_EQ(loaded->unconfirmed[1].id, 5u);
    EXPECT_EQ(loaded->unconfirmed[1].bytes, bytes);
    EXPECT_EQ(loaded->last_id, 5u);
    (*store)->confirm(5);
    ASSERT_TRUE(forgotten.wait_for(5, 10s));
  }
  {
    // Everything confirmed: nothing to send again, and numbering goes on after 5.
    auto store = troupe::durable::open_producer_store(file, "items");
    ASSERT_TRUE(store) << store.error();
    auto loaded = (*store)->load();
    ASSERT_TRUE(loaded);
    EXPECT_TRUE(loaded->unconfirmed.empty());
    EXPECT_EQ(loaded->last_id, 5u);
  }
  // Not an SQLite file: a clear error at open, no crash.
  const std::filesystem::path junk = file.string() + ".junk";
  {
    std::FILE* f = std::fopen(junk.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("this is not a database, it is a text file long enough to have a header\n", f);
    std::fclose(f);
  }
  auto bad = troupe::durable::open_producer_store(junk, "items");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), troupe::errc::storage_failed) << bad.error();
  for (const std::string suffix : {"", "-wal", "-shm"}) std::filesystem::remove(file.string() + suffix);
  std::filesystem::remove(junk);
}

TEST_F(reliable_processes, a_durable_producer_killed_mid_stream_sends_its_unconfirmed_items_again_when_it_restarts) {
  troupe::test_support::watchdog guard(180s);
  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("troupe-reliable-" + std::to_string(::getpid()) + ".db");
  std::filesystem::remove(file);
  item_log log;
  troupe::node parent(config("parent"));
  constexpr std::int64_t total = 20000;
  constexpr std::uint64_t window = 256;
  auto report = parent.spawn<item_collector>(&log);
  // The consumer lives here, for both producer processes: its controller
  // waits for a producer and registers with each one that invites it.
  auto consumer = troupe::spawn_consumer<work_item>(parent, parent.spawn<item_reporter>(report), work_producer{},
                                                    {.window = window});

  auto first = parent.spawn_node("producer-1");
  ASSERT_TRUE(first) << first.error();
  ASSERT_TRUE(parent.spawn<durable_producer_host>(troupe::on(*first), file.string(), consumer, total, window));
  ASSERT_TRUE(log.wait_distinct(total / 3, 60s));
  parent.kill_node(*first);  // SIGKILL, mid-stream
  const std::size_t before_kill = log.snapshot().size();

  auto second = parent.spawn_node("producer-2");
  ASSERT_TRUE(second) << second.error();
  ASSERT_TRUE(parent.spawn<durable_producer_host>(troupe::on(*second), file.string(), consumer, total, window));
  ASSERT_TRUE(log.wait_distinct(total, 120s)) << log.snapshot().size() << " reports";

  accounting a = account(log.snapshot());
  ASSERT_EQ(a.times.size(), static_cast<std::size_t>(total));  // every item at least once
  EXPECT_EQ(a.times.begin()->first, 1);
  EXPECT_EQ(a.times.rbegin()->first, total);  // and nothing numbered past the end
  std::size_t duplicates = 0;
  for (const auto& [id, n] : a.times) {
    EXPECT_LE(n, 2u) << "item " << id;
    if (n == 2) ++duplicates;
  }
  EXPECT_EQ(a.reports, static_cast<std::size_t>(total) + duplicates);
  // Sent again: what the consumer had handled but the dead producer had not heard confirmed.
  EXPECT_LE(duplicates, window);
  EXPECT_GE(before_kill, static_cast<std::size_t>(total / 3));
  const troupe::consumer_stats c = consumer.ask(troupe::consumer_stats_request{}, 10s).get();
  EXPECT_EQ(c.channels, 2u);  // one per producer process
  std::printf("durable producer: %zu reports before the kill, %zu duplicates after the restart\n", before_kill,
              duplicates);
  parent.stop_node(*second);
  std::filesystem::remove(file);
  std::filesystem::remove(file.string() + "-wal");
  std::filesystem::remove(file.string() + "-shm");
}
#endif

}  // namespace
}  // namespace it
