// What the header templates of remote.hpp call: sending messages, replies and
// exit signals over a connection, the wire form of addresses, exit reasons and
// errors, and the start-up registries (protocols, remote-spawnable actors).
#include <cstring>
#include <mutex>

#include "node/node_core.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace {

troupe::mutex& registry_mutex() {
  static troupe::mutex m;
  return m;
}
std::vector<const protocol_table*>& protocols() {
  static std::vector<const protocol_table*> list;
  return list;
}
std::unordered_map<std::string, actor_factory>& factories() {
  static std::unordered_map<std::string, actor_factory> map;
  return map;
}

}  // namespace

void register_protocol(const protocol_table& table) {
  troupe::mutex_lock lock(registry_mutex());
  protocols().push_back(&table);
}

std::vector<const protocol_table*> registered_protocols() {
  troupe::mutex_lock lock(registry_mutex());
  return protocols();
}

void register_actor_factory(std::string key, actor_factory factory) {
  troupe::mutex_lock lock(registry_mutex());
  factories()[std::move(key)] = factory;
}

actor_factory find_actor_factory(const std::string& key) {
  troupe::mutex_lock lock(registry_mutex());
  auto it = factories().find(key);
  return it == factories().end() ? nullptr : it->second;
}

std::vector<std::byte>& encode_buffer() noexcept {
  thread_local std::vector<std::byte> buffer;
  return buffer;
}

node_core* node_of(const connection& c) noexcept { return &c.node(); }

std::error_code send_message(const std::shared_ptr<connection>& via, std::uint64_t target, std::uint64_t type_id,
                             std::uint64_t fingerprint, std::string_view type_name, std::span<const std::byte> payload,
                             std::unique_ptr<pending_reply> pending) noexcept {
  auto fail = [&](errc code, const std::string& text) {
    if (pending) pending->fail(error(code, text));
    return make_error_code(code);
  };
  try {
    // The peer announced its schemas in the handshake: a type it does not know,
    // or knows differently, is refused here, naming the type — never misread there.
    if (auto refused = via->schema_refusal(type_id, fingerprint, type_name)) {
      return fail(refused->code(), refused->text());
    }
    if (payload.size() > via->node().config().max_message_bytes) {
      return fail(errc::malformed_message, "a " + std::string(type_name) + " of " + std::to_string(payload.size()) +
                                               " bytes exceeds max_message_bytes");
    }
    std::uint64_t request_id = 0;
    if (pending) {
      request_id = via->add_pending(std::move(pending));
      if (request_id == 0) return make_error_code(errc::connection_lost);  // failed by add_pending
    }
    // A tell's record has no request id: 8 bytes fewer (a 64-byte message and
    // its head then fit two cache lines of a ring wherever they start).
    std::byte head[24];
    std::memcpy(head, &target, 8);
    std::memcpy(head + 8, &type_id, 8);
    std::memcpy(head + 16, &request_id, 8);
    const std::error_code ec = request_id == 0 ? via->write(record_kind::tell, {head, 16}, payload)
                                               : via->write(record_kind::message, head, payload);
    if (ec && request_id != 0)
      via->fail_pending(request_id, error(static_cast<errc>(ec.value()), "not sent to " + via->describe()));
    return ec;
  } catch (...) {
    return fail(errc::connection_lost, "out of memory while sending");
  }
}

void send_reply(const std::shared_ptr<connection>& via, std::uint64_t request_id,
                std::span<const std::byte> payload) noexcept {
  std::byte head[8];
  std::memcpy(head, &request_id, 8);
  (void)via->write(record_kind::reply, head, payload);
}

void send_remote_exit(const std::shared_ptr<connection>& via, std::uint64_t target, cell* from,
                      const exit_reason& reason) noexcept {
  try {
    std::vector<std::byte> body;
    wire_context context{&via->node(), nullptr};
    wire_writer out(body, &context);
    out.write_scalar(target);
    encode_address(out, from, protocol_table_of<protocol<>>());
    encode_reason(out, reason);
    (void)via->write(record_kind::exit, body);
  } catch (...) {
    via->node().log("could not forward an exit signal (out of memory)");
  }
}

