// The supervisor actor: decides what happens when a child exits (restart in
// place, or not), keeps the restart intensity, escalates, and stops its children
// in order. Its children table lives in a supervisor_state shared with the
// handle (supervisor_ref) and with the next instance after a restart of the
// supervisor itself, so a restarted supervisor restarts the same children and
// every ref stays valid.
#include "troupe/runtime/supervisor.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <iostream>
#include <random>
#include <sstream>
#include <unordered_map>

#include "system_state.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/runtime/signals.hpp"

namespace troupe {
namespace detail {

struct child_entry {
  std::shared_ptr<child_spec> spec;
  cell_ptr cell;
  bool running = false;                                      // started and not ended for good
  bool awaiting = false;                                     // exited, waiting for a (delayed) restart
  bool dynamic = false;                                      // added by start_child (or a pool)
  std::uint64_t incarnation = 0;                             // the child's life we last ordered (post_restart)
  std::uint64_t restarts = 0;                                // lifetime
  std::deque<std::chrono::steady_clock::time_point> recent;  // this child's restarts, for backoff
};

struct supervisor_state {
  supervisor_spec spec;  // children moved into `children`
  // Guards the children table for the threads that read it from outside
  // (supervisor_ref::find_child, start_children). The supervisor is the only
  // writer: it locks to change the table (an entry added or removed, running),
  // and reads it without the lock, through own_children().
  troupe::mutex mutex;
  std::vector<child_entry> children TROUPE_GUARDED_BY(mutex);
  // The table's writer reading it: the supervisor, or build() before the state
  // is shared. Its reads cannot race its own writes, so they take no lock; the
  // entries and fields other threads read change only under the lock.
  std::vector<child_entry>& own_children() TROUPE_NO_THREAD_SAFETY_ANALYSIS { return children; }
  std::deque<std::chrono::steady_clock::time_point> restart_times;  // intensity window
  cell* self = nullptr;
  std::uint64_t next_timer_token = 1;  // across instances (restarts) of the supervisor
};

namespace {

std::string describe(const supervisor_event& e) {
  std::ostringstream out;
  out << "troupe: supervisor " << e.supervisor << ": ";
  switch (e.what) {
    case supervisor_event::kind::restarted:
      out << "restarted child '" << e.child_id << "' (" << e.child << ") after " << e.reason << " [restart "
          << e.restarts << " in the intensity period]";
      break;
    case supervisor_event::kind::not_restarted:
      out << "child '" << e.child_id << "' (" << e.child << ") exited with " << e.reason << "; not restarted";
      break;
    case supervisor_event::kind::escalated:
      out << "restart intensity exceeded (" << e.restarts << " restarts) after child '" << e.child_id
          << "' exited with " << e.reason << "; shutting down and escalating";
      break;
    case supervisor_event::kind::child_killed:
      out << "child '" << e.child_id << "' (" << e.child << ") did not stop in time; killed";
      break;
  }
  return out.str();
}

// The supervisor actor. One instance per (re)start; the state outlives it.
class supervisor_actor final : public actor<supervisor_protocol>, public supervision_listener {
 public:
  explicit supervisor_actor(std::shared_ptr<supervisor_state> state) : state_(std::move(state)) {}

  void on_start() {
    state_->self = actor_access::cell_of(*this);
    if (restarted_) state_->restart_times.clear();  // a new instance starts with a fresh intensity
    for (auto& c : state_->own_children()) {
      if (!c.running) continue;
      link(addr_access::make(c.cell.get()));  // children end when this supervisor ends for good
      // A restarted supervisor restarts its subtree in place (refs stay valid).
      if (restarted_) {
        {
          troupe::mutex_lock lock(state_->mutex);
          ++c.restarts;
        }
        c.awaiting = false;
        c.cell->post_restart(++c.incarnation);
      }
    }
  }

  std::vector<child_info> on(which_children) {
    troupe::mutex_lock lock(state_->mutex);
    std::vector<child_info> out;
    for (auto& c : state_->children)
      out.push_back({c.spec->id, addr_access::make(c.cell.get()), c.running, c.restarts});
    return out;
  }

  // An explicit shutdown ends the children for good (in reverse order).
  void on(shutdown_supervisor) { begin_shutdown(exit_reason::shutdown(), false); }

