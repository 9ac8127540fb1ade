// bridge/kafka: a Kafka source and sink on librdkafka, following the bridge
// model (troupe/bridge/bridge.hpp, docs/bridges.md). Both are actors, so a
// supervisor restarts them like any other child and their refs stay valid.
//
//   kafka::source_config in{.brokers = "k1:9092", .group = "shop", .topics = {"orders"},
//                               .dead_letter_topic = "orders.dlq"};
//   auto source = sys.spawn<kafka::source<order>>(in, shop_ref);        // shop gets received<order>
//   auto out = sys.spawn<kafka::sink<receipt>>(kafka::sink_config{.brokers = "k1:9092", .topic = "receipts"});
//   out.ask(publish<receipt>{r}, 5s);                                  // published{topic, partition, offset}
//
// The source: one consumer in a consumer group (enable.auto.commit=false,
// enable.auto.offset.store=false) and its own fetch thread. An offset is
// committed only when every message before it in its partition was settled
// (acknowledged by the handler's return, or written to the dead-letter topic):
// completions may come out of order, the commit never skips one. Messages of
// one partition reach the target in the partition's order (one sender, a FIFO
// mailbox); a retried message is asked again after later ones, so order holds
// for first deliveries only. The in-flight bound pauses the assigned partitions
// once full for a whole poll_timeout (a shorter wait for a slot is no pause:
// a pause drops librdkafka's prefetched messages): the fetch thread keeps
// calling rd_kafka_consumer_poll (bounded waits), so the consumer stays in
// its group however slow the handler is (max.poll.interval.ms counts time
// between polls, not handler time). On
// revocation the source waits, at most revoke_timeout, for the revoked
// partitions' messages in flight, commits what settled, then gives the
// partitions up. librdkafka reconnects by itself; its errors go to the events
// actor as broker_error and to stderr; a fatal one (or a dead-letter topic
// that refuses a message) stops the source with exit_reason::error, for its
// supervisor to restart it.
//
// Stopping: a normal stop or a shutdown drains (at most flow.drain_timeout:
// a worker thread waits that long, so a system with one worker should spawn
// the source with spawn_detached), then commits and leaves the group. A stop
// for an error, abandon{}, or a kill settles nothing more: what was not
// committed is delivered again to the group's next owner of the partition,
// which is what a crash does.
//
// Thread safety: the actors' refs from anywhere; everything else is internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "troupe/bridge/bridge.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::bridge::kafka {

using config_list = std::vector<std::pair<std::string, std::string>>;

struct source_config {
  std::string brokers;  // bootstrap.servers
  std::string group;    // group.id
  std::vector<std::string> topics;
  // Where dead letters go: the original bytes and key, the original headers,
  // and troupe.dead_letter.reason / .topic / .partition / .offset headers.
  // Empty: a dead letter is logged and dropped (and acknowledged).
  std::string dead_letter_topic;
  source_settings flow;  // in-flight bound, handler timeout, retries, drain
  // The fetch thread's longest wait in one poll, and between checks of a slot.
  std::chrono::milliseconds poll_timeout{100};
  // How often settled offsets are committed while consuming (also on revocation and on stop).
  std::chrono::milliseconds commit_interval{200};
  // On revocation, how long to wait for the revoked partitions' messages in flight.
  std::chrono::milliseconds revoke_timeout{5000};
  // More librdkafka properties (auto.offset.reset, session.timeout.ms, security...).
  // enable.auto.commit and enable.auto.offset.store are the source's: set here, they are refused.
  config_list config;
};

struct sink_config {
  std::string brokers;  // bootstrap.servers
  std::string topic;    // where publish<T> goes
  // A stop waits this long for the delivery reports of what is still queued;
  // what is left then is purged and its asks fail.
  std::chrono::milliseconds flush_timeout{10000};
  config_list config;  // more librdkafka properties (acks, linger.ms, compression...)
};

// What the source reports to the events actor, if one is given: each message
// the events actor's protocol accepts is told, the others skipped.
struct topic_partition {
  std::string topic;
  std::int32_t partition = -1;
  friend bool operator==(const topic_partition&, const topic_partition&) = default;
};
struct partitions_assigned {
  std::vector<topic_partition> partitions;
};
struct partitions_revoked {
  std::vector<topic_partition> partitions;
};
// librdkafka reported an error; it keeps reconnecting unless `fatal`.
struct broker_error {
  std::string text;
  bool fatal = false;
};

