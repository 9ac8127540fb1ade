// The compile-time half of talking to other nodes: per-protocol codec tables,
// the proxy cell that stands in for a remote actor, the reply plumbing of a
// remote ask, and the wire form of ref<P>. Not user-facing; node.hpp is.
//
// Design: a remote actor is represented locally by a proxy_cell<P> — a real
// cell, so links, monitors and exit signals work on it exactly as on a local
// actor (they run in the proxy's context). User messages skip the proxy's
// mailbox: forward() encodes them on the sender's thread straight into the
// connection's shared-memory ring, so a sender's messages reach the wire in send
// order, before any later signal about the sender (its death, say). When the
// remote actor stops (a `gone` record) or its process dies (the connection's socket
// hangs up), the proxy stops with the same reason, and everything watching it
// hears of it like of a local actor.
//
// Only the protocols that can cross the wire instantiate any of this: lookup<P>,
// remote spawn, and ref<P> inside a message. Each static_asserts that every
// message (and reply) of P is serializable, so a type that cannot cross is a
// compile error at the point where it would have to.
//
// Thread safety: proxy forward() from any thread; tables are immutable after
// their (thread-safe, static) construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/serialization.hpp"
#include "troupe/runtime/signals.hpp"

namespace troupe::detail {

class node_core;   // net/node/: a node's transport machinery
class connection;  // net/connection/: one connection to one peer node

// What a decoder or encoder of refs needs: the node, and (decoding) the connection the
// bytes came in on.
struct wire_context {
  node_core* node = nullptr;
  std::shared_ptr<connection> via;
};

// Builds the envelope for one decoded message; nullptr if the payload is malformed.
using decode_fn = envelope* (*)(wire_reader& in, std::uint32_t index, const std::shared_ptr<connection>& via,
                                std::uint64_t request_id);
// A remote actor's address: its node (name, incarnation) and its id there.
struct wire_address {
  std::string node;
  std::uint64_t incarnation = 0;
  std::uint64_t id = 0;
  std::uint64_t host = 0;  // where the node runs: same host -> shared memory,
  std::string endpoint;    // else TCP to this endpoint (may be empty)
};
using make_proxy_fn = cell* (*)(troupe::system& sys, std::shared_ptr<connection> via, wire_address address);

struct message_entry {
  std::uint64_t type_id;
  std::uint64_t fingerprint;
  std::string_view name;
  std::uint32_t index;  // in the protocol
  decode_fn decode;
};

// How this node speaks protocol P on the wire.
struct protocol_table {
  std::uint64_t fingerprint = 0;  // over the message fingerprints, in protocol order
  std::string name;               // "protocol<a::ping, a::pong>", for error messages
  std::vector<message_entry> messages;
  // Replies of the requests (type id, fingerprint, name): they cross too.
  std::vector<message_entry> replies;
  make_proxy_fn make_proxy = nullptr;

