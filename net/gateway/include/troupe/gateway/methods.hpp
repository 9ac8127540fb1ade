// methods: an actor's message types as named methods that any RPC protocol can
// call (JSON-RPC, XML-RPC, gRPC: docs/gateways.md). Owns: naming a message
// type, converting parameters and replies (one reflection mechanism for every
// protocol: Boost.Describe, through Boost.JSON's conversions, with a JSON value
// as the common form), asking without blocking the caller's thread, the ask
// timeout and the concurrency bound. May use: troupe::runtime, Boost.JSON,
// Boost.Describe. Knows nothing of any wire protocol.
//
//   struct balance { std::string account; using reply = std::int64_t; };
//   BOOST_DESCRIBE_STRUCT(balance, (), (account))
//   struct deposit { std::string account; std::int64_t cents; };
//   BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
//
//   troupe::gateway::methods m(sys);
//   m.expose("bank", bank_ref);   // methods "bank.balance" (an ask) and "bank.deposit" (a tell)
//   m.call("bank.balance", boost::json::parse(R"({"account":"alice"})"), {},
//          [](troupe::gateway::call_result r) { ... });   // r: the reply as JSON, or a call_failure
//
// What is exposed: every message type of the protocol that is described with
// BOOST_DESCRIBE_STRUCT (a type without members too: BOOST_DESCRIBE_STRUCT(t, (), ())).
// Other types (say, one carrying a ref<>) are left out; methods() lists what
// is in. A method is named "<service>.<type name without namespaces>", or
// "<service>.<M::rpc_name>" when the type declares
// `static constexpr std::string_view rpc_name = "...";`.
//
// Parameters arrive as one JSON value: an object whose keys are exactly the
// described members (by name), an array of the members' values in declaration
// order (by position), or null for a type without members. Anything else, a
// missing or extra key, or a value of the wrong type is failure::invalid_params
// and no actor sees a message. The reply is converted with boost::json::value_from
// (a void reply, and every tell, completes with null once sent).
//
// Completion: `done` runs exactly once — with the reply or with a call_failure —
// on the calling thread (for a failure found before anything was sent, and for
// tells), on the scheduler worker that ran the replying actor (an ask's reply),
// or on the system's timer thread (an ask's timeout): the ask is
// ref::ask(message, timeout, callback), no actor in between. It must not
// block: post to your own executor. A call never blocks the calling thread. The system must outlive
// the methods and every call in flight.
//
// Thread safety: expose() before the first call; call() from any thread.
#pragma once

#include <atomic>
#include <boost/describe/members.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "troupe/gateway/failure.hpp"
#include "troupe/gateway/shape.hpp"
#include "troupe/gateway/stream.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/response.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::gateway {

using namespace std::chrono_literals;

struct settings {
  // An ask's timeout when the caller gives none (a caller's deadline, e.g.
  // gRPC's, is used when it is sooner).
  std::chrono::nanoseconds ask_timeout = 5s;
  // Calls in flight at most; one more is failure::overloaded at once.
  std::size_t max_in_flight = 4096;
  // A stream method called by a protocol without streams answers with an array
  // of at most this many items.
  std::size_t max_stream_items = 10'000;
};

struct method_info {
  std::string name;                 // "bank.balance"
  std::string type_name;            // "balance"
  bool is_request = false;          // an ask (has a reply); false: a tell (a notification) or a stream
  bool is_stream = false;           // answered by a stream of messages (stream.hpp)
  std::vector<std::string> params;  // the described members, in declaration order
  shape request;                    // the message type (a record)
  shape reply;                      // its reply type (none for a tell or a void reply; a stream's item type)
};

// A message type's name without namespaces, from the compiler ("balance" for
// `bank::balance`), or M::rpc_name.
template <class M>
constexpr std::string_view type_name() noexcept {
  if constexpr (requires { std::string_view{M::rpc_name}; }) {
    return std::string_view{M::rpc_name};
  } else {
    // g++: "... [with M = bank::balance; std::string_view = ...]"; clang: "... [M = bank::balance]".
    std::string_view p = __PRETTY_FUNCTION__;
    const std::size_t start = p.find("M = ") + 4;
    std::size_t end = p.find_first_of(";]", start);
    std::string_view full = p.substr(start, end - start);
    const std::size_t angle = full.find('<');
    std::string_view head = full.substr(0, angle);
    const std::size_t colon = head.rfind("::");
    return colon == std::string_view::npos ? full : full.substr(colon + 2);
  }
}

// True when M can be a method: it is described with BOOST_DESCRIBE_STRUCT.
template <class M>
inline constexpr bool exposable = boost::describe::has_describe_members<M>::value;

namespace detail {
// The described members' names, in order.
template <class M>
std::vector<std::string> member_names() {
  std::vector<std::string> names;
  boost::mp11::mp_for_each<boost::describe::describe_members<M, boost::describe::mod_public>>(
      [&](auto d) { names.emplace_back(d.name); });
  return names;
}

// Parameters (object by name, array by position, null for no members) to the
// object form Boost.JSON converts; an error text when they cannot be.
std::optional<std::string> normalize_params(boost::json::value& params, const std::vector<std::string>& names);

template <class R>
boost::json::value reply_to_json(expected<R>& r) {
  if constexpr (std::is_void_v<R>) {
    return nullptr;
  } else {
    return boost::json::value_from(std::move(*r));
  }
}
}  // namespace detail

