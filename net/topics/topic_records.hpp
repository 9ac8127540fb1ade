// topic_records: the wire form of the two records topics add. Owns: their
// codecs and the rules for topic names. May use: runtime/ (serialization).
//
// Pure functions over bytes, like wire/: the fuzz target tests/fuzz/fuzz_topics
// drives exactly what a peer's bytes reach. docs/wire.md has the layouts:
//
//   topic_interest  u64 type id, u64 subscriber count, string topic name
//                   "this node has `count` subscribers to (name, type)"; 0: none any more
//   publication     u64 type id, string topic name, the encoded message to the end
//                   one copy for every subscriber on the receiving node
//
// A topic is (name, message type): the same name with another type is another
// topic. Names are 1 to 256 bytes of printable ASCII (0x20-0x7e), so a name a
// peer sends can be quoted in a log line as it is.
//
// Thread safety: stateless; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::detail {

inline constexpr std::size_t max_topic_name = 256;

// 1 to max_topic_name bytes, each printable ASCII.
[[nodiscard]] bool valid_topic_name(std::string_view name) noexcept;

struct topic_interest {
  std::uint64_t type_id = 0;
  std::uint64_t subscribers = 0;
  std::string name;
  friend bool operator==(const topic_interest&, const topic_interest&) = default;
};

[[nodiscard]] std::vector<std::byte> encode_interest(const topic_interest& interest);
// The defect text if `body` is not exactly one valid interest record.
[[nodiscard]] std::optional<std::string> parse_interest(std::span<const std::byte> body, topic_interest& out);

// What comes before the payload in a publication (type id and name): the same
// bytes for every publication of a topic, so a topic computes them once.
[[nodiscard]] std::vector<std::byte> encode_publication_head(std::uint64_t type_id, std::string_view name);

struct publication_view {
  std::uint64_t type_id = 0;
  std::string_view name;               // into the body
  std::span<const std::byte> payload;  // into the body: the rest of it
};
// The defect text if the head is truncated or the name invalid; the payload is
// not looked at (the topic's own type decodes it).
[[nodiscard]] std::optional<std::string> parse_publication(std::span<const std::byte> body, publication_view& out);

}  // namespace troupe::detail
