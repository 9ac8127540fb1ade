// testing: hooks that play a hostile peer (see testing.hpp).
#include "troupe/net/testing.hpp"

#include "node/node_access.hpp"
#include "node/node_core.hpp"
#include "shm/shm_connection.hpp"

namespace troupe::testing {

bool inject_record(node& n, std::string_view peer, std::uint32_t kind, std::span<const std::byte> body) {
  auto c = detail::node_access::core(n).connection_to(peer);
  if (!c) return false;
  return !(*c)->write(static_cast<detail::record_kind>(kind), body);
}

bool corrupt_ring(node& n, std::string_view peer) {
  auto c = detail::node_access::core(n).connection_to(peer);
  if (!c) return false;
  auto* shm = dynamic_cast<detail::shm_connection*>(c->get());
  if (shm == nullptr) return false;  // not a shared-memory connection
  // The next record's header, sealed like a real one, claims a length past the
  // end of the ring.
  spsc_ring& ring = shm->outbound_ring_for_tests();
  return ring.write_header_for_tests(ring.producer_position(), static_cast<std::uint32_t>(ring.capacity() * 4), 0);
}

int peer_pid(node& n, std::string_view peer) {
  auto c = detail::node_access::core(n).connection_to(peer);
  if (!c) return 0;
  return (*c)->peer()->pid;
}

std::uint64_t remote_id(const actor_addr& a) {
  detail::cell* c = detail::addr_access::get(a);
  if (c == nullptr) return 0;
  if (!c->is_remote()) return c->id();
  return static_cast<const detail::proxy_base*>(c)->where().id;
}

std::size_t inbound_high_water(node& n, std::string_view peer) {
  auto c = detail::node_access::core(n).await_connection(std::string(peer), std::chrono::steady_clock::now());
  return c ? (*c)->inbound_high_water() : 0;
}

}  // namespace troupe::testing
