// Fuzz target: cutting TCP frames off a byte stream (next_frame) and writing
// them (append_frame), net/wire/wire.hpp. The input is what a peer sent.
//
// Invariants, for a 1 MiB limit and for a tiny one taken from the first byte:
// - a frame lies inside the buffer, right after the previous one, holds the
//   length its head declares, and re-encodes to exactly the bytes it came from;
// - the offset only moves forward, and only past a whole frame;
// - `defect` only for a declared length over the limit, `incomplete` only when
//   bytes are missing; the stream fed in pieces cuts into the same frames.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "wire/wire.hpp"

namespace {

using troupe::detail::frame_head_bytes;
using troupe::detail::frame_status;
using troupe::detail::frame_view;

struct cut_frame {
  std::uint32_t kind;
  std::vector<std::byte> body;
};

struct cut_result {
  std::vector<cut_frame> frames;
  frame_status last = frame_status::incomplete;  // what ended the cutting
  std::size_t consumed = 0;
};

std::uint32_t read_u32(const std::byte* p) {
  std::uint32_t value = 0;
  std::memcpy(&value, p, 4);
  return value;
}

// Cuts frames off `stream` from `offset` until it stops, checking each step.
void cut(std::span<const std::byte> stream, std::size_t& offset, std::size_t max_body, cut_result& result) {
  for (;;) {
    const std::size_t before = offset;
    TROUPE_FUZZ_CHECK(before <= stream.size());
    const std::size_t available = stream.size() - before;
    frame_view frame;
    std::string defect;
    const frame_status status = troupe::detail::next_frame(stream, offset, max_body, frame, defect);
    result.last = status;
    if (status != frame_status::frame) {
      TROUPE_FUZZ_CHECK(offset == before);
      if (status == frame_status::defect) {
        // Only an over-long declared length is a defect, and it says so.
        TROUPE_FUZZ_CHECK(available >= frame_head_bytes);
        TROUPE_FUZZ_CHECK(read_u32(stream.data() + before) > max_body);
        TROUPE_FUZZ_CHECK(!defect.empty());
      } else {
        // Incomplete only when the head or the declared body is not all there.
        TROUPE_FUZZ_CHECK(defect.empty());
        TROUPE_FUZZ_CHECK(available < frame_head_bytes ||
                          (read_u32(stream.data() + before) <= max_body &&
                           available - frame_head_bytes < read_u32(stream.data() + before)));
      }
      return;
    }

    const std::uint32_t length = read_u32(stream.data() + before);
    TROUPE_FUZZ_CHECK(defect.empty());
    TROUPE_FUZZ_CHECK(length <= max_body);
    TROUPE_FUZZ_CHECK(frame.kind == read_u32(stream.data() + before + 4));
    TROUPE_FUZZ_CHECK(frame.body.size() == length);
    TROUPE_FUZZ_CHECK(frame.body.data() == stream.data() + before + frame_head_bytes);
    TROUPE_FUZZ_CHECK(offset == before + frame_head_bytes + length);
    TROUPE_FUZZ_CHECK(offset <= stream.size());

    // Round trip: the frame written again is the slice it was cut from, also
    // when the body is passed as a head and a body (split at a point the
    // input picks).
    const auto slice = stream.subspan(before, offset - before);
    std::vector<std::byte> written;
    troupe::detail::append_frame(written, frame.kind, frame.body);
    TROUPE_FUZZ_CHECK(std::ranges::equal(written, slice));
    const std::size_t split = length == 0 ? 0 : (frame.kind % (length + 1));
    std::vector<std::byte> split_written{std::byte{0x5a}};  // appending keeps what is there
    troupe::detail::append_frame(split_written, frame.kind, frame.body.first(split), frame.body.subspan(split));
    TROUPE_FUZZ_CHECK(split_written.size() == 1 + slice.size() && split_written[0] == std::byte{0x5a});
    TROUPE_FUZZ_CHECK(std::ranges::equal(std::span(split_written).subspan(1), slice));

    result.frames.push_back({frame.kind, std::vector<std::byte>(frame.body.begin(), frame.body.end())});
  }
}

bool same_frames(const cut_result& a, const cut_result& b) {
  if (a.frames.size() != b.frames.size() || a.last != b.last || a.consumed != b.consumed) return false;
  for (std::size_t i = 0; i < a.frames.size(); ++i) {
    if (a.frames[i].kind != b.frames[i].kind || a.frames[i].body != b.frames[i].body) return false;
  }
  return true;
}

void check_stream(std::span<const std::byte> stream, std::size_t max_body, std::size_t piece_seed) {
  // All at once.
  cut_result whole;
  std::size_t offset = 0;
  cut(stream, offset, max_body, whole);
  whole.consumed = offset;

  // As a socket reader sees it: bytes arrive in pieces (1..16 bytes, sizes
  // drawn from the input), and frames are cut after each arrival. A frame must
  // not be cut before all of it arrived, nor missed once it has.
  cut_result pieces;
  std::size_t piece_offset = 0;
  std::size_t arrived = 0;
  std::size_t draw = piece_seed;
  while (arrived < stream.size() && pieces.last != frame_status::defect) {
    const std::size_t piece = 1 + (std::to_integer<std::size_t>(stream[draw % stream.size()]) + draw) % 16;
    ++draw;
    arrived = std::min(stream.size(), arrived + piece);
    cut(stream.first(arrived), piece_offset, max_body, pieces);
  }
  if (stream.empty()) cut(stream, piece_offset, max_body, pieces);
  pieces.consumed = piece_offset;
  TROUPE_FUZZ_CHECK(same_frames(whole, pieces));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto stream = troupe::fuzz::bytes_of(data, size);

  check_stream(stream, std::size_t{1} << 20, 0);
  // A tiny limit (0..63 bytes) makes defects reachable from short inputs.
  const std::size_t tiny = size == 0 ? 0 : data[0] % 64;
  check_stream(stream, tiny, tiny);

  // An offset past the end is the caller's bug, reported, never read from.
  std::size_t past = size + 1;
  frame_view frame;
  std::string defect;
  TROUPE_FUZZ_CHECK(troupe::detail::next_frame(stream, past, std::size_t{1} << 20, frame, defect) ==
                    frame_status::defect);
  TROUPE_FUZZ_CHECK(past == size + 1 && !defect.empty());
  return 0;
}