  void on(supervisor_timer t) {
    auto it = timers_.find(t.token);
    if (it == timers_.end()) return;
    auto action = std::move(it->second);
    timers_.erase(it);
    action();
  }

  // A dynamic child (start_child), in the supervisor's context.
  void adopt(std::shared_ptr<child_spec> spec, const cell_ptr& child) {
    {
      troupe::mutex_lock lock(state_->mutex);
      child_entry e;
      e.spec = std::move(spec);
      e.cell = child;
      e.running = true;
      e.dynamic = true;
      state_->children.push_back(std::move(e));
    }
    link(addr_access::make(child.get()));
    start_cell(system(), child.get());  // its initial reference becomes the system's
    if (shutting_down_) child->request_stop(exit_reason::kind::shutdown);
  }

  // Children's exit signals arrive through child_exited; links are only there so
  // that children end when the supervisor ends for good.
  void on(const troupe::exit&) {}

  void child_exited(detail::cell* child, const exit_reason& reason, bool final, std::uint64_t incarnation) override {
    child_entry* entry = find(child);
    if (entry == nullptr) return;
    // A stale report: about a life we already ordered to restart (e.g. two
    // siblings failing at once under one_for_all), or a second report while a
    // restart is pending. The restart already under way answers it.
    if (!final && (incarnation < entry->incarnation || entry->awaiting)) return;
    if (final) {
      mark_stopped(*entry);
      if (shutting_down_) continue_shutdown(child);
      forget_if_gone(child);
      return;
    }
    if (shutting_down_) {
      if (pause_children_) {
        continue_shutdown(child);  // paused: it stays restartable with the subtree
      } else {
        child->post_terminate(reason);
      }
      return;
    }
    const restart_type type = entry->spec->restart;
    const bool abnormal = !reason.is_normal() && reason.what() != exit_reason::kind::shutdown;
    const bool restart = type == restart_type::permanent || (type == restart_type::transient && abnormal);
    if (!restart) {
      report(supervisor_event::kind::not_restarted, *entry, reason, 0);
      child->post_terminate(reason);
      return;
    }
    // Intensity: more than max_restarts within `within` -> escalate.
    const auto now = system().now();
    auto& times = state_->restart_times;
    times.push_back(now);
    while (!times.empty() && times.front() < now - state_->spec.within) times.pop_front();
    if (static_cast<int>(times.size()) > state_->spec.max_restarts) {
      report(supervisor_event::kind::escalated, *entry, reason, times.size());
      // Giving up: a supervised supervisor only pauses its children, so that
      // its own supervisor's restart restarts them in place (same refs,
      // same mailboxes); a top-level one ends them for good.
      begin_shutdown(exit_reason::error("restart intensity exceeded: " + std::to_string(times.size()) +
                                        " restarts within " + std::to_string(state_->spec.within.count()) +
                                        " ms; last: child '" + entry->spec->id + "' " + reason.to_string()),
                     actor_access::cell_of(*this)->supervised());
      return;
    }
    // Which children restart: the strategy.
    std::vector<child_entry*> group;
    std::vector<child_entry>& children = state_->own_children();
    const auto index = static_cast<std::size_t>(entry - children.data());
    switch (state_->spec.strategy) {
      case supervision_strategy::one_for_one:
        group.push_back(entry);
        break;
      case supervision_strategy::one_for_all:
        for (auto& c : children) group.push_back(&c);
        break;
      case supervision_strategy::rest_for_one:
        for (std::size_t i = index; i < children.size(); ++i) group.push_back(&children[i]);
        break;
    }
    ++entry->restarts;
    report(supervisor_event::kind::restarted, *entry, reason, times.size());
    const auto delay = backoff(*entry, now);
    std::vector<cell_ptr> cells;
    for (child_entry* c : group) {
      if (!c->running) continue;
      if (c != entry) ++c->restarts;
      c->awaiting = true;
      cells.push_back(c->cell);
    }
    auto restart_all = [this, cells] {
      for (const auto& c : cells) {
        if (child_entry* e = find(c.get()); e != nullptr && e->running) {
          e->awaiting = false;
          c->post_restart(++e->incarnation);  // in start order; each restarts in its own context
        }
      }
    };
    if (delay <= std::chrono::nanoseconds::zero()) {
      restart_all();
    } else {
      after(delay, std::move(restart_all));
    }
  }

  void on_stop(const exit_reason&) {
    // Timers die with this instance; the state stays for a restarted supervisor.
    timers_.clear();
  }

