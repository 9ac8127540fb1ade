// jsonrpc: JSON-RPC 2.0 (https://www.jsonrpc.org/specification) over the
// method table — the decoder (bytes → calls or one error), the encoder of
// responses, running one message (a single request or a batch), and the HTTP
// handler the gateway's server mounts at /jsonrpc (docs/gateways.md).
// Owns: the JSON-RPC wire format and its error codes. May use: methods,
// http_reply, Boost.JSON. Knows nothing of sockets.
//
//   troupe::gateway::server srv;
//   srv.serve_jsonrpc(methods);   // POST /jsonrpc and WebSocket on /jsonrpc
//   jsonrpc::decoded d = jsonrpc::decode(R"({"jsonrpc":"2.0","id":1,"method":"bank.balance","params":["alice"]})", {});
//
// decode() is a pure function of its bytes and settings (the fuzz target
// tests/fuzz/fuzz_jsonrpc.cpp drives it): every byte string gives either a
// list of entries — a call to make, or an error to answer at once for an
// invalid member of a batch — or one error for the whole message (a parse
// error, an empty or oversized batch). It never throws on bad input.
//
// Failures map to codes (the table in docs/gateways.md): method_not_found
// -32601, invalid_params -32602, actor_down and internal -32603 (the actor's
// exit reason in "data"), timeout -32000, overloaded -32001 (server-defined,
// in the reserved range -32000..-32099).
//
// Thread safety: decode(), the encoders and code_of() are pure; execute() and
// handle() may be called from any thread, their completion runs once, on the
// calling thread or a scheduler worker.
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "troupe/gateway/http_reply.hpp"
#include "troupe/gateway/methods.hpp"

namespace troupe::gateway::jsonrpc {

// The specification's codes and the two this server defines.
namespace code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
// Server-defined (-32000..-32099):
inline constexpr int timeout = -32000;     // failure::timeout: no reply within the deadline
inline constexpr int overloaded = -32001;  // failure::overloaded: too many calls in flight, try later
}  // namespace code

struct settings {
  // A message (a request or a whole batch) longer than this is a parse error
  // (the HTTP server's body limit and the WebSocket message limit come first).
  std::size_t max_message_bytes = std::size_t{1} << 20;
  // Requests in one batch at most; a larger batch is one Invalid Request error.
  std::size_t max_batch = 100;
  // JSON nesting deeper than this is a parse error (bounds the parser's recursion).
  std::size_t max_depth = 64;
};

// One request to run. `id` is absent for a notification (no response).
struct call {
  std::optional<boost::json::value> id;  // a string, a number or null
  std::string method;
  boost::json::value params;  // an object, an array, or null when absent
};

// An error to send back: for the whole message, or for one member of a batch.
struct error_reply {
  boost::json::value id;  // the request's id when it could be read, else null
  int code = code::internal_error;
  std::string message;
  std::optional<boost::json::value> data;
};

// A well-formed message: one entry (batch == false) or a batch of 1..max_batch.
struct message {
  bool batch = false;
  std::vector<std::variant<call, error_reply>> entries;
};

// The message, or the one error that answers it whole.
using decoded = std::variant<message, error_reply>;

[[nodiscard]] decoded decode(std::string_view bytes, const settings& limits);

// The code and standard message for a failure of the method table.
[[nodiscard]] int code_of(failure f) noexcept;
[[nodiscard]] error_reply error_of(boost::json::value id, const call_failure& f);

// One response object's text. An id is written back as it came (a fractional
// number in its shortest form: 1.5, not 1.5E0). A result holding infinity or
// NaN, which JSON cannot carry, becomes an internal error.
[[nodiscard]] std::string encode_result(const boost::json::value& id, const boost::json::value& result);
[[nodiscard]] std::string encode_error(const error_reply& e);

// Runs one message: `done` gets the response text (an object, or an array for
// a batch), or nullopt when nothing is to be sent back (notifications only).
using response_sink = std::function<void(std::optional<std::string>)>;
void execute(const methods& table, std::string_view bytes, const settings& limits, response_sink done);

// The HTTP POST handler: 200 with application/json, 204 when only
// notifications came, 415 for a body that says it is not JSON.
void handle(const methods& table, http_request request, reply_sink done, const settings& limits = {});

}  // namespace troupe::gateway::jsonrpc
