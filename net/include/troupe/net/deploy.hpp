// Deploying a program across processes: TROUPE_REGISTER_ACTOR makes an actor
// type spawnable by other nodes (node::spawn<A>(troupe::on(handle), args...)
// or spawn<A>(troupe::anywhere, ...)), and troupe::run() is the main() hook
// that lets the same program be the parent or a child node that
// node::spawn_node() started. node_child.hpp makes a whole node a supervised
// child; docs/deployment.md has the guide.
//
//   TROUPE_REGISTER_ACTOR(worker, int);                    // at namespace scope
//   int main(int argc, char** argv) {
//     return troupe::run(argc, argv, [&] {
//       troupe::node n({.name = "parent"});
//       auto child = n.spawn_node("worker-node").value();
//       auto w = n.spawn<worker>(troupe::on(child), 42).value();
//       ...
//     });
//   }
#pragma once

#include <functional>
#include <string>
#include <tuple>
#include <utility>

#include "troupe/net/detail/remote_spawn.hpp"
#include "troupe/net/node.hpp"

namespace troupe {

// Registers actor class A for remote spawn with constructor arguments Args...
// (serializable). Use the macro at namespace scope, one line per actor type.
template <actor_class A, class... Args>
bool register_actor() {
  detail::register_actor_factory(
      detail::spawn_key<A, Args...>(),
      [](node& n, wire_reader& in) -> expected<std::pair<detail::cell_ptr, const detail::protocol_table*>> {
        using P = typename A::protocol_type;
        const detail::protocol_table& table = detail::protocol_table_of<P>();
        std::tuple<Args...> args{};
        const bool ok = std::apply([&](auto&... a) { return (troupe::decode(in, a) && ... && true); }, args);
        if (!ok || in.remaining() != 0) {
          return error(errc::malformed_message,
                       "spawn arguments of " + std::string(type_name_of<A>()) +
                           " do not decode: " + (in.failed() ? in.failure() : "trailing bytes"));
        }
        ref<P> r = std::apply([&](auto&... a) { return n.spawn<A>(std::move(a)...); }, args);
        return std::pair<detail::cell_ptr, const detail::protocol_table*>(detail::cell_ptr(detail::ref_access::get(r)),
                                                                          &table);
      });
  return true;
}

#define TROUPE_DETAIL_CONCAT2(a, b) a##b
#define TROUPE_DETAIL_CONCAT(a, b) TROUPE_DETAIL_CONCAT2(a, b)
// TROUPE_REGISTER_ACTOR(worker) or TROUPE_REGISTER_ACTOR(worker, int, std::string)
#define TROUPE_REGISTER_ACTOR(A, ...)                                                     \
  [[maybe_unused]] static const bool TROUPE_DETAIL_CONCAT(troupe_registered_, __LINE__) = \
      ::troupe::register_actor<A __VA_OPT__(, ) __VA_ARGS__>()

// The main() hook for programs that deploy themselves: in a process started by
// spawn_node(), becomes that node, runs `child_setup` (if given) and serves until
// the parent stops it (or dies), then returns the exit code; in any other
// process, returns main_fn().
//
//   int main(int argc, char** argv) {
//     return troupe::run(argc, argv, [&] { troupe::node n({.name = "parent"}); ...; return 0; });
//   }
int run(int argc, char** argv, const std::function<int()>& main_fn, const std::function<void(node&)>& child_setup = {});
// True in a process started by spawn_node().
bool is_spawned_node() noexcept;

}  // namespace troupe
