// Fuzz target: the XML-RPC decoders, net/gateway/include/troupe/gateway/xmlrpc.hpp.
// The input is a body an outside client (decode_call) or server
// (decode_response) sent; every input goes to both.
//
// Invariants:
// - a decoder never throws; a fault carries a code of the table and a text;
// - what decodes encodes again, and that encoding decodes to the same method
//   and the same values (doubles to within printing precision): the writer and
//   the reader agree on every value the reader can produce;
// - a decoded call's params are a list, and a fault's code is one of the table's.
#include <boost/json/value.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "troupe/gateway/xmlrpc.hpp"

namespace {

namespace json = boost::json;
namespace xr = troupe::gateway::xmlrpc;

bool known_code(int code) {
  switch (code) {
    case xr::parse_error:
    case xr::invalid_request:
    case xr::method_not_found:
    case xr::invalid_params:
    case xr::internal_error:
    case xr::call_timeout:
    case xr::overloaded:
      return true;
    default:
      return false;
  }
}

// Equal, doubles to within the precision a written double keeps.
bool same(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double();
    const double y = b.get_double();
    return x == y || std::fabs(x - y) <= 1e-9 * std::fmax(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const json::array& x = a.get_array();
    const json::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!same(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    const json::object& x = a.get_object();
    const json::object& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const json::key_value_pair& member : x) {
      const json::value* other = y.if_contains(member.key());
      if (other == nullptr || !same(member.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

// XML-RPC can write it: no NaN or infinity anywhere.
bool writable(const json::value& v) {
  if (v.is_double()) return std::isfinite(v.get_double());
  if (v.is_array()) {
    for (const json::value& item : v.get_array()) {
      if (!writable(item)) return false;
    }
  }
  if (v.is_object()) {
    for (const json::key_value_pair& member : v.get_object()) {
      if (!writable(member.value())) return false;
    }
  }
  return true;
}

void check_call(std::string_view body) {
  std::variant<xr::decoded_call, xr::fault> decoded = xr::decode_call(body);
  if (const auto* bad = std::get_if<xr::fault>(&decoded)) {
    TROUPE_FUZZ_CHECK(known_code(bad->code));
    TROUPE_FUZZ_CHECK(!bad->message.empty());
    return;
  }
  const xr::decoded_call& call = std::get<xr::decoded_call>(decoded);
  if (!writable(call.params)) return;
  std::variant<std::string, xr::fault> again = xr::encode_call(call.method, call.params);
  if (std::holds_alternative<xr::fault>(again)) {
    // Only a name XML cannot carry (xmlrpc-c reads an empty or odd one).
    TROUPE_FUZZ_CHECK(std::get<xr::fault>(again).code == xr::invalid_request);
    return;
  }
  std::variant<xr::decoded_call, xr::fault> back =
      xr::decode_call(std::get<std::string>(again), xr::limits{.max_body_bytes = std::size_t{64} << 20});
  TROUPE_FUZZ_CHECK(std::holds_alternative<xr::decoded_call>(back));
  TROUPE_FUZZ_CHECK(std::get<xr::decoded_call>(back).method == call.method);
  TROUPE_FUZZ_CHECK(same(std::get<xr::decoded_call>(back).params, call.params));
}

void check_response(std::string_view body) {
  xr::decoded_response decoded = xr::decode_response(body);
  if (const auto* bad = std::get_if<xr::fault>(&decoded.outcome)) {
    TROUPE_FUZZ_CHECK(decoded.is_remote_fault || known_code(bad->code));
    TROUPE_FUZZ_CHECK(decoded.is_remote_fault || !bad->message.empty());
    return;
  }
  const json::value& result = std::get<json::value>(decoded.outcome);
  if (!writable(result)) return;
  xr::decoded_response back =
      xr::decode_response(xr::encode_response(result), xr::limits{.max_body_bytes = std::size_t{64} << 20});
  TROUPE_FUZZ_CHECK(std::holds_alternative<json::value>(back.outcome));
  TROUPE_FUZZ_CHECK(same(std::get<json::value>(back.outcome), result));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check_call(body);
  check_response(body);
  return 0;
}
