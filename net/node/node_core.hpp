// node_core: the machinery behind troupe::node. Owns: the connection registry,
// routing by node name, exports and proxies, names, the control thread.
// May use: connection/, shm/, tcp/, cluster/, wire/, os/, runtime/.
//
// A node reaches a peer on this host over shared memory (shm/shm_transport.hpp)
// and one on another machine over TCP (tcp/tcp_transport.hpp); either way the
// result is a connection (connection/connection.hpp) registered here by the
// peer's name. The control thread polls every shared-memory connection's
// socket and every spawned child's pidfd, so a peer's death is a hang-up seen
// at once, not a missed heartbeat. Deployment (spawn_node, remote spawn, stop)
// is in deploy/, cluster membership in cluster/.
//
// Thread safety: every member from any thread unless its comment says otherwise.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cluster/cluster_core.hpp"
#include "connection/connection.hpp"
#include "os/os.hpp"
#include "shm/shm_transport.hpp"
#include "tcp/tcp_transport.hpp"
#include "topics/topic_registry.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/detail/remote.hpp"
#include "troupe/net/node.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

// Stops a proxy with the reason its remote actor (or its process) stopped with.
void stop_proxy(cell& proxy, const exit_reason& reason) noexcept;

// The factory registered for a remote-spawn key, or null (remote.cpp).
actor_factory find_actor_factory(const std::string& key);

class node_core {
 public:
  node_core(troupe::node& owner, node_config cfg);
  ~node_core();
  node_core(const node_core&) = delete;
  node_core& operator=(const node_core&) = delete;

  // Claims the name and starts the control thread; throws troupe_error.
  void start();
  // Closes every connection, stops child nodes, joins the threads.
  void stop() noexcept;
  // stop() has begun: no new connections.
  [[nodiscard]] bool stopping() const noexcept {
    // acquire: pairs with the acq_rel exchange in stop().
    return stopping_.load(std::memory_order_acquire);
  }

  [[nodiscard]] const std::string& name() const noexcept { return config_.name; }
  [[nodiscard]] std::uint64_t incarnation() const noexcept { return incarnation_; }
  [[nodiscard]] const node_config& config() const noexcept { return config_; }
  [[nodiscard]] troupe::node& owner() noexcept { return owner_; }

  [[nodiscard]] std::uint64_t anchor_id() const noexcept { return anchor_.id(); }
  [[nodiscard]] std::uint64_t host() const noexcept { return host_; }
  // This node's TCP endpoint ("" if it does not listen).
  [[nodiscard]] std::string endpoint() const;

  // --- connections ------------------------------------------------------------------
  // A live connection to the node of that name, dialing it if needed: over shared
  // memory if it is on this host, else over TCP at its endpoint (known from a
  // ref's address, a hello, or the hint).
  expected<std::shared_ptr<connection>> connection_to(std::string_view node_name, std::uint64_t host_hint = 0,
                                                      const std::string& endpoint_hint = {});
  // A live connection to whatever node listens at "tcp://host:port".
  expected<std::shared_ptr<connection>> connection_to_endpoint(const std::string& endpoint);
  // Waits (without dialing) for a live connection to that node.
  expected<std::shared_ptr<connection>> await_connection(const std::string& node_name, time_limit until);
  [[nodiscard]] bool has_connection(const std::string& node_name);
  // The newest live connection to that node, or null.
  std::shared_ptr<connection> live_connection(const std::string& node_name);
  // Every live connection.
  std::vector<std::shared_ptr<connection>> live_connections();
  // The node's cluster membership; null when config.cluster has no provider.
  [[nodiscard]] cluster_core* cluster() noexcept { return cluster_.get(); }
  // The node's topics (publish/subscribe).
  [[nodiscard]] topic_registry& topics() noexcept { return *topics_; }
  [[nodiscard]] const std::shared_ptr<topic_registry>& topics_ptr() const noexcept { return topics_; }
  // An accepted TCP handshake from `name`: why it must be refused (a connection to
  // that incarnation exists, or this node's own dial to it wins the tie), or
  // nothing. Closes connections to an earlier incarnation of it.
  std::optional<std::string> admit_connection(const std::string& name, std::uint64_t incarnation,
                                              const std::string& endpoint);
  // Waits (without dialing) for a live connection to the node at that TCP endpoint.
  expected<std::shared_ptr<connection>> await_endpoint(const std::string& endpoint, time_limit until);
  // Starts a connection made by a transport and makes it known.
  std::shared_ptr<connection> register_connection(std::shared_ptr<connection> c);
  // A TCP connection ended: the transport re-dials unless it ended on purpose.
  void tcp_connection_lost(const std::string& name, const std::string& endpoint, bool said_goodbye);
  void connection_lost(const std::shared_ptr<connection>& c, const exit_reason& why) noexcept;
  expected<node_handle> spawn_node(node_spawn_options options);
  // A handle on the peer of `c`, with its anchor's proxy.
  node_handle handle_for(const std::shared_ptr<connection>& c);
  void stop_node(const node_handle& h);
  void kill_node(const node_handle& h);
  // run(): blocks until a stop record arrives or the parent's connection is gone.
  void wait_for_stop();
  void request_stop() noexcept;
  [[nodiscard]] bool is_parent(const std::string& name) {
    troupe::mutex_lock lock(stop_mutex_);
    return !parent_.empty() && name == parent_;
  }
  void set_parent(std::string name) {
    troupe::mutex_lock lock(stop_mutex_);
    parent_ = std::move(name);
  }

