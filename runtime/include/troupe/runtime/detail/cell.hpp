// cell: the runtime's half of an actor — mailbox, scheduling state, lifetime —
// independent of the actor's C++ type. ref<P> points at a cell; typed_cell<A>
// derives from it and adds the actor object and its message dispatch.
//
// Not a user-facing type; it lives in a public header because the templates that
// send messages (ref<P>) and define actors (actor<P>) need it.
//
// Thread safety: enqueue(), add_ref()/release(), id(), owner() from any thread.
// resume() from the cell's executor only, one thread at a time (the mailbox's
// single consumer). Everything under "actor context" runs only inside resume(),
// i.e. on the thread currently running this actor.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "troupe/mailbox/mailbox_bound.hpp"
#include "troupe/mailbox/message_pool.hpp"
#include "troupe/mailbox/mpsc_queue.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"

namespace troupe {
class system;
struct down;
struct exit;
}  // namespace troupe

namespace troupe::detail {

class cell;

// A message in a mailbox. User messages carry their protocol index; runtime
// messages (replies, timeouts, stop requests) use system_index and run().
struct envelope : mpsc_node {
  static constexpr std::uint32_t system_index = UINT32_MAX;
  // Sized delete: with the virtual destructor, `size` is the most-derived size.
  static void* operator new(std::size_t size) { return allocate_message(size); }
  static void operator delete(void* p, std::size_t size) noexcept { deallocate_message(p, size); }
  // Over-aligned message types bypass the pool (its blocks are 16-byte aligned).
  static void* operator new(std::size_t size, std::align_val_t align) { return ::operator new(size, align); }
  static void operator delete(void* p, std::size_t, std::align_val_t align) noexcept {
    ::operator delete(p, align);  // the unsized form: clang omits sized deallocation by default
  }
  explicit envelope(std::uint32_t message_index, bool shared = false) noexcept
      : index(message_index), shares_payload(shared) {}
  envelope(const envelope&) = delete;
  envelope& operator=(const envelope&) = delete;
  virtual ~envelope() = default;
  // The envelope is discarded unhandled (receiver gone or failing): fail the
  // reply it carries, if any, with `why`.
  virtual void abandon(const error& why) noexcept { (void)why; }
  // The envelope is discarded because `receiver` stopped with `reason`. The
  // default fails its reply (abandon); runtime messages that set up links and
  // monitors answer with the exit/down the sender is owed.
  virtual void discard(cell& receiver, const exit_reason& reason) noexcept;

  std::uint32_t index;
  // A shared_message_envelope (reply.hpp): the payload is one immutable object
  // that other envelopes point at too. Fills the padding after `index`.
  bool shares_payload;
};

// A runtime message, run in the receiving actor's context.
struct system_envelope : envelope {
  system_envelope() noexcept : envelope(system_index) {}
  virtual void run(cell& receiver) = 0;
  // True for runtime messages that are for the actor object's handlers (down,
  // a trapped exit): while a sequential handler is suspended, or while a
  // supervised actor waits for its restart, they wait in order with the user
  // messages instead of running at once.
  [[nodiscard]] virtual bool for_the_actor(const cell& receiver) const noexcept {
    (void)receiver;
    return false;
  }
};

// Runs cells: the work-stealing scheduler, a detached actor's own thread, a
// scoped receiver's blocking caller, or the deterministic test executor.
class executor {
 public:
  // Called exactly once per idle→runnable transition of `c`.
  virtual void schedule(cell* c) noexcept = 0;

