// etcd_client: see etcd_client.hpp. The wire side: one HTTP/1.1 exchange per
// call over plain TCP, driven on the calling thread by a private io_context
// so that a deadline and a stop request can interrupt any step (resolve,
// connect, write, read) without another thread touching the socket.
#include "cluster/etcd/etcd_client.hpp"

#include <algorithm>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <functional>
#include <limits>
#include <utility>

#include "http/base64.hpp"
#include "http/http_session.hpp"
#include "http/json_checks.hpp"

namespace troupe::detail {

namespace {

namespace http = boost::beast::http;
namespace json = boost::json;
using steady = std::chrono::steady_clock;

// Where etcd is, for an HTTP session; errors start "etcd at <url>".
http_peer peer_of(const etcd_client& client) {
  return http_peer{client.where().host, client.where().port, "etcd at " + client.url(), client.request_timeout(),
                   max_etcd_response_bytes};
}

// Bytes (keys, values): base64 strings.
std::string bytes_field(const json::object& o, std::string_view field) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return {};
  if (!v->is_string()) reject("field '" + std::string(field) + "' is not a string");
  std::optional<std::string> bytes = base64_decode(v->as_string());
  if (!bytes) reject("field '" + std::string(field) + "' is not valid base64");
  return std::move(*bytes);
}

etcd_kv parse_kv(const json::value& v) {
  if (!v.is_object()) reject("a key-value entry is not an object");
  const json::object& o = v.as_object();
  etcd_kv kv;
  kv.key = bytes_field(o, "key");
  if (kv.key.empty()) reject("a key-value entry has no key");
  kv.value = bytes_field(o, "value");
  kv.create_revision = int_field(o, "create_revision");
  kv.mod_revision = int_field(o, "mod_revision");
  kv.lease = int_field(o, "lease");
  return kv;
}

std::int64_t header_revision(const json::object& o) {
  const json::object* header = optional_object(o, "header");
  return header == nullptr ? 0 : int_field(*header, "revision");
}

etcd_range parse_range(const json::object& o) {
  etcd_range range;
  range.revision = header_revision(o);
  if (const json::array* kvs = optional_array(o, "kvs")) {
    range.kvs.reserve(kvs->size());
    for (const json::value& kv : *kvs) range.kvs.push_back(parse_kv(kv));
  }
  return range;
}

// ---- one call: a JSON request, a JSON answer -----------------------------

// An answer that arrived whole and is a JSON object, with its HTTP status.
struct etcd_answer {
  unsigned status = 0;
  json::object body;
};

expected<etcd_answer> call_raw(const etcd_client& client, std::string_view path, const json::object& request,
                               const std::stop_token& stop) {
  const auto deadline = steady::now() + client.request_timeout();
  http_session session(peer_of(client), stop);
  if (auto connected = session.connect(deadline); !connected) return connected.error();
  if (auto sent = session.send(path, json::serialize(request), deadline); !sent) return sent.error();
  expected<http_answer> answer = session.receive(deadline);
  if (!answer) return answer.error();
  try {
    return etcd_answer{answer->status, parse_object(answer->body, "the answer")};
  } catch (const bad_answer& e) {
    // A gateway that is not there (another server, an older etcd) answers in text.
    if (answer->status != 200) {
      return error(errc::protocol_mismatch, "etcd at " + client.url() + " answered " + std::string(path) +
                                                " with HTTP " + std::to_string(answer->status) +
                                                " and no etcd error (is this etcd 3.4 or later?)");
    }
    return error(errc::malformed_message, "etcd at " + client.url() + ": " + std::string(path) + ": " + e.what());
  }
}

// The gateway's error object: {"error": "...", "message": "...", "code": <gRPC code>}.
struct etcd_refusal {
  std::string message;
  std::int64_t code = 0;
};
etcd_refusal refusal_of(const json::object& body) {
  etcd_refusal r;
  r.message = string_field(body, "message");
  if (r.message.empty()) r.message = string_field(body, "error");
  if (r.message.empty()) r.message = "(no message)";
  if (r.message.size() > 1024) r.message.resize(1024);  // it goes into log lines
  r.code = int_field(body, "code");
  return r;
}

error refused(const etcd_client& client, std::string_view path, unsigned status, const etcd_refusal& r) {
  return error(errc::request_dropped, "etcd at " + client.url() + " refused " + std::string(path) + ": " + r.message +
                                          " (HTTP " + std::to_string(status) + ")");
}

constexpr std::int64_t grpc_not_found = 5;

// A call whose answer, on HTTP 200, `read` turns into a T (throwing bad_answer
// for a bad one); any other status is etcd's refusal. `on_refusal` may turn a
// refusal into a value (e.g. "lease not found" when revoking).
template <class T, class Read, class OnRefusal>
expected<T> call(const etcd_client& client, std::string_view path, const json::object& request,
                 const std::stop_token& stop, Read read, OnRefusal on_refusal) {
  expected<etcd_answer> answer = call_raw(client, path, request, stop);
  if (!answer) return answer.error();
  try {
    if (answer->status != 200) {
      const etcd_refusal r = refusal_of(answer->body);
      if (std::optional<T> value = on_refusal(r)) return std::move(*value);
      return refused(client, path, answer->status, r);
    }
    return read(answer->body);
  } catch (const bad_answer& e) {
    return error(errc::malformed_message, "etcd at " + client.url() + ": " + std::string(path) + ": " + e.what());
  }
}

template <class T, class Read>
expected<T> call(const etcd_client& client, std::string_view path, const json::object& request,
                 const std::stop_token& stop, Read read) {
  return call<T>(client, path, request, stop, std::move(read), [](const etcd_refusal&) { return std::optional<T>(); });
}

json::object key_request(const std::string& key) {
  json::object request;
  request["key"] = base64_encode(key);
  return request;
}

json::object operation_json(const etcd_operation& op) {
  json::object body = key_request(op.key);
  json::object wrapped;
  switch (op.what) {
    case etcd_operation::kind::put:
      body["value"] = base64_encode(op.value);
      if (op.lease != 0) body["lease"] = std::to_string(op.lease);
      wrapped["request_put"] = std::move(body);
      break;
    case etcd_operation::kind::get:
      wrapped["request_range"] = std::move(body);
      break;
    case etcd_operation::kind::erase:
      wrapped["request_delete_range"] = std::move(body);
      break;
  }
  return wrapped;
}

}  // namespace

