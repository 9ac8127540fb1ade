// xmlrpc: XML-RPC (http://xmlrpc.com/spec.md) for the gateway, both ways.
// Owns: turning a methodCall into a method name and JSON parameters and a reply
// or a failure into a methodResponse (the serving side), the reverse for the
// client side, the fault-code table, and the limits that keep hostile XML from
// costing more than a bounded amount of stack, memory and time. May use:
// xmlrpc-c (its XML-RPC types and its expat-based parser), libxml2 (the shape
// check below), Boost.JSON, methods.hpp, http_reply.hpp. Knows nothing of HTTP
// beyond http_request/http_reply. The full mapping: docs/gateways.md, "XML-RPC".
//
//   troupe::gateway::methods m(sys);
//   m.expose("bank", bank_ref);
//   server.route("/RPC2", [&m](http_request r, reply_sink done) { xmlrpc::handle(m, std::move(r), std::move(done)); });
//
// Types (XML-RPC → JSON): int/i4/i8 → integer; boolean → true/false; string
// (also a <value> without a type tag) → string; double → number;
// dateTime.iso8601 → its ISO 8601 text ("20260107T10:20:30"); base64 → a string
// holding the decoded bytes; struct → object; array → array; nil (extension) → null.
// JSON → XML-RPC (replies and outbound calls): integer → int when it fits 32
// bits, else i8 (extension); an unsigned above 2^63-1 → double; bool →
// boolean; number → double (NaN and infinities: a fault, XML-RPC has no form
// for them); string → string, or base64 when it is not valid UTF-8 or holds a
// character XML 1.0 cannot carry (a control character other than tab, LF, CR);
// object → struct; array → array; null → nil (extension; Python's xmlrpc.client,
// xmlrpc-c and Apache XML-RPC read it).
//
// Parameters: XML-RPC's are positional, so they go to methods::call as a JSON
// array, one element per <param>. The one exception is the common convention
// of calling with a single struct whose keys are the member names: a call with
// exactly one param, a struct, to a method whose message type does not have
// exactly one member, goes by name (the struct as the JSON object). A method
// with exactly one member always takes its params by position.
//
// Hostile input: a body larger than limits::max_body_bytes, a document type
// declaration (entities: "billion laughs" runs xmlrpc-c's expat for minutes),
// elements nested deeper than limits::max_element_depth or more than
// limits::max_elements elements, and an <i8> that is not a 64-bit integer
// (xmlrpc-c 1.33 crashes on one) are refused before xmlrpc-c builds anything,
// by libxml2's streaming reader (which sets the calling thread's libxml2
// generic error handler to a silent one). xmlrpc-c's own process-wide limits are set
// once, on first use: its nesting limit to max_value_nesting_limit and its size
// limit out of the way of ours (xmlrpc_limit_set is process-wide: a program
// that sets them itself after us wins).
//
// Thread safety: every function may be called from any thread at once.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

#include "troupe/gateway/http_reply.hpp"
#include "troupe/gateway/methods.hpp"

namespace troupe::gateway::xmlrpc {

// Fault codes: the "specification for fault code interoperability"
// (xmlrpc-epi, used by Python, PHP and xmlrpc-c), plus -32000.. for the
// gateway's own server errors (that range is the spec's "server error" range).
enum fault_code : int {
  parse_error = -32700,       // not well-formed XML
  invalid_request = -32600,   // well-formed, but not an XML-RPC methodCall (or beyond a limit)
  method_not_found = -32601,  // failure::method_not_found
  invalid_params = -32602,    // failure::invalid_params
  internal_error = -32603,    // failure::internal, failure::actor_down (the actor's exit reason in faultString)
  call_timeout = -32000,      // failure::timeout
  overloaded = -32001,        // failure::overloaded
};

// The deepest XML-RPC value nesting xmlrpc-c accepts (arrays in structs in ...).
inline constexpr std::size_t max_value_nesting_limit = 64;

struct limits {
  std::size_t max_body_bytes = std::size_t{1} << 20;
  // Elements inside elements; a value nested n deep needs about 3n + 5.
  std::size_t max_element_depth = 3 * 32 + 8;
  // All elements of the document (a struct member is 3 or 4 of them).
  std::size_t max_elements = 50'000;
};

struct fault {
  int code = internal_error;
  std::string message;
};

[[nodiscard]] int code_of(failure f) noexcept;
[[nodiscard]] fault fault_of(const call_failure& f);

// --- the serving side ---------------------------------------------------------

struct decoded_call {
  std::string method;
  boost::json::array params;  // one element per <param>
};

// A methodCall document to its name and parameters, or the fault to answer.
[[nodiscard]] std::variant<decoded_call, fault> decode_call(std::string_view xml, const limits& lim = {});

// A reply as a methodResponse. A reply that has no XML-RPC form (NaN, nesting
// deeper than max_value_nesting_limit) becomes a fault document instead.
[[nodiscard]] std::string encode_response(const boost::json::value& reply);
[[nodiscard]] std::string encode_fault(const fault& f);

// The parameter rule above: the JSON value methods::call gets for `params`.
[[nodiscard]] boost::json::value params_for(const methods& m, std::string_view method, boost::json::array params);

// The XML-RPC endpoint (mounted at /RPC2): decodes the body, calls the method,
// answers a methodResponse, always HTTP 200 with text/xml, faults included
// (the spec's rule). A content type other than text/xml or application/xml
// (parameters such as charset allowed; an absent one is accepted) is refused
// with HTTP 415 and a plain-text reason, since such a client does not speak
// XML-RPC. `done` runs exactly once, possibly on a scheduler worker.
void handle(const methods& m, http_request request, reply_sink done, const limits& lim = {});

// --- the client side ----------------------------------------------------------

// A methodCall document. `params`: an array (one param per element), an
// object (one struct param: the by-name convention), null (no params), or any
// other value (one param). A fault when a value has no XML-RPC form.
[[nodiscard]] std::variant<std::string, fault> encode_call(std::string_view method, const boost::json::value& params);

// A methodResponse document to its value, or to the fault it holds (a
// response that does not decode is a fault with parse_error or invalid_request).
// `is_remote` tells a fault the server sent from one found here.
struct decoded_response {
  std::variant<boost::json::value, fault> outcome;
  bool is_remote_fault = false;
};
[[nodiscard]] decoded_response decode_response(std::string_view xml, const limits& lim = {});

}  // namespace troupe::gateway::xmlrpc
