// topic_registry: a node's topics, and the keeper actor (see topic_registry.hpp).
#include "topics/topic_registry.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

#include "connection/connection.hpp"
#include "node/node_core.hpp"
#include "topics/topic_records.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/signals.hpp"

namespace troupe::detail {

namespace {

// Monitors the subscribers (a down removes one from every topic) and writes
// every topic_interest record this node sends (see topic_registry.hpp).
class topic_keeper final : public actor<topic_keeper_protocol> {
 public:
  explicit topic_keeper(topic_registry& registry) : registry_(registry) {}

  void on(keep_subscriber k) {
    cell* c = k.who.get();
    if (watched_.find(c) != watched_.end()) return;
    const std::uint64_t id = monitor(addr_access::make(c));
    watched_.emplace(c, watched{std::move(k.who), id});
  }

  void on(const forget_subscriber& f) {
    auto it = watched_.find(f.who.get());
    // Still subscribed to another topic (or again): keep watching it.
    if (it == watched_.end() || registry_.subscribed_anywhere(f.who.get())) return;
    demonitor(it->second.monitor);
    watched_.erase(it);
  }

  void on(const announce_topic& a) { announce(a.key); }

  void on(const greet_node& g) {
    const std::shared_ptr<connection> c = g.via.lock();
    if (!c) return;
    // What every other connection has been told; a change not announced yet
    // reaches this one with the others when its announce_topic runs.
    for (const auto& [key, count] : announced_) registry_.send_interest(*c, key, count);
  }

  void on(const troupe::down& d) {
    const cell* c = addr_access::get(d.who);
    if (auto it = watched_.find(c); it != watched_.end() && it->second.monitor == d.monitor) watched_.erase(it);
    for (const topic_key& key : registry_.subscriber_stopped(c)) announce(key);
  }

 private:
  struct watched {
    cell_ptr who;
    std::uint64_t monitor = 0;
  };

  // Tells every connection the topic's count, if it changed since the last time.
  void announce(const topic_key& key) {
    const std::uint64_t now = registry_.local_subscribers(key);
    auto it = announced_.find(key);
    const std::uint64_t before = it == announced_.end() ? 0 : it->second;
    if (now == before) return;
    if (now == 0) {
      announced_.erase(it);
    } else {
      announced_[key] = now;
    }
    registry_.send_interest_to_all(key, now);
  }

