// Reliable channels within one process (troupe/net/reliable.hpp), on the
// deterministic scheduler and its virtual clock, so every count is exact:
// order and exactly-once while both ends live, the window as flow control,
// redelivery after a consumer's restart, after the timeout and after a gap,
// hostile controller messages, work pulling, and a producer restarted on its store.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <vector>

#include "troupe/net/reliable.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

using namespace std::chrono_literals;

namespace {

struct job {
  std::int64_t n = 0;
};
using producer_ref = troupe::ref<troupe::producer_controller_protocol<job>>;
using consumer_ctl_ref = troupe::ref<troupe::consumer_controller_protocol<job>>;

// The producing actor: sends jobs 1..total as its demand allows.
struct source_state {
  std::int64_t total = 0;
  std::int64_t sent = 0;
  std::uint64_t demands = 0;
  std::uint64_t credit_seen = 0;  // the largest credit one demand gave
  bool ignore_demand = false;     // sends everything at once (a misbehaving producer)
  bool hold = false;              // takes note of demand, sends only on release
  bool batches = false;           // hands its jobs over with send_all()
};
struct release {};
using source_protocol = troupe::protocol<troupe::demand<job>, release>;
struct source : troupe::actor<source_protocol> {
  explicit source(source_state* s) : state(s) {}
  void on(const troupe::demand<job>& d) {
    out.update(d);
    ++state->demands;
    state->credit_seen = std::max(state->credit_seen, out.credit());
    if (state->ignore_demand) {
      while (state->sent < state->total) (void)d.send_to.tell(job{++state->sent});
      return;
    }
    if (!state->hold) send();
  }
  void on(release) { send(); }
  void send() {
    // A job carries the number the controller gives it (1, 2, ...; after a
    // restart on a store, on from the last one).
    if (state->batches) {
      std::vector<job> jobs;
      for (std::uint64_t i = 0; i < out.credit() && state->sent + static_cast<std::int64_t>(i) < state->total; ++i) {
        jobs.push_back(job{static_cast<std::int64_t>(out.next_id() + i)});
      }
      // One more than the credit, when there is more: send_all keeps it.
      const bool over =
          jobs.size() == out.credit() && state->sent + static_cast<std::int64_t>(jobs.size()) < state->total;
      if (over) jobs.push_back(job{-1});
      state->sent += static_cast<std::int64_t>(out.send_all(jobs));
      ASSERT_EQ(jobs.size(), over ? 1u : 0u);
      return;
    }
    while (out.credit() > 0 && state->sent < state->total) {
      ++state->sent;
      ASSERT_FALSE(out.send(job{static_cast<std::int64_t>(out.next_id())}));
    }
  }
  troupe::producer_window<job> out;
  source_state* state;
};

// The consuming actor: logs what it handles; may hold confirmations back, and
// may fail (once) on a given job.
struct sink_state {
  std::vector<std::int64_t> handled;
  std::vector<troupe::delivery<job>> held;  // not confirmed yet (confirm == false)
  std::int64_t fail_at = 0;                 // throws on this job, the first time only
  bool failed = false;
  bool confirm = true;
  std::uint64_t window = 1000;
  std::vector<consumer_ctl_ref> controllers;  // one per start
};
using sink_protocol = troupe::protocol<troupe::delivery<job>>;
struct sink : troupe::actor<sink_protocol> {
  sink(producer_ref p, sink_state* s) : from(std::move(p)), state(s) {}
  void on_start() {
    state->controllers.push_back(
        troupe::spawn_consumer<job>(system(), self(), from, troupe::consumer_options{state->window}));
  }
  void on(const troupe::delivery<job>& d) {
    state->handled.push_back(d.message.n);
    if (d.message.n == state->fail_at && !state->failed) {
      state->failed = true;
      throw std::runtime_error("job failed");
    }
    if (state->confirm) {
      (void)d.confirm();
    } else {
      state->held.push_back(d);
    }
  }
  producer_ref from;
  sink_state* state;
};

std::vector<std::int64_t> one_to(std::int64_t n) {
  std::vector<std::int64_t> all;
  for (std::int64_t i = 1; i <= n; ++i) all.push_back(i);
  return all;
}

// get() drives the deterministic system until the controller has answered.
troupe::producer_stats stats_of(const producer_ref& p) { return p.ask(troupe::producer_stats_request{}, 1s).get(); }
troupe::consumer_stats stats_of(const consumer_ctl_ref& c) { return c.ask(troupe::consumer_stats_request{}, 1s).get(); }

TEST(reliable_channel, a_consumer_gets_every_message_once_and_in_order) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 5000};
  sink_state consumed;
  consumed.window = 64;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 100, .buffer = 32});
  sys.spawn<sink>(out, &consumed);
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(5000));
  const troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.accepted, 5000u);
  EXPECT_EQ(p.confirmed, 5000u);
  EXPECT_EQ(p.unconfirmed + p.queued + p.redelivered + p.rejected, 0u);
  EXPECT_EQ(p.consumers, 1u);
  const troupe::consumer_stats c = stats_of(consumed.controllers.at(0));
  EXPECT_EQ(c.delivered, 5000u);
  EXPECT_EQ(c.confirmed, 5000u);
  EXPECT_EQ(c.duplicates + c.gaps + c.stale, 0u);
  // Demand came in steps of the buffer, not per message.
  EXPECT_LT(produced.demands, 5000u / 4);
  EXPECT_LE(produced.credit_seen, 32u);
}

