// producer_controller<T>: the producer's half of a reliable channel
// (troupe/net/reliable.hpp has the guide). It numbers what the producing actor
// sends it, hands each message to a registered consumer controller with room
// in its window, keeps it until that consumer confirms it, and sends it again
// when it was not confirmed in time, when the consumer asks (a gap), or — to
// another consumer, or to the same one coming back — when the consumer left.
//
//   auto out = troupe::spawn_producer<job>(sys, source);   // source's protocol lists demand<job>
//   // consumers register with `out` (spawn_consumer), source gets demand<job> and sends job to `out`
//
// Bounded memory: at most options.buffer messages wait for a consumer with
// room (plus those taken back from a consumer that left: at most its window),
// and each consumer has at most its window unconfirmed; the producing actor is
// told by demand<T> how far it may send. A message beyond that is refused
// (full_window_policy).
//
// Work pulling: any number of consumers may register; each new message goes to
// the next one (round robin) that has room in its window, so a slow consumer
// gets less. A consumer that stops, whose process dies or whose connection is
// lost (its down arrives: the controller monitors it), or that registers again
// from a new controller, gives its unconfirmed messages back: they go first,
// in their order, to whoever has room.
//
// Thread safety: an actor; talk to it with messages.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "troupe/net/detail/reliable_support.hpp"
#include "troupe/net/producer_store.hpp"
#include "troupe/net/reliable_messages.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe {

struct producer_options {
  // The most unconfirmed messages one consumer may hold (a consumer may ask
  // for fewer: its own window).
  std::uint64_t window = 1000;
  // The most accepted messages waiting for a consumer with room (also while
  // there is none); the producing actor's demand never goes beyond it.
  std::uint64_t buffer = 1000;
  // A consumer that confirmed nothing for this long while it holds unconfirmed
  // messages gets them again (it drops what it already had).
  std::chrono::nanoseconds resend_after = std::chrono::seconds(1);
  full_window_policy when_full = full_window_policy::reject;
  // Optional: keeps unconfirmed messages beyond this process (producer_store.hpp).
  std::shared_ptr<producer_store> store{};
  // Optional: called on the controller's thread with the number of messages
  // confirmed so far, after each acknowledgement that confirmed more. Keep it
  // short (it runs inside the actor); for waiting on progress from outside.
  std::function<void(std::uint64_t confirmed)> on_confirmed{};
};

template <channel_message T, a_protocol Q>
class producer_controller : public actor<producer_controller_protocol<T>> {
  static_assert(accepts<Q, demand<T>>,
                "troupe: this producer's protocol does not accept demand<T> for the channel's message type "
                "(see 'Q = troupe::protocol<...>' and 'T = ...' in this error's context)");
  using base = actor<producer_controller_protocol<T>>;

 public:
  producer_controller(ref<Q> producer, producer_options options)
      : producer_(std::move(producer)), options_(std::move(options)) {
    options_.window = std::max<std::uint64_t>(options_.window, 1);
    options_.buffer = std::max<std::uint64_t>(options_.buffer, 1);
  }

  void on_start() {
    if (options_.store) restore();
    announce_demand();
  }

  void on(T message) {
    accept(std::move(message));
    if (!options_.store && !stopping_) pump();
  }

  void on(channel_batch<T>&& batch) {
    for (T& message : batch.messages) {
      if (stopping_) return;
      accept(std::move(message));
    }
    if (!options_.store && !stopping_) pump();
  }

 private:
  void accept(T message) {
    // Beyond the demand announced: the producing actor did not wait for it.
    // (Not "the buffer is full": messages taken back from a consumer that left
    // may fill it after the demand was announced, and the producing actor may
    // use all it was given; they are bounded by the consumers' windows.)
    if (next_id_ > demand_up_to_) {
      ++stats_.rejected;
      if (options_.when_full == full_window_policy::fail) {
        stopping_ = true;
        this->stop(exit_reason::error("the producing actor sent beyond its demand (full_window_policy::fail)"));
        return;
      }
      if (stats_.rejected == 1) detail::report_channel_event("a message beyond the announced demand was refused");
      return;
    }
    const std::uint64_t id = next_id_++;
    ++stats_.accepted;
    if (options_.store) {
      const std::vector<std::byte> bytes = to_bytes(message);
      outstanding_.insert(id);
      not_durable_.push_back(entry{id, std::move(message), false});
      options_.store->append(id, bytes);  // durable later: channel_durable
      return;
    }
    queue_.push_back(entry{id, std::move(message), false});
  }

