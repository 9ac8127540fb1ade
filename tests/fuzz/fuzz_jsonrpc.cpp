// Fuzz target: the JSON-RPC 2.0 decoder and encoders,
// net/gateway/include/troupe/gateway/jsonrpc.hpp. The input is one message as
// a client sent it (an HTTP body or a WebSocket text frame), decoded with
// small limits so that the limits' edges are reached too.
//
// Invariants:
// - decode never throws: every input is a message or one error;
// - a whole-message error is a parse error or an invalid request, with a null id;
// - a message has 1..max_batch entries, exactly one unless it is a batch;
// - a call's id is a string, a number or null; its params an object, an array or null;
// - an invalid entry is an invalid request whose id is null, a string or a number;
// - every response the encoders write is JSON again, with "jsonrpc":"2.0" and
//   the same id (a fractional one: the same double, read back exactly).
#include <boost/json/parse.hpp>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "troupe/gateway/jsonrpc.hpp"

namespace {

namespace rpc = troupe::gateway::jsonrpc;
namespace json = boost::json;

bool is_id(const json::value& v) { return v.is_string() || v.is_number() || v.is_null(); }

// The response parses back as a response to the same id.
void check_response(const std::string& text, const json::value& id) {
  boost::system::error_code failed;
  const json::value back = json::parse(text, failed);
  TROUPE_FUZZ_CHECK(!failed);
  TROUPE_FUZZ_CHECK(back.is_object());
  TROUPE_FUZZ_CHECK(back.as_object().at("jsonrpc") == "2.0");
  const json::value& echoed = back.as_object().at("id");
  if (!id.is_double()) {
    TROUPE_FUZZ_CHECK(echoed == id);
    return;
  }
  // A fractional id is written in its shortest exact form: read back with a
  // correctly rounded parser (from_chars; Boost.JSON 1.81's is not always) it
  // is the same double.
  TROUPE_FUZZ_CHECK(echoed.is_number());
  const std::string_view prefix = R"({"jsonrpc":"2.0","id":)";
  TROUPE_FUZZ_CHECK(text.starts_with(prefix));
  double again = 0;
  const std::from_chars_result r = std::from_chars(text.data() + prefix.size(), text.data() + text.size(), again);
  TROUPE_FUZZ_CHECK(r.ec == std::errc());
  TROUPE_FUZZ_CHECK(again == id.get_double());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  rpc::settings limits;
  limits.max_message_bytes = 4096;
  limits.max_batch = 8;
  limits.max_depth = 16;
  const std::string_view input(reinterpret_cast<const char*>(data), size);  // NOLINT: bytes as text
  rpc::decoded d = rpc::decode(input, limits);
  if (const auto* whole = std::get_if<rpc::error_reply>(&d)) {
    TROUPE_FUZZ_CHECK(whole->code == rpc::code::parse_error || whole->code == rpc::code::invalid_request);
    TROUPE_FUZZ_CHECK(whole->id.is_null());
    check_response(rpc::encode_error(*whole), whole->id);
    return 0;
  }
  const rpc::message& m = std::get<rpc::message>(d);
  TROUPE_FUZZ_CHECK(!m.entries.empty() && m.entries.size() <= limits.max_batch);
  TROUPE_FUZZ_CHECK(m.batch || m.entries.size() == 1);
  for (const auto& entry : m.entries) {
    if (const auto* invalid = std::get_if<rpc::error_reply>(&entry)) {
      TROUPE_FUZZ_CHECK(invalid->code == rpc::code::invalid_request);
      TROUPE_FUZZ_CHECK(is_id(invalid->id));
      check_response(rpc::encode_error(*invalid), invalid->id);
      continue;
    }
    const auto& c = std::get<rpc::call>(entry);
    TROUPE_FUZZ_CHECK(c.params.is_object() || c.params.is_array() || c.params.is_null());
    if (!c.id) continue;
    TROUPE_FUZZ_CHECK(is_id(*c.id));
    check_response(rpc::encode_result(*c.id, c.params), *c.id);
    const troupe::gateway::call_failure f{troupe::gateway::failure::internal, c.method};
    check_response(rpc::encode_error(rpc::error_of(*c.id, f)), *c.id);
  }
  return 0;
}
