// The activation loop of an actor: take messages from the mailbox (or the stash),
// run handlers, keep the non-interleaving await semantics, and terminate cleanly
// (every envelope left behind is abandoned so that no ask hangs).
#include "troupe/runtime/detail/cell.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <optional>
#include <typeinfo>
#include <unordered_map>
#include <vector>

#include "system_state.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/detail/typed_cell.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::detail {

// Rarely used per-actor state, allocated on first use so that an idle actor
// stays small.
struct cell_extras {
  // Messages that arrived while a sequential handler was suspended, in order.
  envelope* stash_head = nullptr;
  envelope* stash_tail = nullptr;
  // This actor's outstanding asks.
  std::unordered_map<std::uint64_t, std::shared_ptr<pending_request>> pending;
  std::uint64_t next_request_id = 1;
  // The one timer for all of them (see add_pending()): its id (0: none armed)
  // and when it fires.
  std::uint64_t ask_timer = 0;
  std::chrono::steady_clock::time_point ask_timer_at{};
  std::uint64_t late_replies = 0;
  // Suspended coroutine handlers (owned).
  std::vector<std::unique_ptr<handler_record>> suspended;
  // Why the actor stops / stopped.
  exit_reason reason = exit_reason::normal();
  // Who monitors this actor (watcher, monitor id), and whom this actor links to.
  std::vector<std::pair<cell_ptr, std::uint64_t>> monitored_by;
  std::vector<cell_ptr> links;
  // Monitors this actor holds: id -> target (for demonitor and to drop a down
  // that was already in flight when demonitor ran).
  std::unordered_map<std::uint64_t, cell_ptr> monitoring;
  std::uint64_t next_monitor_id = 1;
  // Supervision: the supervisor that decides about this actor's exits, and
  // whether the current stop is final (not subject to a restart).
  cell_ptr supervisor;
  bool final_stop = false;
  // How to rebuild the actor object for a restart (restartable cells only).
  std::function<void(void*)> factory;
  std::unique_ptr<owned_executor> executor;  // scoped inboxes: their wake-up
  std::uint64_t incarnation = 0;             // supervised: which life this is
  std::unique_ptr<mailbox_bound> bound;      // bounded mailboxes (cell::bounded_)
};

namespace {
thread_local cell* running_cell = nullptr;
thread_local handler_record* running_handler = nullptr;
thread_local cell* constructing_cell = nullptr;
thread_local bool sends_must_not_block = false;
thread_local std::vector<cell*>* reply_runs_here = nullptr;

// Stop-request bits (stop_request_), or-ed so that no request is lost: killed
// wins over shutdown, and "final" sticks once any request carried it.
constexpr std::uint8_t stop_shutdown = 0x01;
constexpr std::uint8_t stop_killed = 0x02;
constexpr std::uint8_t stop_final = 0x80;

class running_scope {
 public:
  explicit running_scope(cell* c) noexcept : previous_(running_cell) { running_cell = c; }
  ~running_scope() { running_cell = previous_; }
  running_scope(const running_scope&) = delete;
  running_scope& operator=(const running_scope&) = delete;