  topic_registry& registry_;
  std::unordered_map<const cell*, watched> watched_;
  // What every live connection was told (counts above 0).
  std::map<topic_key, std::uint64_t, topic_key_less> announced_;
};

bool has_subscriber(const topic_fanout* f, const cell* c) {
  return f != nullptr &&
         std::any_of(f->local.begin(), f->local.end(), [&](const topic_subscriber& s) { return s.cell.get() == c; });
}

}  // namespace

topic_registry::topic_registry(node_core& node) : node_(node) {}

topic_registry::~topic_registry() = default;

void topic_registry::start() {
  auto keeper = node_.owner().spawn<topic_keeper>(*this);
  keeper_ = keeper;
}

void topic_registry::stop() noexcept {
  topic_map topics;
  {
    troupe::mutex_lock lock(mutex_);
    stopped_ = true;
    for (auto& [key, topic] : topics_) topic->set_fanout(nullptr);
    // Let go outside the lock: a topic nobody else holds is destroyed here,
    // and it holds this registry.
    topics.swap(topics_);
    interests_.clear();
    topics_per_peer_.clear();
  }
  changed_.notify_all();
}

std::shared_ptr<topic_state_base> topic_registry::open(const std::string& name, std::uint64_t type_id,
                                                       const void* type_tag, const topic_factory& make) {
  if (!valid_topic_name(name)) {
    throw troupe_error(error(errc::no_such_name, "invalid topic name '" + name + "': 1 to " +
                                                     std::to_string(max_topic_name) + " bytes of printable ASCII"));
  }
  troupe::mutex_lock lock(mutex_);
  if (stopped_) throw troupe_error(error(errc::system_stopped, "the node is shutting down"));
  sweep();
  if (auto it = topics_.find(topic_key_view{name, type_id}); it != topics_.end()) {
    if (it->second->type_tag() != type_tag) {
      throw troupe_error(error(errc::protocol_mismatch, "topic '" + name +
                                                            "': two message types of this program go by " +
                                                            "the wire name " + std::string(it->second->type_name())));
    }
    return it->second;
  }
  std::shared_ptr<topic_state_base> topic = make(shared_from_this());
  rebuild(*topic, {});
  topics_.emplace(topic_key{name, type_id}, topic);
  return topic;
}

// --- subscriptions ----------------------------------------------------------------------

expected<void> topic_registry::subscribe(topic_state_base& topic, cell* c, std::uint32_t index) {
  if (c == nullptr) return error(errc::no_such_actor, "subscribe() of an empty ref");
  {
    troupe::mutex_lock lock(mutex_);
    // Checked first: a handle may outlive its node, and node_ with it.
    if (stopped_) return error(errc::system_stopped, "the node is shutting down");
    if (&c->owner() != static_cast<troupe::system*>(&node_.owner())) {
      return error(errc::no_such_actor, "the subscriber belongs to another actor system than the topic's node");
    }
    const std::shared_ptr<const topic_fanout> current = topic.fanout();
    if (has_subscriber(current.get(), c)) return {};
    std::vector<topic_subscriber> local = current ? current->local : std::vector<topic_subscriber>{};
    local.push_back(topic_subscriber{cell_ptr(c), index});
    rebuild(topic, std::move(local));
  }
  changed_.notify_all();
  tell_keeper(keep_subscriber{cell_ptr(c)});
  tell_keeper(announce_topic{topic_key{topic.name(), topic.type_id()}});
  return {};
}

void topic_registry::unsubscribe(topic_state_base& topic, cell* c) {
  if (c == nullptr) return;
  {
    troupe::mutex_lock lock(mutex_);
    if (stopped_ || !remove_subscriber(topic, c)) return;
  }
  changed_.notify_all();
  tell_keeper(forget_subscriber{cell_ptr(c)});
  tell_keeper(announce_topic{topic_key{topic.name(), topic.type_id()}});
}

std::vector<topic_key> topic_registry::subscriber_stopped(const cell* c) {
  std::vector<topic_key> changed;
  {
    troupe::mutex_lock lock(mutex_);
    if (stopped_) return changed;
    for (auto& [key, topic] : topics_) {
      if (remove_subscriber(*topic, c)) changed.push_back(key);
    }
    sweep();
  }
  if (!changed.empty()) changed_.notify_all();
  return changed;
}

bool topic_registry::subscribed_anywhere(const cell* c) {
  troupe::mutex_lock lock(mutex_);
  return std::any_of(topics_.begin(), topics_.end(),
                     [&](const auto& entry) { return has_subscriber(entry.second->fanout().get(), c); });
}

std::uint64_t topic_registry::local_subscribers(const topic_key& key) {
  troupe::mutex_lock lock(mutex_);
  auto it = topics_.find(key);
  if (it == topics_.end()) return 0;
  const std::shared_ptr<const topic_fanout> f = it->second->fanout();
  return f ? f->local.size() : 0;
}

expected<void> topic_registry::await_counts(const topic_state_base& topic,
                                            const std::function<bool(const topic_counts&)>& done, time_limit until,
                                            std::string_view what) {
  troupe::mutex_lock lock(mutex_);
  topic_counts seen;
  const bool reached = changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(mutex_) {
    seen = topic.counts();
    return stopped_ || done(seen);
  });
  if (stopped_) return error(errc::system_stopped, "the node is shutting down");
  if (!reached) {
    return error(errc::timeout, "topic '" + topic.name() + "': " + std::string(what) + " not reached in time (" +
                                    std::to_string(seen.local_subscribers) + " subscriber(s) here, " +
                                    std::to_string(seen.remote_subscribers) + " on " +
                                    std::to_string(seen.subscribed_nodes) + " other node(s))");
  }
  return {};
}

// --- fan-out ----------------------------------------------------------------------------

void topic_registry::rebuild(topic_state_base& topic, std::vector<topic_subscriber> local) {
  auto next = std::make_shared<topic_fanout>();
  next->local = std::move(local);
  if (auto it = interests_.find(topic_key_view{topic.name(), topic.type_id()}); it != interests_.end()) {
    // One connection per peer node: two at once to one node (both dialed at the
    // same moment) must not deliver each publication twice.
    std::set<std::string> peers;
    for (const auto& [key, interest] : it->second) {
      if (!interest.via->alive() || interest.via->closing()) continue;
      if (!peers.insert(interest.via->peer()->name).second) continue;
      next->nodes.push_back(interest.via);
      next->remote_subscribers += interest.subscribers;
    }
  }
  topic.set_fanout(std::move(next));
}

bool topic_registry::remove_subscriber(topic_state_base& topic, const cell* c) {
  const std::shared_ptr<const topic_fanout> current = topic.fanout();
  if (!has_subscriber(current.get(), c)) return false;
  std::vector<topic_subscriber> local;
  for (const topic_subscriber& s : current->local) {
    if (s.cell.get() != c) local.push_back(s);
  }
  rebuild(topic, std::move(local));
  return true;
}

void topic_registry::sweep() {
  for (auto it = topics_.begin(); it != topics_.end();) {
    // Under the lock, only this map can hand out a reference: a count of 1
    // cannot grow behind our back.
    const std::shared_ptr<const topic_fanout> f = it->second->fanout();
    if (it->second.use_count() == 1 && (!f || f->local.empty())) {
      it = topics_.erase(it);  // it holds no subscribers: nothing runs in its destructor
    } else {
      ++it;
    }
  }
}

// --- connections ----------------------------------------------------------------------

void topic_registry::connection_up(const std::shared_ptr<connection>& c) {
  try {
    (void)keeper_.tell(greet_node{c});
  } catch (...) {
    node_.log("could not tell a new connection this node's topic subscribers (out of memory)");
  }
}

