// peer_info: who is at the other end of a connection. Owns: the peer's identity
// as its handshake told it. May use: std only.
//
// Shared between the connection, node_handle (which users hold) and the
// cluster's member list; the identity fields are set before the connection
// starts and never change, `alive` and `spawned_by_us` are atomics.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace troupe::detail {

// Who is at the other end of a connection (also behind node_handle).
struct peer_info {
  std::string name;
  std::uint64_t incarnation = 0;
  pid_t pid = 0;                           // from SO_PEERCRED
  std::atomic<bool> spawned_by_us{false};  // spawn_node started it
  std::uint64_t anchor_id = 0;             // the peer's anchor actor
  std::uint64_t host = 0;                  // its host_id() (wire.hpp)
  std::string endpoint;                    // its TCP endpoint, if it listens
  std::atomic<bool> alive{true};
};

}  // namespace troupe::detail
