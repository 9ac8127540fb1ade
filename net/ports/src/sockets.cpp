// sockets: TCP and UNIX stream sockets to programs that are not troupe
// (gen_tcp's active mode with {packet, N} / {packet, line}), their listeners,
// and UDP (gen_udp). Every accepted connection is a port of its own, linked to
// the listener's owner.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>

#include "endpoint.hpp"
#include "troupe/mailbox/mutex.hpp"

namespace troupe::ports::detail {

namespace {

using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using local_stream = asio::local::stream_protocol;

std::string text_of(const tcp::endpoint& e) {
  const auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}
std::string text_of(const udp::endpoint& e) {
  const auto a = e.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}
std::string text_of(const local_stream::endpoint& e) { return e.path(); }

template <class Socket>
std::string address_of_socket(const Socket& socket) {
  boost::system::error_code ec;
  auto e = socket.local_endpoint(ec);
  return ec ? std::string() : text_of(e);
}

expected<asio::ip::address> address_of(const std::string& host) {
  boost::system::error_code ec;
  const std::string bare = host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
  auto a = asio::ip::make_address(bare == "localhost" ? "127.0.0.1" : bare, ec);
  if (ec) return error(errc::invalid_request, "'" + host + "' is not an IP address (" + ec.message() + ")");
  return a;
}

// "host:port" → an address and port; every part checked.
expected<udp::endpoint> udp_endpoint_of(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) {
    return error(errc::invalid_request, "'" + text + "' is not host:port");
  }
  auto a = address_of(text.substr(0, colon));
  if (!a) return a.error();
  unsigned long number = 0;
  for (std::size_t i = colon + 1; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9' || number > 65535) return error(errc::invalid_request, "'" + text + "': bad port");
    number = number * 10 + static_cast<unsigned long>(c - '0');
  }
  if (number > 65535) return error(errc::invalid_request, "'" + text + "': bad port");
  return udp::endpoint(*a, static_cast<std::uint16_t>(number));
}

// A connected stream socket: reads framed into data, writes from the owner.
template <class Socket>
class socket_endpoint final : public endpoint {
 public:
  socket_endpoint(reactor& io, Socket socket) : endpoint(io), socket_(std::move(socket)) { note_address(); }
  // A TCP socket not yet connected: begin() dials first (the address is known after).
  socket_endpoint(reactor& io, Socket socket, tcp::endpoint dial)
      : endpoint(io), socket_(std::move(socket)), dial_(dial) {}

  [[nodiscard]] std::string local_address() const override {
    troupe::mutex_lock lock(address_mutex_);
    return address_;
  }

 private:
  // The address as text, taken while no other thread uses the socket (the
  // port actor asks for it while the strand reads and writes).
  void note_address() {
    boost::system::error_code ec;
    auto e = socket_.local_endpoint(ec);
    troupe::mutex_lock lock(address_mutex_);
    address_ = ec ? std::string() : text_of(e);
  }

  void begin() override {
    reader_.emplace(*this, socket_, context().options.frames, channel::output,
                    [this](const boost::system::error_code& ec) {
                      if (!ec || ec == asio::error::eof || ec == asio::error::connection_reset) {
                        end_closed(ec == asio::error::connection_reset ? "connection reset by peer" : "end of stream");
                      } else {
                        end_failed("read: " + ec.message());
                      }
                    });
    writer_.emplace(*this, socket_,
                    [this](const boost::system::error_code& ec) { end_failed("write: " + ec.message()); });
    if constexpr (std::is_same_v<Socket, tcp::socket>) {
      if (dial_) {
        socket_.async_connect(
            *dial_,
            asio::bind_executor(strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec) {
              if (ended()) return;
              if (ec) return end_failed("connect to " + text_of(*dial_) + ": " + ec.message());
              connected_ = true;
              for (auto& b : early_) writer_->push(std::move(b));
              early_.clear();
              reader_->pump();
            }));
        return;
      }
    }
    connected_ = true;
    reader_->pump();
  }
  void resume() override {
    if (connected_) reader_->pump();
  }
  void do_write(std::vector<std::byte> bytes) override {
    if (connected_) {
      writer_->push(std::move(bytes));
    } else {
      early_.push_back(std::move(bytes));
    }
  }
  void do_close_output() override {
    writer_->close_when_done([this] {
      boost::system::error_code ignored;
      socket_.shutdown(Socket::shutdown_send, ignored);
    });
  }
  void close_all() noexcept override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  Socket socket_;
  mutable troupe::mutex address_mutex_;
  std::string address_ TROUPE_GUARDED_BY(address_mutex_);
  std::optional<tcp::endpoint> dial_;
  std::optional<stream_reader<Socket>> reader_;
  std::optional<stream_writer<Socket>> writer_;
  std::vector<std::vector<std::byte>> early_;  // written before the connection was up
  bool connected_ = false;
};