 private:
  cell* previous_;
};

std::string demangle(const char* name) {
  int status = 0;
  char* readable = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  if (status != 0 || readable == nullptr) return name;
  std::string result(readable);
  std::free(readable);  // NOLINT: __cxa_demangle allocates with malloc
  return result;
}

// Builds a runtime message and sends it from a path that must not throw. If
// memory runs out the message is lost: timeouts and final notifications still
// bound what that costs.
template <class E, class... Args>
void post(cell& target, Args&&... args) noexcept {
  try {
    (void)target.enqueue(new E(std::forward<Args>(args)...));
  } catch (...) {
  }
}

// A no-op message whose arrival makes the actor run (and notice a stop request).
struct wake_envelope final : system_envelope {
  void run(cell&) override {}
};

// "An actor you asked about stopped": the runtime's own down message.
struct down_envelope final : system_envelope {
  down_envelope(std::uint64_t id, cell* who_stopped, exit_reason why)
      : monitor_id(id), who(who_stopped), reason(std::move(why)) {}
  void run(cell& receiver) override { receiver.on_down_signal(monitor_id, who.get(), reason); }
  [[nodiscard]] bool for_the_actor(const cell&) const noexcept override { return true; }
  std::uint64_t monitor_id;
  cell_ptr who;
  exit_reason reason;
};

// An exit signal: a linked actor stopped, or send_exit().
struct exit_envelope final : system_envelope {
  exit_envelope(cell* sender, exit_reason why) : from(sender), reason(std::move(why)) {}
  void run(cell& receiver) override { receiver.on_exit_signal(from.get(), reason); }
  // Trapped exits are messages for the actor; untrapped ones act at once.
  [[nodiscard]] bool for_the_actor(const cell& receiver) const noexcept override { return receiver.trapping_exits(); }
  cell_ptr from;
  exit_reason reason;
};

void send_down(const cell_ptr& watcher, std::uint64_t id, cell* who, const exit_reason& reason) noexcept {
  post<down_envelope>(*watcher.get(), id, who, reason);
}

void send_exit_signal(cell* target, cell* from, exit_reason reason) noexcept {
  post<exit_envelope>(*target, from, std::move(reason));
}

// Sets up a monitor in the target's context; a dead target owes the down at once.
struct add_monitor_envelope final : system_envelope {
  add_monitor_envelope(cell* w, std::uint64_t id) : watcher(w), monitor_id(id) {}
  void run(cell& target) override { target.add_monitor_entry(watcher.get(), monitor_id); }
  void discard(cell& target, const exit_reason& reason) noexcept override {
    send_down(watcher, monitor_id, &target, reason);
  }
  cell_ptr watcher;
  std::uint64_t monitor_id;
};

struct remove_monitor_envelope final : system_envelope {
  explicit remove_monitor_envelope(std::uint64_t id) : monitor_id(id) {}
  void run(cell& target) override { target.remove_monitor_entry(monitor_id); }
  std::uint64_t monitor_id;
};

// The far half of link(); a dead target owes the exit signal at once.
struct add_link_envelope final : system_envelope {
  explicit add_link_envelope(cell* o) : other(o) {}
  void run(cell& target) override { target.add_link_entry(other.get()); }
  void discard(cell& target, const exit_reason& reason) noexcept override {
    send_exit_signal(other.get(), &target, reason);
  }
  cell_ptr other;
};

struct remove_link_envelope final : system_envelope {
  explicit remove_link_envelope(cell* o) : other(o) {}
  void run(cell& target) override { target.remove_link_entry(other.get()); }
  cell_ptr other;
};
}  // namespace

void envelope::discard(cell& receiver, const exit_reason& reason) noexcept {
  try {
    abandon(error_for(receiver, reason));
  } catch (...) {
  }
}

cell* current_cell() noexcept { return running_cell; }
void forbid_blocking_sends_on_this_thread() noexcept { sends_must_not_block = true; }
bool blocking_sends_allowed() noexcept { return current_cell() == nullptr && !sends_must_not_block; }
void set_reply_run_list(std::vector<cell*>* list) noexcept { reply_runs_here = list; }
std::vector<cell*>* reply_run_list() noexcept { return reply_runs_here; }
handler_record* current_handler() noexcept { return running_handler; }

handler_scope::handler_scope(handler_record* r) noexcept : previous_(running_handler) { running_handler = r; }
handler_scope::~handler_scope() { running_handler = previous_; }

constructing_scope::constructing_scope(cell* c) noexcept : previous_(constructing_cell) { constructing_cell = c; }
constructing_scope::~constructing_scope() { constructing_cell = previous_; }

exit_reason reason_from_current_exception() {
  try {
    throw;
  } catch (const std::exception& e) {
    return exit_reason::error(e.what(), demangle(typeid(e).name()));
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    return exit_reason::error("unknown exception", type != nullptr ? demangle(type->name()) : "");
  }
}

error error_for(const cell& c, const exit_reason& reason) {
  return error(errc::actor_down, address_of(&c) + " stopped: " + reason.to_string());
}

