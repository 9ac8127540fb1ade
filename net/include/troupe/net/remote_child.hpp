// remote_child: an actor on another node (another process or machine) as a
// supervised child. The supervisor keeps it running somewhere: when the actor
// fails, or its whole node dies (kill -9, a cut cable: down{node_down} or
// {process_down}), the child is restarted on the first candidate node that
// can be reached — a surviving host.
//
//   spec.children.push_back(troupe::remote_child<worker>(n, "worker",
//       {"tcp://10.0.0.2:4000", "tcp://10.0.0.3:4000"}, worker_args...));
//   auto sup = troupe::spawn_supervisor(n, std::move(spec));
//   auto where = sup.child<troupe::remote_keeper_protocol<worker_protocol>>("worker");
//   troupe::ref<worker_protocol> w = where.ask(troupe::placed<worker_protocol>{}, 1s).get();
//
// How: the child is a keeper actor in this process, linked to the remote
// actor. Its on_start connects to the candidates in order and remote-spawns A
// (registered with TROUPE_REGISTER_ACTOR(A, Args...)) on the first that
// answers; the link makes the remote actor's death (or its node's) fail the
// keeper, and the keeper's stop (a supervisor shutdown) stop the remote actor.
// The keeper's ref stays valid across restarts; ask it for the current
// placement (the remote ref changes with every restart).
//
// Thread safety: as any actor.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "troupe/net/node.hpp"
#include "troupe/runtime/supervisor.hpp"

namespace troupe {

// Asks a remote keeper for the actor's current ref.
template <a_protocol P>
struct placed {
  using reply = ref<P>;
};
template <a_protocol P>
using remote_keeper_protocol = protocol<placed<P>>;

template <actor_class A, class... Args>
class remote_keeper final : public actor<remote_keeper_protocol<typename A::protocol_type>> {
 public:
  using P = typename A::protocol_type;
  remote_keeper(node* owner, std::vector<std::string> candidates, Args... args)
      : owner_(owner), candidates_(std::move(candidates)), args_(std::move(args)...) {}

  void on_start() {
    std::string tried;
    for (const std::string& where : candidates_) {
      auto h = owner_->connect(where);
      if (!h) {
        tried += "\n  " + where + ": " + h.error().to_string();
        continue;
      }
      auto r = std::apply([&](const Args&... a) { return owner_->spawn<A>(troupe::on(*h), a...); }, args_);
      if (!r) {
        tried += "\n  " + where + ": " + r.error().to_string();
        continue;
      }
      current_ = *r;
      this->link(actor_addr(current_));
      return;
    }
    throw troupe_error(error(errc::no_such_node, "no candidate node could host the actor:" + tried));
  }
  ref<P> on(placed<P>) { return current_; }

 private:
  node* owner_;
  std::vector<std::string> candidates_;
  std::tuple<Args...> args_;
  ref<P> current_;
};

// A supervisor child spec: actor A, started with `args` on the first reachable
// node of `candidates` (node names on this host, or "tcp://host:port").
template <actor_class A, class... Args>
child_spec remote_child(node& owner, std::string id, std::vector<std::string> candidates, Args... args) {
  return child<remote_keeper<A, Args...>>(std::move(id), &owner, std::move(candidates), std::move(args)...);
}

}  // namespace troupe
