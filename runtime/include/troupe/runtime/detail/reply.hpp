// The plumbing behind ask(): where a reply goes, and the envelopes that carry
// messages and replies. Not user-facing.
//
// A reply goes either to a future_state (the asker is a plain thread) or back to
// the asking actor's mailbox as a reply_envelope (the asker is an actor: its
// continuation then runs in its own context, never on the replier's thread).
// A reply_to<R> is one-shot and never silent: if it is destroyed unused, the
// asker receives errc::request_dropped — an ask can fail, but cannot hang.
//
// A third place, callback_sink, runs a function instead (ref::ask with a
// callback, for code outside actors that must not block).
//
// Thread safety: future_state is shared between the replier (any thread) and
// one waiting thread; callback_sink between the replier, the timer thread and
// the asker; everything else is owned by one envelope at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "troupe/mailbox/mutex.hpp"
#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/timer.hpp"

namespace troupe::detail {

// Where a reply lands when the asker is not an actor of this process: a plain
// thread's future (future_state), or the wire back to another node (net/).
template <class R>
class reply_sink {
 public:
  virtual ~reply_sink() = default;
  // First result wins; later ones are ignored. Any thread.
  virtual void set(expected<R> value) = 0;
};

// The meeting point of a reply and a thread blocked in get().
template <class R>
class future_state final : public reply_sink<R> {
 public:
  void set(expected<R> value) TROUPE_EXCLUDES(mutex_) override {
    {
      troupe::mutex_lock lock(mutex_);
      if (value_) return;  // first result wins (a reply racing a drop)
      value_.emplace(std::move(value));
    }
    ready_.notify_all();
  }
  [[nodiscard]] bool ready() const TROUPE_EXCLUDES(mutex_) {
    troupe::mutex_lock lock(mutex_);
    return value_.has_value();
  }
  // Waits until a value is there or `deadline` passes; true if there is one.
  bool wait_until(std::chrono::steady_clock::time_point deadline) TROUPE_EXCLUDES(mutex_) {
    troupe::mutex_lock lock(mutex_);
    return ready_.wait_until(lock, deadline, [&]() TROUPE_REQUIRES(mutex_) { return value_.has_value(); });
  }
  // Precondition: ready().
  expected<R> take() TROUPE_EXCLUDES(mutex_) {
    troupe::mutex_lock lock(mutex_);
    return std::move(*value_);
  }

 private:
  mutable troupe::mutex mutex_;
  std::condition_variable_any ready_;
  std::optional<expected<R>> value_ TROUPE_GUARDED_BY(mutex_);
};

// Where a reply goes when the asker gave a callback: the first of the reply
// (or the request's drop) and the deadline runs it, once, on the thread that
// brings it. The deadline is a timer armed after the request was sent (the
// actor's system is known to exist only then), so the reply may come first:
// the mutex makes "answered" and "armed" meet in either order, and whichever
// comes second cancels the timer. Uncontended in the common case (the
// replier's set() and the asker's arm() rarely overlap), so a mutex costs
// less here than it would to reason about a lock-free hand-off of the timer.
template <class R>
class callback_sink final : public reply_sink<R> {
 public:
  explicit callback_sink(std::function<void(expected<R>)> done) : done_(std::move(done)) {}

  void set(expected<R> value) TROUPE_EXCLUDES(mutex_) override { finish(value, /*from_timer=*/false); }
  // The deadline passed (the timer thread).
  void expire() TROUPE_EXCLUDES(mutex_) {
    expected<R> late = error(errc::timeout, "no reply before the ask's deadline");
    finish(late, /*from_timer=*/true);
  }
  // The asker, once: the timer that calls expire(). Cancelled at once if the
  // answer is already in.
  void arm(timer t) TROUPE_EXCLUDES(mutex_) {
    {
      troupe::mutex_lock lock(mutex_);
      if (!answered_) {
        timer_ = t;
        return;
      }
    }
    (void)t.cancel();
  }

 private:
  // By reference (moved from once, into `done`): g++ 12 reads a by-value
  // expected<R> moved through here as maybe-uninitialized (-Werror).
  void finish(expected<R>& value, bool from_timer) TROUPE_EXCLUDES(mutex_) {
    std::function<void(expected<R>)> done;
    timer deadline;
    {
      troupe::mutex_lock lock(mutex_);
      if (answered_) return;  // first result wins
      answered_ = true;
      done = std::move(done_);
      deadline = timer_;
    }
    // Outside the lock: cancel() waits for a timer callback in progress on
    // another thread, and that callback takes this lock (and loses).
    if (!from_timer) (void)deadline.cancel();
    done(std::move(value));
  }

