// node_core: starting and stopping, the connection registry and routing by
// node name, the control thread (see node_core.hpp). Exports, proxies and
// names are in exports.cpp; deployment in deploy/.
#include "node/node_core.hpp"
#include "node/node_access.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "troupe/runtime/signals.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace {
// How long stop() gives child nodes to stop before it kills them.
constexpr auto child_stop_grace = std::chrono::seconds(3);
}  // namespace

node_core::node_core(troupe::node& owner, node_config cfg)
    : owner_(owner),
      config_(std::move(cfg)),
      incarnation_(random_u64()),
      shm_(*this),
      topics_(std::make_shared<topic_registry>(*this)) {
  if (config_.name.empty()) config_.name = "node-" + std::to_string(::getpid());
}

node_core::~node_core() { stop(); }

void node_core::log(const std::string& line) const noexcept {
  try {
    std::string text = "troupe [node '" + config_.name + "']: " + line + "\n";
    std::cerr << text << std::flush;
  } catch (...) {
  }
}

void node_core::start() {
  host_ = host_id();
  if (!valid_node_name(config_.name)) {
    throw troupe_error(error(errc::no_such_node,
                             "invalid node name '" + config_.name + "' (letters, digits, '-', '_', '.'; at most 64)"));
  }
  shm_.listen();
  wake_fd_ = unique_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw troupe_error(error(errc::system_stopped, errno_text("eventfd")));
  spawn_anchor();
  topics_->start();
  if (config_.cluster.provider != membership_provider_kind::none) {
    cluster_ = std::make_unique<cluster_core>(*this, config_.cluster);
  }
  if (!config_.listen.empty()) (void)tcp();  // listens now (throws if it cannot)
  control_ = std::thread([this] { control_loop(); });
  if (cluster_) {
    try {
      cluster_->start();
    } catch (...) {
      stop();
      throw;
    }
  }
}

void node_core::wake_control() noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
}

// --- handshake -----------------------------------------------------------------------

std::vector<std::pair<std::uint64_t, std::uint64_t>> node_core::schema_table() const {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> table;
  for (const protocol_table* p : registered_protocols()) {
    for (const message_entry& m : p->messages) table.emplace_back(m.type_id, m.fingerprint);
    for (const message_entry& r : p->replies) table.emplace_back(r.type_id, r.fingerprint);
  }
  std::sort(table.begin(), table.end());
  table.erase(std::unique(table.begin(), table.end()), table.end());
  return table;
}

std::shared_ptr<connection> node_core::register_connection(std::shared_ptr<connection> c) {
  const std::shared_ptr<peer_info>& peer = c->peer();
  c->start();
  // The peer's anchor (what node_handle::anchor() monitors): its proxy watches
  // it from the start, so its death is reported even if nobody asked yet.
  (void)proxy_for(c, peer->anchor_id, protocol_table_of<protocol<>>());
  std::vector<std::shared_ptr<connection>> stale;
  {
    troupe::mutex_lock lock(connections_mutex_);
    // An earlier incarnation of this node is dead, whatever its connection says.
    auto [first, last] = connections_.equal_range(peer->name);
    for (auto it = first; it != last; ++it) {
      if (it->second->peer()->incarnation != peer->incarnation) stale.push_back(it->second);
    }
    connections_.emplace(peer->name, c);
    contacts_[peer->name] = {peer->host, peer->endpoint};
  }
  for (auto& old : stale) old->close("node '" + peer->name + "' restarted as a new incarnation");
  {
    troupe::mutex_lock lock(tcp_mutex_);
    if (tcp_) tcp_->connection_up(peer->name);
  }
  connections_changed_.notify_all();
  wake_control();
  topics_->connection_up(c);
  if (cluster_) cluster_->connection_up(c);
  return c;
}

node_handle node_core::handle_for(const std::shared_ptr<connection>& c) {
  cell_ptr anchor = proxy_for(c, c->peer()->anchor_id, protocol_table_of<protocol<>>());
  return node_access::make_handle(c->peer(), addr_access::make(anchor.get()));
}

std::shared_ptr<connection> node_core::find_connection(const std::string& name) {
  auto [first, last] = connections_.equal_range(name);
  for (auto it = last; it != first;) {
    --it;
    if (it->second->alive() && !it->second->closing()) return it->second;
  }
  return nullptr;
}

bool node_core::has_connection(const std::string& node_name) { return live_connection(node_name) != nullptr; }