std::string etcd_prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  // Every byte 0xff (or empty): etcd's "\0" means "to the end of the keyspace".
  return std::string(1, '\0');
}

expected<etcd_client> etcd_client::create(const std::string& url, std::chrono::milliseconds request_timeout) {
  const auto bad = [&](const char* why) {
    return error(errc::no_such_node, "bad etcd URL '" + url + "' (" + why + "; expected http://host:port)");
  };
  std::string_view rest(url);
  constexpr std::string_view scheme = "http://";
  if (rest.starts_with("https://")) return bad("TLS to etcd is not supported");
  if (!rest.starts_with(scheme)) return bad("no http:// scheme");
  rest.remove_prefix(scheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path after the host");
  endpoint where;
  std::string_view port = "2379";
  if (rest.starts_with('[')) {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed IPv6 bracket");
    where.host = std::string(rest.substr(1, close - 1));
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return bad("junk after the IPv6 address");
      port = after.substr(1);
    }
  } else {
    const auto colon = rest.rfind(':');
    where.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (where.host.empty() || where.host.size() > 255) return bad("no host");
  for (char c : where.host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '-' || c == ':' || c == '_';
    if (!ok) return bad("a character not allowed in a host");
  }
  unsigned port_number = 0;
  const auto [end, problem] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port.empty() || problem != std::errc() || end != port.data() + port.size() || port_number == 0 ||
      port_number > 65535) {
    return bad("bad port");
  }
  where.port = std::to_string(port_number);
  if (request_timeout <= std::chrono::milliseconds::zero()) {
    return error(errc::no_such_node, "bad etcd request timeout (it must be positive)");
  }
  return etcd_client(url, std::move(where), request_timeout);
}

