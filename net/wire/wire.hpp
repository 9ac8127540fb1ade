// wire: the pure codecs of the node protocol. Owns: hello, frames, challenge-response,
// cookie, endpoints, host id. May use: runtime/ (serialization), OpenSSL.
//
// The pure parts of the node protocol: what both transports put in their
// handshakes (the hello), the TCP transport's frames and its authentication
// (an HMAC-SHA256 challenge-response over a shared cookie), the cookie file,
// endpoints, and this host's identity. No sockets here: everything takes and
// returns bytes, so the fuzz targets (tests/fuzz) drive exactly the code a
// hostile peer reaches. docs/wire.md is the reference for the formats.
//
// Everything here is untrusted-input code: parsers check every length, count
// and id before use and return errc::malformed_message (or protocol_mismatch)
// with a text naming the defect; nothing allocates more than the input justifies.
//
// Thread safety: stateless; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe::detail {

// A peer's message schemas: type id -> fingerprint. Ordered (a tree), not
// hashed: ids come from the peer, and integer keys chosen to collide in one
// hash bucket would make building the table quadratic (found by tests/fuzz).
using schema_map = std::map<std::uint64_t, std::uint64_t>;

// --- hello: who a node is, exchanged by both transports -------------------------
inline constexpr std::uint32_t hello_magic = 0x4e505254;  // "TRPN"
inline constexpr std::uint16_t wire_version = 4;

struct hello_info {
  std::string name;
  std::uint64_t incarnation = 0;
  std::uint64_t anchor_id = 0;
  std::uint64_t ring_bytes = 0;  // shared memory: the dialer's ring size; TCP: 0
  std::uint64_t host = 0;        // host_id() of the node
  std::string endpoint;          // its TCP listening endpoint ("tcp://10.0.0.2:4000"), or empty
  schema_map schema;             // message type id -> fingerprint
};
std::vector<std::byte> encode_hello(const hello_info& h,
                                    std::span<const std::pair<std::uint64_t, std::uint64_t>> schema);
// Checks magic, version, name, lengths and counts; ring size and endpoint are
// checked by the transport that uses them.
expected<hello_info> parse_hello(std::span<const std::byte> bytes);

// --- TCP frames -------------------------------------------------------------------
// [u32 body length][u32 kind][body], little endian. Kinds are record_kind
// (node_core.hpp) after the handshake, tcp_kind during it.
inline constexpr std::size_t frame_head_bytes = 8;

enum class tcp_kind : std::uint32_t {
  challenge = 0x100,  // both ways first: u32 magic, u16 version, 32-byte nonce
  proof = 0x101,      // dialer: 32-byte HMAC, then its hello
  welcome = 0x102,    // acceptor: 32-byte HMAC, then its hello
  refusal = 0x103,    // either: a text (the connection is not made)
};

// Appends one frame (head and body are concatenated as the body).
void append_frame(std::vector<std::byte>& out, std::uint32_t kind, std::span<const std::byte> head,
                  std::span<const std::byte> body = {});

// Cuts whole frames off the front of a byte stream.
struct frame_view {
  std::uint32_t kind = 0;
  std::span<const std::byte> body;
};
enum class frame_status { frame, incomplete, defect };
// The frame at `offset` in `bytes` (advancing offset past it), or incomplete
// (wait for more bytes), or defect (a body longer than max_body: `defect` says so).
frame_status next_frame(std::span<const std::byte> bytes, std::size_t& offset, std::size_t max_body, frame_view& out,
                        std::string& defect);

// --- authentication ------------------------------------------------------------------
using nonce = std::array<std::byte, 32>;
using auth_mac = std::array<std::byte, 32>;

nonce fresh_nonce();
std::vector<std::byte> encode_challenge(const nonce& n);
expected<nonce> parse_challenge(std::span<const std::byte> body);
// HMAC-SHA256(cookie, role || 0 || dialer nonce || acceptor nonce || transcript).
// Each side proves under its own role label; both fresh nonces are in it, so
// it cannot be replayed; and the transcript binds the proof to the hellos it
// comes with (the dialer's proof: its own hello; the acceptor's: both), so a
// node tricked into dialing an attacker while the attacker dials it cannot
// have its own proof relayed back to it: the relayed hello carries its own
// name, which it refuses.
auth_mac compute_mac(std::string_view cookie, std::string_view role, const nonce& dialer, const nonce& acceptor,
                     std::span<const std::byte> transcript = {});
// Constant time (CRYPTO_memcmp): no timing tells an attacker how much matched.
bool macs_equal(const auth_mac& a, std::span<const std::byte> b) noexcept;
inline constexpr std::string_view dialer_role = "troupe dialer v2";
inline constexpr std::string_view acceptor_role = "troupe acceptor v2";

// --- the cookie -----------------------------------------------------------------------
// Reads the cookie file: a regular file owned by this user with no group or
// other access (mode 0600 or stricter), holding at least 16 characters (one
// line; surrounding whitespace ignored). `create`: a missing file is made with
// 32 random bytes in hex, mode 0600 (and its directory, mode 0700).
expected<std::string> load_cookie(const std::string& path, bool create);
// $TROUPE_COOKIE_FILE, else $HOME/.troupe/cookie.
std::string default_cookie_path();

// --- endpoints and hosts ---------------------------------------------------------------
struct tcp_endpoint {
  std::string host;  // an address or a name; IPv6 without brackets
  std::uint16_t port = 0;
};
// "tcp://host:port", "tcp://[v6]:port"; port 0 only if `allow_any_port`.
expected<tcp_endpoint> parse_endpoint(std::string_view text, bool allow_any_port = false);
std::string format_endpoint(std::string_view host, std::uint16_t port);

// This machine and network stack: the kernel's boot id and the calling thread's
// network namespace. Two nodes with the same host id reach each other over
// shared memory; others over TCP.
std::uint64_t host_id();

}  // namespace troupe::detail
