// Shared by the multi-process tests: the actors the child processes host, and a
// fixture that gives each test its own runtime directory (so node names never
// collide between tests or with other programs of this user).
//
// The test executable is also the child program: its main() is troupe::run(),
// which turns a process started by spawn_node() into a node that serves remote
// spawns (and, with the "publish" argument, publishes an echo actor).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/describe/class.hpp>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support/node_fixture.hpp"
#include "troupe/troupe.hpp"

namespace it {

struct pong {
  std::int64_t n = 0;
  std::int64_t pid = 0;
};
using pong_protocol = troupe::protocol<pong>;

struct echo {
  std::string text;
  using reply = std::string;
};
// Described for gateway_hosts_test.cpp (a gateway exposes echo as a method).
BOOST_DESCRIBE_STRUCT(echo, (), (text))
struct ping {
  std::int64_t n = 0;
  troupe::ref<pong_protocol> reply_to;
};
struct boom {
  using reply = int;
};
struct big {
  std::string data;
  using reply = std::uint64_t;  // size * 1'000'003 + byte sum
};
using echo_protocol = troupe::protocol<echo, ping, boom, big>;

struct relay {
  troupe::ref<echo_protocol> target;
  troupe::ref<pong_protocol> reply_to;
  std::int64_t n = 0;
};
using relay_protocol = troupe::protocol<relay>;

inline std::uint64_t digest(const std::string& s) {
  std::uint64_t sum = 0;
  for (unsigned char c : s) sum += c;
  return s.size() * 1'000'003ull + sum;
}

struct echo_actor : troupe::actor<echo_protocol> {
  std::string on(const echo& e) { return "echo:" + e.text + "@" + std::to_string(::getpid()); }
  void on(const ping& p) { (void)p.reply_to.tell(pong{p.n, ::getpid()}); }
  int on(boom) { throw std::runtime_error("boom requested"); }
  std::uint64_t on(const big& b) { return digest(b.data); }
};

struct relay_actor : troupe::actor<relay_protocol> {
  void on(const relay& r) { (void)r.target.tell(ping{r.n, r.reply_to}); }
};

// Collects pongs (any thread may wait for them).
class pong_log {
 public:
  void add(const pong& p) {
    // Notifies under the lock: a waiter that sees the count may destroy the log.
    std::lock_guard lock(mutex_);
    pongs_.push_back(p);
    changed_.notify_all();
  }
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return pongs_.size() >= count; });
  }
  std::vector<pong> snapshot() {
    std::lock_guard lock(mutex_);
    return pongs_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<pong> pongs_;
};

struct collector : troupe::actor<pong_protocol> {
  explicit collector(pong_log* log) : log_(log) {}
  void on(const pong& p) { log_->add(p); }
  pong_log* log_;
};

// --- topics (topics_test.cpp) ---------------------------------------------------------
struct tick {
  std::int64_t seq = 0;
};
using tick_protocol = troupe::protocol<tick>;
// What a subscriber in a child process reports for every tick it got.
struct tick_seen {
  std::int64_t pid = 0;
  std::int64_t subscriber = 0;
  std::int64_t seq = 0;
};
using tick_report_protocol = troupe::protocol<tick_seen>;

// A child node started with the "ticks" argument opens the topic here (main.cpp).
inline std::optional<troupe::topic<tick>> child_ticks;

// Subscribes itself to the child's "ticks" topic, and reports every tick.
struct tick_forwarder : troupe::actor<tick_protocol> {
  tick_forwarder(troupe::ref<tick_report_protocol> to, std::int64_t id) : report(std::move(to)), subscriber(id) {}
  void on_start() {
    if (child_ticks) (void)child_ticks->subscribe(self());
  }
  void on(const tick& t) { (void)report.tell(tick_seen{::getpid(), subscriber, t.seq}); }
  troupe::ref<tick_report_protocol> report;
  std::int64_t subscriber;
};

// Collects the reports (any thread may wait for them).
class tick_log {
 public:
  void add(const tick_seen& t) {
    std::lock_guard lock(mutex_);  // notifies under the lock: a waiter that sees the count may destroy the log
    seen_.push_back(t);
    changed_.notify_all();
  }
  // Until `count` reports came from `pid` (0: from anyone).
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout, std::int64_t pid = 0) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(std::count_if(
                 seen_.begin(), seen_.end(), [&](const tick_seen& t) { return pid == 0 || t.pid == pid; })) >= count;
    });
  }
  // The ticks one subscriber of one process reported, in order.
  std::vector<std::int64_t> of(std::int64_t pid, std::int64_t subscriber) {
    std::lock_guard lock(mutex_);
    std::vector<std::int64_t> seqs;
    for (const tick_seen& t : seen_) {
      if (t.pid == pid && t.subscriber == subscriber) seqs.push_back(t.seq);
    }
    return seqs;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<tick_seen> seen_;
};

struct tick_collector : troupe::actor<tick_report_protocol> {
  explicit tick_collector(tick_log* log) : log_(log) {}
  void on(const tick_seen& t) { log_->add(t); }
  tick_log* log_;
};

// Each test: its own runtime directory (tests/support/node_fixture.hpp).
class processes : public troupe::test_support::node_fixture {};

}  // namespace it
