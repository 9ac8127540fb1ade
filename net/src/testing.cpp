#include "troupe/net/testing.hpp"

#include "node_core.hpp"

namespace troupe::testing {

bool inject_record(node& n, std::string_view peer, std::uint32_t kind, std::span<const std::byte> body) {
  auto c = n.core().link_to(peer);
  if (!c) return false;
  return !(*c)->write(static_cast<detail::record_kind>(kind), body);
}

bool corrupt_ring(node& n, std::string_view peer) {
  auto c = n.core().link_to(peer);
  if (!c) return false;
  auto* shm = dynamic_cast<detail::shm_connection*>(c->get());
  if (shm == nullptr) return false;  // not a shared-memory link
  spsc_ring_header* h = shm->outbound_ring_for_tests().header();
  // seq_cst: as publish() does, so the peer's reader sees it like a real publish.
  h->tail.store(h->head.load(std::memory_order_relaxed) + h->capacity * 4, std::memory_order_seq_cst);
  shm->outbound_ring_for_tests().interrupt_consumer();
  return true;
}

int peer_pid(node& n, std::string_view peer) {
  auto c = n.core().link_to(peer);
  if (!c) return 0;
  return (*c)->peer()->pid;
}

std::uint64_t remote_id(const actor_addr& a) {
  detail::cell* c = a.cell();
  if (c == nullptr) return 0;
  if (!c->is_remote()) return c->id();
  return static_cast<const detail::proxy_base*>(c)->where().id;
}

std::size_t inbound_high_water(node& n, std::string_view peer) {
  auto c = n.core().await_link(std::string(peer), std::chrono::steady_clock::now());
  return c ? (*c)->inbound_high_water() : 0;
}

}  // namespace troupe::testing
