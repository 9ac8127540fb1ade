// tcp_transport: connections to nodes on other machines. Owns: the listener, dialing,
// accepting, re-dialing. May use: connection/, wire/, os/, Boost.Asio, OpenSSL.
//
// The TCP transport: connections to nodes on other machines (or other network
// stacks), over Boost.Asio, optionally TLS (OpenSSL through Asio).
//
// Structure:
// - An io_context run by config.io_threads threads does all socket I/O. Each
//   connection (tcp_connection, in tcp.cpp) has a strand: its reads, its timer and —
//   under TLS — its writes run there, one at a time — and a delivery thread.
// - Reads: one async_read_some into the connection's own buffer; the I/O thread cuts
//   whole frames, consumes heartbeats and goodbyes, and hands the rest, one
//   batch per read, to the connection's delivery thread, which decodes them and runs
//   the actors they make runnable (as the shared-memory reader does). User code
//   and blocking work (a ref to a third node dials it while it is decoded) never
//   run on an I/O thread, so nothing delays reads or heartbeats.
// - Writes, plain TCP: the sender's thread writes the frame itself with a
//   non-blocking write_some when nothing is queued (a lone message goes out at
//   once, no thread hop). Whatever does not fit, everything sent while a
//   write is in flight, and a message sent right behind another (a stream)
//   gather in one buffer that the strand writes as one batch (many frames per
//   system call). TLS: every write goes through the strand that way (the SSL
//   object is not thread-safe).
// - Handshakes run with deadlines on the dialing thread, or on a short-lived
//   thread per accepted socket (at most max_pending_connections at once), as
//   blocking steps over async operations (so a deadline can cancel them).
// - Failure detection: every connection sends a heartbeat record each
//   heartbeat_interval and runs a phi-accrual detector (phi_detector.hpp) over
//   the gaps between the peer's heartbeats; any bytes count as a sign of life.
//   docs/security.md has the defaults and the reasoning.
// - A connection lost without a goodbye is re-dialed with exponential backoff and
//   jitter; meanwhile sends to the node fail fast.
//
// Thread safety: every member from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "os/os.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::detail {

class node_core;
class connection;

class tcp_transport {
 public:
  // Loads the cookie and the TLS context, starts the I/O threads and, if
  // config.listen is set, the listener. Throws troupe_error with the reason.
  explicit tcp_transport(node_core& node);
  ~tcp_transport();
  tcp_transport(const tcp_transport&) = delete;
  tcp_transport& operator=(const tcp_transport&) = delete;

  // Says goodbye on every TCP connection, closes them, stops the threads.
  void stop() noexcept;

  // What peers dial to reach this node ("tcp://10.0.0.2:4000"), empty if not listening.
  [[nodiscard]] std::string endpoint() const;

  // Dials, handshakes and registers a connection. `expected_name`: the node the
  // caller means (a different node there is errc::no_such_node); may be empty.
  expected<std::shared_ptr<connection>> dial(const std::string& endpoint, const std::string& expected_name,
                                             time_limit until);

  // A TCP connection to `name` was lost: re-dial `endpoint` with backoff, unless
  // the peer said goodbye or this node is stopping.
  void connection_lost(const std::string& name, const std::string& endpoint, bool said_goodbye);
  // A connection to `name` exists again (either side dialed): stop re-dialing it.
  void connection_up(const std::string& name);
  // While `name` is being re-dialed: why it is unreachable (sends fail fast).
  [[nodiscard]] std::optional<error> unreachable(const std::string& name) const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe::detail
