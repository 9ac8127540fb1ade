// bridge_amqp_bench — bridge_amqp_consume of WORKLOADS.md (troupe_bridge_bench,
// bridge_bench.hpp): a queue of a real RabbitMQ (a private broker this program
// starts: tests/bridge/rabbitmq_broker.hpp) consumed through troupe's
// amqp::source<order> into an actor (broker -> link thread -> actor ->
// basic.ack written by the link thread), vs, with --baseline, a raw
// rabbitmq-c consumer (basic.consume, the same prefetch, one basic.ack per
// message) decoding the same JSON in a tight loop. Compiled only when
// troupe::bridge_amqp is built. May use: troupe::bridge_amqp, rabbitmq-c,
// bench_common.hpp, tests/bridge, tests/support.
//
// Each repetition fills a queue of its own first (untimed: transient
// messages published in confirm mode, in batches, each batch's confirms
// awaited), then times the consumer from connecting to its connection closed
// after the n-th basic.ack. Every wait has a deadline; no sleeps.
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <troupe/bridge/amqp.hpp>
#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "bridge/rabbitmq_broker.hpp"
#include "bridge/source_control.hpp"
#include "bridge_bench.hpp"
#include "runtime/countdown.hpp"

namespace {

namespace bench = troupe::bench;
namespace bb = troupe::bench::bridge_bench;
namespace amqp = troupe::bridge::amqp;
using namespace std::chrono_literals;

constexpr auto run_deadline = 120s;        // one repetition's consumption, at most
constexpr std::int64_t fill_batch = 1000;  // publishes between two waits for their confirms

amqp_bytes_t bytes_of(std::string_view s) {
  // rabbitmq-c only reads through amqp_bytes_t's pointer.
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

void check_reply(const amqp_rpc_reply_t& r, const std::string& what) {
  bench::require(r.reply_type == AMQP_RESPONSE_NORMAL, what + " failed (rabbitmq-c reply type " +
                                                           std::to_string(r.reply_type) + ", library error " +
                                                           amqp_error_string2(r.library_error) + ")");
}

// A blocking rabbitmq-c connection with channel 1 open, logged in as the
// source logs in (its default frame size and heartbeat).
class raw_connection {
 public:
  explicit raw_connection(std::uint16_t port) : c_(amqp_new_connection()) {
    const amqp::connection_settings defaults;
    amqp_socket_t* socket = amqp_tcp_socket_new(c_);
    timeval limit{30, 0};
    bench::require(amqp_socket_open_noblock(socket, "127.0.0.1", port, &limit) == AMQP_STATUS_OK,
                   "connecting to RabbitMQ");
    amqp_set_rpc_timeout(c_, &limit);
    check_reply(amqp_login(c_, "/", 0, 131072, static_cast<int>(defaults.heartbeat.count()), AMQP_SASL_METHOD_PLAIN,
                           "guest", "guest"),
                "login");
    amqp_channel_open(c_, 1);
    check_reply(amqp_get_rpc_reply(c_), "channel.open");
  }
  raw_connection(const raw_connection&) = delete;
  raw_connection& operator=(const raw_connection&) = delete;
  ~raw_connection() {
    (void)amqp_channel_close(c_, 1, AMQP_REPLY_SUCCESS);
    (void)amqp_connection_close(c_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c_);
  }
  [[nodiscard]] amqp_connection_state_t get() const { return c_; }

 private:
  amqp_connection_state_t c_;
};

// Declares `queue` as the source does (durable) and puts orders [0, n) on it.
void fill(std::uint16_t port, const std::string& queue, std::int64_t n) {
  raw_connection connection(port);
  amqp_connection_state_t c = connection.get();
  (void)amqp_queue_declare(c, 1, bytes_of(queue), 0, 1, 0, 0, amqp_empty_table);
  check_reply(amqp_get_rpc_reply(c), "queue.declare");
  (void)amqp_confirm_select(c, 1);
  check_reply(amqp_get_rpc_reply(c), "confirm.select");
  std::uint64_t confirmed = 0;
  for (std::int64_t id = 0; id < n;) {
    const std::int64_t end = std::min(n, id + fill_batch);
    for (; id < end; ++id) {
      const std::string body = bb::order_json(id);
      bench::require(
          amqp_basic_publish(c, 1, amqp_empty_bytes, bytes_of(queue), 0, 0, nullptr, bytes_of(body)) == AMQP_STATUS_OK,
          "basic.publish");
    }
    // RabbitMQ confirms one queue's publishes in order: the highest tag acked is the count.
    while (confirmed < static_cast<std::uint64_t>(end)) {
      amqp_frame_t frame;
      timeval limit{30, 0};
      bench::require(amqp_simple_wait_frame_noblock(c, &frame, &limit) == AMQP_STATUS_OK, "waiting for confirms");
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      bench::require(
          frame.payload.method.id == AMQP_BASIC_ACK_METHOD,
          "the broker refused a publish of the fill (method " + std::to_string(frame.payload.method.id) + ")");
      const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
      confirmed = std::max(confirmed, ack->delivery_tag);
    }
    amqp_maybe_release_buffers(c);
  }
}

// The baseline: basic.consume with the source's prefetch, decode, basic.ack each.
double consume_raw(std::uint16_t port, const std::string& queue, std::int64_t n) {
  const troupe::bridge::source_settings flow;  // the source's default: max_in_flight is its prefetch
  bb::tally seen;
  bench::stopwatch sw;
  {
    raw_connection connection(port);
    amqp_connection_state_t c = connection.get();
    (void)amqp_basic_qos(c, 1, 0, static_cast<std::uint16_t>(flow.max_in_flight), 0);
    check_reply(amqp_get_rpc_reply(c), "basic.qos");
    (void)amqp_basic_consume(c, 1, bytes_of(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    check_reply(amqp_get_rpc_reply(c), "basic.consume");
    while (seen.handled < n) {
      amqp_maybe_release_buffers(c);
      amqp_envelope_t envelope;
      timeval limit{30, 0};
      check_reply(amqp_consume_message(c, &envelope, &limit, 0), "consuming");
      troupe::expected<bb::order> o = troupe::bridge::json_codec<bb::order>::decode(
          std::string_view(static_cast<const char*>(envelope.message.body.bytes), envelope.message.body.len));
      bench::require(o.has_value(), "a message that does not decode");
      seen.cents += o->cents;
      ++seen.handled;
      bench::require(amqp_basic_ack(c, 1, envelope.delivery_tag, 0) == AMQP_STATUS_OK, "basic.ack");
      amqp_destroy_envelope(&envelope);
    }
  }  // channel.close, connection.close
  const double rate = static_cast<double>(n) / sw.seconds();
  bench::require(seen.cents == bb::expected_cents(n), "the baseline's cents do not add up");
  return rate;
}

// The troupe side in one function, so that a change of the source's public
// shape touches only this.
double consume_troupe(troupe::system& sys, std::uint16_t port, const std::string& queue, std::int64_t n) {
  troupe_test::countdown done(1);
  bb::tally seen;
  auto handler = sys.spawn<bb::order_counter>(n, &done, &seen);
  amqp::source_config in;  // the default flow: max_in_flight is the prefetch
  in.connection.port = port;
  in.queue = queue;
  bench::stopwatch sw;
  auto source = sys.spawn<amqp::source<bb::order>>(in, handler);
  bench::require(done.wait_for(run_deadline), "the troupe source did not get every message");
  // The last basic.acks written, then a graceful stop (no new deliveries, the
  // connection closed) — what the baseline's clock covers too.
  bench::require(
      troupe::test_support::stats_reach(
          source,
          [n](const troupe::bridge::source_stats& st) { return st.link.settles_sent == static_cast<std::uint64_t>(n); },
          30s),
      "the last acknowledgements did not settle");
  const auto ending = troupe::test_support::stop_source(sys, source, 30s);
  const double rate = static_cast<double>(n) / sw.seconds();
  bench::require(ending.has_value(), "the source did not stop");
  const troupe::bridge::source_stats& stats = ending->last;
  bench::require(stats.acknowledged == static_cast<std::uint64_t>(n) && stats.delivered == stats.acknowledged,
                 "acknowledged " + std::to_string(stats.acknowledged) + " of " + std::to_string(n));
  bench::require(seen.cents == bb::expected_cents(n), "the actor's cents do not add up");
  return rate;
}

}  // namespace

void troupe::bench::bridge_bench::run_amqp(const options& opts, bool baseline) {
  if (!opts.selected("bridge_amqp_consume")) return;
  using troupe::test_support::rabbitmq_broker;
  if (auto why = rabbitmq_broker::unavailable_reason()) {
    std::fprintf(stderr, "troupe_bridge_bench: %s; no bridge_amqp_consume\n", why->c_str());
    return;
  }
  // The broker sets ERL_EPMD_PORT in this process's environment.
  bench::require(bench::thread_count() == 1, "threads are still running before RabbitMQ starts");
  rabbitmq_broker broker;
  troupe::config cfg;
  cfg.worker_threads = opts.threads;
  troupe::system sys(cfg);
  const std::int64_t n = opts.quick ? 20'000 : 100'000;
  int rep = 0;
  bench::run_reps("bridge_amqp_consume", "msgs/s", opts.reps, [&] {
    const std::string queue = "bench." + std::to_string(::getpid()) + "." + std::to_string(rep++);
    fill(broker.port(), queue, n);
    return baseline ? consume_raw(broker.port(), queue, n) : consume_troupe(sys, broker.port(), queue, n);
  });
}