std::string address_of(const cell* c) {
  if (c == nullptr) return "troupe://<none>";
  if (c->is_remote()) return c->remote_address();
  return "troupe://local/" + std::to_string(c->id());
}

std::error_code cell::forward_message(std::uint32_t, const void*) noexcept {
  return make_error_code(errc::no_such_actor);
}

std::error_code cell::forward(envelope* e) noexcept {
  e->discard(*this, exit_reason::error("this actor cannot forward messages"));
  delete e;
  return make_error_code(errc::no_such_actor);
}

cell::cell(troupe::system& owner, executor& exec) noexcept
    : started_(0), stopping_(0), paused_(0), id_(owner.state().next_actor_id()), owner_(&owner), executor_(&exec) {}

cell::~cell() = default;

cell_extras& cell::extras() {
  if (!extras_) extras_ = std::make_unique<cell_extras>();
  return *extras_;
}

void cell::set_bound(std::unique_ptr<mailbox_bound> bound) {
  extras().bound = std::move(bound);
  bounded_ = true;
}

mailbox_bound* cell::bound() const noexcept { return bounded_ ? extras_->bound.get() : nullptr; }

std::uint64_t cell::dropped_messages() const noexcept {
  mailbox_bound* b = bound();
  return b != nullptr ? b->dropped() : 0;
}

std::error_code cell::enqueue(envelope* e) noexcept { return enqueue(e, nullptr); }

void cell::run_cells(std::vector<cell*>& cells) noexcept {
  for (cell* c : cells) {
    // Not touched after resume() unless it has work left: a terminated cell may be gone.
    if (c->resume(c->owner().config().max_throughput) == resume_result::again) c->exec().schedule(c);
  }
  cells.clear();
}

std::error_code cell::enqueue_chain(envelope* newest, envelope* oldest, std::vector<cell*>* run_here) noexcept {
  if (queue_chain(newest, oldest, run_here)) return {};
  const exit_reason reason = exit_reason_snapshot();
  for (envelope* e = newest; e != nullptr;) {
    auto* next = static_cast<envelope*>(e->next);
    e->discard(*this, reason);
    delete e;
    e = next;
  }
  return make_error_code(errc::no_such_actor);
}

bool cell::queue_chain(envelope* newest, envelope* oldest, std::vector<cell*>* run_here) noexcept {
  const bool may_run_here = run_here != nullptr && current_cell() == nullptr && executor_ == &scheduler_of(owner());
  // An idle actor this thread will run: it takes the mailbox's consumer role
  // with the messages, without the push and the consumer's exchange.
  if (may_run_here && mailbox_.claim_chain(newest)) {
    run_claimed(*run_here);
    return true;
  }
  switch (mailbox_.push_chain(newest, oldest)) {
    case push_result::ok:
      return true;
    case push_result::became_nonempty:
      // This push made the actor runnable, so this thread alone may hand it to
      // an executor — or, for a scheduler actor when the caller asks and is
      // not itself running an actor, run it right here (see the header).
      if (may_run_here) {
        run_claimed(*run_here);
      } else {
        executor_->schedule(this);
      }
      return true;
    case push_result::closed:
      break;
  }
  return false;
}

// This thread holds the right to run this cell (its message made it runnable):
// it goes on the caller's list, or to its executor if the list cannot grow.
void cell::run_claimed(std::vector<cell*>& run_here) noexcept {
  try {
    run_here.push_back(this);
  } catch (...) {
    // Out of memory: the scheduler runs it after all, on a worker. A claim made
    // this thread the mailbox's consumer: hand the role over.
    mailbox_.release_consumer();
    executor_->schedule(this);
  }
}

