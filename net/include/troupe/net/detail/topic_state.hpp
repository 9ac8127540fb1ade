// The machinery behind troupe::topic<T> (troupe/net/topic.hpp): one topic's
// state on one node, and the half of it that knows T (publish, deliver). Not
// user-facing; installed because topic<T> is a template.
//
// Design: a publication reads the topic's fan-out — its local subscribers and
// the peer nodes that have subscribers — as one immutable snapshot
// (topic_fanout), taken under a short lock and used without it; a membership
// change builds a new snapshot (net/topics/topic_registry.cpp, the only
// writer). So publish() never holds a lock while it enqueues or writes, and
// one publication sees one consistent membership.
//
// Local fan-out: a message type that is trivially copyable and at most 64 bytes
// is copied into each subscriber's envelope (cheaper than a shared count that
// every subscriber's thread would touch); any other type is one immutable
// payload shared by every local subscriber's envelope (shared_message_envelope,
// runtime/detail/reply.hpp): a handler taking const T& reads it in place, one
// taking T gets its own copy on its own thread. Remote fan-out: the message is
// encoded once and written once per subscribed node; that node delivers it to
// its own subscribers the same way.
//
// Thread safety: publish(), subscribe(), unsubscribe(), counts(),
// await_counts() from any thread; deliver_from_peer() on a connection's
// reader; set_fanout() by the registry alone.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/detail/remote.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/serialization.hpp"

namespace troupe::detail {

class topic_registry;  // net/topics/topic_registry.hpp: a node's topics

// A local subscriber: the actor (or the proxy of a remote one) and the index of
// the topic's message type in its protocol.
struct topic_subscriber {
  cell_ptr cell;
  std::uint32_t index = 0;
};

// Where one publication goes: immutable once built.
struct topic_fanout {
  std::vector<topic_subscriber> local;
  // One connection per peer node that has subscribers (never two to one node).
  std::vector<std::shared_ptr<connection>> nodes;
  std::size_t remote_subscribers = 0;  // on those nodes, as they announced
};

// A snapshot of a topic's membership and counters (troupe::topic_stats).
struct topic_counts {
  std::size_t local_subscribers = 0;
  std::size_t remote_subscribers = 0;
  std::size_t subscribed_nodes = 0;
  std::uint64_t published = 0;
  std::uint64_t delivered = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;
};

// T travels as one shared immutable payload to the local subscribers of a
// publication (see the top of this file), rather than as a copy per subscriber.
template <class T>
inline constexpr bool topic_shares_payload = !(std::is_trivially_copyable_v<T> && sizeof(T) <= 64);

class topic_state_base {
 public:
  topic_state_base(std::shared_ptr<topic_registry> registry, node_core* node, std::string name, std::uint64_t type_id,
                   std::uint64_t fingerprint, std::string_view type_name, const void* type_tag);
  virtual ~topic_state_base();
  topic_state_base(const topic_state_base&) = delete;
  topic_state_base& operator=(const topic_state_base&) = delete;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::uint64_t type_id() const noexcept { return type_id_; }
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }
  [[nodiscard]] std::string_view type_name() const noexcept { return type_name_; }
  // Tells topic_state<T> apart from a topic_state<U> whose U has T's wire name.
  [[nodiscard]] const void* type_tag() const noexcept { return type_tag_; }

  // The current fan-out; null once the node has stopped.
  [[nodiscard]] std::shared_ptr<const topic_fanout> fanout() const;
  // Registry only (under its lock): the next publication uses `fanout`.
  void set_fanout(std::shared_ptr<const topic_fanout> fanout) noexcept;

  // `c` receives the topic's messages as its protocol's message number `index`.
  expected<void> subscribe(cell* c, std::uint32_t index);
  void unsubscribe(cell* c);
  [[nodiscard]] topic_counts counts() const;
  // Blocks (a plain thread) until `done(counts())` holds, checked whenever the
  // topic's subscribers change; `what` names the wait in a timeout's text.
  expected<void> await_counts(const std::function<bool(const topic_counts&)>& done, std::chrono::milliseconds timeout,
                              std::string_view what);

  // A publication from a peer, on its connection's reader: decodes the message
  // once and gives it to the local subscribers (their actors go on `run_here`).
  // False if the payload does not decode exactly (`in` says why).
  virtual bool deliver_from_peer(wire_reader& in, std::vector<cell*>* run_here) = 0;

