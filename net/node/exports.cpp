// Exports, proxies and names: which local actors peers may reach (and who
// watches them), the proxies standing in for remote actors, and the names
// published on this node (see node_core.hpp).
#include "node/node_core.hpp"

#include "troupe/runtime/signals.hpp"

namespace troupe::detail {

namespace {

// Stops a proxy with the reason its remote actor (or its process) stopped with.
struct remote_stop final : system_envelope {
  explicit remote_stop(exit_reason why) : reason(std::move(why)) {}
  void run(cell& receiver) override { receiver.stop_self(reason); }
  exit_reason reason;
};

}  // namespace

void stop_proxy(cell& proxy, const exit_reason& reason) noexcept {
  try {
    (void)proxy.enqueue(new remote_stop(reason));
  } catch (...) {
    proxy.request_stop(exit_reason::kind::shutdown);  // out of memory: stop it without the reason
  }
}

namespace {

// The node's anchor: keeps an eye on exported actors (their deaths turn into
// `gone` records for the peers that watch them), and is the actor a peer
// monitors to hear of the node's death.
struct keep_watching {
  cell_ptr target;
};
using anchor_protocol = protocol<keep_watching>;

class anchor_actor final : public actor<anchor_protocol> {
 public:
  explicit anchor_actor(node_core& node) : node_(node) {}
  void on(const keep_watching& k) { (void)monitor(addr_access::make(k.target.get())); }
  void on(const troupe::down& d) { node_.export_stopped(addr_access::get(d.who), d.reason); }

