// membership_provider: where a cluster's members and names come from. Owns: that
// interface. May use: troupe/net/cluster.hpp.
//
// The membership provider interface behind a node's cluster (cluster.hpp has
// the user's view, docs/cluster.md the guide).
//
// A provider tells the cluster core (cluster.cpp) which nodes are members and
// keeps the cluster-wide names. The core connects to every member it hears of,
// turns "seen and connected" into member_up and "gone" into member_down, and
// answers publish_global / lookup / spawn(anywhere) through the provider.
//
// Providers: seeds (gossip over the connections themselves; in cluster.cpp) and
// etcd (etcd_provider.cpp, through etcd's v3 HTTP/JSON gateway).
//
// Thread safety: every member from any thread. Events may be reported from
// any thread (a provider's own), but never while the provider holds a lock the
// core could wait on: the core calls back into the provider.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "troupe/net/cluster.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::detail {

// What a provider reports to the cluster core.
class membership_events {
 public:
  // `m` is a member (may repeat; the core ignores what it knows). Not for
  // this node itself.
  virtual void member_seen(const member& m) = 0;
  // `m` left the cluster (lease expired, key deleted).
  virtual void member_gone(const member& m, const std::string& why) = 0;
  // Diagnostics ("etcd unreachable: ...") for the node's log.
  virtual void provider_log(const std::string& line) = 0;

 protected:
  ~membership_events() = default;
};

class membership_provider {
 public:
  virtual ~membership_provider() = default;

  // Registers `self` and starts watching for other members, reporting them to
  // `events` (which outlives the provider). Returns an error if the provider
  // cannot be reached at all within its request timeout; after a successful
  // start, outages are retried by the provider and logged.
  virtual expected<void> start(const member& self, membership_events& events) = 0;
  // Leaves: deregisters this node (its names go with it) and joins the
  // provider's threads. Idempotent; no events after it returns.
  virtual void stop() noexcept = 0;

  // Claims a cluster-wide name for this node. errc::name_taken if another
  // live member holds it (the error names that member).
  virtual expected<void> claim_name(const std::string& name) = 0;
  // Gives up a name this node claimed (no-op otherwise).
  virtual void release_name(const std::string& name) noexcept = 0;
  // The member holding a name: errc::no_such_name if none.
  virtual expected<member> name_owner(const std::string& name) = 0;
};

// The etcd provider (etcd_provider.cpp). `log` prefixes lines with the node.
std::unique_ptr<membership_provider> make_etcd_provider(const cluster_config& config);

}  // namespace troupe::detail
