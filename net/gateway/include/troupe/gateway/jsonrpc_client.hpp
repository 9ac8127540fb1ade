// jsonrpc_client: an outside JSON-RPC 2.0 service (over HTTP POST) as
// something an actor can call and co_await (docs/gateways.md). Owns: the
// client actor, its Asio thread, the HTTP exchange, checking the service's
// answers. May use: troupe::runtime, Boost.Beast, Boost.JSON.
//
//   troupe::gateway::jsonrpc_client prices(sys, {.host = "127.0.0.1", .port = "8545", .target = "/"});
//   troupe::task<double> on(const quote& q) {                  // in an actor's handler
//     co_return co_await prices.call<double>("price", boost::json::array{q.symbol}, 2s);
//   }
//
// A call is an ask to the client actor, which performs the HTTP exchange on
// the client's own Asio thread and answers through a reply_promise, so the
// calling actor's thread never waits (the usual co_await of an ask). Each call
// uses a connection of its own, bounded by the call's timeout end to end.
// Failures: the ask fails with a troupe error — co_await throws troupe_error —
// errc::timeout (no answer in time), errc::connection_lost (cannot connect, or
// the connection broke), errc::malformed_message (an answer that is not a
// JSON-RPC 2.0 response to this call: the service is untrusted, its answer is
// checked and bounded), errc::invalid_request (the service answered with a
// JSON-RPC error: the text holds its code, message and data), and
// errc::request_dropped (the client was destroyed first).
//
// Thread safety: call() and call_json() from any actor (or, with try_get() on
// call_json, any thread); the client must outlive the calls made through it.
#pragma once

#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/response.hpp"
#include "troupe/runtime/system.hpp"
#include "troupe/runtime/task.hpp"

namespace troupe::gateway {

struct client_settings {
  std::string host = "127.0.0.1";  // a name or an address, without IPv6 brackets
  std::string port = "80";
  std::string target = "/";  // the path the service is POSTed to
  // An answer with a larger body is errc::malformed_message.
  std::size_t max_response_bytes = std::size_t{1} << 20;
};

// The client actor's one message: a call to make.
struct outbound_call {
  std::string method;
  boost::json::value params;  // an object, an array, or null for none
  std::chrono::nanoseconds timeout;
  using reply = boost::json::value;  // the service's "result"
};
// Sent by the client's destructor: the actor stops.
struct close_client {};
using client_protocol = protocol<outbound_call, close_client>;

namespace detail {
struct client_core;
}

class jsonrpc_client {
 public:
  jsonrpc_client(troupe::system& sys, client_settings s);
  jsonrpc_client(const jsonrpc_client&) = delete;
  jsonrpc_client& operator=(const jsonrpc_client&) = delete;
  // Stops the Asio thread; calls still in flight fail with errc::request_dropped.
  ~jsonrpc_client();

  // The result as JSON (an ask of the client actor).
  [[nodiscard]] response<boost::json::value> call_json(std::string method, boost::json::value params,
                                                       std::chrono::nanoseconds timeout) const;

  // The result converted to R with boost::json::value_to (a described struct,
  // a number, a string, ...); a result that does not convert throws.
  template <class R>
  task<R> call(std::string method, boost::json::value params, std::chrono::nanoseconds timeout) const {
    boost::json::value result = co_await call_json(std::move(method), std::move(params), timeout);
    co_return boost::json::value_to<R>(result);
  }

 private:
  std::shared_ptr<detail::client_core> core_;
  ref<client_protocol> actor_;
};

}  // namespace troupe::gateway
