// troupe_workloads — the actor workloads of bench/WORKLOADS.md on troupe, the
// program bench/compare runs beside caf_workloads (same parameters, same shapes,
// same CSV contract: `workload,unit,median,min,max`). This file holds
// ping_pong ... chameneos and idle_actor_memory; the Savina rows (counting ...
// logmap) are in troupe_savina*.cpp, and main() runs them all in WORKLOADS.md's order.
//
//   troupe_workloads [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//
// Written the way a troupe user writes actors: class-based actors with typed
// protocols and plain tell(). Each repetition gets a fresh troupe::system; its
// start-up, the spawning of actors that exist before the workload starts, and
// its shutdown are outside the timed region. Completion is a "done" message
// received by a scoped inbox with a watchdog deadline, never a sleep.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "savina_common.hpp"
#include "troupe_harness.hpp"

namespace {

namespace bench = troupe::bench;
using std::int64_t;

using bench::await_done;
using bench::done;
using bench::inbox;
using bench::report;
using bench::watchdog;
using bench::with_system;

// --- ping_pong, ping_pong_pairs ---------------------------------------------------

struct ping_msg {
  int64_t n;
};
struct pong_msg {
  int64_t n;
};
struct start {};
struct stop_msg {};
using ping_protocol = troupe::protocol<start, pong_msg>;
struct meet_ping {
  troupe::ref<ping_protocol> ping;
};
using pong_protocol = troupe::protocol<ping_msg, meet_ping, stop_msg>;

// Replies to every ping with a tell back to its ping actor.
struct pong_actor : troupe::actor<pong_protocol> {
  troupe::ref<ping_protocol> ping;
  void on(meet_ping m) { ping = std::move(m.ping); }
  void on(ping_msg m) { ping.tell(pong_msg{m.n}); }
  void on(stop_msg) { stop(); }
};

struct ping_actor : troupe::actor<ping_protocol> {
  ping_actor(troupe::ref<pong_protocol> p, int64_t n, troupe::ref<report> r)
      : pong(std::move(p)), roundtrips(n), report_to(std::move(r)) {}
  troupe::ref<pong_protocol> pong;
  int64_t roundtrips;
  troupe::ref<report> report_to;
  void on(start) { pong.tell(ping_msg{1}); }
  void on(pong_msg m) {
    if (m.n < roundtrips) {
      pong.tell(ping_msg{m.n + 1});
      return;
    }
    report_to.tell(done{m.n});
    pong.tell(stop_msg{});
    stop();
  }
};

// `bounded`: both actors get a bounded mailbox (capacity 1,000, reject) — the
// same workload, to show what the bound costs on the send path.
double run_ping_pong(unsigned threads, int64_t pairs, int64_t total_roundtrips, const char* workload,
                     bool bounded = false) {
  return with_system(threads, [&](troupe::system& sys) {
    const int64_t per_pair = total_roundtrips / pairs;
    inbox in{sys};
    std::vector<troupe::ref<ping_protocol>> pings;
    pings.reserve(static_cast<size_t>(pairs));
    const troupe::bounded bound{1000, troupe::overflow_policy::reject};
    for (int64_t i = 0; i < pairs; ++i) {
      auto pong = bounded ? sys.spawn<pong_actor>(bound) : sys.spawn<pong_actor>();
      auto ping = bounded ? sys.spawn<ping_actor>(bound, pong, per_pair, in.self())
                          : sys.spawn<ping_actor>(pong, per_pair, in.self());
      pong.tell(meet_ping{ping});
      pings.push_back(ping);
    }
    bench::stopwatch clock;
    for (auto& ping : pings) ping.tell(start{});
    int64_t roundtrips = 0;
    for (int64_t i = 0; i < pairs; ++i) roundtrips += await_done(in, workload);
    const double seconds = clock.seconds();
    bench::require(roundtrips == per_pair * pairs, std::string(workload) + ": wrong number of round trips");
    return static_cast<double>(roundtrips) / seconds;
  });
}

// --- fan_in ------------------------------------------------------------------------

struct item {
  int64_t value;
};
using receiver_protocol = troupe::protocol<item>;
struct keep_going {};
using sender_protocol = troupe::protocol<keep_going>;

struct fan_in_sender : troupe::actor<sender_protocol> {
  fan_in_sender(troupe::ref<receiver_protocol> r, int64_t messages, int64_t c)
      : receiver(std::move(r)), remaining(messages), chunk(c) {}
  troupe::ref<receiver_protocol> receiver;
  int64_t remaining;
  int64_t chunk;
  void on(keep_going) {
    const int64_t n = std::min(chunk, remaining);
    for (int64_t i = 0; i < n; ++i) receiver.tell(item{remaining - i});
    remaining -= n;
    if (remaining > 0) {
      self().tell(keep_going{});
    } else {
      stop();
    }
  }
};

struct fan_in_receiver : troupe::actor<receiver_protocol> {
  fan_in_receiver(int64_t e, troupe::ref<report> r) : expected(e), report_to(std::move(r)) {}
  int64_t expected;
  troupe::ref<report> report_to;
  int64_t received = 0;
  void on(item) {
    if (++received == expected) {
      report_to.tell(done{received});
      stop();
    }
  }
};

double run_fan_in(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](troupe::system& sys) {
    const int64_t expected = p.fan_in_senders * p.fan_in_messages_per_sender;
    inbox in{sys};
    auto receiver = sys.spawn<fan_in_receiver>(expected, in.self());
    std::vector<troupe::ref<sender_protocol>> senders;
    for (int64_t i = 0; i < p.fan_in_senders; ++i) {
      senders.push_back(sys.spawn<fan_in_sender>(receiver, p.fan_in_messages_per_sender, p.fan_in_chunk));
    }
    bench::stopwatch clock;
    for (auto& s : senders) s.tell(keep_going{});
    const int64_t received = await_done(in, "fan_in");
    const double seconds = clock.seconds();
    bench::require(received == expected, "fan_in: wrong number of messages");
    return static_cast<double>(received) / seconds;
  });
}

