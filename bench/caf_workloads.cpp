// caf_workloads — the actor workloads of bench/WORKLOADS.md on CAF 0.17, the
// baseline troupe is compared against (see bench/compare). This file holds
// ping_pong ... chameneos and idle_actor_memory; the Savina rows (counting ...
// logmap) are in caf_savina*.cpp, and main() runs them all in WORKLOADS.md's order.
//
//   caf_workloads [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// This must be a fair baseline: the actors are written the way CAF's own
// examples and benchmark suite (actor-framework/benchmarks) write them —
// function-based event_based_actor / stateful_actor, atom_constant tags,
// self->send — with CAF's default scheduler settings except the worker count.
// Each repetition gets a fresh actor_system; its start-up, the spawning of the
// actors that exist before the workload starts, and its shutdown are outside
// the timed region. Completion is always a "done" message received by a
// scoped_actor (with a generous watchdog deadline), never a sleep.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <string>
#include <type_traits>
#include <vector>

#include "caf/all.hpp"

#include "bench_common.hpp"
#include "caf_harness.hpp"
#include "savina_common.hpp"

namespace {

namespace bench = troupe::bench;
using bench::caf_side::await_done;
using bench::caf_side::default_constructed_state;
using bench::caf_side::done_atom;
using bench::caf_side::start_atom;
using bench::caf_side::stop_atom;
using bench::caf_side::watchdog;
using bench::caf_side::with_system;
using std::int64_t;

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using continue_atom = caf::atom_constant<caf::atom("continue")>;
using result_atom = caf::atom_constant<caf::atom("result")>;
using next_atom = caf::atom_constant<caf::atom("next")>;
using token_atom = caf::atom_constant<caf::atom("token")>;
using meet_atom = caf::atom_constant<caf::atom("meet")>;
using change_atom = caf::atom_constant<caf::atom("change")>;
using count_atom = caf::atom_constant<caf::atom("count")>;
using wake_atom = caf::atom_constant<caf::atom("wake")>;

// --- ping_pong, ping_pong_pairs ----------------------------------------------

// Replies to every ping with a tell back to the sender (not a request/response).
caf::behavior pong_actor(caf::event_based_actor* self) {
  return {
      [=](ping_atom, int64_t n) {
        self->send(caf::actor_cast<caf::actor>(self->current_sender()), pong_atom::value, n);
      },
      [=](stop_atom) { self->quit(); },
  };
}

// Sends ping 1..roundtrips, each after the previous pong, then reports.
caf::behavior ping_actor(caf::event_based_actor* self, const caf::actor& pong, int64_t roundtrips,
                         const caf::actor& report_to) {
  return {
      [=](start_atom) { self->send(pong, ping_atom::value, int64_t{1}); },
      [=](pong_atom, int64_t n) {
        if (n < roundtrips) {
          self->send(pong, ping_atom::value, n + 1);
          return;
        }
        self->send(report_to, done_atom::value, n);
        self->send(pong, stop_atom::value);
        self->quit();
      },
  };
}

double run_ping_pong(unsigned threads, int64_t pairs, int64_t total_roundtrips, const char* workload) {
  return with_system(threads, [&](caf::actor_system& system) {
    int64_t per_pair = total_roundtrips / pairs;
    caf::scoped_actor self{system};
    std::vector<caf::actor> pings;
    pings.reserve(static_cast<size_t>(pairs));
    for (int64_t i = 0; i < pairs; ++i) {
      auto pong = system.spawn(pong_actor);
      pings.push_back(system.spawn(ping_actor, pong, per_pair, caf::actor_cast<caf::actor>(self)));
    }
    bench::stopwatch clock;
    for (auto& ping : pings) self->send(ping, start_atom::value);
    int64_t roundtrips = 0;
    for (int64_t i = 0; i < pairs; ++i) roundtrips += await_done(self, workload);
    double seconds = clock.seconds();
    bench::require(roundtrips == per_pair * pairs, std::string(workload) + ": wrong number of round trips");
    return static_cast<double>(roundtrips) / seconds;
  });
}

// --- fan_in (CAF's mailbox_performance) --------------------------------------

struct fan_in_sender_state {
  int64_t remaining = 0;
};

// Sends `chunk` integers per activation, then re-tells itself to continue.
caf::behavior fan_in_sender(caf::stateful_actor<fan_in_sender_state>* self, const caf::actor& receiver,
                            int64_t messages, int64_t chunk) {
  self->state.remaining = messages;
  return {
      [=](continue_atom) {
        auto& remaining = self->state.remaining;
        int64_t n = std::min(chunk, remaining);
        for (int64_t i = 0; i < n; ++i) self->send(receiver, remaining - i);
        remaining -= n;
        if (remaining > 0)
          self->send(self, continue_atom::value);
        else
          self->quit();
      },
  };
}

struct fan_in_receiver_state {
  int64_t received = 0;
};

caf::behavior fan_in_receiver(caf::stateful_actor<fan_in_receiver_state>* self, int64_t expected,
                              const caf::actor& report_to) {
  return {
      [=](int64_t) {
        if (++self->state.received == expected) {
          self->send(report_to, done_atom::value, self->state.received);
          self->quit();
        }
      },
  };
}

double run_fan_in(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](caf::actor_system& system) {
    int64_t expected = p.fan_in_senders * p.fan_in_messages_per_sender;
    caf::scoped_actor self{system};
    auto receiver = system.spawn(fan_in_receiver, expected, caf::actor_cast<caf::actor>(self));
    std::vector<caf::actor> senders;
    for (int64_t i = 0; i < p.fan_in_senders; ++i)
      senders.push_back(system.spawn(fan_in_sender, receiver, p.fan_in_messages_per_sender, p.fan_in_chunk));
    bench::stopwatch clock;
    for (auto& sender : senders) self->send(sender, continue_atom::value);
    int64_t received = await_done(self, "fan_in");
    double seconds = clock.seconds();
    bench::require(received == expected, "fan_in: wrong number of messages");
    return static_cast<double>(received) / seconds;
  });
}

