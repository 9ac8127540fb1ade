// task<T>: the return type of a handler (or helper) that awaits. A handler that
// returns task<R> may `co_await` asks and other tasks; its co_return value is
// the reply.
//
//   troupe::task<std::int64_t> on(const total& t) {
//     std::int64_t a = co_await left.ask(balance{"alice"}, 1s);
//     co_return a + co_await right.ask(balance{"bob"}, 1s);
//   }
//
// Semantics: a task starts running as soon as it is called (eagerly) and runs on
// its actor's thread until its first suspension. While a handler of an actor with
// the default await_policy::sequential is suspended, the actor handles no other
// message (they wait, in order, in the mailbox); with await_policy::interleave it
// keeps handling messages and the suspended handler resumes between them. Either
// way only one piece of the actor runs at a time: its state needs no locks.
// Only troupe's awaitables (ask replies, other tasks) may be awaited, because they
// resume the coroutine on its actor's thread.
//
// Thread safety: a task belongs to one actor; it is never touched by two threads.
#pragma once

#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace troupe {

template <class T = void>
class task;

namespace detail {

// Symmetric transfer to the awaiting parent at the end of a task; a root task
// returns to the runtime, which sees done() and delivers the result.
struct final_transfer {
  bool await_ready() noexcept { return false; }
  template <class Promise>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
    auto next = self.promise().continuation;
    return next ? next : std::noop_coroutine();
  }
  void await_resume() noexcept {}
};

template <class T>
struct task_promise_base {
  std::coroutine_handle<> continuation;  // who awaits this task, if anyone
  std::exception_ptr error;

  std::suspend_never initial_suspend() noexcept { return {}; }
  final_transfer final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct task_promise : task_promise_base<T> {
  std::optional<T> value;
  task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};

template <>
struct task_promise<void> : task_promise_base<void> {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : handle_(h) {}
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  ~task() { reset(); }

  [[nodiscard]] bool done() const noexcept { return !handle_ || handle_.done(); }
  [[nodiscard]] handle_type handle() const noexcept { return handle_; }

  // Precondition: done(). Rethrows what the coroutine threw.
  T result() {
    auto& p = handle_.promise();
    if (p.error) std::rethrow_exception(p.error);
    if constexpr (!std::is_void_v<T>) return std::move(*p.value);
  }

  // Awaiting a task from another task.
  bool await_ready() const noexcept { return done(); }
  void await_suspend(std::coroutine_handle<> parent) noexcept { handle_.promise().continuation = parent; }
  T await_resume() { return result(); }

 private:
  void reset() noexcept {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  handle_type handle_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};
}  // namespace detail

}  // namespace troupe
