// tcp_stream: the socket of one TCP connection, plain or wrapped in TLS, and the
// Boost.Asio names the TCP transport uses. Owns: tcp_stream. May use: Boost.Asio, OpenSSL, wire/.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "wire/wire.hpp"

namespace troupe::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

inline std::string text_of(const boost::system::error_code& ec) { return ec.message(); }

inline double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The socket of one connection, plain or wrapped in TLS. Not movable once TLS wraps
// it (the SSL stream refers to the socket).
struct tcp_stream {
  explicit tcp_stream(tcp::socket s) : plain(std::move(s)) {}
  tcp::socket plain;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls;

  template <class F>
  void visit(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(plain);
    }
  }
  [[nodiscard]] std::string remote() const {
    boost::system::error_code ec;
    const auto e = plain.remote_endpoint(ec);
    if (ec) return "an unknown address";
    return format_endpoint(e.address().to_string(), e.port());
  }
};

}  // namespace troupe::detail
