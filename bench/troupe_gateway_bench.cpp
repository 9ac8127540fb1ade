// troupe_gateway_bench — the gateway workloads of WORKLOADS.md, each against a
// server doing the same work without actors, in the same process:
//   gateway_grpc_unary, gateway_grpc_unary_p99: unary gRPC calls to troupe's
//     gRPC gateway vs gRPC's own callback server (gateway_grpc_bench.cpp).
//
//   troupe_gateway_bench [--baseline] [--quick] [--threads N] [--reps R] [--only gateway_grpc_unary,...]
//   -> one `workload,unit,median,min,max` line per selected workload on stdout
//
// --baseline runs the baseline server instead of troupe's.
#include <string_view>
#include <vector>

#include "gateway_common.hpp"

int main(int argc, char** argv) {
  namespace bench = troupe::bench;
  const std::vector<std::string_view> names = {"gateway_grpc_unary", "gateway_grpc_unary_p99"};
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
  bench::rpc::run_grpc(opts, baseline);
  return 0;
}
