// troupe_savina.cpp — Savina's micro-benchmark and parallelism workloads of
// bench/WORKLOADS.md (counting, big, trapezoid) on troupe, linked into
// troupe_workloads; the concurrency ones (bank, concdict, barber, philosophers,
// logmap) are in troupe_savina_concurrency.cpp, and caf_savina*.cpp are the
// same on CAF 0.17.
//
// Written the way a troupe user writes them: class-based actors with typed
// protocols, tell() for Savina's one-way messages, and an ask awaited in a
// task<> handler (co_await) where Savina's actor waits for an answer. Each
// run_*() is one repetition (savina_common.hpp's run_savina_workloads repeats
// and reports): a fresh system, actors spawned before the clock starts, and
// completion received by a scoped inbox with a watchdog deadline
// (troupe_harness.hpp). Each checks its result against savina_common.hpp's
// replay and fails the program if it is wrong.
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "savina_common.hpp"
#include "troupe_harness.hpp"

namespace troupe::bench {

namespace {

using std::int64_t;

// Fails the run with the error of an ask that did not complete.
template <class T>
void require_reply(const troupe::expected<T>& reply, const char* what) {
  if (!reply) bench::fail(std::string(what) + ": " + reply.error().to_string());
}

}  // namespace

// --- counting (Savina "count") ------------------------------------------------------

namespace {

struct increment {};
struct retrieve {
  using reply = int64_t;
};
using counter_protocol = troupe::protocol<increment, retrieve>;

struct counter_actor : troupe::actor<counter_protocol> {
  int64_t count = 0;
  void on(increment) { ++count; }
  int64_t on(const retrieve&) { return count; }
};

struct produce {};
using producer_protocol = troupe::protocol<produce>;

// Sends N increments in one activation, then asks for the total.
struct producer_actor : troupe::actor<producer_protocol> {
  producer_actor(troupe::ref<counter_protocol> c, int64_t n, troupe::ref<report> r)
      : counter(std::move(c)), messages(n), report_to(std::move(r)) {}
  troupe::ref<counter_protocol> counter;
  int64_t messages;
  troupe::ref<report> report_to;
  troupe::task<void> on(produce) {
    for (int64_t i = 0; i < messages; ++i) counter.tell(increment{});
    auto total = co_await counter.ask(retrieve{}, bench::ask_deadline).as_expected();
    require_reply(total, "counting: retrieve");
    report_to.tell(done{*total});
    stop();
  }
};

}  // namespace

double run_counting(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto counter = sys.spawn<counter_actor>();
    auto producer = sys.spawn<producer_actor>(counter, s.counting_messages, in.self());
    bench::stopwatch clock;
    producer.tell(produce{});
    const int64_t total = await_done(in, "counting");
    const double seconds = clock.seconds();
    bench::require(total == s.counting_messages, "counting: the counter counted " + std::to_string(total) +
                                                     ", expected " + std::to_string(s.counting_messages));
    return static_cast<double>(total) / seconds;
  });
}

// --- big -------------------------------------------------------------------------------

namespace {

struct big_ping {
  int sender;
};
struct big_pong {
  int sender;
};
struct big_exit {};
using big_protocol = troupe::protocol<big_ping, big_pong, struct big_neighbors, big_exit>;
struct big_neighbors {
  std::shared_ptr<const std::vector<troupe::ref<big_protocol>>> all;
};
struct worker_finished {
  int64_t pings;
};
using sink_protocol = troupe::protocol<worker_finished, big_neighbors>;

// Sends its N pings one at a time, each to a random worker (itself included, as
// in Savina), the next when the previous one's pong is back.
struct big_worker : troupe::actor<big_protocol> {
  big_worker(int i, int64_t n, troupe::ref<sink_protocol> s) : id(i), total(n), sink(std::move(s)), random(i) {}
  int id;
  int64_t total;
  troupe::ref<sink_protocol> sink;
  bench::savina_random random;
  std::shared_ptr<const std::vector<troupe::ref<big_protocol>>> neighbors;
  int64_t pings = 0;
  int expected_pinger = -1;
  void on(big_neighbors n) { neighbors = std::move(n.all); }
  void on(big_ping p) { (*neighbors)[static_cast<size_t>(p.sender)].tell(big_pong{id}); }
  void on(big_pong p) {
    bench::require(p.sender == expected_pinger, "big: a pong from a worker that was not pinged");
    if (pings == total) {
      sink.tell(worker_finished{pings});
      return;
    }
    expected_pinger = random.next_int(static_cast<int>(neighbors->size()));
    (*neighbors)[static_cast<size_t>(expected_pinger)].tell(big_ping{id});
    ++pings;
  }
  void on(big_exit) { stop(); }
};

struct big_sink : troupe::actor<sink_protocol> {
  big_sink(int64_t w, troupe::ref<report> r) : workers(w), report_to(std::move(r)) {}
  int64_t workers;
  troupe::ref<report> report_to;
  std::shared_ptr<const std::vector<troupe::ref<big_protocol>>> neighbors;
  int64_t finished = 0;
  int64_t pings = 0;
  void on(big_neighbors n) { neighbors = std::move(n.all); }
  void on(worker_finished f) {
    pings += f.pings;
    if (++finished == workers) {
      for (const auto& w : *neighbors) w.tell(big_exit{});
      report_to.tell(done{pings});
      stop();
    }
  }
};

}  // namespace

