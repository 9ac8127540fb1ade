// bridge: the one model every broker bridge follows (docs/bridges.md). Owns:
// what an actor receives from a broker (received<T>: a request whose void
// reply is the acknowledgement), what it sends to one (publish<T>, answered
// with the broker's confirm), the codecs between bytes and T, and
// source_core — the broker-independent half of a source: decoding, the
// in-flight bound that is the backpressure, the ask to the actor, retries and
// the dead-letter decision. May use: troupe::runtime, Boost.JSON,
// Boost.Describe. Knows nothing of any broker: each bridge (kafka/, ...) owns
// its client library and calls source_core from its own fetch thread.
//
//   struct order { std::string id; std::int64_t cents; };
//   BOOST_DESCRIBE_STRUCT(order, (), (id, cents))
//   struct shop : troupe::actor<troupe::protocol<troupe::bridge::received<order>>> {
//     void on(const troupe::bridge::received<order>& m) { charge(m.body); }  // returns: acknowledged
//   };
//
// Delivery: at least once. A message is acknowledged (committed, acked,
// deleted) only after the actor's handler returned. A handler that throws (the
// actor fails; its supervisor restarts it), an actor that is down, or an ask
// that times out is a failed delivery: the source asks again, up to
// max_deliveries in all, backing off between tries; then the message goes to
// the bridge's dead-letter destination with the last error, and is
// acknowledged there. A message that does not decode goes to the dead-letter
// destination at once, with the decode error. While the source stops (a
// drain), a failed handler is not tried again: its message stays
// unacknowledged and the broker delivers it to the next consumer. A consumer process that dies
// loses nothing acknowledged: the broker redelivers what it had not
// (origin::delivery_count says so where the broker tells).
//
// Thread safety: source_core's members from any thread (the bridge's fetch
// thread, the actors' workers that complete asks, the timer thread).
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/describe/members.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/serialization.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::bridge {

using namespace std::chrono_literals;

// Where a broker message came from, as the receiving actor sees it.
struct origin {
  std::string broker;           // "kafka", "amqp", "stomp", "sqs"
  std::string destination;      // the topic or queue
  std::int32_t partition = -1;  // Kafka's partition; -1 elsewhere
  std::int64_t offset = -1;     // Kafka's offset; -1 elsewhere
  std::string key;              // Kafka's key, AMQP's routing key, SQS's message id
  // 1 on the first delivery; more when the broker says it redelivers (after a
  // consumer died) or when the source asks again after a failed handler.
  std::uint32_t delivery_count = 1;
  std::vector<std::pair<std::string, std::string>> headers;
};

// What a source sends its actor. Returning from the handler acknowledges the
// message; see the header comment for everything else.
template <class T>
struct received {
  T body;
  origin from;
  using reply = void;
};

// What an actor sends a sink: published when the broker confirmed it (a
// delivery report, a publisher confirm, a receipt), an error otherwise.
struct published {
  std::string destination;
  std::int32_t partition = -1;  // Kafka: where it landed
  std::int64_t offset = -1;
};
template <class T>
struct publish {
  T body;
  std::string key;  // Kafka's partitioning key, AMQP's routing key; empty: the sink's default
  using reply = published;
};

// --- codecs: bytes <-> T --------------------------------------------------------
// A codec is a type with
//   static expected<T> decode(std::string_view bytes);
//   static std::string encode(const T& value);
// decode never throws: bad bytes are an error (the message is dead-lettered).

// JSON through Boost.Describe (the gateways' one reflection mechanism): what
// other programs put on a broker.
template <class T>
struct json_codec {
  static expected<T> decode(std::string_view bytes) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(bytes, ec);
    if (ec) return error(errc::malformed_message, "not JSON: " + ec.message());
    boost::system::result<T> r = boost::json::try_value_to<T>(v);
    if (!r) return error(errc::malformed_message, "JSON of the wrong shape: " + r.error().message());
    return std::move(*r);
  }
  static std::string encode(const T& value) { return boost::json::serialize(boost::json::value_from(value)); }
};