 protected:
  ~executor() = default;
};

// An executor a cell owns (a scoped inbox's wake-up): destroyed with the cell, so
// a sender that scheduled the cell never touches a dead executor.
class owned_executor : public executor {
 public:
  virtual ~owned_executor() = default;
};

enum class resume_result : std::uint8_t {
  idle,        // mailbox empty and blocked: the next message reschedules the cell
  again,       // throughput limit reached with work left: reschedule it
  terminated,  // the actor stopped; the cell will never be scheduled again
};

// A suspended coroutine handler (see task.hpp and typed_cell.hpp).
struct handler_record {
  virtual ~handler_record() = default;
  // The root coroutine finished: deliver its reply, or rethrow its exception.
  virtual void finish() = 0;
  // The actor stopped while the handler was suspended.
  virtual void abandon(const error& why) noexcept = 0;
  [[nodiscard]] virtual bool done() const noexcept = 0;
  bool interleaves = false;
  handler_record* next = nullptr;  // intrusive list of the cell's suspended handlers
};

// An outstanding ask made by this actor (see response.hpp).
struct pending_request {
  virtual ~pending_request() = default;
  virtual void fail(const error& why) = 0;
  // When the ask times out; max() for none. The cell's one ask timer fires at
  // the earliest deadline of its outstanding asks (see cell::add_pending()).
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// Implemented by supervisors: told about their children's exits, in the
// supervisor's own context. `final` is false when the child awaits a decision
// (restart or terminate_for_good), true when it has ended for good.
struct supervision_listener {
  // `incarnation`: which life of the child the report is about (see
  // post_restart); a report about an incarnation already ordered to restart is stale.
  virtual void child_exited(cell* child, const exit_reason& reason, bool final, std::uint64_t incarnation) = 0;

 protected:
  ~supervision_listener() = default;
};

struct cell_extras;  // rarely used state, allocated on first use (runtime/src)
class cell_ptr;

class cell {
 public:
  cell(troupe::system& owner, executor& exec) noexcept;
  cell(const cell&) = delete;
  cell& operator=(const cell&) = delete;
  virtual ~cell();