  // --- addresses, exports, proxies -------------------------------------------------
  void export_cell(cell* c, const protocol_table& table);
  struct export_entry {
    cell_ptr cell;
    const protocol_table* table = nullptr;
    std::vector<std::weak_ptr<connection>> watchers;
  };
  // A copy of the entry (without watchers), if the actor is exported here.
  std::optional<std::pair<cell_ptr, const protocol_table*>> exported(std::uint64_t id);
  void watch(std::uint64_t id, const std::shared_ptr<connection>& by);
  void export_stopped(cell* c, const exit_reason& reason);
  cell_ptr proxy_for(const std::shared_ptr<connection>& via, std::uint64_t remote_id, const protocol_table& table);
  void remote_gone(const connection& via, std::uint64_t remote_id, const exit_reason& reason);
  cell_ptr resolve(const wire_address& address, const protocol_table& table, const std::shared_ptr<connection>& via);

  // --- names and spawning -------------------------------------------------------
  void publish(std::string name, cell* c, const protocol_table& table);
  void unpublish(std::string_view name);
  std::optional<std::pair<cell_ptr, const protocol_table*>> published(const std::string& name);
  // The peer's lookup/spawn requests (on its reader thread); the result body.
  std::vector<std::byte> answer_lookup(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);
  std::vector<std::byte> answer_spawn(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);
  std::vector<std::byte> answer_load(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);

  // Schema announced in the handshake: every registered protocol's messages and replies.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> schema_table() const;
  void log(const std::string& line) const noexcept;

 private:
  void control_loop() noexcept;
  // Starts the anchor actor (exports.cpp).
  void spawn_anchor();
  std::shared_ptr<connection> find_connection(const std::string& name) TROUPE_REQUIRES(connections_mutex_);
  tcp_transport& tcp();  // started on first use
  void wake_control() noexcept;
  void reap() noexcept;

  troupe::node& owner_;
  node_config config_;
  std::uint64_t incarnation_;
  std::uint64_t host_ = 0;
  mutable troupe::mutex tcp_mutex_;
  std::unique_ptr<tcp_transport> tcp_ TROUPE_GUARDED_BY(tcp_mutex_);  // started on first use
  shm_transport shm_;
  unique_fd wake_fd_;  // eventfd: the control thread re-reads its poll set
  std::thread control_;
  std::atomic<bool> stopping_{false};
  ref<protocol<>> anchor_;
  // Set in start() before any connection can come up; stopped first in stop().
  std::unique_ptr<cluster_core> cluster_;
  // Made with the node (topic handles share it); its keeper starts in start(),
  // and it stops first in stop().
  const std::shared_ptr<topic_registry> topics_;

  troupe::mutex connections_mutex_;
  std::condition_variable_any connections_changed_;
  std::multimap<std::string, std::shared_ptr<connection>> connections_
      TROUPE_GUARDED_BY(connections_mutex_);                                                // by peer name; newest last
  std::vector<std::shared_ptr<connection>> retired_ TROUPE_GUARDED_BY(connections_mutex_);  // lost; threads to join
  struct child_process {
    pid_t pid;
    std::string name;
    unique_fd pidfd;
    bool exited = false;
  };
  std::vector<child_process> children_ TROUPE_GUARDED_BY(connections_mutex_);
  troupe::mutex dial_mutex_;                                                       // one dial at a time
  std::set<std::string> dialing_ TROUPE_GUARDED_BY(connections_mutex_);            // TCP dials by name in progress
  std::set<std::string> dialing_endpoints_ TROUPE_GUARDED_BY(connections_mutex_);  // ... and by endpoint
  // Where named nodes were last known to be: (host, endpoint) (under connections_mutex_).
  std::map<std::string, std::pair<std::uint64_t, std::string>> contacts_ TROUPE_GUARDED_BY(connections_mutex_);

  troupe::mutex exports_mutex_;
  std::unordered_map<std::uint64_t, export_entry> exports_ TROUPE_GUARDED_BY(exports_mutex_);
  std::unordered_map<std::string, std::pair<cell_ptr, const protocol_table*>> names_ TROUPE_GUARDED_BY(exports_mutex_);
  std::map<std::tuple<const connection*, std::uint64_t, const protocol_table*>, cell_ptr> proxies_
      TROUPE_GUARDED_BY(exports_mutex_);

  troupe::mutex stop_mutex_;
  std::condition_variable_any stop_requested_;
  bool stop_flag_ TROUPE_GUARDED_BY(stop_mutex_) = false;
  bool parent_connection_lost_ TROUPE_GUARDED_BY(stop_mutex_) = false;
  std::string parent_ TROUPE_GUARDED_BY(stop_mutex_);
};

}  // namespace troupe::detail