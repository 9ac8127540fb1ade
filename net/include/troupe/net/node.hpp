// node: an actor system with a name, reachable from other processes on this
// host. Actors in different processes exchange typed messages through shared
// memory as if they were local: the same ref<P> works at every distance, and
// refs travel inside messages.
//
//   troupe::node n({.name = "bank"});
//   n.publish("accounts", n.spawn<bank_actor>());
//   // in another process:
//   troupe::node client({.name = "client"});
//   auto bank = client.lookup<bank_protocol>("troupe://bank/accounts").value();
//   bank.tell(deposit{"alice", 500});
//
// Identity: a node is (name, incarnation). The name is unique on its host (its
// UNIX socket in the per-user runtime directory claims it); the incarnation is
// fresh at every start, so refs to a node that died and came back report the
// actors as down instead of reaching the new process by accident.
//
// Deploying: spawn_node() starts a child process (this executable by default)
// that joins as a node; troupe::run() in main() is the hook that lets the same
// program act as parent or child. spawn<A>(on(handle), args...) starts an actor
// of a registered type (TROUPE_REGISTER_ACTOR) there. node_child() makes a
// whole node a supervised child. docs/deployment.md has the guide and
// docs/wire.md the ring layout and handshake.
//
// Failure: when a peer process dies, its UNIX socket hangs up at once: every
// proxy of its actors stops with exit_reason::process_down, so monitors get
// down{process_down}, links fire and pending asks fail — no heartbeat delay.
//
// Thread safety: every member from any thread. lookup(), connect(),
// spawn_node() and remote spawn block the caller (bounded by a timeout): call
// them from plain threads or on_start, not from a hot handler.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "troupe/net/cluster.hpp"
#include "troupe/net/detail/remote.hpp"
#include "troupe/net/detail/remote_spawn.hpp"
#include "troupe/net/node_config.hpp"
#include "troupe/net/topic.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/serialization.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe {

namespace detail {
struct peer_info;
struct node_access;  // net/node/node_access.hpp: what net/ itself reaches inside a node
class node_core;
}  // namespace detail

// A node this one is connected to (node::connect, spawn_node, await_connection).
class node_handle {
 public:
  node_handle() = default;

  [[nodiscard]] const std::string& name() const;
  [[nodiscard]] std::uint64_t incarnation() const;
  // The process id, if this node started it (spawn_node), else 0.
  [[nodiscard]] pid_t pid() const;
  // Where it listens for TCP ("tcp://10.0.0.2:4000"), empty if it does not.
  [[nodiscard]] const std::string& endpoint() const;
  // False once its process is known to be gone.
  [[nodiscard]] bool alive() const;
  // An actor that lives as long as the node: monitor it to hear of the node's
  // death (down{process_down}) — this is what node_child does.
  [[nodiscard]] const actor_addr& anchor() const noexcept { return anchor_; }
  explicit operator bool() const noexcept { return static_cast<bool>(info_); }

 private:
  friend struct detail::node_access;
  node_handle(std::shared_ptr<const detail::peer_info> info, actor_addr anchor)
      : info_(std::move(info)), anchor_(std::move(anchor)) {}

  std::shared_ptr<const detail::peer_info> info_;
  // Held here, not in peer_info: the anchor's proxy holds its connection, which holds
  // the peer_info, and that must not loop back.
  actor_addr anchor_;
};

// Where a remote spawn goes: sys.spawn<A>(troupe::on(handle), args...).
struct on_node {
  node_handle where;
};
inline on_node on(node_handle where) { return on_node{std::move(where)}; }

class node;

