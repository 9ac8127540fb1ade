// The worker node the coordinator reaches over TCP: this same executable,
// started as `cluster_demo --tcp-node NAME RUNTIME_DIR` in a child process.
//
// It stands in for another machine. It has a runtime directory of its own, so
// it and the coordinator cannot meet over shared memory: every message between
// them crosses a TCP connection on loopback, with the cookie handshake. It
// listens on tcp://127.0.0.1:0 (any free port) and reports the port it got
// over a private control socket (fd 3), which is also how it receives the
// cookie (never on the command line, where other users could read it). It
// serves until that socket closes — the coordinator ending, or dying (the
// process also gets SIGKILL with its parent).
//
//   tcp_worker_process tcp;                           // before any thread: it forks
//   if (auto e = tcp.start(name, dir)) fail(*e);
//   troupe::node n(cfg);
//   auto up = tcp.hand_over(cookie, n.endpoint(), deadline);  // up.endpoint: "tcp://127.0.0.1:41234"
//   auto where = reach_tcp_node(n, up.endpoint);      // candidates for remote_child
//
// Thread safety: tcp_worker_process from one thread (main).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

namespace cluster_demo {

using clock_type = std::chrono::steady_clock;

class tcp_worker_process {
 public:
  tcp_worker_process() = default;
  tcp_worker_process(const tcp_worker_process&) = delete;
  tcp_worker_process& operator=(const tcp_worker_process&) = delete;
  ~tcp_worker_process() { (void)stop(clock_type::now() + std::chrono::seconds(3)); }

  // Forks and execs this executable as the TCP node. Call it while this
  // process has one thread (the child allocates nothing between fork and exec,
  // but a node's threads must not be running). Returns an error text, or nothing.
  std::optional<std::string> start(const std::string& node_name, const std::string& runtime_dir);
  // Sends the cookie and the seed to join through (the coordinator's endpoint),
  // and waits (until the deadline) for the endpoint the node listens on: the
  // endpoint, or an error text saying what happened instead.
  struct endpoint_or_error {
    std::string endpoint;
    std::string error;
  };
  endpoint_or_error hand_over(const std::string& cookie, const std::string& seed, clock_type::time_point deadline);
  // Closes the control socket (the node leaves), waits for the exit until the
  // deadline, then kills it. Returns how the process ended ("exited 0", ...).
  std::string stop(clock_type::time_point deadline);

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

 private:
  std::optional<std::string> read_line(clock_type::time_point deadline);
  std::string reap(clock_type::time_point deadline);

  pid_t pid_ = -1;
  int control_ = -1;  // our end of the control socket
  int pidfd_ = -1;
  std::string buffer_;
  std::string ended_;  // how it ended, once reaped
};

// The child side: `cluster_demo --tcp-node NAME RUNTIME_DIR`, control on fd 3.
int tcp_node_main(const std::string& node_name, const std::string& runtime_dir);

// Waits until the TCP worker node has joined the coordinator's cluster (it
// dials its seed, the coordinator; gossip makes each a member of the other)
// and returns the candidates remote_child places workers on.
troupe::expected<std::vector<std::string>> reach_tcp_node(troupe::node& n, const std::string& endpoint);

}  // namespace cluster_demo