std::shared_ptr<connection> node_core::live_connection(const std::string& node_name) {
  troupe::mutex_lock lock(connections_mutex_);
  return find_connection(node_name);
}

std::vector<std::shared_ptr<connection>> node_core::live_connections() {
  std::vector<std::shared_ptr<connection>> connections;
  troupe::mutex_lock lock(connections_mutex_);
  for (auto& [name, c] : connections_) {
    if (c->alive() && !c->closing()) connections.push_back(c);
  }
  return connections;
}

std::string node_core::endpoint() const {
  troupe::mutex_lock lock(tcp_mutex_);
  return tcp_ ? tcp_->endpoint() : std::string();
}

tcp_transport& node_core::tcp() {
  troupe::mutex_lock lock(tcp_mutex_);
  if (!tcp_) {
    if (stopping()) {
      throw troupe_error(error(errc::system_stopped, "the node is shutting down"));
    }
    tcp_ = std::make_unique<tcp_transport>(*this);
  }
  return *tcp_;
}

expected<std::shared_ptr<connection>> node_core::connection_to(std::string_view node_name, std::uint64_t host_hint,
                                                               const std::string& endpoint_hint) {
  const std::string name(node_name);
  if (!valid_node_name(name)) return error(errc::no_such_node, "invalid node name '" + name + "'");
  if (name == config_.name) return error(errc::no_such_node, "a node does not connect to itself");
  std::uint64_t host = host_hint;
  std::string endpoint = endpoint_hint;
  {
    troupe::mutex_lock lock(connections_mutex_);
    if (auto c = find_connection(name)) return c;
    if (auto it = contacts_.find(name); it != contacts_.end() && host == 0) {
      host = it->second.first;
      endpoint = it->second.second;
    } else if (host != 0) {
      contacts_[name] = {host, endpoint};
    }
  }
  if (stopping()) return error(errc::system_stopped, "the node is shutting down");
  if (host == 0 || host == host_) {
    // This host: shared memory. A node here that does not share this node's
    // runtime directory (another one configured, another user) is not found
    // there; if it listens on TCP, that is the way to it.
    troupe::mutex_lock dial_lock(dial_mutex_);
    {
      troupe::mutex_lock lock(connections_mutex_);
      if (auto c = find_connection(name)) return c;  // another thread dialed meanwhile
    }
    auto c = shm_.dial(name);
    if (c || c.error().code() != errc::no_such_node || endpoint.empty()) return c;
    dial_lock.unlock();
  }
  {
    // Another machine (or network stack): TCP.
    if (endpoint.empty()) {
      return error(errc::no_such_node, "node '" + name + "' is on another host and does not listen on TCP");
    }
    tcp_transport* transport = nullptr;
    try {
      transport = &tcp();
    } catch (const troupe_error& e) {
      return e.error();
    }
    if (auto down = transport->unreachable(name)) return *down;  // fail fast while re-dialing
    {
      troupe::mutex_lock lock(connections_mutex_);
      dialing_.insert(name);
    }
    auto c = transport->dial(endpoint, name, std::chrono::steady_clock::now() + config_.connect_timeout);
    {
      troupe::mutex_lock lock(connections_mutex_);
      dialing_.erase(name);
    }
    return c;
  }
}

expected<std::shared_ptr<connection>> node_core::connection_to_endpoint(const std::string& where) {
  auto parsed = parse_endpoint(where);
  if (!parsed) return parsed.error();
  {
    troupe::mutex_lock lock(connections_mutex_);
    for (auto& [name, c] : connections_) {
      if (c->alive() && !c->closing() && c->peer()->endpoint == where) return c;
    }
  }
  tcp_transport* transport = nullptr;
  try {
    transport = &tcp();
  } catch (const troupe_error& e) {
    return e.error();
  }
  {
    troupe::mutex_lock lock(connections_mutex_);
    dialing_endpoints_.insert(where);
  }
  auto c = transport->dial(where, {}, std::chrono::steady_clock::now() + config_.connect_timeout);
  {
    troupe::mutex_lock lock(connections_mutex_);
    dialing_endpoints_.erase(where);
  }
  return c;
}