// troupe's own binary serialization: troupe programs on both ends.
template <class T>
struct binary_codec {
  static expected<T> decode(std::string_view bytes) {
    return from_bytes<T>(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
  }
  static std::string encode(const T& value) {
    const std::vector<std::byte> b = to_bytes(value);
    return {reinterpret_cast<const char*>(b.data()), b.size()};  // NOLINT: bytes as chars, same object representation
  }
};

// The payload as it is.
struct text_codec {
  static expected<std::string> decode(std::string_view bytes) { return std::string(bytes); }
  static std::string encode(const std::string& value) { return value; }
};

template <class T>
using default_codec = std::conditional_t<std::is_same_v<T, std::string>, text_codec, json_codec<T>>;

// --- the source's half that knows no broker -----------------------------------------

struct source_settings {
  // Messages handed to the actor and not yet settled, at most: the source stops
  // fetching while this many are out (the backpressure).
  std::size_t max_in_flight = 64;
  // One handler's time, at most (the ask's timeout).
  std::chrono::nanoseconds handler_timeout = 30s;
  // Tries per message, the first included; then the dead-letter destination.
  std::uint32_t max_deliveries = 5;
  // The pause before the n-th retry: retry_backoff * 2^(n-1), at most max_backoff.
  std::chrono::nanoseconds retry_backoff = 100ms;
  std::chrono::nanoseconds max_backoff = 10s;
  // A graceful stop waits this long for the messages in flight.
  std::chrono::nanoseconds drain_timeout = 10s;
};

// The broker connection of a source, as its client sees it. Counts since the
// source started; a field the broker's client does not track stays 0 (Kafka:
// librdkafka reconnects by itself and reports through broker_error events).
struct link_stats {
  bool connected = false;      // consuming now (subscribed, or in the group)
  std::uint64_t connects = 0;  // connections established (1 while none was lost)
  std::uint64_t connection_losses = 0;
  std::uint64_t settles_sent = 0;   // acknowledgements written to the broker (a dead letter's original too)
  std::uint64_t stale_settles = 0;  // settles dropped: their connection was lost, the broker redelivers
  std::uint64_t dead_letters = 0;   // dead letters the broker confirmed
  std::uint64_t fetch_calls = 0;    // pulls answered, where the client pulls (SQS's ReceiveMessage)
  std::uint64_t settle_calls = 0;   // calls that carried settles, where several go in one (SQS's batched deletes)
  std::string last_error;           // why the last connection ended; "" if none did
};

// Counts since the source started. Relaxed counters: each is a total on its own.
struct source_stats {
  std::uint64_t delivered = 0;      // messages fetched from the broker
  std::uint64_t acknowledged = 0;   // settled after a handler returned
  std::uint64_t retried = 0;        // asks made again after a failed handler
  std::uint64_t dead_lettered = 0;  // sent to the dead-letter destination (handler failures and decode errors)
  std::uint64_t decode_errors = 0;  // of which: did not decode
  std::uint64_t redelivered = 0;    // the broker said it delivered them before
  std::size_t in_flight = 0;
  link_stats link{};  // filled in by the source actor (source_core knows no broker)
};

// The pause before asking again after `failed_tries` failed tries:
// retry_backoff * 2^(failed_tries - 1), at most max_backoff.
std::chrono::nanoseconds retry_pause(const source_settings& s, std::uint32_t failed_tries) noexcept;

// What the broker does for source_core (the bridge implements it; the calls
// come from any thread, the bridge serializes them onto its client as the
// library requires).
struct settler {
  settler() = default;
  settler(const settler&) = delete;
  settler& operator=(const settler&) = delete;
  virtual ~settler() = default;
  // The handler returned: acknowledge (commit) the message.
  virtual void acknowledge(std::uint64_t token) = 0;
  // Retries are spent, or it did not decode: put `bytes` where dead letters go
  // with the reason, then acknowledge the original.
  virtual void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                           const std::string& reason) = 0;
};

