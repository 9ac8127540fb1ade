// caf_topics — the topic_* workloads of bench/WORKLOADS.md on CAF 0.17's local
// groups (caf::group from system.groups().get_local(...)), the baseline
// troupe_topics is compared against (see bench/compare).
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
#include <algorithm>
#include <cstdint>
#include <string>

#include "caf/all.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  const auto opts = topic::parse_options(argc, argv);
  const topic::params p = topic::parameters_for(opts);
  std::fprintf(stderr, "caf_topics: CAF %d.%d.%d, %u worker threads, %d reps, %s parameters\n", CAF_MAJOR_VERSION,
               CAF_MINOR_VERSION, CAF_PATCH_VERSION, opts.threads, opts.reps, opts.quick ? "quick" : "full");
  for (topic::workload w : topic::all_workloads) {
    if (!opts.selected(topic::name_of(w))) continue;
    const std::string name(topic::name_of(w));
    bench::run_reps(name, topic::unit, opts.reps,
                    [&] { return run_fan_out(opts.threads, p, w == topic::workload::fan_out_text, name.c_str()); });
  }
  return 0;
}
