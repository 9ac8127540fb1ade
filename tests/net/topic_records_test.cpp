// The codecs of the two topic records (net/topics/topic_records.hpp): what
// they write, and what they refuse from a peer.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "topics/topic_records.hpp"
#include "troupe/runtime/serialization.hpp"

namespace {

using troupe::detail::encode_interest;
using troupe::detail::encode_publication_head;
using troupe::detail::parse_interest;
using troupe::detail::parse_publication;
using troupe::detail::publication_view;
using troupe::detail::topic_interest;

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(topic_records, an_interest_round_trips) {
  const topic_interest sent{0x1122334455667788ull, 42, "prices/eu"};
  const std::vector<std::byte> body = encode_interest(sent);
  EXPECT_EQ(body.size(), 8u + 8u + 1u + sent.name.size());
  topic_interest got;
  EXPECT_EQ(parse_interest(body, got), std::nullopt);
  EXPECT_EQ(got, sent);
}

TEST(topic_records, an_interest_that_is_truncated_or_too_long_is_refused) {
  const std::vector<std::byte> body = encode_interest(topic_interest{7, 1, "t"});
  topic_interest got;
  for (std::size_t size = 0; size < body.size(); ++size) {
    EXPECT_NE(parse_interest(std::span(body).first(size), got), std::nullopt) << size << " bytes";
  }
  auto longer = body;
  longer.push_back(std::byte{0});
  const auto defect = parse_interest(longer, got);
  ASSERT_NE(defect, std::nullopt);
  EXPECT_NE(defect->find("trailing"), std::string::npos) << *defect;
}

TEST(topic_records, names_must_be_one_to_256_printable_ascii_bytes) {
  EXPECT_TRUE(troupe::detail::valid_topic_name("a"));
  EXPECT_TRUE(troupe::detail::valid_topic_name(std::string(256, '~')));
  EXPECT_FALSE(troupe::detail::valid_topic_name(""));
  EXPECT_FALSE(troupe::detail::valid_topic_name(std::string(257, 'a')));
  EXPECT_FALSE(troupe::detail::valid_topic_name("new\nline"));
  EXPECT_FALSE(troupe::detail::valid_topic_name("caf\xc3\xa9"));
  topic_interest got;
  for (const std::string& name : {std::string(), std::string(257, 'a'), std::string("a\0b", 3)}) {
    EXPECT_NE(parse_interest(encode_interest(topic_interest{1, 1, name}), got), std::nullopt) << name.size();
  }
}

TEST(topic_records, a_publication_head_is_read_back_and_the_payload_is_the_rest) {
  const std::vector<std::byte> payload = {std::byte{1}, std::byte{2}, std::byte{3}};
  const std::vector<std::byte> body = concat(encode_publication_head(99, "news"), payload);
  publication_view view;
  ASSERT_EQ(parse_publication(body, view), std::nullopt);
  EXPECT_EQ(view.type_id, 99u);
  EXPECT_EQ(view.name, "news");
  EXPECT_EQ(std::vector<std::byte>(view.payload.begin(), view.payload.end()), payload);
  // An empty payload is the payload of an empty message.
  ASSERT_EQ(parse_publication(encode_publication_head(99, "news"), view), std::nullopt);
  EXPECT_TRUE(view.payload.empty());
}

TEST(topic_records, a_publication_whose_name_runs_past_the_record_is_refused) {
  std::vector<std::byte> body;
  troupe::wire_writer out(body);
  out.write_scalar(std::uint64_t{1});
  out.write_varint(4'000'000'000ull);
  out.write_bytes("abc", 3);
  publication_view view;
  EXPECT_NE(parse_publication(body, view), std::nullopt);
  EXPECT_NE(parse_publication(std::span(body).first(5), view), std::nullopt);
}

}  // namespace