TEST(reliable_channel, a_consumer_with_a_bounded_mailbox_gets_every_message_once_and_in_order_too) {
  // A bounded mailbox counts each message: its deliveries are told one by one
  // instead of queued as one chain per batch.
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 3000, .batches = true};
  sink_state consumed;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 1000, .buffer = 1000});
  sys.spawn<sink>(troupe::bounded{2000, troupe::overflow_policy::reject}, out, &consumed);
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(3000));
  const troupe::consumer_stats c = stats_of(consumed.controllers.at(0));
  EXPECT_EQ(c.delivered, 3000u);
  EXPECT_EQ(c.confirmed, 3000u);
  EXPECT_EQ(stats_of(out).confirmed, 3000u);
}

TEST(reliable_channel, a_producing_actor_may_hand_over_its_messages_in_batches_within_its_credit) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 3000, .batches = true};
  sink_state consumed;
  consumed.window = 50;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 100, .buffer = 64});
  sys.spawn<sink>(out, &consumed);
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(3000));
  const troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.accepted, 3000u);
  EXPECT_EQ(p.confirmed, 3000u);
  EXPECT_EQ(p.rejected, 0u);
}

TEST(reliable_channel, the_window_and_the_buffer_bound_what_the_producer_holds_and_demand_resumes_on_confirmation) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 100};
  sink_state consumed;
  consumed.confirm = false;
  consumed.window = 5;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 50, .buffer = 10});
  sys.spawn<sink>(out, &consumed);
  sys.run_until_idle();
  // The consumer's window (5, below the producer's 50) is in its hands; the buffer (10) waits.
  EXPECT_EQ(consumed.handled, one_to(5));
  EXPECT_EQ(produced.sent, 15);
  troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.unconfirmed, 5u);
  EXPECT_EQ(p.queued, 10u);
  EXPECT_EQ(p.rejected, 0u);

  // Confirming the first three opens the window by three: jobs 6..8 go out,
  // and the producing actor may send three more.
  (void)consumed.held.at(2).confirm();
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(8));
  EXPECT_EQ(produced.sent, 18);
  p = stats_of(out);
  EXPECT_EQ(p.confirmed, 3u);
  EXPECT_EQ(p.unconfirmed, 5u);
  EXPECT_EQ(p.queued, 10u);

  consumed.confirm = true;
  for (const auto& d : consumed.held) (void)d.confirm();
  consumed.held.clear();
  sys.run_until_idle();
  // The remaining held deliveries (4..8) were confirmed; the rest flows.
  EXPECT_EQ(consumed.handled, one_to(100));
  EXPECT_EQ(stats_of(out).confirmed, 100u);
}

TEST(reliable_channel, a_producing_actor_that_ignores_demand_is_refused_beyond_the_buffer) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 30, .ignore_demand = true};
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 5, .buffer = 10});
  sys.run_until_idle();  // no consumer yet: the buffer fills, the rest is refused
  troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.accepted, 10u);
  EXPECT_EQ(p.rejected, 20u);
  EXPECT_EQ(p.queued, 10u);
  sink_state consumed;
  sys.spawn<sink>(out, &consumed);
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(10));
}