std::error_code cell::enqueue(envelope* e, std::vector<cell*>* run_here) noexcept {
  if (forwards_ && e->index != envelope::system_index) [[unlikely]]
    return forward(e);
  mailbox_bound* const limit = bound();
  const bool counted = limit != nullptr && e->index != envelope::system_index;
  if (counted) {
    // An actor's worker must not block: only plain threads wait for room.
    switch (limit->admit([] { return blocking_sends_allowed(); })) {
      case admission::admitted:
        break;
      case admission::dropped:
        e->abandon(error(errc::mailbox_full, address_of(this) + ": mailbox full, message dropped (drop_newest)"));
        delete e;
        return {};
      case admission::rejected:
        e->abandon(error(errc::mailbox_full, address_of(this) + ": mailbox full, message rejected"));
        delete e;
        return make_error_code(errc::mailbox_full);
    }
  }
  e->next = nullptr;  // a chain of one
  if (queue_chain(e, e, run_here)) return {};
  if (counted) limit->unadmit();
  e->discard(*this, exit_reason_snapshot());
  delete e;
  return make_error_code(errc::no_such_actor);
}

std::uint64_t cell::monitor(cell* target) {
  cell_extras& x = extras();
  const std::uint64_t id = x.next_monitor_id++;
  x.monitoring.emplace(id, cell_ptr(target));
  (void)target->enqueue(new add_monitor_envelope(this, id));
  return id;
}

void cell::demonitor(std::uint64_t monitor_id) {
  if (!extras_) return;
  auto it = extras_->monitoring.find(monitor_id);
  if (it == extras_->monitoring.end()) return;
  cell_ptr target = std::move(it->second);
  extras_->monitoring.erase(it);  // a down already on its way is now dropped on arrival
  (void)target->enqueue(new remove_monitor_envelope(monitor_id));
}

void cell::link(cell* target) {
  if (target == this) return;
  cell_extras& x = extras();
  for (const auto& l : x.links)
    if (l.get() == target) return;
  x.links.emplace_back(target);
  (void)target->enqueue(new add_link_envelope(this));
}

void cell::unlink(cell* target) {
  if (!extras_) return;
  auto& links = extras_->links;
  auto it = std::find_if(links.begin(), links.end(), [&](const cell_ptr& l) { return l.get() == target; });
  if (it == links.end()) return;
  links.erase(it);
  (void)target->enqueue(new remove_link_envelope(this));
}

void cell::send_exit(cell* target, cell* from, exit_reason reason) noexcept {
  // A proxy forwards even a kill to the node that hosts the actor.
  if (reason.what() == exit_reason::kind::killed && !target->is_remote()) {
    target->request_stop(exit_reason::kind::killed, false);  // untrappable; a supervisor may restart it
    return;
  }
  send_exit_signal(target, from, std::move(reason));
}

void cell::add_monitor_entry(cell* watcher, std::uint64_t monitor_id) {
  extras().monitored_by.emplace_back(cell_ptr(watcher), monitor_id);
}

void cell::remove_monitor_entry(std::uint64_t monitor_id) {
  if (!extras_) return;
  auto& m = extras_->monitored_by;
  m.erase(std::remove_if(m.begin(), m.end(), [&](const auto& e) { return e.second == monitor_id; }), m.end());
}

void cell::add_link_entry(cell* other) {
  cell_extras& x = extras();
  for (const auto& l : x.links)
    if (l.get() == other) return;
  x.links.emplace_back(other);
}

void cell::remove_link_entry(cell* other) {
  if (!extras_) return;
  auto& links = extras_->links;
  links.erase(std::remove_if(links.begin(), links.end(), [&](const cell_ptr& l) { return l.get() == other; }),
              links.end());
}

void cell::on_exit_signal(cell* from, const exit_reason& reason) {
  if (from != nullptr) remove_link_entry(from);  // the link is spent either way
  if (from != nullptr && extras_ != nullptr && extras_->supervisor.get() == from) {
    // The supervisor ended for good: so do its children (trapping or not, paused or not).
    terminate_for_good(reason.is_normal() ? exit_reason::shutdown() : reason);
    return;
  }
  if (paused_) return;  // the instance it would stop is gone already (awaiting its restart)
  if (traps_exits()) {
    deliver_exit(troupe::exit{addr_access::make(from), reason});
    return;
  }
  if (reason.is_normal()) return;
  // Erlang's default: die of the same cause.
  stopping_ = 0;
  stop_self(reason);
}