// A listening socket: each accepted connection becomes a port (spawn_opened).
template <class Protocol>
class listener_endpoint final : public endpoint {
 public:
  using acceptor_type = typename Protocol::acceptor;
  using socket_type = typename Protocol::socket;
  listener_endpoint(reactor& io, acceptor_type acceptor, std::string unlink_path)
      : endpoint(io),
        io_(io),
        acceptor_(std::move(acceptor)),
        address_(address_of_socket(acceptor_)),
        unlink_path_(std::move(unlink_path)) {}
  listener_endpoint(const listener_endpoint&) = delete;
  listener_endpoint& operator=(const listener_endpoint&) = delete;
  ~listener_endpoint() override {
    if (!unlink_path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove(unlink_path_, ignored);
    }
  }

  [[nodiscard]] std::string local_address() const override { return address_; }

 private:
  void begin() override { accept(); }
  void resume() override {}
  void close_all() noexcept override {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  void do_write(std::vector<std::byte> /*bytes*/) override {
    end_failed("a listening port takes no write: write to the accepted connection's port");
  }

  void accept() {
    acceptor_.async_accept(asio::bind_executor(
        strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec, socket_type socket) {
          if (ended()) return;
          if (ec) {
            // Out of descriptors and the like: this listener fails; the connections live on.
            return end_failed("accept: " + ec.message());
          }
          boost::system::error_code peer_ec;
          auto peer = socket.remote_endpoint(peer_ec);
          auto connection = std::make_shared<socket_endpoint<socket_type>>(io_, std::move(socket));
          const port p = spawn_opened(io_, *context().sys, context().sink, std::move(connection), context().options);
          if (context().sink.on_accepted) {
            context().sink.on_accepted(accepted{context().self, p, peer_ec ? std::string() : text_of(peer)});
          }
          accept();
        }));
  }

  reactor& io_;
  acceptor_type acceptor_;
  const std::string address_;  // taken before any other thread sees the acceptor
  std::string unlink_path_;
};

class udp_endpoint final : public endpoint {
 public:
  udp_endpoint(reactor& io, udp::socket socket)
      : endpoint(io), socket_(std::move(socket)), address_(address_of_socket(socket_)) {}

  [[nodiscard]] std::string local_address() const override { return address_; }

 private:
  void begin() override { receive(); }
  // Datagrams are read even over high_water (the kernel would drop them
  // uncounted otherwise); those are dropped here and counted.
  void resume() override {}
  void close_all() noexcept override {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  void do_send_to(std::string to, std::vector<std::byte> bytes) override {
    auto where = udp_endpoint_of(to);
    if (!where) return end_failed(where.error().text());
    boost::system::error_code ec;
    // A datagram is sent whole or not at all; a full socket buffer drops it,
    // as the kernel would: UDP promises no more.
    const std::size_t n = socket_.send_to(asio::buffer(bytes), *where, 0, ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      return end_failed("send_to " + to + ": " + ec.message());
    }
    note_written(n);
  }

  void receive() {
    socket_.async_receive_from(
        asio::buffer(buffer_), from_,
        asio::bind_executor(
            strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
              if (ended()) return;
              if (ec) return end_failed("receive: " + ec.message());
              if (over_high_water()) {
                note_dropped();
              } else {
                const std::size_t size = std::min(n, context().options.frames.max_frame);
                if (!deliver_datagram(text_of(from_), std::vector<std::byte>(buffer_.data(), buffer_.data() + size))) {
                  return;
                }
              }
              receive();
            }));
  }

  udp::socket socket_;
  const std::string address_;  // taken before any other thread sees the socket
  udp::endpoint from_;
  std::array<std::byte, 65536> buffer_{};
};

expected<tcp::endpoint> tcp_endpoint_of(const std::string& host, std::uint16_t port_number) {
  auto a = address_of(host);
  if (!a) return a.error();
  return tcp::endpoint(*a, port_number);
}

