// handshake_io: see handshake_io.hpp.
#include "tcp/handshake_io.hpp"

namespace troupe::detail {

handshake_io::handshake_io(asio::io_context& io, tcp_stream& stream, time_limit until)
    : strand_(asio::make_strand(io)), stream_(stream), until_(until) {}

expected<void> handshake_io::connect(const tcp::resolver::results_type& endpoints) {
  auto [ec, n] = run([&](auto done) {
    asio::async_connect(
        stream_.plain, endpoints,
        asio::bind_executor(strand_, [done](boost::system::error_code e, const tcp::endpoint&) { done(e, 0); }));
  });
  if (ec) return failure("connect", ec);
  return {};
}

expected<void> handshake_io::tls_handshake(ssl::stream_base::handshake_type type) {
  auto [ec, n] = run([&](auto done) {
    stream_.tls->async_handshake(type,
                                 asio::bind_executor(strand_, [done](boost::system::error_code e) { done(e, 0); }));
  });
  if (ec) return failure("TLS handshake", ec);
  return {};
}

expected<void> handshake_io::send(std::uint32_t kind, std::span<const std::byte> head,
                                  std::span<const std::byte> body) {
  std::vector<std::byte> bytes;
  append_frame(bytes, kind, head, body);
  auto [ec, n] = run([&](auto done) {
    stream_.visit([&](auto& s) { asio::async_write(s, asio::buffer(bytes), asio::bind_executor(strand_, done)); });
  });
  if (ec) return failure("send", ec);
  return {};
}

expected<handshake_io::frame> handshake_io::receive(std::size_t max_body) {
  for (;;) {
    std::size_t offset = 0;
    frame_view view;
    std::string defect;
    switch (next_frame(buffer_, offset, max_body, view, defect)) {
      case frame_status::frame: {
        frame f{view.kind, std::vector<std::byte>(view.body.begin(), view.body.end())};
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset));
        return f;
      }
      case frame_status::defect:
        return error(errc::malformed_message, defect);
      case frame_status::incomplete:
        break;
    }
    std::vector<std::byte> chunk(4096);
    auto [ec, n] = run([&](auto done) {
      stream_.visit([&](auto& s) { s.async_read_some(asio::buffer(chunk), asio::bind_executor(strand_, done)); });
    });
    if (ec) return failure("receive", ec);
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  }
}

std::vector<std::byte> handshake_io::take_leftover() { return std::move(buffer_); }

error handshake_io::failure(const char* step, const boost::system::error_code& ec) const {
  if (ec == asio::error::timed_out) return error(errc::timeout, std::string(step) + ": no answer in time");
  if (ec == asio::error::eof)
    return error(errc::connection_lost, std::string(step) + ": the peer closed the connection");
  // With TLS, a refused certificate shows up as an alert at the next read.
  const bool tls = ec.category() == asio::error::get_ssl_category() || ec == ssl::error::stream_truncated;
  return error(errc::connection_lost, std::string(step) + ": " + (tls ? "TLS: " : "") + text_of(ec));
}

}  // namespace troupe::detail
