// Supervision under load, threaded (two workers): thousands of pool workers,
// random traffic, and a known set of poison messages that make a worker throw.
// Every non-poison message must be handled exactly once — by whichever instance
// of its worker is alive — and every poison message must cost exactly one restart.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include <troupe/troupe.hpp>

#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t worker_count = 10'000;
constexpr std::uint32_t message_count = 100'000;
constexpr std::uint32_t poison_every = 200;  // 500 poison messages

struct job {
  std::uint32_t seq;
  bool poison;
};
struct drained {
  using reply = bool;
};  // answered after everything sent before it
using stress_protocol = troupe::protocol<job, drained>;

// Outside every worker instance: a restarted worker has fresh state, so the
// accounting lives here.
struct accounting {
  explicit accounting(std::size_t messages) : times_handled(new std::atomic<std::uint8_t>[messages]) {
    for (std::size_t i = 0; i < messages; ++i) {
      // relaxed: initialised before any actor exists (spawning publishes it).
      times_handled[i].store(0, std::memory_order_relaxed);
    }
  }
  std::unique_ptr<std::atomic<std::uint8_t>[]> times_handled;
  std::atomic<std::uint64_t> handled{0};
  std::atomic<std::uint64_t> poison_seen{0};
  std::atomic<std::uint64_t> restarts{0};
};

struct stress_worker : troupe::actor<stress_protocol> {
  explicit stress_worker(accounting* counts) : counts_(counts) {}
  void on(job j) {
    if (j.poison) {
      // relaxed: a counter; the test reads it after the drained replies, which
      // order every handler before them.
      counts_->poison_seen.fetch_add(1, std::memory_order_relaxed);
      throw std::runtime_error("poison " + std::to_string(j.seq));
    }
    // relaxed: as above.
    counts_->times_handled[j.seq].fetch_add(1, std::memory_order_relaxed);
    counts_->handled.fetch_add(1, std::memory_order_relaxed);
  }
  bool on(drained) { return true; }

 private:
  accounting* counts_;
};

TEST(supervision_stress, every_message_but_the_poison_is_handled_once_and_each_poison_costs_one_restart) {
  troupe::test_support::watchdog guard{120s};
  accounting counts(message_count);
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};

  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.max_restarts = 1'000'000;  // never escalates
  spec.within = 1h;
  spec.on_event = [&counts](const troupe::supervisor_event& e) {
    if (e.what == troupe::supervisor_event::kind::restarted) {
      // relaxed: read after the drained replies (each restart is reported
      // before the restarted worker handles its drained request).
      counts.restarts.fetch_add(1, std::memory_order_relaxed);
    }
  };
  troupe::pool<stress_worker> workers(sys, std::move(spec));
  std::vector<troupe::ref<stress_protocol>> refs;
  refs.reserve(worker_count);
  for (std::size_t i = 0; i < worker_count; ++i) refs.push_back(workers.start(&counts));

  std::mt19937 random(20240531);  // fixed: the same traffic every run
  std::uniform_int_distribution<std::size_t> pick(0, worker_count - 1);
  std::uint32_t poison_sent = 0;
  for (std::uint32_t seq = 0; seq < message_count; ++seq) {
    const bool poison = seq % poison_every == poison_every - 1;
    poison_sent += poison ? 1 : 0;
    ASSERT_FALSE(refs[pick(random)].tell(job{seq, poison}));
  }

  // Each worker's mailbox is FIFO and survives restarts: once it answers
  // drained, everything sent to it before has been handled or dropped as poison.
  std::vector<troupe::response<bool>> replies;
  replies.reserve(worker_count);
  for (const auto& r : refs) replies.push_back(r.ask(drained{}, 90s));
  for (std::size_t i = 0; i < replies.size(); ++i) {
    auto answer = replies[i].try_get();
    ASSERT_TRUE(answer.has_value()) << "worker " << i << ": " << answer.error();
  }

  // relaxed (all loads below): the drained replies ordered every handler and
  // every on_event call before this point.
  EXPECT_EQ(counts.poison_seen.load(std::memory_order_relaxed), poison_sent);
  EXPECT_EQ(counts.handled.load(std::memory_order_relaxed) + poison_sent, message_count);
  std::uint32_t wrong = 0;
  for (std::uint32_t seq = 0; seq < message_count; ++seq) {
    const bool poison = seq % poison_every == poison_every - 1;
    const unsigned times = counts.times_handled[seq].load(std::memory_order_relaxed);
    if (times != (poison ? 0u : 1u)) ++wrong;
  }
  EXPECT_EQ(wrong, 0u) << "messages handled a wrong number of times";
  EXPECT_EQ(counts.restarts.load(std::memory_order_relaxed), poison_sent);

  auto children = workers.supervisor().self().ask(troupe::which_children{}, 90s).get();
  ASSERT_EQ(children.size(), worker_count);
  std::uint64_t lifetime_restarts = 0;
  std::size_t running = 0;
  for (const auto& c : children) {
    lifetime_restarts += c.restarts;
    running += c.running ? 1 : 0;
  }
  EXPECT_EQ(lifetime_restarts, poison_sent);
  EXPECT_EQ(running, worker_count);
  EXPECT_EQ(sys.live_actors(), 1 + worker_count);

  sys.shutdown();
  EXPECT_EQ(sys.live_actors(), 0u);
}

}  // namespace
