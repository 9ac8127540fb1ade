// bridge/sqs: a source and a sink for an Amazon SQS endpoint (real AWS, or
// troupe's own troupe/bridge/sqs_endpoint.hpp), following the bridge model
// (troupe/bridge/bridge.hpp, docs/bridges.md). Speaks SQS's JSON protocol
// (POST /, X-Amz-Target: AmazonSQS.<Op>) over Boost.Beast, HTTP or HTTPS
// (OpenSSL), and signs every request with AWS Signature V4
// (troupe/bridge/sqs_signature.hpp). May use: troupe::bridge, Boost.Beast,
// Boost.JSON, OpenSSL. Not troupe::durable: a user of real SQS pulls in no SQLite.
//
//   sqs::source_config in{.queue_url = "https://sqs.eu-west-1.amazonaws.com/123456789012/orders",
//                             .dead_letter_queue_url = ".../orders-dlq"};
//   in.connection.region = "eu-west-1"; in.connection.auth = {.access_key_id = ..., .secret_access_key = ...};
//   auto source = sys.spawn<sqs::source<order>>(in, shop_ref);          // shop gets received<order>
//   auto out = sys.spawn<sqs::sink<receipt>>(sqs::sink_config{.queue_url = ".../receipts"});
//   out.ask(publish<receipt>{r}, 5s);                                   // published{queue url}
//
// The source: a fetch thread long-polls ReceiveMessage (WaitTimeSeconds =
// wait_time, MaxNumberOfMessages = the free in-flight slots, at most 10,
// VisibilityTimeout = visibility_timeout) only once source_core has a slot; a
// settle thread deletes what the handlers acknowledged, several at a time with
// DeleteMessageBatch when they pile up (batch_deletes). Dead letters are
// SendMessage'd to dead_letter_queue_url with the reason in the message
// attribute troupe.dead_letter.reason (and troupe.dead_letter.queue,
// troupe.dead_letter.message_id), then the original is deleted; with no
// dead-letter queue the dead letter is logged to stderr and deleted. A
// message's visibility timeout must outlast its handler (a message whose
// timeout runs out while its handler works is delivered again: at least once);
// the source refuses a visibility_timeout not above flow.handler_timeout.
// HTTP errors, refused connections, timeouts, bodies that are not JSON or of
// the wrong shape: the connection is dropped and the call retried with
// backoff, counted in link_stats; the source never stops for them. A
// dead-letter queue that refuses a message (an SQS error answer, not a
// connection failure) stops the source with exit_reason::error, for its
// supervisor: a restart redelivers rather than lose the dead letter.
//
// Stopping: a normal stop or a shutdown drains (no more fetches, at most
// flow.drain_timeout for the messages in flight, then their deletes are sent:
// a worker thread waits that long, so a one-worker system spawns the source
// with spawn_detached). A stop for an error, abandon{} or a kill settles
// nothing more: what was not deleted comes back when its visibility timeout
// ends, as after a crash.
//
// Thread safety: the actors' refs from anywhere; everything else is internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "troupe/bridge/bridge.hpp"
#include "troupe/bridge/sqs_signature.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::bridge::sqs {

// How to reach the endpoint; shared by the source and the sink.
struct connection_settings {
  // "http://127.0.0.1:9324" or "https://sqs.eu-west-1.amazonaws.com". Empty:
  // the queue URL's scheme://host[:port].
  std::string endpoint;
  std::string region = "us-east-1";
  credentials auth;  // empty access_key_id: requests are not signed
  std::chrono::milliseconds connect_timeout{5000};
  // One request's answer, at most, beyond a long poll's own wait.
  std::chrono::milliseconds request_timeout{10000};
  // After a failed call: reconnect_backoff, doubling up to max_reconnect_backoff.
  std::chrono::milliseconds reconnect_backoff{50};
  std::chrono::milliseconds max_reconnect_backoff{2000};
  // A response larger than this is an error (the connection is dropped).
  // Ten 256 KiB messages with JSON escaping fit.
  std::size_t max_response_bytes = 16U << 20U;
};

struct source_config {
  std::string queue_url;
  // Where dead letters go (handler failures after flow.max_deliveries, bodies
  // that do not decode). Empty: logged to stderr and deleted.
  std::string dead_letter_queue_url;
  connection_settings connection;
  source_settings flow;  // in-flight bound, handler timeout, retries, drain
  // ReceiveMessage's WaitTimeSeconds (0..20): the long poll.
  std::chrono::seconds wait_time{20};
  // ReceiveMessage's VisibilityTimeout: longer than a handler takes with its
  // retries, or the message is delivered again while in flight.
  std::chrono::seconds visibility_timeout{60};
  // Delete acknowledged messages ten at a time (DeleteMessageBatch) when
  // several are waiting; false: one DeleteMessage each.
  bool batch_deletes = true;
};