// --- actor_creation ---------------------------------------------------------------

struct subtree {
  int64_t size;
};
using tree_protocol = troupe::protocol<subtree>;
using parent_ref = troupe::ref<tree_protocol>;

// A node at depth > 0 spawns two children of depth - 1 and reports 1 + their
// subtree sizes to its parent; a leaf reports 1. Then it stops. The root's
// parent is the scoped inbox, which speaks the same protocol.
struct tree_node : troupe::actor<tree_protocol> {
  tree_node(parent_ref p, int d) : parent(std::move(p)), depth(d) {}
  parent_ref parent;
  int depth;
  int64_t size = 1;
  int pending = 2;
  void on_start() {
    if (depth == 0) {
      parent.tell(subtree{1});
      stop();
      return;
    }
    system().spawn<tree_node>(self(), depth - 1);
    system().spawn<tree_node>(self(), depth - 1);
  }
  void on(subtree s) {
    size += s.size;
    if (--pending == 0) {
      parent.tell(subtree{size});
      stop();
    }
  }
};

double run_actor_creation(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](troupe::system& sys) {
    troupe::scoped<tree_protocol> in{sys};
    bench::stopwatch clock;
    sys.spawn<tree_node>(in.self(), p.actor_creation_depth);
    auto total = in.receive<subtree>(watchdog);
    const double seconds = clock.seconds();
    bench::require(total.has_value() && total->size == p.actor_creation_total(), "actor_creation: wrong tree total");
    return static_cast<double>(total->size) / seconds;
  });
}

// --- thread_ring ----------------------------------------------------------------------

struct token {
  int64_t remaining;
};
using ring_protocol = troupe::protocol<token, struct set_next_msg>;
struct set_next_msg {
  troupe::ref<ring_protocol> next;
};

struct ring_member : troupe::actor<ring_protocol> {
  explicit ring_member(troupe::ref<report> r) : report_to(std::move(r)) {}
  troupe::ref<report> report_to;
  troupe::ref<ring_protocol> next;
  void on(set_next_msg m) { next = std::move(m.next); }
  void on(token t) {
    if (t.remaining == 0) {
      report_to.tell(done{0});
    } else {
      next.tell(token{t.remaining - 1});
    }
  }
};

