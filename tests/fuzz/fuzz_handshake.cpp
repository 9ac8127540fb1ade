// Fuzz target: what a peer sends before it is authenticated, net/wire/wire.hpp.
// The input is read as
// - a challenge body and a hello (parse_challenge, parse_hello);
// - a proof or welcome body: a 32-byte MAC, then a hello (macs_equal, parse_hello);
// - an endpoint text (parse_endpoint, as in a hello or a configuration);
// - a cookie (compute_mac, whose input is otherwise ours).
// Whatever parses must survive a round trip through the matching encoder.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_check.hpp"
#include "wire/wire.hpp"

namespace {

namespace wire = troupe::detail;

bool same_hello(const wire::hello_info& a, const wire::hello_info& b) {
  return a.name == b.name && a.incarnation == b.incarnation && a.anchor_id == b.anchor_id &&
         a.ring_bytes == b.ring_bytes && a.host == b.host && a.endpoint == b.endpoint && a.schema == b.schema;
}

void check_hello(std::span<const std::byte> bytes) {
  const auto hello = wire::parse_hello(bytes);
  if (!hello) {
    TROUPE_FUZZ_CHECK(!hello.error().text().empty());
    return;
  }
  TROUPE_FUZZ_CHECK(hello->incarnation != 0);
  TROUPE_FUZZ_CHECK(!hello->name.empty());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> schema(hello->schema.begin(), hello->schema.end());
  std::ranges::sort(schema);
  const std::vector<std::byte> encoded = wire::encode_hello(*hello, schema);
  // Every field has one encoding, so only the schema's order can differ.
  TROUPE_FUZZ_CHECK(encoded.size() == bytes.size());
  const auto again = wire::parse_hello(encoded);
  TROUPE_FUZZ_CHECK(again.has_value());
  TROUPE_FUZZ_CHECK(same_hello(*hello, *again));
  TROUPE_FUZZ_CHECK(wire::encode_hello(*again, schema) == encoded);
}

void check_challenge(std::span<const std::byte> bytes) {
  const auto nonce = wire::parse_challenge(bytes);
  if (!nonce) {
    TROUPE_FUZZ_CHECK(!nonce.error().text().empty());
    return;
  }
  // A challenge has one encoding: exactly the bytes that parsed.
  TROUPE_FUZZ_CHECK(std::ranges::equal(wire::encode_challenge(*nonce), bytes));
}

void check_endpoint(std::string_view text) {
  const auto strict = wire::parse_endpoint(text);
  const auto any_port = wire::parse_endpoint(text, true);
  // Allowing port 0 only ever accepts more.
  TROUPE_FUZZ_CHECK(!strict || any_port);
  if (!any_port) {
    TROUPE_FUZZ_CHECK(!any_port.error().text().empty());
    return;
  }
  TROUPE_FUZZ_CHECK(!any_port->host.empty());
  TROUPE_FUZZ_CHECK(strict.has_value() == (any_port->port != 0));
  if (strict) TROUPE_FUZZ_CHECK(strict->host == any_port->host && strict->port == any_port->port);
  const std::string formatted = wire::format_endpoint(any_port->host, any_port->port);
  const auto again = wire::parse_endpoint(formatted, true);
  TROUPE_FUZZ_CHECK(again.has_value());
  TROUPE_FUZZ_CHECK(again->host == any_port->host && again->port == any_port->port);
  TROUPE_FUZZ_CHECK(wire::format_endpoint(again->host, again->port) == formatted);
}

wire::nonce nonce_from(std::span<const std::byte> bytes) {
  wire::nonce n{};
  std::memcpy(n.data(), bytes.data(), std::min(bytes.size(), n.size()));
  return n;
}

void check_mac(std::span<const std::byte> bytes) {
  const std::string_view cookie(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const wire::nonce dialer = nonce_from(bytes);
  const wire::nonce acceptor = nonce_from(bytes.size() > 32 ? bytes.subspan(bytes.size() - 32) : bytes);
  const wire::auth_mac mac = wire::compute_mac(cookie, wire::dialer_role, dialer, acceptor);
  TROUPE_FUZZ_CHECK(mac == wire::compute_mac(cookie, wire::dialer_role, dialer, acceptor));
  TROUPE_FUZZ_CHECK(wire::macs_equal(mac, mac));
  // The input as a received proof: equal exactly when it is these 32 bytes.
  const bool same = bytes.size() == mac.size() && std::memcmp(bytes.data(), mac.data(), mac.size()) == 0;
  TROUPE_FUZZ_CHECK(wire::macs_equal(mac, bytes) == same);
  TROUPE_FUZZ_CHECK(!wire::macs_equal(mac, std::span<const std::byte>(mac).first(mac.size() - 1)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto bytes = troupe::fuzz::bytes_of(data, size);
  check_challenge(bytes);
  check_hello(bytes);
  // A proof or welcome body: the sender's MAC, then its hello.
  if (bytes.size() >= sizeof(wire::auth_mac)) {
    const auto proof = bytes.first(sizeof(wire::auth_mac));
    const wire::nonce zero{};
    (void)wire::macs_equal(wire::compute_mac("a cookie of sixteen+", wire::acceptor_role, zero, zero), proof);
    check_hello(bytes.subspan(sizeof(wire::auth_mac)));
  }
  check_endpoint(std::string_view(reinterpret_cast<const char*>(data), size));
  check_mac(bytes);
  return 0;
}
