// The gateway's HTTP/1.1 and WebSocket server (see server.hpp).
//
// Lifetimes. A connection is a shared object its own pending operations keep
// alive (the Beast way); while a handler works on a request, the reply sink it
// was given keeps it alive instead. Sinks may run on any thread, even after
// the server stopped. So the io_context lives in the state that connections
// share (never the server itself): a connection a late sink keeps alive keeps
// the io_context its strand and socket belong to. Sinks post only through
// that state's gate, which stop() closes; then stop() joins the threads,
// closes every live connection's socket and runs what was still queued (each
// sees its connection closed and ends), so nothing pending holds a connection
// and the io_context goes with the last connection or the server.
#include "troupe/gateway/server.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/value.hpp>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// How long a connection being closed after an error reply keeps reading (and
// discarding) what the client still sends, so that closing does not reset the
// connection before the client has read the reply.
constexpr std::chrono::milliseconds linger_limit{1000};
constexpr std::size_t linger_max_bytes = std::size_t{4} << 20;

class connection {
 public:
  connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  virtual ~connection() = default;
  // Closes the socket; only once the server's threads are joined.
  virtual void release() noexcept = 0;
};

}  // namespace

// What connections and reply sinks share with the server, the io_context
// included (see the top of this file).
struct shared_state {
  explicit shared_state(server_settings s) : config(std::move(s)) {}
  // First: destroyed last, after everything that may refer to it.
  asio::io_context io;
  const server_settings config;
  std::map<std::string, request_handler, std::less<>> routes;
  std::map<std::string, message_handler, std::less<>> websocket_routes;
  request_handler other_routes;  // empty: none

  // Posts `f` to a connection's strand unless the server has stopped.
  template <class F>
  void post(const asio::any_io_executor& strand, F&& f) {
    const std::lock_guard<std::mutex> lock(gate_mutex);
    if (gate_open) asio::post(strand, std::forward<F>(f));
  }
  void close_gate() {
    const std::lock_guard<std::mutex> lock(gate_mutex);
    gate_open = false;
  }
  void open_gate() {
    const std::lock_guard<std::mutex> lock(gate_mutex);
    gate_open = true;
  }

  void add(const std::shared_ptr<connection>& c) {
    const std::lock_guard<std::mutex> lock(live_mutex);
    live.emplace(c.get(), c);
    // Relaxed: a count for the connection bound and for tests; it orders nothing.
    open.fetch_add(1, std::memory_order_relaxed);
  }
  void forget(connection* c) {
    const std::lock_guard<std::mutex> lock(live_mutex);
    live.erase(c);
    open.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see add()
  }
  std::vector<std::shared_ptr<connection>> live_connections() {
    std::vector<std::shared_ptr<connection>> out;
    const std::lock_guard<std::mutex> lock(live_mutex);
    for (auto& [key, weak] : live) {
      if (std::shared_ptr<connection> c = weak.lock()) out.push_back(std::move(c));
    }
    return out;
  }

  std::atomic<std::size_t> open{0};

 private:
  std::mutex gate_mutex;
  bool gate_open = false;
  std::mutex live_mutex;
  std::unordered_map<connection*, std::weak_ptr<connection>> live;
};

namespace {

// Runs a sink's body at most once even if a handler calls it twice.
struct once_flag {
  // Relaxed: the flag only decides who goes on; the reply itself reaches the
  // connection through asio::post, which orders it.
  bool first() noexcept { return !called.exchange(true, std::memory_order_relaxed); }
  std::atomic<bool> called{false};
};

class websocket_session final : public connection, public std::enable_shared_from_this<websocket_session> {
 public:
  websocket_session(std::shared_ptr<shared_state> shared, beast::tcp_stream&& stream, const message_handler& handler)
      : shared_(std::move(shared)), handler_(handler), ws_(std::in_place, std::move(stream)) {
    executor_ = ws_->get_executor();
  }
  ~websocket_session() override { shared_->forget(this); }
  websocket_session(const websocket_session&) = delete;
  websocket_session& operator=(const websocket_session&) = delete;

  void release() noexcept override { ws_.reset(); }

