// caf_topics — the topic_* workloads of bench/WORKLOADS.md on CAF 0.17's
// groups: local ones (caf::group from system.groups().get_local(...)) in one
// process, remote ones (the middleman's publish_local_groups / remote_group)
// across processes; the baseline troupe_topics is compared against (see
// bench/compare).
//
//   caf_topics [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// Written as CAF's own examples use groups: function-based stateful actors that
// join() the group, and a publisher that send()s to it, a chunk per activation
// (re-sending itself a continue atom, as fan_in's senders do). CAF messages are
// copy-on-write, so a group's subscribers share one message. Each repetition
// gets a fresh actor_system; its start-up, the spawning and joining (every
// subscriber reports that it joined before the clock starts), and its shutdown
// are outside the timed region. Completion is S "done" messages received by a
// scoped_actor with a watchdog deadline.
//
// Across processes (topic_fan_out_tcp; topic_fan_out_shm runs the same, since
// CAF 0.17 has no shared-memory transport): main() starts 3 children (fork and
// exec of this executable, topic::start_child) before any actor system exists,
// then builds its own with the middleman, publishes its local groups on
// 127.0.0.1 (port 0) and sends each child the port through a pipe. Each child builds an actor system, looks the group up with
// middleman().remote_group("fan-out", "127.0.0.1", port) — CAF 0.17's remote
// group: the child's proxy joins the host's group once, and the host sends one
// copy per subscribing node — and spawns an aggregator and 100 subscribers
// that join it. CAF does not say when a remote join has reached the host, so
// main() probes: it sends (probe, itself) to the group every 10 ms until every
// node's aggregator answers that all its subscribers saw one (untimed; the
// probe also carries main()'s handle, so the children report over the same
// connection). Then main()'s thread (a scoped_actor) sends N ticks to the group
// and the clock stops when the 3 aggregators have reported. Failures kill and
// reap the children before the exit; every wait has a deadline, and an alarm()
// watchdog backs them up.
#include <fcntl.h>
#include <malloc.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "caf/all.hpp"
#include "caf/io/all.hpp"

#include "bench_common.hpp"
#include "caf_harness.hpp"
#include "topic_common.hpp"

namespace {

namespace bench = troupe::bench;
namespace topic = troupe::bench::topic;
using bench::caf_side::await_done;
using bench::caf_side::done_atom;
using bench::caf_side::start_atom;
using bench::caf_side::with_system;
using std::int64_t;

using continue_atom = caf::atom_constant<caf::atom("continue")>;
using joined_atom = caf::atom_constant<caf::atom("joined")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

struct publisher_state {
  int64_t remaining = 0;
  int64_t next = 0;
};

// Publishes `messages` ticks to the group, `chunk` per activation.
caf::behavior publisher(caf::stateful_actor<publisher_state>* self, const caf::group& channel, int64_t messages,
                        int64_t chunk, bool text) {
  self->state.remaining = messages;
  return {
      [=](continue_atom) {
        auto& s = self->state;
        const int64_t n = std::min(chunk, s.remaining);
        for (int64_t i = 0; i < n; ++i) {
          const int64_t seq = s.next++;
          if (text) {
            self->send(channel, tick_atom::value, topic::text_payload(), seq);
          } else {
            self->send(channel, tick_atom::value, seq, seq);
          }
        }
        s.remaining -= n;
        if (s.remaining > 0) {
          self->send(self, continue_atom::value);
        } else {
          self->quit();
        }
      },
  };
}

struct subscriber_state {
  int64_t received = 0;
  int64_t out_of_order = 0;
};

// Joins the group, tells `report_to` so, counts to `expected`, reports and quits.
caf::behavior subscriber(caf::stateful_actor<subscriber_state>* self, const caf::group& channel, int64_t expected,
                         const caf::actor& report_to) {
  self->join(channel);
  self->send(report_to, joined_atom::value);
  auto count = [=](int64_t seq) {
    auto& s = self->state;
    s.out_of_order += seq == s.received ? 0 : 1;
    if (++s.received == expected) {
      self->send(report_to, done_atom::value, s.out_of_order == 0 ? s.received : -1);
      self->quit();  // the actor_system's destructor waits for every actor
    }
  };
  return {
      [=](tick_atom, int64_t seq, int64_t) { count(seq); },
      [=](tick_atom, const std::string&, int64_t seq) { count(seq); },
  };
}

double run_fan_out(unsigned threads, const topic::params& p, bool text, const char* workload) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto channel = system.groups().get_local("fan-out");
    auto report_to = caf::actor_cast<caf::actor>(self);
    for (int64_t i = 0; i < p.subscribers; ++i) system.spawn(subscriber, channel, p.publications, report_to);
    for (int64_t i = 0; i < p.subscribers; ++i) {
      self->receive([](joined_atom) {},
                    caf::after(bench::caf_side::watchdog) >> [&] { bench::fail(std::string(workload) + ": join"); });
    }
    auto source = system.spawn(publisher, channel, p.publications, p.chunk, text);
    bench::stopwatch clock;
    self->send(source, continue_atom::value);
    int64_t deliveries = 0;
    for (int64_t i = 0; i < p.subscribers; ++i) {
      const int64_t got = await_done(self, workload);
      bench::require(got == p.publications, std::string(workload) + ": a subscriber got messages out of order");
      deliveries += got;
    }
    return static_cast<double>(deliveries) / clock.seconds();
  });
}