 private:
  child_entry* find(detail::cell* c) {
    for (auto& e : state_->own_children())
      if (e.cell.get() == c) return &e;
    return nullptr;
  }

  // Temporary and dynamic children leave the table when they end for good (as
  // in Erlang), so a pool of short-lived workers does not grow without bound.
  void forget_if_gone(detail::cell* child) {
    troupe::mutex_lock lock(state_->mutex);
    auto& children = state_->children;
    children.erase(std::remove_if(children.begin(), children.end(),
                                  [&](const child_entry& e) {
                                    return e.cell.get() == child && !e.running &&
                                           (e.dynamic || e.spec->restart == restart_type::temporary);
                                  }),
                   children.end());
  }

  void mark_stopped(child_entry& e) {
    troupe::mutex_lock lock(state_->mutex);
    e.running = false;
    e.awaiting = false;
  }

  std::chrono::nanoseconds backoff(child_entry& e, std::chrono::steady_clock::time_point now) {
    const auto& spec = state_->spec;
    e.recent.push_back(now);
    while (!e.recent.empty() && e.recent.front() < now - spec.within) e.recent.pop_front();
    if (spec.backoff_initial.count() <= 0) return std::chrono::nanoseconds::zero();
    const double exponent = static_cast<double>(e.recent.size() - 1);
    double millis = static_cast<double>(spec.backoff_initial.count()) * std::pow(2.0, exponent);
    if (spec.backoff_jitter > 0) {
      std::uniform_real_distribution<double> spread(1.0 - spec.backoff_jitter, 1.0 + spec.backoff_jitter);
      millis *= spread(random_);
    }
    millis = std::min(millis, static_cast<double>(spec.backoff_max.count()));  // the cap holds with jitter
    return std::chrono::nanoseconds(static_cast<std::int64_t>(millis * 1e6));
  }

  template <class F>
  void after(std::chrono::nanoseconds delay, F action) {
    // Tokens come from the shared state: a timer set by a previous instance of
    // this supervisor can never match an action of the current one.
    const std::uint64_t token = state_->next_timer_token++;
    timers_.emplace(token, std::function<void()>(std::move(action)));
    system().send_after(self(), delay, supervisor_timer{token});
  }

  void report(supervisor_event::kind what, const child_entry& e, const exit_reason& reason, std::uint64_t restarts) {
    supervisor_event event{what, address(), e.spec->id, address_of(e.cell.get()), reason, restarts};
    if (state_->spec.log_events) std::cerr << describe(event) << '\n';
    if (state_->spec.on_event) state_->spec.on_event(event);
  }

  // Orderly shutdown: children in reverse start order, one at a time, each
  // within its timeout; then this supervisor stops with `reason`.
  void begin_shutdown(exit_reason reason, bool pause_children) {
    if (shutting_down_) return;
    shutting_down_ = true;
    final_reason_ = std::move(reason);
    pause_children_ = pause_children;
    std::vector<child_entry>& children = state_->own_children();
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      if (it->running) stop_order_.push_back(it->cell);
    }
    stop_next();
  }

  void stop_next() {
    while (!stop_order_.empty()) {
      cell_ptr next = stop_order_.front();
      child_entry* e = find(next.get());
      if (e == nullptr || !e->running) {
        stop_order_.pop_front();
        continue;
      }
      if (e->spec->kind == child_kind::supervisor && !pause_children_) {
        // A subtree stops in order too: ask it to shut down (it pauses its own
        // children, then stops; we then end it for good, and its children with it).
        (void)next->enqueue(new message_envelope<shutdown_supervisor>(
            supervisor_protocol::index_of<shutdown_supervisor>, shutdown_supervisor{}));
        arm_kill_timer(*e, next);
      } else if (pause_children_) {
        next->post_pause(exit_reason::shutdown());
        arm_kill_timer(*e, next);
      } else if (e->spec->kill_on_shutdown) {
        next->request_stop(exit_reason::kind::killed);
      } else {
        next->request_stop(exit_reason::kind::shutdown);
        arm_kill_timer(*e, next);
      }
      return;  // wait for its final exit (continue_shutdown)
    }
    stop(final_reason_);
  }

