// Checked reading of JSON from another program: a parse with a depth limit,
// and field readers that throw bad_answer naming the field when it is not the
// type it must be. Owns: those checks. May use: Boost.JSON.
//
// Used where troupe reads a server's JSON (the etcd client); a reader catches
// bad_answer at its call's boundary and turns it into errc::malformed_message,
// so each field check stays one line:
//
//   try {
//     const json::object o = parse_object(text, "the answer");
//     std::int64_t revision = int_field(o, "revision");
//   } catch (const bad_answer& e) { return error(errc::malformed_message, e.what()); }
//
// Thread safety: stateless; any thread.
#pragma once

#include <boost/json.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace troupe::detail {

class bad_answer : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws bad_answer(why).
[[noreturn]] void reject(const std::string& why);

// `text` as a JSON object, at most 32 levels deep; `what` names it in errors.
boost::json::object parse_object(std::string_view text, std::string_view what);
// The field if it is an object (an array); null if absent or null.
const boost::json::object* optional_object(const boost::json::object& o, std::string_view field);
const boost::json::array* optional_array(const boost::json::object& o, std::string_view field);
// proto3 JSON: int64 fields are decimal strings (numbers are accepted too);
// a field at its default (0) is omitted.
std::int64_t int_field(const boost::json::object& o, std::string_view field);
// Absent or null: false / "".
bool bool_field(const boost::json::object& o, std::string_view field);
std::string string_field(const boost::json::object& o, std::string_view field);

}  // namespace troupe::detail
