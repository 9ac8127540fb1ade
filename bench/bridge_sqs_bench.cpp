// bridge_sqs_bench.cpp — bridge_sqs_consume (WORKLOADS.md): a queue of
// troupe's own SQS endpoint (started here on a scratch directory) consumed
// through sqs::source into an actor that acknowledges by returning (endpoint
// -> fetch thread -> actor -> settle thread -> DeleteMessageBatch), vs, with
// --baseline, a raw HTTP client (the bridge's own Beast client, one
// connection) looping ReceiveMessage(10) + DeleteMessageBatch of what it
// received. Built with troupe::bridge_sqs and troupe::sqs_endpoint.
// May use: bench_common.hpp, bridge_bench.hpp, the bridge's private sqs_client.hpp.
#include <boost/json/array.hpp>
#include <chrono>
#include <string>
#include <troupe/bridge/sqs.hpp>
#include <troupe/bridge/sqs_endpoint.hpp>
#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "bridge_bench.hpp"
#include "runtime/countdown.hpp"
#include "sqs_client.hpp"
#include "support/scratch_dir.hpp"

namespace troupe::bench::bridge_bench {
namespace {

namespace bridge = troupe::bridge;
using namespace std::chrono_literals;

struct counter : troupe::actor<troupe::protocol<bridge::received<std::string>>> {
  explicit counter(troupe_test::countdown* d) : done(d) {}
  void on(const bridge::received<std::string>& /*m*/) { done->count_down(); }
  troupe_test::countdown* done;
};

// --- bridge_sqs_consume ------------------------------------------------------------

namespace sqs = troupe::bridge::sqs;
namespace json = boost::json;

constexpr std::size_t sqs_in_flight = 64;

sqs::connection_settings sqs_link(const std::string& url) {
  sqs::connection_settings c;
  c.endpoint = url;
  c.auth = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};  // signed, as for AWS
  return c;
}

json::object sqs_call(sqs::detail::sqs_client& c, std::string_view op, const json::object& body,
                      std::chrono::nanoseconds extra = {}) {
  troupe::expected<json::object> r = c.call(op, body, extra);
  bench::require(static_cast<bool>(r), std::string(op) + ": " + (r ? "" : r.error().to_string()));
  return std::move(*r);
}

// A fresh queue with n small messages (untimed: SendMessageBatch of ten).
std::string sqs_fill(const std::string& url, const std::string& name, std::int64_t n) {
  sqs::detail::sqs_client c(sqs_link(url));
  const json::object made = sqs_call(c, "CreateQueue", {{"QueueName", name}});
  std::string queue(made.at("QueueUrl").as_string());
  for (std::int64_t i = 0; i < n;) {
    json::array entries;
    for (int k = 0; k < 10 && i < n; ++k, ++i) {
      entries.push_back(json::object{{"Id", std::to_string(k)}, {"MessageBody", "message " + std::to_string(i)}});
    }
    (void)sqs_call(c, "SendMessageBatch", {{"QueueUrl", queue}, {"Entries", std::move(entries)}});
  }
  return queue;
}

double sqs_consume_raw(const std::string& url, const std::string& queue, std::int64_t n) {
  sqs::detail::sqs_client c(sqs_link(url));
  bench::stopwatch sw;
  std::int64_t got = 0;
  while (got < n) {
    const json::object r = sqs_call(
        c, "ReceiveMessage",
        {{"QueueUrl", queue}, {"MaxNumberOfMessages", 10}, {"WaitTimeSeconds", 1}, {"VisibilityTimeout", 60}}, 1s);
    const json::value* messages = r.if_contains("Messages");
    if (messages == nullptr || messages->as_array().empty()) continue;
    json::array entries;
    int k = 0;
    for (const json::value& m : messages->as_array()) {
      entries.push_back(json::object{{"Id", std::to_string(k++)}, {"ReceiptHandle", m.at("ReceiptHandle")}});
    }
    got += k;
    (void)sqs_call(c, "DeleteMessageBatch", {{"QueueUrl", queue}, {"Entries", std::move(entries)}});
  }
  return static_cast<double>(n) / sw.seconds();
}

// The source and its actor in a system of their own, whose end stops the
// source in order (drained, the last deletes sent) before the next repetition.
double sqs_consume_troupe(const troupe::config& cfg, const std::string& url, const std::string& queue, std::int64_t n) {
  troupe::system sys(cfg);
  troupe_test::countdown done(static_cast<std::size_t>(n));
  auto actor = sys.spawn<counter>(&done);
  sqs::source_config in;
  in.queue_url = queue;
  in.connection = sqs_link(url);
  in.wait_time = 1s;
  in.flow.max_in_flight = sqs_in_flight;
  bench::stopwatch sw;
  auto source = sys.spawn<sqs::source<std::string>>(in, actor);
  bench::require(done.wait_for(120s), "the troupe source did not get every message");
  (void)source;  // stopped in order with `sys`
  return static_cast<double>(n) / sw.seconds();
}

}  // namespace

void run_sqs(const options& opts, bool baseline) {
  if (!opts.selected("bridge_sqs_consume")) return;
  {
    troupe::config cfg;
    cfg.worker_threads = opts.threads;
    troupe::system sys(cfg);
    troupe::test_support::scratch_dir dir("troupe-bench-sqs");
    sqs::endpoint_config ec;
    ec.data_dir = dir.path().string();
    auto ep = sqs::endpoint::start(sys, ec);
    bench::require(static_cast<bool>(ep), "the SQS endpoint did not start");
    const std::int64_t n = opts.quick ? 10'000 : 50'000;
    int rep = 0;
    bench::run_reps("bridge_sqs_consume", "msgs/s", opts.reps, [&] {
      const std::string queue = sqs_fill((*ep)->url(), "bench-" + std::to_string(rep++), n);
      return baseline ? sqs_consume_raw((*ep)->url(), queue, n) : sqs_consume_troupe(cfg, (*ep)->url(), queue, n);
    });
  }
}

}  // namespace troupe::bench::bridge_bench