  // After the child's shutdown timeout: kill it, and go on without waiting for
  // it (a handler stuck in a loop cannot be interrupted; the kill takes effect
  // when it returns).
  void arm_kill_timer(child_entry& e, const cell_ptr& child) {
    const std::uint64_t generation = ++stop_generation_;
    after(e.spec->shutdown_timeout, [this, child, generation] {
      if (generation != stop_generation_) return;  // it stopped in time
      if (child_entry* late = find(child.get()); late != nullptr && late->running) {
        // Before the report: a hook may unblock it. When only pausing (this
        // supervisor gave up and may be restarted), the kill is a failure, not
        // an end: the child stays in the table to be restarted with the subtree.
        child->request_stop(exit_reason::kind::killed, !pause_children_);
        report(supervisor_event::kind::child_killed, *late, exit_reason::killed(), 0);
        if (!pause_children_) mark_stopped(*late);
        continue_shutdown(child.get());
      }
    });
  }

  void continue_shutdown(detail::cell* child) {
    if (!stop_order_.empty() && stop_order_.front().get() == child) {
      stop_order_.pop_front();
      ++stop_generation_;  // its kill timer, if any, is void now
      stop_next();
    }
  }

  std::shared_ptr<supervisor_state> state_;
  std::unordered_map<std::uint64_t, std::function<void()>> timers_;
  bool shutting_down_ = false;
  bool pause_children_ = false;
  exit_reason final_reason_;
  std::deque<cell_ptr> stop_order_;
  std::uint64_t stop_generation_ = 0;
  std::minstd_rand random_{std::random_device{}()};

 public:
  // False for the first instance; every later one is a restart of this supervisor.
  bool restarted_ = false;
};

// start_child's hand-over of a new (unstarted) child to its supervisor. Waits,
// like a message for the actor, while the supervisor itself awaits a restart.
struct adopt_envelope final : system_envelope {
  adopt_envelope(std::shared_ptr<child_spec> s, cell* c) : spec(std::move(s)), child(c) {}
  void run(cell& receiver) override {
    static_cast<typed_cell<supervisor_actor>&>(receiver).instance().adopt(std::move(spec), child);
  }
  [[nodiscard]] bool for_the_actor(const cell&) const noexcept override { return true; }
  // The supervisor is gone: start the child only to stop it, so that it ends
  // like any actor (its ref reports it gone, its messages fail) instead of
  // lingering unstarted.
  void discard(cell& receiver, const exit_reason&) noexcept override {
    try {
      child->set_supervisor(nullptr);
      start_cell(receiver.owner(), child.get());
      child->request_stop(exit_reason::kind::shutdown);
    } catch (...) {
    }
  }
  std::shared_ptr<child_spec> spec;
  cell_ptr child;
};

// Builds a supervisor cell and its children's cells (nothing started yet).
struct built_tree {
  cell* supervisor;
  std::shared_ptr<supervisor_state> state;
};

built_tree build(troupe::system& sys, supervisor_spec spec) {
  auto state = std::make_shared<supervisor_state>();
  std::vector<child_spec> children = std::move(spec.children);
  state->spec = std::move(spec);
  executor& exec = sys.state().scheduler_executor();
  // The factory runs now and at every restart of the supervisor; the state (the
  // children table) is shared by all instances.
  auto* sup = new typed_cell<supervisor_actor>(sys, exec, from_factory, [state](void* where) {
    auto* a = ::new (where) supervisor_actor(state);
    a->restarted_ = state->self != nullptr;
  });
  state->self = sup;
  std::vector<child_entry>& table = state->own_children();  // not shared yet
  for (auto& spec_i : children) {
    child_entry e;
    e.spec = std::make_shared<child_spec>(std::move(spec_i));
    try {
      e.cell = cell_ptr(e.spec->make(sys, exec), false);  // adopts the initial reference
      if (e.spec->mailbox) {
        e.cell->set_bound(std::make_unique<mailbox_bound>(e.spec->mailbox->capacity, e.spec->mailbox->policy));
      }
    } catch (...) {
      // A constructor threw: nothing was started. Undo (break the child ->
      // supervisor references first, so that everything is freed).
      for (auto& built : table) built.cell->set_supervisor(nullptr);
      table.clear();
      sup->release();
      throw;
    }
    e.cell->set_supervisor(sup);
    e.running = true;  // set before anything starts: the supervisor reads it from its own thread
    table.push_back(std::move(e));
  }
  return {sup, std::move(state)};
}

// Starts the children (and their subtrees); touches no shared state, so it may
// run while the supervisor already runs.
void start_children(troupe::system& sys, supervisor_state& state) {
  // A snapshot: once the first child runs, the supervisor may change the table
  // (a temporary child that ends at once leaves it).
  std::vector<std::pair<cell_ptr, std::shared_ptr<child_spec>>> children;
  {
    troupe::mutex_lock lock(state.mutex);
    for (auto& c : state.children) children.emplace_back(c.cell, c.spec);
  }
  for (auto& [child, spec] : children) {
    child->add_ref();  // the system's "alive" reference; the entry keeps its own
    start_cell(sys, child.get());
    if (spec->start_subtree) spec->start_subtree(sys, child.get());
  }
}

}  // namespace
}  // namespace detail