void encode_address(wire_writer& out, cell* c, const protocol_table& table) {
  if (c == nullptr) {
    troupe::encode(out, std::string());
    out.write_scalar(std::uint64_t{0});
    out.write_scalar(std::uint64_t{0});
    out.write_scalar(std::uint64_t{0});
    troupe::encode(out, std::string());
    return;
  }
  auto* context = out.context();
  if (context == nullptr || context->node == nullptr) {
    throw troupe_error(error(errc::malformed_message, "a ref can only be serialized by a troupe::node"));
  }
  node_core& node = *context->node;
  if (c->is_remote()) {
    // A proxy: write the address of the actor it stands for.
    const wire_address& where = static_cast<const proxy_base*>(c)->where();
    troupe::encode(out, where.node);
    out.write_scalar(where.incarnation);
    out.write_scalar(where.id);
    out.write_scalar(where.host);
    troupe::encode(out, where.endpoint);
    return;
  }
  node.export_cell(c, table);
  troupe::encode(out, node.name());
  out.write_scalar(node.incarnation());
  out.write_scalar(c->id());
  out.write_scalar(node.host());
  troupe::encode(out, node.endpoint());
}

bool decode_address(wire_reader& in, const protocol_table& table, cell_ptr& out) {
  wire_address address;
  if (!troupe::decode(in, address.node) || !in.read_scalar(address.incarnation) || !in.read_scalar(address.id) ||
      !in.read_scalar(address.host) || !troupe::decode(in, address.endpoint)) {
    return false;
  }
  const std::string& name = address.node;
  if (!address.endpoint.empty() && (address.endpoint.size() > 300 || !parse_endpoint(address.endpoint))) {
    in.fail("address with an invalid endpoint");
    return false;
  }
  if (name.empty()) {
    if (address.id != 0) {
      in.fail("address without a node");
      return false;
    }
    out = cell_ptr{};
    return true;
  }
  if (!valid_node_name(name)) {
    in.fail("address with an invalid node name");
    return false;
  }
  auto* context = in.context();
  if (context == nullptr || context->node == nullptr) {
    in.fail("a ref can only be deserialized by a troupe::node");
    return false;
  }
  out = context->node->resolve(address, table, context->via);
  return true;
}

void encode_reason(wire_writer& out, const exit_reason& reason) {
  out.write_scalar(static_cast<std::uint8_t>(reason.what()));
  troupe::encode(out, reason.text());
  troupe::encode(out, reason.exception_type());
}

bool decode_reason(wire_reader& in, exit_reason& reason) {
  std::uint8_t kind = 0;
  std::string text, type;
  if (!in.read_scalar(kind) || !troupe::decode(in, text) || !troupe::decode(in, type)) return false;
  switch (static_cast<exit_reason::kind>(kind)) {
    case exit_reason::kind::normal:
      reason = exit_reason::normal();
      return true;
    case exit_reason::kind::shutdown:
      reason = exit_reason::shutdown();
      return true;
    case exit_reason::kind::killed:
      reason = exit_reason::killed();
      return true;
    case exit_reason::kind::error:
      reason = exit_reason::error(std::move(text), std::move(type));
      return true;
    case exit_reason::kind::process_down:
      reason = exit_reason::process_down(std::move(text));
      return true;
    case exit_reason::kind::node_down:
      reason = exit_reason::node_down(std::move(text));
      return true;
  }
  in.fail("unknown exit reason kind " + std::to_string(kind));
  return false;
}

void encode_error(wire_writer& out, const error& e) {
  out.write_scalar(static_cast<std::uint32_t>(e.code()));
  troupe::encode(out, e.text());
}

bool decode_error(wire_reader& in, error& e) {
  std::uint32_t code = 0;
  std::string text;
  if (!in.read_scalar(code) || !troupe::decode(in, text)) return false;
  const bool known = (code > 0 && code <= static_cast<std::uint32_t>(errc::name_taken)) ||
                     (code >= static_cast<std::uint32_t>(errc::storage_failed) &&
                      code <= static_cast<std::uint32_t>(errc::invalid_request)) ||
                     code == static_cast<std::uint32_t>(errc::remote_fault) ||
                     code == static_cast<std::uint32_t>(errc::broker_failed);
  if (!known) {
    in.fail("unknown error code " + std::to_string(code));
    return false;
  }
  e = error(static_cast<errc>(code), std::move(text));
  return true;
}

}  // namespace troupe::detail