void cell::on_down_signal(std::uint64_t monitor_id, cell* who, const exit_reason& reason) {
  if (!extras_ || extras_->monitoring.erase(monitor_id) == 0) return;  // demonitored meanwhile
  deliver_down(troupe::down{addr_access::make(who), reason, monitor_id});
}

void cell::request_stop(exit_reason::kind why, bool final) noexcept {
  // relaxed: the flag travels with the wake envelope pushed below (release push,
  // acquire pop); the consumer checks it before every message. Encoding: kind + 1
  // in the low bits (0 means no request), 0x80 for "final".
  const auto bits = static_cast<std::uint8_t>((why == exit_reason::kind::killed ? stop_killed : stop_shutdown) |
                                              (final ? stop_final : 0));
  stop_request_.fetch_or(bits, std::memory_order_relaxed);
  post<wake_envelope>(*this);  // lost only without memory: the flag is still seen at the next message
}

exit_reason cell::exit_reason_snapshot() const {
  // The consumer wrote extras_->reason before closing the mailbox; callers only
  // get here after observing the closed mailbox (acquire), so the write is visible.
  if (!mailbox_.closed() || !extras_) return exit_reason::normal();
  return extras_->reason;
}

namespace {
const exit_reason& normal_reason() {
  static const exit_reason normal = exit_reason::normal();
  return normal;
}
}  // namespace

void cell::stop_self(exit_reason reason) {
  if (stopping_) return;
  stopping_ = 1;
  // An actor that stops normally and never needed the extras does not get them
  // now: the reason defaults to normal (actor creation benchmarks notice).
  if (extras_ != nullptr || !reason.is_normal()) extras().reason = std::move(reason);
}

// Ask deadlines: one timer per actor, not one per ask. The timer is armed for
// the earliest deadline of the outstanding asks and is left armed when an ask
// is answered, so an actor that asks one question after another (each with the
// same timeout) arms a timer once per timeout period instead of arming and
// cancelling one per ask (a mutex, a map insert and erase, an allocation, and
// contention between the workers on the timer service's lock). When it fires,
// sweep_asks() fails the asks that are due and arms it again for the earliest
// of the rest.
std::uint64_t cell::add_pending(std::shared_ptr<pending_request> request, std::chrono::nanoseconds timeout) {
  cell_extras& x = extras();
  const std::uint64_t id = x.next_request_id++;
  if (timeout > std::chrono::nanoseconds::zero()) {
    system_state& state = owner_->state();
    const auto now = state.timers->now();
    request->deadline = now + timeout;
    if (x.ask_timer == 0 || request->deadline < x.ask_timer_at) {
      if (x.ask_timer != 0) state.cancel_timer(x.ask_timer);
      x.ask_timer = state.arm_ask_sweep(this, request->deadline);
      x.ask_timer_at = request->deadline;
    }
  }
  x.pending.emplace(id, std::move(request));
  return id;
}

std::shared_ptr<pending_request> cell::take_pending(std::uint64_t request_id) {
  if (!extras_) return nullptr;
  auto it = extras_->pending.find(request_id);
  if (it == extras_->pending.end()) return nullptr;
  std::shared_ptr<pending_request> request = std::move(it->second);
  extras_->pending.erase(it);
  return request;
}

void cell::sweep_asks(std::chrono::steady_clock::time_point at) {
  if (!extras_) return;
  cell_extras& x = *extras_;
  // A sweep from a timer that was replaced by an earlier one (its cancel came
  // too late) still fails what is due, but leaves the current timer alone.
  const bool current = x.ask_timer != 0 && at == x.ask_timer_at;
  if (current) x.ask_timer = 0;
  system_state& state = owner_->state();
  const auto now = state.timers->now();
  std::vector<std::uint64_t> due;
  auto earliest = std::chrono::steady_clock::time_point::max();
  for (const auto& [id, request] : x.pending) {
    if (request->deadline <= now) {
      due.push_back(id);
    } else {
      earliest = std::min(earliest, request->deadline);
    }
  }
  if (current && earliest != std::chrono::steady_clock::time_point::max()) {
    x.ask_timer = state.arm_ask_sweep(this, earliest);
    x.ask_timer_at = earliest;
  }
  // In id order, which is the order the asks were made: a handler resumed by
  // one failure may make new asks (they get new ids, and new deadlines).
  std::sort(due.begin(), due.end());
  for (std::uint64_t id : due) {
    if (auto request = take_pending(id)) request->fail(error(errc::timeout, "no reply before the ask's deadline"));
  }
}

