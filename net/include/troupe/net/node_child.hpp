// node_child: a whole node (a child process) as a supervised child. When the
// process dies — killed -9, crashed, or its connection broken — the supervisor
// restarts it like any child (per its strategy, restart type and intensity):
// a fresh process, a new incarnation, and `deploy` runs again to start the
// actors it should host.
//
//   spec.children.push_back(troupe::node_child(n, "worker-node", {.name = "w1"},
//       [&](troupe::node& n, const troupe::node_handle& h) { router.tell(use{n.spawn<worker>(troupe::on(h)).value()}); }));
//   auto sup = troupe::spawn_supervisor(n, std::move(spec));
//   troupe::node_handle now = sup.child<troupe::node_keeper_protocol>("worker-node").ask(troupe::current_node{}, 1s).get();
//
// How: the child is a keeper actor in this process. Its on_start spawns the node
// (blocking until it joins) and monitors the node's anchor; the node's death is
// a down{process_down}, which fails the keeper with that reason, so the
// supervisor sees an abnormal exit. The keeper's on_stop stops the node.
// The keeper's ref stays valid across restarts; the remote actors' refs do not
// (they lived in the dead process): `deploy` is where to hand out the new ones.
//
// Thread safety: as any actor.
#pragma once

#include <functional>
#include <string>

#include "troupe/net/node.hpp"
#include "troupe/runtime/supervisor.hpp"

namespace troupe {

// Asks a node keeper for the node it currently runs.
struct current_node {
  using reply = node_handle;
};
using node_keeper_protocol = protocol<current_node>;

using node_deploy = std::function<void(node&, const node_handle&)>;

class node_keeper final : public actor<node_keeper_protocol> {
 public:
  node_keeper(node* owner, node_spawn_options options, node_deploy deploy)
      : owner_(owner), options_(std::move(options)), deploy_(std::move(deploy)) {}
  void on_start();
  node_handle on(current_node) { return handle_; }
  void on(const troupe::down& d);
  void on_stop();

 private:
  node* owner_;
  node_spawn_options options_;
  node_deploy deploy_;
  node_handle handle_;
};

// A supervisor child spec that runs node `options.name` in a child process.
child_spec node_child(node& owner, std::string id, node_spawn_options options, node_deploy deploy = {});

}  // namespace troupe
