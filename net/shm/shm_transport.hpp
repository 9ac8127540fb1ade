// shm_transport: connections to nodes on this host. Owns: the node's UNIX
// socket, the handshake over it and the hand-over of the rings. May use: connection/, wire/, os/.
//
// A node claims its name by listening on <runtime dir>/<name>.sock. A dialer
// connects there; both send a hello (wire/wire.hpp) and check that the peer
// runs as the same user (SO_PEERCRED); the dialer then creates one memfd with
// two spsc_rings, one per direction, and passes it over the socket
// (SCM_RIGHTS); the acceptor maps and checks it and says yes. The socket stays
// open as the connection's liveness channel (shm/shm_connection.hpp).
// docs/wire.md has the handshake byte by byte.
//
//   shm_transport shm(core);
//   shm.listen();                                  // claims the name; throws troupe_error
//   auto c = shm.dial("bank");                     // a registered connection, or why not
//
// Thread safety: dial() and accept_one() from any thread; each accepted socket
// is handshaken on a thread of its own (a silent client must not hold up the
// control thread that calls accept_one()); close() after the control thread ended.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "connection/connection.hpp"
#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::detail {

class node_core;

class shm_transport {
 public:
  // Bounds of a ring's size (each direction).
  static constexpr std::size_t min_ring_bytes = 4096;
  static constexpr std::size_t max_ring_bytes = std::size_t{1} << 30;
  // node_config::ring_bytes rounded down to a power of two within the bounds.
  static std::size_t ring_size_for(std::size_t configured) noexcept;

  explicit shm_transport(node_core& node);
  shm_transport(const shm_transport&) = delete;
  shm_transport& operator=(const shm_transport&) = delete;

  // Prepares the runtime directory and listens on this node's socket (which
  // claims the name on this host). Throws troupe_error with the reason.
  void listen();
  // The listening socket, which the node's control thread polls.
  [[nodiscard]] int listener() const noexcept { return listener_.get(); }
  // The runtime directory (child nodes are told to use the same one).
  [[nodiscard]] const std::string& runtime_dir() const noexcept { return runtime_dir_; }

  // Dials the node of that name on this host, handshakes and registers the
  // connection. errc::no_such_node if no node of that name listens here.
  expected<std::shared_ptr<connection>> dial(const std::string& node_name);
  // The listener is readable: accepts one peer and starts its handshake.
  void accept_one() noexcept;
  // Waits until every handshake thread has ended (each ends by its deadline).
  void wait_for_handshakes() noexcept;
  // Stops listening and removes the socket.
  void close() noexcept;

 private:
  void handshake(unique_fd socket) noexcept;
  [[nodiscard]] std::vector<std::byte> hello() const;

  node_core& node_;
  std::string runtime_dir_;
  std::string socket_path_;
  unique_fd listener_;

  troupe::mutex handshakes_mutex_;
  std::condition_variable_any handshakes_done_;
  std::size_t handshakes_ TROUPE_GUARDED_BY(handshakes_mutex_) =
      0;  // running handshake threads (under handshakes_mutex_)
};

}  // namespace troupe::detail