 protected:
  // The node's half of a publication: one publication record per subscribed
  // node; `payload` is the encoded message.
  void send_to_nodes(const topic_fanout& fanout, std::span<const std::byte> payload) noexcept;
  [[nodiscard]] node_core* node() const noexcept { return node_; }

  void count_published() noexcept {
    // relaxed: a statistic; nothing is published through it.
    published_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_received() noexcept {
    // relaxed: a statistic.
    received_.fetch_add(1, std::memory_order_relaxed);
  }
  void count_delivery(std::uint64_t delivered, std::uint64_t dropped) noexcept {
    // relaxed: statistics.
    if (delivered != 0) delivered_.fetch_add(delivered, std::memory_order_relaxed);
    if (dropped != 0) dropped_.fetch_add(dropped, std::memory_order_relaxed);
  }

 private:
  const std::shared_ptr<topic_registry> registry_;
  node_core* const node_;
  const std::string name_;
  const std::uint64_t type_id_;
  const std::uint64_t fingerprint_;
  const std::string_view type_name_;
  const void* const type_tag_;
  const std::vector<std::byte> head_;  // a publication record's type id and name

  mutable troupe::mutex fanout_mutex_;
  std::shared_ptr<const topic_fanout> fanout_ TROUPE_GUARDED_BY(fanout_mutex_);

  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> sent_{0};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<bool> refusal_logged_{false};  // a peer's schema of T differs: said once
};

template <class T>
class topic_state final : public topic_state_base {
  static_assert(crosses_the_wire<T>(), "troupe: a topic's message type must be troupe::serializable");

 public:
  topic_state(std::shared_ptr<topic_registry> registry, node_core* node, std::string name)
      : topic_state_base(std::move(registry), node, std::move(name), type_id_of<T>(), fingerprint_of<T>(),
                         type_name_of<T>(), &tag) {
    // Registers protocol<T>, so this program announces T's schema in its
    // handshakes and peers can check the publications it sends them.
    (void)protocol_table_of<protocol<T>>();
  }

  // M is T or const T&.
  template <class M>
  std::error_code publish(M&& message) {
    const std::shared_ptr<const topic_fanout> f = fanout();
    if (!f) return make_error_code(errc::system_stopped);
    count_published();
    if (!f->nodes.empty()) encode_and_send(*f, message);
    if (!f->local.empty()) deliver(*f, std::forward<M>(message), nullptr);
    return {};
  }

  bool deliver_from_peer(wire_reader& in, std::vector<cell*>* run_here) override {
    T value{};
    if (!troupe::decode(in, value)) return false;
    if (in.remaining() != 0) {
      in.fail("trailing bytes after the message");
      return false;
    }
    count_received();
    const std::shared_ptr<const topic_fanout> f = fanout();
    if (f && !f->local.empty()) deliver(*f, std::move(value), run_here);
    return true;
  }

 private:
  void encode_and_send(const topic_fanout& f, const T& message) noexcept {
    try {
      std::vector<std::byte>& buffer = encode_buffer();
      buffer.clear();
      wire_context context{node(), nullptr};
      wire_writer out(buffer, &context);
      troupe::encode(out, message);
      send_to_nodes(f, buffer);
    } catch (...) {
      count_delivery(0, f.nodes.size());  // out of memory while encoding: no node gets it
    }
  }

  template <class M>
  void deliver(const topic_fanout& f, M&& message, std::vector<cell*>* run_here) noexcept {
    std::uint64_t delivered = 0;
    try {
      if constexpr (topic_shares_payload<T>) {
        const auto shared = std::make_shared<const T>(std::forward<M>(message));
        for (const topic_subscriber& s : f.local) {
          // A proxy encodes the shared object itself; a local actor's envelope points at it.
          const std::error_code ec = s.cell->is_remote()
                                         ? s.cell->forward_message(s.index, shared.get())
                                         : s.cell->enqueue(new shared_message_envelope<T>(s.index, shared), run_here);
          delivered += ec ? 0 : 1;
        }
      } else {
        for (const topic_subscriber& s : f.local) {
          const std::error_code ec = s.cell->is_remote()
                                         ? s.cell->forward_message(s.index, &message)
                                         : s.cell->enqueue(new message_envelope<T>(s.index, message), run_here);
          delivered += ec ? 0 : 1;
        }
      }
    } catch (...) {
      // Out of memory for an envelope: the subscribers not reached yet miss it.
    }
    count_delivery(delivered, f.local.size() - delivered);
  }

  static inline const char tag = 0;  // its address is this T's type_tag()

 public:
  static const void* type_tag_of() noexcept { return &tag; }
};

}  // namespace troupe::detail
