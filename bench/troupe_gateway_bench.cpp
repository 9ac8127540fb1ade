// troupe_gateway_bench — the gateway_grpc_* workloads of WORKLOADS.md: unary
// gRPC calls served by troupe's gateway (a bank actor behind
// troupe::gateway::grpc_gateway) or, with --baseline, by gRPC's own callback
// server compiled from the same .proto (bench/gateway_bank.proto) doing the
// same work without actors (a map under a mutex).
//
//   troupe_gateway_bench [--baseline] [--quick] [--threads N] [--reps R] [--only gateway_grpc_unary,...]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// The load generator is the same for both: one channel over loopback TCP from
// this process, stubs generated from gateway_bank.proto, `concurrency` calls
// of bank.balance in flight (callback API: each completion checks its reply
// and issues the next call), one account of 100 per call. Each repetition
// runs `calls` calls after an untimed warm-up of a tenth as many on the same
// server; it reports the rate (gateway_grpc_unary, calls/s) and the 99th
// percentile of the calls' latencies (gateway_grpc_unary_p99, µs: lower is better).
//
// Failures end the run with a line on stderr and exit status 1; every wait has
// a deadline. No sleeps.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <boost/describe/class.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <troupe/gateway/grpc.hpp>
#include <troupe/gateway/methods.hpp>
#include <troupe/runtime/actor.hpp>
#include <troupe/runtime/system.hpp>

#include "bench_common.hpp"
#include "gateway_bank.grpc.pb.h"

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

namespace {

namespace bench = troupe::bench;
namespace gw = troupe::gateway;

constexpr int accounts = 100;
constexpr int concurrency = 32;
constexpr auto run_deadline = std::chrono::seconds(120);
const std::vector<std::string_view> names = {"gateway_grpc_unary", "gateway_grpc_unary_p99"};

std::string account_name(int i) { return "account-" + std::to_string(i); }
std::int64_t opening_cents(int i) { return 1000 + i; }

struct bank_actor : troupe::actor<bank::protocol> {
  void on(const bank::deposit& d) { cents_[d.account] += d.cents; }
  std::int64_t on(const bank::balance& b) { return cents_[b.account]; }

