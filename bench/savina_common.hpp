// savina_common.hpp — what the Savina workloads of WORKLOADS.md share between
// their troupe (troupe_savina*.cpp) and CAF (caf_savina*.cpp) implementations: the
// parameters, Savina's random generators, the per-message computations and the
// single-threaded replays the result checks compare against. Like
// bench_common.hpp it knows no actor library, so both sides draw the same random
// numbers and do the same arithmetic; only the messaging differs.
//
//   // in main(), after chameneos: the Savina rows, each program with its own run_*()
//   troupe::bench::run_savina_workloads(opts);
//   troupe::bench::savina_random random{123456};       // Savina's PseudoRandom, in a workload
//
// Kept C++17-compatible, like bench_common.hpp: caf_savina*.cpp are built as C++17.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

#include "bench_common.hpp"

namespace troupe::bench {

// Every ask/request in these workloads carries this deadline, on both sides (as
// Savina's Akka versions give every ask a timeout). It only fails a hung run.
constexpr auto ask_deadline = std::chrono::seconds(60);

// --- parameters -------------------------------------------------------------

// The Savina rows of WORKLOADS.md; full() and quick() are its two columns.
// Change a number here and in WORKLOADS.md together.
struct savina_params {
  std::int64_t counting_messages;  // N increments
  std::int64_t big_workers;        // W
  std::int64_t big_pings;          // N pings per worker
  std::int64_t bank_accounts;      // A
  std::int64_t bank_transfers;     // N
  std::int64_t concdict_workers;   // W
  std::int64_t concdict_requests;  // M per worker
  std::int64_t concdict_write_percent;
  std::int64_t concdict_keys;        // the dictionary holds keys 0..keys-1 (Savina's DATA_LIMIT)
  std::int64_t barber_haircuts;      // N customers
  std::int64_t barber_room;          // C waiting-room seats
  std::int64_t barber_production;    // APR: the factory waits busy_work(random(APR) + 10) between customers
  std::int64_t barber_haircut;       // AHR: a haircut is busy_work(random(AHR) + 10)
  std::int64_t philosophers;         // P
  std::int64_t philosopher_rounds;   // R meals each
  std::int64_t trapezoid_workers;    // W
  std::int64_t trapezoid_intervals;  // N in total, N / W per worker
  std::int64_t logmap_series;        // S
  std::int64_t logmap_terms;         // T terms per series

  static savina_params full() {
    savina_params s = common();
    s.counting_messages = 5'000'000;
    s.big_pings = 20'000;
    s.bank_transfers = 500'000;
    s.concdict_requests = 50'000;
    s.barber_haircuts = 50'000;
    s.philosopher_rounds = 100'000;
    s.trapezoid_intervals = 20'000'000;
    s.logmap_terms = 100'000;
    return s;
  }
  static savina_params quick() {
    savina_params s = common();
    s.counting_messages = 1'000'000;
    s.big_pings = 4'000;
    s.bank_transfers = 50'000;
    s.concdict_requests = 5'000;
    s.barber_haircuts = 5'000;
    s.philosopher_rounds = 10'000;
    s.trapezoid_intervals = 1'000'000;
    s.logmap_terms = 10'000;
    return s;
  }
  static savina_params for_options(const options& opts) { return opts.quick ? quick() : full(); }

 private:
  // The parameters both columns share (Savina's defaults).
  static savina_params common() {
    savina_params s{};
    s.big_workers = 120;
    s.bank_accounts = 1'000;
    s.concdict_workers = 20;
    s.concdict_write_percent = 10;
    s.concdict_keys = 2'147'483'647 / 4'096;
    s.barber_room = 1'000;
    s.barber_production = 10'000;
    s.barber_haircut = 10'000;
    s.philosophers = 20;
    s.trapezoid_workers = 100;
    s.logmap_series = 10;
    return s;
  }
};

// --- Savina's random generators ----------------------------------------------

// Savina's PseudoRandom (edu.rice.habanero.benchmarks.PseudoRandom): a 16-bit
// LCG, used by big, banking and barber so every implementation draws the same
// numbers from the same seeds.
class savina_random {
 public:
  explicit savina_random(std::int64_t seed = 74755) : value_(seed) {}
  std::int64_t next_long() {
    value_ = ((value_ * 1309) + 13849) & 65535;
    return value_;
  }
  int next_int() { return static_cast<int>(next_long()); }
  int next_int(int exclusive_max) { return next_int() % exclusive_max; }
  double next_double() { return 1.0 / static_cast<double>(next_long() + 1); }