expected<etcd_lease> etcd_client::grant_lease(std::chrono::seconds ttl, const std::stop_token& stop) const {
  json::object request;
  request["TTL"] = std::to_string(ttl.count());
  return call<etcd_lease>(*this, "/v3/lease/grant", request, stop, [](const json::object& body) {
    if (const std::string refusal = string_field(body, "error"); !refusal.empty()) reject("etcd: " + refusal);
    etcd_lease lease{int_field(body, "ID"), std::chrono::seconds(int_field(body, "TTL"))};
    if (lease.id == 0 || lease.ttl <= std::chrono::seconds::zero()) reject("no lease id or TTL in the grant");
    return lease;
  });
}

expected<std::chrono::seconds> etcd_client::keep_alive(std::int64_t lease, const std::stop_token& stop) const {
  json::object request;
  request["ID"] = std::to_string(lease);
  using result = std::chrono::seconds;
  return call<result>(
      *this, "/v3/lease/keepalive", request, stop,
      [](const json::object& body) {
        // A stream of one: {"result": {...}} (or {"error": {...}} mid-stream).
        if (const json::object* failure = optional_object(body, "error")) {
          reject("keepalive failed: " + string_field(*failure, "message"));
        }
        const json::object* answer = optional_object(body, "result");
        if (answer == nullptr) reject("no result in the keepalive answer");
        const std::int64_t ttl = int_field(*answer, "TTL");
        if (ttl < 0) reject("a negative TTL");
        return result(ttl);  // 0 (omitted): etcd no longer has the lease
      },
      [](const etcd_refusal& r) { return r.code == grpc_not_found ? std::optional<result>(0) : std::nullopt; });
}

expected<void> etcd_client::revoke_lease(std::int64_t lease, const std::stop_token& stop) const {
  json::object request;
  request["ID"] = std::to_string(lease);
  // expected<void> has no value to carry through call(): a bool stands in.
  auto revoked = call<bool>(
      *this, "/v3/lease/revoke", request, stop, [](const json::object&) { return true; },
      [](const etcd_refusal& r) { return r.code == grpc_not_found ? std::optional<bool>(true) : std::nullopt; });
  if (!revoked) return revoked.error();
  return {};
}

expected<std::int64_t> etcd_client::put(const std::string& key, const std::string& value, std::int64_t lease,
                                        const std::stop_token& stop) const {
  json::object request = key_request(key);
  request["value"] = base64_encode(value);
  if (lease != 0) request["lease"] = std::to_string(lease);
  return call<std::int64_t>(*this, "/v3/kv/put", request, stop,
                            [](const json::object& body) { return header_revision(body); });
}

expected<etcd_range> etcd_client::get(const std::string& key, const std::stop_token& stop) const {
  return call<etcd_range>(*this, "/v3/kv/range", key_request(key), stop,
                          [](const json::object& body) { return parse_range(body); });
}

expected<etcd_range> etcd_client::get_prefix(const std::string& prefix, const std::stop_token& stop) const {
  json::object request = key_request(prefix);
  request["range_end"] = base64_encode(etcd_prefix_end(prefix));
  return call<etcd_range>(*this, "/v3/kv/range", request, stop,
                          [](const json::object& body) { return parse_range(body); });
}

expected<std::int64_t> etcd_client::erase(const std::string& key, const std::stop_token& stop) const {
  return call<std::int64_t>(*this, "/v3/kv/deleterange", key_request(key), stop,
                            [](const json::object& body) { return int_field(body, "deleted"); });
}

expected<void> etcd_client::compact(std::int64_t revision, const std::stop_token& stop) const {
  json::object request;
  request["revision"] = std::to_string(revision);
  auto compacted = call<bool>(*this, "/v3/kv/compaction", request, stop, [](const json::object&) { return true; });
  if (!compacted) return compacted.error();
  return {};
}

