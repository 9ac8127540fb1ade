// stomp: the ActiveMQ bridge (any STOMP 1.2 broker) on the bridge model
// (bridge.hpp, docs/bridges.md). Owns: a STOMP session on its own Asio
// thread (connect, CONNECT/CONNECTED, heart-beats both ways, reconnecting
// with backoff), a source (SUBSCRIBE with client-individual acks, each MESSAGE
// to source_core, ACK after the handler returned, dead letters SENT to a
// destination of their own with the reason in a header and then ACKed), and a
// sink (SEND with a receipt: published on RECEIPT). May use: bridge.hpp,
// stomp_codec.hpp, Boost.Asio.
//
//   namespace stomp = troupe::bridge::stomp;
//   stomp::endpoint broker{.port = "61613"};
//   auto orders = sys.spawn<stomp::source<order>>(stomp::source_config{broker, "/queue/orders"}, shop);
//   auto out = sys.spawn<stomp::sink<order>>(stomp::sink_config{broker, "/queue/invoices"});
//
// Backpressure: the subscription's prefetch (ActiveMQ's activemq.prefetchSize,
// RabbitMQ's prefetch-count header) is source_settings::max_in_flight: the
// broker sends no more than that many unacknowledged messages.
// Connection loss (the broker restarted, a heart-beat missed, an ERROR frame):
// the session reconnects with backoff and subscribes again; the broker
// redelivers what was not acknowledged (ActiveMQ marks it redelivered:
// origin::delivery_count 2). Acknowledgements of messages from the lost
// connection are dropped: those messages come again. A dead letter whose
// receipt did not arrive before the loss may be sent twice.
//
// Thread safety: sources and sinks are actors; their refs from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "troupe/bridge/bridge.hpp"
#include "troupe/bridge/stomp_codec.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::bridge::stomp {

// Where the broker is, and how the session keeps its connection.
struct endpoint {
  std::string host = "127.0.0.1";
  std::string port = "61613";
  std::string login;
  std::string passcode;
  std::string virtual_host = "localhost";
  // Heart-beats both ways (the broker's answer may lengthen them); zero: none.
  std::chrono::milliseconds heart_beat{5000};
  std::chrono::nanoseconds connect_timeout = 10s;
  std::chrono::nanoseconds reconnect_backoff = 100ms;  // doubled per failed try, up to the next
  std::chrono::nanoseconds max_reconnect_backoff = 5s;
  limits frame_limits{};
};

struct source_config {
  endpoint connection;
  std::string destination;              // "/queue/orders"
  std::string dead_letter_destination;  // empty: destination + ".DLQ"
  source_settings flow{};               // max_in_flight is the subscription's prefetch
};

struct sink_config {
  endpoint connection;
  std::string destination;  // "/queue/invoices"
};

}  // namespace troupe::bridge::stomp

namespace troupe::bridge::detail {

// One STOMP session (stomp.cpp): its thread, its connection, its reconnects.
// The settler of a source: ACKs and dead letters come here from any thread.
class stomp_session final : public settler, public std::enable_shared_from_this<stomp_session> {
 public:
  struct subscription {
    std::string destination;
    std::string dead_letter_destination;
    std::size_t prefetch = 64;
    // The session's thread: one MESSAGE. `token` settles it.
    std::function<void(std::uint64_t token, std::string body, origin from)> on_message;
  };
  static std::shared_ptr<stomp_session> start(stomp::endpoint endpoint, std::optional<subscription> sub);
  ~stomp_session() override;
  stomp_session(const stomp_session&) = delete;
  stomp_session& operator=(const stomp_session&) = delete;

  // SEND with a receipt; `done` runs once, on the session's thread: when the
  // RECEIPT comes, or with the error that lost it (the connection, close()).
  void send(std::string destination, std::string body, std::vector<std::pair<std::string, std::string>> headers,
            std::function<void(expected<void>)> done);
  void acknowledge(std::uint64_t token) override;
  void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from, const std::string& reason) override;
  // Subscribes (a session with a subscription starts paused, so that whoever
  // takes its messages exists first).
  void resume();
  // No MESSAGE is passed on after it returns (ACKs still go out; the
  // subscription stays, so the broker keeps them valid).
  void pause();
  // Disconnects and joins the thread; sends in flight fail. Idempotent.
  void close();
  // Waits until connected, at most `timeout`.
  bool wait_connected(std::chrono::nanoseconds timeout);
  // connects: CONNECTED frames received; settles_sent: ACKs written;
  // stale_settles: ACKs dropped, their connection was lost.
  [[nodiscard]] link_stats stats() const;

