// The SQS bridge's HTTP client (sqs_client.hpp). Asio's asynchronous
// operations run on the calling thread (io.run() until the call is done), so
// a call can be cut short from another thread: cancel() posts the stream's
// cancel() into the same io_context, which is the one thread-safe entry.
// Timeouts are Beast's tcp_stream expiries, one per call.
#include "sqs_client.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <optional>
#include <stdexcept>

namespace troupe::bridge::sqs::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {
// An answer's status line and headers, at most (Beast's parser refuses more).
constexpr std::uint32_t max_header_bytes = 16U << 10U;
// An error answer's text quoted in an error, at most.
constexpr std::size_t max_quoted = 200;

std::string quoted(std::string_view s) {
  return s.size() <= max_quoted ? std::string(s) : std::string(s.substr(0, max_quoted)) + "...";
}

// SQS's error body: {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "..."}.
std::string error_words(unsigned status, std::string_view body) {
  std::string out = "HTTP " + std::to_string(status);
  error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return out + (body.empty() ? "" : ": " + quoted(body));
  const boost::json::object& o = v.get_object();
  if (const auto* type = o.if_contains("__type"); type != nullptr && type->is_string()) {
    const std::string_view t = type->get_string();
    const std::size_t hash = t.rfind('#');
    out += ": " + quoted(hash == std::string_view::npos ? t : t.substr(hash + 1));
  }
  for (const char* key : {"message", "Message"}) {
    if (const auto* m = o.if_contains(key); m != nullptr && m->is_string()) {
      out += ": " + quoted(m->get_string());
      break;
    }
  }
  return out;
}
}  // namespace

endpoint_address address_of(std::string_view url) {
  endpoint_address out;
  if (url.starts_with("https://")) {
    out.tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    throw std::invalid_argument("sqs: '" + quoted(url) + "' is not an http:// or https:// URL");
  }
  const std::string_view authority = url.substr(0, url.find('/'));
  const std::size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos) {
    out.host = std::string(authority.substr(0, colon));
    out.port = std::string(authority.substr(colon + 1));
  } else {
    out.host = std::string(authority);
    out.port = out.tls ? "443" : "80";
  }
  if (out.host.empty() || out.port.empty()) throw std::invalid_argument("sqs: '" + quoted(url) + "' names no host");
  return out;
}

struct sqs_client::impl {
  explicit impl(connection_settings s) : settings(std::move(s)), where(address_of(settings.endpoint)) {
    host_header = where.host;
    if (where.port != (where.tls ? "443" : "80")) host_header += ':' + where.port;
    if (where.tls) {
      tls_context.set_default_verify_paths();
      tls_context.set_verify_mode(ssl::verify_peer);
    }
  }

  connection_settings settings;
  endpoint_address where;
  std::string host_header;
  asio::io_context io;
  ssl::context tls_context{ssl::context::tls_client};
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  // Set by cancel() from any thread, read by the calling thread before each
  // call. relaxed suffices: the posted cancel (ordered by the io_context's own
  // queue) is what interrupts a call already started; the flag only stops the
  // ones that start after.
  std::atomic<bool> cancelled{false};

  [[nodiscard]] bool open() const { return plain.has_value() || secure.has_value(); }
  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  void drop() {
    if (open()) {
      error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().socket().close(ignored);
    }
    secure.reset();
    plain.reset();
    buffer.clear();
  }

  void run() {
    io.restart();
    io.run();
  }

