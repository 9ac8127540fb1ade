// grpc_server: the methods of a troupe::gateway::methods table served as a gRPC
// service (docs/gateways.md). Owns: the .proto generated from the method
// table's shapes, the generic gRPC server (callback API: no thread waits on an
// actor), protobuf <-> JSON value conversion, status codes. May use: gRPC,
// protobuf, troupe::gateway. Its own component (troupe::gateway_grpc), so only
// users who ask for gRPC pull it in.
//
//   troupe::gateway::methods m(sys);
//   m.expose("bank", bank_ref);
//   troupe::gateway::grpc_server g(m, {.address = "127.0.0.1:0"});
//   std::cout << g.proto();       // the .proto a client generates its stubs from
//   g.port();                     // the bound port
//
// The service: one per exposed service name ("bank"), in package
// settings.package; one unary rpc per method, named after the message type; the
// request message is the message type (fields numbered in declaration order);
// the reply is the reply type if it is a record, else a message
// `<type>_reply { <T> value = 1; }`; a tell or a void reply returns `empty`.
// A method whose types have no protobuf equivalent (a list of lists, a map, ...)
// is refused by the constructor, which names it.
//
// Status codes: invalid parameters or an unparsable request: INVALID_ARGUMENT;
// unknown method: UNIMPLEMENTED; timeout: DEADLINE_EXCEEDED (the client's
// deadline is the ask's timeout when sooner than the table's); actor gone:
// UNAVAILABLE (message: the exit reason); overloaded: RESOURCE_EXHAUSTED; else
// INTERNAL.
//
// Thread safety: construct and destroy on one thread; proto() and port() from any.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "troupe/gateway/methods.hpp"

namespace troupe::gateway {

struct grpc_settings {
  // host:port; port 0 picks a free one (see port()). Loopback by default.
  std::string address = "127.0.0.1:0";
  std::string package = "troupe";
  // A request or reply larger than this is refused (RESOURCE_EXHAUSTED, by gRPC).
  std::size_t max_message_bytes = std::size_t{4} << 20;
};

class grpc_server {
 public:
  // Generates the schema and starts serving; throws troupe_error if a method
  // cannot be expressed in protobuf or the address cannot be bound.
  grpc_server(const methods& table, grpc_settings settings = {});
  grpc_server(const grpc_server&) = delete;
  grpc_server& operator=(const grpc_server&) = delete;
  // Stops accepting, cancels calls in flight and waits for them to finish.
  ~grpc_server();

  [[nodiscard]] int port() const noexcept;
  // The service definition, as .proto text (proto3).
  [[nodiscard]] const std::string& proto() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The .proto text for a method table (what grpc_server serves), or a
// troupe_error naming the method whose types protobuf cannot express.
[[nodiscard]] std::string proto_of(const methods& table, const std::string& package = "troupe");

}  // namespace troupe::gateway
