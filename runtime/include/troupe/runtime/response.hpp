// response<R>: what ask() returns — the future reply to a request.
//
// Outside actors (main(), tests, plain threads) it is a future:
//   std::int64_t c = bank.ask(balance{"alice"}, 1s).get();        // throws troupe_error on failure
//   troupe::expected<std::int64_t> r = bank.ask(balance{"alice"}, 1s).try_get();
// or, not blocking, with a callback that runs on the replier's thread (ref.hpp):
//   bank.ask(balance{"alice"}, 1s, [](troupe::expected<std::int64_t> r) {...});
// Inside an actor's handler it is an awaitable, or takes a callback:
//   std::int64_t c = co_await bank.ask(balance{"alice"}, 1s);     // in a task<> handler
//   bank.ask(balance{"alice"}, 1s).then([](std::int64_t c) {...}, [](const troupe::error& e) {...});
//
// Which one it is is decided when ask() is called: on an actor's thread the reply
// is routed back through that actor's mailbox (so continuations run in the
// actor's context); elsewhere it goes to a future. Blocking get() on an actor's
// thread would stall a scheduler worker, so it fails with errc::would_block.
//
// Every response completes exactly once: with the reply, or with an error
// (timeout, the receiver stopped — with its exit reason — or dropped the request).
// A reply that arrives after the timeout is discarded and counted
// (actor_base::late_replies()).
//
// Thread safety: a response belongs to the thread (or actor) that called ask().
#pragma once

#include <chrono>
#include <coroutine>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "troupe/runtime/detail/reply.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe {

class system;

namespace detail {
// Deterministic mode: run the system until `done()` or nothing is left to do
// before `deadline` (virtual time). Defined in system.cpp.
bool drive_until(troupe::system& sys, const std::function<bool()>& done,
                 std::chrono::steady_clock::time_point deadline);
bool is_deterministic(const troupe::system& sys) noexcept;
std::chrono::steady_clock::time_point system_now(const troupe::system& sys) noexcept;
// Runs `fire` once after `delay` on the system's timer thread (its virtual
// clock in deterministic mode). Defined in system.cpp.
timer call_after(troupe::system& sys, std::chrono::nanoseconds delay, std::function<void()> fire);
}  // namespace detail

template <class R>
class [[nodiscard]] response {
 public:
  using value_type = R;

  // Already failed (e.g. a malformed call).
  explicit response(error e) : failed_(std::move(e)) {}

  // --- outside actors ---------------------------------------------------------
  // Blocks until the reply or the ask's deadline. Never throws.
  expected<R> try_get() {
    if (failed_) return *failed_;
    if (slot_) {
      return error(errc::would_block, "response::get() called inside an actor; use co_await or then()");
    }
    if (future_->ready()) return future_->take();
    if (driver_ != nullptr) {
      detail::drive_until(
          *driver_, [s = future_] { return s->ready(); }, deadline_);
      if (!future_->ready()) return timeout_error();
      return future_->take();
    }
    if (!future_->wait_until(deadline_)) return timeout_error();
    return future_->take();
  }
  // As try_get(), but throws troupe_error on failure.
  R get() {
    if constexpr (std::is_void_v<R>) {
      try_get().value();
    } else {
      return std::move(try_get()).value();
    }
  }

  // --- inside actors ----------------------------------------------------------
  // co_await in a task<> handler: yields R, throws troupe_error on failure.
  bool await_ready() const noexcept { return failed_.has_value() || (slot_ && slot_->result.has_value()); }
  void await_suspend(std::coroutine_handle<> waiter) {
    slot_->waiter = waiter;
    slot_->handler = detail::current_handler();
  }
  R await_resume() {
    if constexpr (std::is_void_v<R>) {
      result().value();
    } else {
      return std::move(result()).value();
    }
  }

  // The awaitable flavour that does not throw: co_await r.as_expected().
  auto as_expected() {
    struct awaiter {
      response* self;
      bool await_ready() const noexcept { return self->await_ready(); }
      void await_suspend(std::coroutine_handle<> w) { self->await_suspend(w); }
      expected<R> await_resume() { return self->result(); }
    };
    return awaiter{this};
  }

  // Callback flavour (actor context): runs on_value(R) or on_error(const error&)
  // later, in this actor's context. Unlike co_await, the actor keeps handling
  // other messages meanwhile.
  template <class OnValue, class OnError>
  void then(OnValue on_value, OnError on_error) {
    auto run = [on_value = std::move(on_value), on_error = std::move(on_error)](expected<R> r) mutable {
      if (!r) {
        on_error(r.error());
      } else if constexpr (std::is_void_v<R>) {
        on_value();
      } else {
        on_value(std::move(*r));
      }
    };
    if (failed_) {
      run(*failed_);
    } else if (!slot_) {
      throw troupe_error(error(errc::would_block, "response::then() called outside an actor; use get()"));
    } else if (slot_->result) {
      run(std::move(*slot_->result));
    } else {
      slot_->callback = std::move(run);
    }
  }

 private:
  // Made by ref<P>::ask() only.
  template <class P>
  friend class ref;
  // Future flavour. `driver` is the system to drive while waiting (deterministic
  // mode only, null otherwise); `deadline` is on that system's clock.
  response(std::shared_ptr<detail::future_state<R>> state, troupe::system* driver,
           std::chrono::steady_clock::time_point deadline)
      : future_(std::move(state)), driver_(driver), deadline_(deadline) {}
  // Actor flavour.
  explicit response(std::shared_ptr<detail::ask_slot<R>> slot) : slot_(std::move(slot)) {}

  expected<R> result() {
    if (failed_) return *failed_;
    return std::move(*slot_->result);
  }
  static error timeout_error() { return error(errc::timeout, "no reply before the ask's deadline"); }

  std::shared_ptr<detail::future_state<R>> future_;
  std::shared_ptr<detail::ask_slot<R>> slot_;
  std::optional<error> failed_;
  troupe::system* driver_ = nullptr;
  std::chrono::steady_clock::time_point deadline_{};
};

}  // namespace troupe