 private:
  std::map<std::string, std::int64_t> cents_;
};

// The baseline: the same bank in gRPC's generated callback service, no actors.
class bank_service final : public bankbench::bank::CallbackService {
 public:
  grpc::ServerUnaryReactor* balance(grpc::CallbackServerContext* ctx, const bankbench::balance* request,
                                    bankbench::balance_reply* reply) override {
    {
      std::lock_guard lock(mutex_);
      reply->set_value(cents_[request->account()]);
    }
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
  grpc::ServerUnaryReactor* deposit(grpc::CallbackServerContext* ctx, const bankbench::deposit* request,
                                    bankbench::empty* /*reply*/) override {
    {
      std::lock_guard lock(mutex_);
      cents_[request->account()] += request->cents();
    }
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::int64_t> cents_;
};

struct load_result {
  double rate;    // calls/s
  double p99_us;  // µs
};

// Drives `calls` bank.balance calls, `concurrency` in flight, and checks every reply.
class load {
 public:
  load(bankbench::bank::Stub& stub, std::int64_t calls) : stub_(stub), calls_(calls) {
    latencies_.resize(static_cast<std::size_t>(calls));
  }

  load_result run() {
    const auto start = clock::now();
    for (int i = 0; i < concurrency && i < calls_; ++i) issue();
    std::unique_lock lock(mutex_);
    if (!done_cv_.wait_until(lock, start + run_deadline, [&] { return finished_ == calls_ || !failure_.empty(); })) {
      bench::fail("gateway bench: the calls did not finish within the deadline");
    }
    if (!failure_.empty()) bench::fail("gateway bench: " + failure_);
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    std::vector<double> sorted = latencies_;
    std::sort(sorted.begin(), sorted.end());
    const auto p99 = sorted[static_cast<std::size_t>(static_cast<double>(sorted.size() - 1) * 0.99)];
    return {static_cast<double>(calls_) / seconds, p99};
  }

 private:
  using clock = std::chrono::steady_clock;
  struct call {
    grpc::ClientContext context;
    bankbench::balance request;
    bankbench::balance_reply reply;
    clock::time_point start;
    int account = 0;
  };

  void issue() {
    const std::int64_t n = issued_.fetch_add(1, std::memory_order_relaxed);
    if (n >= calls_) return;
    auto* c = new call;  // owned by its completion
    c->account = static_cast<int>(n % accounts);
    c->request.set_account(account_name(c->account));
    c->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    c->start = clock::now();
    stub_.async()->balance(&c->context, &c->request, &c->reply, [this, c, n](const grpc::Status& status) {
      std::unique_ptr<call> owned(c);
      const double us = std::chrono::duration<double, std::micro>(clock::now() - c->start).count();
      std::string bad;
      if (!status.ok()) {
        bad = "call " + std::to_string(n) + " failed: " + status.error_message();
      } else if (c->reply.value() != opening_cents(c->account)) {
        bad = "call " + std::to_string(n) + " got " + std::to_string(c->reply.value());
      }
      latencies_[static_cast<std::size_t>(n)] = us;
      issue();
      std::lock_guard lock(mutex_);
      if (!bad.empty() && failure_.empty()) failure_ = bad;
      if (++finished_ == calls_ || !failure_.empty()) done_cv_.notify_one();
    });
  }

  bankbench::bank::Stub& stub_;
  const std::int64_t calls_;
  std::atomic<std::int64_t> issued_{0};
  std::vector<double> latencies_;  // each index written by its one completion, read after all finished
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::int64_t finished_ = 0;
  std::string failure_;
};

void open_accounts(bankbench::bank::Stub& stub) {
  for (int i = 0; i < accounts; ++i) {
    grpc::ClientContext ctx;
    bankbench::deposit d;
    d.set_account(account_name(i));
    d.set_cents(opening_cents(i));
    bankbench::empty e;
    const grpc::Status s = stub.deposit(&ctx, d, &e);
    if (!s.ok()) bench::fail("gateway bench: a deposit failed: " + s.error_message());
  }
}

void report(std::string_view name, std::string_view unit, std::vector<double> values) {
  const bench::summary s = bench::summarize(std::move(values));
  std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()),
              unit.data(), s.median, s.min, s.max);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool baseline = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--baseline") {
      baseline = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  const bench::options opts = bench::parse_options(static_cast<int>(args.size()), args.data(), names);
  if (!opts.selected("gateway_grpc_unary") && !opts.selected("gateway_grpc_unary_p99")) return 0;
  const std::int64_t calls = opts.quick ? 20'000 : 100'000;

  // The server under test, on a free loopback port.
  std::unique_ptr<troupe::system> sys;
  std::unique_ptr<gw::methods> table;
  std::unique_ptr<gw::grpc_gateway> gateway;
  bank_service service;
  std::unique_ptr<grpc::Server> plain;
  int port = 0;
  if (baseline) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    plain = builder.BuildAndStart();
    if (!plain || port == 0) bench::fail("gateway bench: the baseline server did not start");
  } else {
    troupe::config cfg;
    cfg.worker_threads = opts.threads;
    sys = std::make_unique<troupe::system>(cfg);
    table = std::make_unique<gw::methods>(*sys);
    table->expose("bank", sys->spawn<bank_actor>());
    gw::grpc_settings settings;
    settings.package = "bankbench";  // what bench/gateway_bank.proto declares
    gateway = std::make_unique<gw::grpc_gateway>(*table, settings);
    port = gateway->port();
  }

  const std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  const std::unique_ptr<bankbench::bank::Stub> stub = bankbench::bank::NewStub(channel);
  open_accounts(*stub);
  (void)load(*stub, calls / 10).run();  // warm-up: connections, allocator, caches

  std::vector<double> rates;
  std::vector<double> p99s;
  for (int rep = 1; rep <= opts.reps; ++rep) {
    const load_result r = load(*stub, calls).run();
    std::fprintf(stderr, "gateway_grpc_unary rep %d/%d: %.0f calls/s, p99 %.1f us\n", rep, opts.reps, r.rate, r.p99_us);
    rates.push_back(r.rate);
    p99s.push_back(r.p99_us);
  }
  if (opts.selected("gateway_grpc_unary")) report("gateway_grpc_unary", "calls/s", rates);
  if (opts.selected("gateway_grpc_unary_p99")) report("gateway_grpc_unary_p99", "us", p99s);
  return 0;
}