void topic_registry::connection_lost(const connection& c) noexcept {
  {
    troupe::mutex_lock lock(mutex_);
    if (stopped_ || topics_per_peer_.erase(&c) == 0) return;
    try {
      for (auto it = interests_.begin(); it != interests_.end();) {
        if (it->second.erase(&c) == 0) {
          ++it;
          continue;
        }
        if (auto topic = topics_.find(it->first); topic != topics_.end()) {
          const std::shared_ptr<const topic_fanout> current = topic->second->fanout();
          rebuild(*topic->second, current ? current->local : std::vector<topic_subscriber>{});
        }
        it = it->second.empty() ? interests_.erase(it) : std::next(it);
      }
    } catch (...) {
      node_.log("out of memory while forgetting a lost connection's topic subscribers");
    }
  }
  changed_.notify_all();
}

std::optional<std::string> topic_registry::handle_interest(const std::shared_ptr<connection>& via,
                                                           std::span<const std::byte> body) {
  topic_interest interest;
  if (auto defect = parse_interest(body, interest)) return defect;
  if (interest.subscribers > max_announced_subscribers) {
    return "topic_interest record with " + std::to_string(interest.subscribers) + " subscribers";
  }
  {
    troupe::mutex_lock lock(mutex_);
    if (stopped_) return std::nullopt;
    const topic_key_view key{interest.name, interest.type_id};
    auto peers = interests_.find(key);
    if (interest.subscribers == 0) {
      if (peers == interests_.end() || peers->second.erase(via.get()) == 0) return std::nullopt;
      if (--topics_per_peer_[via.get()] == 0) topics_per_peer_.erase(via.get());
      if (peers->second.empty()) interests_.erase(peers);
    } else {
      if (peers == interests_.end()) peers = interests_.try_emplace(topic_key{interest.name, interest.type_id}).first;
      auto [entry, added] = peers->second.try_emplace(via.get(), peer_interest{via, interest.subscribers});
      if (added && ++topics_per_peer_[via.get()] > max_topics_per_peer) {
        return "more than " + std::to_string(max_topics_per_peer) + " topics announced";
      }
      entry->second.subscribers = interest.subscribers;
    }
    if (auto topic = topics_.find(key); topic != topics_.end()) {
      const std::shared_ptr<const topic_fanout> current = topic->second->fanout();
      rebuild(*topic->second, current ? current->local : std::vector<topic_subscriber>{});
    }
  }
  changed_.notify_all();
  return std::nullopt;
}

std::optional<std::string> topic_registry::handle_publication(wire_context& context, std::span<const std::byte> body,
                                                              std::vector<cell*>* run_here) {
  publication_view publication;
  if (auto defect = parse_publication(body, publication)) return defect;
  std::shared_ptr<topic_state_base> topic;
  {
    troupe::mutex_lock lock(mutex_);
    if (auto it = topics_.find(topic_key_view{publication.name, publication.type_id}); it != topics_.end()) {
      topic = it->second;
    }
  }
  // Nobody here subscribes (any more: the peer had not heard yet). Not a defect.
  if (!topic) return std::nullopt;
  const auto announced = context.via->peer_fingerprint(publication.type_id);
  if (!announced || *announced != topic->fingerprint()) {
    return "publication of type " + std::string(topic->type_name()) + " whose schema differs from this node's";
  }
  wire_reader in(publication.payload, &context);
  if (!topic->deliver_from_peer(in, run_here)) {
    return "malformed publication of topic '" + topic->name() + "' (" + std::string(topic->type_name()) +
           "): " + in.failure();
  }
  return std::nullopt;
}

void topic_registry::send_interest(connection& to, const topic_key& key, std::uint64_t count) noexcept {
  try {
    (void)to.write(record_kind::topic_interest, encode_interest(topic_interest{key.type_id, count, key.name}));
  } catch (...) {
    node_.log("could not announce a topic's subscribers (out of memory)");
  }
}

void topic_registry::send_interest_to_all(const topic_key& key, std::uint64_t count) noexcept {
  try {
    const std::vector<std::byte> body = encode_interest(topic_interest{key.type_id, count, key.name});
    for (const std::shared_ptr<connection>& c : node_.live_connections()) {
      (void)c->write(record_kind::topic_interest, body);
    }
  } catch (...) {
    node_.log("could not announce a topic's subscribers (out of memory)");
  }
}

void topic_registry::tell_keeper(keep_subscriber message) noexcept {
  try {
    (void)keeper_.tell(std::move(message));
  } catch (...) {
    node_.log("could not monitor a topic subscriber (out of memory)");
  }
}

void topic_registry::tell_keeper(forget_subscriber message) noexcept {
  try {
    (void)keeper_.tell(std::move(message));
  } catch (...) {
  }
}

void topic_registry::tell_keeper(announce_topic message) noexcept {
  try {
    (void)keeper_.tell(std::move(message));
  } catch (...) {
    node_.log("could not announce a topic's subscribers (out of memory)");
  }
}

}  // namespace troupe::detail
