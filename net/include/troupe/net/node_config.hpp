// node_config: a node's settings — its name, the same-host transport's rings
// and bounds, TCP (listen, advertise, cookie, TLS, failure detector,
// re-dialing), its cluster — and how spawn_node starts a child process.
//
//   troupe::node_config cfg;
//   cfg.name = "bank";
//   cfg.listen = "tcp://0.0.0.0:4000";
//   troupe::node n(std::move(cfg));
//
// docs/deployment.md and docs/security.md explain each setting.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "troupe/net/cluster.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe {

// TLS on TCP connections (OpenSSL through Asio). Both sides present a certificate and
// verify the peer's against ca_file (mutual TLS); TLS 1.2 or later.
struct tls_config {
  bool enabled = false;
  std::string certificate_file;  // PEM: this node's certificate (chain)
  std::string private_key_file;  // PEM: its key
  std::string ca_file;           // PEM: the CA(s) a peer's certificate must chain to
};

// The phi-accrual failure detector of TCP connections (see docs/security.md). With
// the defaults, a silent peer is declared dead about 1.3 s after its last sign
// of life; a peer whose heartbeats keep coming (however busy its actors) never is.
struct failure_detector_config {
  std::chrono::milliseconds heartbeat_interval{250};
  std::chrono::milliseconds acceptable_pause{500};
  std::chrono::milliseconds min_std_deviation{100};
  double threshold = 8.0;    // phi above this: the peer is down
  std::size_t window = 100;  // heartbeat gaps remembered
};

// Re-dialing a TCP peer whose connection was lost (not closed with a goodbye).
struct reconnect_config {
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  double jitter = 0.25;                             // each wait is backoff x [1 - jitter, 1 + jitter]
  std::chrono::milliseconds give_up_after{600000};  // after the loss; 0: never re-dial
};

// What a send from a plain thread (not an actor, timer or transport thread)
// does when a connection is backed up past max_queued_bytes: wait for room
// (backpressure), or fail with errc::peer_overloaded as an actor's send always
// does (actors never block).
enum class connection_overflow : std::uint8_t { backpressure, fail };
using link_overflow [[deprecated("renamed troupe::connection_overflow")]] = connection_overflow;

struct node_config {
  // Unique on this host (and, once nodes connect over TCP, among the nodes that
  // connect to each other). Empty: "node-<pid>".
  std::string name;
  // The actor system's own settings.
  troupe::config system;
  // Where nodes of this user meet (one UNIX socket each; created mode 0700).
  // Empty: $TROUPE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/troupe, else /tmp/troupe-<uid>.
  std::string runtime_dir;
  // Shared memory per direction of each connection (rounded down to a power of two).
  std::size_t ring_bytes = std::size_t{1} << 20;
  // Bytes of user messages a connection may queue while its peer is slow (ring full,
  // socket full): then actors' sends fail with errc::peer_overloaded, and
  // plain threads' sends follow `overflow`. Memory stays bounded.
  std::size_t max_queued_bytes = std::size_t{64} << 20;
  connection_overflow overflow = connection_overflow::backpressure;
  // Largest message accepted from a peer (a bigger one is a defect: connection closed).
  std::size_t max_message_bytes = std::size_t{64} << 20;
  // Dialing and handshake.
  std::chrono::milliseconds connect_timeout{5000};
  // Spin iterations a connection's reader makes before parking (the adaptive wake-up).
  int reader_spins = 2000;

  // --- across machines (TCP) ---------------------------------------------------
  // "tcp://host:port" to listen on (port 0: any free port; node::endpoint()
  // tells which). Empty: no listener (this node can still dial out).
  std::string listen;
  // The endpoint peers are told to dial (inside refs to this node's actors).
  // Empty: the listening one; a wildcard address (0.0.0.0, ::) is replaced by
  // this host's name.
  std::string advertise;
  // The shared secret of the cluster. Empty: read from cookie_file.
  std::string cookie;
  // Empty: $TROUPE_COOKIE_FILE, else ~/.troupe/cookie (created with a random
  // cookie, mode 0600, if missing). Must be mode 0600 or stricter.
  std::string cookie_file;
  tls_config tls;
  // Threads doing the TCP transport's socket I/O.
  std::size_t io_threads = 1;
  // Accepted connections still in their handshake; more are closed at once.
  std::size_t max_pending_connections = 64;
  failure_detector_config failure_detector;
  reconnect_config reconnect;

  // --- clusters (cluster.hpp, docs/cluster.md) ---------------------------------
  // How this node finds the other members: none (the default), seeds or etcd.
  // A member must listen on TCP (`listen`).
  cluster_config cluster;
};

// A node's settings from its command line (or a config file): --name NAME,
// --listen tcp://host:port, --advertise tcp://host:port, --cookie-file PATH,
// --cluster SPEC (see parse_cluster), --config FILE (lines "key = value" with
// the same keys, '#' comments; the command line wins over the file). Both
// "--key value" and "--key=value". Returns the arguments it did not use, in
// order (argv[0] excluded); an unknown "--cluster" spec or unreadable file is
// an error naming it.
expected<std::vector<std::string>> configure_from_command_line(node_config& config, int argc, const char* const* argv);

// How spawn_node starts a child process.
struct node_spawn_options {
  std::string name;                          // the child's node name (required, unique on the host)
  std::string program;                       // empty: this executable (/proc/self/exe)
  std::vector<std::string> args;             // argv[1..] of the child
  std::chrono::milliseconds timeout{10000};  // until the child has joined
};

}  // namespace troupe
