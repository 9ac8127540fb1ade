// STOMP 1.2 frames (see stomp_codec.hpp).
#include "troupe/bridge/stomp_codec.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace troupe::bridge::stomp {

namespace {

constexpr std::array<std::string_view, 15> commands{"SEND",  "SUBSCRIBE", "UNSUBSCRIBE", "BEGIN",      "COMMIT",
                                                    "ABORT", "ACK",       "NACK",        "DISCONNECT", "CONNECT",
                                                    "STOMP", "CONNECTED", "MESSAGE",     "RECEIPT",    "ERROR"};

// CONNECT, STOMP and CONNECTED carry their headers unescaped (spec: "Value Encoding").
bool raw_headers(std::string_view command) noexcept {
  return command == "CONNECT" || command == "STOMP" || command == "CONNECTED";
}

void escape_into(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '\r':
        out += "\\r";
        break;
      case '\n':
        out += "\\n";
        break;
      case ':':
        out += "\\c";
        break;
      case '\\':
        out += "\\\\";
        break;
      default:
        out += c;
    }
  }
}

void raw_into(std::string& out, std::string_view text, bool is_name) {
  for (const char c : text) {
    const bool bad = c == '\r' || c == '\n' || (is_name && c == ':');
    out += bad ? '_' : c;
  }
}

// Undoes escape_into; false for an undefined escape or a lone backslash.
bool unescape(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (++i == text.size()) return false;
    switch (text[i]) {
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      case 'c':
        out += ':';
        break;
      case '\\':
        out += '\\';
        break;
      default:
        return false;
    }
  }
  return true;
}

// One line of `text` from `pos`: up to LF, without an optional CR before it.
// Nothing if no LF is there yet.
std::optional<std::string_view> line_at(std::string_view text, std::size_t pos, std::size_t& next) {
  const std::size_t lf = text.find('\n', pos);
  if (lf == std::string_view::npos) return std::nullopt;
  std::size_t end = lf;
  if (end > pos && text[end - 1] == '\r') --end;
  next = lf + 1;
  return text.substr(pos, end - pos);
}

}  // namespace

std::optional<std::string_view> frame::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

bool known_command(std::string_view command) noexcept {
  return std::find(commands.begin(), commands.end(), command) != commands.end();
}

std::string encode(const frame& f) {
  std::string out;
  out.reserve(f.command.size() + f.body.size() + 64);
  out += f.command;
  out += '\n';
  const bool raw = raw_headers(f.command);
  for (const auto& [name, value] : f.headers) {
    if (name == "content-length") continue;  // written below, from the body
    if (raw) {
      raw_into(out, name, true);
      out += ':';
      raw_into(out, value, false);
    } else {
      escape_into(out, name);
      out += ':';
      escape_into(out, value);
    }
    out += '\n';
  }
  if (!f.body.empty()) {
    out += "content-length:";
    out += std::to_string(f.body.size());
    out += '\n';
  }
  out += '\n';
  out += f.body;
  out += '\0';
  return out;
}

void decoder::feed(std::string_view bytes) {
  if (failed()) return;
  // Drop what earlier frames consumed before growing, so the buffer holds at
  // most one frame's worth beyond the limit check below.
  if (start_ > 0 && start_ >= buffer_.size() / 2) {
    buffer_.erase(0, start_);
    nul_searched_ = nul_searched_ > start_ ? nul_searched_ - start_ : 0;
    start_ = 0;
  }
  buffer_.append(bytes);
}

std::optional<frame> decoder::fail(std::string why) {
  error_ = std::move(why);
  buffer_.clear();
  start_ = 0;
  nul_searched_ = 0;
  return std::nullopt;
}