  [[nodiscard]] expected<void> connect(std::atomic<std::uint64_t>& connects) {
    error_code ec;
    tcp::resolver resolver(io);
    tcp::resolver::results_type found;
    resolver.async_resolve(where.host, where.port, [&](error_code e, tcp::resolver::results_type r) {
      ec = e;
      found = std::move(r);
    });
    run();
    if (ec) return error(errc::connection_lost, "resolving " + where.host + ": " + ec.message());
    if (where.tls) {
      secure.emplace(io, tls_context);
    } else {
      plain.emplace(io);
    }
    lowest().expires_after(settings.connect_timeout);
    lowest().async_connect(found, [&](error_code e, const tcp::endpoint&) { ec = e; });
    run();
    if (!ec && where.tls) {
      // SNI and the certificate's name: what real AWS endpoints need.
      // SSL_set_tlsext_host_name, spelled out: the macro casts the C way.
      if (SSL_ctrl(secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                   where.host.data()) != 1) {
        ec = error_code(asio::error::invalid_argument);
      } else {
        secure->set_verify_callback(ssl::host_name_verification(where.host));
        secure->async_handshake(ssl::stream_base::client, [&](error_code e) { ec = e; });
        run();
      }
    }
    if (ec) {
      drop();
      return error(errc::connection_lost, "connecting to " + host_header + ": " + ec.message());
    }
    error_code ignored;
    lowest().socket().set_option(tcp::no_delay(true), ignored);
    connects.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  template <class Stream>
  error_code exchange(Stream& stream, http::request<http::string_body>& request,
                      http::response_parser<http::string_body>& parser) {
    error_code ec;
    http::async_write(stream, request, [&](error_code e, std::size_t) {
      ec = e;
      if (e) return;
      http::async_read(stream, buffer, parser, [&](error_code r, std::size_t) { ec = r; });
    });
    run();
    return ec;
  }
};

sqs_client::sqs_client(connection_settings settings) : impl_(std::make_unique<impl>(std::move(settings))) {}

sqs_client::~sqs_client() { impl_->drop(); }

void sqs_client::cancel() {
  impl_->cancelled.store(true, std::memory_order_relaxed);
  asio::post(impl_->io, [i = impl_.get()] {
    if (i->open()) i->lowest().cancel();
  });
}

void sqs_client::drop_connection() { impl_->drop(); }

expected<boost::json::object> sqs_client::call(std::string_view operation, const boost::json::object& body,
                                               std::chrono::nanoseconds extra_wait) {
  impl& i = *impl_;
  const std::string what = "sqs " + std::string(operation);
  if (i.cancelled.load(std::memory_order_relaxed)) return error(errc::connection_lost, what + ": cancelled");
  // A kept-alive connection the endpoint closed while it was idle fails the
  // call before any answer: that one is tried once more on a new connection.
  bool reused = i.open();
  if (!reused) {
    if (expected<void> c = i.connect(connects_); !c) return error(c.error().code(), what + ": " + c.error().text());
  }

  http::request<http::string_body> request{http::verb::post, "/", 11};
  request.set(http::field::host, i.host_header);
  request.set(http::field::content_type, "application/x-amz-json-1.0");
  request.set("X-Amz-Target", "AmazonSQS." + std::string(operation));
  request.body() = boost::json::serialize(body);
  request.prepare_payload();
  const credentials& who = i.settings.auth;
  if (!who.access_key_id.empty()) {
    const std::string date = amz_date(std::chrono::system_clock::now());
    request.set("X-Amz-Date", date);
    signing_input in;
    in.headers = {{"content-type", "application/x-amz-json-1.0"},
                  {"host", i.host_header},
                  {"x-amz-date", date},
                  {"x-amz-target", "AmazonSQS." + std::string(operation)}};
    if (!who.session_token.empty()) {
      request.set("X-Amz-Security-Token", who.session_token);
      in.headers.emplace_back("x-amz-security-token", who.session_token);
    }
    in.payload = request.body();
    in.region = i.settings.region;
    in.service = "sqs";
    request.set(http::field::authorization, sign_v4(in, who).authorization);
  }

  std::optional<http::response_parser<http::string_body>> parser;
  error_code ec;
  for (;;) {
    parser.emplace();
    parser->header_limit(max_header_bytes);
    parser->body_limit(i.settings.max_response_bytes);
    i.lowest().expires_after(i.settings.request_timeout + extra_wait);
    ec = i.secure ? i.exchange(*i.secure, request, *parser) : i.exchange(*i.plain, request, *parser);
    const bool stale = reused && !parser->got_some() &&
                       (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
                        ec == asio::error::broken_pipe || ec == asio::error::eof);
    if (!stale) break;
    i.drop();
    reused = false;
    if (i.cancelled.load(std::memory_order_relaxed)) break;
    if (expected<void> c = i.connect(connects_); !c) return error(c.error().code(), what + ": " + c.error().text());
  }
  if (ec) {
    i.drop();
    // The answer broke the protocol or a bound; anything else is the connection's failure.
    const bool bad = ec == http::error::body_limit || ec == http::error::header_limit ||
                     (ec.category() == http::make_error_code(http::error::bad_version).category() &&
                      ec != http::error::end_of_stream && ec != http::error::partial_message);
    std::string why = ec.message();
    if (ec == beast::error::timeout) {
      why = "no answer in time";
    } else if (ec == http::error::body_limit) {
      why = "an answer over max_response_bytes (" + std::to_string(i.settings.max_response_bytes) + " bytes)";
    } else if (ec == http::error::header_limit) {
      why = "an answer's status line and headers over " + std::to_string(max_header_bytes) + " bytes";
    } else if (bad) {
      why = "not an HTTP answer (" + why + ")";
    }
    return error(bad ? errc::malformed_message : errc::connection_lost, what + " to " + i.host_header + ": " + why);
  }
  http::response<http::string_body> response = parser->release();
  if (!response.keep_alive()) i.drop();
  const unsigned status = response.result_int();
  if (status != 200) {
    i.drop();
    return error(errc::broker_failed, what + ": " + error_words(status, response.body()));
  }
  error_code json_error;
  boost::json::value v = boost::json::parse(response.body(), json_error);
  if (json_error || !v.is_object()) {
    i.drop();
    return error(errc::malformed_message,
                 what + ": the answer is not a JSON object: " +
                     (json_error ? json_error.message() : "a " + std::string(to_string(v.kind()))) + " (" +
                     quoted(response.body()) + ")");
  }
  return std::move(v.get_object());
}

}  // namespace troupe::bridge::sqs::detail
