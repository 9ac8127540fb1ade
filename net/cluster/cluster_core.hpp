// cluster_core: a node's membership in a cluster. Owns: the member list, member events,
// global names, placement, the seeds provider. May use: node/, connection/, wire/.
//
// cluster_core: a node's membership in a cluster (net/include/troupe/net/cluster.hpp
// has the user's view, docs/cluster.md the guide).
//
// The core keeps the member list, connects to every member it hears of, tells
// subscribers member_up / member_down, and keeps the cluster-wide names. Where
// members and names come from is the provider's business:
// - seeds (embedded): the core itself is the provider. A joining node dials
//   any reachable seed; every connection between two members carries `gossip`
//   records (at once when the connection comes up, then every gossip_interval, and
//   whenever this node's names change): the sender's identity, the members it
//   is connected to, and the global names it holds. A member is up while this node
//   has a connection to it and has heard its gossip on that connection; the connection's failure
//   detector takes it down. Names live with their holder: when it goes, so do
//   they.
// - etcd (membership.hpp, etcd_provider.cpp): the provider reports members;
//   a member is up while the provider lists it and this node is connected to it
//   (so a member_up always means "you can message it now"); down when the
//   provider reports it gone (its lease expired: its connection is closed too) or
//   the connection is lost (the TCP transport re-dials it; up again when connected, if
//   its lease has not expired meanwhile). Names are the provider's.
//
// Threads: one of its own, which dials members it has not connected to yet and
// retries the seeds while this node is alone, and sends the periodic gossip.
// Events are told to subscribers under the core's lock, so each subscriber
// sees them in the order they happened (a member's up before its down).
//
// Thread safety: every member from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cluster/membership.hpp"
#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/cluster.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"

namespace troupe::detail {

class node_core;
class connection;
class cell;
struct protocol_table;

// The gossip record's body (docs/wire.md; troupe serialization, so a peer's
// bytes decode under the reader's memory budget like any message).
struct gossip_member {
  std::string name;
  std::uint64_t incarnation = 0;
  std::string endpoint;
  std::uint64_t host = 0;
};
struct gossip_record {
  std::uint32_t version = 1;
  std::string cluster;
  gossip_member sender;
  std::vector<gossip_member> members;  // those the sender is connected to
  std::vector<std::string> names;      // global names the sender holds
};

class cluster_core final : public membership_events {
 public:
  cluster_core(node_core& node, cluster_config config);
  ~cluster_core();
  cluster_core(const cluster_core&) = delete;
  cluster_core& operator=(const cluster_core&) = delete;

  // Registers with the provider and starts the thread. Throws troupe_error
  // (etcd unreachable, no TCP endpoint to be reached at).
  void start();
  // Leaves the cluster (etcd: revokes the lease) and joins the thread.
  void stop() noexcept;

  // --- the node's connections -------------------------------------------------------
  // A connection came up: the seeds provider greets it with gossip; etcd confirms a
  // member it was waiting to connect to.
  void connection_up(const std::shared_ptr<connection>& c);
  // A connection ended: its member is down (unless another connection to the same
  // incarnation remains).
  void connection_lost(const std::shared_ptr<connection>& c, const std::string& why);
  // A gossip record on `via` (its reader thread): the defect text if malformed.
  std::optional<std::string> handle_gossip(const std::shared_ptr<connection>& via, std::span<const std::byte> body);
  // An actor this node exported stopped: its global names go.
  void actor_stopped(const cell* c);

  // --- the user's API ------------------------------------------------------------
  // Every member, this node included, by name.
  std::vector<member> members();
  // Tells member_up for every current member at once, then every change.
  void subscribe(std::function<void(const member_up&)> up, std::function<void(const member_down&)> down);
  // Blocks until there are at least `count` members (this one included).
  expected<void> await_members(std::size_t count, time_limit until);
  // A cluster-wide name for a local actor (also published locally under it).
  expected<void> publish_global(const std::string& name, cell* c, const protocol_table& table);
  void unpublish_global(const std::string& name);
  // The member holding `name`; waits until `until` for it to appear.
  expected<member> name_owner(const std::string& name, time_limit until);
  // Seeds (tests): waits until no member is known to hold `name`.
  bool await_name_gone(const std::string& name, time_limit until);

  [[nodiscard]] const member& self() const noexcept { return self_; }
  [[nodiscard]] bool uses_gossip() const noexcept { return config_.provider == membership_provider_kind::seeds; }

  // membership_events (the etcd provider)
  void member_seen(const member& m) override;
  void member_gone(const member& m, const std::string& why) override;
  void provider_log(const std::string& line) override;

 private:
  struct up_member {
    member who;
    std::uint64_t host = 0;
    std::set<std::string> names;  // seeds: the global names it holds
  };

  void loop() noexcept;
  void gossip_to(const std::shared_ptr<connection>& c);
  void gossip_to_all();
  std::vector<std::byte> gossip_body();
  // `m` is up / down; tells the subscribers.
  void mark_up(const member& m, std::uint64_t host, std::set<std::string> names) TROUPE_REQUIRES(mutex_);
  void mark_down(const std::string& name, const std::string& why) TROUPE_REQUIRES(mutex_);
  // seeds: the holder of `name` among this node and the members (the smallest
  // node name wins a name claimed twice).
  std::optional<member> gossip_owner(const std::string& name) const TROUPE_REQUIRES(mutex_);

  node_core& node_;
  const cluster_config config_;
  std::unique_ptr<membership_provider> provider_;  // null: seeds (gossip)
  member self_;

  troupe::mutex mutex_;
  std::condition_variable_any changed_;  // members, names, or work for the thread
  bool stopping_ TROUPE_GUARDED_BY(mutex_) = false;
  std::map<std::string, up_member> up_ TROUPE_GUARDED_BY(mutex_);  // members by name (not self)
  struct pending_dial {
    member who;
    std::uint64_t host = 0;  // 0: unknown (shared memory is tried first, then TCP)
    int failures = 0;
  };
  std::map<std::string, pending_dial> to_dial_ TROUPE_GUARDED_BY(mutex_);   // heard of, not connected
  std::map<std::string, member> registry_ TROUPE_GUARDED_BY(mutex_);        // etcd: members the provider has seen
  std::map<std::string, const cell*> own_names_ TROUPE_GUARDED_BY(mutex_);  // global names this node holds
  struct subscriber {
    std::function<void(const member_up&)> up;
    std::function<void(const member_down&)> down;
  };
  std::vector<subscriber> subscribers_ TROUPE_GUARDED_BY(mutex_);
  std::set<std::pair<std::string, std::uint64_t>> foreign_
      TROUPE_GUARDED_BY(mutex_);  // nodes of other clusters, logged once
  bool gossip_now_ TROUPE_GUARDED_BY(mutex_) =
      false;  // seeds only: members or names changed, gossip before the interval ends

  std::atomic<bool> started_{false};  // self_ is set: connections may be greeted
  std::thread thread_;
};

}  // namespace troupe::detail
