// cluster_core: membership, events and cluster-wide names (see cluster_core.hpp).
#include "cluster/cluster_core.hpp"

#include <algorithm>
#include <chrono>

#include "node/node_core.hpp"
#include "troupe/runtime/serialization.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace {

constexpr std::size_t max_gossip_members = 4096;
constexpr std::size_t max_gossip_names = 65536;
constexpr std::size_t max_global_name = 256;

// How long the thread waits before dialing a member again after a failed dial.
constexpr auto redial_pause = std::chrono::milliseconds(250);
constexpr int max_dial_failures = 4;

bool valid_global_name(const std::string& name) {
  return !name.empty() && name.size() <= max_global_name && name.find('/') == std::string::npos &&
         name.find(':') == std::string::npos;
}

}  // namespace

cluster_core::cluster_core(node_core& node, cluster_config config) : node_(node), config_(std::move(config)) {}

cluster_core::~cluster_core() { stop(); }

void cluster_core::start() {
  self_ = member{node_.name(), node_.incarnation(), node_.endpoint()};
  if (self_.endpoint.empty()) {
    throw troupe_error(error(errc::no_such_node, "node '" + node_.name() +
                                                     "' joins a cluster, so it must listen on TCP "
                                                     "(node_config::listen, e.g. tcp://0.0.0.0:0)"));
  }
  // release: connection_up() and handle_gossip() on other threads read self_.
  started_.store(true, std::memory_order_release);
  if (config_.provider == membership_provider_kind::etcd) {
    provider_ = make_etcd_provider(config_);
    if (auto started = provider_->start(self_, *this); !started) {
      provider_.reset();
      throw troupe_error(error(started.error().code(),
                               "joining the cluster through etcd at " + config_.etcd + ": " + started.error().text()));
    }
  }
  thread_ = std::thread([this] { loop(); });
}