 private:
  node_core& node_;
};

}  // namespace

void node_core::spawn_anchor() {
  auto anchor = owner_.spawn<anchor_actor>(*this);
  anchor_ = ref_access::make<protocol<>>(ref_access::get(anchor));
  export_cell(ref_access::get(anchor), protocol_table_of<protocol<>>());
}

// --- exports and proxies ----------------------------------------------------------------

void node_core::export_cell(cell* c, const protocol_table& table) {
  bool fresh = false;
  {
    troupe::mutex_lock lock(exports_mutex_);
    auto [it, inserted] = exports_.try_emplace(c->id());
    if (inserted) {
      it->second.cell = cell_ptr(c);
      it->second.table = &table;
      fresh = true;
    }
  }
  // The anchor watches every exported actor, to tell the peers that watch it.
  if (fresh && anchor_ && c != ref_access::get(anchor_)) {
    (void)ref_access::get(anchor_)->enqueue(
        new message_envelope<keep_watching>(anchor_protocol::index_of<keep_watching>, keep_watching{cell_ptr(c)}));
  }
}

std::optional<std::pair<cell_ptr, const protocol_table*>> node_core::exported(std::uint64_t id) {
  troupe::mutex_lock lock(exports_mutex_);
  auto it = exports_.find(id);
  if (it == exports_.end()) return std::nullopt;
  return std::pair(it->second.cell, it->second.table);
}

void node_core::watch(std::uint64_t id, const std::shared_ptr<connection>& by) {
  {
    troupe::mutex_lock lock(exports_mutex_);
    auto it = exports_.find(id);
    if (it != exports_.end()) {
      it->second.watchers.push_back(by);
      return;
    }
  }
  // Not (or no longer) here: it is gone as far as the peer is concerned.
  std::vector<std::byte> body;
  wire_writer out(body);
  out.write_scalar(id);
  encode_reason(out, exit_reason::error("no such actor on node '" + config_.name + "'"));
  (void)by->write(record_kind::gone, body);
}

void node_core::export_stopped(cell* c, const exit_reason& reason) {
  std::vector<std::weak_ptr<connection>> watchers;
  {
    troupe::mutex_lock lock(exports_mutex_);
    auto it = exports_.find(c->id());
    if (it == exports_.end() || it->second.cell.get() != c) return;
    watchers = std::move(it->second.watchers);
    exports_.erase(it);
    for (auto n = names_.begin(); n != names_.end();) {
      n = n->second.first.get() == c ? names_.erase(n) : std::next(n);
    }
  }
  if (cluster_) cluster_->actor_stopped(c);
  std::vector<std::byte> body;
  wire_writer out(body);
  out.write_scalar(c->id());
  encode_reason(out, reason);
  for (auto& w : watchers) {
    if (auto conn = w.lock()) (void)conn->write(record_kind::gone, body);
  }
}

cell_ptr node_core::proxy_for(const std::shared_ptr<connection>& via, std::uint64_t remote_id,
                              const protocol_table& table) {
  const auto key = std::make_tuple(static_cast<const connection*>(via.get()), remote_id, &table);
  cell* fresh = nullptr;
  cell_ptr result;
  {
    troupe::mutex_lock lock(exports_mutex_);
    if (auto it = proxies_.find(key); it != proxies_.end()) return it->second;
    const peer_info& peer = *via->peer();
    fresh =
        table.make_proxy(owner_, via, wire_address{peer.name, peer.incarnation, remote_id, peer.host, peer.endpoint});
    result = cell_ptr(fresh);
    // Registered only while the connection is alive; connection_lost() sweeps this map
    // under the same lock after clearing `alive`.
    if (via->alive()) proxies_.emplace(key, result);
  }
  try {
    start_cell(owner_, fresh);  // the cell's initial reference becomes the system's
  } catch (...) {
    // Shutting down: a proxy that never started must not stay registered (a
    // stop sent to it later would wait in a mailbox nobody runs).
    troupe::mutex_lock lock(exports_mutex_);
    if (auto it = proxies_.find(key); it != proxies_.end() && it->second.get() == fresh) proxies_.erase(it);
    return cell_ptr{};
  }
  if (!via->alive()) {
    stop_proxy(*fresh, exit_reason::process_down("the connection to node '" + via->peer()->name + "' is closed"));
    return result;
  }
  std::byte body[8];
  std::memcpy(body, &remote_id, 8);
  (void)via->write(record_kind::watch, body);
  return result;
}

void node_core::remote_gone(const connection& via, std::uint64_t remote_id, const exit_reason& reason) {
  std::vector<cell_ptr> stopped;
  {
    troupe::mutex_lock lock(exports_mutex_);
    for (auto it = proxies_.begin(); it != proxies_.end();) {
      if (std::get<0>(it->first) == &via && std::get<1>(it->first) == remote_id) {
        stopped.push_back(std::move(it->second));
        it = proxies_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (cell_ptr& p : stopped) stop_proxy(*p.get(), reason);
}

cell_ptr node_core::resolve(const wire_address& address, const protocol_table& table,
                            const std::shared_ptr<connection>& via) {
  if (address.node == config_.name) {
    if (address.incarnation != incarnation_) return cell_ptr{};  // an earlier life of this node: gone
    auto entry = exported(address.id);
    if (!entry || entry->second->fingerprint != table.fingerprint) return cell_ptr{};
    return entry->first;
  }
  std::shared_ptr<connection> c;
  if (via && via->peer()->name == address.node && via->peer()->incarnation == address.incarnation) {
    c = via;
  } else if (auto connected = connection_to(address.node, address.host, address.endpoint);
             connected && (*connected)->peer()->incarnation == address.incarnation) {
    c = *connected;
  }
  if (!c) {
    // Its node is gone (or is a later incarnation): a proxy that is down at once.
    cell* dead = table.make_proxy(owner_, nullptr, address);
    cell_ptr result(dead);
    try {
      start_cell(owner_, dead);
    } catch (...) {
      return cell_ptr{};
    }
    return result;
  }
  return proxy_for(c, address.id, table);
}

// --- names ----------------------------------------------------------------------------------

void node_core::publish(std::string name, cell* c, const protocol_table& table) {
  export_cell(c, table);
  troupe::mutex_lock lock(exports_mutex_);
  if (exports_.find(c->id()) == exports_.end()) return;  // stopped already
  names_[std::move(name)] = {cell_ptr(c), &table};
}

void node_core::unpublish(std::string_view name) {
  troupe::mutex_lock lock(exports_mutex_);
  names_.erase(std::string(name));
}

std::optional<std::pair<cell_ptr, const protocol_table*>> node_core::published(const std::string& name) {
  troupe::mutex_lock lock(exports_mutex_);
  auto it = names_.find(name);
  if (it == names_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::byte> node_core::answer_lookup(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok) {
  wire_reader in(body);
  std::string name;
  ok = in.read_scalar(request_id) && troupe::decode(in, name) && in.remaining() == 0;
  std::vector<std::byte> result;
  if (!ok) return result;
  wire_writer out(result);
  auto entry = published(name);
  if (!entry) {
    out.write_scalar<std::uint8_t>(1);
    encode_error(out, error(errc::no_such_name, "node '" + config_.name + "' has nothing published as '" + name + "'"));
    return result;
  }
  out.write_scalar<std::uint8_t>(0);
  out.write_scalar(entry->first->id());
  out.write_scalar(entry->second->fingerprint);
  troupe::encode(out, entry->second->name);
  return result;
}

}  // namespace troupe::detail
