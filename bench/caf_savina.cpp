// caf_savina.cpp — Savina's micro-benchmark and parallelism workloads of
// bench/WORKLOADS.md (counting, big, trapezoid) on CAF 0.17, linked into
// caf_workloads; the concurrency ones (bank, concdict, barber, philosophers,
// logmap) are in caf_savina_concurrency.cpp, and troupe_savina*.cpp are the
// same on troupe.
//
// Written the way caf_workloads.cpp writes actors (CAF's own examples and
// benchmark suite: function-based event_based_actor / stateful_actor,
// atom_constant tags, self->send). Where Savina's actor asks and waits for the
// answer, the CAF actor sends a request and continues in `.then(...)`. Each
// run_*() is one repetition (savina_common.hpp's run_savina_workloads repeats
// and reports): a fresh actor system, actors spawned before the clock starts,
// completion received by a scoped_actor with a watchdog deadline
// (caf_harness.hpp). Each checks its result against savina_common.hpp's replay
// and fails the program if it is wrong.
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "caf/all.hpp"

#include "bench_common.hpp"
#include "caf_harness.hpp"
#include "savina_common.hpp"

namespace troupe::bench {

namespace {

using caf_side::await_done;
using caf_side::default_constructed_state;
using caf_side::done_atom;
using caf_side::start_atom;
using caf_side::stop_atom;
using caf_side::watchdog;
using caf_side::with_system;
using std::int32_t;
using std::int64_t;

using increment_atom = caf::atom_constant<caf::atom("increment")>;
using retrieve_atom = caf::atom_constant<caf::atom("retrieve")>;
using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using neighbors_atom = caf::atom_constant<caf::atom("neighbors")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;
using work_atom = caf::atom_constant<caf::atom("work")>;
using workers_atom = caf::atom_constant<caf::atom("workers")>;
using area_atom = caf::atom_constant<caf::atom("area")>;

// The error handler of every request: a failed request fails the run.
auto fail_on_error(std::string what) {
  return [what = std::move(what)](caf::error& err) { bench::fail(what + ": " + caf::to_string(err)); };
}

}  // namespace

// --- counting (Savina "count") ------------------------------------------------------

namespace {

struct counter_state {
  int64_t count = 0;
};

caf::behavior counter(caf::stateful_actor<counter_state>* self) {
  return {
      [=](increment_atom) { ++self->state.count; },
      [=](retrieve_atom) { return self->state.count; },
  };
}

// Sends N increments in one activation, then requests the total.
caf::behavior producer(caf::event_based_actor* self, caf::actor counter, int64_t messages, caf::actor report_to) {
  return {
      [=](start_atom) {
        for (int64_t i = 0; i < messages; ++i) self->send(counter, increment_atom::value);
        self->request(counter, bench::ask_deadline, retrieve_atom::value)
            .then(
                [=](int64_t total) {
                  self->send(report_to, done_atom::value, total);
                  self->quit();
                },
                fail_on_error("counting: retrieve"));
      },
  };
}

}  // namespace

double run_counting(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto count = system.spawn(counter);
    auto produce = system.spawn(producer, count, s.counting_messages, caf::actor_cast<caf::actor>(self));
    bench::stopwatch clock;
    self->send(produce, start_atom::value);
    const int64_t total = await_done(self, "counting");
    const double seconds = clock.seconds();
    bench::require(total == s.counting_messages, "counting: the counter counted " + std::to_string(total) +
                                                     ", expected " + std::to_string(s.counting_messages));
    caf::anon_send_exit(count, caf::exit_reason::user_shutdown);
    return static_cast<double>(total) / seconds;
  });
}

// --- big -------------------------------------------------------------------------------