void cluster_core::stop() noexcept {
  {
    troupe::mutex_lock lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (provider_) provider_->stop();  // idempotent
}

// --- events --------------------------------------------------------------------------

void cluster_core::mark_up(const member& m, std::uint64_t host, std::set<std::string> names) {
  auto it = up_.find(m.name);
  if (it != up_.end() && it->second.who.incarnation == m.incarnation) {
    if (it->second.names != names) {
      it->second.names = std::move(names);
      changed_.notify_all();  // name_owner() waits for names
    }
    return;
  }
  if (it != up_.end()) mark_down(m.name, "node '" + m.name + "' restarted as a new incarnation");
  to_dial_.erase(m.name);
  up_[m.name] = up_member{m, host, std::move(names)};
  for (auto& s : subscribers_) s.up(member_up{m});
  // Tell the other members now, not at the next interval: they connect to the
  // newcomer one gossip hop after this node did.
  gossip_now_ = uses_gossip();
  changed_.notify_all();
}

void cluster_core::mark_down(const std::string& name, const std::string& why) {
  auto it = up_.find(name);
  if (it == up_.end()) return;
  const member gone = it->second.who;
  up_.erase(it);
  for (auto& s : subscribers_) s.down(member_down{gone, why});
  changed_.notify_all();
}

void cluster_core::subscribe(std::function<void(const member_up&)> up, std::function<void(const member_down&)> down) {
  troupe::mutex_lock lock(mutex_);
  up(member_up{self_});
  for (auto& [name, m] : up_) up(member_up{m.who});
  subscribers_.push_back(subscriber{std::move(up), std::move(down)});
}

std::vector<member> cluster_core::members() {
  troupe::mutex_lock lock(mutex_);
  std::vector<member> all{self_};
  for (auto& [name, m] : up_) all.push_back(m.who);
  std::sort(all.begin(), all.end(), [](const member& a, const member& b) { return a.name < b.name; });
  return all;
}

expected<void> cluster_core::await_members(std::size_t count, time_limit until) {
  troupe::mutex_lock lock(mutex_);
  if (!changed_.wait_until(lock, until,
                           [&]() TROUPE_REQUIRES(mutex_) { return stopping_ || up_.size() + 1 >= count; }) ||
      stopping_) {
    std::string have = "'" + self_.name + "'";
    for (auto& [name, m] : up_) have += ", '" + name + "'";
    return error(errc::timeout, "the cluster has " + std::to_string(up_.size() + 1) + " member(s) (" + have +
                                    "), not " + std::to_string(count) + ", in time");
  }
  return {};
}

// --- connections ---------------------------------------------------------------------------

void cluster_core::connection_up(const std::shared_ptr<connection>& c) {
  // acquire: pairs with the release in start(); before it, the thread's first
  // round of gossip greets the connections.
  if (!started_.load(std::memory_order_acquire)) return;
  if (uses_gossip()) {
    gossip_to(c);
    return;
  }
  const peer_info& peer = *c->peer();
  troupe::mutex_lock lock(mutex_);
  if (stopping_) return;
  if (auto it = registry_.find(peer.name); it != registry_.end() && it->second.incarnation == peer.incarnation) {
    mark_up(it->second, peer.host, {});
  }
}

void cluster_core::connection_lost(const std::shared_ptr<connection>& c, const std::string& why) {
  // Both providers: a member is up only while connected. With etcd it stays in
  // the registry, and is up again when the connection is (the TCP transport
  // re-dials it) — unless its lease expires first.
  const peer_info& peer = *c->peer();
  // Another live connection to the same incarnation (both dialed at once) keeps it up.
  if (auto other = node_.live_connection(peer.name); other && other->peer()->incarnation == peer.incarnation) return;
  troupe::mutex_lock lock(mutex_);
  if (stopping_) return;
  if (auto it = up_.find(peer.name); it != up_.end() && it->second.who.incarnation == peer.incarnation) {
    // Not dialed from here: the TCP transport re-dials a connection lost without a
    // goodbye (a cut cable), and a restarted node dials its seeds.
    mark_down(peer.name, why);
  }
}

std::vector<std::byte> cluster_core::gossip_body() {
  gossip_record g;
  g.cluster = config_.cluster_name;
  g.sender = gossip_member{self_.name, self_.incarnation, self_.endpoint, node_.host()};
  {
    troupe::mutex_lock lock(mutex_);
    for (auto& [name, m] : up_)
      g.members.push_back(gossip_member{m.who.name, m.who.incarnation, m.who.endpoint, m.host});
    for (auto& [name, c] : own_names_) g.names.push_back(name);
  }
  std::vector<std::byte> body;
  wire_writer out(body);
  troupe::encode(out, g);
  return body;
}

void cluster_core::gossip_to(const std::shared_ptr<connection>& c) {
  const std::vector<std::byte> body = gossip_body();
  (void)c->write(record_kind::gossip, body);
}

void cluster_core::gossip_to_all() {
  const std::vector<std::byte> body = gossip_body();
  for (auto& c : node_.live_connections()) (void)c->write(record_kind::gossip, body);
}

std::optional<std::string> cluster_core::handle_gossip(const std::shared_ptr<connection>& via,
                                                       std::span<const std::byte> body) {
  gossip_record g;
  wire_reader in(body);
  if (!troupe::decode(in, g) || in.remaining() != 0) {
    return "malformed gossip record" + (in.failed() ? ": " + in.failure() : std::string());
  }
  const peer_info& peer = *via->peer();
  if (g.version != 1) return "gossip version " + std::to_string(g.version) + " (this node speaks 1)";
  if (g.sender.name != peer.name || g.sender.incarnation != peer.incarnation) {
    return "gossip signed by node '" + g.sender.name + "', not the peer";
  }
  if (g.members.size() > max_gossip_members || g.names.size() > max_gossip_names) return "oversized gossip record";
  for (const auto& m : g.members) {
    if (!valid_node_name(m.name) || (!m.endpoint.empty() && !parse_endpoint(m.endpoint))) {
      return "gossip names an invalid member '" + m.name + "' at '" + m.endpoint + "'";
    }
  }
  for (const auto& n : g.names) {
    if (!valid_global_name(n)) return "gossip holds an invalid global name";
  }
  // acquire: see connection_up().
  if (!uses_gossip() || !started_.load(std::memory_order_acquire)) return std::nullopt;  // etcd: members come from it
  if (g.cluster != config_.cluster_name) {
    troupe::mutex_lock lock(mutex_);
    // Once per incarnation: its gossip keeps coming every interval.
    if (foreign_.insert({peer.name, peer.incarnation}).second) {
      node_.log("ignored gossip from " + via->describe() + ": it belongs to cluster '" + g.cluster + "', not '" +
                config_.cluster_name + "'");
    }
    return std::nullopt;
  }
  bool wake = false;
  {
    troupe::mutex_lock lock(mutex_);
    if (stopping_ || !via->alive() || via->closing()) return std::nullopt;
    mark_up(member{g.sender.name, g.sender.incarnation, g.sender.endpoint}, peer.host,
            std::set<std::string>(g.names.begin(), g.names.end()));
    for (const auto& m : g.members) {
      if (m.name == self_.name || m.endpoint.empty()) continue;
      auto it = up_.find(m.name);
      if (it != up_.end() && it->second.who.incarnation == m.incarnation) continue;
      // A member this node has not connected to (or an incarnation it has not seen).
      to_dial_[m.name] = pending_dial{member{m.name, m.incarnation, m.endpoint}, m.host, 0};
      wake = true;
    }
  }
  if (wake) changed_.notify_all();
  return std::nullopt;
}

// --- the etcd provider's reports ---------------------------------------------------

void cluster_core::member_seen(const member& m) {
  if (m.name == self_.name) return;
  std::shared_ptr<connection> connected = node_.live_connection(m.name);
  troupe::mutex_lock lock(mutex_);
  if (stopping_) return;
  auto old = registry_.find(m.name);
  if (old != registry_.end() && old->second.incarnation != m.incarnation) {
    mark_down(m.name, "node '" + m.name + "' restarted as a new incarnation");
  }
  registry_[m.name] = m;
  if (connected && connected->peer()->incarnation == m.incarnation) {
    mark_up(m, connected->peer()->host, {});
  } else {
    to_dial_[m.name] = pending_dial{m, 0, 0};
    changed_.notify_all();
  }
}

void cluster_core::member_gone(const member& m, const std::string& why) {
  {
    troupe::mutex_lock lock(mutex_);
    if (stopping_) return;
    if (auto it = registry_.find(m.name); it != registry_.end() && it->second.incarnation == m.incarnation) {
      registry_.erase(it);
    }
    if (auto it = to_dial_.find(m.name); it != to_dial_.end() && it->second.who.incarnation == m.incarnation) {
      to_dial_.erase(it);
    }
    if (auto it = up_.find(m.name); it != up_.end() && it->second.who.incarnation == m.incarnation) {
      mark_down(m.name, why);
    }
  }
  // etcd's word is final: a member whose lease expired is down for its actors
  // too (monitors get down{node_down}), even if its connection still answers (it is
  // cut off from etcd, not from us). If it is alive it registers again, and is
  // dialed and up again then.
  if (auto c = node_.live_connection(m.name); c && c->peer()->incarnation == m.incarnation) {
    c->close("node '" + m.name + "' left the cluster: " + why);
  }
}

void cluster_core::provider_log(const std::string& line) { node_.log(line); }

// --- the thread ------------------------------------------------------------------------

void cluster_core::loop() noexcept {
  auto next_gossip = std::chrono::steady_clock::now();
  std::vector<std::string> seeds;
  for (const auto& s : config_.seeds) seeds.push_back(s.starts_with("tcp://") ? s : "tcp://" + s);
  troupe::mutex_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    // Seeds: while alone, try them (a seed that is this node is skipped).
    if (uses_gossip() && up_.empty() && now >= next_gossip) {
      for (const auto& seed : seeds) {
        if (seed == self_.endpoint || stopping_) continue;
        lock.unlock();
        auto c = node_.connection_to_endpoint(seed);
        lock.lock();
        if (c && (*c)->peer()->name != self_.name) break;
      }
    }
    // Members heard of but not connected: dial them (shared memory on this host).
    std::vector<pending_dial> dial;
    for (auto& [name, d] : to_dial_) dial.push_back(d);
    bool dial_failed = false;
    for (const pending_dial& d : dial) {
      const member& m = d.who;
      if (stopping_) break;
      lock.unlock();
      auto c = node_.connection_to(m.name, d.host, m.endpoint);
      lock.lock();
      auto it = to_dial_.find(m.name);
      if (!c) {
        dial_failed = true;
        // Gossip about a node that is gone may linger a moment on other
        // members: after a few failures it is dropped (and comes back if
        // gossip names it again). etcd's registry is the truth: keep trying.
        if (it != to_dial_.end() && uses_gossip() && ++it->second.failures >= max_dial_failures) to_dial_.erase(it);
        continue;
      }
      if (uses_gossip()) {
        // Connected (to whatever incarnation is there now): its gossip on the
        // connection makes it a member.
        if (it != to_dial_.end()) to_dial_.erase(it);
        continue;
      }
      // etcd: the registered incarnation is the member. A connection to an earlier
      // one (not yet known dead) is retried until the new one answers.
      auto r = registry_.find(m.name);
      if (r == registry_.end()) {
        if (it != to_dial_.end()) to_dial_.erase(it);
      } else if (r->second.incarnation == (*c)->peer()->incarnation) {
        if (it != to_dial_.end()) to_dial_.erase(it);
        mark_up(r->second, (*c)->peer()->host, {});
      } else {
        dial_failed = true;
      }
    }
    if (uses_gossip() && (std::chrono::steady_clock::now() >= next_gossip || gossip_now_)) {
      gossip_now_ = false;
      lock.unlock();
      gossip_to_all();
      lock.lock();
      next_gossip = std::chrono::steady_clock::now() + config_.gossip_interval;
    }
    auto wake_at = uses_gossip() ? next_gossip : std::chrono::steady_clock::now() + config_.gossip_interval;
    if (dial_failed) wake_at = std::min(wake_at, std::chrono::steady_clock::now() + redial_pause);
    changed_.wait_until(lock, wake_at, [&]() TROUPE_REQUIRES(mutex_) {
      if (stopping_ || gossip_now_) return true;
      // New members to dial (not those that just failed: they wait for wake_at).
      for (auto& entry : to_dial_) {
        if (std::none_of(dial.begin(), dial.end(), [&](const pending_dial& d) { return d.who.name == entry.first; })) {
          return true;
        }
      }
      return false;
    });
  }
}

