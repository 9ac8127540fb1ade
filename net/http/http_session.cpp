// http_session: see http_session.hpp.
#include "http/http_session.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <charconv>
#include <utility>
#include <vector>

namespace troupe::detail {

namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
}  // namespace

http_session::http_session(http_peer peer, std::stop_token stop)
    : peer_(std::move(peer)), on_stop_(std::move(stop), stopper{&io_}) {}

error http_session::failure(const std::string& step, const error_code& ec, bool reaching) const {
  const std::string where = peer_.label + ": ";
  if (ec == asio::error::timed_out) {
    return error(errc::timeout, where + step + ": no answer within " + std::to_string(peer_.timeout.count()) + " ms");
  }
  if (ec == asio::error::operation_aborted) return error(errc::system_stopped, where + step + ": stopped");
  if (ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    return error(errc::malformed_message,
                 where + step + ": the answer is larger than " + std::to_string(peer_.max_body_bytes) + " bytes");
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
    return error(errc::connection_lost, where + step + ": the server closed the connection");
  }
  if (ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return error(errc::malformed_message, where + step + ": not an HTTP answer (" + ec.message() + ")");
  }
  return error(errc::connection_lost, where + (reaching ? "unreachable: " : "") + step + ": " + ec.message());
}

expected<void> http_session::connect(clock::time_point deadline) {
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const asio::ip::address literal = asio::ip::make_address(peer_.host, ec);
  if (!ec) {
    unsigned short port = 0;
    std::from_chars(peer_.port.data(), peer_.port.data() + peer_.port.size(), port);
    endpoints.emplace_back(literal, port);
  } else {
    // A name: resolved on Asio's resolver thread. (A stuck DNS lookup is cut
    // off at the deadline, but the io_context's teardown waits for it.)
    tcp::resolver resolver(io_);
    tcp::resolver::results_type results;
    ec = run(deadline, [&](auto done) {
      resolver.async_resolve(peer_.host, peer_.port, [&results, done](error_code e, tcp::resolver::results_type r) {
        results = std::move(r);
        done(e);
      });
    });
    if (ec) return failure("resolving " + peer_.host, ec, /*reaching=*/true);
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  if (endpoints.empty()) return error(errc::connection_lost, peer_.label + ": no address");
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

expected<void> http_session::send(std::string_view target, std::string body, clock::time_point deadline,
                                  std::string_view content_type) {
  request_ = http::request<http::string_body>(http::verb::post, target, 11);
  const std::string& host = peer_.host;
  const bool ipv6 = host.find(':') != std::string::npos;
  request_.set(http::field::host, (ipv6 ? "[" + host + "]" : host) + ":" + peer_.port);
  request_.set(http::field::content_type, content_type);
  request_.body() = std::move(body);
  request_.prepare_payload();
  const error_code ec = run(deadline, [&](auto done) {
    http::async_write(socket_, request_, [done](error_code e, std::size_t) { done(e); });
  });
  if (ec) return failure("sending a request", ec);
  return {};
}

expected<http_answer> http_session::receive(clock::time_point deadline) {
  http::response_parser<http::string_body> parser;
  parser.header_limit(max_http_header_bytes);
  parser.body_limit(peer_.max_body_bytes);
  const error_code ec = run(deadline, [&](auto done) {
    http::async_read(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
  });
  if (ec) return failure("reading the answer", ec);
  return http_answer{parser.get().result_int(), std::move(parser.get().body())};
}

expected<unsigned> http_session::receive_head(streamed_parser& parser, clock::time_point deadline) {
  const error_code ec = run(deadline, [&](auto done) {
    http::async_read_header(socket_, buffer_, parser, [done](error_code e, std::size_t) { done(e); });
  });
  if (ec) return failure("reading the answer", ec);
  return parser.get().result_int();
}

expected<bool> http_session::receive_some(streamed_parser& parser, std::string& out,
                                          std::optional<clock::time_point> deadline) {
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

}  // namespace troupe::detail