std::optional<frame> decoder::next() {
  if (failed()) return std::nullopt;
  const std::string_view text(buffer_);
  // Heart-beats: EOLs before a frame.
  while (start_ < text.size() && (text[start_] == '\n' || text[start_] == '\r')) {
    if (text[start_] == '\r') {
      if (start_ + 1 == text.size()) return std::nullopt;  // the LF may follow
      if (text[start_ + 1] != '\n') return fail("a CR not followed by LF between frames");
      ++start_;
    }
    ++start_;
    ++heart_beats_;
  }
  const std::size_t frame_start = start_;
  const std::size_t available = text.size() - frame_start;
  // The frame's head: the command line, the header lines, an empty line.
  std::size_t pos = frame_start;
  std::size_t next_pos = 0;
  const std::optional<std::string_view> command_line = line_at(text, pos, next_pos);
  if (!command_line) {
    if (available > limits_.max_header_line)
      return fail("a command line over " + std::to_string(limits_.max_header_line) + " bytes");
    return std::nullopt;
  }
  frame f;
  f.command = std::string(*command_line);
  if (!known_command(f.command)) {
    return fail("unknown command '" + f.command.substr(0, 32) + (f.command.size() > 32 ? "...'" : "'"));
  }
  const bool raw = raw_headers(f.command);
  pos = next_pos;
  std::optional<std::size_t> content_length;
  for (;;) {
    const std::optional<std::string_view> line = line_at(text, pos, next_pos);
    if (!line) {
      if (text.size() - pos > limits_.max_header_line) {
        return fail("a header line over " + std::to_string(limits_.max_header_line) + " bytes");
      }
      if (text.size() - frame_start > limits_.max_frame_bytes) {
        return fail("a frame over " + std::to_string(limits_.max_frame_bytes) + " bytes");
      }
      return std::nullopt;
    }
    if (line->size() > limits_.max_header_line) {
      return fail("a header line over " + std::to_string(limits_.max_header_line) + " bytes");
    }
    pos = next_pos;
    if (line->empty()) break;
    if (f.headers.size() == limits_.max_headers) {
      return fail("more than " + std::to_string(limits_.max_headers) + " headers");
    }
    // A CR only ends a line; inside one it must be escaped (and CONNECT's
    // unescaped headers cannot carry it at all).
    if (line->find('\r') != std::string_view::npos) return fail("a CR inside a header line");
    const std::size_t colon = line->find(':');
    if (colon == std::string_view::npos) return fail("a header line without ':'");
    std::string name;
    std::string value;
    if (raw) {
      name = std::string(line->substr(0, colon));
      value = std::string(line->substr(colon + 1));
    } else if (!unescape(line->substr(0, colon), name) || !unescape(line->substr(colon + 1), value)) {
      return fail("an undefined escape in header line '" + std::string(line->substr(0, 64)) + "'");
    }
    if (name == "content-length" && !f.header("content-length")) {
      std::size_t n = 0;
      const char* first = value.data();
      const char* last = value.data() + value.size();
      const auto [end, ec] = std::from_chars(first, last, n);
      if (ec != std::errc() || end != last || value.empty()) {
        return fail("content-length '" + value.substr(0, 32) + "' is not a number");
      }
      if (n > limits_.max_frame_bytes) {
        return fail("content-length " + value + " is over the frame limit of " +
                    std::to_string(limits_.max_frame_bytes) + " bytes");
      }
      content_length = n;
    }
    f.headers.emplace_back(std::move(name), std::move(value));
  }
  // The body: content-length octets then NUL, or up to the first NUL.
  const std::size_t head_bytes = pos - frame_start;
  std::size_t body_end = 0;
  if (content_length) {
    if (head_bytes + *content_length + 1 > limits_.max_frame_bytes) {
      return fail("a frame over " + std::to_string(limits_.max_frame_bytes) + " bytes");
    }
    if (text.size() - pos < *content_length + 1) return std::nullopt;
    body_end = pos + *content_length;
    if (text[body_end] != '\0')
      return fail("no NUL after the content-length's " + std::to_string(*content_length) + " bytes");
  } else {
    // A body without content-length arriving in pieces: look for the NUL only
    // in bytes not searched before (no rescan of a large body per piece).
    const std::size_t nul = text.find('\0', std::max(pos, nul_searched_));
    if (nul == std::string_view::npos) {
      nul_searched_ = text.size();
      if (text.size() - frame_start > limits_.max_frame_bytes) {
        return fail("a frame over " + std::to_string(limits_.max_frame_bytes) + " bytes");
      }
      return std::nullopt;
    }
    body_end = nul;
    if (body_end - frame_start + 1 > limits_.max_frame_bytes) {
      return fail("a frame over " + std::to_string(limits_.max_frame_bytes) + " bytes");
    }
  }
  f.body = std::string(text.substr(pos, body_end - pos));
  start_ = body_end + 1;
  nul_searched_ = 0;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
  }
  return f;
}

}  // namespace troupe::bridge::stomp
