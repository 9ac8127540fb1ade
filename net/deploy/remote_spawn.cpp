// Remote spawn's answering side: a peer asks this node to start an actor of a
// registered type (TROUPE_REGISTER_ACTOR), or how loaded it is (spawn(anywhere)).
#include "node/node_core.hpp"

namespace troupe::detail {

std::vector<std::byte> node_core::answer_spawn(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok) {
  wire_context context{this, nullptr};
  wire_reader in(body, &context);
  std::string key;
  ok = in.read_scalar(request_id) && troupe::decode(in, key);
  std::vector<std::byte> result;
  if (!ok) return result;
  wire_writer out(result);
  auto fail = [&](const error& e) {
    out.write_scalar<std::uint8_t>(1);
    encode_error(out, e);
    return result;
  };
  actor_factory factory = find_actor_factory(key);
  if (factory == nullptr) {
    return fail(error(errc::not_registered,
                      "node '" + config_.name + "' has no actor registered as " + key + " (TROUPE_REGISTER_ACTOR)"));
  }
  try {
    auto spawned = factory(owner_, in);
    if (!spawned) return fail(spawned.error());
    export_cell(spawned->first.get(), *spawned->second);
    out.write_scalar<std::uint8_t>(0);
    out.write_scalar(spawned->first->id());
    return result;
  } catch (const troupe_error& e) {
    return fail(e.error());
  } catch (const std::exception& e) {
    return fail(error(errc::actor_down, std::string("the constructor of ") + key + " threw: " + e.what()));
  }
}

std::vector<std::byte> node_core::answer_load(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok) {
  wire_reader in(body);
  std::string key;
  ok = in.read_scalar(request_id) && troupe::decode(in, key) && in.remaining() == 0;
  std::vector<std::byte> result;
  if (!ok) return result;
  wire_writer out(result);
  out.write_scalar<std::uint8_t>(0);
  out.write_scalar<std::uint8_t>(find_actor_factory(key) != nullptr ? 1 : 0);
  out.write_scalar<std::uint64_t>(owner_.live_actors());
  return result;
}

}  // namespace troupe::detail
