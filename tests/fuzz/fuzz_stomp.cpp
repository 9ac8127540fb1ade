// Fuzz target: STOMP 1.2 frames as a broker (or anything on its port) sends
// them (net/bridge/include/troupe/bridge/stomp_codec.hpp). The first byte sets
// the piece size the rest is fed in; the rest is the stream.
//
// Invariants:
// - the stream fed whole and fed in pieces decodes into the same frames and
//   ends in the same state (failed with the same error, or not);
// - every decoded frame has a known command, at most max_headers headers and
//   re-encodes into bytes that decode to the same frame;
// - the decoder never holds more than the frame limit plus one piece, and a
//   failed decoder holds nothing and decodes nothing more.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <troupe/bridge/stomp_codec.hpp>
#include <vector>

#include "fuzz_check.hpp"

namespace {

namespace stomp = troupe::bridge::stomp;

struct outcome {
  std::vector<stomp::frame> frames;
  bool failed = false;
  std::string error;
};

bool same(const stomp::frame& a, const stomp::frame& b) {
  return a.command == b.command && a.headers == b.headers && a.body == b.body;
}

outcome decode(std::string_view stream, std::size_t piece, const stomp::limits& lim) {
  outcome out;
  stomp::decoder d(lim);
  for (std::size_t at = 0; at < stream.size(); at += piece) {
    d.feed(stream.substr(at, piece));
    while (auto f = d.next()) out.frames.push_back(std::move(*f));
    TROUPE_FUZZ_CHECK(d.buffered() <= lim.max_frame_bytes + piece);
    if (d.failed()) {
      TROUPE_FUZZ_CHECK(d.buffered() == 0);
      TROUPE_FUZZ_CHECK(!d.error().empty());
    }
  }
  out.failed = d.failed();
  out.error = d.error();
  if (out.failed) {
    d.feed(std::string("RECEIPT\nreceipt-id:x\n\n") + '\0');
    TROUPE_FUZZ_CHECK(!d.next().has_value());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);  // NOLINT: bytes as chars
  stomp::limits lim;
  lim.max_frame_bytes = 4096;
  lim.max_headers = 16;
  lim.max_header_line = 512;
  const outcome whole = decode(stream, stream.empty() ? 1 : stream.size(), lim);
  const outcome pieces = decode(stream, piece, lim);
  TROUPE_FUZZ_CHECK(whole.failed == pieces.failed);
  TROUPE_FUZZ_CHECK(whole.frames.size() == pieces.frames.size());
  for (std::size_t i = 0; i < whole.frames.size(); ++i) {
    const stomp::frame& f = whole.frames[i];
    TROUPE_FUZZ_CHECK(same(f, pieces.frames[i]));
    TROUPE_FUZZ_CHECK(stomp::known_command(f.command));
    TROUPE_FUZZ_CHECK(f.headers.size() <= lim.max_headers);
    // Re-encoded (content-length is written from the body), it decodes the same,
    // content-length aside.
    stomp::decoder again;
    again.feed(stomp::encode(f));
    const std::optional<stomp::frame> back = again.next();
    TROUPE_FUZZ_CHECK(back.has_value());
    TROUPE_FUZZ_CHECK(back->command == f.command && back->body == f.body);
    std::vector<std::pair<std::string, std::string>> kept;
    for (const auto& h : f.headers) {
      if (h.first != "content-length") kept.push_back(h);
    }
    std::vector<std::pair<std::string, std::string>> got;
    for (const auto& h : back->headers) {
      if (h.first != "content-length") got.push_back(h);
    }
    TROUPE_FUZZ_CHECK(kept == got);
  }
  return 0;
}