  [[nodiscard]] const message_entry* find(std::uint64_t type_id) const noexcept {
    for (const message_entry& m : messages)
      if (m.type_id == type_id) return &m;
    return nullptr;
  }
};

// Every protocol that can cross the wire registers its table at start-up, so a
// node announces all its message schemas in its handshake (see node_core).
void register_protocol(const protocol_table& table);
std::vector<const protocol_table*> registered_protocols();

// --- what net/ offers the templates ---------------------------------------
// A remote ask in flight: completed by the reply record, or failed when the
// connection breaks.
struct pending_reply {
  virtual ~pending_reply() = default;
  virtual void complete(wire_reader& in) noexcept = 0;
  virtual void fail(const error& why) noexcept = 0;
};

node_core* node_of(const connection& c) noexcept;
// Sends one user message; on failure returns the error and fails `pending`.
std::error_code send_message(const std::shared_ptr<connection>& via, std::uint64_t target, std::uint64_t type_id,
                             std::uint64_t fingerprint, std::string_view type_name, std::span<const std::byte> payload,
                             std::unique_ptr<pending_reply> pending) noexcept;
void send_reply(const std::shared_ptr<connection>& via, std::uint64_t request_id,
                std::span<const std::byte> payload) noexcept;
void send_remote_exit(const std::shared_ptr<connection>& via, std::uint64_t target, cell* from,
                      const exit_reason& reason) noexcept;
// Writes the address of `c` (exporting it if it is local, so that the peer can
// reach it); throws troupe_error if `context` has no node.
void encode_address(wire_writer& out, cell* c, const protocol_table& table);
// Reads an address and resolves it: a local cell, a proxy (made on first use;
// dials a third node if needed), or null for an empty or dead address.
bool decode_address(wire_reader& in, const protocol_table& table, cell_ptr& out);
// A per-thread buffer for encoding.
std::vector<std::byte>& encode_buffer() noexcept;

void encode_reason(wire_writer& out, const exit_reason& reason);
bool decode_reason(wire_reader& in, exit_reason& reason);
void encode_error(wire_writer& out, const error& e);
bool decode_error(wire_reader& in, error& e);

// --- replies ------------------------------------------------------------------
// The reply of a request that came over the wire: encoded and sent back.
template <class R>
class remote_reply_sink final : public reply_sink<R> {
 public:
  remote_reply_sink(std::shared_ptr<connection> via, std::uint64_t request_id)
      : via_(std::move(via)), request_id_(request_id) {}
  void set(expected<R> value) override {
    if (sent_) return;
    sent_ = true;
    std::vector<std::byte> bytes;
    wire_context context{node_of(*via_), nullptr};
    wire_writer out(bytes, &context);
    if (value.has_value()) {
      out.write_scalar<std::uint8_t>(0);
      if constexpr (!std::is_void_v<R>) troupe::encode(out, *value);
    } else {
      out.write_scalar<std::uint8_t>(1);
      encode_error(out, value.error());
    }
    send_reply(via_, request_id_, bytes);
  }

 private:
  std::shared_ptr<connection> via_;
  std::uint64_t request_id_;
  bool sent_ = false;  // one thread at a time: the replier
};

// The asker's side of a remote ask.
template <class R>
class remote_pending final : public pending_reply {
 public:
  explicit remote_pending(reply_to<R> reply) : reply_(std::move(reply)) {}
  void complete(wire_reader& in) noexcept override {
    try {
      std::uint8_t status = 2;
      if (!in.read_scalar(status) || status > 1) {
        reply_.deliver(error(errc::malformed_message, "reply with a bad status byte"));
      } else if (status == 1) {
        error e;
        if (!decode_error(in, e)) e = error(errc::malformed_message, "reply with a malformed error: " + in.failure());
        reply_.deliver(std::move(e));
      } else if constexpr (std::is_void_v<R>) {
        reply_.deliver(expected<void>{});
      } else {
        R value{};
        if (troupe::decode(in, value) && in.remaining() == 0) {
          reply_.deliver(expected<R>(std::move(value)));
        } else {
          reply_.deliver(error(errc::malformed_message,
                               std::string("reply of type ") + std::string(type_name_of<R>()) +
                                   " does not decode: " + (in.failed() ? in.failure() : "trailing bytes")));
        }
      }
    } catch (...) {
      reply_.deliver(error(errc::malformed_message, "reply could not be decoded (out of memory?)"));
    }
  }
  void fail(const error& why) noexcept override { reply_.deliver(why); }

 private:
  reply_to<R> reply_;
};

// --- the proxy ----------------------------------------------------------------
// The protocol-independent half: where the remote actor is. A cell that
// is_remote() is always a proxy_base.
class proxy_base : public cell {
 public:
  proxy_base(troupe::system& sys, std::shared_ptr<connection> via, wire_address address)
      : cell(sys, scheduler_of(sys)), via_(std::move(via)), address_(std::move(address)) {
    make_forwarding();
  }
  [[nodiscard]] std::string remote_address() const override {
    return "troupe://" + address_.node + "/" + std::to_string(address_.id);
  }
  [[nodiscard]] const wire_address& where() const noexcept { return address_; }

 protected:
  void dispatch(envelope&) override {}  // user messages never queue here (forward())
  void start() override {
    if (!via_) stop_self(exit_reason::process_down(remote_address() + ": its node is unreachable"));
  }
  void finish(const exit_reason&) noexcept override {}
  // Exit signals (a linked local actor stopped, or send_exit) go to the real actor.
  [[nodiscard]] bool traps_exits() const noexcept override { return true; }
  void deliver_exit(const troupe::exit& e) override {
    if (via_) send_remote_exit(via_, address_.id, addr_access::get(e.who), e.reason);
  }