  void start(http::request<http::string_body> upgrade) {
    upgrade_ = std::move(upgrade);
    // The websocket stream keeps its own timeouts from here on.
    beast::get_lowest_layer(*ws_).expires_never();
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = shared_->config.request_deadline;
    timeouts.idle_timeout = shared_->config.idle_timeout;
    timeouts.keep_alive_pings = true;
    ws_->set_option(timeouts);
    ws_->set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "troupe-gateway"); }));
    ws_->read_message_max(shared_->config.max_websocket_message_bytes);
    ws_->async_accept(upgrade_, [self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->read();
    });
  }

 private:
  void read() {
    if (!ws_ || reading_ || in_flight_ >= std::max<std::size_t>(shared_->config.max_websocket_in_flight, 1)) return;
    reading_ = true;
    ws_->async_read(buffer_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t /*bytes*/) { self->on_read(ec); });
  }

  // A failed read ends the session: the peer closed, went idle past the
  // timeout, or broke the protocol — Beast has then sent the close frame with
  // the right code (1009 for a message over the limit, 1007 for bad UTF-8).
  void on_read(beast::error_code ec) {
    reading_ = false;
    if (ec || !ws_) return;
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    const bool binary = ws_->got_binary();
    ++in_flight_;
    auto once = std::make_shared<once_flag>();
    message_sink sink = [self = shared_from_this(), once](std::optional<std::string> reply) mutable {
      if (!once->first()) return;
      // `self` is copied, not moved: the connection (and through it the
      // io_context its strand belongs to) must outlive this call even when the
      // gate is closed and the posted function is destroyed unrun.
      self->shared_->post(self->executor_,
                          [self, reply = std::move(reply)]() mutable { self->on_answer(std::move(reply)); });
    };
    try {
      handler_(std::move(text), binary, sink);
    } catch (const std::exception&) {
      sink(std::nullopt);  // the handler's own failure: nothing to send, the connection goes on
    }
    read();
  }

  void on_answer(std::optional<std::string> reply) {
    --in_flight_;
    if (!ws_) return;
    if (reply) {
      outbox_.push_back(std::move(*reply));
      if (!writing_) write_next();
    }
    read();
  }

  void write_next() {
    writing_ = true;
    ws_->text(true);
    ws_->async_write(asio::buffer(outbox_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->writing_ = false;
      if (ec || !self->ws_) return;
      self->outbox_.pop_front();
      if (!self->outbox_.empty()) self->write_next();
    });
  }

  std::shared_ptr<shared_state> shared_;
  const message_handler& handler_;  // in shared_->websocket_routes, which outlives this
  std::optional<websocket::stream<beast::tcp_stream>> ws_;
  asio::any_io_executor executor_;
  http::request<http::string_body> upgrade_;
  beast::flat_buffer buffer_;
  std::deque<std::string> outbox_;
  std::size_t in_flight_ = 0;
  bool reading_ = false;
  bool writing_ = false;
};

class http_session final : public connection, public std::enable_shared_from_this<http_session> {
 public:
  http_session(std::shared_ptr<shared_state> shared, tcp::socket&& socket)
      : shared_(std::move(shared)), stream_(std::in_place, std::move(socket)) {
    executor_ = stream_->get_executor();
  }
  ~http_session() override { shared_->forget(this); }
  http_session(const http_session&) = delete;
  http_session& operator=(const http_session&) = delete;

  void release() noexcept override {
    parser_.reset();
    stream_.reset();
  }

  void start() { wait_for_request(); }

  // Beyond the connection bound: 503 and close, reading no request.
  void refuse() {
    version_ = 11;
    answer(http_reply{503, "text/plain", "too many connections, try again later\n", false});
  }