// --- names -----------------------------------------------------------------------------

std::optional<member> cluster_core::gossip_owner(const std::string& name) const {
  std::optional<member> owner;
  if (own_names_.count(name) != 0) owner = self_;
  for (auto& [node_name, m] : up_) {
    if (m.names.count(name) != 0 && (!owner || m.who.name < owner->name)) owner = m.who;
  }
  return owner;
}

expected<void> cluster_core::publish_global(const std::string& name, cell* c, const protocol_table& table) {
  if (!valid_global_name(name)) {
    return error(errc::no_such_name, "'" + name + "' is not a valid global name (1-256 characters, no '/' or ':')");
  }
  if (c->is_remote()) {
    return error(errc::no_such_actor, "publish_global('" + name + "') takes a ref to an actor of this node");
  }
  if (uses_gossip()) {
    troupe::mutex_lock lock(mutex_);
    if (auto owner = gossip_owner(name); owner && owner->name != self_.name) {
      return error(errc::name_taken, "the global name '" + name + "' is held by node '" + owner->name + "'");
    }
  } else if (auto claimed = provider_->claim_name(name); !claimed) {
    return claimed.error();
  }
  node_.publish(name, c, table);
  if (!node_.published(name)) {  // the actor stopped meanwhile
    if (provider_) provider_->release_name(name);
    return error(errc::no_such_actor, "the actor published as '" + name + "' has stopped");
  }
  {
    troupe::mutex_lock lock(mutex_);
    own_names_[name] = c;
    gossip_now_ = uses_gossip();
  }
  changed_.notify_all();
  return {};
}

