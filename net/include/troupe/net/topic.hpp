// topic<T>: a named, typed publish/subscribe channel that spans every node this
// one is connected to — in a cluster, every member.
//
//   struct price { std::string symbol; std::int64_t cents; };
//   troupe::topic<price> prices = n.topic<price>("prices");   // n: a troupe::node
//   prices.subscribe(ticker).value();          // an actor whose protocol lists price
//   prices.publish(price{"ACME", 1234});        // any thread or actor, any node
//
// A topic is its name and its message type: n.topic<price>("prices") on every
// node names the same topic; a topic<quote>("prices") is another one. T must be
// serializable (troupe/runtime/serialization.hpp), copyable, and not a request.
// Subscribing an actor whose protocol does not list T is a compile error.
//
// What a subscriber gets (docs/delivery.md has the guide, and how it compares
// with Akka's Distributed PubSub, Erlang's pg and CAF's groups):
// - every publication made after its subscription reached the publisher's node
//   — at once on its own node; on another node once that node's announcement
//   arrived (await_subscribers() waits for it);
// - publications of one publisher (an actor, or a thread) in publish order, at
//   every distance;
// - at most once: a publication is not stored or sent again. A loss the node
//   knows of is counted in stats().dropped: a subscriber that had stopped, a full
//   bounded mailbox, a connection that refused the copy (overloaded, closed).
//   While the publisher's node, the subscriber's node and the connection between them
//   stay up, nothing else is lost.
// - A subscriber that stops is removed (it is monitored); one whose node goes
//   down or is cut off stops counting on the other nodes at once. When the
//   connection comes back, its node announces its subscribers again and
//   publications flow from then on; those made while it was cut off are not
//   delivered (they are not queued) — the member_down/member_up events, or the
//   subscriber counts, say when.
//
// Fan-out: one copy per subscribed node on the wire, however many subscribers
// it has; within a node, one shared immutable payload for all its subscribers
// (a type of at most 64 trivially copyable bytes is copied instead: cheaper).
// A handler taking const T& then reads the shared payload without a copy.
//
// A subscription is held by the node whose topic<T> made it; subscribing a ref
// to another node's actor works (its copies go through its proxy, one wire
// copy per such subscriber), but subscribing on the actor's own node is what
// gives one copy per node.
//
// Thread safety: a topic<T> is a small copyable handle; every member from any
// thread. await_subscribers() blocks: call it from plain threads, not handlers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "troupe/net/detail/topic_state.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/serialization.hpp"

namespace troupe {

// A message type a topic can carry.
template <class T>
concept topic_message = std::is_same_v<T, std::remove_cvref_t<T>> && serializable<T> &&
    std::is_default_constructible_v<T> && std::is_copy_constructible_v<T> && !request<T>;

// A ref<P> may subscribe to a topic<T>: its protocol lists T.
template <class P, class T>
concept subscribes_to = a_protocol<P> && accepts<P, T>;

// What one node knows of a topic (topic<T>::stats()). Counters count since the
// topic was first opened on this node, and are read without stopping anything.
struct topic_stats {
  std::size_t local_subscribers = 0;   // on this node
  std::size_t remote_subscribers = 0;  // on other nodes, as they announced them
  std::size_t subscribed_nodes = 0;    // other nodes with at least one subscriber
  std::uint64_t published = 0;         // publish() calls on this node
  std::uint64_t delivered = 0;         // messages put in local subscribers' mailboxes (from here and from peers)
  std::uint64_t sent = 0;              // publication records written to other nodes (one per node per publication)
  std::uint64_t received = 0;          // publications that came from other nodes
  std::uint64_t dropped = 0;           // copies known lost: see the top of this file
  [[nodiscard]] std::size_t subscribers() const noexcept { return local_subscribers + remote_subscribers; }
};

template <class T>
class topic {
  static_assert(topic_message<T>,
                "troupe::topic<T>: T must be a plain, serializable, default-constructible and copyable message "
                "type, and not a request (no `using reply`)");

 public:
  using message_type = T;

  // An empty handle: publish() returns no_such_name, subscribe() fails.
  topic() noexcept = default;

  // "" for an empty handle.
  [[nodiscard]] const std::string& name() const noexcept { return state_ ? state_->name() : empty_name(); }

  // Sends `message` to every subscriber (see the top of this file). Errors:
  // system_stopped once the node has stopped, no_such_name for an empty
  // handle. Copies that did not arrive are counted in stats().dropped.
  std::error_code publish(const T& message) const {
    if (!state_) return make_error_code(errc::no_such_name);
    return state_->publish(message);
  }
  std::error_code publish(T&& message) const {
    if (!state_) return make_error_code(errc::no_such_name);
    return state_->publish(std::move(message));
  }

  // From now on `subscriber` receives every publication (one copy however often
  // it subscribes). Errors: no_such_actor (an empty ref, or an actor of another
  // system), system_stopped.
  template <a_protocol P>
  expected<void> subscribe(const ref<P>& subscriber) const {
    static_assert(subscribes_to<P, T>,
                  "troupe: this subscriber's protocol does not accept the topic's message type "
                  "(see 'P = troupe::protocol<...>' and 'T = ...' in this error's context)");
    if (!state_) return error(errc::no_such_name, "subscribe() on an empty topic handle");
    return state_->subscribe(detail::ref_access::get(subscriber), P::template index_of<T>);
  }

  // No publication reaches `subscriber` through this topic after this returns
  // (one already in its mailbox is still handled). A ref that is not subscribed: no-op.
  template <a_protocol P>
  void unsubscribe(const ref<P>& subscriber) const {
    if (state_) state_->unsubscribe(detail::ref_access::get(subscriber));
  }

  [[nodiscard]] topic_stats stats() const { return state_ ? stats_of(state_->counts()) : topic_stats{}; }

  // Waits until the topic has at least `count` subscribers, here and on the
  // nodes whose announcements arrived (errc::timeout otherwise). A publisher
  // that must not miss a subscriber on another node waits for it here first.
  expected<void> await_subscribers(std::size_t count, std::chrono::milliseconds timeout) const {
    return await_stats([count](const topic_stats& s) { return s.subscribers() >= count; }, timeout,
                       "at least " + std::to_string(count) + " subscriber(s)");
  }

  // Waits until `done(stats())` holds, checked now and whenever the topic's
  // subscribers change here or on another node (not when only a counter moves):
  //   prices.await_stats([](const troupe::topic_stats& s) { return s.remote_subscribers == 0; }, 5s);
  expected<void> await_stats(const std::function<bool(const topic_stats&)>& done, std::chrono::milliseconds timeout,
                             std::string_view what = "the awaited subscribers") const {
    if (!state_) return error(errc::no_such_name, "await on an empty topic handle");
    return state_->await_counts([&](const detail::topic_counts& c) { return done(stats_of(c)); }, timeout, what);
  }

  explicit operator bool() const noexcept { return static_cast<bool>(state_); }
  friend bool operator==(const topic& a, const topic& b) noexcept { return a.state_ == b.state_; }

 private:
  friend class node;
  explicit topic(std::shared_ptr<detail::topic_state<T>> state) noexcept : state_(std::move(state)) {}
  static topic_stats stats_of(const detail::topic_counts& c) noexcept {
    return topic_stats{c.local_subscribers, c.remote_subscribers,
                       c.subscribed_nodes,  c.published,
                       c.delivered,         c.sent,
                       c.received,          c.dropped};
  }
  static const std::string& empty_name() noexcept {
    static const std::string empty;
    return empty;
  }

  std::shared_ptr<detail::topic_state<T>> state_;
};

}  // namespace troupe
