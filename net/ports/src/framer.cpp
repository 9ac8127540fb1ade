// framer: cutting untrusted bytes into frames (framing.hpp).
#include <algorithm>
#include <cstring>

#include "troupe/ports/framing.hpp"

namespace troupe::ports {

namespace {

error framing_error(std::string text) { return error(errc::malformed_message, std::move(text)); }

std::size_t prefix_size(framing::kind k) noexcept { return k == framing::kind::u16_length ? 2 : 4; }

}  // namespace

bool valid_utf8(std::span<const std::byte> bytes) noexcept {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    std::uint32_t min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0U) == 0xC0U) {
      extra = 1, code = c & 0x1FU, min = 0x80;
    } else if ((c & 0xF0U) == 0xE0U) {
      extra = 2, code = c & 0x0FU, min = 0x800;
    } else if ((c & 0xF8U) == 0xF0U) {
      extra = 3, code = c & 0x07U, min = 0x10000;
    } else {
      return false;
    }
    if (n - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(bytes[i + k]);
      if ((d & 0xC0U) != 0x80U) return false;
      code = (code << 6U) | (d & 0x3FU);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

void framer::feed(std::span<const std::byte> bytes) {
  compact();
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

void framer::compact() {
  // Moves the unread tail to the front once the consumed head is most of the buffer.
  if (start_ == 0) return;
  if (start_ == buffer_.size()) {
    buffer_.clear();
    start_ = 0;
    return;
  }
  if (start_ >= buffer_.size() / 2) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
}

std::optional<expected<std::vector<std::byte>>> framer::next() {
  if (failed_) return std::nullopt;
  const std::size_t available = buffer_.size() - start_;
  const std::byte* head = buffer_.data() + start_;
  switch (framing_.mode) {
    case framing::kind::raw: {
      if (available == 0) return std::nullopt;
      const std::size_t take = std::min(available, framing_.max_frame);
      std::vector<std::byte> frame(head, head + take);
      start_ += take;
      return frame;
    }
    case framing::kind::lines: {
      const std::byte* from = head + scanned_;
      const std::byte* end = head + available;
      const std::byte* newline = std::find(from, end, std::byte{'\n'});
      if (newline == end) {
        scanned_ = available;
        if (available > framing_.max_frame) {
          failed_ = true;
          return framing_error("a line longer than " + std::to_string(framing_.max_frame) + " bytes");
        }
        return std::nullopt;
      }
      const auto length = static_cast<std::size_t>(newline - head);
      if (length > framing_.max_frame) {
        failed_ = true;
        return framing_error("a line of " + std::to_string(length) + " bytes, over the maximum of " +
                             std::to_string(framing_.max_frame));
      }
      std::vector<std::byte> frame(head, newline);
      start_ += length + 1;
      scanned_ = 0;
      if (framing_.utf8 && !valid_utf8(frame)) {
        failed_ = true;
        return framing_error("a line that is not valid UTF-8");
      }
      return frame;
    }
    case framing::kind::u16_length:
    case framing::kind::u32_length: {
      const std::size_t prefix = prefix_size(framing_.mode);
      if (available < prefix) return std::nullopt;
      std::size_t length = 0;
      for (std::size_t k = 0; k < prefix; ++k) length = (length << 8U) | static_cast<unsigned char>(head[k]);
      if (length > framing_.max_frame) {
        failed_ = true;
        return framing_error("a frame of " + std::to_string(length) + " bytes, over the maximum of " +
                             std::to_string(framing_.max_frame));
      }
      if (available - prefix < length) return std::nullopt;
      std::vector<std::byte> frame(head + prefix, head + prefix + length);
      start_ += prefix + length;
      return frame;
    }
  }
  return std::nullopt;
}

std::optional<expected<std::vector<std::byte>>> framer::finish() {
  if (failed_) return std::nullopt;
  const std::size_t available = buffer_.size() - start_;
  if (available == 0) return std::nullopt;
  const std::byte* head = buffer_.data() + start_;
  failed_ = true;  // nothing more comes after the end
  switch (framing_.mode) {
    case framing::kind::raw:
    case framing::kind::lines: {
      std::vector<std::byte> frame(head, head + available);
      start_ = buffer_.size();
      if (framing_.mode == framing::kind::lines && framing_.utf8 && !valid_utf8(frame)) {
        return framing_error("a line that is not valid UTF-8");
      }
      return frame;
    }
    case framing::kind::u16_length:
    case framing::kind::u32_length:
      return framing_error("the stream ended inside a frame (" + std::to_string(available) +
                           " bytes of it, prefix included)");
  }
  return std::nullopt;
}

expected<std::vector<std::byte>> framer::encode(const framing& f, std::vector<std::byte> bytes) {
  switch (f.mode) {
    case framing::kind::raw:
      return bytes;
    case framing::kind::lines:
      if (std::find(bytes.begin(), bytes.end(), std::byte{'\n'}) != bytes.end()) {
        return error(errc::invalid_request, "a line to write holds a '\\n'");
      }
      if (bytes.size() > f.max_frame) {
        return error(errc::invalid_request, "a line of " + std::to_string(bytes.size()) + " bytes, over the maximum");
      }
      bytes.push_back(std::byte{'\n'});
      return bytes;
    case framing::kind::u16_length:
    case framing::kind::u32_length: {
      const std::size_t prefix = prefix_size(f.mode);
      const std::size_t limit = prefix == 2 ? std::min<std::size_t>(f.max_frame, 65535) : f.max_frame;
      if (bytes.size() > limit || bytes.size() > 0xFFFFFFFFU) {
        return error(errc::invalid_request, "a frame of " + std::to_string(bytes.size()) +
                                                " bytes, over the maximum of " + std::to_string(limit));
      }
      std::vector<std::byte> out(prefix + bytes.size());
      for (std::size_t k = 0; k < prefix; ++k) {
        out[k] = static_cast<std::byte>((bytes.size() >> (8U * (prefix - 1 - k))) & 0xFFU);
      }
      std::memcpy(out.data() + prefix, bytes.data(), bytes.size());
      return out;
    }
  }
  return bytes;
}

}  // namespace troupe::ports
