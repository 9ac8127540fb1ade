// The messages of a reliable channel (troupe/net/reliable.hpp has the guide):
// what the producing actor and the consuming actor see (demand<T>,
// delivery<T>), what the two controllers say to each other (channel_*), the
// controllers' protocols, options and counters.
//
//   struct job { std::int64_t n; };
//   using worker_protocol = troupe::protocol<troupe::delivery<job>>;     // a consumer
//   using source_protocol = troupe::protocol<troupe::demand<job>>;       // a producer
//
// Everything here is an ordinary serializable message: the controllers talk
// with tell() like any two actors, so a channel works at every distance a ref
// reaches, and nothing new goes on the wire. A field that came from another
// process is checked where it is used (the controllers), never trusted here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/serialization.hpp"

namespace troupe {

// A message type a reliable channel can carry: serializable (it may cross a
// process boundary), copyable (the producer keeps a copy until it is
// confirmed), default-constructible (to decode it), and not a request.
template <class T>
concept channel_message = std::is_same_v<T, std::remove_cvref_t<T>> && serializable<T> &&
    std::is_default_constructible_v<T> && std::is_copy_constructible_v<T> && !request<T>;

// --- between the controllers ---------------------------------------------------------------

// Producer controller -> consumer controller: messages `seq`, `seq` + 1, ...
// (numbered from 1) of channel `channel`. Several at once: what the producer
// controller sends during one activation travels in batches (at most an eighth
// of the consumer's window, and 256 messages, each), so a busy channel costs
// one wire frame per batch, not per message, and the consumer confirms the
// first batches while the next are on their way.
template <class T>
struct channel_data {
  std::uint64_t channel = 0;
  std::uint64_t seq = 0;
  std::vector<T> messages;
};

// Consumer controller -> producer controller: everything up to `confirmed` on
// `channel` was confirmed by the consumer; `resend` asks for everything after it
// again (the consumer saw a gap: a message was lost on the way).
struct channel_ack {
  std::uint64_t channel = 0;
  std::uint64_t confirmed = 0;
  bool resend = false;
};

// Consumer controller -> producer controller: data of `channel` reached a
// consumer controller that does not (or no longer) own that channel.
struct channel_stale {
  std::uint64_t channel = 0;
};

// Producer controller -> consumer controller: the channel was closed (the same
// consumer registered again, from a new controller); the controller stops.
struct channel_end {
  std::uint64_t channel = 0;
};

// Timers and wake-ups a controller sends itself.
struct channel_tick {};   // the producer's redelivery timer
struct channel_flush {};  // the end of a batch: the producer sends it, the consumer acknowledges it

// Consumer -> its controller (same process): everything up to `seq` of
// `channel` is done. The channel is part of it: a confirmation of an old
// channel (a delivery still in the consumer's mailbox when it re-registered)
// must not confirm the same seq of the new one.
struct channel_confirm {
  std::uint64_t channel = 0;
  std::uint64_t seq = 0;
};

// Producer controller's store -> the controller: every message up to id
// `up_to` is durable (producer_store.hpp).
struct channel_durable {
  std::uint64_t up_to = 0;
};

// Producer controller's store -> the controller: the confirmation of every
// message up to id `up_to` is durable (the store will not give them back).
struct channel_forgotten {
  std::uint64_t up_to = 0;
};

// What a producer controller counts (ask it with producer_stats_request).
struct producer_stats {
  std::uint64_t accepted = 0;     // messages taken from the producing actor (restored ones included)
  std::uint64_t confirmed = 0;    // messages a consumer confirmed
  std::uint64_t queued = 0;       // accepted, not yet sent to a consumer (now)
  std::uint64_t unconfirmed = 0;  // sent, not yet confirmed (now)
  std::uint64_t consumers = 0;    // registered consumers (now)
  std::uint64_t sent = 0;         // data messages sent, redeliveries included
  std::uint64_t redelivered = 0;  // of which sent again (timeout, gap, or to another consumer)
  std::uint64_t requeued = 0;     // unconfirmed messages taken back from a consumer that left
  std::uint64_t rejected = 0;     // messages beyond the demand, refused (full_window_policy::reject)
  std::uint64_t ignored = 0;      // acknowledgements that made no sense (unknown channel, beyond what was sent)
};
struct producer_stats_request {
  using reply = producer_stats;
};

// What a consumer controller counts (ask it with consumer_stats_request).
struct consumer_stats {
  std::uint64_t delivered = 0;   // messages handed to the consumer (each seq of a channel once)
  std::uint64_t confirmed = 0;   // of which the consumer confirmed
  std::uint64_t duplicates = 0;  // data messages dropped because they had been delivered already
  std::uint64_t gaps = 0;        // data messages dropped because one before them was missing
  std::uint64_t stale = 0;       // data messages of a channel this controller does not own
  std::uint64_t channels = 0;    // registrations made (one per producer it was pointed at)
};
struct consumer_stats_request {
  using reply = consumer_stats;
};

// Producing actor -> producer controller: several messages at once, taken as
// if sent one by one (producer_window<T>::send_all).
template <channel_message T>
struct channel_batch {
  std::vector<T> messages;
};

template <channel_message T>
struct channel_register;
template <channel_message T>
struct channel_producer;

// The protocol of producer_controller<T>: the producing actor tells it T.
template <channel_message T>
using producer_controller_protocol =
    protocol<T, channel_batch<T>, channel_register<T>, channel_ack, channel_stale, channel_tick, channel_flush,
             channel_durable, channel_forgotten, producer_stats_request>;

// The protocol of consumer_controller<T>.
template <channel_message T>
using consumer_controller_protocol =
    protocol<channel_data<T>, channel_producer<T>, channel_end, channel_confirm, channel_flush, consumer_stats_request>;

// Consumer controller -> producer controller: "send channel `channel` to me;
// at most `window` unconfirmed at a time". `consumer_key` names the consuming
// actor: a registration with a key already registered replaces that channel
// (the consumer was restarted in place and started a new controller).
template <channel_message T>
struct channel_register {
  ref<consumer_controller_protocol<T>> consumer;
  std::uint64_t channel = 0;
  std::uint64_t window = 0;
  std::uint64_t consumer_key = 0;
};

// Anyone -> consumer controller: "your producer is this one" (at start, or a
// producer that restarted from its durable store inviting its consumers back).
// The controller registers with it on a fresh channel.
template <channel_message T>
struct channel_producer {
  ref<producer_controller_protocol<T>> producer;
};

// --- what the producing and consuming actors see --------------------------------------------

// Controller -> producing actor: it may send messages up to number `up_to`
// (messages are numbered 1, 2, ... in the order the controller accepts them;
// `next_id` is the number the next one gets, as the controller saw it when it
// wrote this). Sent when the window opens, not per message. producer_window<T>
// does the counting.
template <channel_message T>
struct demand {
  ref<producer_controller_protocol<T>> send_to;
  std::uint64_t next_id = 1;
  std::uint64_t up_to = 0;
};

// Controller -> consuming actor: one message, in order, once while this
// controller lives. confirm() when done with it; unconfirmed messages are sent
// again to a consumer that comes back after a failure. Confirmation is
// cumulative (confirming seq n confirms everything before it), so a consumer
// that handles its deliveries in order may confirm only those with batch_end
// set — the last of what its controller had at hand — for one confirmation
// per batch instead of one per message.
template <channel_message T>
struct delivery {
  T message{};
  std::uint64_t seq = 0;
  std::uint64_t channel = 0;
  bool batch_end = true;
  ref<consumer_controller_protocol<T>> confirm_to;

