// The compile-time half of remote spawn: the key an actor type and its
// constructor arguments are registered under, and the factory registry that
// TROUPE_REGISTER_ACTOR (deploy.hpp) fills. Not user-facing.
#pragma once

#include <string>
#include <utility>

#include "troupe/net/detail/remote.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/serialization.hpp"

namespace troupe {
class node;
}  // namespace troupe

namespace troupe::detail {

// Remote spawn: the factories this program registered (TROUPE_REGISTER_ACTOR).
using actor_factory = expected<std::pair<cell_ptr, const protocol_table*>> (*)(troupe::node& n, wire_reader& args);
void register_actor_factory(std::string key, actor_factory factory);

template <class... Args>
std::string spawn_signature() {
  std::string s = "(";
  bool first = true;
  ((s += (first ? "" : ","), s += schema_of<Args>(), first = false), ...);
  return s + ")";
}
template <class A, class... Args>
std::string spawn_key() {
  return std::string(type_name_of<A>()) + spawn_signature<Args...>();
}

}  // namespace troupe::detail