  std::shared_ptr<connection> via_;
  wire_address address_;
};

template <class P>
class proxy_cell final : public proxy_base {
 public:
  using proxy_base::proxy_base;

  std::error_code forward(envelope* e) noexcept override {
    return forward_index(*e, std::make_index_sequence<P::size>{});
  }
  std::error_code forward_message(std::uint32_t index, const void* message) noexcept override {
    return forward_value(index, message, std::make_index_sequence<P::size>{});
  }

 private:
  template <std::size_t... I>
  std::error_code forward_value(std::uint32_t index, const void* message, std::index_sequence<I...>) noexcept {
    (void)message;  // unused for an empty protocol
    std::error_code result = make_error_code(errc::protocol_mismatch);
    (void)((index == I ? (result = send_value<I>(*static_cast<const typename P::template message<I>*>(message)), true)
                       : false) ||
           ...);
    return result;
  }

  // A tell (no reply expected, also for a request type).
  template <std::size_t I>
  std::error_code send_value(const typename P::template message<I>& value) noexcept {
    if (!via_) return make_error_code(errc::connection_lost);
    if (terminated()) return make_error_code(errc::no_such_actor);
    return encode_and_send(value, nullptr);
  }

  // The one way a message leaves: encoded into the per-thread buffer, then
  // handed to the connection. A failure also fails `pending` (an ask's reply).
  template <class M>
  std::error_code encode_and_send(const M& value, std::unique_ptr<pending_reply> pending) noexcept {
    auto fail = [&](const std::string& why) {
      if (pending) {
        pending->fail(error(errc::malformed_message, "could not encode " + std::string(type_name_of<M>()) + why));
      }
      return make_error_code(errc::malformed_message);
    };
    try {
      std::vector<std::byte>& buffer = encode_buffer();
      buffer.clear();
      wire_context context{node_of(*via_), nullptr};
      wire_writer out(buffer, &context);
      troupe::encode(out, value);
      return send_message(via_, address_.id, type_id_of<M>(), fingerprint_of<M>(), type_name_of<M>(), buffer,
                          std::move(pending));
    } catch (const std::exception& ex) {
      return fail(std::string(": ") + ex.what());
    } catch (...) {
      return fail("");
    }
  }

  template <std::size_t... I>
  std::error_code forward_index(envelope& e, std::index_sequence<I...>) noexcept {
    std::error_code result = make_error_code(errc::protocol_mismatch);
    const bool sent = ((e.index == I ? (result = forward_one<I>(e), true) : false) || ...);
    if (!sent) e.abandon(error(errc::protocol_mismatch, "message index outside the protocol"));
    delete &e;
    return result;
  }

