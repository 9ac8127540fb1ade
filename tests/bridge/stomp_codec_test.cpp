// STOMP 1.2 frames (net/bridge/include/troupe/bridge/stomp_codec.hpp): the
// spec's grammar both ways, heart-beats, pieces, and every way a broker's
// bytes can be wrong (each a clear error, nothing decoded after it).
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <troupe/bridge/stomp_codec.hpp>
#include <vector>

namespace {

namespace stomp = troupe::bridge::stomp;
using namespace std::string_literals;

std::vector<stomp::frame> decode_all(std::string_view bytes, stomp::decoder& d) {
  d.feed(bytes);
  std::vector<stomp::frame> out;
  while (auto f = d.next()) out.push_back(std::move(*f));
  return out;
}

TEST(stomp_codec, a_frame_round_trips_with_escaped_headers_and_a_body_holding_nul) {
  stomp::frame f{"SEND", {{"destination", "/queue/a:b"}, {"note", "line1\nline2\\end\r"}}, "a\0b"s};
  const std::string wire = stomp::encode(f);
  EXPECT_NE(wire.find("destination:/queue/a\\cb\n"), std::string::npos) << wire;
  EXPECT_NE(wire.find("content-length:3\n"), std::string::npos);
  stomp::decoder d;
  const std::vector<stomp::frame> got = decode_all(wire, d);
  ASSERT_EQ(got.size(), 1u) << d.error();
  EXPECT_EQ(got[0].command, "SEND");
  EXPECT_EQ(got[0].header("destination"), "/queue/a:b");
  EXPECT_EQ(got[0].header("note"), "line1\nline2\\end\r");
  EXPECT_EQ(got[0].body, "a\0b"s);
}

TEST(stomp_codec, connect_frames_carry_their_headers_unescaped) {
  const std::string wire = stomp::encode({"CONNECT", {{"passcode", "a\\b:c"}}, {}});
  EXPECT_NE(wire.find("passcode:a\\b:c\n"), std::string::npos) << wire;
  stomp::decoder d;
  const std::vector<stomp::frame> got = decode_all("CONNECTED\nsession:ID\\cx\n\n"s + '\0', d);
  ASSERT_EQ(got.size(), 1u) << d.error();
  EXPECT_EQ(got[0].header("session"), "ID\\cx") << "CONNECTED is not unescaped";
}

TEST(stomp_codec, heart_beats_crlf_and_a_body_without_content_length_decode_in_any_pieces) {
  const std::string stream = "\n\r\nMESSAGE\r\nack:1\r\ndestination:/queue/q\r\n\r\nhello"s + '\0' + "\n\n" +
                             "RECEIPT\nreceipt-id:r7\n\n"s + '\0';
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    stomp::decoder d;
    std::vector<stomp::frame> got;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      d.feed(std::string_view(stream).substr(at, piece));
      while (auto f = d.next()) got.push_back(std::move(*f));
    }
    ASSERT_FALSE(d.failed()) << "piece " << piece << ": " << d.error();
    ASSERT_EQ(got.size(), 2u) << "piece " << piece;
    EXPECT_EQ(got[0].command, "MESSAGE");
    EXPECT_EQ(got[0].header("ack"), "1");
    EXPECT_EQ(got[0].body, "hello");
    EXPECT_EQ(got[1].header("receipt-id"), "r7");
    EXPECT_EQ(d.heart_beats(), 4u) << "piece " << piece;
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(stomp_codec, the_first_of_repeated_headers_counts) {
  stomp::decoder d;
  const std::vector<stomp::frame> got = decode_all("MESSAGE\nack:first\nack:second\n\n"s + '\0', d);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header("ack"), "first");
  EXPECT_EQ(got[0].headers.size(), 2u);
}

struct bad_case {
  const char* name;
  std::string bytes;
  std::string error_has;
};

TEST(stomp_codec, each_malformed_input_is_an_error_that_names_it_and_ends_decoding) {
  stomp::limits small;
  small.max_frame_bytes = 64;
  small.max_headers = 2;
  small.max_header_line = 32;
  const std::vector<bad_case> cases{
      {"unknown command", "HELLO\n\n"s + '\0', "unknown command 'HELLO'"},
      {"header without colon", "MESSAGE\nnocolon\n\n"s + '\0', "without ':'"},
      {"undefined escape", "MESSAGE\na:b\\t\n\n"s + '\0', "undefined escape"},
      {"content-length not a number", "MESSAGE\ncontent-length:12x\n\n"s + '\0', "not a number"},
      {"no NUL after the body", "MESSAGE\ncontent-length:2\n\nabX", "no NUL"},
      {"too many headers", "MESSAGE\na:1\nb:2\nc:3\n\n"s + '\0', "more than 2 headers"},
      {"a long header line", "MESSAGE\n" + std::string(40, 'h') + ":v\n\n" + '\0', "header line over 32"},
      {"content-length over the limit", "MESSAGE\ncontent-length:100\n\n", "over the frame limit"},
      {"a body over the limit without content-length", "SEND\n\n" + std::string(80, 'x'), "frame over 64"},
      {"a bare CR between frames", "\rMESSAGE\n\n"s + '\0', "CR not followed by LF"},
      {"a CR inside a raw header", "CONNECTED\nversion:1\r2\n\n"s + '\0', "CR inside a header line"},
  };
  for (const bad_case& c : cases) {
    stomp::decoder d(small);
    const std::vector<stomp::frame> got = decode_all(c.bytes, d);
    EXPECT_TRUE(got.empty()) << c.name;
    ASSERT_TRUE(d.failed()) << c.name;
    EXPECT_NE(d.error().find(c.error_has), std::string::npos) << c.name << ": " << d.error();
    d.feed("RECEIPT\nreceipt-id:1\n\n"s + '\0');
    EXPECT_FALSE(d.next()) << c.name << ": nothing decodes after a failure";
    EXPECT_EQ(d.buffered(), 0u) << c.name << ": a failed decoder holds nothing";
  }
}

TEST(stomp_codec, a_slow_endless_body_is_refused_at_the_limit_not_buffered) {
  stomp::limits lim;
  lim.max_frame_bytes = 4096;
  stomp::decoder d(lim);
  d.feed("MESSAGE\n\n");
  std::size_t fed = 0;
  while (!d.failed() && fed < 1 << 20) {
    d.feed(std::string(100, 'x'));
    fed += 100;
    EXPECT_FALSE(d.next());
  }
  ASSERT_TRUE(d.failed());
  EXPECT_LE(fed, 4200u) << "refused only after " << fed << " bytes";
}

}  // namespace