// --- actor_creation ------------------------------------------------------------

struct tree_node_state {
  int64_t subtree_size = 1;  // this actor
  int pending = 2;           // children that have not reported yet
};

// A node at depth > 0 spawns two children of depth - 1 and reports
// 1 + their subtree sizes to its parent; a leaf reports 1. Then it stops.
caf::behavior tree_node(caf::stateful_actor<tree_node_state>* self, const caf::actor& parent, int depth) {
  if (depth == 0) {
    self->send(parent, result_atom::value, int64_t{1});
    self->quit();
    return {};
  }
  auto me = caf::actor_cast<caf::actor>(self);
  self->spawn(tree_node, me, depth - 1);
  self->spawn(tree_node, me, depth - 1);
  return {
      [=](result_atom, int64_t size) {
        auto& state = self->state;
        state.subtree_size += size;
        if (--state.pending == 0) {
          self->send(parent, result_atom::value, state.subtree_size);
          self->quit();
        }
      },
  };
}

double run_actor_creation(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    bench::stopwatch clock;
    system.spawn(tree_node, caf::actor_cast<caf::actor>(self), p.actor_creation_depth);
    int64_t total = -1;
    self->receive([&](result_atom, int64_t size) { total = size; },
                  caf::after(watchdog) >> [] { bench::fail("actor_creation: watchdog expired"); });
    double seconds = clock.seconds();
    bench::require(total == p.actor_creation_total(), "actor_creation: tree total " + std::to_string(total) +
                                                          ", expected " + std::to_string(p.actor_creation_total()));
    return static_cast<double>(total) / seconds;
  });
}

// --- thread_ring ---------------------------------------------------------------

struct ring_member_state {
  caf::actor next;
};
static_assert(default_constructed_state<ring_member_state>);

// Forwards the token, decremented, to the next member; the member that
// receives 0 reports. Each forward is one hop.
caf::behavior ring_member(caf::stateful_actor<ring_member_state>* self, const caf::actor& report_to) {
  return {
      [=](next_atom, caf::actor& next) { self->state.next = std::move(next); },
      [=](token_atom, int64_t remaining) {
        if (remaining == 0)
          self->send(report_to, done_atom::value, int64_t{0});
        else
          self->send(self->state.next, token_atom::value, remaining - 1);
      },
  };
}

double run_thread_ring(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    std::vector<caf::actor> ring;
    for (int64_t i = 0; i < p.thread_ring_actors; ++i)
      ring.push_back(system.spawn(ring_member, caf::actor_cast<caf::actor>(self)));
    // Each member's "next" is in its mailbox before any token can reach it:
    // these sends complete before the token is sent below.
    for (size_t i = 0; i < ring.size(); ++i) self->send(ring[i], next_atom::value, ring[(i + 1) % ring.size()]);
    bench::stopwatch clock;
    self->send(ring.front(), token_atom::value, p.thread_ring_hops);
    await_done(self, "thread_ring");
    double seconds = clock.seconds();
    // The members reference each other in a cycle, so they never become
    // unreachable: stop them explicitly (untimed).
    for (auto& member : ring) caf::anon_send_exit(member, caf::exit_reason::user_shutdown);
    return static_cast<double>(p.thread_ring_hops) / seconds;
  });
}