 private:
  // Waits (at most the idle timeout) for the next request's first byte; a
  // pipelined request already buffered goes straight on.
  void wait_for_request() {
    if (!stream_) return;
    if (buffer_.size() > 0) {
      read_request();
      return;
    }
    stream_->expires_after(shared_->config.idle_timeout);
    stream_->async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec || !self->stream_) return;  // idle too long, or the client closed: let it go
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  // The whole request (header and body) within the request deadline.
  void read_request() {
    parser_.emplace();
    parser_->body_limit(shared_->config.max_request_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(shared_->config.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    stream_->expires_after(shared_->config.request_deadline);
    http::async_read(*stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (!stream_) return;
    if (ec == http::error::body_limit) {
      version_ = 11;
      answer(http_reply{
          413, "text/plain",
          "the request body is larger than " + std::to_string(shared_->config.max_request_bytes) + " bytes\n", false});
      return;
    }
    if (ec == http::error::header_limit) {
      version_ = 11;
      answer(http_reply{
          431, "text/plain",
          "the request header is larger than " + std::to_string(shared_->config.max_header_bytes) + " bytes\n", false});
      return;
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      version_ = 11;
      answer(http_reply{400, "text/plain", "malformed HTTP request: " + ec.message() + "\n", false});
      return;
    }
    // The client closed, went past the request deadline (a slow client is
    // cut off without a word), or the connection broke.
    if (ec) return;

    stream_->expires_never();
    http::request<http::string_body> request = parser_->release();
    parser_.reset();
    version_ = request.version();
    keep_alive_ = request.keep_alive();
    const std::string target(request.target());
    const std::string_view path = std::string_view(target).substr(0, target.find('?'));

    const auto socket_route = shared_->websocket_routes.find(path);
    if (websocket::is_upgrade(request) && socket_route != shared_->websocket_routes.end()) {
      if (request.find(http::field::origin) != request.end()) {
        // A browser page's socket: refused (see docs/gateways.md, security).
        answer(http_reply{403, "text/plain", "WebSocket connections from browser pages are not allowed\n", false});
        return;
      }
      auto socket = std::make_shared<websocket_session>(shared_, std::move(*stream_), socket_route->second);
      shared_->add(socket);
      socket->start(std::move(request));
      return;
    }
    const auto route = shared_->routes.find(path);
    const request_handler* handler = route != shared_->routes.end() ? &route->second : nullptr;
    if (handler == nullptr && shared_->other_routes && socket_route == shared_->websocket_routes.end()) {
      handler = &shared_->other_routes;
    }
    if (handler == nullptr) {
      answer(http_reply{socket_route == shared_->websocket_routes.end() ? 404U : 405U, "text/plain",
                        "no such resource: " + std::string(path) + "\n", true});
      return;
    }
    if (request.method() != http::verb::post) {
      allow_post_ = true;
      answer(http_reply{405, "text/plain", "only POST is served at " + std::string(path) + "\n", true});
      return;
    }
    auto once = std::make_shared<once_flag>();
    reply_sink sink = [self = shared_from_this(), once](http_reply reply) mutable {
      if (!once->first()) return;
      // `self` is copied, not moved: the connection (and through it the
      // io_context its strand belongs to) must outlive this call even when the
      // gate is closed and the posted function is destroyed unrun.
      self->shared_->post(self->executor_,
                          [self, reply = std::move(reply)]() mutable { self->answer(std::move(reply)); });
    };
    http_request call{target, std::string(request[http::field::content_type]), std::move(request.body())};
    for (const auto& field : request) call.headers.emplace_back(field.name_string(), field.value());
    try {
      (*handler)(std::move(call), sink);
    } catch (const std::exception& e) {
      sink(http_reply{500, "text/plain", std::string("the handler failed: ") + e.what() + "\n", false});
    }
  }

  // Writes a reply; on the connection's strand.
  void answer(http_reply reply) {
    if (!stream_) return;
    // A handler's mistake must not become a broken response (or a header of
    // its choosing): a status HTTP has not, or a content type with a line break.
    const auto has_line_break = [](const std::string& text) { return text.find_first_of("\r\n") != std::string::npos; };
    bool bad_header = has_line_break(reply.content_type);
    for (const auto& [name, value] : reply.headers) {
      bad_header = bad_header || name.empty() || has_line_break(name) || name.find(':') != std::string::npos ||
                   has_line_break(value);
    }
    if (reply.status < 100 || reply.status > 599 || bad_header) {
      reply = http_reply{500, "text/plain", "the handler gave a reply HTTP cannot carry\n", false};
    }
    response_ = {};
    response_.version(version_);
    response_.result(reply.status);
    response_.set(http::field::server, "troupe-gateway");
    if (!reply.content_type.empty()) response_.set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) response_.set(name, value);
    if (allow_post_) response_.set(http::field::allow, "POST");
    allow_post_ = false;
    response_.body() = std::move(reply.body);
    const bool keep = keep_alive_ && reply.keep_alive;
    response_.keep_alive(keep);
    response_.prepare_payload();
    stream_->expires_after(shared_->config.write_deadline);
    http::async_write(*stream_, response_, [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
      if (ec || !self->stream_) return;
      if (keep) {
        self->wait_for_request();
      } else {
        self->linger();
      }
    });
  }

  // Closing after a reply: no more sending, then read and discard what the
  // client still sends (a body we refused) for a short while, so that it reads
  // our reply instead of a connection reset.
  void linger() {
    beast::error_code ignored;
    stream_->socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_->expires_after(std::min<std::chrono::milliseconds>(shared_->config.request_deadline, linger_limit));
    drain();
  }
  void drain() {
    buffer_.consume(buffer_.size());
    stream_->async_read_some(buffer_.prepare(16384), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->drained_ += n;
      if (ec || !self->stream_ || self->drained_ > linger_max_bytes) return;
      self->drain();
    });
  }

  std::shared_ptr<shared_state> shared_;
  std::optional<beast::tcp_stream> stream_;
  asio::any_io_executor executor_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool allow_post_ = false;
  std::size_t drained_ = 0;
};

}  // namespace

struct server::core {
  explicit core(server_settings s) : shared(std::make_shared<shared_state>(std::move(s))) {}