void cluster_core::unpublish_global(const std::string& name) {
  bool held = false;
  {
    troupe::mutex_lock lock(mutex_);
    held = own_names_.erase(name) != 0;
    gossip_now_ = held && uses_gossip();
  }
  if (!held) return;
  node_.unpublish(name);
  if (provider_) provider_->release_name(name);
  changed_.notify_all();
}

void cluster_core::actor_stopped(const cell* c) {
  std::vector<std::string> released;
  {
    troupe::mutex_lock lock(mutex_);
    for (auto it = own_names_.begin(); it != own_names_.end();) {
      if (it->second == c) {
        released.push_back(it->first);
        it = own_names_.erase(it);
      } else {
        ++it;
      }
    }
    if (!released.empty()) gossip_now_ = uses_gossip();
  }
  if (released.empty()) return;
  if (provider_) {
    for (auto& n : released) provider_->release_name(n);
  }
  changed_.notify_all();
}

bool cluster_core::await_name_gone(const std::string& name, time_limit until) {
  troupe::mutex_lock lock(mutex_);
  return changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(mutex_) { return !gossip_owner(name).has_value(); });
}

expected<member> cluster_core::name_owner(const std::string& name, time_limit until) {
  if (!valid_global_name(name)) return error(errc::no_such_name, "'" + name + "' is not a valid global name");
  if (uses_gossip()) {
    troupe::mutex_lock lock(mutex_);
    std::optional<member> owner;
    changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(mutex_) {
      owner = gossip_owner(name);
      return owner.has_value() || stopping_;
    });
    if (owner) return *owner;
    return error(errc::no_such_name, "no member of the cluster holds the global name '" + name + "'");
  }
  // etcd answers at once; a name not there yet is asked again until the deadline.
  auto pause = std::chrono::milliseconds(20);
  for (;;) {
    auto owner = provider_->name_owner(name);
    if (owner || owner.error().code() != errc::no_such_name || std::chrono::steady_clock::now() + pause >= until) {
      return owner;
    }
    troupe::mutex_lock lock(mutex_);
    if (changed_.wait_for(lock, pause, [&]() TROUPE_REQUIRES(mutex_) { return stopping_; })) return owner;
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
}

}  // namespace troupe::detail
