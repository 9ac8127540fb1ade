// bridge/sqs_signature: AWS Signature Version 4, which the SQS bridge signs
// every request with (troupe/bridge/sqs.hpp), so the same client works against
// real AWS and against any SQS endpoint that checks signatures. Owns the
// canonical request, the string to sign, the derived key and the
// Authorization header. May use: OpenSSL (in src/sqs_signature.cpp only).
//
//   sqs::credentials who{.access_key_id = "AKID...", .secret_access_key = "..."};
//   sqs::signature s = sqs::sign_v4({.method = "POST", .path = "/", .headers = {{"Host", "sqs.eu-west-1.amazonaws.com"},
//                                    {"X-Amz-Date", sqs::amz_date(now)}}, .payload = body,
//                                    .region = "eu-west-1", .service = "sqs"}, who);
//   request.set("Authorization", s.authorization);
//
// The caller passes every header it wants signed, `Host` and `X-Amz-Date`
// among them (and `X-Amz-Security-Token` for temporary credentials); the
// path and query are taken as already URI-encoded (the bridge signs "/" with
// no query: SQS's JSON protocol carries everything in the body).
//
// Thread safety: pure functions, any thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::bridge::sqs {

// AWS credentials. An empty access_key_id means "do not sign" (an endpoint
// that checks nothing, e.g. troupe's own on a private port).
struct credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials (STS); sent as X-Amz-Security-Token
};

struct signing_input {
  std::string_view method = "POST";
  std::string_view path = "/";  // canonical URI, already encoded
  std::string_view query;       // canonical query string (sorted, encoded); empty for SQS's JSON protocol
  std::vector<std::pair<std::string, std::string>> headers;  // every signed header, Host and X-Amz-Date included
  std::string_view payload;
  std::string_view region;
  std::string_view service = "sqs";
};

// Every step, so a failed check against AWS can be compared step by step.
struct signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "content-type;host;x-amz-date;x-amz-target"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header's value
};

// The X-Amz-Date header must be among input.headers: its value gives the date
// and the scope. An input without one is a programming error (std::invalid_argument).
[[nodiscard]] signature sign_v4(const signing_input& input, const credentials& who);

// "20150830T123600Z", UTC: the X-Amz-Date format.
[[nodiscard]] std::string amz_date(std::chrono::system_clock::time_point when);

// Lower-case hex of SHA-256(bytes).
[[nodiscard]] std::string sha256_hex(std::string_view bytes);

}  // namespace troupe::bridge::sqs
