// rpc_client: an outside XML-RPC or JSON-RPC 2.0 service as an actor, so
// actors call it with an ask and co_await the reply. Owns: one client actor per
// service, the HTTP/1.1 exchanges (Boost.Beast, asynchronous, on the client's
// own Asio thread, so no scheduler worker waits on the network), kept-alive
// connections, the two encodings, and turning every way a call can end into
// exactly one reply or one troupe::error. May use: troupe::runtime, Boost.Beast,
// Boost.JSON, xmlrpc.hpp (the XML-RPC documents, through xmlrpc-c).
//
//   troupe::gateway::rpc_client calc(sys, {.host = "127.0.0.1", .port = "8000", .target = "/RPC2"});
//   // in a troupe::task<> handler:
//   std::int64_t sum = co_await calc.call<std::int64_t>("add", boost::json::array{2, 3}, 2s);
//
// Parameters: a JSON array (positional), an object (XML-RPC: one struct param,
// the by-name convention; JSON-RPC: params by name), or null (none); any other
// value is one positional param. The reply is the result as JSON (types as in
// xmlrpc.hpp for XML-RPC); call<R> converts it with boost::json::value_to<R>
// (try_call<R>: the same, yielding expected<R> instead of throwing).
// (clang 14's UBSan `function` check cannot compile a handler that awaits
// these, an LLVM bug: troupe's sanitizer builds leave that one check off.)
//
// How a call ends (exactly once): the result; or a troupe::error, which
// call<R> throws as troupe_error:
//   errc::timeout            no answer within the call's timeout (the connection is closed)
//   errc::connection_lost    cannot connect (refused, unreachable, unresolvable) or the connection broke
//   errc::remote_fault       an XML-RPC fault or a JSON-RPC error object ("XML-RPC fault -32601: ..."),
//                            or an HTTP status other than 200
//   errc::malformed_message  an answer that does not decode, is larger than max_response_bytes, or
//                            (JSON-RPC) has another id or no "jsonrpc": "2.0"; call<R>: a result that
//                            does not convert to R
//   errc::request_dropped    the rpc_client was destroyed with the call in flight
//   errc::system_stopped     ... with the call still in the actor's mailbox
//
// Connections: an answer that allows keep-alive leaves its connection for the
// next call (at most max_idle_connections are kept). A call on a kept
// connection that the server had closed meanwhile is sent once more on a new
// one, only when nothing at all was read back.
//
// Thread safety: construct and destroy on one thread; call(), actor() from any
// thread. The system must outlive the rpc_client.
#pragma once

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/response.hpp"
#include "troupe/runtime/system.hpp"
#include "troupe/runtime/task.hpp"

namespace troupe::gateway {

enum class rpc_encoding { xmlrpc, jsonrpc };

struct rpc_endpoint {
  std::string host;              // a name or an address, without IPv6 brackets
  std::string port;              // "8000"
  std::string target = "/RPC2";  // the HTTP path
  rpc_encoding encoding = rpc_encoding::xmlrpc;
  std::size_t max_response_bytes = std::size_t{1} << 20;
  std::size_t max_idle_connections = 4;
};

// One call. Its reply: the result as JSON.
struct rpc_request {
  std::string method;
  boost::json::value params;
  std::chrono::milliseconds timeout{5000};
  using reply = boost::json::value;
};
// Stops the client actor; sent by ~rpc_client.
struct rpc_close {};
using rpc_protocol = protocol<rpc_request, rpc_close>;

namespace detail {
class rpc_transport;
}

class rpc_client {
 public:
  // The ask waits this much longer than the call's own timeout, so that a
  // timeout is reported by the exchange, which names the service.
  static constexpr std::chrono::milliseconds ask_grace{1000};

  rpc_client(troupe::system& sys, rpc_endpoint endpoint);
  rpc_client(const rpc_client&) = delete;
  rpc_client& operator=(const rpc_client&) = delete;
  rpc_client(rpc_client&&) = delete;
  rpc_client& operator=(rpc_client&&) = delete;
  // Closes the connections and stops the Asio thread and the actor: calls in
  // flight end with errc::request_dropped, calls still in the actor's mailbox
  // with errc::system_stopped, later asks of the actor with errc::actor_down.
  ~rpc_client();

  // The client actor: ask it an rpc_request from anywhere (a thread: .get()).
  [[nodiscard]] const ref<rpc_protocol>& actor() const noexcept { return actor_; }
  [[nodiscard]] const rpc_endpoint& endpoint() const noexcept;

  // In a task<> handler: co_await client.call<R>(...). Throws troupe_error (see above).
  template <class R = boost::json::value>
  [[nodiscard]] task<R> call(std::string method, boost::json::value params, std::chrono::milliseconds timeout) const {
    return call_on<R>(actor_, std::move(method), std::move(params), timeout);
  }
  // The same without exceptions: co_await client.try_call<R>(...) yields expected<R>.
  template <class R = boost::json::value>
  [[nodiscard]] task<expected<R>> try_call(std::string method, boost::json::value params,
                                           std::chrono::milliseconds timeout) const {
    return try_call_on<R>(actor_, std::move(method), std::move(params), timeout);
  }

  // Both through a client actor's ref (which may outlive the rpc_client object).
  template <class R = boost::json::value>
  static task<R> call_on(ref<rpc_protocol> client, std::string method, boost::json::value params,
                         std::chrono::milliseconds timeout) {
    expected<R> result = co_await try_call_on<R>(std::move(client), std::move(method), std::move(params), timeout);
    co_return std::move(result).value();  // throws troupe_error on failure
  }
  template <class R = boost::json::value>
  static task<expected<R>> try_call_on(ref<rpc_protocol> client, std::string method, boost::json::value params,
                                       std::chrono::milliseconds timeout) {
    // Kept this plain on purpose, one co_await and one co_return, the work in
    // converted(): g++ 12 mishandles aggregate temporaries in a co_await
    // expression (it destroys a moved-from json::value twice), and clang 14
    // with UBSan cannot compile a coroutine with several co_returns here
    // ("Cannot represent a difference across sections").
    std::string name = method;
    rpc_request request{std::move(method), std::move(params), timeout};
    response<boost::json::value> pending = client.ask(std::move(request), timeout + ask_grace);
    expected<boost::json::value> reply = co_await pending.as_expected();
    co_return converted<R>(std::move(reply), name);
  }

  // A call's reply as R, or why not.
  template <class R>
  static expected<R> converted(expected<boost::json::value> reply, const std::string& method) {
    if (!reply) return reply.error();
    if constexpr (std::is_same_v<R, boost::json::value>) {
      return reply;
    } else {
      boost::system::result<R> value = boost::json::try_value_to<R>(*reply);
      if (value) return expected<R>(std::move(*value));
      std::string shown = boost::json::serialize(*reply);
      if (shown.size() > 200) shown = shown.substr(0, 200) + "...";
      return error(errc::malformed_message,
                   "the result of " + method + " does not convert (" + value.error().message() + "): " + shown);
    }
  }

 private:
  std::shared_ptr<detail::rpc_transport> transport_;
  ref<rpc_protocol> actor_;
};

}  // namespace troupe::gateway