// --- across processes: CAF 0.17's remote groups over TCP ----------------------------

using probe_atom = caf::atom_constant<caf::atom("probe")>;
using seen_atom = caf::atom_constant<caf::atom("seen")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;

// A wait that takes longer than this has hung (a repetition takes about a second).
constexpr auto deadline = std::chrono::seconds(60);
constexpr unsigned watchdog_seconds = 120;

// argv[1] of a child that run_fan_out_nodes started (run_subscriber_process).
constexpr std::string_view child_flag = "--caf-topic-subscribers";

// The failure paths (topic_common.hpp): they end the process without the
// actor system's destructor, which would wait for actors that may never finish.
using topic::children;
using topic::fail;
using topic::fail_errno;
using topic::on_child_exit;
using topic::on_watchdog;
using topic::require;
using topic::set_handler;

// The actor_system keeps a reference to its config: the caller owns both.
void configure(caf::actor_system_config& config, unsigned threads) {
  config.load<caf::io::middleman>();
  config.set("scheduler.max-threads", static_cast<size_t>(threads));
}

struct node_subscriber_state {
  int64_t received = 0;
  int64_t out_of_order = 0;
  bool probed = false;
};

// Joins the (remote) group; tells the aggregator when it sees the first probe
// (passing on main()'s handle), counts ticks to `expected`, reports and quits.
caf::behavior node_subscriber(caf::stateful_actor<node_subscriber_state>* self, const caf::group& channel,
                              int64_t expected, const caf::actor& aggregator) {
  self->join(channel);
  return {
      [=](probe_atom, const caf::actor& collector) {
        if (self->state.probed) return;
        self->state.probed = true;
        self->send(aggregator, seen_atom::value, collector);
      },
      [=](tick_atom, int64_t seq, int64_t) {
        auto& s = self->state;
        s.out_of_order += seq == s.received ? 0 : 1;
        if (++s.received == expected) {
          self->send(aggregator, done_atom::value, s.out_of_order == 0 ? s.received : -1);
          self->quit();
        }
      },
  };
}

struct aggregator_state {
  int64_t seen = 0;
  int64_t reported = 0;
  int64_t deliveries = 0;
  int64_t failed = 0;
  caf::actor collector;  // main()'s scoped_actor, from the probe
};
static_assert(bench::caf_side::default_constructed_state<aggregator_state>);