 public:
  void on(const channel_durable& d) {
    while (!not_durable_.empty() && not_durable_.front().id <= d.up_to) {
      queue_.push_back(std::move(not_durable_.front()));
      not_durable_.pop_front();
    }
    pump();
  }

  void on(const channel_forgotten& f) {
    forgotten_up_to_ = std::max(forgotten_up_to_, std::min(f.up_to, confirmed_up_to_));
    pump();
  }

  void on(const channel_register<T>& r) {
    if (r.channel == 0 || !r.consumer || find(r.channel) != nullptr) return;  // malformed, or registered already
    // The same consuming actor from a new controller: the old channel is over.
    for (std::size_t i = 0; i < channels_.size();) {
      if (channels_[i].key == r.consumer_key) {
        close(i, true);
      } else {
        ++i;
      }
    }
    channel c;
    c.id = r.channel;
    c.key = r.consumer_key;
    c.window = std::clamp<std::uint64_t>(r.window, 1, options_.window);
    c.consumer = r.consumer;
    c.monitor_id = this->monitor(actor_addr(r.consumer));
    channels_.push_back(std::move(c));
    pump();
  }

  void on(const channel_ack& a) {
    channel* c = find(a.channel);
    // Untrusted: an unknown channel, or a confirmation of more than was sent, changes nothing.
    if (c == nullptr || a.confirmed > c->confirmed + c->unconfirmed.size()) {
      ++stats_.ignored;
      return;
    }
    if (a.confirmed > c->confirmed) {
      const auto done = static_cast<std::ptrdiff_t>(a.confirmed - c->confirmed);
      if (options_.store) {
        for (auto it = c->unconfirmed.begin(); it != c->unconfirmed.begin() + done; ++it) outstanding_.erase(it->id);
      }
      c->unconfirmed.erase(c->unconfirmed.begin(), c->unconfirmed.begin() + done);
      c->confirmed = a.confirmed;
      c->last_progress = this->system().now();
      stats_.confirmed += static_cast<std::uint64_t>(done);
      forget_confirmed();
      if (options_.on_confirmed) options_.on_confirmed(stats_.confirmed);
    }
    if (a.resend) resend(*c);
    pump();
  }

  void on(const channel_stale& s) {
    for (std::size_t i = 0; i < channels_.size(); ++i) {
      if (channels_[i].id == s.channel) {
        close(i, false);
        pump();
        return;
      }
    }
  }

  void on(const down& d) {
    for (std::size_t i = 0; i < channels_.size(); ++i) {
      if (channels_[i].monitor_id == d.monitor) {
        close(i, false);
        pump();
        return;
      }
    }
  }

  void on(channel_flush) {
    flush_pending_ = false;
    for (channel& c : channels_) flush(c);
  }

  void on(channel_tick) {
    timer_armed_ = false;
    const auto now = this->system().now();
    for (channel& c : channels_) {
      if (!c.unconfirmed.empty() && now - c.last_progress >= options_.resend_after) {
        resend(c);
        c.last_progress = now;
      }
    }
    arm_timer();
  }

  producer_stats on(const producer_stats_request&) const {
    producer_stats s = stats_;
    s.queued = queue_.size() + not_durable_.size();
    s.unconfirmed = 0;
    for (const channel& c : channels_) s.unconfirmed += c.unconfirmed.size();
    s.consumers = channels_.size();
    return s;
  }

 private:
  struct entry {
    std::uint64_t id = 0;
    T message{};
    bool sent_before = false;
  };
  struct channel {
    std::uint64_t id = 0;
    std::uint64_t key = 0;
    std::uint64_t window = 1;
    std::uint64_t confirmed = 0;  // seqs up to here are confirmed; unconfirmed[i] has seq confirmed + 1 + i
    std::uint64_t monitor_id = 0;
    std::chrono::steady_clock::time_point last_progress{};
    ref<consumer_controller_protocol<T>> consumer;
    std::deque<entry> unconfirmed;
    std::vector<T> batch;  // sent, not yet written: seqs batch_seq, batch_seq + 1, ...
    std::uint64_t batch_seq = 0;
  };

