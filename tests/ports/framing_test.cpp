// framer: cutting untrusted bytes into frames, and its documented outcomes for
// bytes that break the rules (framing.hpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "troupe/ports/framing.hpp"
#include "troupe/ports/messages.hpp"

namespace {

using troupe::ports::bytes_of;
using troupe::ports::framer;
using troupe::ports::framing;

std::string text(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::vector<std::string> all_frames(framer& f) {
  std::vector<std::string> out;
  while (auto frame = f.next()) {
    EXPECT_TRUE(frame->has_value()) << frame->error().text();
    if (!*frame) break;
    out.push_back(text(**frame));
  }
  return out;
}

TEST(framer, cuts_lines_that_arrive_in_pieces) {
  framer f(framing::lines(16));
  f.feed(bytes_of("al"));
  EXPECT_TRUE(all_frames(f).empty());
  f.feed(bytes_of("pha\nbeta\ngam"));
  EXPECT_EQ(all_frames(f), (std::vector<std::string>{"alpha", "beta"}));
  f.feed(bytes_of("ma"));
  auto last = f.finish();
  ASSERT_TRUE(last && *last);
  EXPECT_EQ(text(**last), "gamma");
}

TEST(framer, refuses_a_line_longer_than_the_maximum_before_its_end_arrives) {
  framer f(framing::lines(4));
  f.feed(bytes_of("abcde"));
  auto frame = f.next();
  ASSERT_TRUE(frame);
  ASSERT_FALSE(*frame);
  EXPECT_NE(frame->error().text().find("longer than 4"), std::string::npos);
  EXPECT_FALSE(f.next()) << "a failed framer yields nothing more";
}

TEST(framer, refuses_a_line_that_is_not_utf8_when_asked_for_text) {
  framer f(framing::lines(64, true));
  std::vector<std::byte> bad = bytes_of("ok\n");
  bad.push_back(std::byte{0xC3});  // a lead byte with no continuation
  bad.push_back(std::byte{'\n'});
  f.feed(bad);
  auto first = f.next();
  ASSERT_TRUE(first && *first);
  EXPECT_EQ(text(**first), "ok");
  auto second = f.next();
  ASSERT_TRUE(second);
  ASSERT_FALSE(*second);
  EXPECT_NE(second->error().text().find("UTF-8"), std::string::npos);
}

TEST(framer, utf8_check_accepts_text_and_refuses_overlong_and_surrogate_forms) {
  EXPECT_TRUE(troupe::ports::valid_utf8(bytes_of("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80")));
  EXPECT_FALSE(troupe::ports::valid_utf8(bytes_of("\xC0\xAF")));          // overlong '/'
  EXPECT_FALSE(troupe::ports::valid_utf8(bytes_of("\xED\xA0\x80")));      // a surrogate
  EXPECT_FALSE(troupe::ports::valid_utf8(bytes_of("\xF4\x90\x80\x80")));  // past U+10FFFF
}

TEST(framer, cuts_u16_and_u32_length_prefixed_frames) {
  framer f16(framing::u16_length(100));
  f16.feed(
      bytes_of(std::string("\x00\x03"
                           "abc\x00",
                           6)));
  f16.feed(bytes_of(std::string("\x02xy", 3)));
  EXPECT_EQ(all_frames(f16), (std::vector<std::string>{"abc", "xy"}));
  framer f32(framing::u32_length(100));
  f32.feed(bytes_of(std::string("\x00\x00\x00\x01z\x00\x00\x00\x00", 9)));
  EXPECT_EQ(all_frames(f32), (std::vector<std::string>{"z", ""}));
}

TEST(framer, refuses_a_length_over_the_maximum_before_buffering_its_bytes) {
  framer f(framing::u32_length(1024));
  f.feed(bytes_of(std::string("\x7F\xFF\xFF\xFF", 4)));  // claims 2 GiB
  auto frame = f.next();
  ASSERT_TRUE(frame);
  ASSERT_FALSE(*frame);
  EXPECT_NE(frame->error().text().find("over the maximum of 1024"), std::string::npos);
  EXPECT_LE(f.buffered(), 4U);
}

TEST(framer, reports_a_stream_that_ends_inside_a_frame) {
  framer f(framing::u16_length());
  f.feed(
      bytes_of(std::string("\x00\x10"
                           "abc",
                           5)));  // promises 16 bytes, sends 3
  EXPECT_FALSE(f.next());
  auto last = f.finish();
  ASSERT_TRUE(last);
  ASSERT_FALSE(*last);
  EXPECT_NE(last->error().text().find("ended inside a frame"), std::string::npos);
}

TEST(framer, raw_reads_are_cut_at_the_maximum) {
  framer f(framing::raw(4));
  f.feed(bytes_of("abcdefghij"));
  EXPECT_EQ(all_frames(f), (std::vector<std::string>{"abcd", "efgh", "ij"}));
}

TEST(framer, encode_frames_for_writing_and_refuses_what_cannot_be_framed) {
  auto line = framer::encode(framing::lines(8), bytes_of("hi"));
  ASSERT_TRUE(line);
  EXPECT_EQ(text(*line), "hi\n");
  EXPECT_FALSE(framer::encode(framing::lines(8), bytes_of("a\nb")));
  auto prefixed = framer::encode(framing::u16_length(), bytes_of("abc"));
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(text(*prefixed), std::string("\x00\x03"
                                         "abc",
                                         5));
  EXPECT_FALSE(framer::encode(framing::u16_length(1 << 20), std::vector<std::byte>(70000)));
  auto round = framer::encode(framing::u32_length(), bytes_of("payload"));
  ASSERT_TRUE(round);
  framer back(framing::u32_length());
  back.feed(*round);
  EXPECT_EQ(all_frames(back), (std::vector<std::string>{"payload"}));
}

}  // namespace