class methods {
 public:
  explicit methods(troupe::system& sys, settings s = {});
  methods(const methods&) = delete;
  methods& operator=(const methods&) = delete;
  methods(methods&&) noexcept = default;
  methods& operator=(methods&&) noexcept = default;
  ~methods();

  // Makes every described message type of P callable as "<service>.<type>".
  template <a_protocol P>
  void expose(std::string_view service, ref<P> target) {
    expose_each(service, std::move(target), static_cast<P*>(nullptr));
  }

  // Calls `method` with `params`; `done` runs exactly once (see the header comment).
  // `timeout`: the caller's deadline, if any (the sooner of it and the ask timeout applies).
  void call(std::string_view method, boost::json::value params, std::optional<std::chrono::nanoseconds> timeout,
            completion done) const;

  // A stream method (stream.hpp): `cb.item` per message, then `cb.end` exactly
  // once — also for a failure before anything was sent (then on the calling
  // thread). `timeout` bounds the whole stream (the sooner of it and the table's
  // ask_timeout). Returns a function that cancels the stream (any thread, any
  // number of times; after the end it does nothing); cancelling runs `end`.
  // call() on a stream method answers with the whole stream as one array of at
  // most settings::max_stream_items (more: failure::overloaded).
  std::function<void()> call_stream(std::string_view method, boost::json::value params,
                                    std::optional<std::chrono::nanoseconds> timeout, stream_callbacks cb) const;

  [[nodiscard]] std::vector<method_info> list() const;
  [[nodiscard]] const method_info* find(std::string_view method) const;
  [[nodiscard]] const settings& config() const noexcept;
  // Calls in flight now.
  [[nodiscard]] std::size_t in_flight() const noexcept;

 private:
  struct state;
  // Converts the parameters and sends or asks; runs on the caller's thread.
  using invoker = std::function<void(boost::json::value&&, std::chrono::nanoseconds, completion&&)>;
  // Converts the parameters, starts the relay and sends; returns the cancel function.
  using stream_invoker = std::function<std::function<void()>(const methods&, boost::json::value&&,
                                                             std::chrono::nanoseconds, stream_callbacks&&)>;

  template <class... Ms, class P>
  void expose_each(std::string_view service, ref<P> target, protocol<Ms...>*) {
    (expose_one<Ms>(service, target), ...);
  }

  template <class M, class P>
  void expose_one(std::string_view service, const ref<P>& target) {
    if constexpr (exposable<M> && streaming<M>) {
      using T = typename M::stream;
      method_info info;
      info.type_name = std::string(type_name<M>());
      info.name = std::string(service) + "." + info.type_name;
      info.is_stream = true;
      info.params = detail::member_names<M>();
      info.request = shape_of<M>();
      info.reply = shape_of<T>();
      add_stream(std::move(info),
                 [target](const methods& self, boost::json::value&& params, std::chrono::nanoseconds timeout,
                          stream_callbacks&& cb) -> std::function<void()> {
                   boost::system::result<M> message = boost::json::try_value_to<M>(params);
                   if (!message) {
                     cb.end(call_failure{failure::invalid_params, message.error().message()});
                     return [] {};
                   }
                   troupe::system& sys = self.actor_system();
                   auto over = std::make_shared<std::atomic<bool>>(false);
                   const ref<relay_protocol<T>> relay =
                       sys.template spawn<detail::stream_relay<T>>(std::move(cb), actor_addr(target), over);
                   message->sink = stream_sink<T>(relay, std::move(over));
                   (void)sys.send_after(relay, timeout, stream_deadline{});
                   // A tell to an actor already gone fails here; the relay's monitor
                   // reports it too (at once), so the stream fails as actor_down.
                   (void)target.tell(std::move(*message));
                   return [relay_addr = actor_addr(relay), &sys] {
                     sys.send_exit(relay_addr, exit_reason::error("cancelled by the client"));
                   };
                 });
    } else if constexpr (exposable<M>) {
      method_info info;
      info.type_name = std::string(type_name<M>());
      info.name = std::string(service) + "." + info.type_name;
      info.is_request = request<M>;
      info.params = detail::member_names<M>();
      info.request = shape_of<M>();
      info.reply = shape_of<reply_t<M>>();
      add(std::move(info), [target](boost::json::value&& params, std::chrono::nanoseconds timeout, completion&& done) {
        boost::system::result<M> message = boost::json::try_value_to<M>(params);
        if (!message) {
          done(call_failure{failure::invalid_params, message.error().message()});
          return;
        }
        if constexpr (request<M>) {
          using R = reply_t<M>;
          target.ask(std::move(*message), timeout, [done = std::move(done)](expected<R> r) mutable {
            if (!r) {
              done(failure_of(r.error()));
              return;
            }
            try {
              done(detail::reply_to_json<R>(r));
            } catch (const std::exception& e) {
              done(call_failure{failure::internal, std::string("the reply does not convert to JSON: ") + e.what()});
            }
          });
        } else {
          const std::error_code sent = target.tell(std::move(*message));
          if (sent) {
            done(call_failure{failure::actor_down, sent.message()});
          } else {
            done(boost::json::value(nullptr));
          }
        }
      });
    }
  }

  void add(method_info info, invoker invoke);
  void add_stream(method_info info, stream_invoker invoke);
  [[nodiscard]] troupe::system& actor_system() const noexcept;
  // The sooner of the caller's deadline and the table's ask timeout.
  [[nodiscard]] std::chrono::nanoseconds timeout_of(std::optional<std::chrono::nanoseconds> timeout) const noexcept;

  std::shared_ptr<state> state_;
};

}  // namespace troupe::gateway
