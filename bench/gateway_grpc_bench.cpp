// gateway_grpc_bench.cpp — troupe_gateway_bench's gateway_grpc_* workloads
// (WORKLOADS.md): unary gRPC calls served by troupe's gateway (a bank actor
// behind troupe::gateway::grpc_gateway) or, with --baseline, by gRPC's own
// callback server compiled from the same .proto (bench/gateway_bank.proto)
// doing the same work without actors (a map under a mutex). Built only when
// troupe::gateway_grpc is.
// The command line is troupe_gateway_bench.cpp's.
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

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <troupe/gateway/grpc.hpp>
#include <troupe/gateway/methods.hpp>
#include <troupe/runtime/system.hpp>

#include "gateway_bank.grpc.pb.h"
#include "gateway_common.hpp"

namespace troupe::bench::rpc {

namespace {

namespace gw = troupe::gateway;

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

// Drives `calls` bank.balance calls, `concurrency` in flight, and checks every reply.
class load {
 public:
  load(bankbench::bank::Stub& stub, std::int64_t calls) : stub_(stub), calls_(calls), latencies_(calls) {}

  load_result run() {
    const auto start = clock::now();
    for (int i = 0; i < concurrency && i < calls_; ++i) issue();
    std::unique_lock lock(mutex_);
    if (!done_cv_.wait_until(lock, start + run_deadline, [&] { return finished_ == calls_ || !failure_.empty(); })) {
      fail("gateway bench: the calls did not finish within the deadline");
    }
    if (!failure_.empty()) fail("gateway bench: " + failure_);
    const double seconds = std::chrono::duration<double>(clock::now() - start).count();
    return {static_cast<double>(calls_) / seconds, latencies_.p99()};
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
      latencies_.record(n, us);
      issue();
      std::lock_guard lock(mutex_);
      if (!bad.empty() && failure_.empty()) failure_ = bad;
      if (++finished_ == calls_ || !failure_.empty()) done_cv_.notify_one();
    });
  }

  bankbench::bank::Stub& stub_;
  const std::int64_t calls_;
  std::atomic<std::int64_t> issued_{0};
  latencies latencies_;
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
    if (!s.ok()) fail("gateway bench: a deposit failed: " + s.error_message());
  }
}

}  // namespace

void run_grpc(const options& opts, bool baseline) {
  if (!opts.selected("gateway_grpc_unary") && !opts.selected("gateway_grpc_unary_p99")) return;
  const std::int64_t calls = calls_for(opts);

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
    if (!plain || port == 0) fail("gateway bench: the baseline server did not start");
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

  run_and_report(opts, "gateway_grpc_unary", "gateway_grpc_unary_p99", [&] { return load(*stub, calls).run(); });
}

}  // namespace troupe::bench::rpc