TEST(reliable_channel, messages_taken_back_from_a_consumer_that_left_do_not_count_against_demand_already_given) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 100, .hold = true};
  auto from = sys.spawn<source>(&produced);
  auto out = troupe::spawn_producer<job>(sys, from, {.window = 8, .buffer = 8});
  sink_state first;
  first.confirm = false;
  auto doomed = sys.spawn<sink>(out, &first);
  sys.run_until_idle();
  from.tell(release{});  // 1..8 go to the consumer; a new demand (up to 16) arrives, held
  sys.run_until_idle();
  EXPECT_EQ(first.handled, one_to(8));
  sys.send_exit(doomed, troupe::exit_reason::killed());
  sys.run_until_idle();  // 1..8 come back and wait: the buffer is full of them
  from.tell(release{});  // 9..16: within the demand given before
  sys.run_until_idle();
  troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.rejected, 0u);
  EXPECT_EQ(p.accepted, 16u);
  EXPECT_EQ(p.queued, 16u);  // the buffer, and one consumer's window taken back
  produced.hold = false;
  sink_state second;
  sys.spawn<sink>(out, &second);
  sys.run_until_idle();
  EXPECT_EQ(second.handled, one_to(100));
  EXPECT_EQ(stats_of(out).rejected, 0u);
}

TEST(reliable_channel, a_consumer_restarted_by_its_supervisor_gets_its_unconfirmed_messages_again) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 400};
  sink_state consumed;
  consumed.window = 16;
  consumed.fail_at = 137;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 16, .buffer = 16});
  troupe::supervisor_spec spec;
  spec.log_events = false;
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sup.start_child<sink>("sink", out, &consumed);
  sys.run_until_idle();

  ASSERT_TRUE(consumed.failed);
  ASSERT_EQ(consumed.controllers.size(), 2u);  // one per start
  // Every job was handled, 137 twice at least (it failed), in order apart from
  // what came again; what came again is at most one window.
  std::set<std::int64_t> distinct(consumed.handled.begin(), consumed.handled.end());
  EXPECT_EQ(distinct.size(), 400u);
  EXPECT_EQ(*distinct.begin(), 1);
  EXPECT_EQ(*distinct.rbegin(), 400);
  const std::size_t duplicates = consumed.handled.size() - distinct.size();
  EXPECT_GE(duplicates, 1u);
  EXPECT_LE(duplicates, 16u);
  EXPECT_EQ(std::count(consumed.handled.begin(), consumed.handled.end(), 137), 2);
  const troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.confirmed, 400u);
  EXPECT_EQ(p.consumers, 1u);  // the old channel was replaced, not kept
  EXPECT_GE(p.requeued, 1u);
  // The old controller was ended by the producer; the new one lives.
  EXPECT_EQ(sys.live_actors(), 5u);  // source, producer controller, supervisor, sink, its controller
}

TEST(reliable_channel, a_consumer_that_stops_leaves_its_messages_to_the_next_consumer) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 50};
  sink_state first;
  first.confirm = false;
  first.window = 8;
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 8, .buffer = 8});
  auto doomed = sys.spawn<sink>(out, &first);
  sys.run_until_idle();
  EXPECT_EQ(first.handled, one_to(8));
  (void)first.held.at(2).confirm();  // 1..3 done
  sys.run_until_idle();
  EXPECT_EQ(first.handled, one_to(11));
  sys.send_exit(doomed, troupe::exit_reason::killed());
  sys.run_until_idle();
  EXPECT_EQ(stats_of(out).consumers, 0u);
  EXPECT_EQ(stats_of(out).requeued, 8u);  // 4..11

  sink_state second;
  sys.spawn<sink>(out, &second);
  sys.run_until_idle();
  std::vector<std::int64_t> expected;
  for (std::int64_t i = 4; i <= 50; ++i) expected.push_back(i);
  EXPECT_EQ(second.handled, expected);
  EXPECT_EQ(stats_of(out).confirmed, 50u);
}

