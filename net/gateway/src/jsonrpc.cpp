// JSON-RPC 2.0: decoding, encoding, running a message and the HTTP handler (see jsonrpc.hpp).
#include "troupe/gateway/jsonrpc.hpp"

#include <algorithm>
#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <memory>
#include <utility>

namespace troupe::gateway::jsonrpc {

namespace json = boost::json;

namespace {

std::string_view standard_message(int c) noexcept {
  switch (c) {
    case code::parse_error:
      return "Parse error";
    case code::invalid_request:
      return "Invalid Request";
    case code::method_not_found:
      return "Method not found";
    case code::invalid_params:
      return "Invalid params";
    case code::timeout:
      return "Timeout";
    case code::overloaded:
      return "Overloaded";
    default:
      return "Internal error";
  }
}

// The standard message for the code, and what exactly was wrong as "data".
error_reply make_error(json::value id, int c, std::string_view detail) {
  return error_reply{std::move(id), c, std::string(standard_message(c)), json::value(json::string(detail))};
}

// A number too large for a double (Boost.JSON reads 1e400 as infinity) could
// not be written back as sent: it is no id.
bool is_id(const json::value& v) noexcept {
  return v.is_string() || v.is_null() || v.is_int64() || v.is_uint64() ||
         (v.is_double() && std::isfinite(v.get_double()));
}

// One member of a message: a request object, checked before anything runs.
std::variant<call, error_reply> decode_entry(json::value& v) {
  if (!v.is_object()) return make_error(nullptr, code::invalid_request, "a request must be a JSON object");
  json::object& request = v.as_object();
  std::optional<json::value> id;
  if (json::value* given = request.if_contains("id")) {
    if (!is_id(*given))
      return make_error(nullptr, code::invalid_request,
                        "\"id\" must be a string, a number (within a double's range) or null");
    id = std::move(*given);
  }
  const json::value reply_id = id ? *id : json::value(nullptr);
  const json::value* version = request.if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return make_error(reply_id, code::invalid_request, "\"jsonrpc\" must be \"2.0\"");
  }
  const json::value* method = request.if_contains("method");
  if (method == nullptr || !method->is_string()) {
    return make_error(reply_id, code::invalid_request, "\"method\" must be a string");
  }
  json::value params(nullptr);
  if (json::value* given = request.if_contains("params")) {
    if (!given->is_object() && !given->is_array()) {
      return make_error(reply_id, code::invalid_request, "\"params\" must be an object or an array");
    }
    params = std::move(*given);
  }
  return call{std::move(id), std::string(method->get_string()), std::move(params)};
}

// An id as it came: Boost.JSON prints 1.5 as 1.5E0, to_chars gives the shortest exact form.
void append_id(std::string& out, const json::value& id) {
  if (id.is_double() && std::isfinite(id.get_double())) {
    char text[64];
    const std::to_chars_result r = std::to_chars(std::begin(text), std::end(text), id.get_double());
    if (r.ec == std::errc()) {
      out.append(text, r.ptr);
      return;
    }
  }
  out += json::serialize(id);
}

// Boost.JSON writes infinity and NaN as Infinity and NaN, which are not JSON.
bool has_non_finite(const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_:
      return !std::isfinite(v.get_double());
    case json::kind::array:
      return std::any_of(v.get_array().begin(), v.get_array().end(),
                         [](const json::value& e) { return has_non_finite(e); });
    case json::kind::object:
      return std::any_of(v.get_object().begin(), v.get_object().end(),
                         [](const json::key_value_pair& e) { return has_non_finite(e.value()); });
    default:
      return false;
  }
}

// Gathers one message's responses; the last completion sends them.
struct collector {
  collector(std::size_t n, bool is_batch, response_sink sink)
      : remaining(n), parts(n), batch(is_batch), done(std::move(sink)) {}
  // Each part is written by exactly one completion before it counts down.
  void finish(std::size_t index, std::optional<std::string> part) {
    parts[index] = std::move(part);
    // acq_rel: the release publishes this part; the acquire in the last
    // completion pairs with every earlier release, so it sees all parts.
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (!batch) {
      done(std::move(parts.front()));
      return;
    }
    std::string out;
    for (std::optional<std::string>& p : parts) {
      if (!p) continue;
      out += out.empty() ? "[" : ",";
      out += *p;
    }
    if (out.empty()) {
      done(std::nullopt);
      return;
    }
    out += "]";
    done(std::move(out));
  }
  std::atomic<std::size_t> remaining;
  std::vector<std::optional<std::string>> parts;
  bool batch;
  response_sink done;
};

