// Supervisors: actors whose job is to keep other actors running, as in
// Erlang/OTP. A supervisor is built from a spec — a strategy, a restart intensity
// and a list of child specs — and restarts its children when they fail.
//
//   troupe::supervisor_spec spec;
//   spec.strategy = troupe::supervision_strategy::one_for_one;
//   spec.max_restarts = 3;  spec.within = 5s;           // more than 3 in 5 s: give up, escalate
//   spec.children.push_back(troupe::child<worker>("parser", config));
//   spec.children.push_back(troupe::child<db_writer>("db").with_restart(troupe::restart_type::transient));
//   troupe::supervisor_ref sup = troupe::spawn_supervisor(sys, std::move(spec));
//   troupe::ref<worker_protocol> parser = sup.child<worker_protocol>("parser");   // valid across restarts
//
// Semantics (docs/supervision.md has the full story and the comparison with OTP and Akka):
// - A child is restarted *in place*: its ref stays valid and the messages in its
//   mailbox survive; the message whose handler threw is dropped (its asker gets
//   actor_down with the reason) and reported. The child's constructor runs again
//   with the spec's arguments, then on_start().
// - restart_type: permanent (always restarted), transient (restarted after an
//   abnormal exit only), temporary (never restarted).
// - strategy: one_for_one (the failed child), one_for_all (every child),
//   rest_for_one (the failed child and those started after it).
// - intensity: more than max_restarts restarts within `within` makes the
//   supervisor stop all children (reverse start order) and fail with
//   exit_reason::error("restart intensity exceeded ..."), escalating to its own
//   supervisor. Optional exponential backoff with jitter delays restarts.
// - Orderly shutdown (shutdown_supervisor, or escalation): children stop in
//   reverse start order, each given its shutdown timeout before it is killed.
// - Every restart, termination and escalation is logged (stderr, one line) and
//   passed to spec.on_event.
//
// Thread safety: spawn_supervisor, supervisor_ref and pool<A> from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/detail/typed_cell.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe {

enum class restart_type : std::uint8_t { permanent, transient, temporary };
enum class supervision_strategy : std::uint8_t { one_for_one, one_for_all, rest_for_one };
enum class child_kind : std::uint8_t { worker, supervisor };

struct supervisor_spec;

// How to build, restart and stop one child.
class child_spec {
 public:
  std::string id;
  restart_type restart = restart_type::permanent;
  // Orderly shutdown: how long the child gets to stop (on_stop) before it is killed.
  std::chrono::milliseconds shutdown_timeout{5000};
  bool kill_on_shutdown = false;  // stop without waiting (Erlang's brutal_kill)
  child_kind kind = child_kind::worker;

  child_spec&& with_restart(restart_type r) && {
    restart = r;
    return std::move(*this);
  }
  child_spec&& with_shutdown(std::chrono::milliseconds timeout) && {
    shutdown_timeout = timeout;
    return std::move(*this);
  }
  child_spec&& with_kill_on_shutdown() && {
    kill_on_shutdown = true;
    return std::move(*this);
  }
  // A bounded mailbox for this child (it survives restarts like the messages in it).
  child_spec&& with_mailbox(bounded b) && {
    mailbox = b;
    return std::move(*this);
  }
  std::optional<bounded> mailbox;

  // --- runtime internals ---
  // Creates the child's cell (not started). Called once; restarts rebuild in place.
  std::function<detail::cell*(troupe::system&, detail::executor&)> make;
  // For a nested supervisor: starts its own children once its cell is started.
  std::function<void(troupe::system&, detail::cell*)> start_subtree;
  std::type_index protocol = typeid(void);
};

// A worker child of actor class A, constructed from copies of `args` at start
// and at every restart.
template <actor_class A, class... Args>
child_spec child(std::string id, Args... args) {
  child_spec spec;
  spec.id = std::move(id);
  spec.protocol = typeid(typename A::protocol_type);
  spec.make = [... args = std::move(args)](troupe::system& sys, detail::executor& exec) -> detail::cell* {
    return new detail::typed_cell<A>(sys, exec, detail::from_factory,
                                     [args...](void* where) { ::new (where) A(args...); });
  };
  return spec;
}

// What a supervisor reports (to spec.on_event, and as a log line).
struct supervisor_event {
  enum class kind : std::uint8_t {
    restarted,      // a child was restarted
    not_restarted,  // a child exited and its restart type says no (it is gone)
    escalated,      // restart intensity exceeded: the supervisor shuts down and fails
    child_killed,   // a child did not stop within its shutdown timeout
  };
  kind what;
  std::string supervisor;  // address
  std::string child_id;
  std::string child;  // address
  exit_reason reason;
  std::uint64_t restarts = 0;  // restarts within the current intensity period
};