// A stand-in consumer controller: it registers like the real one, and lets the
// test decide what it acknowledges (the producer side on its own).
struct fake_consumer_state {
  std::uint64_t channel = 0;
  std::vector<std::uint64_t> seqs;  // data received, in order
  std::vector<std::int64_t> jobs;
  std::vector<std::size_t> batches;  // the number of messages of each channel_data
};
struct fake_consumer : troupe::actor<troupe::consumer_controller_protocol<job>> {
  fake_consumer(producer_ref p, fake_consumer_state* s, std::uint64_t window) : producer(std::move(p)), state(s) {
    state->channel = troupe::detail::new_channel_id();
    producer.tell(troupe::channel_register<job>{self(), state->channel, window, 42});
  }
  void on(troupe::channel_data<job>&& d) {
    state->batches.push_back(d.messages.size());
    for (std::size_t i = 0; i < d.messages.size(); ++i) {
      state->seqs.push_back(d.seq + i);
      state->jobs.push_back(d.messages[i].n);
    }
  }
  void on(const troupe::channel_producer<job>&) {}
  void on(const troupe::channel_end&) {}
  void on(const troupe::channel_confirm&) {}
  void on(troupe::channel_flush) {}
  troupe::consumer_stats on(const troupe::consumer_stats_request&) { return {}; }
  producer_ref producer;
  fake_consumer_state* state;
};

TEST(reliable_channel, an_unacknowledged_message_is_sent_again_after_the_timeout_on_the_virtual_clock) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 3};
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.resend_after = 2s});
  fake_consumer_state fake;
  sys.spawn<fake_consumer>(out, &fake, 10);
  sys.run_until_idle();
  EXPECT_EQ(fake.seqs, (std::vector<std::uint64_t>{1, 2, 3}));
  sys.advance_time(1900ms);  // not yet
  EXPECT_EQ(fake.seqs.size(), 3u);
  sys.advance_time(100ms);  // 2 s without a confirmation: all three again, same seqs
  EXPECT_EQ(fake.seqs, (std::vector<std::uint64_t>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(fake.jobs, (std::vector<std::int64_t>{1, 2, 3, 1, 2, 3}));
  // Progress resets the clock: after confirming 1, only 2 and 3 come again, 2 s later.
  out.tell(troupe::channel_ack{fake.channel, 1, false});
  sys.run_until_idle();
  sys.advance_time(1999ms);
  EXPECT_EQ(fake.seqs.size(), 6u);
  sys.advance_time(1ms);
  EXPECT_EQ(fake.seqs, (std::vector<std::uint64_t>{1, 2, 3, 1, 2, 3, 2, 3}));
  // A request to resend (the consumer saw a gap) is answered at once.
  out.tell(troupe::channel_ack{fake.channel, 2, true});
  sys.run_until_idle();
  EXPECT_EQ(fake.seqs.back(), 3u);
  EXPECT_EQ(fake.seqs.size(), 9u);
  out.tell(troupe::channel_ack{fake.channel, 3, false});
  sys.run_until_idle();
  const troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.confirmed, 3u);
  EXPECT_EQ(p.redelivered, 6u);
  sys.advance_time(10s);  // nothing unconfirmed: nothing more, and no timer left
  EXPECT_EQ(fake.seqs.size(), 9u);
  EXPECT_EQ(sys.pending_timers(), 0u);
}

std::vector<std::uint64_t> seqs_from_to(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> all;
  for (std::uint64_t i = first; i <= last; ++i) all.push_back(i);
  return all;
}

// A producer whose producing actor hands all its jobs over at once, to a
// stand-in consumer whose window is the producer's.
producer_ref stream_to_fake(troupe::system& sys, source_state& produced, fake_consumer_state& fake,
                            std::uint64_t window, std::uint64_t buffer) {
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = window, .buffer = buffer});
  sys.spawn<fake_consumer>(out, &fake, window);
  sys.run_until_idle();
  return out;
}

TEST(reliable_channel, a_window_goes_out_in_batches_of_an_eighth_so_that_sending_overlaps_confirming) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 80, .batches = true};
  fake_consumer_state fake;
  const producer_ref out = stream_to_fake(sys, produced, fake, 80, 80);
  EXPECT_EQ(fake.seqs, seqs_from_to(1, 80));
  EXPECT_EQ(fake.batches, std::vector<std::size_t>(8, 10));
  // Sent again (the consumer saw a gap after 20): in the same batches.
  out.tell(troupe::channel_ack{fake.channel, 20, true});
  sys.run_until_idle();
  EXPECT_EQ(std::vector<std::uint64_t>(fake.seqs.begin() + 80, fake.seqs.end()), seqs_from_to(21, 80));
  EXPECT_EQ(fake.batches, std::vector<std::size_t>(8 + 6, 10));
}

TEST(reliable_channel, a_large_window_goes_out_in_batches_of_at_most_256_messages) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 3000, .batches = true};
  fake_consumer_state fake;
  (void)stream_to_fake(sys, produced, fake, 10000, 3000);
  EXPECT_EQ(fake.seqs, seqs_from_to(1, 3000));
  std::vector<std::size_t> expected(11, 256);
  expected.push_back(3000 - 11 * 256);
  EXPECT_EQ(fake.batches, expected);
}

