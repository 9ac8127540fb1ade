// troupe_harness.hpp — how troupe_workloads runs one repetition: a fresh
// troupe::system with the requested workers, and a "done" message received by
// a scoped inbox with a watchdog deadline (never a sleep). Shared by the
// program's source files.
//
//   return troupe::bench::with_system(threads, [&](troupe::system& sys) {
//     troupe::bench::inbox in{sys};            // actors report to in.self()
//     /* spawn (untimed) */ troupe::bench::stopwatch clock; /* start */
//     return n / (troupe::bench::await_done(in, "name"), clock.seconds());
//   });
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"

namespace troupe::bench {

// A hung workload fails loudly instead of hanging the comparison run.
constexpr auto watchdog = std::chrono::minutes(10);

struct done {
  std::int64_t value;
};
using report = troupe::protocol<done>;
using inbox = troupe::scoped<report>;

inline void print_scheduler_stats(const troupe::system& sys) {
  std::uint64_t outside = 0;
  std::string line = "  scheduler:";
  int i = 0;
  for (const troupe::worker_stats& w : sys.scheduler_stats()) {
    outside += w.wakeups_from_outside;
    line += " w" + std::to_string(i++) + "{act " + std::to_string(w.activations) + ", steals " +
            std::to_string(w.steals) + ", next steals " + std::to_string(w.next_steals) + ", bumps " +
            std::to_string(w.next_bumps) + ", parks " + std::to_string(w.parks) + ", timed " +
            std::to_string(w.timed_wakeups) + ", woke " + std::to_string(w.wakeups_issued) + "}";
  }
  line += " woken from outside " + std::to_string(outside);
  std::fprintf(stderr, "%s\n", line.c_str());
}

// Runs fn(system) on a fresh system with `threads` workers. fn does its own
// timing; the system's start-up and shutdown stay outside it.
// With TROUPE_BENCH_STATS=1 in the environment it also prints, to stderr, what
// the scheduler's workers did during the repetition (system::scheduler_stats()).
template <class Fn>
double with_system(unsigned threads, Fn&& fn) {
  troupe::config cfg;
  cfg.worker_threads = threads;
  troupe::system sys{cfg};
  require(sys.worker_count() == threads, "troupe did not start the requested workers");
  const double result = fn(sys);
  if (const char* stats = std::getenv("TROUPE_BENCH_STATS"); stats != nullptr && std::string(stats) == "1") {
    print_scheduler_stats(sys);
  }
  return result;
}

// Blocks until one done arrives in `in` and returns its value.
inline std::int64_t await_done(inbox& in, const char* workload) {
  auto d = in.receive<done>(watchdog);
  if (!d) fail(std::string(workload) + ": " + d.error().to_string());
  return d->value;
}

}  // namespace troupe::bench
