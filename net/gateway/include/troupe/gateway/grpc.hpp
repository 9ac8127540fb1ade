// grpc_gateway: the methods of a troupe::gateway::methods table served as a gRPC
// service (docs/gateways.md). Owns: the .proto generated from the method
// table's shapes, the generic gRPC server (callback API: no thread waits on an
// actor), protobuf <-> JSON value conversion, status codes. May use: gRPC,
// protobuf, troupe::gateway. Its own component (troupe::gateway_grpc), so only
// users who ask for gRPC pull it in.
//
//   troupe::gateway::methods m(sys);
//   m.expose("bank", bank_ref);
//   troupe::gateway::grpc_gateway g(m, {.address = "127.0.0.1:0"});
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
// grpc_client: an outside gRPC service as an actor, called like the other
// outbound clients (rpc_client.hpp: the same rpc_request, the same call<R>):
//
//   troupe::gateway::grpc_client prices(sys, {.target = "127.0.0.1:50051", .proto = proto_text});
//   // in a troupe::task<> handler:
//   std::int64_t c = co_await prices.call<std::int64_t>("bank.balance", {{"account", "alice"}}, 2s);
//
// Methods are "<service>.<rpc>" of the .proto's services (unary rpcs; the
// .proto is given as text, without imports). Parameters: an object with the
// request's field names, an array of its fields in order, or null (all
// defaults). The reply is the response message as a JSON object, or, when the
// response has exactly one field named `value` (what grpc_gateway makes of a
// non-record reply), that field's value. The call's timeout is the gRPC
// deadline. How a call ends: the reply; errc::timeout (DEADLINE_EXCEEDED),
// errc::connection_lost (UNAVAILABLE: refused, unreachable, dropped),
// errc::remote_fault (any other status: its name and details),
// errc::malformed_message (a response that does not parse),
// errc::invalid_request (an unknown method, parameters that do not fit).
// Destroying the client stops its actor; calls already sent still complete.
//
// Thread safety: construct and destroy on one thread; proto() and port() from any.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "troupe/gateway/methods.hpp"
#include "troupe/gateway/rpc_client.hpp"

namespace troupe::gateway {

struct grpc_settings {
  // host:port; port 0 picks a free one (see port()). Loopback by default.
  std::string address = "127.0.0.1:0";
  std::string package = "troupe";
  // Empty: serve the .proto generated from the protocol. Else a .proto the
  // user wrote (text, no imports), checked when the server is built: every
  // method's service and rpc by name, its request and reply messages with
  // exactly the protocol's fields (names, types, repeated or not), streaming as
  // the protocol says. Field numbers and message names are the user's, and so
  // is the package (`package` above is then unused). A mismatch is refused,
  // naming the method and field.
  std::string proto;
  // A request or reply larger than this is refused (RESOURCE_EXHAUSTED, by gRPC).
  std::size_t max_message_bytes = std::size_t{4} << 20;
};

class grpc_gateway {
 public:
  // Generates the schema and starts serving; throws troupe_error if a method
  // cannot be expressed in protobuf or the address cannot be bound.
  grpc_gateway(const methods& table, const grpc_settings& settings = {});
  grpc_gateway(const grpc_gateway&) = delete;
  grpc_gateway& operator=(const grpc_gateway&) = delete;
  // Stops accepting, cancels calls in flight and waits for them to finish.
  ~grpc_gateway();

  [[nodiscard]] int port() const noexcept;
  // The service definition, as .proto text (proto3).
  [[nodiscard]] const std::string& proto() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct grpc_endpoint {
  std::string target;  // host:port
  std::string proto;   // the service's .proto (proto3 or proto2), as text, without imports
  std::size_t max_message_bytes = std::size_t{4} << 20;
};

class grpc_client {
 public:
  // Parses the .proto and connects lazily; throws troupe_error (invalid_request)
  // if the .proto does not parse or has no service.
  grpc_client(troupe::system& sys, const grpc_endpoint& endpoint);
  grpc_client(const grpc_client&) = delete;
  grpc_client& operator=(const grpc_client&) = delete;
  grpc_client(grpc_client&&) = delete;
  grpc_client& operator=(grpc_client&&) = delete;
  ~grpc_client();

  // The client actor: ask it an rpc_request from anywhere (a thread: .get()).
  [[nodiscard]] const ref<rpc_protocol>& actor() const noexcept { return actor_; }

  // In a task<> handler: co_await client.call<R>(...). Throws troupe_error (see above).
  template <class R = boost::json::value>
  [[nodiscard]] task<R> call(std::string method, boost::json::value params, std::chrono::milliseconds timeout) const {
    return rpc_client::call_on<R>(actor_, std::move(method), std::move(params), timeout);
  }

 private:
  ref<rpc_protocol> actor_;
};

// The .proto text for a method table (what grpc_gateway serves), or a
// troupe_error naming the method whose types protobuf cannot express.
[[nodiscard]] std::string proto_of(const methods& table, const std::string& package = "troupe");

}  // namespace troupe::gateway