expected<etcd_txn_result> etcd_client::txn(const std::vector<etcd_compare>& compares,
                                           const std::vector<etcd_operation>& success,
                                           const std::vector<etcd_operation>& failure,
                                           const std::stop_token& stop) const {
  json::object request;
  json::array compare_json;
  for (const etcd_compare& c : compares) {
    json::object one = key_request(c.key);
    one["result"] = "EQUAL";
    if (c.what == etcd_compare::target::create_revision) {
      one["target"] = "CREATE";
      one["create_revision"] = std::to_string(c.create_revision);
    } else {
      one["target"] = "VALUE";
      one["value"] = base64_encode(c.value);
    }
    compare_json.push_back(std::move(one));
  }
  request["compare"] = std::move(compare_json);
  for (const auto& [field, operations] : {std::pair{"success", &success}, std::pair{"failure", &failure}}) {
    json::array ops;
    for (const etcd_operation& op : *operations) ops.push_back(operation_json(op));
    request[field] = std::move(ops);
  }
  return call<etcd_txn_result>(*this, "/v3/kv/txn", request, stop, [&](const json::object& body) {
    etcd_txn_result result;
    result.succeeded = bool_field(body, "succeeded");
    result.revision = header_revision(body);
    const std::size_t expected_count = (result.succeeded ? success : failure).size();
    const json::array* responses = optional_array(body, "responses");
    if ((responses == nullptr ? 0 : responses->size()) != expected_count) {
      reject("the transaction's answer has " + std::to_string(responses == nullptr ? 0 : responses->size()) +
             " responses for " + std::to_string(expected_count) + " operations");
    }
    if (responses == nullptr) return result;
    for (const json::value& response : *responses) {
      if (!response.is_object()) reject("a transaction response is not an object");
      const json::object* range = optional_object(response.as_object(), "response_range");
      result.responses.push_back(range == nullptr ? etcd_range{} : parse_range(*range));
    }
    return result;
  });
}

// ---- the watch -----------------------------------------------------------

struct etcd_watch::state {
  state(const etcd_client& c, std::stop_token stop) : client(c), session(peer_of(client), std::move(stop)) {}

  // One message of the stream: a batch, or why the watch ended.
  expected<etcd_watch_batch> parse(std::string_view line) {
    try {
      const json::object message = parse_object(line, "a watch message");
      if (const json::value* failure = message.if_contains("error")) {
        std::string text = failure->is_object()   ? string_field(failure->as_object(), "message")
                           : failure->is_string() ? std::string(failure->as_string())
                                                  : std::string("(no message)");
        if (text.size() > 1024) text.resize(1024);
        return error(errc::request_dropped, "etcd at " + client.url() + " ended the watch: " + text);
      }
      const json::object* result = optional_object(message, "result");
      if (result == nullptr) reject("a watch message without a result");
      if (bool_field(*result, "canceled")) {
        const std::int64_t compacted = int_field(*result, "compact_revision");
        std::string why = compacted != 0 ? "its start revision was compacted (now at " + std::to_string(compacted) + ")"
                                         : string_field(*result, "cancel_reason");
        if (why.empty()) why = "no reason given";
        if (why.size() > 1024) why.resize(1024);
        return error(errc::request_dropped, "etcd at " + client.url() + " cancelled the watch: " + why);
      }
      etcd_watch_batch batch;
      batch.revision = header_revision(*result);
      if (const json::array* events = optional_array(*result, "events")) {
        for (const json::value& e : *events) {
          if (!e.is_object()) reject("a watch event is not an object");
          const json::object& event = e.as_object();
          etcd_event out;
          const std::string type = string_field(event, "type");
          // PUT is the enum's default, so etcd leaves "type" out for it.
          if (type == "DELETE") {
            out.deleted = true;
          } else if (!type.empty() && type != "PUT") {
            reject("a watch event of unknown type '" + type.substr(0, 64) + "'");
          }
          const json::value* kv = event.if_contains("kv");
          if (kv == nullptr) reject("a watch event without kv");
          out.kv = parse_kv(*kv);
          batch.events.push_back(std::move(out));
        }
      }
      created = created || bool_field(*result, "created");
      return batch;
    } catch (const bad_answer& e) {
      return error(errc::malformed_message, "etcd at " + client.url() + ": /v3/watch: " + e.what());
    }
  }

