// failure: why a gateway call did not produce a reply, for every protocol to
// map to its own codes (methods.hpp has the calls; docs/gateways.md the
// mapping of each protocol). Owns nothing else.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <variant>

#include "troupe/runtime/error.hpp"

namespace troupe::gateway {

// Why a call did not produce a reply. Each protocol maps these to its own codes.
enum class failure {
  method_not_found,  // no method of that name
  invalid_params,    // the parameters do not convert to the message type
  overloaded,        // max_in_flight calls are already in flight
  timeout,           // no reply within the ask's timeout
  actor_down,        // the actor is gone (message: its exit reason) or unreachable
  internal,          // anything else (the request was dropped, ...); message says what
};
[[nodiscard]] std::string_view to_string(failure f) noexcept;

struct call_failure {
  failure kind;
  std::string message;
};

// The reply as JSON, or why there is none.
using call_result = std::variant<boost::json::value, call_failure>;
using completion = std::function<void(call_result)>;

// How a troupe error from an ask maps to a failure (timeout, actor_down, internal).
[[nodiscard]] call_failure failure_of(const troupe::error& e);

}  // namespace troupe::gateway
