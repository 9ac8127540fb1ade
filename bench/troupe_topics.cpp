// troupe_topics — the topic_* workloads of bench/WORKLOADS.md on troupe's
// topics (troupe/net/topic.hpp), the program bench/compare runs beside
// caf_topics (CAF 0.17's local groups; same parameters, same CSV contract).
//
//   troupe_topics [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//
// One publisher actor and S subscriber actors in one process: the publisher
// publishes N messages on a topic, a chunk per activation (it re-tells itself
// to go on, as fan_in's senders do); every subscriber counts to N and reports.
// Topics belong to a node, so each repetition gets a fresh troupe::node (a
// system with a name; no peer ever connects); its start-up, the spawning and
// subscribing, and its shutdown are outside the timed region. Completion is
// S "done" messages received by a scoped inbox with a watchdog deadline.
#include <unistd.h>

#include <cstdint>
#include <string>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "topic_common.hpp"
#include "troupe_harness.hpp"

namespace {

namespace bench = troupe::bench;
namespace topic = troupe::bench::topic;
using std::int64_t;

// topic_fan_out: 16 trivially copyable bytes, copied into each subscriber's envelope.
struct value_tick {
  int64_t seq = 0;
  int64_t value = 0;
};
// topic_fan_out_text: holds a string, so one payload is shared by every subscriber.
struct text_tick {
  std::string text;
  int64_t seq = 0;
};

value_tick make_tick(value_tick*, int64_t seq) { return value_tick{seq, seq}; }
text_tick make_tick(text_tick*, int64_t seq) { return text_tick{topic::text_payload(), seq}; }

struct keep_going {};
using publisher_protocol = troupe::protocol<keep_going>;

template <class M>
struct publisher_actor : troupe::actor<publisher_protocol> {
  publisher_actor(troupe::topic<M> t, int64_t n, int64_t c) : channel(std::move(t)), remaining(n), chunk(c) {}
  troupe::topic<M> channel;
  int64_t remaining;
  int64_t chunk;
  int64_t next = 0;
  void on(keep_going) {
    const int64_t n = std::min(chunk, remaining);
    for (int64_t i = 0; i < n; ++i) (void)channel.publish(make_tick(static_cast<M*>(nullptr), next++));
    remaining -= n;
    if (remaining > 0) {
      self().tell(keep_going{});
    } else {
      stop();
    }
  }
};

template <class M>
struct subscriber_actor : troupe::actor<troupe::protocol<M>> {
  subscriber_actor(int64_t n, troupe::ref<bench::report> r) : expected(n), report_to(std::move(r)) {}
  int64_t expected;
  troupe::ref<bench::report> report_to;
  int64_t received = 0;
  int64_t out_of_order = 0;
  // const M&: the shared payload is read in place (what a subscriber that only reads does).
  void on(const M& m) {
    out_of_order += m.seq == received ? 0 : 1;
    if (++received == expected) report_to.tell(bench::done{out_of_order == 0 ? received : -1});
  }
};

template <class M>
double run_fan_out(unsigned threads, const topic::params& p, const char* workload, int rep) {
  troupe::node_config cfg;
  cfg.name = "bench-topics-" + std::to_string(::getpid()) + "-" + std::to_string(rep);
  cfg.system.worker_threads = threads;
  troupe::node n(cfg);
  bench::require(n.worker_count() == threads, "troupe did not start the requested workers");
  double result = 0;
  {
    bench::inbox in{n};
    auto channel = n.topic<M>("fan-out");
    for (int64_t i = 0; i < p.subscribers; ++i) {
      const auto subscribed = channel.subscribe(n.spawn<subscriber_actor<M>>(p.publications, in.self()));
      bench::require(static_cast<bool>(subscribed), std::string(workload) + ": subscribe failed");
    }
    auto publisher = n.spawn<publisher_actor<M>>(channel, p.publications, p.chunk);
    bench::stopwatch clock;
    publisher.tell(keep_going{});
    int64_t deliveries = 0;
    for (int64_t i = 0; i < p.subscribers; ++i) {
      const int64_t got = bench::await_done(in, workload);
      bench::require(got == p.publications, std::string(workload) + ": a subscriber got messages out of order");
      deliveries += got;
    }
    result = static_cast<double>(deliveries) / clock.seconds();
    const troupe::topic_stats s = channel.stats();
    bench::require(s.dropped == 0 && s.delivered == static_cast<std::uint64_t>(p.deliveries()),
                   std::string(workload) + ": the topic's counters do not match the deliveries");
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const auto opts = topic::parse_options(argc, argv);
  const topic::params p = topic::parameters_for(opts);
  for (topic::workload w : topic::all_workloads) {
    if (!opts.selected(topic::name_of(w))) continue;
    const std::string name(topic::name_of(w));
    int rep = 0;
    bench::run_reps(name, topic::unit, opts.reps, [&] {
      ++rep;
      return w == topic::workload::fan_out ? run_fan_out<value_tick>(opts.threads, p, name.c_str(), rep)
                                           : run_fan_out<text_tick>(opts.threads, p, name.c_str(), rep);
    });
  }
  return 0;
}