  [[nodiscard]] std::uint64_t waiting() const noexcept { return queue_.size() + not_durable_.size(); }
  // With a store: confirmed messages it may still give back after a crash.
  // They count against every consumer's window, so that a restart sends at
  // most one window of messages again that a consumer had already handled.
  [[nodiscard]] std::uint64_t forgetting() const noexcept { return confirmed_up_to_ - forgotten_up_to_; }

  channel* find(std::uint64_t id) noexcept {
    for (channel& c : channels_) {
      if (c.id == id) return &c;
    }
    return nullptr;
  }

  // Sends waiting messages to consumers with room, round robin; then tells the
  // producing actor if its window opened.
  void pump() {
    while (!queue_.empty() && !channels_.empty()) {
      channel* target = nullptr;
      for (std::size_t tried = 0; tried < channels_.size() && target == nullptr; ++tried) {
        channel& c = channels_[next_channel_++ % channels_.size()];
        if (c.unconfirmed.size() + forgetting() < c.window) target = &c;
      }
      if (target == nullptr) break;
      // Several at once to the one found: round robin per message costs a scan each.
      while (!queue_.empty() && target->unconfirmed.size() + forgetting() < target->window) {
        entry e = std::move(queue_.front());
        queue_.pop_front();
        send(*target, std::move(e));
        if (channels_.size() > 1) break;
      }
    }
    announce_demand();
  }

  // Adds the message to the channel's batch, which goes out at the next
  // channel_flush: after the messages already in this controller's mailbox.
  void send(channel& c, entry e) {
    if (c.unconfirmed.empty()) c.last_progress = this->system().now();
    const std::uint64_t seq = c.confirmed + c.unconfirmed.size() + 1;
    if (e.sent_before) ++stats_.redelivered;
    e.sent_before = true;
    ++stats_.sent;
    if (c.batch.empty()) c.batch_seq = seq;
    c.batch.push_back(e.message);
    c.unconfirmed.push_back(std::move(e));
    // A full batch goes at once: the consumer confirms per batch (batch_end),
    // so a window sent as one batch would be stop-and-wait — nothing new until
    // all of it was handled and acknowledged. An eighth of the window per batch
    // keeps several on the way while the first ones are confirmed.
    if (c.batch.size() >= batch_limit(c)) {
      flush(c);
      arm_timer();
      return;
    }
    if (!flush_pending_) {
      flush_pending_ = true;
      (void)this->self().tell(channel_flush{});
    }
    arm_timer();
  }

  // At most an eighth of the window, and at most max_batch: a batch is one
  // allocation at each end (decoded into a fresh vector), and small ones are
  // reused by the allocator where large ones are handed back to the kernel and
  // faulted in again (a profile of 1,250-message batches spent a fifth of the
  // consumer's time in page faults).
  static constexpr std::uint64_t max_batch = 256;
  [[nodiscard]] static std::size_t batch_limit(const channel& c) noexcept {
    return static_cast<std::size_t>(std::clamp<std::uint64_t>(c.window / 8, 1, max_batch));
  }

  void flush(channel& c) {
    if (c.batch.empty()) return;
    // A refused tell (the connection is overloaded or gone) is redelivered by
    // the timer, or given to another consumer when this one's down arrives.
    (void)c.consumer.tell(channel_data<T>{c.id, c.batch_seq, std::move(c.batch)});
    c.batch = {};
  }

  // Everything unconfirmed again, in batches (the unsent batch is part of it).
  void resend(channel& c) {
    c.batch.clear();
    const std::size_t count = c.unconfirmed.size();
    for (std::size_t i = 0; i < count; ++i) {
      ++stats_.sent;
      ++stats_.redelivered;
      if (c.batch.empty()) c.batch_seq = c.confirmed + 1 + i;
      c.batch.push_back(c.unconfirmed[i].message);
      if (c.batch.size() >= batch_limit(c)) flush(c);
    }
    flush(c);
  }