// One per child: says (ready) when all its subscribers saw a probe, and
// (done, deliveries, failed) when all have counted to N.
caf::behavior aggregator(caf::stateful_actor<aggregator_state>* self, int64_t subscribers) {
  return {
      [=](seen_atom, const caf::actor& collector) {
        auto& s = self->state;
        s.collector = collector;
        if (++s.seen == subscribers) self->send(s.collector, ready_atom::value);
      },
      [=](done_atom, int64_t value) {
        auto& s = self->state;
        if (value < 0) {
          ++s.failed;
        } else {
          s.deliveries += value;
        }
        if (++s.reported == subscribers) {
          self->send(s.collector, done_atom::value, s.deliveries, s.failed);
          self->quit();
        }
      },
  };
}

// A child's whole life (this executable, started by topic::start_child() with
// child_flag): read the groups' port from main() on fd 3, join, serve until
// main() closes fd 4 (or dies: PR_SET_PDEATHSIG), exit.
// argv: <program> --caf-topic-subscribers THREADS S N
[[noreturn]] void run_subscriber_process(char** argv) {
  topic::role = "subscriber node";
  const auto threads = static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10));
  const int64_t subscribers = std::strtoll(argv[3], nullptr, 10);
  const int64_t publications = std::strtoll(argv[4], nullptr, 10);
  const int port_in = topic::child_channel_fd;
  const int stop_in = topic::child_stop_fd;
  set_handler(SIGPIPE, SIG_IGN);
  uint16_t port = 0;
  ssize_t got;
  while ((got = ::read(port_in, &port, sizeof port)) < 0 && errno == EINTR) {
  }
  if (got != static_cast<ssize_t>(sizeof port)) ::_exit(1);  // main() failed before publishing
  ::close(port_in);
  {
    caf::actor_system_config config;
    configure(config, threads);
    caf::actor_system system{config};
    auto channel = system.middleman().remote_group("fan-out", "127.0.0.1", port);
    if (!channel)
      fail("remote_group(fan-out@127.0.0.1:" + std::to_string(port) + "): " + system.render(channel.error()));
    auto collect = system.spawn(aggregator, subscribers);
    std::vector<caf::actor> members;
    for (int64_t i = 0; i < subscribers; ++i)
      members.push_back(system.spawn(node_subscriber, *channel, publications, collect));
    char byte;
    while ((got = ::read(stop_in, &byte, 1)) != 0) {
      if (got > 0) fail("unexpected data on the stop pipe");
      if (errno != EINTR) fail_errno("reading the stop pipe");
    }
    // The measurement is over: exit without the actor_system's destructor,
    // whose orderly shutdown is no part of what is measured. (With an orderly
    // shutdown here after main()'s system had gone, one repetition in about
    // 25 hung in the teardown until the watchdog.) The kernel closes the
    // connection.
    std::fflush(stderr);
    ::_exit(0);
  }
}

