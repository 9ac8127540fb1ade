// topic_records: the codecs of topic_interest and publication (see topic_records.hpp).
#include "topics/topic_records.hpp"

#include <algorithm>

#include "troupe/runtime/serialization.hpp"

namespace troupe::detail {

namespace {

// Reads a string's length at the reader's position and takes its bytes as a
// view into `body` (no copy: a publication's name is only compared with the
// topics here). `end` is the offset just past the name.
bool read_name(wire_reader& in, std::span<const std::byte> body, std::string_view& name, std::size_t& end,
               std::string& defect) {
  std::size_t length = 0;
  if (!in.read_length(length)) {  // checked against the bytes left
    defect = "topic name: " + in.failure();
    return false;
  }
  const std::size_t at = body.size() - in.remaining();
  name = std::string_view(reinterpret_cast<const char*>(body.data() + at), length);
  if (!valid_topic_name(name)) {
    defect = "invalid topic name (1 to " + std::to_string(max_topic_name) + " bytes of printable ASCII)";
    return false;
  }
  end = at + length;
  return true;
}

}  // namespace

bool valid_topic_name(std::string_view name) noexcept {
  return !name.empty() && name.size() <= max_topic_name &&
         std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

std::vector<std::byte> encode_interest(const topic_interest& interest) {
  std::vector<std::byte> body;
  wire_writer out(body);
  out.write_scalar(interest.type_id);
  out.write_scalar(interest.subscribers);
  troupe::encode(out, interest.name);
  return body;
}

std::optional<std::string> parse_interest(std::span<const std::byte> body, topic_interest& out) {
  wire_reader in(body);
  topic_interest parsed;
  if (!in.read_scalar(parsed.type_id) || !in.read_scalar(parsed.subscribers)) {
    return "truncated topic_interest record";
  }
  std::string_view name;
  std::size_t end = 0;
  std::string defect;
  if (!read_name(in, body, name, end, defect)) return "topic_interest record: " + defect;
  if (end != body.size()) return "trailing bytes after a topic_interest record";
  parsed.name = std::string(name);
  out = std::move(parsed);
  return std::nullopt;
}

std::vector<std::byte> encode_publication_head(std::uint64_t type_id, std::string_view name) {
  std::vector<std::byte> head;
  wire_writer out(head);
  out.write_scalar(type_id);
  out.write_varint(name.size());
  out.write_bytes(name.data(), name.size());
  return head;
}

std::optional<std::string> parse_publication(std::span<const std::byte> body, publication_view& out) {
  wire_reader in(body);
  publication_view parsed;
  if (!in.read_scalar(parsed.type_id)) return "truncated publication record";
  std::size_t end = 0;
  std::string defect;
  if (!read_name(in, body, parsed.name, end, defect)) return "publication record: " + defect;
  parsed.payload = body.subspan(end);
  out = parsed;
  return std::nullopt;
}

}  // namespace troupe::detail
