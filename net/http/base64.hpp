// Strict standard base64 (RFC 4648, with padding). Owns: base64. May use: std only.
//
//   std::string text = base64_encode("troupe");           // "dHJvdXBl"
//   std::optional<std::string> bytes = base64_decode(text); // nullopt if not strict base64
//
// Thread safety: stateless; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace troupe::detail {

std::string base64_encode(std::string_view bytes);
// Nothing unless `text` is whole 4-character groups of the standard alphabet,
// padded with '=' only at the very end.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace troupe::detail
