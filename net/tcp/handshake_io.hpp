// handshake_io: the blocking steps of a TCP handshake. Owns: connect, TLS
// handshake, framed send and receive, each bounded by the handshake's deadline. May use: tcp_stream, wire/.
//
// The steps are async operations on a strand: past the deadline the operation
// is cancelled, so a silent or slow peer costs its dialer at most the deadline.
// tcp_transport's dial and accept run a handshake with it (docs/wire.md has the
// records, docs/security.md the authentication).
//
// Thread safety: one thread drives a handshake_io; it touches the socket on its strand only.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "os/os.hpp"
#include "tcp/tcp_stream.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::detail {

// Blocking handshake steps over async operations on a strand, each bounded by
// one deadline for the whole handshake: past it, the operation is cancelled.
// The calling thread only waits; the socket is touched on the strand only.
class handshake_io {
 public:
  handshake_io(asio::io_context& io, tcp_stream& stream, time_limit until);

  expected<void> connect(const tcp::resolver::results_type& endpoints);

  expected<void> tls_handshake(ssl::stream_base::handshake_type type);

  expected<void> send(std::uint32_t kind, std::span<const std::byte> head, std::span<const std::byte> body = {});

  struct frame {
    std::uint32_t kind = 0;
    std::vector<std::byte> body;
  };
  expected<frame> receive(std::size_t max_body);

  // Bytes read past the last frame (the peer's first records): the connection's.
  std::vector<std::byte> take_leftover();

 private:
  template <class Start>
  std::pair<boost::system::error_code, std::size_t> run(Start start) {
    auto promise = std::make_shared<std::promise<std::pair<boost::system::error_code, std::size_t>>>();
    auto result = promise->get_future();
    auto done = [promise](boost::system::error_code ec, std::size_t n) { promise->set_value({ec, n}); };
    asio::post(strand_, [&start, done] { start(done); });
    if (result.wait_until(until_) == std::future_status::timeout) {
      timed_out_ = true;
      asio::post(strand_, [this] {
        boost::system::error_code ignored;
        stream_.plain.cancel(ignored);
      });
    }
    // The operation always completes (cancelled, at worst), and only then may
    // its buffers and this object go.
    auto r = result.get();
    if (timed_out_) r.first = asio::error::timed_out;
    return r;
  }

  error failure(const char* step, const boost::system::error_code& ec) const;

  asio::strand<asio::io_context::executor_type> strand_;
  tcp_stream& stream_;
  time_limit until_;
  bool timed_out_ = false;
  std::vector<std::byte> buffer_;
};

}  // namespace troupe::detail