template <class T, class Codec = default_codec<T>>
class source_core {
 public:
  // `broker` is shared with the asks in flight: one that completes after a
  // drain gave up still settles through it.
  template <class P>
  source_core(troupe::system& sys, ref<P> target, source_settings s, std::shared_ptr<settler> broker)
      : state_(std::make_shared<shared>(sys, s, std::move(broker))) {
    static_assert(accepts<P, received<T>>, "troupe::bridge: the target's protocol must accept received<T>");
    state_->ask = [target = std::move(target)](received<T> m, std::chrono::nanoseconds timeout,
                                               std::function<void(expected<void>)> done) {
      target.ask(std::move(m), timeout, std::move(done));
    };
  }
  source_core(const source_core&) = delete;
  source_core& operator=(const source_core&) = delete;
  ~source_core() { (void)drain(std::chrono::nanoseconds::zero()); }

  // The fetch thread, before it fetches: waits until a slot is free, at most
  // `timeout`. False if none freed in time (fetch nothing; the broker keeps the
  // messages) or the source is stopping. A full source wakes its waiter when a
  // quarter of the slots are free (when one is, under 8 slots), not for each
  // slot: the fetch thread then delivers a batch per wake-up rather than one
  // message per futex wake and context switch, which under load cost more
  // than the message (bench/bridge_kafka_bench.cpp). Slots that free more
  // slowly than that (handlers stuck on most of them) are seen when `timeout`
  // ends, so keep it short (the Kafka source's poll_timeout).
  bool wait_for_slot(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(state_->mutex);
    const auto ready = [s = state_.get()] { return s->stopping || s->in_flight < s->config.max_in_flight; };
    // Checked before waiting: the fetch thread asks (with no timeout) several
    // times per message, and wait_for reads the clock first even when ready.
    const bool got =
        ready() || (timeout > std::chrono::nanoseconds::zero() && state_->changed.wait_for(lock, timeout, ready));
    return got && !state_->stopping;
  }

  // The fetch thread: one message from the broker. `token` is the bridge's own
  // handle for settling it (an offset, a delivery tag). Takes a slot even when
  // none is free (a broker that pushes more than asked is not refused).
  void deliver(std::uint64_t token, std::string bytes, origin from) {
    {
      std::lock_guard lock(state_->mutex);
      ++state_->in_flight;
    }
    state_->count(&counters::delivered);
    if (from.delivery_count > 1) state_->count(&counters::redelivered);
    expected<T> body = Codec::decode(bytes);
    if (!body) {
      state_->count(&counters::decode_errors);
      settle_dead(state_, token, bytes, from, "the message does not decode: " + body.error().to_string());
      return;
    }
    auto job = std::make_shared<attempt>(token, std::move(bytes), std::move(*body), std::move(from));
    try_once(state_, std::move(job));
  }

  // A graceful stop: no more slots; waits up to `timeout` for the messages in
  // flight to settle. True if none is left.
  bool drain(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(state_->mutex);
    state_->stopping = true;
    state_->changed.notify_all();
    return state_->changed.wait_for(lock, timeout, [s = state_.get()] { return s->in_flight == 0; });
  }

  [[nodiscard]] source_stats stats() const {
    source_stats out;
    out.delivered = state_->tally.delivered.load(std::memory_order_relaxed);
    out.acknowledged = state_->tally.acknowledged.load(std::memory_order_relaxed);
    out.retried = state_->tally.retried.load(std::memory_order_relaxed);
    out.dead_lettered = state_->tally.dead_lettered.load(std::memory_order_relaxed);
    out.decode_errors = state_->tally.decode_errors.load(std::memory_order_relaxed);
    out.redelivered = state_->tally.redelivered.load(std::memory_order_relaxed);
    std::lock_guard lock(state_->mutex);
    out.in_flight = state_->in_flight;
    return out;
  }

