// etcd_client: see etcd_client.hpp. The wire side: one HTTP/1.1 exchange per
// call over plain TCP, driven on the calling thread by a private io_context
// so that a deadline and a stop request can interrupt any step (resolve,
// connect, write, read) without another thread touching the socket.
#include "cluster/etcd/etcd_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
// Boost.JSON's implementation, compiled here once for all of troupe (header-
// only use: Debian's libboost1.81-dev ships it, no libboost_json needed).
#include <boost/json/src.hpp>
#include <charconv>
#include <functional>
#include <limits>
#include <stdexcept>
#include <utility>

namespace troupe::detail {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using boost::system::error_code;

// A watch message or an error body must fit; the stream as a whole is unbounded.
constexpr std::size_t max_header_bytes = 64 * 1024;

// ---- base64 -------------------------------------------------------------

constexpr std::string_view base64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// ---- answers that are not what the gateway sends -------------------------

// Thrown while reading an answer, caught at the call's boundary and turned into
// errc::malformed_message: keeps each field check to one line.
class bad_answer : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

// proto3 JSON: int64 fields are decimal strings (numbers are accepted too);
// a field at its default (0) is omitted.
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

// ---- one HTTP connection, driven with deadlines ---------------------------

// An etcd answer that arrived whole: its HTTP status and body.
struct http_answer {
  unsigned status = 0;
  std::string body;
};

class http_session {
 public:
  http_session(const etcd_client& client, std::stop_token stop)
      : client_(client), on_stop_(std::move(stop), stopper{&io_}) {}

  // The failures of this session's steps, as troupe errors with the step
  // named. `reaching`: the step is resolving or connecting.
  [[nodiscard]] error failure(const std::string& step, const error_code& ec, bool reaching = false) const {
    const std::string where = "etcd at " + client_.url() + ": ";
    if (ec == asio::error::timed_out) {
      return error(errc::timeout,
                   where + step + ": no answer within " + std::to_string(client_.request_timeout().count()) + " ms");
    }
    if (ec == asio::error::operation_aborted) return error(errc::system_stopped, where + step + ": stopped");
    if (ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return error(errc::malformed_message,
                   where + step + ": the answer is larger than " + std::to_string(max_etcd_response_bytes) + " bytes");
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return error(errc::connection_lost, where + step + ": etcd closed the connection");
    }
    if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
      return error(errc::malformed_message, where + step + ": not an HTTP answer (" + ec.message() + ")");
    }
    return error(errc::connection_lost, where + (reaching ? "unreachable: " : "") + step + ": " + ec.message());
  }

  expected<void> connect(steady::time_point deadline) {
    const etcd_client::endpoint& where = client_.where();
    std::vector<tcp::endpoint> endpoints;
    error_code ec;
    const asio::ip::address literal = asio::ip::make_address(where.host, ec);
    if (!ec) {
      unsigned short port = 0;
      std::from_chars(where.port.data(), where.port.data() + where.port.size(), port);
      endpoints.emplace_back(literal, port);
    } else {
      // A name: resolved on Asio's resolver thread. (A stuck DNS lookup is cut
      // off at the deadline, but the io_context's teardown waits for it.)
      tcp::resolver resolver(io_);
      tcp::resolver::results_type results;
      ec = run(deadline, [&](auto done) {
        resolver.async_resolve(where.host, where.port, [&results, done](error_code e, tcp::resolver::results_type r) {
          results = std::move(r);
          done(e);
        });
      });
      if (ec) return failure("resolving " + where.host, ec, /*reaching=*/true);
      for (const auto& entry : results) endpoints.push_back(entry.endpoint());
    }
    if (endpoints.empty()) return error(errc::connection_lost, "etcd at " + client_.url() + ": no address");
    for (const tcp::endpoint& endpoint : endpoints) {
      socket_.close(ec);
      // Close-on-exec: a child process (a deployed node) must not inherit it.
      const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
      if (fd < 0) {
        const error_code problem(errno, boost::system::system_category());
        return failure("socket", problem);
      }
      socket_.assign(endpoint.protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        return failure("socket", ec);
      }
      ec = run(deadline, [&](auto done) { socket_.async_connect(endpoint, [done](error_code e) { done(e); }); });
      if (!ec) return {};
      if (ec == asio::error::timed_out || ec == asio::error::operation_aborted) break;
    }
    return failure("connect", ec, /*reaching=*/true);
  }

