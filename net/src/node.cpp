// troupe::node, node_handle and troupe::run (see node.hpp).
#include "troupe/net/node.hpp"

#include <cstdlib>
#include <iostream>

#include "node_core.hpp"

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
pid_t node_handle::pid() const {
  return info_ && info_->spawned_by_us.load(std::memory_order_acquire) ? info_->pid : 0;
}
bool node_handle::alive() const { return info_ && info_->alive.load(std::memory_order_acquire); }

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
  // Actors first (they may still talk to peers while they stop), then the links.
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

expected<detail::cell_ptr> node::lookup_cell(std::string_view uri, const detail::protocol_table& table,
                                             std::chrono::milliseconds timeout) {
  std::string node_name, name;
  if (!split_uri(uri, node_name, name)) {
    return error(errc::no_such_name, "'" + std::string(uri) + "' is not troupe://<node>/<name>");
  }
  if (node_name == core_->name()) {
    auto entry = core_->published(name);
    if (!entry) return error(errc::no_such_name, "nothing is published here as '" + name + "'");
    if (entry->second->fingerprint != table.fingerprint) {
      return error(errc::protocol_mismatch, "'" + name + "' speaks " + entry->second->name + ", not " + table.name);
    }
    return entry->first;
  }
  auto c = node_name.starts_with("tcp://") ? core_->link_to_endpoint(node_name) : core_->link_to(node_name);
  if (!c) return c.error();
  if (auto ok = check_schemas(**c, table); !ok) return ok.error();
  std::vector<std::byte> body;
  wire_writer out(body);
  troupe::encode(out, name);
  auto result = (*c)->request(detail::record_kind::lookup, body, std::chrono::steady_clock::now() + timeout);
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
  detail::cell_ptr proxy = core_->proxy_for(*c, id, table);
  if (!proxy) return error(errc::system_stopped, "the node is shutting down");
  return proxy;
}

expected<node_handle> node::connect(std::string_view where) {
  auto c = where.starts_with("tcp://") ? core_->link_to_endpoint(std::string(where)) : core_->link_to(where);
  if (!c) return c.error();
  return core_->handle_for(*c);
}

expected<node_handle> node::await_link(std::string_view node_name, std::chrono::milliseconds timeout) {
  auto c = core_->await_link(std::string(node_name), std::chrono::steady_clock::now() + timeout);
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
  const detail::peer_info& peer = *where.where.info();
  auto c = core_->link_to(where.where.name(), peer.host, peer.endpoint);
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

// --- run ------------------------------------------------------------------------------------

bool is_spawned_node() noexcept {
  const char* name = std::getenv("TROUPE_NODE_NAME");
  const char* parent = std::getenv("TROUPE_PARENT_NODE");
  return name != nullptr && *name != '\0' && parent != nullptr && *parent != '\0';
}

int run(int argc, char** argv, const std::function<int()>& main_fn, const std::function<void(node&)>& child_setup) {
  (void)argc;
  (void)argv;
  if (!is_spawned_node()) return main_fn();
  try {
    node_config cfg;
    cfg.name = std::getenv("TROUPE_NODE_NAME");
    if (const char* dir = std::getenv("TROUPE_RUNTIME_DIR")) cfg.runtime_dir = dir;
    // The parent's transport settings (spawn_node passes them on).
    auto size_from = [](const char* variable, std::size_t& out) {
      if (const char* v = std::getenv(variable)) {
        char* end = nullptr;
        const unsigned long long parsed = std::strtoull(v, &end, 10);
        if (end != v && *end == '\0') out = static_cast<std::size_t>(parsed);
      }
    };
    size_from("TROUPE_RING_BYTES", cfg.ring_bytes);
    size_from("TROUPE_MAX_QUEUED_BYTES", cfg.max_queued_bytes);
    size_from("TROUPE_MAX_MESSAGE_BYTES", cfg.max_message_bytes);
    size_from("TROUPE_WORKER_THREADS", cfg.system.worker_threads);
    const std::string parent = std::getenv("TROUPE_PARENT_NODE");
    node n(std::move(cfg));
    n.core().set_parent(parent);
    // Set up first: the parent's spawn_node() returns once this node has joined,
    // and by then what the setup publishes must be there.
    if (child_setup) child_setup(n);
    auto link = n.connect(parent);
    if (!link) {
      std::cerr << "troupe: child node '" << n.name() << "' could not join '" << parent << "': " << link.error() << '\n';
      return 1;
    }
    n.core().wait_for_stop();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "troupe: child node failed: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace troupe