  // --- any thread -----------------------------------------------------------
  void add_ref() noexcept {
    // relaxed: a new reference is made from an existing one, which keeps the
    // cell alive; no data is published by the count itself.
    refs_.fetch_add(1, std::memory_order_relaxed);
  }
  void release() noexcept {
    // acq_rel: release publishes this owner's last uses of the cell; the acquire
    // on the final decrement pairs with every other owner's release, so the
    // deleting thread sees all of them.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
  [[nodiscard]] troupe::system& owner() const noexcept { return *owner_; }

  // Takes ownership of `e`. If the actor is gone, `e` is abandoned (its reply
  // fails with the actor's exit reason) and deleted, and the error is returned.
  std::error_code enqueue(envelope* e) noexcept;
  // As enqueue(), for a thread that is no executor's but may lend itself to
  // actors for a moment (a link's reader thread, net/): if this message makes a
  // scheduler actor runnable, the cell goes on `run_here` instead of waking a
  // worker, and the caller runs it with run_cells() after a batch of messages —
  // one thread hand-off fewer per message, one activation per batch. Only from
  // threads that run no actor themselves.
  // The list holds plain pointers, like an executor's queue: a cell that is
  // runnable and not yet run has not terminated, so the system's reference to
  // it (held until it terminates) keeps it alive.
  std::error_code enqueue(envelope* e, std::vector<cell*>* run_here) noexcept;
  // Whether enqueue_chain() may be used: no bound to count messages against, no
  // forwarding (fixed before the actor is shared).
  [[nodiscard]] bool takes_chains() const noexcept { return !forwards_ && !bounded_; }
  // As enqueue(e, run_here) for several user messages at once, in order, as one
  // atomic step: a chain linked newest first through `next` (the oldest's null).
  // A link's reader queues a batch's run of messages to one actor this way, one
  // CAS for the lot. Only when takes_chains().
  std::error_code enqueue_chain(envelope* newest, envelope* oldest, std::vector<cell*>* run_here) noexcept;
  // Runs each cell once (up to the throughput limit); a cell with work left goes
  // to its executor. Clears `cells`. Hold no locks while calling it.
  static void run_cells(std::vector<cell*>& cells) noexcept;

  // Asks the actor to stop with `reason` before its next message (used by system
  // shutdown). Any thread.
  // `final`: a supervised actor ends for good (system or supervisor shutdown);
  // otherwise (an external kill) its supervisor hears of it and may restart it.
  void request_stop(exit_reason::kind why, bool final = true) noexcept;

  // Bounded mailboxes: set before the actor starts (spawn); null when unbounded.
  // Before the cell is shared (spawn). May throw (out of memory).
  void set_bound(std::unique_ptr<mailbox_bound> bound);
  // Before the actor is used: the cell takes ownership of its executor.
  void own_executor(std::unique_ptr<owned_executor> exec);
  // Messages a bounded mailbox dropped or rejected so far (0 when unbounded).
  [[nodiscard]] std::uint64_t dropped_messages() const noexcept;

  // After termination: the exit reason (empty text while alive). Any thread,
  // once enqueue() has reported the actor gone.
  [[nodiscard]] exit_reason exit_reason_snapshot() const;
  [[nodiscard]] bool terminated() const noexcept { return mailbox_.closed(); }
  // A proxy for an actor of another node (see make_forwarding()).
  [[nodiscard]] bool is_remote() const noexcept { return forwards_; }
  // "troupe://<node>/<id>" for a proxy; local cells print "troupe://local/<id>".
  [[nodiscard]] virtual std::string remote_address() const { return {}; }
  // A tell to a proxy without an envelope (ref::tell): `message` points at the
  // protocol's message number `index`, which is only read. Any thread.
  // Default (not a proxy): no_such_actor.
  virtual std::error_code forward_message(std::uint32_t index, const void* message) noexcept;

  // --- executor only --------------------------------------------------------
  resume_result resume(std::size_t max_messages) noexcept;
  [[nodiscard]] executor& exec() const noexcept { return *executor_; }

  // --- actor context (inside resume) ----------------------------------------
  void stop_self(exit_reason reason);
  // Registers an outstanding ask; returns its request id. `timeout` > 0 arms a timer.
  std::uint64_t add_pending(std::shared_ptr<pending_request> request, std::chrono::nanoseconds timeout);
  std::shared_ptr<pending_request> take_pending(std::uint64_t request_id);
  // The ask timer armed for `at` fired: fails the asks that are due (actor context).
  void sweep_asks(std::chrono::steady_clock::time_point at);
  void note_late_reply() noexcept;
  // Suspended coroutine handlers.
  void keep_suspended(std::unique_ptr<handler_record> record);
  void resume_handler(handler_record* record, std::coroutine_handle<> waiter);
  [[nodiscard]] std::uint64_t late_replies() const noexcept;
  // Links and monitors (see signals.hpp). Each takes effect in the target's own
  // context, through a runtime message; a target already gone answers at once
  // with the down or exit it owes.
  std::uint64_t monitor(cell* target);
  void demonitor(std::uint64_t monitor_id);
  void link(cell* target);
  void unlink(cell* target);

  // --- any thread -------------------------------------------------------------
  // Sends an exit signal from `from` (may be null) to `target`: stops it with
  // `reason` unless it traps exits (then it gets an exit message) or the reason
  // is normal (then it is ignored). exit_reason::killed cannot be trapped.
  static void send_exit(cell* target, cell* from, exit_reason reason) noexcept;

  // --- supervision ------------------------------------------------------------
  // Before the child starts (on the supervisor's thread): its exits go to
  // `supervisor`, which decides; its mailbox survives a restart.
  void set_supervisor(cell* supervisor);
  // Any thread: ask the child to restart in place / to end for good.
  // `incarnation` numbers the child's next life; its exit reports carry it.
  void post_restart(std::uint64_t incarnation) noexcept;
  void post_terminate(const exit_reason& reason) noexcept;
  // Stops the actor object (on_stop) but keeps the cell and its mailbox for a
  // later restart; the supervisor hears of it as an exit awaiting a decision.
  void post_pause(const exit_reason& reason) noexcept;
  [[nodiscard]] bool supervised() const noexcept;
  // Whether the actor declares on(const troupe::exit&) (its exits arrive as messages).
  [[nodiscard]] bool trapping_exits() const noexcept { return traps_exits(); }
  // Actor context (via those messages).
  void restart_now(std::uint64_t incarnation);
  void terminate_for_good(exit_reason reason);
  [[nodiscard]] virtual supervision_listener* as_supervisor() noexcept { return nullptr; }

  // --- runtime messages (actor context) -------------------------------------
  void on_exit_signal(cell* from, const exit_reason& reason);
  void on_down_signal(std::uint64_t monitor_id, cell* who, const exit_reason& reason);
  void add_monitor_entry(cell* watcher, std::uint64_t monitor_id);
  void remove_monitor_entry(std::uint64_t monitor_id);
  void add_link_entry(cell* other);
  void remove_link_entry(cell* other);

  // Lives in the registry of its system (for shutdown); see system.cpp.
  cell* registry_prev = nullptr;
  cell* registry_next = nullptr;
  // Links the cell into the scheduler's injection queue while it waits there
  // (runtime/src/scheduler.cpp); written by whoever holds the runnable cell.
  cell* run_next = nullptr;

 protected:
  // Delivers a user message to the actor object. May throw (the actor fails).
  virtual void dispatch(envelope& e) = 0;
  // First activation: on_start(). May throw.
  virtual void start() = 0;
  // Termination: on_stop() unless killed, then destroy the actor object.
  virtual void finish(const exit_reason& reason) noexcept = 0;
  // Restartable cells keep the factory of their actor object in the extras.
  void set_factory(std::function<void(void*)> factory);
  [[nodiscard]] const std::function<void(void*)>* factory() const noexcept;
  // Supervised children: builds a fresh actor object in place (after finish()).
  // Returns the failure reason if the constructor threw, or if the cell cannot
  // be rebuilt (it was not spawned from a factory).
  virtual std::optional<exit_reason> recreate() noexcept { return exit_reason::error("not restartable"); }
  // Whether the actor declares on(const troupe::exit&), i.e. traps exits.
  [[nodiscard]] virtual bool traps_exits() const noexcept { return false; }
  // Proxies for actors of other nodes (net/): user messages bypass the mailbox
  // and go to forward() on the sender's thread, so they reach the wire in send
  // order; runtime messages (links, monitors, exits) still queue here and run in
  // the proxy's own context. Call in the constructor, before the cell is shared.
  void make_forwarding() noexcept { forwards_ = true; }
  // Takes ownership of `e` (a user message). Default: the message is abandoned.
  virtual std::error_code forward(envelope* e) noexcept;

  // Deliver to the actor's on(exit)/on(down) handler. May throw (the actor fails).
  virtual void deliver_exit(const troupe::exit& e) { (void)e; }
  virtual void deliver_down(const troupe::down& d) { (void)d; }

 private:
  friend struct cell_access;
  // Queues a chain (newest first, the oldest's `next` null) and has the cell
  // run if that made it runnable. False if the mailbox is closed: the chain is
  // still the caller's.
  bool queue_chain(envelope* newest, envelope* oldest, std::vector<cell*>* run_here) noexcept;
  void run_claimed(std::vector<cell*>& run_here) noexcept;
  envelope* next_envelope() noexcept;
  void process(envelope* e);
  void terminate(exit_reason reason) noexcept;
  void drop_handlers(const error& why) noexcept;
  void suspend_for_supervisor() noexcept;
  void notify_supervisor(const exit_reason& reason, bool is_final) noexcept;
  cell_extras& extras();
  // The mailbox's bound, or null (any thread: see extras_).
  [[nodiscard]] mailbox_bound* bound() const noexcept;

  // The fields are ordered so that an idle actor's cell packs into as few bytes
  // as it can (bench/ measures bytes per idle actor): a 4-byte field beside
  // refs_, the byte flags together. What idle actors do not need lives in the
  // extras (allocated on first use): supervision, pending asks, the stash, the bound.
  std::atomic<std::uint32_t> refs_{1};
  std::uint32_t awaiting_ = 0;  // suspended non-interleaving handlers
  // Consumer-only lifecycle flags.
  std::uint8_t started_ : 1 = 0;
  std::uint8_t stopping_ : 1 = 0;  // stop_self() was called
  std::uint8_t paused_ : 1 = 0;    // supervised, between a failure and the supervisor's decision
  // Set from other threads by request_stop(); read by the consumer.
  std::atomic<std::uint8_t> stop_request_{0};  // stop_bits, or-ed together
  // Immutable once the cell is shared (read by senders on any thread); bytes of
  // their own, not bits next to the consumer-only flags, so reads never race writes.
  bool forwards_ = false;
  bool bounded_ = false;  // the extras hold a mailbox_bound (set_bound(), before sharing)

 protected:
  // Consumer-only: the actor object exists (typed_cell); here to fill the padding.
  bool alive_ = false;

 private:
  mpsc_queue<envelope> mailbox_;
  std::uint64_t id_;
  troupe::system* owner_;
  executor* executor_;
  // Created on first use by the consumer, except for a bounded cell, whose
  // extras exist before it is shared and never change: senders then read the
  // bound through it (bound()).
  std::unique_ptr<cell_extras> extras_;
};

// Intrusive strong reference to a cell.
class cell_ptr {
 public:
  cell_ptr() noexcept = default;
  explicit cell_ptr(cell* c, bool add_ref = true) noexcept : cell_(c) {
    if (cell_ != nullptr && add_ref) cell_->add_ref();
  }
  cell_ptr(const cell_ptr& other) noexcept : cell_ptr(other.cell_) {}
  cell_ptr(cell_ptr&& other) noexcept : cell_(other.cell_) { other.cell_ = nullptr; }
  cell_ptr& operator=(cell_ptr other) noexcept {
    std::swap(cell_, other.cell_);
    return *this;
  }
  ~cell_ptr() {
    if (cell_ != nullptr) cell_->release();
  }
  [[nodiscard]] cell* get() const noexcept { return cell_; }
  cell* operator->() const noexcept { return cell_; }
  explicit operator bool() const noexcept { return cell_ != nullptr; }
  friend bool operator==(const cell_ptr& a, const cell_ptr& b) noexcept { return a.cell_ == b.cell_; }