void cell::note_late_reply() noexcept {
  if (extras_) ++extras_->late_replies;
}

std::uint64_t cell::late_replies() const noexcept { return extras_ ? extras_->late_replies : 0; }

void cell::keep_suspended(std::unique_ptr<handler_record> record) {
  if (!record->interleaves) ++awaiting_;
  extras().suspended.push_back(std::move(record));
}

void cell::resume_handler(handler_record* record, std::coroutine_handle<> waiter) {
  {
    handler_scope scope(record);
    waiter.resume();  // task promises catch everything: resume() does not throw
  }
  if (!record->done()) return;
  auto& suspended = extras().suspended;
  auto it = std::find_if(suspended.begin(), suspended.end(), [&](const auto& r) { return r.get() == record; });
  std::unique_ptr<handler_record> owned = std::move(*it);
  suspended.erase(it);
  if (!owned->interleaves) --awaiting_;
  try {
    owned->finish();
  } catch (...) {
    owned->abandon(error_for(*this, reason_from_current_exception()));
    throw;
  }
}

envelope* cell::next_envelope() noexcept {
  if (awaiting_ == 0 && !paused_) {
    if (extras_ != nullptr && extras_->stash_head != nullptr) {
      envelope* e = extras_->stash_head;
      extras_->stash_head = static_cast<envelope*>(e->next);
      if (extras_->stash_head == nullptr) extras_->stash_tail = nullptr;
      e->next = nullptr;
      return e;
    }
    return mailbox_.pop();
  }
  // A sequential handler is suspended, or the actor awaits its supervisor's
  // decision: only runtime messages (replies, timeouts, restart and stop
  // requests) may run; user messages wait in the stash, in order.
  while (envelope* e = mailbox_.pop()) {
    if (e->index == envelope::system_index && !static_cast<system_envelope*>(e)->for_the_actor(*this)) return e;
    cell_extras& x = *extras_;  // exists: keep_suspended() or supervision created it
    e->next = nullptr;
    if (x.stash_tail == nullptr) {
      x.stash_head = x.stash_tail = e;
    } else {
      x.stash_tail->next = e;
      x.stash_tail = e;
    }
  }
  return nullptr;
}

void cell::process(envelope* e) {
  if (mailbox_bound* limit = bound(); limit != nullptr && e->index != envelope::system_index) {
    limit->consumed();
    if (limit->should_drop_oldest()) {  // drop_oldest: this is the oldest message; drop it
      limit->count_dropped();
      e->abandon(error(errc::mailbox_full, address_of(this) + ": mailbox full, message dropped (drop_oldest)"));
      delete e;
      return;
    }
  }
  try {
    if (e->index == envelope::system_index) {
      static_cast<system_envelope*>(e)->run(*this);
    } else {
      dispatch(*e);
    }
  } catch (...) {
    exit_reason reason = reason_from_current_exception();
    e->discard(*this, reason);
    delete e;
    stopping_ = 0;  // an earlier stop() is overridden by the failure
    stop_self(std::move(reason));
    return;
  }
  delete e;
}