double run_thread_ring(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    std::vector<troupe::ref<ring_protocol>> ring;
    for (int64_t i = 0; i < p.thread_ring_actors; ++i) ring.push_back(sys.spawn<ring_member>(in.self()));
    for (size_t i = 0; i < ring.size(); ++i) ring[i].tell(set_next_msg{ring[(i + 1) % ring.size()]});
    bench::stopwatch clock;
    ring.front().tell(token{p.thread_ring_hops});
    await_done(in, "thread_ring");
    const double seconds = clock.seconds();
    // The members reference each other in a cycle; the system's shutdown stops them.
    return static_cast<double>(p.thread_ring_hops) / seconds;
  });
}

// --- fork_join ------------------------------------------------------------------------

struct work {
  double x;
};
using worker_protocol = troupe::protocol<work>;

struct fork_join_worker : troupe::actor<worker_protocol> {
  fork_join_worker(int64_t e, troupe::ref<report> r) : expected(e), report_to(std::move(r)) {}
  int64_t expected;
  troupe::ref<report> report_to;
  int64_t received = 0;
  double sum = 0;
  void on(work w) {
    sum += bench::fork_join_compute(w.x);
    if (++received == expected) {
      bench::require(std::fabs(sum - static_cast<double>(expected)) < 1e-6 * static_cast<double>(expected),
                     "fork_join: wrong computation result");
      report_to.tell(done{received});
      stop();
    }
  }
};

double run_fork_join(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    std::vector<troupe::ref<worker_protocol>> workers;
    for (int64_t i = 0; i < p.fork_join_actors; ++i) {
      workers.push_back(sys.spawn<fork_join_worker>(p.fork_join_messages_per_actor, in.self()));
    }
    bench::stopwatch clock;
    for (int64_t i = 0; i < p.fork_join_messages_per_actor; ++i) {
      for (auto& w : workers) w.tell(work{static_cast<double>(i)});
    }
    int64_t received = 0;
    for (int64_t i = 0; i < p.fork_join_actors; ++i) received += await_done(in, "fork_join");
    const double seconds = clock.seconds();
    bench::require(received == p.fork_join_actors * p.fork_join_messages_per_actor,
                   "fork_join: wrong number of messages");
    return static_cast<double>(received) / seconds;
  });
}

// --- chameneos ------------------------------------------------------------------------
//
// Per meeting: both chameneos tell the mall (meet, colour, self); the mall
// forwards the second one's request to the first; the first takes the
// complement colour and tells the second (change, new colour). Four messages.

int complement(int mine, int other) { return mine == other ? mine : 3 - mine - other; }

struct change {
  int color;
};
struct stop_chameneo {};
using chameneo_protocol = troupe::protocol<struct paired, change, stop_chameneo>;
struct paired {
  int other_color;
  troupe::ref<chameneo_protocol> other;
};
struct visit {
  int color;
  troupe::ref<chameneo_protocol> visitor;
};
struct meetings_count {
  int64_t count;
};
struct open_mall {};
using mall_protocol = troupe::protocol<visit, meetings_count, open_mall>;

struct chameneo : troupe::actor<chameneo_protocol> {
  chameneo(troupe::ref<mall_protocol> m, int c) : mall(std::move(m)), color(c) {}
  troupe::ref<mall_protocol> mall;
  int color;
  int64_t meetings = 0;
  void on_start() { mall.tell(visit{color, self()}); }
  void on(const paired& p) {
    color = complement(color, p.other_color);
    ++meetings;
    p.other.tell(change{color});
    mall.tell(visit{color, self()});
  }
  void on(change c) {
    color = c.color;
    ++meetings;
    mall.tell(visit{color, self()});
  }
  void on(stop_chameneo) {
    mall.tell(meetings_count{meetings});
    stop();
  }
};

