// Fuzz target: the two records topics add, net/topics/topic_records.hpp. The
// input is the body a peer sent: the first byte picks the record (even: a
// topic_interest, odd: a publication), the rest is its body.
//
// Invariants:
// - a parser fails with a text, never throws or reads out of bounds;
// - an interest that parses names a valid topic and has exactly one encoding:
//   encode_interest gives back the input;
// - a publication that parses names a valid topic inside the input, and its
//   head re-encoded followed by its payload is the input;
// - a name that is not valid never parses.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "topics/topic_records.hpp"

namespace {

namespace wire = troupe::detail;

void check_interest(std::span<const std::byte> body) {
  wire::topic_interest interest;
  const auto defect = wire::parse_interest(body, interest);
  if (defect) {
    TROUPE_FUZZ_CHECK(!defect->empty());
    return;
  }
  TROUPE_FUZZ_CHECK(wire::valid_topic_name(interest.name));
  TROUPE_FUZZ_CHECK(std::ranges::equal(wire::encode_interest(interest), body));
}

void check_publication(std::span<const std::byte> body) {
  wire::publication_view publication;
  const auto defect = wire::parse_publication(body, publication);
  if (defect) {
    TROUPE_FUZZ_CHECK(!defect->empty());
    return;
  }
  TROUPE_FUZZ_CHECK(wire::valid_topic_name(publication.name));
  const auto* first = reinterpret_cast<const char*>(body.data());
  TROUPE_FUZZ_CHECK(publication.name.data() >= first &&
                    publication.name.data() + publication.name.size() <= first + body.size());
  TROUPE_FUZZ_CHECK(publication.payload.data() + publication.payload.size() == body.data() + body.size());
  std::vector<std::byte> again = wire::encode_publication_head(publication.type_id, publication.name);
  again.insert(again.end(), publication.payload.begin(), publication.payload.end());
  TROUPE_FUZZ_CHECK(std::ranges::equal(again, body));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> input = troupe::fuzz::bytes_of(data, size);
  if (input.empty()) return 0;
  const std::span<const std::byte> body = input.subspan(1);
  if ((std::to_integer<unsigned>(input[0]) & 1U) == 0) {
    check_interest(body);
  } else {
    check_publication(body);
  }
  return 0;
}