  // The next message: one line of the stream (the gateway ends each with '\n').
  expected<std::string> next_line(std::optional<steady::time_point> deadline) {
    for (;;) {
      const std::size_t newline = pending.find('\n', scanned);
      if (newline != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        scanned = 0;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank: keep reading
        return line;
      }
      scanned = pending.size();
      if (pending.size() > max_etcd_response_bytes) {
        return error(errc::malformed_message, "etcd at " + client.url() + ": a watch message larger than " +
                                                  std::to_string(max_etcd_response_bytes) + " bytes");
      }
      expected<bool> more = session.receive_some(parser, pending, deadline);
      if (!more) return more.error();
      if (!*more && pending.find('\n', scanned) == std::string::npos) {
        return error(errc::connection_lost, "etcd at " + client.url() + " ended the watch stream");
      }
    }
  }

  const etcd_client client;  // a copy: the watch may outlive the caller's
  http_session session;
  http_session::streamed_parser parser;
  std::string pending;      // received, not yet a whole message
  std::size_t scanned = 0;  // pending[0, scanned) has no '\n'
  bool created = false;
  std::optional<etcd_watch_batch> early;  // events that came with the confirmation
};

etcd_watch::etcd_watch(std::unique_ptr<state> s) : state_(std::move(s)) {}
etcd_watch::~etcd_watch() = default;

expected<std::unique_ptr<etcd_watch>> etcd_watch::open(const etcd_client& client, const std::string& key,
                                                       const std::string& range_end, std::int64_t start_revision,
                                                       std::stop_token stop) {
  const auto deadline = steady::now() + client.request_timeout();
  auto s = std::make_unique<state>(client, std::move(stop));
  // The stream has no end: each message is bounded in next_line() instead.
  s->parser.body_limit(boost::none);
  s->parser.header_limit(max_http_header_bytes);
  json::object create = key_request(key);
  create["range_end"] = base64_encode(range_end);
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  json::object request;
  request["create_request"] = std::move(create);
  if (auto connected = s->session.connect(deadline); !connected) return connected.error();
  if (auto sent = s->session.send("/v3/watch", json::serialize(request), deadline); !sent) return sent.error();
  expected<unsigned> status = s->session.receive_head(s->parser, deadline);
  if (!status) return status.error();
  if (*status != 200) {
    // The refusal's body is small; anything past the cap is not etcd.
    std::string body;
    while (body.size() <= max_http_header_bytes) {
      expected<bool> more = s->session.receive_some(s->parser, body, deadline);
      if (!more || !*more) break;
    }
    std::string text = "HTTP " + std::to_string(*status);
    try {
      text = refusal_of(parse_object(body, "the answer")).message + " (" + text + ")";
    } catch (const bad_answer&) {
    }
    return error(errc::request_dropped, "etcd at " + client.url() + " refused /v3/watch: " + text);
  }
  // The first message confirms the watch; etcd sends it at once.
  expected<std::string> first = s->next_line(deadline);
  if (!first) return first.error();
  expected<etcd_watch_batch> confirmation = s->parse(*first);
  if (!confirmation) return confirmation.error();
  if (!s->created) {
    return error(errc::malformed_message, "etcd at " + client.url() +
                                              ": /v3/watch: the first message is not the "
                                              "watch's confirmation");
  }
  // A confirmation carries no events; if one did, next() must not lose them.
  if (!confirmation->events.empty()) s->early = std::move(*confirmation);
  return std::unique_ptr<etcd_watch>(new etcd_watch(std::move(s)));
}

expected<etcd_watch_batch> etcd_watch::next() {
  if (state_->early) {
    etcd_watch_batch batch = std::move(*state_->early);
    state_->early.reset();
    return batch;
  }
  expected<std::string> line = state_->next_line(std::nullopt);
  if (!line) return line.error();
  return state_->parse(*line);
}

}  // namespace troupe::detail