resume_result cell::resume(std::size_t max_messages) noexcept {
  running_scope scope(this);
  std::size_t handled = 0;
  for (;;) {
    if (stopping_) {
      if (extras_ != nullptr && extras_->supervisor && !extras_->final_stop) {
        suspend_for_supervisor();  // keeps the mailbox; the supervisor decides
        continue;
      }
      terminate(extras_ != nullptr ? extras_->reason : normal_reason());
      return resume_result::terminated;
    }
    // relaxed: see request_stop(); the wake envelope carries the ordering.
    // relaxed test first (no write on the hot path); the exchange takes every
    // request made so far, so none is lost between reading and clearing.
    if (stop_request_.load(std::memory_order_relaxed) != 0) {
      const std::uint8_t requested = stop_request_.exchange(0, std::memory_order_relaxed);
      stopping_ = 0;  // a stop request overrides a stop already under way
      stop_self((requested & stop_killed) != 0 ? exit_reason::killed() : exit_reason::shutdown());
      // A shutdown ends a supervised actor for good; an external kill is a
      // failure its supervisor may restart.
      if ((requested & stop_final) != 0) extras().final_stop = true;
      continue;
    }
    if (!started_ && !paused_) {
      started_ = 1;
      ++handled;  // on_start() counts as one message (a deterministic step is exactly one)
      try {
        start();
      } catch (...) {
        stop_self(reason_from_current_exception());
      }
      continue;
    }
    if (handled >= max_messages) {
      // The executor runs this cell again, maybe on another thread: the
      // mailbox's consumer role goes with it (checked builds track it).
      mailbox_.release_consumer();
      return resume_result::again;
    }
    envelope* e = next_envelope();
    if (e == nullptr) {
      if (mailbox_.try_block()) return resume_result::idle;
      continue;  // a message raced in
    }
    ++handled;
    process(e);
  }
}

void cell::drop_handlers(const error& why) noexcept {
  cell_extras* x = extras_.get();
  if (x == nullptr) return;
  // Outstanding asks of this actor: nobody will await them any more.
  if (x->ask_timer != 0) owner_->state().cancel_timer(x->ask_timer);
  x->ask_timer = 0;
  x->pending.clear();
  // Suspended handlers: their askers get the exit reason; the frames go.
  auto suspended = std::move(x->suspended);
  for (auto& record : suspended) record->abandon(why);
  suspended.clear();
  awaiting_ = 0;
}

void cell::suspend_for_supervisor() noexcept {
  cell_extras& x = *extras_;
  const exit_reason reason = x.reason;
  drop_handlers(error_for(*this, reason));
  finish(reason);  // on_stop() and the actor object's destructor; the mailbox stays
  paused_ = 1;
  stopping_ = 0;
  started_ = 0;
  notify_supervisor(reason, false);
}

void cell::restart_now(std::uint64_t incarnation) {
  if (mailbox_.closed()) return;
  if (!paused_) {
    // A sibling's restart (one_for_all, rest_for_one): stop this instance first.
    drop_handlers(error_for(*this, exit_reason::shutdown()));
    finish(exit_reason::shutdown());
  }
  paused_ = 1;  // stays paused if recreating fails: the failure is reported below
  stopping_ = 0;
  started_ = 0;
  extras().incarnation = incarnation;
  if (std::optional<exit_reason> failed = recreate()) {
    stop_self(std::move(*failed));
    return;
  }
  paused_ = 0;  // on_start() runs next, then the stash (the messages that waited), then the mailbox
}

namespace {
// A child's exit, told to its supervisor (in the supervisor's context).
struct child_exit_envelope final : system_envelope {
  child_exit_envelope(cell* c, exit_reason why, bool is_final, std::uint64_t life)
      : child(c), reason(std::move(why)), final(is_final), incarnation(life) {}
  void run(cell& supervisor) override {
    if (supervision_listener* s = supervisor.as_supervisor()) s->child_exited(child.get(), reason, final, incarnation);
  }
  // While the supervisor itself awaits its restart, the report waits for the
  // next instance (the one that will decide).
  [[nodiscard]] bool for_the_actor(const cell&) const noexcept override { return true; }
  // The supervisor is gone: nobody will restart the child, so it ends for good.
  void discard(cell&, const exit_reason&) noexcept override {
    if (!final) child->post_terminate(reason);
  }
  cell_ptr child;
  exit_reason reason;
  bool final;
  std::uint64_t incarnation;
};

struct restart_envelope final : system_envelope {
  explicit restart_envelope(std::uint64_t life) : incarnation(life) {}
  void run(cell& child) override { child.restart_now(incarnation); }
  std::uint64_t incarnation;
};

struct terminate_envelope final : system_envelope {
  terminate_envelope(exit_reason why, bool for_good) : reason(std::move(why)), final(for_good) {}
  void run(cell& child) override {
    if (final) {
      child.terminate_for_good(reason);
    } else {
      child.stop_self(reason);  // a supervised cell then pauses for its supervisor
    }
  }
  exit_reason reason;
  bool final;
};
}  // namespace