 private:
  struct counters {
    std::atomic<std::uint64_t> delivered{0}, acknowledged{0}, retried{0}, dead_lettered{0}, decode_errors{0},
        redelivered{0};
  };
  // Shared with the asks in flight: a completion that comes after the source
  // is gone (a drain that timed out) still finds it.
  struct shared {
    shared(troupe::system& s, source_settings c, std::shared_ptr<settler> b)
        : sys(&s), config(c), broker(std::move(b)) {}
    troupe::system* sys;
    source_settings config;
    std::shared_ptr<settler> broker;
    std::function<void(received<T>, std::chrono::nanoseconds, std::function<void(expected<void>)>)> ask;
    std::mutex mutex;
    std::condition_variable changed;  // a slot freed, or stopping
    std::size_t in_flight = 0;        // guarded by mutex
    bool stopping = false;            // guarded by mutex
    counters tally;
    void count(std::atomic<std::uint64_t> counters::*which) { (tally.*which).fetch_add(1, std::memory_order_relaxed); }
    bool is_stopping() {
      std::lock_guard lock(mutex);
      return stopping;
    }
    // A slot settled: wakes a full source's waiter once a quarter of the
    // slots are free (see wait_for_slot), and a drain at the last one.
    void release() {
      bool wake = false;
      {
        std::lock_guard lock(mutex);
        --in_flight;
        const std::size_t bound = config.max_in_flight;
        const std::size_t batch = std::max<std::size_t>(1, bound / 4);
        wake = in_flight == 0 || (bound >= batch && in_flight == bound - batch);
      }
      if (wake) changed.notify_all();
    }
  };
  // One message until it settles; its body is copied into each try.
  struct attempt {
    attempt(std::uint64_t t, std::string b, T v, origin o)
        : token(t), bytes(std::move(b)), body(std::move(v)), from(std::move(o)) {}
    std::uint64_t token;
    std::string bytes;
    T body;
    origin from;
    std::uint32_t tries = 0;
  };

  static void try_once(const std::shared_ptr<shared>& s, std::shared_ptr<attempt> job) {
    ++job->tries;
    received<T> m{job->body, job->from};
    m.from.delivery_count = job->from.delivery_count + job->tries - 1;
    s->ask(std::move(m), s->config.handler_timeout, [s, job](const expected<void>& r) {
      if (r) {
        s->count(&counters::acknowledged);
        s->broker->acknowledge(job->token);
        s->release();
        return;
      }
      if (job->tries >= s->config.max_deliveries) {
        settle_dead(s, job->token, job->bytes, job->from,
                    "failed " + std::to_string(job->tries) + " times, last: " + r.error().to_string());
        return;
      }
      if (s->is_stopping()) {
        // Stopping (a drain, or the source is gone): no more tries here; not
        // acknowledged, so the broker delivers it again to whoever consumes next.
        s->release();
        return;
      }
      s->count(&counters::retried);
      // Backoff on the system's timer thread, then ask again (no thread waits).
      // Fully qualified: a bridge's own troupe::bridge::detail must not hide it.
      (void)troupe::detail::call_after(*s->sys, retry_pause(s->config, job->tries), [s, job] { try_once(s, job); });
    });
  }

  static void settle_dead(const std::shared_ptr<shared>& s, std::uint64_t token, std::string_view bytes,
                          const origin& from, const std::string& reason) {
    s->count(&counters::dead_lettered);
    s->broker->dead_letter(token, bytes, from, reason);
    s->release();
  }

  std::shared_ptr<shared> state_;
};

// --- the source actor: one shape for every bridge ------------------------------------
// Every bridge's source is an actor (kafka::source<T>, amqp::source<T>,
// stomp::source<T>, sqs::source<T>), spawned like any other and supervised
// like any other: sys.spawn<amqp::source<order>>(settings, shop). Its own
// protocol:
struct stats_query {  // the counts so far, with the broker link's
  using reply = source_stats;
};
struct abandon {};      // stop now and settle nothing more: what a crash does (tests use it)
struct source_failed {  // from the bridge's own threads: stop with this error
  std::string reason;
};
using source_protocol = protocol<stats_query, abandon, source_failed>;

namespace detail {
// What a broker's fetch loop needs from source_core<T, Codec>, without T.
class core_port {
 public:
  core_port() = default;
  core_port(const core_port&) = delete;
  core_port& operator=(const core_port&) = delete;
  virtual ~core_port() = default;
  virtual bool wait_for_slot(std::chrono::nanoseconds timeout) = 0;
  virtual void deliver(std::uint64_t token, std::string bytes, origin from) = 0;
  virtual bool drain(std::chrono::nanoseconds timeout) = 0;
  [[nodiscard]] virtual source_stats stats() const = 0;
};

template <class T, class Codec>
class core_adapter final : public core_port {
 public:
  template <class P>
  core_adapter(troupe::system& sys, ref<P> target, source_settings s, std::shared_ptr<settler> broker)
      : core_(sys, std::move(target), s, std::move(broker)) {}
  bool wait_for_slot(std::chrono::nanoseconds timeout) override { return core_.wait_for_slot(timeout); }
  void deliver(std::uint64_t token, std::string bytes, origin from) override {
    core_.deliver(token, std::move(bytes), std::move(from));
  }
  bool drain(std::chrono::nanoseconds timeout) override { return core_.drain(timeout); }
  [[nodiscard]] source_stats stats() const override { return core_.stats(); }