struct supervisor_spec {
  supervision_strategy strategy = supervision_strategy::one_for_one;
  // Restart intensity: at most max_restarts restarts within `within`.
  int max_restarts = 3;
  std::chrono::milliseconds within{5000};
  // Exponential backoff between restarts of a child: 0 means restart at once.
  // Delay n (n = restarts of that child in the period) = min(max, initial * 2^(n-1)),
  // randomised by ±jitter.
  std::chrono::milliseconds backoff_initial{0};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(10)};
  double backoff_jitter = 0.2;
  std::vector<child_spec> children;
  // Called in the supervisor's context for every event (metrics, tests).
  std::function<void(const supervisor_event&)> on_event;
  bool log_events = true;  // one line per event on stderr
};

// A nested supervisor as a child (trees nest).
child_spec supervisor_child(std::string id, supervisor_spec spec);

// What a supervisor answers to which_children.
struct child_info {
  std::string id;
  actor_addr address;
  bool running = false;
  std::uint64_t restarts = 0;  // over the child's lifetime
};

namespace detail {
struct supervisor_timer {
  std::uint64_t token;
};
}  // namespace detail

// What a supervisor accepts.
struct which_children {
  using reply = std::vector<child_info>;
};
struct shutdown_supervisor {};  // orderly: children in reverse order, then the supervisor
using supervisor_protocol = protocol<which_children, shutdown_supervisor, detail::supervisor_timer>;

// The handle spawn_supervisor returns.
class supervisor_ref {
 public:
  supervisor_ref() = default;
  supervisor_ref(ref<supervisor_protocol> self, std::shared_ptr<void> state)
      : self_(std::move(self)), state_(std::move(state)) {}

  [[nodiscard]] const ref<supervisor_protocol>& self() const noexcept { return self_; }
  // The child with this id, as a ref of its protocol. Stays valid across
  // restarts. Throws troupe_error if there is no such child or P is not its protocol.
  template <class P>
  ref<P> child(std::string_view id) const {
    return detail::ref_access::make<P>(find_child(id, typeid(P)));
  }
  // Dynamic children: adds a child at run time (Erlang's simple_one_for_one,
  // Akka's pool) and returns its ref at once.
  template <actor_class A, class... Args>
  ref<typename A::protocol_type> start_child(std::string id, Args... args) const {
    auto spec = std::make_shared<child_spec>(troupe::child<A>(std::move(id), std::move(args)...));
    return detail::ref_access::make<typename A::protocol_type>(add_child(std::move(spec)));
  }
  template <actor_class A, class... Args>
  ref<typename A::protocol_type> start_child(child_spec spec) const {
    return detail::ref_access::make<typename A::protocol_type>(
        add_child(std::make_shared<child_spec>(std::move(spec))));
  }

 private:
  detail::cell* find_child(std::string_view id, const std::type_info& protocol) const;
  detail::cell* add_child(std::shared_ptr<child_spec> spec) const;

  ref<supervisor_protocol> self_;
  std::shared_ptr<void> state_;  // detail::supervisor_state
};

// Spawns a supervisor and its children (started in order). Throws what a
// child's constructor throws.
supervisor_ref spawn_supervisor(troupe::system& sys, supervisor_spec spec);

// A pool: a one_for_one supervisor whose children all come from one template
// (actor class A plus the arguments given to start()).
template <actor_class A>
class pool {
 public:
  using protocol_type = typename A::protocol_type;
  pool(troupe::system& sys, supervisor_spec spec, restart_type restart = restart_type::permanent)
      : sup_(spawn_supervisor(sys, std::move(spec))),
        restart_(restart),
        started_(std::make_shared<std::atomic<std::uint64_t>>(0)) {}
  // Any thread.
  template <class... Args>
  ref<protocol_type> start(Args... args) {
    child_spec spec = troupe::child<A>("worker-" + std::to_string(next_id()), std::move(args)...);
    spec.restart = restart_;
    return sup_.template start_child<A>(std::move(spec));
  }
  [[nodiscard]] const supervisor_ref& supervisor() const noexcept { return sup_; }

 private:
  std::uint64_t next_id() noexcept {
    // relaxed: ids only need to be unique within this pool.
    return started_->fetch_add(1, std::memory_order_relaxed) + 1;
  }
  supervisor_ref sup_;
  restart_type restart_;
  std::shared_ptr<std::atomic<std::uint64_t>> started_;  // shared by copies of this pool
};

}  // namespace troupe
