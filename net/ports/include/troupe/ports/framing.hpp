// framing: how a stream port cuts the bytes it reads into messages for its
// owner, and how it frames what the owner writes. The bytes come from a program
// that is not troupe: nothing in them is trusted, every length is checked.
//
//   troupe::ports::framing f = troupe::ports::framing::lines(4096, /*utf8=*/true);
//   troupe::ports::framer cut(f);
//   cut.feed(bytes);
//   while (auto frame = cut.next()) { if (!*frame) fail((*frame).error()); else use(**frame); }
//
// Modes and their outcomes (docs/ports.md has the table):
//   raw        each read (at most max_frame bytes) is one message; nothing can be bad.
//   lines      one message per '\n'-terminated line, the '\n' removed; a line longer
//              than max_frame, or (if utf8) a line that is not valid UTF-8, is an
//              error: the port sends port_error and closes. A last line without '\n'
//              at end of stream is delivered as it is.
//   u16 / u32  a big-endian length, then that many bytes. A length over max_frame
//              is an error at once (before any of its bytes are buffered); a stream
//              that ends inside a frame (a prefix that lied) is an error at EOF.
// On output, lines appends '\n' (a line holding '\n' is refused), u16/u32 prepend
// the length (a frame over max_frame, or over 65535 for u16, is refused).
//
// Thread safety: a framer belongs to one port (one strand) at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe::ports {

struct framing {
  enum class kind : std::uint8_t { raw, lines, u16_length, u32_length };
  kind mode = kind::raw;
  // The largest message (raw: the largest read; lines: without the '\n';
  // length-prefixed: without the prefix).
  std::size_t max_frame = std::size_t{64} << 10;
  bool utf8 = false;  // lines only: refuse a line that is not valid UTF-8

  static framing raw(std::size_t max_read = std::size_t{64} << 10) { return {kind::raw, max_read, false}; }
  static framing lines(std::size_t max_line = std::size_t{64} << 10, bool utf8 = false) {
    return {kind::lines, max_line, utf8};
  }
  static framing u16_length(std::size_t max_frame = 65535) { return {kind::u16_length, max_frame, false}; }
  static framing u32_length(std::size_t max_frame = std::size_t{16} << 20) {
    return {kind::u32_length, max_frame, false};
  }
};

[[nodiscard]] bool valid_utf8(std::span<const std::byte> bytes) noexcept;

class framer {
 public:
  explicit framer(framing f) : framing_(f) {}

  // Appends bytes read from the stream.
  void feed(std::span<const std::byte> bytes);
  // The next complete frame; nullopt when more bytes are needed; an error when
  // the stream broke the framing's rules (the framer is then spent).
  [[nodiscard]] std::optional<expected<std::vector<std::byte>>> next();
  // At end of stream: the last frame (an unterminated line), nothing, or an
  // error (a length-prefixed frame cut short).
  [[nodiscard]] std::optional<expected<std::vector<std::byte>>> finish();
  // Bytes buffered and not yet cut into frames.
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - start_; }

  // Frames `bytes` for writing under framing `f`; an error if they cannot be.
  [[nodiscard]] static expected<std::vector<std::byte>> encode(const framing& f, std::vector<std::byte> bytes);

 private:
  void compact();

  framing framing_;
  std::vector<std::byte> buffer_;
  std::size_t start_ = 0;    // first byte not yet cut
  std::size_t scanned_ = 0;  // lines: bytes after start_ already searched for '\n'
  bool failed_ = false;
};

}  // namespace troupe::ports