bool is_json_content_type(std::string_view type) {
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  std::string lower(type);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.empty() || lower == "application/json" || lower == "application/json-rpc" ||
         lower == "application/jsonrequest";
}

}  // namespace

decoded decode(std::string_view bytes, const settings& limits) {
  if (bytes.size() > limits.max_message_bytes) {
    return make_error(nullptr, code::parse_error,
                      "the message is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                          std::to_string(limits.max_message_bytes));
  }
  json::parse_options options;
  options.max_depth = limits.max_depth;
  boost::system::error_code failed;
  json::value parsed = json::parse(json::string_view(bytes.data(), bytes.size()), failed, {}, options);
  if (failed) return make_error(nullptr, code::parse_error, "not JSON: " + failed.message());
  message out;
  if (!parsed.is_array()) {
    out.entries.push_back(decode_entry(parsed));
    return out;
  }
  json::array& batch = parsed.as_array();
  if (batch.empty()) return make_error(nullptr, code::invalid_request, "an empty batch");
  if (batch.size() > limits.max_batch) {
    return make_error(nullptr, code::invalid_request,
                      "a batch of " + std::to_string(batch.size()) + " requests, more than the limit of " +
                          std::to_string(limits.max_batch));
  }
  out.batch = true;
  out.entries.reserve(batch.size());
  for (json::value& v : batch) out.entries.push_back(decode_entry(v));
  return out;
}

int code_of(failure f) noexcept {
  switch (f) {
    case failure::method_not_found:
      return code::method_not_found;
    case failure::invalid_params:
      return code::invalid_params;
    case failure::overloaded:
      return code::overloaded;
    case failure::timeout:
      return code::timeout;
    case failure::actor_down:
    case failure::internal:
      return code::internal_error;
  }
  return code::internal_error;
}

error_reply error_of(json::value id, const call_failure& f) {
  return make_error(std::move(id), code_of(f.kind), std::string(to_string(f.kind)) + ": " + f.message);
}

std::string encode_result(const json::value& id, const json::value& result) {
  if (has_non_finite(result)) {
    return encode_error(
        make_error(id, code::internal_error, "the reply holds infinity or NaN, which JSON cannot carry"));
  }
  std::string out = R"({"jsonrpc":"2.0","id":)";
  append_id(out, id);
  out += R"(,"result":)";
  out += json::serialize(result);
  out += '}';
  return out;
}

std::string encode_error(const error_reply& e) {
  std::string out = R"({"jsonrpc":"2.0","id":)";
  append_id(out, e.id);
  out += R"(,"error":{"code":)";
  out += std::to_string(e.code);
  out += R"(,"message":)";
  out += json::serialize(json::value(json::string(e.message)));
  if (e.data) {
    out += R"(,"data":)";
    out += json::serialize(*e.data);
  }
  out += "}}";
  return out;
}

void execute(const methods& table, std::string_view bytes, const settings& limits, response_sink done) {
  decoded d = decode(bytes, limits);
  if (auto* whole = std::get_if<error_reply>(&d)) {
    done(encode_error(*whole));
    return;
  }
  message& m = std::get<message>(d);
  auto gather = std::make_shared<collector>(m.entries.size(), m.batch, std::move(done));
  for (std::size_t i = 0; i < m.entries.size(); ++i) {
    if (auto* invalid = std::get_if<error_reply>(&m.entries[i])) {
      gather->finish(i, encode_error(*invalid));
      continue;
    }
    call& c = std::get<call>(m.entries[i]);
    if (!c.id) {
      // A notification: run as the method (a request-type method is still
      // asked), its outcome discarded.
      table.call(c.method, std::move(c.params), std::nullopt,
                 [gather, i](const call_result&) { gather->finish(i, std::nullopt); });
      continue;
    }
    table.call(c.method, std::move(c.params), std::nullopt, [gather, i, id = std::move(*c.id)](call_result r) {
      if (auto* reply = std::get_if<json::value>(&r)) {
        gather->finish(i, encode_result(id, *reply));
      } else {
        gather->finish(i, encode_error(error_of(id, std::get<call_failure>(r))));
      }
    });
  }
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): the seam's signature (http_reply.hpp), as xmlrpc::handle's
void handle(const methods& table, http_request request, reply_sink done, const settings& limits) {
  if (!is_json_content_type(request.content_type)) {
    done(http_reply{415, "text/plain", "JSON-RPC requests are application/json, not " + request.content_type + "\n",
                    true});
    return;
  }
  execute(table, request.body, limits, [done = std::move(done)](std::optional<std::string> response) {
    if (response) {
      done(http_reply{200, "application/json", std::move(*response), true});
    } else {
      done(http_reply{204, "", "", true});
    }
  });
}

}  // namespace troupe::gateway::jsonrpc