TEST(reliable_channel, nonsense_acknowledgements_from_a_peer_change_nothing_but_a_counter) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 4};
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced));
  fake_consumer_state fake;
  sys.spawn<fake_consumer>(out, &fake, 10);
  sys.run_until_idle();
  ASSERT_EQ(fake.seqs.size(), 4u);
  out.tell(troupe::channel_ack{fake.channel, 5, false});                 // more than was sent
  out.tell(troupe::channel_ack{fake.channel + 1, 1, false});             // an unknown channel
  out.tell(troupe::channel_ack{fake.channel, UINT64_MAX, true});         // absurd
  out.tell(troupe::channel_register<job>{{}, 7, 10, 1});                 // no consumer
  out.tell(troupe::channel_register<job>{consumer_ctl_ref{}, 0, 0, 0});  // channel 0
  out.tell(troupe::channel_stale{fake.channel + 1});                     // unknown
  sys.run_until_idle();
  troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.ignored, 3u);
  EXPECT_EQ(p.confirmed, 0u);
  EXPECT_EQ(p.unconfirmed, 4u);
  EXPECT_EQ(p.consumers, 1u);
  out.tell(troupe::channel_ack{fake.channel, 4, false});
  sys.run_until_idle();
  EXPECT_EQ(stats_of(out).confirmed, 4u);
}

// A stand-in producer controller: takes the registration, then sends whatever
// data the test writes, and records the acknowledgements.
struct fake_producer_state {
  consumer_ctl_ref consumer;
  std::uint64_t channel = 0;
  std::uint64_t window = 0;
  std::vector<troupe::channel_ack> acks;
  std::vector<std::uint64_t> stale;
};
struct fake_producer : troupe::actor<troupe::producer_controller_protocol<job>> {
  explicit fake_producer(fake_producer_state* s) : state(s) {}
  void on(job) {}
  void on(troupe::channel_batch<job>&&) {}
  void on(const troupe::channel_register<job>& r) {
    state->consumer = r.consumer;
    state->channel = r.channel;
    state->window = r.window;
  }
  void on(const troupe::channel_ack& a) { state->acks.push_back(a); }
  void on(const troupe::channel_stale& s) { state->stale.push_back(s.channel); }
  void on(troupe::channel_tick) {}
  void on(troupe::channel_flush) {}
  void on(const troupe::channel_durable&) {}
  void on(const troupe::channel_forgotten&) {}
  troupe::producer_stats on(const troupe::producer_stats_request&) { return {}; }
  fake_producer_state* state;
};

TEST(reliable_channel, the_consumer_drops_duplicates_and_out_of_order_seqs_and_asks_again_after_a_gap) {
  troupe::system sys{troupe::config::deterministic()};
  fake_producer_state fake;
  auto producer = sys.spawn<fake_producer>(&fake);
  sink_state consumed;
  consumed.window = 8;
  sys.spawn<sink>(producer, &consumed);
  sys.run_until_idle();
  ASSERT_TRUE(fake.consumer);
  EXPECT_EQ(fake.window, 8u);
  const std::uint64_t ch = fake.channel;
  auto data = [&](std::uint64_t channel, std::uint64_t seq, std::int64_t n) {
    fake.consumer.tell(troupe::channel_data<job>{channel, seq, {job{n}}});
    sys.run_until_idle();
  };
  data(ch, 1, 1);
  data(ch, 1, 1);           // duplicate
  data(ch, 0, 99);          // seq 0: never valid -> ask again after 1
  data(ch, 3, 3);           // gap: 2 is missing; asked already
  data(ch, UINT64_MAX, 9);  // far beyond any window (and a batch that would wrap): another gap
  data(ch + 1, 2, 2);       // another channel
  data(ch, 2, 2);
  data(ch, 3, 3);
  // A batch that overlaps what was delivered: 3 is a duplicate, 4 and 5 are new.
  fake.consumer.tell(troupe::channel_data<job>{ch, 3, {job{3}, job{4}, job{5}}});
  fake.consumer.tell(troupe::channel_data<job>{ch, 6, {}});  // empty: nothing
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
  const troupe::consumer_stats c = stats_of(consumed.controllers.at(0));
  EXPECT_EQ(c.delivered, 5u);
  EXPECT_EQ(c.duplicates, 2u);
  EXPECT_EQ(c.gaps, 3u);
  EXPECT_EQ(c.stale, 1u);
  EXPECT_EQ(fake.stale, (std::vector<std::uint64_t>{ch + 1}));
  ASSERT_FALSE(fake.acks.empty());
  // The gap asked for a resend after what was confirmed; the last ack confirms all three.
  EXPECT_TRUE(std::any_of(fake.acks.begin(), fake.acks.end(),
                          [&](const troupe::channel_ack& a) { return a.resend && a.channel == ch; }));
  EXPECT_EQ(fake.acks.back().confirmed, 5u);
  EXPECT_FALSE(fake.acks.back().resend);
}