  troupe::mutex mutex_;
  bool answered_ TROUPE_GUARDED_BY(mutex_) = false;
  std::function<void(expected<R>)> done_ TROUPE_GUARDED_BY(mutex_);
  timer timer_ TROUPE_GUARDED_BY(mutex_);
};

// An ask made by an actor, as its pending_request table holds it.
template <class R>
struct ask_slot final : pending_request {
  std::optional<expected<R>> result;
  // Exactly one continuation, set when the asker awaits or attaches a callback.
  std::coroutine_handle<> waiter;
  handler_record* handler = nullptr;
  std::function<void(expected<R>)> callback;

  // Actor context of the asker.
  void complete(expected<R> value) {
    result.emplace(std::move(value));
    if (waiter) {
      current_cell()->resume_handler(handler, std::exchange(waiter, {}));
    } else if (callback) {
      auto run = std::move(callback);
      run(std::move(*result));
    }
  }
  void fail(const error& why) override { complete(why); }
};

// A reply travelling back into the asking actor's mailbox.
template <class R>
struct reply_envelope final : system_envelope {
  reply_envelope(std::uint64_t id, expected<R> v) : request_id(id), value(std::move(v)) {}
  void run(cell& receiver) override {
    std::shared_ptr<pending_request> slot = receiver.take_pending(request_id);
    if (!slot) {  // timed out (or the asker stopped caring) before the reply came
      receiver.note_late_reply();
      return;
    }
    static_cast<ask_slot<R>&>(*slot).complete(std::move(value));
  }
  std::uint64_t request_id;
  expected<R> value;
};

// The replier's one-shot handle on where the reply goes.
template <class R>
class reply_to {
 public:
  reply_to() = default;
  explicit reply_to(std::shared_ptr<reply_sink<R>> sink) : future_(std::move(sink)) {}
  reply_to(cell_ptr asker, std::uint64_t request_id) : asker_(std::move(asker)), request_id_(request_id) {}
  reply_to(reply_to&& other) noexcept = default;
  reply_to& operator=(reply_to&& other) noexcept {
    if (this != &other) {
      drop();
      future_ = std::move(other.future_);
      asker_ = std::move(other.asker_);
      request_id_ = other.request_id_;
    }
    return *this;
  }
  ~reply_to() { drop(); }

  [[nodiscard]] bool pending() const noexcept { return future_ || asker_; }

  void deliver(expected<R> value) noexcept {
    try {
      if (future_) {
        future_->set(std::move(value));
      } else if (asker_) {
        (void)asker_->enqueue(new reply_envelope<R>(request_id_, std::move(value)), reply_run_list());
      }
    } catch (...) {
      // Out of memory while replying: the asker's timeout (or drop) reports it.
    }
    future_.reset();
    asker_ = cell_ptr{};
  }

 private:
  void drop() noexcept {
    if (pending()) deliver(error(errc::request_dropped, "the receiver discarded the request without replying"));
  }
  std::shared_ptr<reply_sink<R>> future_;
  cell_ptr asker_;
  std::uint64_t request_id_ = 0;
};

// A user message in a mailbox. Requests also carry where their reply goes.
template <class M, bool IsRequest = request<M>>
struct message_envelope final : envelope {
  template <class... Args>
  explicit message_envelope(std::uint32_t message_index, Args&&... args)
      : envelope(message_index), value(std::forward<Args>(args)...) {}
  M value;
};

template <class M>
struct message_envelope<M, true> final : envelope {
  template <class Arg>
  message_envelope(std::uint32_t message_index, reply_to<reply_t<M>> to, Arg&& arg)
      : envelope(message_index), value(std::forward<Arg>(arg)), reply(std::move(to)) {}
  void abandon(const error& why) noexcept override { reply.deliver(why); }
  M value;
  reply_to<reply_t<M>> reply;
};

// A user message whose payload is shared, immutable, by every envelope one
// publication put in its local subscribers' mailboxes (net/'s topics): the
// publisher makes one payload instead of one per subscriber. A handler taking
// const M& reads the shared object in place; one taking M (or M&&) gets a copy
// of its own, made on the receiving actor's thread (typed_cell.hpp). Never a
// request: a publication has nobody to reply to.
template <class M>
struct shared_message_envelope final : envelope {
  static_assert(!request<M>, "troupe: a shared payload cannot carry a request");
  shared_message_envelope(std::uint32_t message_index, std::shared_ptr<const M> payload) noexcept
      : envelope(message_index, /*shared=*/true), value(std::move(payload)) {}
  std::shared_ptr<const M> value;
};

}  // namespace troupe::detail