  template <std::size_t I>
  std::error_code forward_one(envelope& e) noexcept {
    using M = typename P::template message<I>;
    if constexpr (!request<M>) {
      // A shared payload (a topic's publication): a tell of the shared object.
      if (e.shares_payload) return send_value<I>(*static_cast<shared_message_envelope<M>&>(e).value);
    }
    auto& env = static_cast<message_envelope<M>&>(e);
    if (!via_) {
      e.abandon(error(errc::connection_lost, remote_address() + ": its node is unreachable"));
      return make_error_code(errc::connection_lost);
    }
    if (terminated()) {
      // The remote actor is known to be gone: report it like a local one.
      e.discard(*this, exit_reason_snapshot());
      return make_error_code(errc::no_such_actor);
    }
    std::unique_ptr<pending_reply> pending;
    if constexpr (request<M>) {
      if (env.reply.pending()) {
        try {
          pending = std::make_unique<remote_pending<reply_t<M>>>(std::move(env.reply));
        } catch (...) {
          e.abandon(error(errc::malformed_message, "out of memory while sending " + std::string(type_name_of<M>())));
          return make_error_code(errc::malformed_message);
        }
      }
    }
    return encode_and_send(env.value, std::move(pending));
  }
};

// --- per-protocol tables --------------------------------------------------------
template <class M>
envelope* decode_message(wire_reader& in, std::uint32_t index, const std::shared_ptr<connection>& via,
                         std::uint64_t request_id) {
  M value{};
  if (!troupe::decode(in, value)) return nullptr;
  if (in.remaining() != 0) {
    in.fail("trailing bytes after the message");
    return nullptr;
  }
  if constexpr (request<M>) {
    using R = reply_t<M>;
    reply_to<R> reply;
    if (request_id != 0) reply = reply_to<R>(std::make_shared<remote_reply_sink<R>>(via, request_id));
    return new message_envelope<M>(index, std::move(reply), std::move(value));
  } else {
    (void)via;
    (void)request_id;
    return new message_envelope<M>(index, std::move(value));
  }
}

template <class M>
constexpr bool crosses_the_wire() {
  if constexpr (!serializable<M> || !std::is_default_constructible_v<M>) {
    return false;
  } else if constexpr (request<M>) {
    using R = reply_t<M>;
    if constexpr (std::is_void_v<R>) {
      return true;
    } else {
      return serializable<R> && std::is_default_constructible_v<R>;
    }
  } else {
    return true;
  }
}

template <class P>
constexpr bool remote_capable = false;
template <class... Ms>
constexpr bool remote_capable<protocol<Ms...>> = (crosses_the_wire<Ms>() && ...);

template <class P, std::size_t... I>
protocol_table build_protocol_table(std::index_sequence<I...>) {
  protocol_table table;
  table.name = "protocol<";
  std::uint64_t h = fnv1a64("protocol");
  auto add = [&](auto index_constant) {
    constexpr std::size_t index = decltype(index_constant)::value;
    using M = typename P::template message<index>;
    table.messages.push_back(message_entry{type_id_of<M>(), fingerprint_of<M>(), type_name_of<M>(),
                                           static_cast<std::uint32_t>(index), &decode_message<M>});
    if constexpr (request<M> && !std::is_void_v<reply_t<M>>) {
      using R = reply_t<M>;
      table.replies.push_back(message_entry{type_id_of<R>(), fingerprint_of<R>(), type_name_of<R>(), 0, nullptr});
    }
    if (index != 0) table.name += ", ";
    table.name += type_name_of<M>();
    // Order matters: the protocol index is what a local ref<P> sends.
    h = (h ^ fingerprint_of<M>()) * 0x100000001b3ull;
  };
  (add(std::integral_constant<std::size_t, I>{}), ...);
  (void)add;  // an empty protocol adds nothing
  table.name += ">";
  table.fingerprint = h;
  table.make_proxy = [](troupe::system& sys, std::shared_ptr<connection> via, wire_address address) -> cell* {
    return new proxy_cell<P>(sys, std::move(via), std::move(address));
  };
  return table;
}

// Instantiated for a protocol at the first point that needs it to cross; its
// initializer runs at start-up (static initialization of a template member),
// which registers the protocol before any handshake.
template <class P>
struct protocol_registration {
  static const protocol_table& make() {
    static const protocol_table table = build_protocol_table<P>(std::make_index_sequence<P::size>{});
    return table;
  }
  static inline const protocol_table* const table = [] {
    const protocol_table& t = make();
    register_protocol(t);
    return &t;
  }();
};

template <class P>
const protocol_table& protocol_table_of() {
  static_assert(remote_capable<P>,
                "troupe: this protocol cannot cross a process boundary: every message type (and every request's "
                "reply type) must be troupe::serializable and default-constructible (see troupe/runtime/"
                "serialization.hpp for the supported types and the wire_traits customization point)");
  // Reading the registration odr-uses it, so it exists (and registered at start-up).
  return *protocol_registration<P>::table;
}

}  // namespace troupe::detail

namespace troupe {

// The wire form of a ref: the actor's address (node, incarnation, id). A ref to
// a local actor exports it (the peer may now send to it); on the far side it
// becomes a proxy (or the local actor itself, when it comes home).
template <class P>
struct wire_traits<ref<P>> {
  // The protocol is part of the schema (by its message types' names; each
  // message type's own schema is checked when it is sent).
  static constexpr std::string_view schema = type_name_of<ref<P>>();
  static void encode(wire_writer& out, const ref<P>& r) {
    detail::encode_address(out, detail::ref_access::get(r), detail::protocol_table_of<P>());
  }
  static bool decode(wire_reader& in, ref<P>& r) {
    detail::cell_ptr c;
    if (!detail::decode_address(in, detail::protocol_table_of<P>(), c)) return false;
    r = c ? detail::ref_access::make<P>(c.get()) : ref<P>();
    return true;
  }
};

}  // namespace troupe
