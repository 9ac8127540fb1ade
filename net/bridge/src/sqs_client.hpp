// The SQS bridge's HTTP half (private): one keep-alive connection to an SQS
// endpoint speaking the JSON protocol, every request signed (SigV4) when
// credentials are given. Used by one thread at a time (the fetch thread, the
// settle thread, the sink's connection thread each own one); cancel() is the
// one call another thread may make, to cut a long poll short on a stop.
//
// Everything the endpoint answers is untrusted: the status line and headers
// are bounded by Beast's parser limits, the body by max_response_bytes; a body
// that is not a JSON object is an error and the connection is dropped.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "troupe/bridge/sqs.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::bridge::sqs::detail {

// scheme://host[:port] of an endpoint or queue URL.
struct endpoint_address {
  bool tls = false;
  std::string host;
  std::string port;
};
// Refuses what is not http:// or https:// with a host (std::invalid_argument).
endpoint_address address_of(std::string_view url);

class sqs_client {
 public:
  explicit sqs_client(connection_settings settings);
  sqs_client(const sqs_client&) = delete;
  sqs_client& operator=(const sqs_client&) = delete;
  ~sqs_client();

  // One call: POST / with X-Amz-Target: AmazonSQS.<operation>. The answer's
  // JSON object on a 200; otherwise errc::broker_failed with SQS's
  // "<Code>: <message>" (an HTTP error), errc::connection_lost (no connection,
  // a timeout, cancel()), errc::malformed_message (an answer that is not a
  // JSON object, or too large). After any error the connection is closed; the
  // next call connects again. `extra_wait` is added to the request timeout (a
  // long poll's WaitTimeSeconds).
  [[nodiscard]] expected<boost::json::object> call(std::string_view operation, const boost::json::object& body,
                                                   std::chrono::nanoseconds extra_wait = {});

  // The caller found the answer of the wrong shape: close the connection
  // (the next call connects again), as for an answer that is not JSON.
  void drop_connection();

  // From any thread: the call in progress (and every later one) fails with
  // connection_lost. For a stop: the client is not used again.
  void cancel();

  // Connections made so far.
  [[nodiscard]] std::uint64_t connects() const noexcept { return connects_.load(std::memory_order_relaxed); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::atomic<std::uint64_t> connects_{0};
};

}  // namespace troupe::bridge::sqs::detail