expected<std::shared_ptr<connection>> node_core::await_endpoint(const std::string& where, time_limit until) {
  troupe::mutex_lock lock(connections_mutex_);
  std::shared_ptr<connection> found;
  connections_changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(connections_mutex_) {
    for (auto& [name, c] : connections_) {
      if (c->alive() && !c->closing() && c->peer()->endpoint == where) found = c;
    }
    return found != nullptr || stopping();
  });
  if (found) return found;
  return error(errc::timeout, "no connection to the node at " + where + " in time");
}

expected<std::shared_ptr<connection>> node_core::await_connection(const std::string& node_name, time_limit until) {
  troupe::mutex_lock lock(connections_mutex_);
  std::shared_ptr<connection> found;
  connections_changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(connections_mutex_) {
    found = find_connection(node_name);
    return found != nullptr || stopping();
  });
  if (found) return found;
  return error(errc::timeout, "no connection to node '" + node_name + "' in time");
}

std::optional<std::string> node_core::admit_connection(const std::string& name, std::uint64_t incarnation,
                                                       const std::string& endpoint) {
  troupe::mutex_lock lock(connections_mutex_);
  if (stopping()) return "node '" + config_.name + "' is shutting down";
  if (auto c = find_connection(name); c && c->peer()->incarnation == incarnation) {
    return "already connected to node '" + name + "'";
  }
  // Both nodes dial each other at once: the dial of the node with the smaller
  // name wins, on both sides, so exactly one connection remains.
  const bool dialing_it = dialing_.count(name) != 0 || (!endpoint.empty() && dialing_endpoints_.count(endpoint) != 0);
  if (dialing_it && config_.name < name) {
    return "simultaneous dial: the connection dialed by node '" + config_.name + "' is kept";
  }
  return std::nullopt;
}

void node_core::tcp_connection_lost(const std::string& name, const std::string& endpoint, bool said_goodbye) {
  if (stopping()) return;
  troupe::mutex_lock lock(tcp_mutex_);
  if (tcp_) tcp_->connection_lost(name, endpoint, said_goodbye);
}

// --- the control thread --------------------------------------------------------------

void node_core::control_loop() noexcept {
  std::vector<pollfd> fds;
  std::vector<std::shared_ptr<connection>> watched;
  std::vector<pid_t> child_pids;
  while (!stopping()) {
    fds.clear();
    watched.clear();
    child_pids.clear();
    fds.push_back({shm_.listener(), POLLIN, 0});
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    {
      troupe::mutex_lock lock(connections_mutex_);
      for (auto& [name, c] : connections_) {
        if (c->closing() || c->liveness_socket() < 0) continue;
        fds.push_back({c->liveness_socket(), POLLIN | POLLRDHUP, 0});
        watched.push_back(c);
      }
      for (const child_process& child : children_) {
        if (child.exited || !child.pidfd) continue;
        fds.push_back({child.pidfd.get(), POLLIN, 0});
        child_pids.push_back(child.pid);
      }
    }
    const int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log(errno_text("poll"));
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      std::uint64_t count;
      [[maybe_unused]] const ssize_t r = ::read(wake_fd_.get(), &count, sizeof count);
    }
    if (stopping()) break;
    if ((fds[0].revents & POLLIN) != 0) shm_.accept_one();
    for (std::size_t i = 0; i < watched.size(); ++i) {
      // Nothing travels on the socket after the handshake: readable means the
      // peer hung up (or broke the protocol, which ends the connection the same way).
      if (fds[2 + i].revents != 0) watched[i]->on_hangup();
    }
    for (std::size_t i = 0; i < child_pids.size(); ++i) {
      if (fds[2 + watched.size() + i].revents == 0) continue;
      int status = 0;
      const pid_t reaped = ::waitpid(child_pids[i], &status, WNOHANG);
      troupe::mutex_lock lock(connections_mutex_);
      for (child_process& child : children_) {
        if (child.pid == child_pids[i] && (reaped == child.pid || reaped < 0)) {
          child.exited = true;
          child.pidfd.reset();
        }
      }
    }
    connections_changed_.notify_all();
    reap();
  }
}

void node_core::reap() noexcept {
  std::vector<std::shared_ptr<connection>> done;
  {
    troupe::mutex_lock lock(connections_mutex_);
    done.swap(retired_);
  }
  for (auto& c : done) c->join();
}