// --- fork_join (Savina fjthrput) -------------------------------------------------

struct fork_join_worker_state {
  int64_t received = 0;
  double sum = 0;
};

caf::behavior fork_join_worker(caf::stateful_actor<fork_join_worker_state>* self, int64_t expected,
                               const caf::actor& report_to) {
  return {
      [=](double x) {
        auto& state = self->state;
        state.sum += bench::fork_join_compute(x);
        if (++state.received == expected) {
          // Each computation yields 1.0 (sin^2 + cos^2); check it was done.
          bench::require(std::fabs(state.sum - static_cast<double>(expected)) < 1e-6 * static_cast<double>(expected),
                         "fork_join: wrong computation result");
          self->send(report_to, done_atom::value, state.received);
          self->quit();
        }
      },
  };
}

double run_fork_join(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    std::vector<caf::actor> workers;
    for (int64_t i = 0; i < p.fork_join_actors; ++i)
      workers.push_back(
          system.spawn(fork_join_worker, p.fork_join_messages_per_actor, caf::actor_cast<caf::actor>(self)));
    bench::stopwatch clock;
    // As in Savina, the main thread sends message i to every worker in turn.
    for (int64_t i = 0; i < p.fork_join_messages_per_actor; ++i)
      for (auto& worker : workers) self->send(worker, static_cast<double>(i));
    int64_t received = 0;
    for (int64_t i = 0; i < p.fork_join_actors; ++i) received += await_done(self, "fork_join");
    double seconds = clock.seconds();
    bench::require(received == p.fork_join_actors * p.fork_join_messages_per_actor,
                   "fork_join: wrong number of messages");
    return static_cast<double>(received) / seconds;
  });
}

// --- chameneos (Savina) ------------------------------------------------------------
//
// Per meeting: both chameneos tell the mall (meet, colour, self); the mall
// forwards the second one's request to the first; the first takes the
// complement colour and tells the second (change, new colour). Four messages.

enum color : int { red = 0, yellow = 1, blue = 2 };

int complement(int mine, int other) {
  return mine == other ? mine : 3 - mine - other;  // the third colour
}

struct chameneo_state {
  int color = red;
  int64_t meetings = 0;
};

caf::behavior chameneo(caf::stateful_actor<chameneo_state>* self, const caf::actor& mall, int initial) {
  self->state.color = initial;
  auto me = caf::actor_cast<caf::actor>(self);
  self->send(mall, meet_atom::value, initial, me);
  return {
      // The mall paired us with `other`, which is waiting for our colour.
      [=](meet_atom, int other_color, const caf::actor& other) {
        auto& state = self->state;
        state.color = complement(state.color, other_color);
        ++state.meetings;
        self->send(other, change_atom::value, state.color);
        self->send(mall, meet_atom::value, state.color, me);
      },
      [=](change_atom, int new_color) {
        auto& state = self->state;
        state.color = new_color;
        ++state.meetings;
        self->send(mall, meet_atom::value, state.color, me);
      },
      [=](stop_atom) {
        self->send(mall, count_atom::value, self->state.meetings);
        self->quit();
      },
  };
}

struct mall_state {
  caf::actor waiting;
  int64_t meetings_left = 0;
  int64_t stopped = 0;
  int64_t meetings_counted = 0;
};
static_assert(default_constructed_state<mall_state>);

caf::behavior mall(caf::stateful_actor<mall_state>* self, int64_t meetings, int64_t chameneos,
                   const caf::actor& report_to) {
  self->state.meetings_left = meetings;
  return {
      [=](start_atom) {
        auto me = caf::actor_cast<caf::actor>(self);
        for (int64_t i = 0; i < chameneos; ++i) self->spawn(chameneo, me, static_cast<int>(i % 3));
      },
      [=](meet_atom, int color, caf::actor& visitor) {
        auto& state = self->state;
        if (state.meetings_left == 0) {
          self->send(visitor, stop_atom::value);
        } else if (!state.waiting) {
          state.waiting = std::move(visitor);
        } else {
          --state.meetings_left;
          self->send(state.waiting, meet_atom::value, color, std::move(visitor));
          state.waiting = nullptr;
        }
      },
      [=](count_atom, int64_t count) {
        auto& state = self->state;
        state.meetings_counted += count;
        if (++state.stopped == chameneos) {
          // Both partners count a meeting.
          self->send(report_to, done_atom::value, state.meetings_counted / 2);
          bench::require(state.meetings_counted == 2 * meetings,
                         "chameneos: the chameneos counted " + std::to_string(state.meetings_counted) +
                             " meetings, expected " + std::to_string(2 * meetings));
          self->quit();
        }
      },
  };
}

