// gateway_common.hpp — what the gateway workloads of troupe_gateway_bench share
// (WORKLOADS.md, "Gateway workloads"): the bank both sides serve (as an actor
// for troupe's gateway, as a map under a mutex for each baseline), the load's
// fixed shape, and the per-repetition statistics and report. Each protocol's
// part is a function of its own (gateway_grpc_bench.cpp, gateway_http_bench.cpp),
// called by troupe_gateway_bench.cpp's main().
//
//   troupe::bench::rpc::latencies lat(calls);   // one slot per call, filled by its completion
//   lat.record(n, us);  ... double p99 = lat.p99();
//   troupe::bench::rpc::report("gateway_jsonrpc_http", "calls/s", rates);
#pragma once

#include <algorithm>
#include <boost/describe/class.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <troupe/runtime/actor.hpp>

#include "bench_common.hpp"

namespace bank {
struct deposit {
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
struct balance {
  std::string account;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(balance, (), (account))
using protocol = troupe::protocol<deposit, balance>;
}  // namespace bank

namespace troupe::bench::rpc {

// 100 accounts; call n asks for account n % accounts.
inline constexpr int accounts = 100;
// Calls in flight at once, the same for every protocol and both sides.
inline constexpr int concurrency = 32;
// The most one repetition (or the warm-up) may take before the run fails.
inline constexpr auto run_deadline = std::chrono::seconds(120);

inline std::string account_name(int i) { return "account-" + std::to_string(i); }
inline std::int64_t opening_cents(int i) { return 1000 + i; }

// Timed calls per repetition; the untimed warm-up makes a tenth as many.
inline std::int64_t calls_for(const options& opts) { return opts.quick ? 20'000 : 100'000; }

struct bank_actor : troupe::actor<bank::protocol> {
  void on(const bank::deposit& d) { cents_[d.account] += d.cents; }
  std::int64_t on(const bank::balance& b) { return cents_[b.account]; }

 private:
  std::map<std::string, std::int64_t> cents_;
};

struct load_result {
  double rate;    // calls/s
  double p99_us;  // µs
};

// One latency per call: call n's completion writes slot n (each slot by one
// thread only), and the load reads them all after every call has finished.
class latencies {
 public:
  explicit latencies(std::int64_t calls) : us_(static_cast<std::size_t>(calls)) {}
  void record(std::int64_t n, double us) { us_[static_cast<std::size_t>(n)] = us; }
  [[nodiscard]] double p99() const {
    std::vector<double> sorted = us_;
    std::sort(sorted.begin(), sorted.end());
    return sorted[static_cast<std::size_t>(static_cast<double>(sorted.size() - 1) * 0.99)];
  }

 private:
  std::vector<double> us_;
};

// The contract line (WORKLOADS.md): workload,unit,median,min,max.
inline void report(std::string_view name, std::string_view unit, std::vector<double> values) {
  const summary s = summarize(std::move(values));
  std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()),
              unit.data(), s.median, s.min, s.max);
  std::fflush(stdout);
}

// Runs `reps` repetitions of `run` (returning a load_result) and reports the
// rate as `rate_name` and the p99 as `p99_name`, each only if selected.
template <class Run>
void run_and_report(const options& opts, std::string_view rate_name, std::string_view p99_name, Run&& run) {
  // bench/compare runs each workload on its own: name the one asked for.
  const std::string_view label = opts.selected(rate_name) ? rate_name : p99_name;
  std::vector<double> rates;
  std::vector<double> p99s;
  for (int rep = 1; rep <= opts.reps; ++rep) {
    const load_result r = run();
    std::fprintf(stderr, "%.*s rep %d/%d: %.0f calls/s, p99 %.1f us\n", static_cast<int>(label.size()), label.data(),
                 rep, opts.reps, r.rate, r.p99_us);
    rates.push_back(r.rate);
    p99s.push_back(r.p99_us);
  }
  if (opts.selected(rate_name)) report(rate_name, "calls/s", rates);
  if (opts.selected(p99_name)) report(p99_name, "us", p99s);
}

// Each protocol's workloads; `baseline` runs its server without actors.
// Both return at once when none of their workloads is selected.
void run_grpc(const options& opts, bool baseline);
void run_http(const options& opts, bool baseline);

}  // namespace troupe::bench::rpc
