// stomp_codec: STOMP 1.2 frames (https://stomp.github.io/stomp-specification-1.2.html)
// to and from bytes — the ActiveMQ bridge's wire (docs/bridges.md). Owns: the
// frame grammar, header escaping, content-length, heart-beat EOLs between
// frames, and the limits that keep a hostile or broken broker from making us
// buffer without bound. May use: the standard library only. Fuzzed
// (tests/fuzz/fuzz_stomp.cpp).
//
//   stomp::decoder d({.max_frame_bytes = 1 << 20});
//   d.feed(bytes_from_socket);
//   while (auto f = d.next()) use(*f);          // whole frames, in order
//   if (d.failed()) close_connection(d.error());  // and nothing more is decoded
//
//   std::string wire = stomp::encode({"SEND", {{"destination", "/queue/a"}}, "body"});
//
// Decoding is strict where the spec is (a known command, "name:value" header
// lines, the NUL after the body, a content-length that is a number) and lenient
// where it allows (CR before LF; EOLs between frames are heart-beats; a
// repeated header: the first one counts, as the spec says). A header's value is
// unescaped (\r \n \c \\; any other escape is an error) except in CONNECT and
// CONNECTED frames, which the spec leaves unescaped. encode() always writes
// content-length for a body, so a body may hold NULs.
//
// Thread safety: a decoder belongs to one thread; encode() is stateless.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::bridge::stomp {

struct frame {
  std::string command;                                       // "MESSAGE", "SEND", ...
  std::vector<std::pair<std::string, std::string>> headers;  // in order, repeats kept
  std::string body;

  // The first value of `name` (the one that counts), if any.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
};

struct limits {
  std::size_t max_frame_bytes = 1 << 20;  // command, headers and body together
  std::size_t max_headers = 128;
  std::size_t max_header_line = 8 << 10;  // one header line, escapes included
};

// True for the frames either side may send (SEND, MESSAGE, ...).
bool known_command(std::string_view command) noexcept;

// The frame's bytes, NUL included. Escapes header names and values unless the
// command is CONNECT, STOMP or CONNECTED (where the spec forbids it; a CR, LF
// or ':' in a name there is the caller's bug and is replaced by '_').
std::string encode(const frame& f);

// A heart-beat: one EOL.
inline constexpr std::string_view heart_beat = "\n";

class decoder {
 public:
  explicit decoder(limits lim = {}) : limits_(lim) {}

  // Appends bytes read from the connection. After a failure, they are ignored.
  void feed(std::string_view bytes);
  // The next whole frame, or nothing if more bytes are needed or decoding failed.
  std::optional<frame> next();

  [[nodiscard]] bool failed() const noexcept { return !error_.empty(); }
  // Why decoding stopped ("frame over 1048576 bytes", "unknown command 'FOO'", ...).
  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  // Heart-beats (EOLs between frames) seen so far.
  [[nodiscard]] std::size_t heart_beats() const noexcept { return heart_beats_; }
  // Bytes fed and not yet part of a returned frame.
  [[nodiscard]] std::size_t buffered() const noexcept { return buffer_.size() - start_; }

 private:
  std::optional<frame> fail(std::string why);

  limits limits_;
  std::string buffer_;
  std::size_t start_ = 0;  // the first byte not yet consumed
  // The current frame's body has no NUL before this offset (see next()).
  std::size_t nul_searched_ = 0;
  std::string error_;
  std::size_t heart_beats_ = 0;
};

}  // namespace troupe::bridge::stomp
