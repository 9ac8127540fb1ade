// typed_cell<A>: a cell holding an actor object of type A, and the compile-time
// dispatch from a mailbox envelope to A's on(M) handler. One allocation per
// actor: the cell and the actor object live together.
//
// Thread safety: as cell; dispatch/start/finish run only in resume().
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/task.hpp"

namespace troupe::detail {

// A request handler that returns no_reply leaves the request unanswered: the
// asker gets errc::request_dropped (used by scoped inboxes).
struct no_reply {};

template <class A, class M>
concept handles = requires(A& a, M&& m) {
  a.on(std::move(m));
};

// A answers the request M later: on(M, reply_promise<reply>) (reply_promise.hpp).
template <class A, class M>
concept handles_with_promise = request<M> && requires(A& a, M&& m, reply_promise<reply_t<M>>&& p) {
  a.on(std::move(m), std::move(p));
};

// A's handler for M can take a const M& (on(const M&), or on(M) by value: the
// call copies).
template <class A, class M>
concept handles_const_ref = requires(A& a, const M& m) {
  a.on(m);
};

template <class A>
constexpr await_policy awaits_of() noexcept {
  if constexpr (requires { A::awaits; }) {
    return A::awaits;
  } else {
    return await_policy::sequential;
  }
}

// Sets the coroutine handler that asks made on this thread belong to.
class handler_scope {
 public:
  explicit handler_scope(handler_record* r) noexcept;
  ~handler_scope();
  handler_scope(const handler_scope&) = delete;
  handler_scope& operator=(const handler_scope&) = delete;

 private:
  handler_record* previous_;
};

// The text of the exception being handled, and its type, as an exit reason.
exit_reason reason_from_current_exception();

// A suspended task<T> handler, the message it handles, and where its result
// goes. The message lives here, declared before the coroutine, so that a
// handler taking it by reference (const M&, M&&) can use it after a co_await:
// the envelope it came in is gone by then.
template <class T, class R, class M>
struct task_record final : handler_record {
  task_record(reply_to<R> to, M&& m) : message(std::move(m)), reply(std::move(to)) {}
  void finish() override {
    if constexpr (std::is_void_v<T>) {
      work.result();
      if constexpr (std::is_void_v<R>) reply.deliver(expected<void>{});
    } else if constexpr (std::is_void_v<R>) {
      (void)work.result();
      reply.deliver(expected<void>{});
    } else {
      reply.deliver(expected<R>(R(work.result())));
    }
  }
  void abandon(const error& why) noexcept override { reply.deliver(why); }
  [[nodiscard]] bool done() const noexcept override { return work.done(); }

  M message;
  task<T> work;
  reply_to<R> reply;
};

struct from_factory_t {
  explicit from_factory_t() = default;
};
inline constexpr from_factory_t from_factory{};

template <class A>
class typed_cell final : public cell {
  using P = typename A::protocol_type;
  static_assert(std::is_base_of_v<actor<P>, A>, "troupe: an actor class must derive from troupe::actor<P>");

 public:
  // (clang-format 14 would join the requires-clause to the declaration)
  // clang-format off
  template <class... Args>
    requires std::is_constructible_v<A, Args...>
  // clang-format on
  typed_cell(troupe::system& owner, executor& exec, Args&&... args) : cell(owner, exec) {
    constructing_scope scope(this);
    ::new (static_cast<void*>(&actor_)) A(std::forward<Args>(args)...);
    alive_ = true;
  }

  // A restartable actor: `factory` placement-constructs A, now and at every restart.
  using factory_type = std::function<void(void*)>;
  typed_cell(troupe::system& owner, executor& exec, from_factory_t, factory_type factory) : cell(owner, exec) {
    {
      constructing_scope scope(this);
      factory(static_cast<void*>(&actor_));
      alive_ = true;
    }
    set_factory(std::move(factory));  // kept in the cell's extras: only restartable cells pay for it
  }
  ~typed_cell() override {
    if (alive_) actor_.~A();
  }

  A& instance() noexcept { return actor_; }

 private:
  void start() override {
    if constexpr (requires { std::declval<A&>().on_start(); }) actor_.on_start();
  }

  void finish(const exit_reason& reason) noexcept override {
    if (!alive_) return;
    if (reason.what() != exit_reason::kind::killed) {
      try {
        if constexpr (requires { std::declval<A&>().on_stop(reason); }) {
          actor_.on_stop(reason);
        } else if constexpr (requires { std::declval<A&>().on_stop(); }) {
          actor_.on_stop();
        }
      } catch (...) {
        // The actor is stopping already; an exception from on_stop changes nothing.
      }
    }
    alive_ = false;
    actor_.~A();
  }

  std::optional<exit_reason> recreate() noexcept override {
    const factory_type* make = factory();
    if (make == nullptr) return exit_reason::error("this actor was not spawned from a factory; it cannot restart");
    if (alive_) finish(exit_reason::shutdown());
    try {
      constructing_scope scope(this);
      (*make)(static_cast<void*>(&actor_));
    } catch (...) {
      return reason_from_current_exception();
    }
    alive_ = true;
    return std::nullopt;
  }

  supervision_listener* as_supervisor() noexcept override {
    if constexpr (std::is_base_of_v<supervision_listener, A>) {
      return alive_ ? static_cast<supervision_listener*>(&actor_) : nullptr;
    } else {
      return nullptr;
    }
  }

