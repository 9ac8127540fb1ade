// bridge_bench.hpp — what the bridge workloads of troupe_bridge_bench share
// (WORKLOADS.md, "Bridge workloads"): the JSON order both sides decode, the
// actor that does the troupe side's trivial work, and one entry point per
// broker, each in a file of its own compiled only when its bridge component
// is built (bridge_stomp_bench.cpp, bridge_kafka_bench.cpp,
// bridge_amqp_bench.cpp), called by troupe_bridge_bench.cpp's main().
// May use: troupe::bridge (bridge.hpp), bench_common.hpp, tests/runtime/countdown.hpp.
//
//   const std::string body = troupe::bench::bridge_bench::order_json(i);     // what the filler puts on the broker
//   auto o = troupe::bridge::json_codec<order>::decode(body);          // what the baseline does per message
//   auto handler = sys.spawn<troupe::bench::bridge_bench::order_counter>(n, &done);   // what troupe's source asks
#pragma once

#include <boost/describe/class.hpp>
#include <cstdint>
#include <string>
#include <troupe/bridge/bridge.hpp>
#include <troupe/runtime/actor.hpp>

#include "bench_common.hpp"
#include "runtime/countdown.hpp"

namespace troupe::bench::bridge_bench {

// One message of the JSON workloads (Kafka, AMQP): a small order, decoded
// with troupe::bridge::json_codec on both sides.
struct order {
  std::int64_t id = 0;
  std::string sku;
  std::int64_t cents = 0;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, sku, cents))

inline std::int64_t cents_of(std::int64_t id) { return 100 + id % 900; }

// The body of message `id`: ~45 bytes of JSON.
inline std::string order_json(std::int64_t id) {
  return troupe::bridge::json_codec<order>::encode(order{id, "sku-" + std::to_string(id % 1000), cents_of(id)});
}

// The sum of cents over ids [0, n): both sides must arrive at it.
inline std::int64_t expected_cents(std::int64_t n) {
  std::int64_t sum = 0;
  for (std::int64_t id = 0; id < n; ++id) sum += cents_of(id);
  return sum;
}

// What both sides do per message, after decoding: add the cents up.
struct tally {
  std::int64_t handled = 0;
  std::int64_t cents = 0;
};

// troupe's side: the actor a source asks with each order. The handler adds
// the cents up and returns (which acknowledges); on the n-th it publishes its
// tally to `result` and counts `done` down (the countdown's mutex orders the
// write before the waiter's read).
struct order_counter : troupe::actor<troupe::protocol<troupe::bridge::received<order>>> {
  order_counter(std::int64_t expected, troupe_test::countdown* finished, tally* result)
      : expected_(expected), done_(finished), result_(result) {}
  void on(const troupe::bridge::received<order>& m) {
    mine_.cents += m.body.cents;
    if (++mine_.handled == expected_) {
      *result_ = mine_;
      done_->count_down();
    }
  }

 private:
  std::int64_t expected_;
  troupe_test::countdown* done_;
  tally* result_;
  tally mine_;
};

// One per broker; each runs its workload's repetitions if `opts` selects it
// and prints its contract line (or says on stderr why it cannot run).
void run_stomp(const options& opts, bool baseline);
void run_kafka(const options& opts, bool baseline);
void run_amqp(const options& opts, bool baseline);
void run_sqs(const options& opts, bool baseline);

}  // namespace troupe::bench::bridge_bench
