// Clusters: nodes that find each other, agree on who is alive, and find actors
// by name anywhere (docs/cluster.md).
//
//   troupe::node_config cfg;
//   cfg.name = "b";
//   cfg.listen = "tcp://0.0.0.0:4001";
//   cfg.cluster = troupe::parse_cluster("seeds=10.0.0.1:4000,10.0.0.2:4000").value();
//   troupe::node n(std::move(cfg));
//   n.subscribe_members(watcher);                      // member_up / member_down
//   n.publish_global("ledger", ledger).value();         // cluster-wide name
//   auto l = n.lookup<ledger_protocol>("ledger");       // from any member
//   auto w = n.spawn<worker>(troupe::anywhere);         // the least-loaded member
//
// Two providers of membership:
// - seeds (embedded, the default): a joining node dials any live seed and
//   learns the others; members gossip their views (every gossip_interval and
//   at once on every new connection) and connect to every member they learn of (a full
//   mesh: a handful to a few dozen nodes). A member is up while this node has
//   a connection to it; the failure detector of the connection (heartbeats on TCP, the
//   socket's hang-up on shared memory) takes it down.
// - etcd (v3, through its HTTP/JSON gateway): each node registers under a
//   lease it keeps alive and watches the member prefix; a member is up once its
//   key exists and this node has connected to it, and down when its key goes
//   (lease expiry or an orderly leave).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe {

// A member of the cluster: a node by identity.
struct member {
  std::string name;
  std::uint64_t incarnation = 0;
  std::string endpoint;  // "tcp://host:port"
  friend bool operator==(const member&, const member&) = default;
};

// The events of subscribe_members(): a member joined (or this node connected to
// it again), or left (its connection was lost, it restarted as a new incarnation, it
// said goodbye, or its etcd lease expired).
struct member_up {
  member who;
};
struct member_down {
  member who;
  std::string reason;
};

enum class membership_provider_kind : std::uint8_t { none, seeds, etcd };

struct cluster_config {
  membership_provider_kind provider = membership_provider_kind::none;
  // seeds: "tcp://host:port" (or "host:port") of nodes to join through. A node
  // may list itself; with no seed reachable it is a cluster of one and keeps
  // trying the seeds.
  std::vector<std::string> seeds;
  // etcd: the client URL of its HTTP/JSON gateway ("http://127.0.0.1:2379").
  std::string etcd;
  // Nodes join only members of the same cluster (and, with etcd, keep their
  // keys under /troupe/<cluster_name>/).
  std::string cluster_name = "troupe";
  // seeds: how often members exchange views and retry unreachable seeds.
  std::chrono::milliseconds gossip_interval{500};
  // etcd: the lease's time to live (whole seconds); it is renewed every third.
  std::chrono::seconds lease_ttl{5};
  // etcd: each request's deadline.
  std::chrono::milliseconds request_timeout{3000};
};

// "seeds=host:port,host:port" or "etcd=http://host:port"; options follow
// after ';' ("seeds=a:1;cluster=prod;gossip_ms=200", "etcd=http://e:2379;ttl=3").
expected<cluster_config> parse_cluster(std::string_view spec);

// anywhere: a remote spawn on the least-loaded member that has the actor type
// registered (node::spawn<A>(troupe::anywhere, args...)).
struct anywhere_t {
  explicit constexpr anywhere_t() = default;
};
inline constexpr anywhere_t anywhere{};

}  // namespace troupe
