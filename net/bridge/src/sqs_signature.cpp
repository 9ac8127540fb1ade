// AWS Signature Version 4 (troupe/bridge/sqs_signature.hpp), with OpenSSL's
// SHA-256 and HMAC. The steps and their names are AWS's ("Create a canonical
// request", "Create a string to sign", "Calculate the signature").
#include "troupe/bridge/sqs_signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <stdexcept>

namespace troupe::bridge::sqs {

namespace {

using digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

std::string hex(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[data[i] >> 4U]);    // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
    out.push_back(digits[data[i] & 0x0FU]);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  }
  return out;
}

digest hmac(std::string_view key, std::string_view data) {
  digest out{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out.data(), &size);
  return out;
}

std::string_view as_view(const digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};  // NOLINT: the digest's bytes as chars
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// A header value as AWS canonicalizes it: trimmed, inner runs of spaces made one.
std::string trimmed(std::string_view v) {
  std::string out;
  bool space = false;
  for (const char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d.data());
  return hex(d.data(), d.size());
}

std::string amz_date(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&t, &utc);
  std::array<char, 20> text{};
  const std::size_t n = std::strftime(text.data(), text.size(), "%Y%m%dT%H%M%SZ", &utc);
  return {text.data(), n};
}

signature sign_v4(const signing_input& input, const credentials& who) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(input.headers.size());
  std::string date_time;
  for (const auto& [name, value] : input.headers) {
    headers.emplace_back(lower(name), trimmed(value));
    if (headers.back().first == "x-amz-date") date_time = headers.back().second;
  }
  if (date_time.size() < 8) throw std::invalid_argument("sign_v4: the headers have no X-Amz-Date");
  std::sort(headers.begin(), headers.end());

  signature out;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ':' + value + '\n';
    if (!out.signed_headers.empty()) out.signed_headers += ';';
    out.signed_headers += name;
  }
  out.canonical_request = std::string(input.method) + '\n' + std::string(input.path) + '\n' + std::string(input.query) +
                          '\n' + canonical_headers + '\n' + out.signed_headers + '\n' + sha256_hex(input.payload);

  const std::string date = date_time.substr(0, 8);
  const std::string scope = date + '/' + std::string(input.region) + '/' + std::string(input.service) + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + date_time + '\n' + scope + '\n' + sha256_hex(out.canonical_request);

  const digest k_date = hmac("AWS4" + who.secret_access_key, date);
  const digest k_region = hmac(as_view(k_date), input.region);
  const digest k_service = hmac(as_view(k_region), input.service);
  const digest k_signing = hmac(as_view(k_service), "aws4_request");
  const digest sig = hmac(as_view(k_signing), out.string_to_sign);
  out.signature = hex(sig.data(), sig.size());
  out.authorization = "AWS4-HMAC-SHA256 Credential=" + who.access_key_id + '/' + scope +
                      ", SignedHeaders=" + out.signed_headers + ", Signature=" + out.signature;
  return out;
}

}  // namespace troupe::bridge::sqs