namespace {

struct big_worker_state {
  std::vector<caf::actor> neighbors;
  bench::savina_random random;
  int64_t pings = 0;
  int expected_pinger = -1;
};
static_assert(default_constructed_state<big_worker_state>);

// Sends its N pings one at a time, each to a random worker (itself included, as
// in Savina), the next when the previous one's pong is back.
caf::behavior big_worker(caf::stateful_actor<big_worker_state>* self, int id, int64_t total, caf::actor sink) {
  self->state.random = bench::savina_random{id};
  return {
      [=](neighbors_atom, std::vector<caf::actor>& all) { self->state.neighbors = std::move(all); },
      [=](ping_atom, int sender) {
        self->send(self->state.neighbors[static_cast<size_t>(sender)], pong_atom::value, id);
      },
      [=](pong_atom, int sender) {
        auto& state = self->state;
        bench::require(sender == state.expected_pinger, "big: a pong from a worker that was not pinged");
        if (state.pings == total) {
          self->send(sink, finished_atom::value, state.pings);
          return;
        }
        state.expected_pinger = state.random.next_int(static_cast<int>(state.neighbors.size()));
        self->send(state.neighbors[static_cast<size_t>(state.expected_pinger)], ping_atom::value, id);
        ++state.pings;
      },
      [=](stop_atom) { self->quit(); },
  };
}

struct big_sink_state {
  std::vector<caf::actor> neighbors;
  int64_t finished = 0;
  int64_t pings = 0;
};
static_assert(default_constructed_state<big_sink_state>);

caf::behavior big_sink(caf::stateful_actor<big_sink_state>* self, int64_t workers, caf::actor report_to) {
  return {
      [=](neighbors_atom, std::vector<caf::actor>& all) { self->state.neighbors = std::move(all); },
      [=](finished_atom, int64_t pings) {
        auto& state = self->state;
        state.pings += pings;
        if (++state.finished == workers) {
          for (const auto& w : state.neighbors) self->send(w, stop_atom::value);
          self->send(report_to, done_atom::value, state.pings);
          self->quit();
        }
      },
  };
}

}  // namespace

double run_big(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto sink = system.spawn(big_sink, s.big_workers, caf::actor_cast<caf::actor>(self));
    std::vector<caf::actor> workers;
    for (int i = 0; i < s.big_workers; ++i) workers.push_back(system.spawn(big_worker, i, s.big_pings, sink));
    for (const auto& w : workers) self->send(w, neighbors_atom::value, workers);
    self->send(sink, neighbors_atom::value, workers);
    bench::stopwatch clock;
    // Savina starts each worker with a pong from nobody (-1).
    for (const auto& w : workers) self->send(w, pong_atom::value, -1);
    const int64_t pings = await_done(self, "big");
    const double seconds = clock.seconds();
    bench::require(pings == s.big_workers * s.big_pings, "big: wrong number of pings");
    return static_cast<double>(2 * pings) / seconds;  // each ping and its pong
  });
}

// --- trapezoid (trapezoidal approximation) ------------------------------------------------

namespace {

caf::behavior trapezoid_worker(caf::event_based_actor* self, caf::actor master) {
  return {
      [=](work_atom, double left, double h, int64_t intervals) {
        self->send(master, area_atom::value, bench::trapezoid_piece(left, h, intervals));
        self->quit();
      },
  };
}

struct trapezoid_master_state {
  std::vector<caf::actor> workers;
  int64_t received = 0;
  double area = 0;
};
static_assert(default_constructed_state<trapezoid_master_state>);

// Splits [left, right] into one piece per worker and sums their areas.
caf::behavior trapezoid_master(caf::stateful_actor<trapezoid_master_state>* self, int64_t intervals,
                               caf::actor report_to) {
  return {
      [=](workers_atom, std::vector<caf::actor>& workers) { self->state.workers = std::move(workers); },
      [=](work_atom, double left, double right, double h) {
        const auto& workers = self->state.workers;
        const auto count = static_cast<int64_t>(workers.size());
        const double range = (right - left) / static_cast<double>(count);
        for (int64_t k = 0; k < count; ++k) {
          const double piece_left = (range * static_cast<double>(k)) + left;
          self->send(workers[static_cast<size_t>(k)], work_atom::value, piece_left, h, intervals / count);
        }
      },
      [=](area_atom, double area) {
        auto& state = self->state;
        state.area += area;
        if (++state.received == static_cast<int64_t>(state.workers.size())) {
          self->send(report_to, area_atom::value, state.area);
          self->quit();
        }
      },
  };
}

}  // namespace

double run_trapezoid(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto master = system.spawn(trapezoid_master, s.trapezoid_intervals, caf::actor_cast<caf::actor>(self));
    std::vector<caf::actor> workers;
    for (int64_t i = 0; i < s.trapezoid_workers; ++i) workers.push_back(system.spawn(trapezoid_worker, master));
    self->send(master, workers_atom::value, std::move(workers));
    bench::stopwatch clock;
    const double h = (bench::trapezoid_right - bench::trapezoid_left) / static_cast<double>(s.trapezoid_intervals);
    self->send(master, work_atom::value, bench::trapezoid_left, bench::trapezoid_right, h);
    double total = 0;
    self->receive([&](area_atom, double area) { total = area; },
                  caf::after(watchdog) >> [] { bench::fail("trapezoid: watchdog expired"); });
    const double seconds = clock.seconds();
    bench::require(
        std::fabs(total - bench::trapezoid_reference()) < bench::trapezoid_tolerance,
        "trapezoid: area " + std::to_string(total) + ", expected " + std::to_string(bench::trapezoid_reference()));
    return static_cast<double>(s.trapezoid_intervals) / seconds;
  });
}

}  // namespace troupe::bench
