// mailbox_bench: troupe::mpsc_queue (the actor mailbox) against the baseline
// queues it competes with, measured in the same run (docs/style.md: a baseline in the
// same run, median and spread via --benchmark_repetitions).
//
//   build/mb/bench/mailbox_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Workload: N producer threads (N = 1, 2, 4) each push their share of a fixed set
// of preallocated nodes; the benchmark thread is the one consumer and pops until
// it has them all. Items/s counts items delivered to the consumer. Every queue
// carries the same node pointers, so no allocation is measured: the mpsc_queue
// is intrusive, boost::lockfree::queue gets a node pool reserved up front (and
// bounded_push, which never allocates), and boost::lockfree::spsc_queue (1 -> 1
// only, a reference for the best a single-producer ring can do) is sized to
// hold every item. Threads are started per iteration; that cost is the same for
// every queue and small next to the items an iteration moves.
//
// The consumer spins on an empty queue rather than parking: this measures the
// queues, not the runtime's parking. With more producers than cores the figures
// include the OS scheduler's time slicing for every queue alike.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <boost/lockfree/queue.hpp>
#include <boost/lockfree/spsc_queue.hpp>

#include "troupe/mailbox/mpsc_queue.hpp"

namespace {

struct bench_node : troupe::mpsc_node {
  std::uint64_t value = 0;
};

// Enough items that starting the threads is noise next to moving them.
constexpr std::size_t items_per_iteration = std::size_t{1} << 18;

std::vector<bench_node> make_nodes() {
  std::vector<bench_node> nodes(items_per_iteration);
  for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].value = i;
  return nodes;
}

// Runs one iteration: `producers` threads call push(node*) over their slice of
// `nodes`, the calling thread calls try_pop() (returns bench_node* or nullptr)
// until every node has arrived. Returns the checksum of the consumed values.
template <class Push, class TryPop>
std::uint64_t run_iteration(std::vector<bench_node>& nodes, int producers, Push push, TryPop try_pop) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(producers));
  const std::size_t share = nodes.size() / static_cast<std::size_t>(producers);
  for (int p = 0; p < producers; ++p) {
    const std::size_t begin = share * static_cast<std::size_t>(p);
    const std::size_t end = p + 1 == producers ? nodes.size() : begin + share;
    threads.emplace_back([&nodes, &push, begin, end] {
      for (std::size_t i = begin; i < end; ++i) push(&nodes[i]);
    });
  }
  std::uint64_t checksum = 0;
  std::size_t received = 0;
  while (received < nodes.size()) {
    if (bench_node* node = try_pop()) {
      checksum += node->value;
      ++received;
    }
  }
  for (std::thread& t : threads) t.join();
  return checksum;
}

void report(benchmark::State& state) {
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(items_per_iteration));
}

void mpsc_queue_n_to_1(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  std::vector<bench_node> nodes = make_nodes();
  for (auto _ : state) {
    troupe::mpsc_queue<bench_node> queue;
    const std::uint64_t checksum = run_iteration(
        nodes, producers, [&queue](bench_node* node) { (void)queue.push(node); }, [&queue] { return queue.pop(); });
    benchmark::DoNotOptimize(checksum);
  }
  report(state);
}

void boost_lockfree_queue_n_to_1(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  std::vector<bench_node> nodes = make_nodes();
  // Reserves a node for every item: bounded_push never allocates, and the pool is
  // warm after the first iteration.
  boost::lockfree::queue<bench_node*> queue(items_per_iteration);
  for (auto _ : state) {
    const std::uint64_t checksum = run_iteration(
        nodes, producers,
        [&queue](bench_node* node) {
          while (!queue.bounded_push(node)) {
          }
        },
        [&queue]() -> bench_node* {
          bench_node* node = nullptr;
          return queue.pop(node) ? node : nullptr;
        });
    benchmark::DoNotOptimize(checksum);
  }
  report(state);
}

void boost_spsc_queue_1_to_1(benchmark::State& state) {
  std::vector<bench_node> nodes = make_nodes();
  // Holds every item: the producer never waits for room, as with the other queues.
  boost::lockfree::spsc_queue<bench_node*> queue(items_per_iteration);
  for (auto _ : state) {
    const std::uint64_t checksum = run_iteration(
        nodes, 1,
        [&queue](bench_node* node) {
          while (!queue.push(node)) {
          }
        },
        [&queue]() -> bench_node* {
          bench_node* node = nullptr;
          return queue.pop(node) ? node : nullptr;
        });
    benchmark::DoNotOptimize(checksum);
  }
  report(state);
}

}  // namespace

BENCHMARK(mpsc_queue_n_to_1)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(boost_lockfree_queue_n_to_1)
    ->ArgName("producers")
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(boost_spsc_queue_1_to_1)->UseRealTime()->Unit(benchmark::kMillisecond);