  // Takes channel i's unconfirmed messages back (to go first, in id order).
  void close(std::size_t i, bool tell_end) {
    channel& c = channels_[i];
    stats_.requeued += c.unconfirmed.size();
    std::deque<entry> merged;
    std::merge(std::make_move_iterator(c.unconfirmed.begin()), std::make_move_iterator(c.unconfirmed.end()),
               std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()),
               std::back_inserter(merged), [](const entry& a, const entry& b) { return a.id < b.id; });
    queue_ = std::move(merged);
    this->demonitor(c.monitor_id);
    if (tell_end) (void)c.consumer.tell(channel_end{c.id});
    channels_.erase(channels_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  // demand<T>: the producing actor may send up to next_id_ - 1 + room. Told
  // when it has used what it was told, or when the window opened by a quarter.
  void announce_demand() {
    const std::uint64_t room = options_.buffer > waiting() ? options_.buffer - waiting() : 0;
    const std::uint64_t up_to = next_id_ - 1 + room;
    if (up_to <= demand_up_to_) return;
    const bool used_up = next_id_ - 1 >= demand_up_to_;
    if (!used_up && up_to - demand_up_to_ < std::max<std::uint64_t>(1, options_.buffer / 4)) return;
    demand_up_to_ = up_to;
    (void)producer_.tell(demand<T>{this->self(), next_id_, up_to});
  }

  void arm_timer() {
    if (timer_armed_) return;
    for (const channel& c : channels_) {
      if (!c.unconfirmed.empty()) {
        timer_armed_ = true;
        (void)this->system().send_after(this->self(), options_.resend_after, channel_tick{});
        return;
      }
    }
  }

  // With a store: loads what an earlier run left unconfirmed; numbering goes on after its last id.
  void restore() {
    options_.store->on_durable([to = this->self()](std::uint64_t up_to) { (void)to.tell(channel_durable{up_to}); });
    options_.store->on_forgotten([to = this->self()](std::uint64_t up_to) { (void)to.tell(channel_forgotten{up_to}); });
    expected<stored_messages> loaded = options_.store->load();
    if (!loaded) {
      this->stop(exit_reason::error("the producer store does not load: " + loaded.error().text()));
      return;
    }
    next_id_ = loaded->last_id + 1;
    confirmed_up_to_ = loaded->last_id;
    for (stored_message& m : loaded->unconfirmed) {
      expected<T> message = from_bytes<T>(m.bytes);
      if (!message || m.id == 0 || m.id > loaded->last_id) {
        this->stop(exit_reason::error("the producer store holds message " + std::to_string(m.id) +
                                      " that does not decode as the channel's type"));
        return;
      }
      outstanding_.insert(m.id);
      queue_.push_back(entry{m.id, std::move(*message), true});
      ++stats_.accepted;
    }
    if (!outstanding_.empty()) confirmed_up_to_ = *outstanding_.begin() - 1;
    forgotten_up_to_ = confirmed_up_to_;
  }

  // With a store: tells it the highest id below which everything is confirmed.
  void forget_confirmed() {
    if (!options_.store) return;
    const std::uint64_t up_to = outstanding_.empty() ? next_id_ - 1 : *outstanding_.begin() - 1;
    if (up_to > confirmed_up_to_) {
      confirmed_up_to_ = up_to;
      options_.store->confirm(up_to);
    }
  }

  ref<Q> producer_;
  producer_options options_;
  producer_stats stats_;
  std::deque<entry> not_durable_;  // accepted, appended to the store, not durable yet
  std::deque<entry> queue_;        // waiting for a consumer with room, in id order
  std::vector<channel> channels_;
  std::size_t next_channel_ = 0;
  std::uint64_t next_id_ = 1;
  std::uint64_t demand_up_to_ = 0;
  bool timer_armed_ = false;
  bool flush_pending_ = false;
  bool stopping_ = false;
  std::set<std::uint64_t> outstanding_;  // with a store: accepted ids not yet confirmed
  std::uint64_t confirmed_up_to_ = 0;    // with a store: what it was told it may forget
  std::uint64_t forgotten_up_to_ = 0;    // with a store: what it said it has forgotten, durably
};

// Spawns the producer controller of a channel carrying T, whose producing
// actor is `producer` (its protocol must list demand<T>).
template <channel_message T, a_protocol Q>
ref<producer_controller_protocol<T>> spawn_producer(troupe::system& sys, const ref<Q>& producer,
                                                    producer_options options = {}) {
  static_assert(accepts<Q, demand<T>>,
                "troupe: this producer's protocol does not accept demand<T> for the channel's message type "
                "(see 'Q = troupe::protocol<...>' and 'T = ...' in this error's context)");
  return sys.spawn<producer_controller<T, Q>>(producer, std::move(options));
}

}  // namespace troupe
