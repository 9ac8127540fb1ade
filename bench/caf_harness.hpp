// caf_harness.hpp — how caf_workloads runs one repetition: a fresh
// caf::actor_system with the requested workers, and a (done, value) message
// received by a scoped_actor with a watchdog deadline (never a sleep). Shared
// by the program's source files, which are built as C++17 (see CMakeLists.txt).
//
//   return troupe::bench::caf_side::with_system(threads, [&](caf::actor_system& system) {
//     caf::scoped_actor self{system};          // actors send (done_atom, n) to it
//     /* spawn (untimed) */ troupe::bench::stopwatch clock; /* start */
//     return n / (await_done(self, "name"), clock.seconds());
//   });
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>

#include "caf/all.hpp"

#include "bench_common.hpp"

namespace troupe::bench::caf_side {

using start_atom = caf::atom_constant<caf::atom("start")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

// A hung workload fails loudly instead of hanging the comparison run.
constexpr auto watchdog = std::chrono::minutes(10);

// CAF 0.17's stateful_actor constructs its State as State(self) whenever that
// compiles. Under C++20 parenthesized aggregate initialization, a plain struct
// whose first member is a caf::actor qualifies, and silently starts out holding
// the actor itself (the mall then "pairs" a chameneo with itself). These files
// are built as C++17, the language CAF 0.17 targets; a static_assert next to
// each state that holds a caf::actor guards it.
template <class State>
constexpr bool default_constructed_state = !std::is_constructible_v<State, caf::stateful_actor<State>*>;

// Runs fn(system) on a fresh actor_system with `threads` workers. fn does its
// own timing; constructing and destroying the system stay outside it.
template <class Fn>
double with_system(unsigned threads, Fn&& fn) {
  caf::actor_system_config config;
  config.set("scheduler.max-threads", static_cast<size_t>(threads));
  caf::actor_system system{config};
  require(system.scheduler().num_workers() == threads, "CAF did not start the requested number of worker threads");
  return fn(system);
}

// Blocks `self` until one (done_atom, int64_t) arrives and returns the value.
inline std::int64_t await_done(caf::scoped_actor& self, const char* workload) {
  std::int64_t result = -1;
  self->receive([&](done_atom, std::int64_t value) { result = value; },
                caf::after(watchdog) >> [&] { fail(std::string(workload) + ": watchdog expired"); });
  return result;
}

}  // namespace troupe::bench::caf_side