  void accept() {
    acceptor->async_accept(asio::make_strand(shared->io), [this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        // Relaxed: see shared_state::add(); connections are accepted on one
        // thread at a time, so the bound is exact but for closings in between.
        const bool full = shared->open.load(std::memory_order_relaxed) >= shared->config.max_connections;
        auto session = std::make_shared<http_session>(shared, std::move(socket));
        shared->add(session);
        if (full) {
          session->refuse();
        } else {
          session->start();
        }
      }
      accept();
    });
  }

  std::shared_ptr<shared_state> shared;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::atomic<std::uint16_t> port{0};
  bool started = false;
  bool stopped = false;
};

server::server(server_settings s) : core_(std::make_shared<core>(std::move(s))) {}

server::~server() {
  try {
    stop();
  } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): a destructor must not throw; stop() can
    // only fail joining a thread or running what was queued, and there is no
    // one left to tell.
  }
}

void server::route(std::string path, request_handler handler) {
  if (core_->started) throw std::logic_error("troupe::gateway::server: route() after start()");
  core_->shared->routes.insert_or_assign(std::move(path), std::move(handler));
}

void server::route_others(request_handler handler) {
  if (core_->started) throw std::logic_error("troupe::gateway::server: route_others() after start()");
  core_->shared->other_routes = std::move(handler);
}

void server::route_websocket(std::string path, message_handler handler) {
  if (core_->started) throw std::logic_error("troupe::gateway::server: route_websocket() after start()");
  core_->shared->websocket_routes.insert_or_assign(std::move(path), std::move(handler));
}

void server::serve_jsonrpc(const methods& table, std::string path, jsonrpc::settings limits) {
  route(path, [&table, limits](http_request request, reply_sink done) {
    jsonrpc::handle(table, std::move(request), std::move(done), limits);
  });
  route_websocket(std::move(path), [&table, limits](const std::string& text, bool binary, message_sink done) {
    if (binary) {
      done(jsonrpc::encode_error(jsonrpc::error_reply{nullptr, jsonrpc::code::parse_error, "Parse error",
                                                      boost::json::value("a binary frame: send JSON-RPC as text")}));
      return;
    }
    jsonrpc::execute(table, text, limits, std::move(done));
  });
}

void server::serve_xmlrpc(const methods& table, std::string path, xmlrpc::limits limits) {
  route(std::move(path), [&table, limits](http_request request, reply_sink done) {
    xmlrpc::handle(table, std::move(request), std::move(done), limits);
  });
}

void server::start() {
  core& c = *core_;
  if (c.started) throw std::logic_error("troupe::gateway::server: start() twice");
  const std::string where = c.shared->config.address + ":" + std::to_string(c.shared->config.port);
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(c.shared->config.address, ec);
  if (ec) throw std::system_error(ec, "troupe::gateway::server: '" + c.shared->config.address + "' is not an address");
  const tcp::endpoint endpoint(address, c.shared->config.port);
  c.acceptor.emplace(c.shared->io);
  const auto check = [&](const char* step) {
    if (ec)
      throw std::system_error(ec,
                              std::string("troupe::gateway::server: cannot listen on ") + where + " (" + step + ")");
  };
  c.acceptor->open(endpoint.protocol(), ec);
  check("open");
  c.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  check("SO_REUSEADDR");
  c.acceptor->bind(endpoint, ec);
  check("bind");
  c.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  check("listen");
  // Relaxed: published to other threads by the thread starts below (and read
  // by the starting thread itself).
  c.port.store(c.acceptor->local_endpoint().port(), std::memory_order_relaxed);
  c.started = true;
  c.shared->open_gate();
  c.accept();
  const std::size_t n = std::max<std::size_t>(c.shared->config.threads, 1);
  for (std::size_t i = 0; i < n; ++i) {
    c.threads.emplace_back([&c] {
      // A handler that throws (say, out of memory) costs its connection, not the thread.
      for (;;) {
        try {
          c.shared->io.run();
          return;
        } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): the connection it belonged to is gone
        }
      }
    });
  }
}

void server::stop() {
  core& c = *core_;
  if (!c.started || c.stopped) return;
  c.stopped = true;
  // From here on, a late reply is dropped instead of posted.
  c.shared->close_gate();
  c.shared->io.stop();
  for (std::thread& t : c.threads) t.join();
  c.threads.clear();
  beast::error_code ignored;
  c.acceptor->close(ignored);
  // No thread runs handlers now: close every connection's socket, then run
  // what is still queued here (every handler finds its connection closed and
  // ends), so that no queued handler keeps a connection, and so the
  // io_context, alive.
  for (const std::shared_ptr<connection>& live : c.shared->live_connections()) live->release();
  c.shared->io.restart();
  c.shared->io.poll();
}

std::uint16_t server::port() const noexcept { return core_->port.load(std::memory_order_relaxed); }

std::size_t server::connections() const noexcept { return core_->shared->open.load(std::memory_order_relaxed); }

const server_settings& server::config() const noexcept { return core_->shared->config; }

}  // namespace troupe::gateway