void cell::set_supervisor(cell* supervisor) { extras().supervisor = cell_ptr(supervisor); }

void cell::set_factory(std::function<void(void*)> factory) { extras().factory = std::move(factory); }

const std::function<void(void*)>* cell::factory() const noexcept {
  return extras_ != nullptr && extras_->factory ? &extras_->factory : nullptr;
}

void cell::notify_supervisor(const exit_reason& reason, bool is_final) noexcept {
  post<child_exit_envelope>(*extras_->supervisor.get(), this, reason, is_final, extras_->incarnation);
}

void cell::own_executor(std::unique_ptr<owned_executor> exec) { extras().executor = std::move(exec); }

void cell::post_restart(std::uint64_t incarnation) noexcept { post<restart_envelope>(*this, incarnation); }

void cell::post_terminate(const exit_reason& reason) noexcept { post<terminate_envelope>(*this, reason, true); }

void cell::post_pause(const exit_reason& reason) noexcept { post<terminate_envelope>(*this, reason, false); }

bool cell::supervised() const noexcept { return extras_ != nullptr && extras_->supervisor; }

void cell::terminate_for_good(exit_reason reason) {
  extras().final_stop = true;
  stopping_ = 0;
  stop_self(std::move(reason));
}

void cell::terminate(exit_reason reason) noexcept {
  stopping_ = 1;
  // An ask timer may be armed with no ask outstanding (add_pending()): it holds
  // a reference to this cell until it is cancelled here.
  if (extras_ != nullptr && (!extras_->pending.empty() || !extras_->suspended.empty() || extras_->ask_timer != 0)) {
    drop_handlers(error_for(*this, reason));
  }
  if (!paused_) finish(reason);  // on_stop() and the actor object's destructor (gone already if paused)
  if (extras_ != nullptr || !reason.is_normal()) extras().reason = std::move(reason);
  // Close the mailbox (from now on senders see the actor gone) and drain it.
  envelope* rest = mailbox_.close();
  mailbox_bound* const limit = bound();
  if (limit != nullptr) limit->close();  // senders waiting for room give up
  cell_extras* x = extras_.get();
  envelope* stash = nullptr;
  if (x != nullptr) {
    stash = x->stash_head;
    x->stash_head = x->stash_tail = nullptr;
  }
  const exit_reason& final_reason = x != nullptr ? x->reason : normal_reason();
  for (envelope* list : {stash, rest}) {
    while (list != nullptr) {
      envelope* next = static_cast<envelope*>(list->next);
      if (limit != nullptr && list->index != envelope::system_index) limit->consumed();
      list->discard(*this, final_reason);
      delete list;
      list = next;
    }
  }
  if (x != nullptr) {
    // Tell the links and monitors. The mailbox is closed, so these lists are final:
    // a link or monitor request that came later was discarded above and answered.
    auto links = std::move(x->links);
    auto monitored_by = std::move(x->monitored_by);
    // The monitors this actor held: their targets drop this dead cell from their
    // lists (or it would stay referenced until they end).
    for (auto& [id, target] : x->monitoring) {
      post<remove_monitor_envelope>(*target.get(), id);
    }
    x->monitoring.clear();
    for (auto& other : links) send_exit_signal(other.get(), this, final_reason);
    for (auto& [watcher, id] : monitored_by) send_down(watcher, id, this, final_reason);
    links.clear();
    monitored_by.clear();
    if (x->supervisor) {
      notify_supervisor(final_reason, true);
      x->supervisor = cell_ptr{};  // the supervisor holds this cell: do not hold it back
    }
  }
  // Last: may drop the final reference and delete this cell.
  owner_->state().on_terminated(this);
}

}  // namespace troupe::detail

namespace troupe {

actor_base::actor_base() noexcept : cell_(detail::constructing_cell) {}

}  // namespace troupe
