// Checked reading of JSON (see json_checks.hpp).
#include "http/json_checks.hpp"

// Boost.JSON's implementation, compiled here once for all of troupe (header-
// only use: Debian's libboost1.81-dev ships it, no libboost_json needed).
#include <boost/json/src.hpp>
#include <charconv>
#include <limits>

namespace troupe::detail {

namespace {
namespace json = boost::json;
using boost::system::error_code;
}  // namespace

[[noreturn]] void reject(const std::string& why) { throw bad_answer(why); }

json::object parse_object(std::string_view text, std::string_view what) {
  error_code ec;
  json::parse_options options;
  options.max_depth = 32;  // the gateway's answers nest 6 deep; no recursion bombs
  json::value v = json::parse(text, ec, {}, options);
  if (ec) reject(std::string(what) + " is not JSON (" + ec.message() + ")");
  if (!v.is_object()) reject(std::string(what) + " is not a JSON object");
  return std::move(v.as_object());
}

const json::object* optional_object(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_object()) reject("field '" + std::string(field) + "' is not an object");
  return &v->as_object();
}

const json::array* optional_array(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_array()) reject("field '" + std::string(field) + "' is not an array");
  return &v->as_array();
}

std::int64_t int_field(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) {
    if (v->as_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      reject("field '" + std::string(field) + "' is out of range");
    }
    return static_cast<std::int64_t>(v->as_uint64());
  }
  if (!v->is_string()) reject("field '" + std::string(field) + "' is not an integer");
  const json::string& text = v->as_string();
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, problem] = std::from_chars(text.data(), end, value);
  if (text.empty() || problem != std::errc() || stop != end) {
    reject("field '" + std::string(field) + "' is not a 64-bit integer");
  }
  return value;
}

bool bool_field(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_bool()) reject("field '" + std::string(field) + "' is not a boolean");
  return v->as_bool();
}

std::string string_field(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return {};
  if (!v->is_string()) reject("field '" + std::string(field) + "' is not a string");
  return std::string(v->as_string());
}

}  // namespace troupe::detail
