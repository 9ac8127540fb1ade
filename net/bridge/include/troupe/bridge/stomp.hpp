// stomp: the ActiveMQ bridge (any STOMP 1.2 broker) on the bridge model
// (bridge.hpp, docs/bridges.md). Owns: a STOMP session on its own Asio
// thread (connect, CONNECT/CONNECTED, heart-beats both ways, reconnecting
// with backoff), a source (SUBSCRIBE with client-individual acks, each MESSAGE
// to source_core, ACK after the handler returned, dead letters SENT to a
// destination of their own with the reason in a header and then ACKed), and a
// sink (SEND with a receipt: published on RECEIPT). May use: bridge.hpp,
// stomp_codec.hpp, Boost.Asio.
//
//   troupe::bridge::stomp_endpoint broker{.port = "61613"};
//   troupe::bridge::stomp_source<order> orders(sys, shop, broker, {.destination = "/queue/orders"});
//   troupe::ref<troupe::protocol<troupe::bridge::publish<order>>> out =
//       troupe::bridge::spawn_stomp_sink<order>(sys, broker, "/queue/invoices");
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
// Thread safety: construct and destroy on one thread; stats() from any thread.
// The system must outlive sources and sinks.
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

namespace troupe::bridge {

struct stomp_endpoint {
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
  stomp::limits limits{};
};

struct stomp_source_settings {
  std::string destination;              // "/queue/orders"
  std::string dead_letter_destination;  // empty: destination + ".DLQ"
  source_settings source{};
};

struct stomp_session_stats {
  bool connected = false;
  std::uint64_t connects = 0;  // CONNECTED frames received
  std::uint64_t connection_losses = 0;
  std::uint64_t stale_acks = 0;  // acknowledgements dropped: their connection was lost
  std::string last_error;        // why the last connection ended, "" if none did
};

namespace detail {

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
  static std::shared_ptr<stomp_session> start(stomp_endpoint endpoint, std::optional<subscription> sub);
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
  [[nodiscard]] stomp_session_stats stats() const;

  struct impl;
  explicit stomp_session(std::unique_ptr<impl> i);

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace detail

template <class T, class Codec = default_codec<T>>
class stomp_source {
 public:
  template <class P>
  stomp_source(troupe::system& sys, ref<P> target, const stomp_endpoint& endpoint, stomp_source_settings s) {
    if (s.dead_letter_destination.empty()) s.dead_letter_destination = s.destination + ".DLQ";
    drain_timeout_ = s.source.drain_timeout;
    // The session and the core meet through a holder: the session's thread
    // hands messages to the core, which exists once the session does.
    auto holder = std::make_shared<core_holder>();
    detail::stomp_session::subscription sub;
    sub.destination = s.destination;
    sub.dead_letter_destination = s.dead_letter_destination;
    sub.prefetch = s.source.max_in_flight;
    sub.on_message = [holder](std::uint64_t token, std::string body, origin from) {
      holder->core->deliver(token, std::move(body), std::move(from));
    };
    session_ = detail::stomp_session::start(endpoint, std::move(sub));
    holder->core = std::make_unique<source_core<T, Codec>>(sys, std::move(target), s.source, session_);
    holder_ = std::move(holder);
    session_->resume();
  }
  stomp_source(const stomp_source&) = delete;
  stomp_source& operator=(const stomp_source&) = delete;
  // A graceful stop: no new messages, the ones in flight settle (up to the
  // drain timeout), then the session disconnects.
  ~stomp_source() {
    try {
      session_->pause();
      (void)holder_->core->drain(drain_timeout_);
      session_->close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; what is unacknowledged is redelivered anyway
    }
  }

  // The graceful stop's first half, for a caller that wants its outcome: no
  // new messages; waits up to `timeout` for the ones in flight to settle.
  // True if none is left. The destructor then only disconnects.
  bool drain(std::chrono::nanoseconds timeout) {
    session_->pause();
    return holder_->core->drain(timeout);
  }

  [[nodiscard]] source_stats stats() const { return holder_->core->stats(); }
  [[nodiscard]] stomp_session_stats session() const { return session_->stats(); }
  bool wait_connected(std::chrono::nanoseconds timeout) { return session_->wait_connected(timeout); }

 private:
  struct core_holder {
    std::unique_ptr<source_core<T, Codec>> core;
  };
  std::shared_ptr<detail::stomp_session> session_;
  std::shared_ptr<core_holder> holder_;
  std::chrono::nanoseconds drain_timeout_ = 10s;
};

template <class T>
using sink_protocol = protocol<publish<T>>;

namespace detail {
template <class T, class Codec>
struct stomp_sink_actor final : actor<sink_protocol<T>> {
  stomp_sink_actor(std::shared_ptr<stomp_session> s, std::string d)
      : session(std::move(s)), destination(std::move(d)) {}
  ~stomp_sink_actor() {
    try {
      session->close();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; sends in flight fail with the session
    }
  }
  void on(publish<T> p, reply_promise<published> reply) {
    // persistent: the broker keeps it on disk until consumed (ActiveMQ's STOMP
    // default is non-persistent), so a broker restart loses nothing confirmed.
    std::vector<std::pair<std::string, std::string>> headers{{"persistent", "true"}};
    if (!p.key.empty()) headers.emplace_back("troupe-key", p.key);
    auto promise = std::make_shared<reply_promise<published>>(std::move(reply));
    session->send(destination, Codec::encode(p.body), std::move(headers),
                  [promise, d = destination](const expected<void>& r) {
                    if (r) {
                      promise->deliver(published{d, -1, -1});
                    } else {
                      promise->fail(r.error());
                    }
                  });
  }
  std::shared_ptr<stomp_session> session;
  std::string destination;
};
}  // namespace detail

// An actor that SENDs each publish<T> to `destination` and answers when the
// broker's RECEIPT comes (errc::connection_lost if the connection went first).
template <class T, class Codec = default_codec<T>>
ref<sink_protocol<T>> spawn_stomp_sink(troupe::system& sys, const stomp_endpoint& endpoint, std::string destination) {
  return sys.spawn<detail::stomp_sink_actor<T, Codec>>(detail::stomp_session::start(endpoint, std::nullopt),
                                                       std::move(destination));
}

}  // namespace troupe::bridge