 private:
  cell* cell_ = nullptr;
};

// "troupe://local/42" for a cell, "troupe://<none>" for null.
std::string address_of(const cell* c);
// The error an ask gets when its receiver stopped with `reason`.
error error_for(const cell& c, const exit_reason& reason);

// Marks the calling thread as one that must never block in a send (the timer
// thread): a bounded mailbox with the block policy rejects instead.
void forbid_blocking_sends_on_this_thread() noexcept;
// Whether a send from this thread may wait for room: a plain thread, not an
// actor's worker and not a thread marked above.
bool blocking_sends_allowed() noexcept;

// A transport's reader thread (net/) runs the actors its records make runnable
// itself, after each batch (enqueue's run_here). Registering its list here lets
// replies it delivers (a remote ask's answer) wake their askers the same way,
// instead of through a worker. Null: replies are scheduled as usual.
void set_reply_run_list(std::vector<cell*>* list) noexcept;
std::vector<cell*>* reply_run_list() noexcept;

// Registers a built cell with its system and schedules its first activation;
// its initial reference becomes the system's. Throws (and frees that reference)
// once shutdown has begun. (Used by supervisors and net/'s proxies.)
void start_cell(troupe::system& sys, cell* c);
// The system's work-stealing scheduler, for cells built outside system::spawn.
executor& scheduler_of(troupe::system& sys) noexcept;

// The actor whose handler is running on this thread, if any.
cell* current_cell() noexcept;
// The coroutine handler currently running on this thread, if any.
handler_record* current_handler() noexcept;

}  // namespace troupe::detail
