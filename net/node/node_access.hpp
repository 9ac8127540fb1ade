// node_access: what net/ itself (and the test hooks) reach inside a
// troupe::node that its public interface does not show. Owns: nothing. May use: node/.
//
// node.hpp names this struct only as a friend: users never see node_core or
// peer_info in a signature.
#pragma once

#include <memory>

#include "connection/peer_info.hpp"
#include "node/node_core.hpp"
#include "troupe/net/node.hpp"

namespace troupe::detail {

struct node_access {
  static node_core& core(troupe::node& n) noexcept { return *n.core_; }
  static node_handle make_handle(std::shared_ptr<const peer_info> info, actor_addr anchor) {
    return node_handle(std::move(info), std::move(anchor));
  }
  static const std::shared_ptr<const peer_info>& info(const node_handle& h) noexcept { return h.info_; }
};

}  // namespace troupe::detail
