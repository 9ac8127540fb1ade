// http_reply: what a protocol's handler answers to one HTTP request, for the
// gateway's HTTP server to write (JSON-RPC at /jsonrpc, XML-RPC at /RPC2).
// Owns nothing else. A handler is called on a server thread, must not block,
// and calls its `done` exactly once, from any thread.
//
//   void handle(const methods& m, http_request req, reply_sink done);   // a protocol's entry point
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::gateway {

struct http_request {
  std::string target;        // "/RPC2"
  std::string content_type;  // as sent, may be empty
  std::string body;          // at most the server's max_request_bytes
  // Every header field as sent (within the server's max_header_bytes); the
  // protocols that need one (the SQS endpoint's X-Amz-Target) look it up with header().
  std::vector<std::pair<std::string, std::string>> headers{};

  // The first field named `name` (case-insensitive), empty if none.
  [[nodiscard]] std::string_view header(std::string_view name) const noexcept {
    for (const auto& [field, value] : headers) {
      if (field.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; i < name.size() && same; ++i) {
        const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
        same = lower(field[i]) == lower(name[i]);
      }
      if (same) return value;
    }
    return {};
  }
};

struct http_reply {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  // false: close the connection after this reply (the protocol says so, e.g. a body that cannot be framed).
  bool keep_alive = true;
  // More header fields (the SQS endpoint's x-amzn-RequestId); a name or value
  // with a line break makes the reply a 500 instead.
  std::vector<std::pair<std::string, std::string>> headers{};
};

using reply_sink = std::function<void(http_reply)>;

}  // namespace troupe::gateway
