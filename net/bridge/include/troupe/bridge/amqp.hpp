// amqp: a RabbitMQ source and sink over AMQP 0-9-1 (rabbitmq-c, Debian's
// librabbitmq), on the bridge model of bridge.hpp (docs/bridges-amqp.md).
// A source consumes a queue into received<T> asks and basic.acks each message
// after its handler returned; a sink is an actor that publishes publish<T> with
// publisher confirms and answers `published` on the broker's basic.ack.
//
//   amqp::source_config in;  in.queue = "orders";  in.flow.max_in_flight = 16;  // = basic.qos prefetch
//   auto orders = sys.spawn<amqp::source<order>>(in, shop_ref);   // an actor: stopping it drains
//   auto out = sys.spawn<amqp::sink<order>>(amqp::sink_config{.exchange = "done"});
//   out.ask(bridge::publish<order>{o, "eu"}, 5s).get();            // returns once RabbitMQ confirmed it
//
// Design. rabbitmq-c is not thread-safe per connection, so each source and each
// sink owns one connection and one thread that alone touches it. Other threads
// (the actors' workers completing asks, the sink actor publishing) hand it work
// through a mutex-guarded queue and an eventfd; the thread poll()s the eventfd
// together with the connection's socket (amqp_get_sockfd), so an ack goes out as
// soon as its handler returned and a delivery is read as soon as it arrives —
// no polling interval trades latency against CPU, and no call blocks on the
// broker while work is waiting (reads are made with a zero timeout once poll()
// said the socket is readable, or rabbitmq-c has a frame buffered already).
//
// Dead letters: published to a dead-letter queue (declared, durable) through
// the default exchange with the reason in the header x-troupe-reason, on a
// second channel in confirm mode; the original is acked only when the broker
// confirmed the dead letter, so a lost connection between the two can duplicate
// a dead letter but never lose one. (basic.reject into an x-dead-letter-exchange
// would carry only "rejected", not why.)
//
// Thread safety: sources and sinks are actors (their refs from any thread);
// publisher's members from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "troupe/bridge/bridge.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::bridge::amqp {

// What a link tells about its connection, on its own thread (keep it short).
struct connection_event {
  enum class kind { connected, lost, gave_up };
  kind what = kind::connected;
  std::string text;  // the broker's or the library's words
};

struct connection_settings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";
  // TCP connect, the AMQP handshake and each synchronous method (declare, qos, ...).
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
  // AMQP heartbeats: a broker that stalls is noticed within about two of these. 0: off.
  std::chrono::seconds heartbeat = std::chrono::seconds(10);
  // After a lost connection (or a failed attempt) the link waits reconnect_backoff,
  // doubling per failed attempt up to max_reconnect_backoff.
  std::chrono::milliseconds reconnect_backoff = std::chrono::milliseconds(100);
  std::chrono::milliseconds max_reconnect_backoff = std::chrono::seconds(5);
  // Failed attempts in a row before the link gives up (its source stops; its
  // sink fails every publish with connection_lost). 0: never gives up.
  std::uint32_t max_reconnect_attempts = 0;
  // Called on the link's thread for each connect, loss and the final give-up
  // (besides a line on stderr); e.g. tell a supervising actor.
  std::function<void(const connection_event&)> on_event;
};

struct source_config {
  connection_settings connection;
  std::string queue;           // consumed; declared durable (unless passive_queue)
  bool passive_queue = false;  // true: must exist already (declared elsewhere, with its own arguments)
  // Not empty: declared (of exchange_type, durable) and the queue bound to it
  // under each binding key.
  std::string exchange;
  std::string exchange_type = "direct";
  std::vector<std::string> binding_keys;
  // Where dead letters go (declared durable); empty: queue + ".dead".
  std::string dead_letter_queue;
  // max_in_flight is the consumer prefetch (basic.qos): RabbitMQ sends no more
  // unacknowledged messages than that.
  source_settings flow;
};

struct sink_config {
  connection_settings connection;
  // Not empty: declared (of exchange_type, durable). Empty: the default
  // exchange, where the routing key is a queue's name.
  std::string exchange;
  std::string exchange_type = "direct";
  std::string routing_key;  // when publish<T>::key is empty
  bool persistent = true;   // delivery_mode 2: survives a broker restart on a durable queue
  std::string content_type = "application/json";
  // Publishes accepted but not yet written (while connecting), at most; more
  // fail at once with errc::mailbox_full.
  std::size_t max_waiting = 100000;
};

// A publisher's counts since it started; each a total on its own.
struct publisher_stats {
  std::uint64_t connects = 0;  // successful connections (1 while none was lost)
  std::uint64_t connection_losses = 0;
  std::uint64_t confirmed = 0;  // publishes the broker confirmed
  std::uint64_t refused = 0;    // publishes the broker nacked, or lost with the connection
};

// The broker half of a source: the connection, its thread, the settler that
// source_core calls. Used through source<T>.
class consumer_link final : public consumer {
 public:
  // `fail` stops the source: called when the link gave up reconnecting.
  consumer_link(source_config config, std::function<void(std::string)> fail);
  ~consumer_link() override;
  consumer_link(const consumer_link&) = delete;
  consumer_link& operator=(const consumer_link&) = delete;

  // Starts the thread; each message goes to core.deliver on it.
  void start(detail::core_port& core) override;
  // graceful: basic.cancel (no new deliveries) and a drain first. Then: sends
  // the settles already handed over, waits (briefly) for the dead letters'
  // confirms, closes the connection and joins the thread. What is not acked by
  // then RabbitMQ redelivers to the next consumer. Idempotent.
  void close(bool graceful, std::chrono::nanoseconds drain_timeout) override;
  [[nodiscard]] bridge::link_stats link() const override;

  void acknowledge(std::uint64_t token) override;
  void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from, const std::string& reason) override;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

// A source (bridge::source_actor): consumes `config.queue` into received<T>
// asks to `target`. sys.spawn<amqp::source<order>>(config, target).
template <class T, class Codec = default_codec<T>>
class source : public source_actor<T, Codec> {
 public:
  template <class P>
  source(source_config config, ref<P> target)
      : source_actor<T, Codec>(std::move(target), config.flow,
                               [config](std::function<void(std::string)> fail) -> std::shared_ptr<consumer> {
                                 return std::make_shared<consumer_link>(config, std::move(fail));
                               }) {}
};

// The broker half of a sink: a connection in confirm mode and its thread.
class publisher {
 public:
  explicit publisher(sink_config config);
  ~publisher();
  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;

  // Publishes `bytes`; `reply` is delivered on the broker's basic.ack, failed on
  // its basic.nack (errc::remote_fault) or a connection lost before the confirm
  // (errc::connection_lost: the message may or may not have been taken).
  void publish(std::string bytes, std::string routing_key, reply_promise<published> reply);
  bool wait_connected(std::chrono::milliseconds timeout);
  [[nodiscard]] publisher_stats stats() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

// A sink: spawn it with a sink_config; ask it publish<T>.
template <class T, class Codec = default_codec<T>>
class sink final : public actor<protocol<publish<T>>> {
 public:
  explicit sink(sink_config config) : publisher_(std::make_unique<publisher>(std::move(config))) {}
  void on(publish<T> message, reply_promise<published> reply) {
    publisher_->publish(Codec::encode(message.body), std::move(message.key), std::move(reply));
  }

 private:
  std::unique_ptr<publisher> publisher_;
};

}  // namespace troupe::bridge::amqp
