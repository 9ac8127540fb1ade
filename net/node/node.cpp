// troupe::node, node_handle and troupe::run (see node.hpp).
#include "troupe/net/node.hpp"

#include <cstdlib>
#include <iostream>

#include "node/node_access.hpp"
#include "node/node_core.hpp"

#include <algorithm>
#include <tuple>

namespace troupe {

namespace {

troupe::config system_config_of(const node_config& cfg) { return cfg.system; }

// "troupe://node/name", "node/name", or "tcp://host:port/name" (node_name is
// then the endpoint).
bool split_uri(std::string_view uri, std::string& node_name, std::string& name) {
  constexpr std::string_view scheme = "troupe://";
  constexpr std::string_view tcp = "tcp://";
  if (uri.starts_with(tcp)) {
    const auto slash = uri.find('/', tcp.size());
    if (slash == std::string_view::npos || slash == tcp.size() || slash + 1 == uri.size()) return false;
    node_name = std::string(uri.substr(0, slash));
    name = std::string(uri.substr(slash + 1));
    return true;
  }
  if (uri.starts_with(scheme)) uri.remove_prefix(scheme.size());
  const auto slash = uri.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == uri.size()) return false;
  node_name = std::string(uri.substr(0, slash));
  name = std::string(uri.substr(slash + 1));
  return true;
}

// Every message (and reply) type of `table` must have the same schema on the peer.
expected<void> check_schemas(detail::connection& c, const detail::protocol_table& table) {
  for (const auto* list : {&table.messages, &table.replies}) {
    for (const auto& m : *list) {
      if (auto refused = c.schema_refusal(m.type_id, m.fingerprint, m.name)) return *refused;
    }
  }
  return {};
}

}  // namespace

// --- node_handle -------------------------------------------------------------------------

const std::string& node_handle::name() const { return info_->name; }
std::uint64_t node_handle::incarnation() const { return info_->incarnation; }
const std::string& node_handle::endpoint() const { return info_->endpoint; }
pid_t node_handle::pid() const {
  // acquire: pairs with the release in node_core::spawn_node().
  return info_ && info_->spawned_by_us.load(std::memory_order_acquire) ? info_->pid : 0;
}
bool node_handle::alive() const {
  // acquire: pairs with the release in connection::lost().
  return info_ && info_->alive.load(std::memory_order_acquire);
}

// --- node --------------------------------------------------------------------------------

node::node(node_config cfg) : system(system_config_of(cfg)) {
  core_ = std::make_unique<detail::node_core>(*this, std::move(cfg));
  try {
    core_->start();
  } catch (...) {
    system::shutdown();
    core_.reset();
    throw;
  }
}

node::~node() {
  // Actors first (they may still talk to peers while they stop), then the connections.
  system::shutdown();
  core_->stop();
}

const std::string& node::name() const noexcept { return core_->name(); }
std::uint64_t node::incarnation() const noexcept { return core_->incarnation(); }
const node_config& node::node_settings() const noexcept { return core_->config(); }

void node::publish_cell(std::string name, detail::cell* c, const detail::protocol_table& table) {
  if (c == nullptr) throw troupe_error(error(errc::no_such_actor, "publish() of an empty ref"));
  core_->publish(std::move(name), c, table);
}

void node::unpublish(std::string_view name) { core_->unpublish(name); }

namespace {

// A name published on this node.
expected<detail::cell_ptr> lookup_here(detail::node_core& core, const std::string& name,
                                       const detail::protocol_table& table) {
  auto entry = core.published(name);
  if (!entry) return error(errc::no_such_name, "nothing is published here as '" + name + "'");
  if (entry->second->fingerprint != table.fingerprint) {
    return error(errc::protocol_mismatch, "'" + name + "' speaks " + entry->second->name + ", not " + table.name);
  }
  return entry->first;
}

// A name published on the peer of `c` (`uri` only names it in errors).
expected<detail::cell_ptr> lookup_over(detail::node_core& core, const std::shared_ptr<detail::connection>& c,
                                       std::string_view uri, const std::string& name,
                                       const detail::protocol_table& table, detail::time_limit until) {
  if (auto ok = check_schemas(*c, table); !ok) return ok.error();
  std::vector<std::byte> body;
  wire_writer out(body);
  troupe::encode(out, name);
  auto result = c->request(detail::record_kind::lookup, body, until);
  if (!result) return result.error();
  wire_reader in(*result);
  std::uint8_t status = 2;
  if (!in.read_scalar(status) || status > 1) return error(errc::malformed_message, "malformed lookup result");
  if (status == 1) {
    error e;
    if (!detail::decode_error(in, e)) return error(errc::malformed_message, "malformed lookup error");
    return e;
  }
  std::uint64_t id = 0, fingerprint = 0;
  std::string protocol_name;
  if (!in.read_scalar(id) || !in.read_scalar(fingerprint) || !troupe::decode(in, protocol_name)) {
    return error(errc::malformed_message, "malformed lookup result");
  }
  if (fingerprint != table.fingerprint) {
    return error(errc::protocol_mismatch, std::string(uri) + " speaks " + protocol_name + ", not " + table.name);
  }
  detail::cell_ptr proxy = core.proxy_for(c, id, table);
  if (!proxy) return error(errc::system_stopped, "the node is shutting down");
  return proxy;
}

}  // namespace