double run_chameneos(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto the_mall = system.spawn(mall, p.chameneos_meetings, p.chameneos_count, caf::actor_cast<caf::actor>(self));
    bench::stopwatch clock;
    self->send(the_mall, start_atom::value);
    int64_t meetings = await_done(self, "chameneos");
    double seconds = clock.seconds();
    bench::require(meetings == p.chameneos_meetings, "chameneos: wrong number of meetings");
    return static_cast<double>(meetings) / seconds;
  });
}

// --- idle_actor_memory ---------------------------------------------------------------

struct idle_counter {
  std::atomic<int64_t> initialized{0};
  int64_t expected = 0;
  std::promise<void> all_initialized;
};

// Waits for a message that never comes; counts its initialization so the
// measurement waits until every actor has its behavior installed.
caf::behavior idle_actor(caf::event_based_actor*, idle_counter* counter) {
  // acq_rel: the last incrementer sees all earlier ones before it sets the
  // promise; the promise itself publishes to the waiting main thread.
  if (counter->initialized.fetch_add(1, std::memory_order_acq_rel) + 1 == counter->expected)
    counter->all_initialized.set_value();
  return {
      [](wake_atom) {},
  };
}

double run_idle_actor_memory(unsigned threads, const bench::params& p) {
  // A fresh process per repetition: see bench::run_in_child_process.
  return bench::run_in_child_process([&] {
    caf::actor_system_config config;
    config.set("scheduler.max-threads", static_cast<size_t>(threads));
    caf::actor_system system{config};
    idle_counter counter;
    counter.expected = p.idle_actors;
    auto initialized = counter.all_initialized.get_future();
    // Built (and its pages touched) before the first reading, so the handles
    // the benchmark keeps are not charged to the actors.
    std::vector<caf::actor> actors(static_cast<size_t>(p.idle_actors));
    int64_t before = bench::resident_bytes();
    for (auto& actor : actors) actor = system.spawn(idle_actor, &counter);
    bench::require(initialized.wait_for(watchdog) == std::future_status::ready, "idle_actor_memory: watchdog expired");
    int64_t after = bench::resident_bytes();
    return static_cast<double>(after - before) / static_cast<double>(p.idle_actors);
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = bench::parse_options(argc, argv);
  auto p = bench::params::for_options(opts);
  auto threads = opts.threads;
  std::fprintf(stderr, "caf_workloads: CAF %d.%d.%d, %u worker threads, %d reps, %s parameters\n", CAF_MAJOR_VERSION,
               CAF_MINOR_VERSION, CAF_PATCH_VERSION, threads, opts.reps, opts.quick ? "quick" : "full");
  if (opts.selected("ping_pong"))
    bench::run_reps("ping_pong", "roundtrips/s", opts.reps,
                    [&] { return run_ping_pong(threads, 1, p.ping_pong_roundtrips, "ping_pong"); });
  // CAF 0.17 has no bounded mailboxes: its baseline for ping_pong_bounded is the
  // same (unbounded) ping-pong.
  if (opts.selected("ping_pong_bounded"))
    bench::run_reps("ping_pong_bounded", "roundtrips/s", opts.reps,
                    [&] { return run_ping_pong(threads, 1, p.ping_pong_roundtrips, "ping_pong_bounded"); });
  if (opts.selected("ping_pong_pairs"))
    bench::run_reps("ping_pong_pairs", "roundtrips/s", opts.reps, [&] {
      return run_ping_pong(threads, p.ping_pong_pairs, p.ping_pong_pairs_roundtrips, "ping_pong_pairs");
    });
  if (opts.selected("fan_in")) bench::run_reps("fan_in", "msgs/s", opts.reps, [&] { return run_fan_in(threads, p); });
  if (opts.selected("actor_creation"))
    bench::run_reps("actor_creation", "actors/s", opts.reps, [&] { return run_actor_creation(threads, p); });
  if (opts.selected("thread_ring"))
    bench::run_reps("thread_ring", "msgs/s", opts.reps, [&] { return run_thread_ring(threads, p); });
  if (opts.selected("fork_join"))
    bench::run_reps("fork_join", "msgs/s", opts.reps, [&] { return run_fork_join(threads, p); });
  if (opts.selected("chameneos"))
    bench::run_reps("chameneos", "meetings/s", opts.reps, [&] { return run_chameneos(threads, p); });
  bench::run_savina_workloads(opts);
  if (opts.selected("idle_actor_memory"))
    bench::run_reps("idle_actor_memory", "bytes/actor", opts.reps, [&] { return run_idle_actor_memory(threads, p); });
  return 0;
}