void node_core::connection_lost(const std::shared_ptr<connection>& c, const exit_reason& why) noexcept {
  {
    troupe::mutex_lock lock(connections_mutex_);
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      if (it->second == c) {
        connections_.erase(it);
        break;
      }
    }
    try {
      retired_.push_back(c);
    } catch (...) {
    }
  }
  std::vector<cell_ptr> stopped;
  {
    troupe::mutex_lock lock(exports_mutex_);
    for (auto it = proxies_.begin(); it != proxies_.end();) {
      if (std::get<0>(it->first) == c.get()) {
        stopped.push_back(std::move(it->second));
        it = proxies_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (cell_ptr& p : stopped) stop_proxy(*p.get(), why);
  topics_->connection_lost(*c);
  if (cluster_) cluster_->connection_lost(c, why.to_string());
  {
    // wait_for_stop() finds out whether the parent died or only the connection broke.
    troupe::mutex_lock lock(stop_mutex_);
    if (!parent_.empty() && c->peer()->name == parent_) parent_connection_lost_ = true;
  }
  stop_requested_.notify_all();
  connections_changed_.notify_all();
  wake_control();
}

// --- stopping -------------------------------------------------------------------------------

void node_core::stop() noexcept {
  // acq_rel: release pairs with the acquire in stopping() (whoever sees the flag
  // sees the node as it was when stop() began); acquire orders a second caller after the first.
  if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
  // Publications stop before the connections close (they report system_stopped).
  topics_->stop();
  if (!control_.joinable()) return;  // never started
  // Leave the cluster first: with etcd, the lease goes at once, so the other
  // members hear of it now rather than when it expires.
  if (cluster_) cluster_->stop();
  // Child nodes first: ask them to stop, give them a moment, then kill.
  std::vector<std::shared_ptr<connection>> connections;
  std::vector<pid_t> alive_children;
  {
    troupe::mutex_lock lock(connections_mutex_);
    for (auto& [name, c] : connections_) connections.push_back(c);
    for (const child_process& child : children_) {
      if (!child.exited) alive_children.push_back(child.pid);
    }
  }
  for (auto& c : connections) {
    const bool our_child =
        std::find(alive_children.begin(), alive_children.end(), c->peer()->pid) != alive_children.end();
    if (our_child) (void)c->write(record_kind::stop, {});
  }
  const time_limit until = std::chrono::steady_clock::now() + child_stop_grace;
  for (pid_t pid : alive_children) {
    // The control thread no longer runs: wait for each child here.
    if (!wait_for_exit(pid, until)) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  // TCP connections say goodbye (their peers will not re-dial); then the rest close.
  {
    std::unique_ptr<tcp_transport> tcp;
    {
      troupe::mutex_lock lock(tcp_mutex_);
      tcp = std::move(tcp_);
    }
    if (tcp) tcp->stop();
    troupe::mutex_lock lock(tcp_mutex_);
    tcp_ = std::move(tcp);  // destroyed with the node (connections may still refer to it)
  }
  for (auto& c : connections) c->close("node '" + config_.name + "' is shutting down");
  wake_control();
  control_.join();
  shm_.wait_for_handshakes();  // each ends by its deadline
  {
    troupe::mutex_lock lock(connections_mutex_);
    // A handshake that finished meanwhile registered a connection: close it too.
    for (auto& [name, c] : connections_) connections.push_back(c);
  }
  for (auto& c : connections) c->close("node '" + config_.name + "' is shutting down");
  // Every connection's reader ends after close(); join them all.
  for (auto& c : connections) c->join();
  reap();
  shm_.close();
  troupe::mutex_lock lock(exports_mutex_);
  proxies_.clear();
  names_.clear();
  exports_.clear();
}

void node_core::request_stop() noexcept {
  {
    troupe::mutex_lock lock(stop_mutex_);
    stop_flag_ = true;
  }
  stop_requested_.notify_all();
}

void node_core::wait_for_stop() {
  troupe::mutex_lock lock(stop_mutex_);
  for (;;) {
    stop_requested_.wait(lock, [&]() TROUPE_REQUIRES(stop_mutex_) { return stop_flag_ || parent_connection_lost_; });
    if (stop_flag_) return;
    parent_connection_lost_ = false;
    // A connection closed over a defect is not a dead parent: if the parent still
    // answers, keep serving. (A parent that died takes this process with it
    // anyway: PR_SET_PDEATHSIG.)
    const std::string parent = parent_;
    lock.unlock();
    const bool parent_alive = static_cast<bool>(connection_to(parent));
    lock.lock();
    if (!parent_alive) return;
  }
}

}  // namespace troupe::detail
