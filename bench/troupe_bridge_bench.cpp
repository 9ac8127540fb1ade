// troupe_bridge_bench — the bridge workloads of WORKLOADS.md, each against the
// broker's own client in a tight loop, in the same run; each broker's part is
// a file of its own, built only with its bridge component (bridge_bench.hpp):
//   bridge_stomp_consume: ActiveMQ through stomp::source vs a raw STOMP consumer
//     (bridge_stomp_bench.cpp; troupe::bridge_stomp),
//   bridge_kafka_consume: librdkafka's mock cluster through kafka::source vs a
//     raw librdkafka consumer (bridge_kafka_bench.cpp; troupe::bridge_kafka),
//   bridge_amqp_consume: RabbitMQ through amqp::source vs a raw rabbitmq-c
//     consumer (bridge_amqp_bench.cpp; troupe::bridge_amqp),
//   bridge_sqs_consume: troupe's own SQS endpoint through sqs::source vs a raw
//     HTTP client (bridge_sqs_bench.cpp; troupe::bridge_sqs and troupe::sqs_endpoint).
// May use: bench_common.hpp, bridge_bench.hpp.
//
//   troupe_bridge_bench [--baseline] [--quick] [--threads N] [--reps R] [--only bridge_kafka_consume,...]
//   -> one `workload,unit,median,min,max` line per selected workload on stdout
//
// --baseline runs each broker's raw client instead of troupe's source. Each
// workload starts (and stops) its own broker; a workload whose component is
// not built, or whose broker is not installed, prints no line and says why on
// stderr.
#include <cstdio>
#include <string_view>
#include <vector>

#include "bench_common.hpp"
#include "bridge_bench.hpp"

int main(int argc, char** argv) {
  namespace bench = troupe::bench;
  namespace bb = troupe::bench::bridge_bench;
  const std::vector<std::string_view> names = {"bridge_stomp_consume", "bridge_kafka_consume", "bridge_amqp_consume",
                                               "bridge_sqs_consume"};
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
  // In WORKLOADS.md's order; each runs its broker and actor system and stops
  // them before the next (the RabbitMQ helper must start with no other thread).
  [[maybe_unused]] const auto not_built = [&](std::string_view workload, const char* component) {
    if (opts.selected(workload)) {
      std::fprintf(stderr, "troupe_bridge_bench: built without troupe::%s; no %.*s\n", component,
                   static_cast<int>(workload.size()), workload.data());
    }
  };
#ifdef TROUPE_BENCH_BRIDGE_STOMP
  bb::run_stomp(opts, baseline);
#else
  not_built("bridge_stomp_consume", "bridge_stomp");
#endif
#ifdef TROUPE_BENCH_BRIDGE_KAFKA
  bb::run_kafka(opts, baseline);
#else
  not_built("bridge_kafka_consume", "bridge_kafka");
#endif
#ifdef TROUPE_BENCH_BRIDGE_AMQP
  bb::run_amqp(opts, baseline);
#else
  not_built("bridge_amqp_consume", "bridge_amqp");
#endif
#ifdef TROUPE_BENCH_BRIDGE_SQS
  bb::run_sqs(opts, baseline);
#else
  not_built("bridge_sqs_consume", "bridge_sqs");
#endif
  return 0;
}