  expected<void> send(std::string_view target, std::string body, steady::time_point deadline) {
    request_ = http::request<http::string_body>(http::verb::post, target, 11);
    const std::string& host = client_.where().host;
    const bool ipv6 = host.find(':') != std::string::npos;
    request_.set(http::field::host, (ipv6 ? "[" + host + "]" : host) + ":" + client_.where().port);
    request_.set(http::field::content_type, "application/json");
    request_.body() = std::move(body);
    request_.prepare_payload();
    const error_code ec = run(deadline, [&](auto done) {
      http::async_write(socket_, request_, [done](error_code e, std::size_t) { done(e); });
    });
    if (ec) return failure("sending a request", ec);
    return {};
  }

  // The whole answer of a plain call.
  expected<http_answer> receive(steady::time_point deadline) {
    http::response_parser<http::string_body> parser;
    parser.header_limit(max_header_bytes);
    parser.body_limit(max_etcd_response_bytes);
    const error_code ec = run(deadline, [&](auto done) {
      http::async_read(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
    });
    if (ec) return failure("reading the answer", ec);
    return http_answer{parser.get().result_int(), std::move(parser.get().body())};
  }

  // A streamed answer (the watch): its head, then its body piece by piece.
  expected<unsigned> receive_head(http::response_parser<http::buffer_body>& parser, steady::time_point deadline) {
    const error_code ec = run(deadline, [&](auto done) {
      http::async_read_header(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
    });
    if (ec) return failure("reading the answer", ec);
    return parser.get().result_int();
  }
  // Appends what arrives to `out`; false once the answer has ended.
  expected<bool> receive_some(http::response_parser<http::buffer_body>& parser, std::string& out,
                              std::optional<steady::time_point> deadline) {
    if (parser.is_done()) return false;
    parser.get().body().data = chunk_.data();
    parser.get().body().size = chunk_.size();
    parser.get().body().more = true;
    error_code ec = run(deadline, [&](auto done) {
      http::async_read_some(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
    });
    // need_buffer: the piece filled chunk_, which is what was asked for.
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return failure("reading the watch", ec);
    out.append(chunk_.data(), chunk_.size() - parser.get().body().size);
    return !parser.is_done();
  }

 private:
  // Starts one operation and runs the io_context on this thread until it
  // completes, the deadline passes (timed_out) or stop is requested
  // (operation_aborted). An interrupted operation is abandoned with the
  // socket closed, and the session refuses further steps: the abandoned
  // handler still refers to this frame, so the io_context must not run again.
  template <class Start>
  error_code run(std::optional<steady::time_point> deadline, Start start) {
    if (broken_) return asio::error::operation_aborted;
    bool done = false;
    error_code result;
    start([&done, &result](error_code e) {
      result = e;
      done = true;
    });
    while (!done) {
      const std::size_t ran = deadline ? io_.run_one_until(*deadline) : io_.run_one();
      if (ran == 0 && !done) {
        broken_ = true;
        error_code ignored;
        socket_.close(ignored);
        // Only a stop request stops the io_context while work is pending.
        return io_.stopped() ? error_code(asio::error::operation_aborted) : error_code(asio::error::timed_out);
      }
    }
    return result;
  }
  template <class Start>
  error_code run(steady::time_point deadline, Start start) {
    return run(std::optional<steady::time_point>(deadline), std::move(start));
  }

  struct stopper {
    asio::io_context* io;
    // Thread-safe, and sticky: every later run_one() returns at once, so the
    // calling thread leaves whatever it is waiting for.
    void operator()() const noexcept { io->stop(); }
  };

  const etcd_client& client_;
  // Declared before the objects whose pending operations refer to them, so
  // that the socket (cancelling them) goes first, then the io_context
  // (destroying them uncalled), then these.
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::array<char, 64 * 1024> chunk_{};
  bool broken_ = false;
  asio::io_context io_{1};
  // Keeps run_one() from returning "out of work" between steps: only stop()
  // stops the io_context, so io_.stopped() means exactly "stop requested".
  asio::executor_work_guard<asio::io_context::executor_type> work_{io_.get_executor()};
  tcp::socket socket_{io_};
  // Last: registered once everything it touches exists, deregistered first.
  std::stop_callback<stopper> on_stop_;
};

// ---- one call: a JSON request, a JSON answer -----------------------------

// An answer that arrived whole and is a JSON object, with its HTTP status.
struct etcd_answer {
  unsigned status = 0;
  json::object body;
};

expected<etcd_answer> call_raw(const etcd_client& client, std::string_view path, const json::object& request,
                               const std::stop_token& stop) {
  const auto deadline = steady::now() + client.request_timeout();
  http_session session(client, stop);
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

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t n = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    for (int shift = 18; shift >= 0; shift -= 6) out += base64_alphabet[(n >> shift) & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) n |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += rest == 2 ? base64_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    // Padding only at the very end: "xx==" or "xxx=".
    const int padding = last ? (text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0) : 0;
    std::uint32_t n = 0;
    for (int j = 0; j < 4; ++j) {
      int v = 0;
      if (j < 4 - padding) {
        v = base64_value(text[i + static_cast<std::size_t>(j)]);
        if (v < 0) return std::nullopt;
      }
      n = (n << 6) | static_cast<std::uint32_t>(v);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (padding < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (padding < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

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

expected<etcd_lease> etcd_client::grant_lease(std::chrono::seconds ttl, std::stop_token stop) const {
  json::object request;
  request["TTL"] = std::to_string(ttl.count());
  return call<etcd_lease>(*this, "/v3/lease/grant", request, stop, [](const json::object& body) {
    if (const std::string refusal = string_field(body, "error"); !refusal.empty()) reject("etcd: " + refusal);
    etcd_lease lease{int_field(body, "ID"), std::chrono::seconds(int_field(body, "TTL"))};
    if (lease.id == 0 || lease.ttl <= std::chrono::seconds::zero()) reject("no lease id or TTL in the grant");
    return lease;
  });
}

expected<std::chrono::seconds> etcd_client::keep_alive(std::int64_t lease, std::stop_token stop) const {
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

expected<void> etcd_client::revoke_lease(std::int64_t lease, std::stop_token stop) const {
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
                                        std::stop_token stop) const {
  json::object request = key_request(key);
  request["value"] = base64_encode(value);
  if (lease != 0) request["lease"] = std::to_string(lease);
  return call<std::int64_t>(*this, "/v3/kv/put", request, stop,
                            [](const json::object& body) { return header_revision(body); });
}

expected<etcd_range> etcd_client::get(const std::string& key, std::stop_token stop) const {
  return call<etcd_range>(*this, "/v3/kv/range", key_request(key), stop,
                          [](const json::object& body) { return parse_range(body); });
}

expected<etcd_range> etcd_client::get_prefix(const std::string& prefix, std::stop_token stop) const {
  json::object request = key_request(prefix);
  request["range_end"] = base64_encode(etcd_prefix_end(prefix));
  return call<etcd_range>(*this, "/v3/kv/range", request, stop,
                          [](const json::object& body) { return parse_range(body); });
}

expected<std::int64_t> etcd_client::erase(const std::string& key, std::stop_token stop) const {
  return call<std::int64_t>(*this, "/v3/kv/deleterange", key_request(key), stop,
                            [](const json::object& body) { return int_field(body, "deleted"); });
}

expected<void> etcd_client::compact(std::int64_t revision, std::stop_token stop) const {
  json::object request;
  request["revision"] = std::to_string(revision);
  auto compacted = call<bool>(*this, "/v3/kv/compaction", request, stop, [](const json::object&) { return true; });
  if (!compacted) return compacted.error();
  return {};
}

expected<etcd_txn_result> etcd_client::txn(const std::vector<etcd_compare>& compares,
                                           const std::vector<etcd_operation>& success,
                                           const std::vector<etcd_operation>& failure, std::stop_token stop) const {
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
  state(const etcd_client& c, std::stop_token stop) : client(c), session(client, std::move(stop)) {}

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
  http::response_parser<http::buffer_body> parser;
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
  s->parser.header_limit(max_header_bytes);
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
    while (body.size() <= max_header_bytes) {
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
