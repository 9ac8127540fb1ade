// Shared by the reliable-channel tests across processes
// (reliable_channels_test.cpp): the consuming and producing actors the child
// processes host, and the logs the test waits on. The test executable is also
// the child program (reliable_main.cpp).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/node_fixture.hpp"
#if defined(TROUPE_TEST_DURABLE)
#include "troupe/durable/producer_store.hpp"
#endif
#include "troupe/troupe.hpp"

namespace it {

struct work_item {
  std::int64_t id = 0;
};
using work_producer = troupe::ref<troupe::producer_controller_protocol<work_item>>;
// What a consumer reports for every item it handled.
struct item_seen {
  std::int64_t pid = 0;
  std::int64_t id = 0;
};
using item_report_protocol = troupe::protocol<item_seen>;

// Registers with the producer, reports each item to the test, then confirms it.
struct reliable_worker : troupe::actor<troupe::protocol<troupe::delivery<work_item>>> {
  reliable_worker(work_producer from, troupe::ref<item_report_protocol> to, std::uint64_t window)
      : producer(std::move(from)), report(std::move(to)), window_size(window) {}
  void on_start() { (void)troupe::spawn_consumer<work_item>(system(), self(), producer, {.window = window_size}); }
  void on(const troupe::delivery<work_item>& d) {
    // The report goes first, on the same connection as the acknowledgement
    // that follows the confirmation: what the producer hears confirmed was reported.
    (void)report.tell(item_seen{::getpid(), d.message.id});
    (void)d.confirm();
  }
  work_producer producer;
  troupe::ref<item_report_protocol> report;
  std::uint64_t window_size;
};

// The producing actor: items 1..total, each carrying the number its controller gives it.
using item_source_protocol = troupe::protocol<troupe::demand<work_item>>;
struct item_source : troupe::actor<item_source_protocol> {
  explicit item_source(std::int64_t count) : total(count) {}
  void on(const troupe::demand<work_item>& d) {
    out.update(d);
    while (out.credit() > 0 && static_cast<std::int64_t>(out.next_id()) <= total) {
      (void)out.send(work_item{static_cast<std::int64_t>(out.next_id())});
    }
  }
  troupe::producer_window<work_item> out;
  std::int64_t total;
};

// Collects the reports (any thread may wait for them).
class item_log {
 public:
  void add(const item_seen& s) {
    std::lock_guard lock(mutex_);  // notifies under the lock: a waiter that sees the count may destroy the log
    seen_.push_back(s);
    ++from_[s.pid];
    distinct_.insert(s.id);
    changed_.notify_all();
  }
  // Until `count` distinct items were reported (by anyone).
  bool wait_distinct(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return distinct_.size() >= count; });
  }
  // Until `count` reports came from `pid`.
  bool wait_from(std::int64_t pid, std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return from_[pid] >= count; });
  }
  std::vector<item_seen> snapshot() {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<item_seen> seen_;
  std::map<std::int64_t, std::size_t> from_;
  std::set<std::int64_t> distinct_;
};

struct item_collector : troupe::actor<item_report_protocol> {
  explicit item_collector(item_log* log) : log_(log) {}
  void on(const item_seen& s) { log_->add(s); }
  item_log* log_;
};

// What the producer heard confirmed (producer_options::on_confirmed); any thread may wait on it.
class confirmations {
 public:
  void set(std::uint64_t confirmed) {
    std::lock_guard lock(mutex_);
    confirmed_ = confirmed;
    changed_.notify_all();
  }
  bool wait_for(std::uint64_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return confirmed_ >= count; });
  }
  std::function<void(std::uint64_t)> callback() {
    return [this](std::uint64_t confirmed) { set(confirmed); };
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t confirmed_ = 0;
};

// --- the durable producer (with troupe::durable) ---------------------------------------
using work_consumer = troupe::ref<troupe::consumer_controller_protocol<work_item>>;

// A local consuming actor with a controller of its own that the test hands to
// producers: reports each item, then confirms it.
struct item_reporter : troupe::actor<troupe::protocol<troupe::delivery<work_item>>> {
  explicit item_reporter(troupe::ref<item_report_protocol> to) : report(std::move(to)) {}
  void on(const troupe::delivery<work_item>& d) {
    (void)report.tell(item_seen{::getpid(), d.message.id});
    (void)d.confirm();
  }
  troupe::ref<item_report_protocol> report;
};

#if defined(TROUPE_TEST_DURABLE)
// In a child process: opens the durable store at `path`, starts a producer
// controller on it with a source of items 1..total, and invites `consumer` —
// the same each time a new process starts on the same file.
using host_protocol = troupe::protocol<work_item>;
struct durable_producer_host : troupe::actor<host_protocol> {
  durable_producer_host(std::string file, work_consumer to, std::int64_t count, std::uint64_t window_size)
      : path(std::move(file)), consumer(std::move(to)), total(count), window(window_size) {}
  void on_start() {
    auto store = troupe::durable::open_producer_store(path, "items");
    if (!store) throw std::runtime_error("open_producer_store: " + store.error().to_string());
    auto& sys = system();
    auto out = troupe::spawn_producer<work_item>(sys, sys.spawn<item_source>(total),
                                                 {.window = window, .buffer = window, .store = *store});
    (void)consumer.tell(troupe::channel_producer<work_item>{out});
  }
  void on(const work_item&) {}
  std::string path;
  work_consumer consumer;
  std::int64_t total;
  std::uint64_t window;
};
#endif

class reliable_processes : public troupe::test_support::node_fixture {};

}  // namespace it