 private:
  source_core<T, Codec> core_;
};
}  // namespace detail

// What a broker's client gives the source actor: the settler source_core
// settles through, and a fetch loop the actor starts and stops.
class consumer : public settler {
 public:
  // Starts fetching: each message to core.deliver. `core` outlives close().
  virtual void start(detail::core_port& core) = 0;
  // Stops fetching and disconnects. graceful: no new messages, then waits up
  // to drain_timeout for those in flight to settle (core.drain) and settles
  // them; otherwise settles nothing more (what is unacknowledged the broker
  // delivers again, as after a crash). Called once.
  virtual void close(bool graceful, std::chrono::nanoseconds drain_timeout) = 0;
  [[nodiscard]] virtual link_stats link() const { return {}; }
};

// Opens a bridge's consumer (connecting may happen later, on its own thread);
// `fail` stops the source with an error, from any thread. Throws when the
// settings are refused: the source actor fails with that reason.
using consumer_opener = std::function<std::shared_ptr<consumer>(std::function<void(std::string)> fail)>;

// The source actor. Starting opens the consumer; a normal stop or a shutdown
// drains (at most flow.drain_timeout; a worker waits that long, so a system
// with one worker should spawn sources with spawn_detached); a stop for an
// error, abandon{} or a kill settles nothing more.
template <class T, class Codec = default_codec<T>>
class source_actor : public actor<source_protocol> {
 public:
  template <class P>
  source_actor(ref<P> target, source_settings flow, consumer_opener open) : flow_(flow), open_(std::move(open)) {
    static_assert(accepts<P, received<T>>, "troupe::bridge: a source's target must accept received<T>");
    make_core_ = [target = std::move(target)](troupe::system& sys, const source_settings& s,
                                              std::shared_ptr<settler> broker) {
      return std::make_unique<detail::core_adapter<T, Codec>>(sys, target, s, std::move(broker));
    };
  }
  source_actor(const source_actor&) = delete;
  source_actor& operator=(const source_actor&) = delete;
  ~source_actor() { shut(false); }

  void on_start() {
    // The bridge's threads cannot stop the actor themselves: they tell it.
    consumer_ = open_([me = self()](std::string why) { (void)me.tell(source_failed{std::move(why)}); });
    core_ = make_core_(system(), flow_, consumer_);
    consumer_->start(*core_);
  }
  void on_stop(const exit_reason& why) {
    // Drain only on an orderly stop: after an error the consumer may be the
    // thing that is broken, and a restart redelivers what is not settled.
    shut(!abandoned_ && (why.what() == exit_reason::kind::normal || why.what() == exit_reason::kind::shutdown));
  }

  source_stats on(const stats_query&) const {
    if (!core_) return {};
    source_stats s = core_->stats();
    s.link = consumer_->link();
    return s;
  }
  void on(const abandon&) {
    abandoned_ = true;
    stop();
  }
  void on(const source_failed& f) { stop(exit_reason::error(f.reason)); }

 private:
  void shut(bool graceful) {
    if (consumer_) consumer_->close(graceful, flow_.drain_timeout);
    consumer_.reset();  // before the core: nothing delivers into it any more
    core_.reset();
  }

  source_settings flow_;
  consumer_opener open_;
  std::function<std::unique_ptr<detail::core_port>(troupe::system&, const source_settings&, std::shared_ptr<settler>)>
      make_core_;
  std::shared_ptr<consumer> consumer_;
  std::unique_ptr<detail::core_port> core_;
  bool abandoned_ = false;
};

}  // namespace troupe::bridge
