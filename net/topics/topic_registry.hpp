// topic_registry: a node's topics. Owns: which topics exist here, their local
// subscribers, the subscriber counts peers announced, the fan-out snapshots
// publications read, and the keeper actor. May use: node/, connection/, topics/, runtime/.
//
// The user's view is troupe/net/topic.hpp; docs/delivery.md is the guide and
// docs/wire.md has the two records (topics/topic_records.hpp).
//
// How membership travels: every node tells each peer, over their connection,
// how many subscribers it has for each topic (a topic_interest record: the
// count, 0 when none are left). It tells a new connection the counts it has
// announced so far, and every connection each change. A publisher's node
// writes one publication record to each peer whose count is above 0; the peer
// gives it to its own subscribers. A connection that is lost takes its peer's
// counts with it; when it comes back, the peer announces them again. So the
// nodes need no membership service of their own: a cluster's full mesh of
// connections is what makes a topic cluster-wide.
//
// The keeper: an actor of the node (spawned at start, like the anchor) that
// monitors every subscriber — a subscriber that stops is removed when its down
// arrives — and writes every topic_interest record. Announcing from one actor
// keeps the counts on each connection in order without holding a lock while
// writing: each announcement carries the count current when the keeper runs,
// so the last one a peer gets is the latest.
//
// Thread safety: every member from any thread, except handle_interest() and
// handle_publication() (a connection's reader) and start()/stop() (node_core).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/detail/topic_state.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"

namespace troupe::detail {

class node_core;
class connection;

// A topic: its name and its message type.
struct topic_key {
  std::string name;
  std::uint64_t type_id = 0;
};
// A key to look up without copying a name (a publication's, read off the wire).
// Maps of topics order by topic_key_less.
struct topic_key_view {
  std::string_view name;
  std::uint64_t type_id = 0;
};
struct topic_key_less {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    if (a.type_id != b.type_id) return a.type_id < b.type_id;
    return std::string_view(a.name) < std::string_view(b.name);
  }
};

// What the keeper is told (topic_registry.cpp).
struct keep_subscriber {
  cell_ptr who;
};
struct forget_subscriber {
  cell_ptr who;
};
struct announce_topic {
  topic_key key;
};
struct greet_node {
  std::weak_ptr<connection> via;
};
using topic_keeper_protocol = protocol<keep_subscriber, forget_subscriber, announce_topic, greet_node>;

class topic_registry : public std::enable_shared_from_this<topic_registry> {
 public:
  explicit topic_registry(node_core& node);
  ~topic_registry();
  topic_registry(const topic_registry&) = delete;
  topic_registry& operator=(const topic_registry&) = delete;

  // node_core::start(), before any connection: spawns the keeper.
  void start();
  // node_core::stop(), first: publications report system_stopped from now on,
  // subscribers and peers' counts are let go. Idempotent.
  void stop() noexcept;

  // node::topic<T>(): the topic's state, made by `make` if the node has none
  // yet. Throws troupe_error: an invalid name, a stopped node, or another type
  // of this program with T's wire name.
  using topic_factory = std::function<std::shared_ptr<topic_state_base>(std::shared_ptr<topic_registry>)>;
  std::shared_ptr<topic_state_base> open(const std::string& name, std::uint64_t type_id, const void* type_tag,
                                         const topic_factory& make);

  // --- topic_state_base ------------------------------------------------------------
  expected<void> subscribe(topic_state_base& topic, cell* c, std::uint32_t index);
  void unsubscribe(topic_state_base& topic, cell* c);
  expected<void> await_counts(const topic_state_base& topic, const std::function<bool(const topic_counts&)>& done,
                              time_limit until, std::string_view what);
  [[nodiscard]] node_core& node() const noexcept { return node_; }

  // --- connections -----------------------------------------------------------------
  // node_core: a connection came up (tell it this node's counts) / was lost
  // (forget its peer's counts).
  void connection_up(const std::shared_ptr<connection>& c);
  void connection_lost(const connection& c) noexcept;
  // The records of topics (a connection's reader): the defect text if the peer broke the protocol.
  std::optional<std::string> handle_interest(const std::shared_ptr<connection>& via, std::span<const std::byte> body);
  std::optional<std::string> handle_publication(wire_context& context, std::span<const std::byte> body,
                                                std::vector<cell*>* run_here);

  // --- the keeper --------------------------------------------------------------------
  // `c` stopped: it leaves every topic. Returns the topics whose counts changed.
  std::vector<topic_key> subscriber_stopped(const cell* c);
  [[nodiscard]] bool subscribed_anywhere(const cell* c);
  [[nodiscard]] std::uint64_t local_subscribers(const topic_key& key);
  // Writes `count` for `key` to `to`, or to every live connection.
  void send_interest(connection& to, const topic_key& key, std::uint64_t count) noexcept;
  void send_interest_to_all(const topic_key& key, std::uint64_t count) noexcept;

  // A peer may announce at most this many topics (more is a defect), and a
  // count of at most this many subscribers.
  static constexpr std::size_t max_topics_per_peer = 65536;
  static constexpr std::uint64_t max_announced_subscribers = std::uint64_t{1} << 32;

 private:
  struct peer_interest {
    std::shared_ptr<connection> via;
    std::uint64_t subscribers = 0;
  };
  using topic_map = std::map<topic_key, std::shared_ptr<topic_state_base>, topic_key_less>;

  // Builds and installs the topic's next fan-out: `local`, and the peers that announced it.
  void rebuild(topic_state_base& topic, std::vector<topic_subscriber> local) TROUPE_REQUIRES(mutex_);
  // Rebuilds the topic's fan-out without c; false (and nothing rebuilt) when c
  // is not one of its local subscribers.
  bool remove_subscriber(topic_state_base& topic, const cell* c) TROUPE_REQUIRES(mutex_);
  // Forgets topics nobody here subscribes to and no handle refers to.
  void sweep() TROUPE_REQUIRES(mutex_);
  void tell_keeper(keep_subscriber message) noexcept;
  void tell_keeper(forget_subscriber message) noexcept;
  void tell_keeper(announce_topic message) noexcept;

  node_core& node_;
  // Set by start() before the node has connections or topics; never changed.
  ref<topic_keeper_protocol> keeper_;

  troupe::mutex mutex_;
  std::condition_variable_any changed_;  // a fan-out changed (await_counts)
  bool stopped_ TROUPE_GUARDED_BY(mutex_) = false;
  topic_map topics_ TROUPE_GUARDED_BY(mutex_);
  // What each peer announced: topic -> connection -> count (only counts above 0).
  std::map<topic_key, std::map<const connection*, peer_interest>, topic_key_less> interests_ TROUPE_GUARDED_BY(mutex_);
  std::map<const connection*, std::size_t> topics_per_peer_ TROUPE_GUARDED_BY(mutex_);
};

}  // namespace troupe::detail
