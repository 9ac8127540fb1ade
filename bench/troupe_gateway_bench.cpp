// troupe_gateway_bench — the gateway workloads of WORKLOADS.md, each against a
// server doing the same work without actors, in the same process:
//   gateway_grpc_unary, gateway_grpc_unary_p99: unary gRPC calls to troupe's
//     gRPC gateway vs gRPC's own callback server (gateway_grpc_bench.cpp; only
//     when troupe::gateway_grpc is built),
//   gateway_jsonrpc_http, gateway_jsonrpc_http_p99, gateway_xmlrpc_http,
//     gateway_xmlrpc_http_p99: JSON-RPC and XML-RPC over HTTP/1.1 to troupe's
//     gateway server vs a plain Boost.Beast server (gateway_http_bench.cpp).
//
//   troupe_gateway_bench [--baseline] [--quick] [--threads N] [--reps R] [--only gateway_jsonrpc_http,...]
//   -> one `workload,unit,median,min,max` line per selected workload on stdout
//
// --baseline runs each protocol's baseline server instead of troupe's.
#include <cstdio>
#include <string_view>
#include <vector>

#include "gateway_common.hpp"

int main(int argc, char** argv) {
  namespace bench = troupe::bench;
  const std::vector<std::string_view> names = {"gateway_grpc_unary",   "gateway_grpc_unary_p99",
                                               "gateway_jsonrpc_http", "gateway_jsonrpc_http_p99",
                                               "gateway_xmlrpc_http",  "gateway_xmlrpc_http_p99"};
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
#ifdef TROUPE_BENCH_GATEWAY_GRPC
  bench::rpc::run_grpc(opts, baseline);
#else
  if (opts.selected("gateway_grpc_unary") || opts.selected("gateway_grpc_unary_p99")) {
    std::fprintf(stderr, "troupe_gateway_bench: built without troupe::gateway_grpc; no gRPC workloads\n");
  }
#endif
  bench::rpc::run_http(opts, baseline);
  return 0;
}
