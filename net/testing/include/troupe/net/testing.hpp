// testing: hooks that play a hostile peer, for tests only (not installed). Owns:
// nothing of the product. May use: node/, connection/, shm/.
//
// Test-only hooks that let a test process act as a broken or hostile peer, to
// check that bad input from another process closes that one connection with a log
// line while the node keeps running. Never use them in applications.
//
//   troupe::testing::inject_record(n, "peer", 1, garbage);   // a bad message record
//   troupe::testing::corrupt_ring(n, "peer");                // an impossible record length
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "troupe/net/node.hpp"

namespace troupe::testing {

// Writes one raw record (`kind`, `body`) into the ring from `n` to its peer
// `peer` (dialing it if needed), bypassing every check. False if there is no connection.
bool inject_record(node& n, std::string_view peer, std::uint32_t kind, std::span<const std::byte> body);

// Seals the next record header of the shared-memory ring to that peer with a
// length past the end of the ring: the peer's next read sees a corrupt ring.
// False if there is no shared-memory connection.
bool corrupt_ring(node& n, std::string_view peer);

// The pid of the peer node as its socket reports it (0 if there is no connection).
int peer_pid(node& n, std::string_view peer);

// The id an actor has on its own node (for a ref to a remote actor: its id
// there, not its proxy's here).
std::uint64_t remote_id(const actor_addr& a);

// The most bytes a TCP connection to `peer` ever held between reading them and
// delivering them (0 for a shared-memory connection, or no connection).
std::size_t inbound_high_water(node& n, std::string_view peer);

}  // namespace troupe::testing