  [[nodiscard]] bool traps_exits() const noexcept override { return handles<A, troupe::exit>; }

  void deliver_exit(const troupe::exit& e) override {
    if constexpr (handles<A, troupe::exit>) invoke_signal(troupe::exit(e));
  }

  void deliver_down(const troupe::down& d) override {
    if constexpr (handles<A, troupe::down>) invoke_signal(troupe::down(d));
  }

  template <class M>
  void invoke_signal(M m) {
    using result_type = decltype(actor_.on(std::move(m)));
    if constexpr (is_task<result_type>::value) {
      run_task<typename result_type::value_type, void>(std::move(m), reply_to<void>{});
    } else {
      actor_.on(std::move(m));
    }
  }

  void dispatch(envelope& e) override { dispatch_index(e, std::make_index_sequence<P::size>{}); }

  template <std::size_t... I>
  void dispatch_index(envelope& e, std::index_sequence<I...>) {
    (void)((e.index == I ? (invoke<I>(e), true) : false) || ...);
  }

  template <std::size_t I>
  void invoke(envelope& e) {
    using M = typename P::template message<I>;
    if constexpr (handles_with_promise<A, M>) {
      auto& env = static_cast<message_envelope<M>&>(e);
      actor_.on(std::move(env.value), reply_promise<reply_t<M>>(std::move(env.reply)));
    } else if constexpr (!handles<A, M>) {
      static_assert(handles<A, M>,
                    "troupe: the actor class has no on(M) handler for a message type of its protocol "
                    "(see 'A = ...' and 'M = ...' in this error's context)");
    } else {
      invoke_handler<M>(e);
    }
  }

  template <class M>
  void invoke_handler(envelope& e) {
    if constexpr (!request<M>) {
      if (e.shares_payload) [[unlikely]] {
        invoke_shared<M>(*static_cast<shared_message_envelope<M>&>(e).value);
        return;
      }
    }
    auto& env = static_cast<message_envelope<M>&>(e);
    using result_type = decltype(actor_.on(std::move(env.value)));
    if constexpr (request<M>) {
      using R = reply_t<M>;
      if constexpr (std::is_same_v<result_type, no_reply>) {
        (void)actor_.on(std::move(env.value));  // env.reply drops: request_dropped
      } else if constexpr (is_task<result_type>::value) {
        using T = typename result_type::value_type;
        static_assert(std::is_void_v<R> || std::is_convertible_v<T, R>,
                      "troupe: a request handler's task<T> must yield the request's reply type");
        run_task<T, R>(std::move(env.value), std::move(env.reply));
      } else if constexpr (std::is_void_v<R>) {
        actor_.on(std::move(env.value));
        env.reply.deliver(expected<void>{});
      } else {
        static_assert(std::is_convertible_v<result_type, R>,
                      "troupe: a request handler must return the request's reply type (or task<reply>)");
        env.reply.deliver(expected<R>(R(actor_.on(std::move(env.value)))));
      }
    } else if constexpr (is_task<result_type>::value) {
      run_task<typename result_type::value_type, void>(std::move(env.value), reply_to<void>{});
    } else {
      actor_.on(std::move(env.value));
    }
  }

  // A payload other envelopes share (shared_message_envelope): a handler that
  // takes const M& (or M by value: the call copies) reads it in place; one that
  // takes only M&& gets a copy of its own, and so does a coroutine handler (its
  // task record keeps the message past this envelope).
  template <class M>
  void invoke_shared(const M& shared) {
    if constexpr (handles_const_ref<A, M>) {
      if constexpr (!is_task<decltype(actor_.on(shared))>::value) {
        actor_.on(shared);
        return;
      }
    }
    if constexpr (std::is_copy_constructible_v<M>) {
      M copy(shared);
      using result_type = decltype(actor_.on(std::move(copy)));
      if constexpr (is_task<result_type>::value) {
        run_task<typename result_type::value_type, void>(std::move(copy), reply_to<void>{});
      } else {
        actor_.on(std::move(copy));
      }
    } else {
      // Unreachable: only topics share payloads, and a topic's type is copyable.
      throw troupe_error(error(errc::protocol_mismatch, "a shared payload of a type that cannot be copied"));
    }
  }

  template <class T, class R, class M>
  void run_task(M&& message, reply_to<R> reply) {
    using message_type = std::remove_cvref_t<M>;
    auto record = std::make_unique<task_record<T, R, message_type>>(std::move(reply), std::forward<M>(message));
    record->interleaves = awaits_of<A>() == await_policy::interleave;
    {
      handler_scope scope(record.get());
      record->work = actor_.on(std::move(record->message));
    }
    if (!record->work.done()) {
      keep_suspended(std::move(record));
      return;
    }
    try {
      record->finish();
    } catch (...) {
      record->abandon(error_for(*this, reason_from_current_exception()));
      throw;
    }
  }

  union {
    A actor_;
  };
};

// A lambda-based actor: the handlers are the call operators of Fs.
template <class P, class... Fs>
class function_actor final : public actor<P>, private Fs... {
 public:
  explicit function_actor(Fs... fs) : Fs(std::move(fs))... {}
  using Fs::operator()...;
  template <class M>
  auto on(M&& m) -> decltype((*this)(std::forward<M>(m))) {
    return (*this)(std::forward<M>(m));
  }
};

}  // namespace troupe::detail