 private:
  std::int64_t value_;
};

// java.util.Random, which Savina's concdict workers use (seeded with
// id + M + write percent), reproduced bit for bit: the same keys as Savina's.
class java_random {
 public:
  explicit java_random(std::int64_t seed) : seed_((static_cast<std::uint64_t>(seed) ^ multiplier) & mask) {}
  std::int32_t next_int() { return next(32); }
  // Uniform in [0, bound), bound > 0: Java's algorithm, rejection loop included.
  std::int32_t next_int(std::int32_t bound) {
    if ((bound & -bound) == bound) {
      return static_cast<std::int32_t>((static_cast<std::int64_t>(bound) * next(31)) >> 31);
    }
    for (;;) {
      const std::int32_t bits = next(31);
      const std::int32_t value = bits % bound;
      // Java's `bits - value + (bound - 1) < 0`, an int overflow test.
      if (static_cast<std::int64_t>(bits) - value + (bound - 1) <= INT32_MAX) return value;
    }
  }

 private:
  static constexpr std::uint64_t multiplier = 0x5DEECE66DULL;
  static constexpr std::uint64_t mask = (std::uint64_t{1} << 48) - 1;
  std::int32_t next(int bits) {
    seed_ = (seed_ * multiplier + 0xBULL) & mask;
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(seed_ >> (48 - bits)));
  }
  std::uint64_t seed_;
};

// --- per-workload computations ---------------------------------------------------

// barber's busy work: `iterations` steps of Savina's LCG, a dependent chain the
// compiler may not fold. Savina calls Math.random() `iterations` times; a step
// here is ~2 ns, about a tenth of that, so APR and AHR are ten times Savina's.
inline void busy_work(std::int64_t iterations) {
  std::uint64_t x = 74755;
  for (std::int64_t k = 0; k < iterations; ++k) {
    x = ((x * 1309) + 13849) & 65535;
    // An empty asm that "may read and change" x: the loop cannot be computed
    // in closed form or dropped.
    asm volatile("" : "+r"(x));
  }
}

// bank: the teller's transfers (Savina's generateWork, seed 123456). The
// destination id is always above the source's, so the chains of accounts
// awaiting each other's debits never close a cycle (no deadlock).
struct bank_transfer {
  int source;
  int destination;
  double amount;
};

class bank_transfer_source {
 public:
  explicit bank_transfer_source(std::int64_t accounts) : accounts_(static_cast<int>(accounts)) {}
  bank_transfer next() {
    const int source = random_.next_int((accounts_ / 10) * 8);
    int step = random_.next_int(accounts_ - source);
    if (step == 0) step = 1;
    const double amount = std::fabs(random_.next_double()) * 1000;
    return bank_transfer{source, source + step, amount};
  }

 private:
  int accounts_;
  savina_random random_{123456};
};

// Every account starts at 0 (Savina starts each at DBL_MAX / (A·N), where the
// transfers vanish in rounding); the balances the transfers must leave behind.
inline std::vector<double> bank_expected_balances(const savina_params& s) {
  std::vector<double> balances(static_cast<std::size_t>(s.bank_accounts), 0.0);
  bank_transfer_source source{s.bank_accounts};
  for (std::int64_t i = 0; i < s.bank_transfers; ++i) {
    const bank_transfer t = source.next();
    balances[static_cast<std::size_t>(t.source)] -= t.amount;
    balances[static_cast<std::size_t>(t.destination)] += t.amount;
  }
  return balances;
}

// Amounts are at least 1000/65536 ≈ 0.015: one lost or doubled transfer is far
// beyond this, while reordered additions stay far below it.
constexpr double bank_tolerance = 1e-3;

// concdict: one worker's request stream (Savina's Worker). Keys fall in
// [0, keys); absent from a read's reply means the dictionary lost a key.
struct concdict_request {
  bool write;
  std::int32_t key;
  std::int32_t value;  // writes only
};

class concdict_request_source {
 public:
  concdict_request_source(std::int64_t worker, const savina_params& s)
      : random_(worker + s.concdict_requests + s.concdict_write_percent),
        write_percent_(static_cast<std::int32_t>(s.concdict_write_percent)),
        keys_(s.concdict_keys) {}
  concdict_request next() {
    if (random_.next_int(100) < write_percent_) {
      const std::int32_t key = to_key(random_.next_int());
      return concdict_request{true, key, random_.next_int()};
    }
    return concdict_request{false, to_key(random_.next_int()), 0};
  }

 private:
  // Savina's Math.abs(key) % DATA_LIMIT, without Math.abs(INT_MIN)'s negative result.
  std::int32_t to_key(std::int32_t raw) const {
    return static_cast<std::int32_t>(std::llabs(static_cast<long long>(raw)) % keys_);
  }
  java_random random_;
  std::int32_t write_percent_;
  std::int64_t keys_;
};

// The number of writes all workers send together (the dictionary's count must match).
inline std::int64_t concdict_expected_writes(const savina_params& s) {
  std::int64_t writes = 0;
  for (std::int64_t w = 0; w < s.concdict_workers; ++w) {
    concdict_request_source source{w, s};
    for (std::int64_t i = 0; i < s.concdict_requests; ++i) writes += source.next().write ? 1 : 0;
  }
  return writes;
}