struct mall : troupe::actor<mall_protocol> {
  mall(int64_t m, int64_t c, troupe::ref<report> r)
      : meetings_left(m), meetings(m), chameneos(c), report_to(std::move(r)) {}
  int64_t meetings_left;
  int64_t meetings;
  int64_t chameneos;
  troupe::ref<report> report_to;
  troupe::ref<chameneo_protocol> waiting;
  int64_t stopped = 0;
  int64_t counted = 0;
  void on(open_mall) {
    for (int64_t i = 0; i < chameneos; ++i) system().spawn<chameneo>(self(), static_cast<int>(i % 3));
  }
  void on(visit v) {
    if (meetings_left == 0) {
      v.visitor.tell(stop_chameneo{});
    } else if (!waiting) {
      waiting = std::move(v.visitor);
    } else {
      --meetings_left;
      waiting.tell(paired{v.color, std::move(v.visitor)});
      waiting = {};
    }
  }
  void on(meetings_count c) {
    counted += c.count;
    if (++stopped == chameneos) {
      bench::require(counted == 2 * meetings, "chameneos: wrong number of meetings counted");
      report_to.tell(done{counted / 2});
      stop();
    }
  }
};

double run_chameneos(unsigned threads, const bench::params& p) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto the_mall = sys.spawn<mall>(p.chameneos_meetings, p.chameneos_count, in.self());
    bench::stopwatch clock;
    the_mall.tell(open_mall{});
    const int64_t meetings = await_done(in, "chameneos");
    const double seconds = clock.seconds();
    bench::require(meetings == p.chameneos_meetings, "chameneos: wrong number of meetings");
    return static_cast<double>(meetings) / seconds;
  });
}

// --- idle_actor_memory ----------------------------------------------------------------

struct wake {};
using idle_protocol = troupe::protocol<wake>;

struct idle_counter {
  std::atomic<int64_t> started{0};
  int64_t expected = 0;
  std::promise<void> all_started;
};

// Waits for a message that never comes; counts its start so the measurement
// waits until every actor has run its first activation.
struct idle_actor : troupe::actor<idle_protocol> {
  explicit idle_actor(idle_counter* c) : counter(c) {}
  idle_counter* counter;
  void on_start() {
    // acq_rel: the last incrementer sees all earlier ones before it sets the promise.
    if (counter->started.fetch_add(1, std::memory_order_acq_rel) + 1 == counter->expected) {
      counter->all_started.set_value();
    }
  }
  void on(wake) {}
};

double run_idle_actor_memory(unsigned threads, const bench::params& p) {
  return bench::run_in_child_process([&] {
    troupe::config cfg;
    cfg.worker_threads = threads;
    troupe::system sys{cfg};
    idle_counter counter;
    counter.expected = p.idle_actors;
    auto started = counter.all_started.get_future();
    std::vector<troupe::ref<idle_protocol>> actors(static_cast<size_t>(p.idle_actors));
    const int64_t before = bench::resident_bytes();
    for (auto& a : actors) a = sys.spawn<idle_actor>(&counter);
    bench::require(started.wait_for(watchdog) == std::future_status::ready, "idle_actor_memory: watchdog expired");
    const int64_t after = bench::resident_bytes();
    const double per_actor = static_cast<double>(after - before) / static_cast<double>(p.idle_actors);
    std::fflush(stderr);
    // _exit in run_in_child_process skips the orderly shutdown of a million actors.
    return per_actor;
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = bench::parse_options(argc, argv);
  auto p = bench::params::for_options(opts);
  auto threads = opts.threads;
  std::fprintf(stderr, "troupe_workloads: %u worker threads, %d reps, %s parameters\n", threads, opts.reps,
               opts.quick ? "quick" : "full");
  if (opts.selected("ping_pong"))
    bench::run_reps("ping_pong", "roundtrips/s", opts.reps,
                    [&] { return run_ping_pong(threads, 1, p.ping_pong_roundtrips, "ping_pong"); });
  if (opts.selected("ping_pong_bounded"))
    bench::run_reps("ping_pong_bounded", "roundtrips/s", opts.reps,
                    [&] { return run_ping_pong(threads, 1, p.ping_pong_roundtrips, "ping_pong_bounded", true); });
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
