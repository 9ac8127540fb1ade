// node_keeper: a whole node as a supervised child (node_child.hpp). Owns: starting
// the node, watching its anchor, stopping it. May use: node/.
#include "troupe/net/node_child.hpp"

#include <stdexcept>

namespace troupe {

void node_keeper::on_start() {
  auto h = owner_->spawn_node(options_);
  if (!h) throw troupe_error(h.error());
  handle_ = *h;
  (void)monitor(handle_.anchor());
  if (deploy_) deploy_(*owner_, handle_);
}

void node_keeper::on(const troupe::down& d) {
  if (!(d.who == handle_.anchor())) return;
  // The connection may have closed over a defect with the process still running:
  // make sure it is gone before a successor takes its name.
  owner_->kill_node(handle_);
  throw std::runtime_error("node '" + handle_.name() + "' went down: " + d.reason.to_string());
}

void node_keeper::on_stop() {
  if (handle_.alive()) owner_->stop_node(handle_);
}

child_spec node_child(node& owner, std::string id, node_spawn_options options, node_deploy deploy) {
  return child<node_keeper>(std::move(id), &owner, std::move(options), std::move(deploy));
}

}  // namespace troupe