struct sink_config {
  std::string queue_url;
  connection_settings connection;
  // Publishes waiting for the connection, at most; one more fails at once (errc::mailbox_full).
  std::size_t max_waiting = 10'000;
  // A stop waits this long for what is queued; what is left then fails.
  std::chrono::milliseconds flush_timeout{10000};
};

// The HTTP side of a source or sink. Relaxed counters: each a total on its own.
// A source reports them as source_stats::link (connects, connection_losses =
// failures, fetch_calls = receives, settle_calls = deletes, settles_sent =
// deleted, stale_settles = delete_refused, last_error); a sink answers
// http_stats_query with them.
struct http_stats {
  bool connected = false;            // the latest call was answered
  std::uint64_t connects = 0;        // TCP (TLS) connections made
  std::uint64_t failures = 0;        // calls that failed: connection, HTTP error, malformed answer
  std::uint64_t receives = 0;        // ReceiveMessage calls answered
  std::uint64_t deletes = 0;         // DeleteMessage / DeleteMessageBatch calls answered
  std::uint64_t deleted = 0;         // messages deleted
  std::uint64_t delete_refused = 0;  // entries SQS refused to delete (an expired receipt handle): delivered again
  std::uint64_t sent = 0;            // SendMessage answered (the sink's publishes, the source's dead letters)
  std::string last_error;            // the latest failure's words
};

struct http_stats_query {
  using reply = http_stats;
};

namespace detail {

// The fetch and settle threads and their connections (src/sqs.cpp). Checks the
// settings (throws std::invalid_argument naming what is wrong); `fail` is
// called from the engine's threads with a reason the source must stop for.
std::shared_ptr<consumer> open_consumer(const source_config& settings, std::function<void(std::string)> fail);

// The sink's connection thread (src/sqs.cpp).
class publisher;
std::shared_ptr<publisher> open_publisher(const sink_config& settings);
// Answers `reply` on the connection thread after SendMessage's 200, or with
// errc::broker_failed (an SQS error) / errc::connection_lost.
void send(publisher& p, std::string body, reply_promise<published> reply);
void close(publisher& p, std::chrono::milliseconds flush_timeout);
http_stats stats(const publisher& p);

}  // namespace detail

// The source actor (bridge::source_actor): receives from settings.queue_url and asks `target` with
// received<T> for each message (origin: broker "sqs", destination the queue
// URL, key the MessageId, delivery_count SQS's ApproximateReceiveCount, headers
// the string message attributes).
template <class T, class Codec = default_codec<T>>
class source : public source_actor<T, Codec> {
 public:
  template <class P>
  source(source_config settings, ref<P> target)
      : source_actor<T, Codec>(std::move(target), settings.flow, [settings](std::function<void(std::string)> fail) {
          return detail::open_consumer(
              settings, [fail = std::move(fail)](const std::string& why) { fail("sqs source: " + why); });
        }) {}
};

// The sink actor: publish<T> is encoded with Codec and sent with SendMessage
// to settings.queue_url by the sink's connection thread (the actor's worker
// does not wait for the round trip); the ask is answered with
// published{queue url} after SQS's 200, or fails with errc::broker_failed (SQS
// answered with an error) or errc::connection_lost (no answer: the message may
// or may not have been taken). publish<T>::key is not used (SQS standard
// queues have no key). A stop sends what is queued, at most flush_timeout.
template <class T, class Codec = default_codec<T>>
class sink : public actor<protocol<publish<T>, http_stats_query>> {
 public:
  explicit sink(sink_config settings) : settings_(std::move(settings)) {}
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;
  ~sink() { shut(); }

  // Throws (the sink stops with the reason) when the settings are wrong.
  void on_start() { publisher_ = detail::open_publisher(settings_); }
  void on_stop() { shut(); }

  void on(publish<T> m, reply_promise<published> reply) {
    detail::send(*publisher_, Codec::encode(m.body), std::move(reply));
  }
  http_stats on(const http_stats_query&) const { return publisher_ ? detail::stats(*publisher_) : http_stats{}; }

 private:
  void shut() {
    if (publisher_) detail::close(*publisher_, settings_.flush_timeout);
    publisher_.reset();
  }

  sink_config settings_;
  std::shared_ptr<detail::publisher> publisher_;
};

}  // namespace troupe::bridge::sqs
