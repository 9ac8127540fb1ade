// consumer_controller<T>: the consumer's half of a reliable channel
// (troupe/net/reliable.hpp has the guide). It registers with a producer
// controller on a fresh channel, hands the consuming actor each message once
// and in order (as delivery<T>), drops duplicates, asks again for what was
// lost on the way, and acknowledges what the consumer confirmed — in batches,
// so a busy channel costs far less than one acknowledgement per message.
//
//   struct worker : troupe::actor<troupe::protocol<troupe::delivery<job>>> {
//     troupe::ref<troupe::producer_controller_protocol<job>> producer;
//     void on_start() { (void)troupe::spawn_consumer<job>(system(), self(), producer); }
//     void on(const troupe::delivery<job>& d) { handle(d.message); (void)d.confirm(); }
//   };
//
// Lifetime: it monitors the consuming actor and stops when that stops (the
// producer then gives the unconfirmed messages to another consumer). A
// consumer restarted in place by its supervisor starts a new controller in
// on_start; its registration replaces the old channel (same consuming actor),
// and the producer ends the old controller. When the producer goes down, the
// controller waits: channel_producer<T> points it at another producer (a
// producer restarted from its store invites its consumers back that way).
//
// Thread safety: an actor; talk to it with messages.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "troupe/net/detail/reliable_support.hpp"
#include "troupe/net/reliable_messages.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe {

struct consumer_options {
  // The most unconfirmed messages this consumer holds at a time (the producer
  // may allow fewer). Also its share of a work-pulling producer's messages.
  std::uint64_t window = 1000;
};

template <channel_message T, a_protocol Q>
class consumer_controller : public actor<consumer_controller_protocol<T>> {
  static_assert(accepts<Q, delivery<T>>,
                "troupe: this consumer's protocol does not accept the channel's message type (delivery<T>) "
                "(see 'Q = troupe::protocol<...>' and 'T = ...' in this error's context)");

 public:
  consumer_controller(ref<Q> consumer, ref<producer_controller_protocol<T>> producer, consumer_options options)
      : consumer_(std::move(consumer)), first_producer_(std::move(producer)), options_(options) {
    options_.window = std::max<std::uint64_t>(options_.window, 1);
  }

  void on_start() {
    consumer_monitor_ = this->monitor(actor_addr(consumer_));
    if (first_producer_) register_with(std::move(first_producer_));
  }

  void on(channel_data<T>&& d) {
    if (channel_ == 0 || d.channel != channel_) {
      stats_.stale += d.messages.size();
      if (producer_) (void)producer_.tell(channel_stale{d.channel});
      return;
    }
    const std::uint64_t count = d.messages.size();
    // Untrusted seq: a batch that would run past 2^64, or starts after the next
    // seq, delivers nothing; what comes before the next seq is a duplicate.
    if (count == 0 || d.seq == 0 || d.seq > std::numeric_limits<std::uint64_t>::max() - count || d.seq > next_seq_) {
      stats_.gaps += count;
      if (count != 0 && !resend_asked_) {
        resend_asked_ = true;
        acknowledge(true);
      }
      return;
    }
    const std::uint64_t skip = std::min(next_seq_ - d.seq, count);
    if (skip != 0) {
      stats_.duplicates += skip;
      ack_owed_ = true;  // sent again: our acknowledgement may have been lost
      schedule_flush();
    }
    if (skip == count) return;
    resend_asked_ = false;
    // The batch goes to the consumer's mailbox in one step (one wake-up), not one tell each.
    stats_.delivered += count - skip;
    (void)detail::tell_each<delivery<T>>(consumer_, count - skip, [&](std::size_t i) {
      const std::uint64_t at = skip + i;
      return delivery<T>{std::move(d.messages[at]), next_seq_++, channel_, at + 1 == count, this->self()};
    });
  }

  void on(const channel_producer<T>& p) { register_with(p.producer); }

  void on(const channel_end& e) {
    if (e.channel == channel_) this->stop();
  }

  void on(const channel_confirm& c) {
    if (c.channel != channel_ || c.seq <= confirmed_ || c.seq >= next_seq_) return;
    stats_.confirmed += c.seq - confirmed_;
    confirmed_ = c.seq;
    if (confirmed_ - acked_ >= std::max<std::uint64_t>(1, window_ / 4)) {
      acknowledge(false);
    } else {
      schedule_flush();
    }
  }

  // Sent to itself behind the messages already queued: one acknowledgement for
  // all the confirmations that arrived meanwhile.
  void on(channel_flush) {
    flush_pending_ = false;
    if (confirmed_ > acked_ || ack_owed_) acknowledge(false);
  }

  consumer_stats on(const consumer_stats_request&) const { return stats_; }

  void on(const down& d) {
    if (d.monitor == consumer_monitor_) {
      this->stop();
    } else if (d.monitor == producer_monitor_) {
      detail::report_channel_event("the producer of channel " + std::to_string(channel_) +
                                   " went down: " + d.reason.to_string() + "; waiting for a producer");
      producer_ = {};
      channel_ = 0;
    }
  }

 private:
  void register_with(ref<producer_controller_protocol<T>> producer) {
    if (!producer) return;
    if (producer_) {
      this->demonitor(producer_monitor_);
      if (!(producer_ == producer)) (void)producer_.tell(channel_stale{channel_});  // let the old one go
    }
    producer_ = std::move(producer);
    producer_monitor_ = this->monitor(actor_addr(producer_));
    channel_ = detail::new_channel_id();
    next_seq_ = 1;
    confirmed_ = 0;
    acked_ = 0;
    resend_asked_ = false;
    ack_owed_ = false;
    window_ = options_.window;
    ++stats_.channels;
    (void)producer_.tell(
        channel_register<T>{this->self(), channel_, options_.window, detail::consumer_key_of(consumer_.id())});
  }

  void schedule_flush() {
    if (flush_pending_) return;
    flush_pending_ = true;
    (void)this->self().tell(channel_flush{});
  }

  void acknowledge(bool resend) {
    acked_ = confirmed_;
    ack_owed_ = false;
    if (producer_) (void)producer_.tell(channel_ack{channel_, confirmed_, resend});
  }

  ref<Q> consumer_;
  ref<producer_controller_protocol<T>> first_producer_;
  ref<producer_controller_protocol<T>> producer_;
  consumer_options options_;
  consumer_stats stats_;
  std::uint64_t consumer_monitor_ = 0;
  std::uint64_t producer_monitor_ = 0;
  std::uint64_t channel_ = 0;
  std::uint64_t next_seq_ = 1;  // the seq to deliver next
  std::uint64_t confirmed_ = 0;
  std::uint64_t acked_ = 0;
  std::uint64_t window_ = 1;
  bool resend_asked_ = false;
  bool ack_owed_ = false;
  bool flush_pending_ = false;
};

// Spawns the consumer controller that feeds `consumer` (its protocol must list
// delivery<T>) from `producer` (may be empty: send it channel_producer<T> later).
// Call it from the consumer's on_start, so a restart starts a new one.
template <channel_message T, a_protocol Q>
ref<consumer_controller_protocol<T>> spawn_consumer(troupe::system& sys, const ref<Q>& consumer,
                                                    ref<producer_controller_protocol<T>> producer,
                                                    consumer_options options = {}) {
  static_assert(accepts<Q, delivery<T>>,
                "troupe: this consumer's protocol does not accept the channel's message type (delivery<T>) "
                "(see 'Q = troupe::protocol<...>' and 'T = ...' in this error's context)");
  return sys.spawn<consumer_controller<T, Q>>(consumer, std::move(producer), options);
}

}  // namespace troupe