class tcp_connect_opener final : public endpoint_spec::opener {
 public:
  tcp_connect_opener(std::string host, std::uint16_t port_number) : host_(std::move(host)), port_(port_number) {}
  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    auto where = tcp_endpoint_of(host_, port_);
    if (!where) return where.error();
    tcp::socket socket(io.context());
    return std::shared_ptr<endpoint>(std::make_shared<socket_endpoint<tcp::socket>>(io, std::move(socket), *where));
  }

 private:
  std::string host_;
  std::uint16_t port_;
};

class unix_connect_opener final : public endpoint_spec::opener {
 public:
  explicit unix_connect_opener(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    local_stream::socket socket(io.context());
    boost::system::error_code ec;
    // A UNIX connect does not wait for the peer to accept: done here, its
    // failure (no such socket, refused) is a clear error at open.
    socket.connect(local_stream::endpoint(path_), ec);
    if (ec) return error(errc::invalid_request, "connect to " + path_ + ": " + ec.message());
    return std::shared_ptr<endpoint>(std::make_shared<socket_endpoint<local_stream::socket>>(io, std::move(socket)));
  }

 private:
  std::string path_;
};

class tcp_listen_opener final : public endpoint_spec::opener {
 public:
  tcp_listen_opener(std::string host, std::uint16_t port_number) : host_(std::move(host)), port_(port_number) {}
  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    auto where = tcp_endpoint_of(host_, port_);
    if (!where) return where.error();
    tcp::acceptor acceptor(io.context());
    boost::system::error_code ec;
    acceptor.open(where->protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(*where, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) {
      return std::shared_ptr<endpoint>(
          std::make_shared<listener_endpoint<tcp>>(io, std::move(acceptor), std::string()));
    }
    return error(errc::invalid_request, "listen on " + text_of(*where) + ": " + ec.message());
  }

 private:
  std::string host_;
  std::uint16_t port_;
};

class unix_listen_opener final : public endpoint_spec::opener {
 public:
  explicit unix_listen_opener(std::string path) : path_(std::move(path)) {}
  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    local_stream::acceptor acceptor(io.context());
    boost::system::error_code ec;
    const local_stream::endpoint where(path_);
    acceptor.open(where.protocol(), ec);
    if (!ec) acceptor.bind(where, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) {
      // The socket file is this port's: removed when the listener closes.
      return std::shared_ptr<endpoint>(
          std::make_shared<listener_endpoint<local_stream>>(io, std::move(acceptor), path_));
    }
    return error(errc::invalid_request, "listen on " + path_ + ": " + ec.message());
  }

 private:
  std::string path_;
};

class udp_bind_opener final : public endpoint_spec::opener {
 public:
  udp_bind_opener(std::string host, std::uint16_t port_number) : host_(std::move(host)), port_(port_number) {}
  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    auto a = address_of(host_);
    if (!a) return a.error();
    const udp::endpoint where(*a, port_);
    udp::socket socket(io.context());
    boost::system::error_code ec;
    socket.open(where.protocol(), ec);
    if (!ec) socket.bind(where, ec);
    if (!ec) socket.non_blocking(true, ec);
    if (!ec) {
      return std::shared_ptr<endpoint>(std::make_shared<udp_endpoint>(io, std::move(socket)));
    }
    return error(errc::invalid_request, "bind UDP " + text_of(where) + ": " + ec.message());
  }

 private:
  std::string host_;
  std::uint16_t port_;
};

}  // namespace

}  // namespace troupe::ports::detail

namespace troupe::ports {
endpoint_spec tcp_connect(std::string host, std::uint16_t port_number) {
  return endpoint_spec(std::make_shared<detail::tcp_connect_opener>(std::move(host), port_number));
}
endpoint_spec unix_connect(std::string path) {
  return endpoint_spec(std::make_shared<detail::unix_connect_opener>(std::move(path)));
}
endpoint_spec tcp_listen(std::string host, std::uint16_t port_number) {
  return endpoint_spec(std::make_shared<detail::tcp_listen_opener>(std::move(host), port_number));
}
endpoint_spec unix_listen(std::string path) {
  return endpoint_spec(std::make_shared<detail::unix_listen_opener>(std::move(path)));
}
endpoint_spec udp_bind(std::string host, std::uint16_t port_number) {
  return endpoint_spec(std::make_shared<detail::udp_bind_opener>(std::move(host), port_number));
}
}  // namespace troupe::ports