namespace detail {

using event = std::variant<partitions_assigned, partitions_revoked, broker_error>;

using bridge::detail::core_port;

// The consumer, its fetch thread and its dead-letter producer (src/kafka.cpp).
class consumer_engine;
struct consumer_hooks {
  std::function<void(event)> notify;      // to the events actor
  std::function<void(std::string)> fail;  // a fatal error: the source stops with it
};
// Creates the consumer and subscribes; throws std::runtime_error with
// librdkafka's words when the settings are refused. close(graceful) stops the
// fetch thread and leaves the group; a graceful one first drains the messages
// in flight (at most `drain_timeout`) and commits.
std::shared_ptr<consumer> open_consumer(const source_config& settings, consumer_hooks hooks);

// A librdkafka producer with its own poll thread for delivery reports (src/kafka_producer.cpp).
class producer;
using delivered = std::function<void(expected<published>)>;
// Throws std::runtime_error with librdkafka's words when the settings are refused.
std::shared_ptr<producer> open_producer(const std::string& brokers, const config_list& config);
// `done` runs exactly once: on the poll thread with the delivery report, or
// here when the message cannot be queued.
void produce(producer& p, const std::string& topic, const std::string& key, const std::string& value,
             const config_list& headers, delivered done);
// Waits up to `flush_timeout` for outstanding reports; the rest fail (purged).
void close(producer& p, std::chrono::milliseconds flush_timeout);

}  // namespace detail

// The source actor (bridge::source_actor): consumes settings.topics and asks
// `target` with received<T> for each message. `events`, if given, receives
// partitions_assigned / partitions_revoked / broker_error (those its protocol accepts).
template <class T, class Codec = default_codec<T>>
class source : public source_actor<T, Codec> {
 public:
  template <class P>
  source(source_config settings, ref<P> target)
      : source(std::move(settings), std::move(target), [](const detail::event&) {}) {}
  template <class P, class E>
  source(source_config settings, ref<P> target, ref<E> events)
      : source(std::move(settings), std::move(target), notifier(std::move(events))) {}

 private:
  template <class P>
  source(source_config settings, ref<P> target, std::function<void(detail::event)> notify)
      : source_actor<T, Codec>(std::move(target), settings.flow,
                               [settings, notify = std::move(notify)](std::function<void(std::string)> fail) {
                                 detail::consumer_hooks hooks;
                                 hooks.notify = notify;
                                 hooks.fail = [fail = std::move(fail)](const std::string& why) {
                                   fail("kafka source: " + why);
                                 };
                                 return detail::open_consumer(settings, std::move(hooks));
                               }) {}

  template <class E>
  static std::function<void(detail::event)> notifier(ref<E> events) {
    static_assert(accepts<E, partitions_assigned> || accepts<E, partitions_revoked> || accepts<E, broker_error>,
                  "troupe::bridge::kafka::source: the events actor accepts none of partitions_assigned, "
                  "partitions_revoked, broker_error");
    return [events = std::move(events)](detail::event e) {
      std::visit(
          [&events](auto& m) {
            if constexpr (accepts<E, std::remove_cvref_t<decltype(m)>>) (void)events.tell(std::move(m));
          },
          e);  // an lvalue: each alternative is moved out of it (e is this call's own copy)
    };
  }
};

// The sink actor: publish<T> is encoded with Codec and produced to
// settings.topic (keyed by its key, if any); the ask is answered with
// published{topic, partition, offset} from the delivery report, or fails with
// errc::broker_failed. A stop flushes, at most settings.flush_timeout.
template <class T, class Codec = default_codec<T>>
class sink : public actor<protocol<publish<T>>> {
 public:
  explicit sink(sink_config settings) : settings_(std::move(settings)) {}
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;
  ~sink() { shut(); }

  // Throws (the sink stops with the reason) when librdkafka refuses the settings.
  void on_start() { producer_ = detail::open_producer(settings_.brokers, settings_.config); }
  void on_stop() { shut(); }

  void on(publish<T> m, reply_promise<published> reply) {
    // delivered is a std::function (copyable); the promise is move-only.
    auto answer = std::make_shared<reply_promise<published>>(std::move(reply));
    detail::produce(*producer_, settings_.topic, m.key, Codec::encode(m.body), {}, [answer](expected<published> r) {
      if (r) {
        answer->deliver(std::move(*r));
      } else {
        answer->fail(r.error());
      }
    });
  }

 private:
  void shut() {
    if (producer_) detail::close(*producer_, settings_.flush_timeout);
    producer_.reset();
  }

  sink_config settings_;
  std::shared_ptr<detail::producer> producer_;
};

}  // namespace troupe::bridge::kafka