class node : public system {
 public:
  explicit node(node_config cfg = {});
  // Stops the actors (system::shutdown), then closes every connection.
  ~node();

  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] std::uint64_t incarnation() const noexcept;

  // Makes `r` reachable as troupe://<this node>/<name> (replacing an earlier
  // entry of that name). The entry goes away when the actor stops.
  template <a_protocol P>
  void publish(std::string_view name, const ref<P>& r) {
    publish_cell(std::string(name), detail::ref_access::get(r), detail::protocol_table_of<P>());
  }
  void unpublish(std::string_view name);

  // Resolves "troupe://<node>/<name>" (or "<node>/<name>", or
  // "tcp://host:port/<name>" for a node on another machine): dials the node if
  // needed and checks that the actor speaks P. A bare "<name>" is a
  // cluster-wide name (publish_global), waited for until the timeout if no
  // member holds it yet. Errors: no_such_node, no_such_name,
  // protocol_mismatch (naming the protocols or the message type whose schema
  // differs), timeout.
  template <a_protocol P>
  expected<ref<P>> lookup(std::string_view uri, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const detail::protocol_table& table = detail::protocol_table_of<P>();
    expected<detail::cell_ptr> c = lookup_cell(uri, table, timeout);
    if (!c) return c.error();
    return detail::ref_access::make<P>(c->get());
  }

  // Connects this node to another: a node name on this host (shared memory), or
  // "tcp://host:port" (another machine; cookie-authenticated, TLS if
  // configured). Done on demand by lookup and by refs; explicit here.
  expected<node_handle> connect(std::string_view where);
  // Waits (without dialing) until a connection to the node of that name exists:
  // after a lost TCP connection, the node re-dials it with backoff.
  expected<node_handle> await_connection(std::string_view node_name, std::chrono::milliseconds timeout);
  [[deprecated("renamed await_connection")]] expected<node_handle> await_link(std::string_view node_name,
                                                                              std::chrono::milliseconds timeout) {
    return await_connection(node_name, timeout);
  }
  // "tcp://10.0.0.2:4000": where peers reach this node over TCP; empty
  // without config.listen.
  [[nodiscard]] std::string endpoint() const;

  // Starts a child process that joins as a node (see troupe::run) and returns
  // once it has. The child dies with this process.
  expected<node_handle> spawn_node(node_spawn_options options);
  // The common case: this executable, under `name`, with `args`.
  expected<node_handle> spawn_node(std::string name, std::vector<std::string> args = {}) {
    node_spawn_options options;
    options.name = std::move(name);
    options.args = std::move(args);
    return spawn_node(std::move(options));
  }
  // Asks a node this one started to shut down (orderly); kill_node sends SIGKILL.
  void stop_node(const node_handle& h);
  void kill_node(const node_handle& h);

  // Remote spawn of an actor type registered with TROUPE_REGISTER_ACTOR(A, Args...)
  // in the program the node runs. The arguments cross the wire (as their decayed
  // types, which must match the registration).
  using system::spawn;
  template <actor_class A, class... Args>
  expected<ref<typename A::protocol_type>> spawn(on_node where, Args&&... args) {
    return spawn_placed<A>(where, std::forward<Args>(args)...);
  }

  // --- clusters (node_config::cluster; docs/cluster.md) -----------------------
  // Every member, this node included, by name (just this node outside a cluster).
  [[nodiscard]] std::vector<member> members() const;
  // Blocks until the cluster has at least `count` members (this one included).
  expected<void> await_members(std::size_t count, std::chrono::milliseconds timeout);
  // `subscriber` gets member_up for every current member at once (this node
  // first), then member_up / member_down as members come and go. Errors if
  // this node is not in a cluster.
  // (clang-format 14 would join the requires-clause to the declaration)
  // clang-format off
  template <a_protocol P>
    requires(accepts<P, member_up> && accepts<P, member_down>)
  expected<void> subscribe_members(const ref<P>& subscriber) {
    // clang-format on
    return subscribe_members_impl([subscriber](const member_up& e) { subscriber.tell(e); },
                                  [subscriber](const member_down& e) { subscriber.tell(e); });
  }
  // A cluster-wide name for an actor of this node: lookup<P>("name") on any
  // member finds it (it is also published here, as publish() would). It goes
  // when the actor stops, unpublish_global() is called, or this node leaves or
  // dies. errc::name_taken if another live member holds the name (with seeds,
  // two claims made at once before either has spread: the node whose name
  // sorts first keeps it; with etcd the first claim wins).
  template <a_protocol P>
  expected<void> publish_global(const std::string& name, const ref<P>& r) {
    return publish_global_cell(name, detail::ref_access::get(r), detail::protocol_table_of<P>());
  }
  void unpublish_global(std::string_view name);
  // spawn<A>(troupe::anywhere, args...): on the member (this node included)
  // with the fewest live actors among those that registered A with these
  // argument types; ties go to the name that sorts first.
  template <actor_class A, class... Args>
  expected<ref<typename A::protocol_type>> spawn(anywhere_t where, Args&&... args) {
    return spawn_placed<A>(where, std::forward<Args>(args)...);
  }

  // --- topics (troupe/net/topic.hpp; docs/delivery.md) --------------------------
  // The topic `name` carrying T, spanning this node and every node it is
  // connected to. Every call with the same name and T names the same topic.
  // Throws troupe_error for an invalid name (1 to 256 bytes of printable ASCII).
  template <topic_message T>
  troupe::topic<T> topic(std::string_view name) {
    std::shared_ptr<detail::topic_state_base> state =
        open_topic(std::string(name), type_id_of<T>(), detail::topic_state<T>::type_tag_of(),
                   [this, topic_name = std::string(name)](std::shared_ptr<detail::topic_registry> registry) {
                     return std::shared_ptr<detail::topic_state_base>(
                         std::make_shared<detail::topic_state<T>>(std::move(registry), core_.get(), topic_name));
                   });
    return troupe::topic<T>(std::static_pointer_cast<detail::topic_state<T>>(std::move(state)));
  }

  [[nodiscard]] const node_config& node_settings() const noexcept;

 private:
  friend struct detail::node_access;
  // Remote spawn: the arguments cross the wire as their decayed types.
  template <actor_class A, class Where, class... Args>
  expected<ref<typename A::protocol_type>> spawn_placed(const Where& where, Args&&... args) {
    using P = typename A::protocol_type;
    const detail::protocol_table& table = detail::protocol_table_of<P>();
    std::vector<std::byte> bytes;
    detail::wire_context context{core_.get(), nullptr};
    wire_writer out(bytes, &context);
    (troupe::encode(out, static_cast<const std::decay_t<Args>&>(args)), ...);
    expected<detail::cell_ptr> c = spawn_remote(where, detail::spawn_key<A, std::decay_t<Args>...>(), bytes, table);
    if (!c) return c.error();
    return detail::ref_access::make<P>(c->get());
  }
  void publish_cell(std::string name, detail::cell* c, const detail::protocol_table& table);
  expected<detail::cell_ptr> lookup_cell(std::string_view uri, const detail::protocol_table& table,
                                         std::chrono::milliseconds timeout);
  expected<detail::cell_ptr> spawn_remote(const on_node& where, const std::string& key, std::span<const std::byte> args,
                                          const detail::protocol_table& table);
  // On the least-loaded member that can (cluster.hpp).
  expected<detail::cell_ptr> spawn_remote(anywhere_t, const std::string& key, std::span<const std::byte> args,
                                          const detail::protocol_table& table);
  expected<void> publish_global_cell(const std::string& name, detail::cell* c, const detail::protocol_table& table);
  expected<void> subscribe_members_impl(std::function<void(const member_up&)> up,
                                        std::function<void(const member_down&)> down);
  std::shared_ptr<detail::topic_state_base> open_topic(
      const std::string& name, std::uint64_t type_id, const void* type_tag,
      const std::function<std::shared_ptr<detail::topic_state_base>(std::shared_ptr<detail::topic_registry>)>& make);

  std::unique_ptr<detail::node_core> core_;
};

}  // namespace troupe