expected<detail::cell_ptr> node::lookup_cell(std::string_view uri, const detail::protocol_table& table,
                                             std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  if (uri.find('/') == std::string_view::npos && !uri.empty()) {
    // A cluster-wide name: find its holder, then look it up there.
    detail::cluster_core* cluster = core_->cluster();
    if (cluster == nullptr) {
      return error(errc::no_such_name, "'" + std::string(uri) + "' is a cluster-wide name, and node '" + core_->name() +
                                           "' is in no cluster");
    }
    const std::string name(uri);
    auto owner = cluster->name_owner(name, until);
    if (!owner) return owner.error();
    if (owner->name == core_->name()) return lookup_here(*core_, name, table);
    auto c = core_->connection_to(owner->name, 0, owner->endpoint);
    if (!c) return c.error();
    // The timeout bounds the wait for the name to appear; the lookup at its
    // holder gets at least a millisecond of it, as a direct lookup would.
    return lookup_over(*core_, *c, "troupe://" + owner->name + "/" + name, name, table,
                       std::max(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(1)));
  }
  std::string node_name, name;
  if (!split_uri(uri, node_name, name)) {
    return error(errc::no_such_name, "'" + std::string(uri) + "' is not troupe://<node>/<name>");
  }
  if (node_name == core_->name()) return lookup_here(*core_, name, table);
  auto c = node_name.starts_with("tcp://") ? core_->connection_to_endpoint(node_name) : core_->connection_to(node_name);
  if (!c) return c.error();
  return lookup_over(*core_, *c, uri, name, table, until);
}

expected<node_handle> node::connect(std::string_view where) {
  auto c =
      where.starts_with("tcp://") ? core_->connection_to_endpoint(std::string(where)) : core_->connection_to(where);
  if (!c) return c.error();
  return core_->handle_for(*c);
}

expected<node_handle> node::await_connection(std::string_view node_name, std::chrono::milliseconds timeout) {
  auto c = core_->await_connection(std::string(node_name), std::chrono::steady_clock::now() + timeout);
  if (!c) return c.error();
  return core_->handle_for(*c);
}

std::string node::endpoint() const { return core_->endpoint(); }

expected<node_handle> node::spawn_node(node_spawn_options options) { return core_->spawn_node(std::move(options)); }
void node::stop_node(const node_handle& h) { core_->stop_node(h); }
void node::kill_node(const node_handle& h) { core_->kill_node(h); }

expected<detail::cell_ptr> node::spawn_remote(const on_node& where, const std::string& key,
                                              std::span<const std::byte> args, const detail::protocol_table& table) {
  if (!where.where) return error(errc::no_such_node, "spawn on an empty node handle");
  const detail::peer_info& peer = *detail::node_access::info(where.where);
  auto c = core_->connection_to(where.where.name(), peer.host, peer.endpoint);
  if (!c) return c.error();
  if ((*c)->peer()->incarnation != where.where.incarnation()) {
    return error(errc::no_such_node, "node '" + where.where.name() + "' has restarted since this handle was made");
  }
  if (auto ok = check_schemas(**c, table); !ok) return ok.error();
  std::vector<std::byte> body;
  wire_writer out(body);
  troupe::encode(out, key);
  out.write_bytes(args.data(), args.size());
  auto result = (*c)->request(detail::record_kind::spawn, body,
                              std::chrono::steady_clock::now() + core_->config().connect_timeout);
  if (!result) return result.error();
  wire_reader in(*result);
  std::uint8_t status = 2;
  if (!in.read_scalar(status) || status > 1) return error(errc::malformed_message, "malformed spawn result");
  if (status == 1) {
    error e;
    if (!detail::decode_error(in, e)) return error(errc::malformed_message, "malformed spawn error");
    return e;
  }
  std::uint64_t id = 0;
  if (!in.read_scalar(id)) return error(errc::malformed_message, "malformed spawn result");
  detail::cell_ptr proxy = core_->proxy_for(*c, id, table);
  if (!proxy) return error(errc::system_stopped, "the node is shutting down");
  return proxy;
}