  struct impl;
  explicit stomp_session(std::unique_ptr<impl> i);

 private:
  std::unique_ptr<impl> impl_;
};

// A source's broker half: the session subscribed, its messages to the core.
class stomp_consumer final : public consumer {
 public:
  explicit stomp_consumer(const stomp::source_config& c) {
    stomp_session::subscription sub;
    sub.destination = c.destination;
    sub.dead_letter_destination =
        c.dead_letter_destination.empty() ? c.destination + ".DLQ" : c.dead_letter_destination;
    sub.prefetch = c.flow.max_in_flight;
    // Runs on the session's thread, only after resume(): core_ is set by then
    // (resume() posts to that thread, which orders the write before the reads).
    sub.on_message = [this](std::uint64_t token, std::string body, origin from) {
      core_->deliver(token, std::move(body), std::move(from));
    };
    session_ = stomp_session::start(c.connection, std::move(sub));
  }
  stomp_consumer(const stomp_consumer&) = delete;
  stomp_consumer& operator=(const stomp_consumer&) = delete;
  ~stomp_consumer() override {
    try {
      session_->close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; what is unacknowledged is redelivered anyway
    }
  }

  void start(core_port& core) override {
    core_ = &core;
    session_->resume();
  }
  void close(bool graceful, std::chrono::nanoseconds drain_timeout) override {
    session_->pause();  // no MESSAGE passed on after this returns
    if (graceful && core_ != nullptr) (void)core_->drain(drain_timeout);
    session_->close();
  }
  [[nodiscard]] link_stats link() const override { return session_->stats(); }
  void acknowledge(std::uint64_t token) override { session_->acknowledge(token); }
  void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                   const std::string& reason) override {
    session_->dead_letter(token, bytes, from, reason);
  }

 private:
  std::shared_ptr<stomp_session> session_;
  core_port* core_ = nullptr;
};

}  // namespace troupe::bridge::detail

namespace troupe::bridge::stomp {

// A source (bridge::source_actor): SUBSCRIBEs to config.destination and asks
// `target` with received<T> for each MESSAGE; ACKs after the handler returned.
// sys.spawn<stomp::source<order>>(config, target).
template <class T, class Codec = default_codec<T>>
class source : public source_actor<T, Codec> {
 public:
  template <class P>
  source(source_config config, ref<P> target)
      : source_actor<T, Codec>(
            std::move(target), config.flow,
            [config](const std::function<void(std::string)>& /*fail: it reconnects for ever*/)
                -> std::shared_ptr<consumer> { return std::make_shared<bridge::detail::stomp_consumer>(config); }) {}
};

// A sink: an actor that SENDs each publish<T> to config.destination
// (persistent) and answers when the broker's RECEIPT comes
// (errc::connection_lost if the connection went first).
// sys.spawn<stomp::sink<invoice>>(config).
template <class T, class Codec = default_codec<T>>
class sink final : public actor<protocol<publish<T>>> {
 public:
  explicit sink(sink_config config) : config_(std::move(config)) {}
  sink(const sink&) = delete;
  sink& operator=(const sink&) = delete;
  ~sink() { shut(); }

  void on_start() { session_ = bridge::detail::stomp_session::start(config_.connection, std::nullopt); }
  void on_stop() { shut(); }

  void on(publish<T> p, reply_promise<published> reply) {
    // persistent: the broker keeps it on disk until consumed (ActiveMQ's STOMP
    // default is non-persistent), so a broker restart loses nothing confirmed.
    std::vector<std::pair<std::string, std::string>> headers{{"persistent", "true"}};
    if (!p.key.empty()) headers.emplace_back("troupe-key", p.key);
    auto promise = std::make_shared<reply_promise<published>>(std::move(reply));
    session_->send(config_.destination, Codec::encode(p.body), std::move(headers),
                   [promise, d = config_.destination](const expected<void>& r) {
                     if (r) {
                       promise->deliver(published{d, -1, -1});
                     } else {
                       promise->fail(r.error());
                     }
                   });
  }

 private:
  void shut() {
    if (!session_) return;
    try {
      session_->close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): stopping; sends in flight fail with the session
    }
    session_.reset();
  }

  sink_config config_;
  std::shared_ptr<bridge::detail::stomp_session> session_;
};

}  // namespace troupe::bridge::stomp