  // A plain tell to the controller; no_such_actor once it is gone.
  std::error_code confirm() const { return confirm_to.tell(channel_confirm{channel, seq}); }
};

// What the producer controller does with a message that arrives beyond the
// demand it announced (a producing actor that ignored demand<T>).
enum class full_window_policy : std::uint8_t {
  reject,  // drop it, count it in producer_stats::rejected, log once (default)
  fail,    // stop the controller with an error (its consumers see it go down)
};

// A producing actor's view of its controller's demand: feed it every demand<T>,
// send through it.
//
//   struct source : troupe::actor<troupe::protocol<troupe::demand<job>>> {
//     troupe::producer_window<job> out;
//     void on(const troupe::demand<job>& d) {
//       out.update(d);
//       while (out.credit() > 0) (void)out.send(job{out.next_id()});
//     }
//   };
template <channel_message T>
class producer_window {
 public:
  void update(const demand<T>& d) {
    if (!(d.send_to == to_)) {  // a new controller (a restart): its numbering
      to_ = d.send_to;
      next_ = d.next_id;
      up_to_ = d.up_to;
      return;
    }
    // Messages of ours may still be on their way to it: our count runs ahead of its next_id.
    if (d.next_id > next_) next_ = d.next_id;
    if (d.up_to > up_to_) up_to_ = d.up_to;
  }
  // Messages that may be sent now.
  [[nodiscard]] std::uint64_t credit() const noexcept { return to_ && up_to_ >= next_ ? up_to_ - next_ + 1 : 0; }
  // The number the next message sent will get.
  [[nodiscard]] std::uint64_t next_id() const noexcept { return next_; }
  // errc::mailbox_full without credit (the message is not sent); else what tell() says.
  std::error_code send(T message) {
    if (credit() == 0) return make_error_code(errc::mailbox_full);
    ++next_;
    return to_.tell(std::move(message));
  }
  // Sends the first credit() messages of `messages` as one message to the
  // controller (cheaper than one send() each); returns how many it took.
  std::size_t send_all(std::vector<T>& messages) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(credit(), messages.size()));
    if (n == 0) return 0;
    std::vector<T> batch;
    if (n == messages.size()) {
      batch = std::move(messages);
      messages.clear();
    } else {
      batch.assign(std::make_move_iterator(messages.begin()),
                   std::make_move_iterator(messages.begin() + static_cast<std::ptrdiff_t>(n)));
      messages.erase(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(n));
    }
    next_ += n;
    (void)to_.tell(channel_batch<T>{std::move(batch)});
    return n;
  }
  [[nodiscard]] const ref<producer_controller_protocol<T>>& controller() const noexcept { return to_; }

 private:
  ref<producer_controller_protocol<T>> to_;
  std::uint64_t next_ = 1;
  std::uint64_t up_to_ = 0;
};

}  // namespace troupe