double run_big(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto sink = sys.spawn<big_sink>(s.big_workers, in.self());
    auto workers = std::make_shared<std::vector<troupe::ref<big_protocol>>>();
    for (int i = 0; i < s.big_workers; ++i) workers->push_back(sys.spawn<big_worker>(i, s.big_pings, sink));
    for (const auto& w : *workers) w.tell(big_neighbors{workers});
    sink.tell(big_neighbors{workers});
    bench::stopwatch clock;
    // Savina starts each worker with a pong from nobody (-1).
    for (const auto& w : *workers) w.tell(big_pong{-1});
    const int64_t pings = await_done(in, "big");
    const double seconds = clock.seconds();
    bench::require(pings == s.big_workers * s.big_pings, "big: wrong number of pings");
    return static_cast<double>(2 * pings) / seconds;  // each ping and its pong
  });
}

// --- trapezoid (trapezoidal approximation) ------------------------------------------------

namespace {

struct trapezoid_work {
  double left;
  double h;
  int64_t intervals;
};
using trapezoid_worker_protocol = troupe::protocol<trapezoid_work>;
struct integrate {
  double left;
  double right;
  double h;
};
struct piece_area {
  double area;
};
using trapezoid_master_protocol = troupe::protocol<integrate, piece_area, struct meet_workers>;
struct meet_workers {
  std::vector<troupe::ref<trapezoid_worker_protocol>> workers;
};
struct total_area {
  double area;
};
using area_report = troupe::protocol<total_area>;

struct trapezoid_worker : troupe::actor<trapezoid_worker_protocol> {
  explicit trapezoid_worker(troupe::ref<trapezoid_master_protocol> m) : master(std::move(m)) {}
  troupe::ref<trapezoid_master_protocol> master;
  void on(trapezoid_work w) {
    master.tell(piece_area{bench::trapezoid_piece(w.left, w.h, w.intervals)});
    stop();
  }
};

// Splits [left, right] into one piece per worker and sums their areas.
struct trapezoid_master : troupe::actor<trapezoid_master_protocol> {
  trapezoid_master(int64_t n, troupe::ref<area_report> r) : intervals(n), report_to(std::move(r)) {}
  int64_t intervals;  // in total
  troupe::ref<area_report> report_to;
  std::vector<troupe::ref<trapezoid_worker_protocol>> workers;
  int64_t received = 0;
  double area = 0;
  void on(meet_workers m) { workers = std::move(m.workers); }
  void on(integrate i) {
    const auto count = static_cast<int64_t>(workers.size());
    const double range = (i.right - i.left) / static_cast<double>(count);
    for (int64_t k = 0; k < count; ++k) {
      const double left = (range * static_cast<double>(k)) + i.left;
      workers[static_cast<size_t>(k)].tell(trapezoid_work{left, i.h, intervals / count});
    }
  }
  void on(piece_area p) {
    area += p.area;
    if (++received == static_cast<int64_t>(workers.size())) {
      report_to.tell(total_area{area});
      stop();
    }
  }
};

}  // namespace

double run_trapezoid(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](troupe::system& sys) {
    troupe::scoped<area_report> in{sys};
    auto master = sys.spawn<trapezoid_master>(s.trapezoid_intervals, in.self());
    std::vector<troupe::ref<trapezoid_worker_protocol>> workers;
    for (int64_t i = 0; i < s.trapezoid_workers; ++i) workers.push_back(sys.spawn<trapezoid_worker>(master));
    master.tell(meet_workers{std::move(workers)});
    bench::stopwatch clock;
    const double h = (bench::trapezoid_right - bench::trapezoid_left) / static_cast<double>(s.trapezoid_intervals);
    master.tell(integrate{bench::trapezoid_left, bench::trapezoid_right, h});
    auto area = in.receive<total_area>(watchdog);
    const double seconds = clock.seconds();
    if (!area) bench::fail("trapezoid: " + area.error().to_string());
    bench::require(
        std::fabs(area->area - bench::trapezoid_reference()) < bench::trapezoid_tolerance,
        "trapezoid: area " + std::to_string(area->area) + ", expected " + std::to_string(bench::trapezoid_reference()));
    return static_cast<double>(s.trapezoid_intervals) / seconds;
  });
}

}  // namespace troupe::bench
