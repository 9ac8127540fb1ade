// Streamed answers: a request answered by any number of messages, then an end
// (gRPC's server streaming; other protocols get the whole stream as one array).
// Owns: stream_sink<T>, what the actor sends items to, and the relay actor that
// turns them into a protocol's callbacks. May use: troupe::runtime, Boost.JSON.
//
//   struct price { std::string symbol; double value; };
//   BOOST_DESCRIBE_STRUCT(price, (), (symbol, value))
//   struct watch {
//     std::string symbol;
//     int ticks;
//     troupe::gateway::stream_sink<price> sink;   // filled by the gateway, not described
//     using stream = price;
//   };
//   BOOST_DESCRIBE_STRUCT(watch, (), (symbol, ticks))
//
//   void on(watch w) {                        // in the actor
//     for (int i = 0; i < w.ticks; ++i) if (!w.sink.send(price{w.symbol, quote(i)})) return;  // the client left
//     w.sink.end();                           // or w.sink.fail("why"), or just stop: the stream fails as actor_down
//   }
//
// A stream method is a described type with `using stream = T;` and a member
// `stream_sink<T> sink;`. The actor may keep the sink and send later, from any
// handler. send() is false once the stream is over (ended, failed, cancelled
// by the client, past its deadline): stop producing then.
//
// Thread safety: a stream_sink may be copied and used from any thread (its
// sends are tells); items from one sender arrive in order.
#pragma once

#include <atomic>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "troupe/gateway/failure.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/signals.hpp"

namespace troupe::gateway {

template <class T>
struct stream_item {
  T value;
};
struct stream_end {
  std::string error;  // empty: the stream ended normally
};
// Sent by the gateway's timer when the stream's deadline passes.
struct stream_deadline {};
template <class T>
using relay_protocol = protocol<stream_item<T>, stream_end, stream_deadline>;

template <class T>
class stream_sink {
 public:
  stream_sink() = default;
  stream_sink(ref<relay_protocol<T>> to, std::shared_ptr<const std::atomic<bool>> over)
      : to_(std::move(to)), over_(std::move(over)) {}
  // One item; false once the stream is over.
  bool send(T item) const { return !is_over() && !to_.tell(stream_item<T>{std::move(item)}); }
  // The stream ended normally / with an error (the client sees `why`).
  void end() const {
    if (!is_over()) (void)to_.tell(stream_end{});
  }
  void fail(std::string why) const {
    if (!is_over()) (void)to_.tell(stream_end{why.empty() ? std::string("failed") : std::move(why)});
  }

 private:
  // Set by the relay (release) before it reports the end, so whoever learns of
  // the end and then makes the actor send sees it here (acquire): a send after
  // the end is refused even while the relay actor is still stopping.
  [[nodiscard]] bool is_over() const noexcept { return !over_ || over_->load(std::memory_order_acquire); }
  ref<relay_protocol<T>> to_;
  std::shared_ptr<const std::atomic<bool>> over_;
};

// A message type whose answer is a stream.
template <class M>
concept streaming = requires(M m) {
  typename M::stream;
  { m.sink } -> std::same_as<stream_sink<typename M::stream>&>;
};

// What a protocol gives a streamed call: `item` per message (false: it cannot
// take more now, and the stream fails as overloaded), `end` exactly once
// (nullopt: ended normally). Both run on the relay actor's thread, one at a
// time; they must not block.
struct stream_callbacks {
  std::function<bool(boost::json::value)> item;
  std::function<void(std::optional<call_failure>)> end;
};

namespace detail {
// Turns one stream's messages into its callbacks; watches the producing actor.
template <class T>
struct stream_relay final : actor<relay_protocol<T>> {
  stream_relay(stream_callbacks cb, actor_addr producer, std::shared_ptr<std::atomic<bool>> over)
      : cb_(std::move(cb)), producer_(std::move(producer)), over_(std::move(over)) {}
  void on_start() { this->monitor(producer_); }
  void on(stream_item<T> i) {
    if (ended_) return;
    boost::json::value v;
    try {
      v = boost::json::value_from(std::move(i.value));
    } catch (const std::exception& e) {
      finish(call_failure{failure::internal, std::string("an item does not convert to JSON: ") + e.what()});
      return;
    }
    if (!cb_.item(std::move(v)))
      finish(call_failure{failure::overloaded, "the client does not take the stream's items fast enough"});
  }
  void on(const stream_end& e) {
    if (e.error.empty()) {
      finish(std::nullopt);
    } else {
      finish(call_failure{failure::internal, e.error});
    }
  }
  void on(stream_deadline /*unused*/) {
    finish(call_failure{failure::timeout, "the stream did not end before its deadline"});
  }
  void on(const down& d) {
    finish(call_failure{failure::actor_down, "the actor stopped before ending the stream: " + d.reason.to_string()});
  }
  void on_stop(const exit_reason& why) {
    if (!ended_) end_now(call_failure{failure::internal, "the stream was cancelled: " + why.to_string()});
  }

 private:
  void end_now(std::optional<call_failure> f) {
    ended_ = true;
    over_->store(true, std::memory_order_release);  // see stream_sink::is_over()
    cb_.end(std::move(f));
  }
  void finish(std::optional<call_failure> f) {
    if (ended_) return;
    end_now(std::move(f));
    this->stop();
  }
  stream_callbacks cb_;
  actor_addr producer_;
  std::shared_ptr<std::atomic<bool>> over_;
  bool ended_ = false;
};
}  // namespace detail

}  // namespace troupe::gateway
