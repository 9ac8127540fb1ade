// delivery/: reliable channels between actors (troupe/net/reliable.hpp). The
// controllers are templates in the public headers; this folder holds what
// does not depend on the message type: channel ids, the in-memory producer
// store. It uses the runtime only: a channel is ordinary messages between
// actors, so it needs nothing of the transports.
#include "troupe/net/detail/reliable_support.hpp"

#include <atomic>
#include <cstdio>
#include <random>
#include <string>

namespace troupe::detail {
namespace {

std::uint64_t process_base() noexcept {
  static const std::uint64_t base = [] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }();
  return base;
}

// splitmix64's finaliser: spreads a counter over 64 bits, one to one.
std::uint64_t mix(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::uint64_t new_channel_id() noexcept {
  // relaxed: only uniqueness matters, no other memory is published through it.
  static std::atomic<std::uint64_t> counter{0};
  for (;;) {
    const std::uint64_t id = mix(process_base() + counter.fetch_add(1, std::memory_order_relaxed));
    if (id != 0) return id;
  }
}

std::uint64_t consumer_key_of(std::uint64_t actor_id) noexcept { return mix(process_base() ^ mix(actor_id)); }

void report_channel_event(std::string_view what) {
  const std::string line = "troupe: reliable channel: " + std::string(what) + "\n";
  std::fputs(line.c_str(), stderr);
}

}  // namespace troupe::detail
