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

// Runs fn(system) on a fresh system with `threads` workers. fn does its own
// timing; the system's start-up and shutdown stay outside it.
template <class Fn>
double with_system(unsigned threads, Fn&& fn) {
  troupe::config cfg;
  cfg.worker_threads = threads;
  troupe::system sys{cfg};
  require(sys.worker_count() == threads, "troupe did not start the requested workers");
  return fn(sys);
}

// Blocks until one done arrives in `in` and returns its value.
inline std::int64_t await_done(inbox& in, const char* workload) {
  auto d = in.receive<done>(watchdog);
  if (!d) fail(std::string(workload) + ": " + d.error().to_string());
  return d->value;
}

}  // namespace troupe::bench