// --- clusters -------------------------------------------------------------------------------

namespace {
error not_in_cluster(const std::string& node_name) {
  return error(errc::no_such_node, "node '" + node_name + "' is in no cluster (node_config::cluster)");
}
}  // namespace

std::vector<member> node::members() const {
  if (detail::cluster_core* cluster = core_->cluster()) return cluster->members();
  return {member{core_->name(), core_->incarnation(), core_->endpoint()}};
}

expected<void> node::await_members(std::size_t count, std::chrono::milliseconds timeout) {
  detail::cluster_core* cluster = core_->cluster();
  if (cluster == nullptr) return not_in_cluster(name());
  return cluster->await_members(count, std::chrono::steady_clock::now() + timeout);
}

expected<void> node::subscribe_members_impl(std::function<void(const member_up&)> up,
                                            std::function<void(const member_down&)> down) {
  detail::cluster_core* cluster = core_->cluster();
  if (cluster == nullptr) return not_in_cluster(name());
  cluster->subscribe(std::move(up), std::move(down));
  return {};
}

expected<void> node::publish_global_cell(const std::string& global_name, detail::cell* c,
                                         const detail::protocol_table& table) {
  detail::cluster_core* cluster = core_->cluster();
  if (cluster == nullptr) return not_in_cluster(name());
  if (c == nullptr) return error(errc::no_such_actor, "publish_global() of an empty ref");
  return cluster->publish_global(global_name, c, table);
}

void node::unpublish_global(std::string_view global_name) {
  if (detail::cluster_core* cluster = core_->cluster()) cluster->unpublish_global(std::string(global_name));
}

std::shared_ptr<detail::topic_state_base> node::open_topic(
    const std::string& topic_name, std::uint64_t type_id, const void* type_tag,
    const std::function<std::shared_ptr<detail::topic_state_base>(std::shared_ptr<detail::topic_registry>)>& make) {
  return core_->topics().open(topic_name, type_id, type_tag, make);
}

expected<detail::cell_ptr> node::spawn_remote(anywhere_t, const std::string& key, std::span<const std::byte> args,
                                              const detail::protocol_table& table) {
  // Each member's load: its live actors, and whether it can spawn the type.
  struct candidate {
    std::uint64_t load;
    std::string name;
    std::shared_ptr<detail::connection> connection;  // null: this node
  };
  std::vector<candidate> candidates;
  if (detail::find_actor_factory(key) != nullptr) candidates.push_back({live_actors(), core_->name(), nullptr});
  std::string refusals;
  const auto until = std::chrono::steady_clock::now() + core_->config().connect_timeout;
  for (const member& m : members()) {
    if (m.name == core_->name()) continue;
    auto c = core_->connection_to(m.name, 0, m.endpoint);
    if (!c) {
      refusals += "; " + m.name + ": " + c.error().text();
      continue;
    }
    std::vector<std::byte> body;
    wire_writer out(body);
    troupe::encode(out, key);
    auto result = (*c)->request(detail::record_kind::load, body, until);
    if (!result) {
      refusals += "; " + m.name + ": " + result.error().text();
      continue;
    }
    wire_reader in(*result);
    std::uint8_t status = 2, registered = 0;
    std::uint64_t load = 0;
    if (!in.read_scalar(status) || status != 0 || !in.read_scalar(registered) || !in.read_scalar(load) ||
        in.remaining() != 0) {
      refusals += "; " + m.name + ": malformed load answer";
      continue;
    }
    if (registered != 0) candidates.push_back({load, m.name, *c});
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const candidate& a, const candidate& b) { return std::tie(a.load, a.name) < std::tie(b.load, b.name); });
  for (const candidate& chosen : candidates) {
    if (!chosen.connection) {
      detail::wire_context context{core_.get(), nullptr};
      wire_reader in(args, &context);
      auto spawned = detail::find_actor_factory(key)(*this, in);
      if (spawned) return spawned->first;
      refusals += "; " + chosen.name + ": " + spawned.error().text();
      continue;
    }
    auto spawned = spawn_remote(on(core_->handle_for(chosen.connection)), key, args, table);
    if (spawned) return spawned;
    refusals += "; " + chosen.name + ": " + spawned.error().text();
  }
  return error(errc::not_registered, "no member could spawn " + key +
                                         (refusals.empty() ? std::string(" (none has it registered)") : refusals));
}

}  // namespace troupe