// One repetition of the cross-process rows; returns deliveries per second.
double run_fan_out_nodes(unsigned threads, const topic::params& p, const std::string& workload) {
  const auto nodes = static_cast<std::size_t>(p.nodes);
  require(nodes < topic::max_children, "too many child nodes");
  // The children are copies of this process: memory that earlier workloads
  // freed but that malloc keeps would be theirs too, shared copy-on-write, and
  // every page their allocator reuses would fault and be copied. Given back
  // to the kernel first, it costs them nothing (an earlier in-process row
  // otherwise slowed this one down several times).
  (void)::malloc_trim(0);
  int stop_pipe[2];
  if (::pipe2(stop_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
  set_handler(SIGCHLD, on_child_exit, SA_NOCLDSTOP);
  std::vector<int> port_out;
  for (std::size_t i = 0; i < nodes; ++i) {
    int port_pipe[2];
    if (::pipe2(port_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
    const pid_t child = topic::start_child({std::string(child_flag), std::to_string(threads),
                                            std::to_string(p.node_subscribers), std::to_string(p.node_publications)},
                                           port_pipe[0], stop_pipe[0]);
    if (child < 0) fail_errno("fork");
    children[i] = child;
    ::close(port_pipe[0]);
    port_out.push_back(port_pipe[1]);
  }
  ::close(stop_pipe[0]);

  double result = 0;
  {
    caf::actor_system_config config;
    configure(config, threads);
    caf::actor_system system{config};
    auto port = system.middleman().publish_local_groups(0, "127.0.0.1");
    if (!port) fail(workload + ": publish_local_groups: " + system.render(port.error()));
    const uint16_t bound = *port;
    for (int fd : port_out) {
      if (::write(fd, &bound, sizeof bound) != static_cast<ssize_t>(sizeof bound))
        fail_errno("writing the port to a child");
      ::close(fd);
    }
    caf::scoped_actor self{system};
    auto channel = system.groups().get_local("fan-out");
    const auto collector = caf::actor_cast<caf::actor>(self);
    // Untimed: probe until every node's subscribers are reached through the group.
    bench::stopwatch waiting;
    for (std::size_t ready = 0; ready < nodes;) {
      require(waiting.seconds() < static_cast<double>(deadline.count()),
              workload + ": the subscribers were not reached through the remote group");
      self->send(channel, probe_atom::value, collector);
      self->receive([&](ready_atom) { ++ready; }, caf::after(std::chrono::milliseconds(10)) >> [] {});
    }
    const int64_t n = p.node_publications;
    bench::stopwatch clock;
    for (int64_t i = 0; i < n; ++i) self->send(channel, tick_atom::value, i, i);
    int64_t deliveries = 0;
    for (std::size_t node = 0; node < nodes; ++node) {
      self->receive(
          [&](done_atom, int64_t got, int64_t failed) {
            require(failed == 0, workload + ": " + std::to_string(failed) + " subscribers got ticks out of order");
            require(got == p.node_subscribers * n,
                    workload + ": a node reports " + std::to_string(got) + " deliveries");
            deliveries += got;
          },
          caf::after(deadline) >> [&] { fail(workload + ": no report from the nodes within the deadline"); });
    }
    result = static_cast<double>(deliveries) / clock.seconds();
    // The children go first (they exit when the stop pipe closes), so that
    // main()'s actor system shuts down with no peer left to wait for.
    set_handler(SIGCHLD, SIG_DFL);
    ::close(stop_pipe[1]);
    for (pid_t& child : children) {
      if (child == 0) continue;
      int status = 0;
      while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) fail_errno("waitpid");
      }
      child = 0;
      require(WIFEXITED(status) && WEXITSTATUS(status) == 0, workload + ": a subscriber process failed");
    }
  }  // ~actor_system
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  topic::program_name = "caf_topics";
  if (argc == 5 && argv[1] == child_flag) run_subscriber_process(argv);
  const auto opts = topic::parse_options(argc, argv);
  const topic::params p = topic::parameters_for(opts);
  std::fprintf(stderr, "caf_topics: CAF %d.%d.%d, %u worker threads, %d reps, %s parameters\n", CAF_MAJOR_VERSION,
               CAF_MINOR_VERSION, CAF_PATCH_VERSION, opts.threads, opts.reps, opts.quick ? "quick" : "full");
  // A write to a closed socket must fail with EPIPE, not kill us silently.
  set_handler(SIGPIPE, SIG_IGN);
  set_handler(SIGALRM, on_watchdog);
  for (topic::workload w : topic::all_workloads) {
    if (!opts.selected(topic::name_of(w))) continue;
    const std::string name(topic::name_of(w));
    if (w == topic::workload::fan_out_shm)
      std::fprintf(stderr, "caf_topics: CAF 0.17 has no shared-memory transport; %s runs over TCP\n", name.c_str());
    bench::run_reps(name, topic::unit, opts.reps, [&] {
      ::alarm(watchdog_seconds);
      const double rate = topic::across_processes(w)
                              ? run_fan_out_nodes(opts.threads, p, name)
                              : run_fan_out(opts.threads, p, w == topic::workload::fan_out_text, name.c_str());
      ::alarm(0);
      return rate;
    });
  }
  return 0;
}