// A read's reply when the key is not in the dictionary.
constexpr std::int64_t concdict_absent = INT64_MIN;

// trapezoid: Savina's integrand and interval bounds.
constexpr double trapezoid_left = 1;
constexpr double trapezoid_right = 5;

inline double trapezoid_fx(double x) {
  const double a = std::sin(std::pow(x, 3.0) - 1);
  const double b = x + 1;
  const double c = a / b;
  const double d = std::sqrt(1 + std::exp(std::sqrt(2 * x)));
  return c * d;
}

// One worker's piece: `intervals` trapezoids of width h from `left` (Savina's
// Worker, evaluating fx at both ends of each interval as Savina does).
inline double trapezoid_piece(double left, double h, std::int64_t intervals) {
  double area = 0;
  for (std::int64_t i = 0; i < intervals; ++i) {
    const double lx = (static_cast<double>(i) * h) + left;
    const double rx = lx + h;
    area += 0.5 * (trapezoid_fx(lx) + trapezoid_fx(rx)) * h;
  }
  return area;
}

// The integral by Simpson's rule on 200,000 intervals (it agrees with the
// trapezoid sum at N = 20,000,000 to ~3e-14), computed once: the reference
// for the workers' trapezoid sum.
inline double trapezoid_reference() {
  static const double reference = [] {
    constexpr std::int64_t n = 200'000;
    const double h = (trapezoid_right - trapezoid_left) / n;
    double sum = trapezoid_fx(trapezoid_left) + trapezoid_fx(trapezoid_right);
    for (std::int64_t i = 1; i < n; ++i) {
      sum += (i % 2 == 1 ? 4 : 2) * trapezoid_fx(trapezoid_left + static_cast<double>(i) * h);
    }
    return sum * h / 3;
  }();
  return reference;
}

// The workers' sum is within ~1e-11 of the reference at N = 1,000,000 (the
// trapezoid rule's error, falling as 1/N²), and closer for larger N; a lost or
// doubled piece moves it by ~1e-3, one interval by up to ~1e-5 at N = 1,000,000.
constexpr double trapezoid_tolerance = 1e-9;

// logmap: Savina's rates and start terms (series 0 starts at 0 and stays there).
constexpr double logmap_start_rate = 3.46;
constexpr double logmap_increment = 0.0025;

inline double logmap_rate(std::int64_t series) {
  return logmap_start_rate + static_cast<double>(series) * logmap_increment;
}
inline double logmap_start(std::int64_t series) { return static_cast<double>(series) * logmap_increment; }
inline double logmap_next(double term, double rate) { return rate * term * (1 - term); }

// The last term of a series, computed here in the same order as the actors do.
inline double logmap_expected(std::int64_t series, std::int64_t terms) {
  double term = logmap_start(series);
  const double rate = logmap_rate(series);
  for (std::int64_t t = 0; t < terms; ++t) term = logmap_next(term, rate);
  return term;
}

// --- the workloads -------------------------------------------------------------

// One repetition of each workload, returning its figure in the unit
// run_savina_workloads() reports. Each program defines all eight: troupe's in
// troupe_savina.cpp and troupe_savina_concurrency.cpp, CAF's in caf_savina.cpp
// and caf_savina_concurrency.cpp.
double run_counting(unsigned threads, const savina_params& s);
double run_big(unsigned threads, const savina_params& s);
double run_bank(unsigned threads, const savina_params& s);
double run_concdict(unsigned threads, const savina_params& s);
double run_barber(unsigned threads, const savina_params& s);
double run_philosophers(unsigned threads, const savina_params& s);
double run_trapezoid(unsigned threads, const savina_params& s);
double run_logmap(unsigned threads, const savina_params& s);

// Runs the selected Savina workloads, in workload_names' order, and prints
// their CSV lines: the same names, units and repetitions in both programs.
inline void run_savina_workloads(const options& opts) {
  using run_fn = double (*)(unsigned, const savina_params&);
  struct workload {
    const char* name;
    const char* unit;
    run_fn run;
  };
  static constexpr workload workloads[] = {
      {"counting", "msgs/s", run_counting},        {"big", "msgs/s", run_big},
      {"bank", "transfers/s", run_bank},           {"concdict", "requests/s", run_concdict},
      {"barber", "haircuts/s", run_barber},        {"philosophers", "meals/s", run_philosophers},
      {"trapezoid", "intervals/s", run_trapezoid}, {"logmap", "terms/s", run_logmap},
  };
  const savina_params s = savina_params::for_options(opts);
  for (const workload& w : workloads) {
    if (opts.selected(w.name)) run_reps(w.name, w.unit, opts.reps, [&] { return w.run(opts.threads, s); });
  }
}

}  // namespace troupe::bench