TEST(reliable_channel, work_pulling_spreads_messages_over_consumers_within_their_windows) {
  troupe::system sys{troupe::config::deterministic()};
  source_state produced{.total = 60};
  auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 10, .buffer = 20});
  sink_state a, b, c;
  a.window = 10;
  b.window = 4;
  c.window = 10;
  for (sink_state* s : {&a, &b, &c}) s->confirm = false;
  sys.spawn<sink>(out, &a);
  sys.spawn<sink>(out, &b);
  sys.spawn<sink>(out, &c);
  sys.run_until_idle();
  // Nobody confirms: each holds its window, the producer its buffer.
  EXPECT_EQ(a.handled.size(), 10u);
  EXPECT_EQ(b.handled.size(), 4u);
  EXPECT_EQ(c.handled.size(), 10u);
  EXPECT_EQ(produced.sent, 24 + 20);
  for (sink_state* s : {&a, &b, &c}) {
    s->confirm = true;
    for (const auto& d : s->held) (void)d.confirm();
    s->held.clear();
  }
  sys.run_until_idle();
  std::vector<std::int64_t> all;
  for (sink_state* s : {&a, &b, &c}) {
    EXPECT_TRUE(std::is_sorted(s->handled.begin(), s->handled.end()));  // each in order
    all.insert(all.end(), s->handled.begin(), s->handled.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, one_to(60));  // each exactly once
  const troupe::producer_stats p = stats_of(out);
  EXPECT_EQ(p.confirmed, 60u);
  EXPECT_EQ(p.consumers, 3u);
}

TEST(reliable_channel, a_producer_started_again_on_its_store_sends_the_unconfirmed_messages_and_numbers_on) {
  troupe::system sys{troupe::config::deterministic()};
  auto store = std::make_shared<troupe::memory_producer_store>();
  source_state produced{.total = 20};
  sink_state consumed;
  consumed.confirm = false;
  auto first =
      troupe::spawn_producer<job>(sys, sys.spawn<source>(&produced), {.window = 10, .buffer = 5, .store = store});
  sys.spawn<sink>(first, &consumed);
  sys.run_until_idle();
  EXPECT_EQ(consumed.handled, one_to(10));  // its window; 11..15 wait in the buffer
  (void)consumed.held.at(3).confirm();      // 1..4
  sys.run_until_idle();
  ASSERT_EQ(stats_of(first).confirmed, 4u);
  EXPECT_EQ(consumed.handled, one_to(14));
  EXPECT_EQ(produced.sent, 19);
  EXPECT_EQ(store->size(), 15u);  // 5..19: accepted, not confirmed
  sys.send_exit(first, troupe::exit_reason::killed());
  sys.run_until_idle();

  // A new controller on the same store: 5..19 again, then what the new
  // producing actor sends, numbered from 20.
  source_state more{.total = 100};
  auto second = troupe::spawn_producer<job>(sys, sys.spawn<source>(&more), {.window = 10, .buffer = 5, .store = store});
  sys.run_until_idle();
  EXPECT_EQ(more.sent, 0);  // the restored messages fill its buffer
  consumed.handled.clear();
  consumed.held.clear();
  consumed.confirm = true;
  consumed.controllers.at(0).tell(troupe::channel_producer<job>{second});
  sys.run_until_idle();
  std::vector<std::int64_t> expected;
  for (std::int64_t i = 5; i <= 119; ++i) expected.push_back(i);
  EXPECT_EQ(consumed.handled, expected);
  const troupe::producer_stats p = stats_of(second);
  EXPECT_EQ(p.accepted, 15u + 100u);
  EXPECT_EQ(p.confirmed, 15u + 100u);
  EXPECT_EQ(store->size(), 0u);
}

}  // namespace
