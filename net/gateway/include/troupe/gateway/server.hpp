// server: the gateway's HTTP/1.1 and WebSocket server (docs/gateways.md).
// Owns: listening, connections and their limits (body and header size, the
// deadline for a whole request, the idle keep-alive timeout, the connection
// bound), routing a POST by path to a protocol's handler, and WebSocket
// upgrades on a path. May use: Boost.Beast, Boost.Asio, http_reply, jsonrpc.
// Knows no RPC protocol itself: handlers do (jsonrpc::handle, xmlrpc::handle).
//
//   troupe::gateway::server srv;                 // loopback, an ephemeral port
//   srv.serve_jsonrpc(table);                    // POST and WebSocket on /jsonrpc
//   srv.serve_xmlrpc(table);                     // POST on /RPC2
//   srv.start();  std::cout << srv.port();       // ... srv.stop() or its destructor
//
// Threads: the server runs its own Asio threads (settings.threads). A handler
// runs on one of them and must not block; it answers through its reply_sink,
// from any thread, once. The connection waits for that reply without holding
// a thread: a slow actor delays its own caller and nobody else.
//
// Security: it listens on 127.0.0.1 unless told another address; it has no
// authentication or TLS (put it behind a proxy that has, docs/gateways.md).
// Every request is untrusted: sizes are bounded before anything is buffered,
// and a client that sends too slowly or too much is cut off.
//
// Thread safety: route(), route_websocket(), serve_jsonrpc() and serve_xmlrpc() before
// start(); start(), stop() and the destructor from one thread (not a handler's);
// port() from any thread once start() has returned. Whatever a route uses (the
// method table) must outlive the server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "troupe/gateway/http_reply.hpp"
#include "troupe/gateway/jsonrpc.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/gateway/xmlrpc.hpp"

namespace troupe::gateway {

struct server_settings {
  // Where to listen: loopback unless told otherwise; port 0 picks a free one (see port()).
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::size_t threads = 2;
  // A request body larger than this is answered 413 and the connection closed.
  std::size_t max_request_bytes = std::size_t{1} << 20;
  // A request line and headers larger than this are answered 431 and the connection closed.
  std::size_t max_header_bytes = std::size_t{16} << 10;
  // From a request's first byte to its last: a client that dribbles bytes is cut off.
  std::chrono::milliseconds request_deadline = std::chrono::seconds(10);
  // How long a kept-alive connection (or a new one) may wait for the next request's first byte.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(30);
  // Writing one reply.
  std::chrono::milliseconds write_deadline = std::chrono::seconds(10);
  // Connections at once (HTTP and WebSocket); one more is answered 503 and closed.
  std::size_t max_connections = 256;
  // A WebSocket message larger than this closes its connection (close code 1009).
  std::size_t max_websocket_message_bytes = std::size_t{1} << 20;
  // Messages of one WebSocket connection being run at once; it reads no more until one is answered.
  std::size_t max_websocket_in_flight = 64;
};

// A WebSocket message handler: `text` is the message, `binary` says it came in a
// binary frame; `done` sends a reply (nullopt: none), once, from any thread.
using message_sink = std::function<void(std::optional<std::string>)>;
using message_handler = std::function<void(std::string text, bool binary, message_sink done)>;
using request_handler = std::function<void(http_request, reply_sink)>;

class server {
 public:
  explicit server(server_settings s = {});
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server();  // stop()

  // POSTs to `path` (query string ignored) go to `handler`; other methods get 405.
  void route(std::string path, request_handler handler);
  // POSTs to any path that has no route of its own go to `handler` (a service
  // that names resources by path, as the SQS endpoint's queue URLs); without
  // one they get 404.
  void route_others(request_handler handler);
  // A WebSocket upgrade on `path` opens a connection whose messages go to `handler`.
  void route_websocket(std::string path, message_handler handler);
  // JSON-RPC 2.0 on `path`: HTTP POST and WebSocket. `table` must outlive the server.
  void serve_jsonrpc(const methods& table, std::string path = "/jsonrpc", jsonrpc::settings limits = {});
  // XML-RPC on `path` (HTTP POST). `table` must outlive the server.
  void serve_xmlrpc(const methods& table, std::string path = "/RPC2", xmlrpc::limits limits = {});

  // Binds, listens and starts the threads. Throws std::system_error naming the
  // address if it cannot listen.
  void start();
  // Closes the listener and every connection, joins the threads. Replies that
  // complete later are dropped. Idempotent.
  void stop();

  // The bound port (the chosen one when settings.port was 0); 0 before start().
  [[nodiscard]] std::uint16_t port() const noexcept;
  // Connections open now (for tests and metrics).
  [[nodiscard]] std::size_t connections() const noexcept;
  [[nodiscard]] const server_settings& config() const noexcept;

 private:
  struct core;
  std::shared_ptr<core> core_;
};

}  // namespace troupe::gateway