child_spec supervisor_child(std::string id, supervisor_spec spec) {
  child_spec c;
  c.id = std::move(id);
  c.kind = child_kind::supervisor;
  c.protocol = typeid(supervisor_protocol);
  c.shutdown_timeout = std::chrono::milliseconds(60'000);  // a subtree gets time to stop in order
  // Transient: restarted when it gives up (an abnormal exit, escalation), not
  // after an explicit shutdown — its children ended for good then, and a
  // restarted supervisor restarts its children in place.
  c.restart = restart_type::transient;
  auto pending_spec = std::make_shared<supervisor_spec>(std::move(spec));
  auto tree = std::make_shared<detail::built_tree>();
  c.make = [pending_spec, tree](troupe::system& sys, detail::executor&) -> detail::cell* {
    *tree = detail::build(sys, std::move(*pending_spec));
    return tree->supervisor;
  };
  c.start_subtree = [tree](troupe::system& sys, detail::cell*) { detail::start_children(sys, *tree->state); };
  return c;
}

supervisor_ref spawn_supervisor(troupe::system& sys, supervisor_spec spec) {
  detail::built_tree tree = detail::build(sys, std::move(spec));
  // The handle's reference first: the initial one becomes the system's at start.
  ref<supervisor_protocol> self = detail::ref_access::make<supervisor_protocol>(tree.supervisor);
  detail::start_cell(sys, tree.supervisor);
  detail::start_children(sys, *tree.state);
  return supervisor_ref(std::move(self), std::move(tree.state));
}

detail::cell* supervisor_ref::find_child(std::string_view id, const std::type_info& protocol) const {
  auto* state = static_cast<detail::supervisor_state*>(state_.get());
  if (state == nullptr) throw troupe_error(error(errc::no_such_actor, "empty supervisor_ref"));
  troupe::mutex_lock lock(state->mutex);
  for (auto& c : state->children) {
    if (c.spec->id != id) continue;
    if (c.spec->protocol != std::type_index(protocol)) {
      throw troupe_error(error(errc::no_such_actor,
                               "supervisor child '" + std::string(id) + "' does not speak the requested protocol"));
    }
    return c.cell.get();
  }
  throw troupe_error(error(errc::no_such_actor, "supervisor has no child '" + std::string(id) + "'"));
}

detail::cell* supervisor_ref::add_child(std::shared_ptr<child_spec> spec) const {
  auto* state = static_cast<detail::supervisor_state*>(state_.get());
  if (state == nullptr) throw troupe_error(error(errc::no_such_actor, "empty supervisor_ref"));
  detail::cell* sup = detail::ref_access::get(self_);
  if (sup->terminated()) throw troupe_error(error(errc::no_such_actor, "start_child: the supervisor is gone"));
  troupe::system& sys = sup->owner();
  detail::cell* c = spec->make(sys, sys.state().scheduler_executor());  // its initial reference
  if (spec->mailbox) c->set_bound(std::make_unique<mailbox_bound>(spec->mailbox->capacity, spec->mailbox->policy));
  c->set_supervisor(sup);
  // The supervisor adopts and starts it in its own context; the message carries
  // the table's reference, the initial one becomes the system's at start. If the
  // supervisor is gone, the envelope's discard() starts and stops the child.
  detail::cell_ptr keep(c);  // for the caller's ref, made below
  if (sup->enqueue(new detail::adopt_envelope(std::move(spec), c))) {
    throw troupe_error(error(errc::no_such_actor, "start_child: the supervisor is gone"));
  }
  return keep.get();
}

}  // namespace troupe
