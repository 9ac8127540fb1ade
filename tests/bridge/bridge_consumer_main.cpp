// bridge_consumer: the consuming *process* of bridge_kill_*_test.cpp, which
// kill -9 it mid-stream and start it again. Owns: one troupe system with one
// bridge source (Kafka, RabbitMQ or STOMP, chosen on the command line) feeding
// one actor that writes a line per handled message to stdout. May use: the
// bridge components it was built with (TROUPE_KILL_WITH_KAFKA / _AMQP / _STOMP),
// the runtime.
//
//   bridge_consumer kafka 127.0.0.1:39001 orders 16 group-a
//   bridge_consumer amqp  5672            orders 16
//   bridge_consumer stomp 61613           /queue/orders 16
//
// Each handled message: one line "<id> <delivery_count> <partition> <offset>"
// (the body is the id, text_codec), written with one write(2) before the
// handler returns, i.e. before the source acknowledges it: a line the parent
// reads is a message this process had handled, an acknowledged message always
// has its line in the pipe (which outlives a kill -9). The parent may stop
// reading; the handler then blocks in write and the source's window fills:
// messages stay delivered and unacknowledged, as a stuck consumer's do.
//
// The end: when stdin reaches end of file, the source stops gracefully
// (drains, acknowledges or commits what is in flight, disconnects), then the
// last line is "stats <delivered> <acknowledged> <redelivered> <retried>
// <dead_lettered>" and the exit status 0. Usage errors exit 2.
//
// The bridge-specific code is one function per bridge (consume_kafka,
// consume_amqp, consume_stomp).
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bridge/source_control.hpp"
#include "troupe/bridge/bridge.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/system.hpp"

#if TROUPE_KILL_WITH_KAFKA
#include "troupe/bridge/kafka.hpp"
#endif
#if TROUPE_KILL_WITH_AMQP
#include "troupe/bridge/amqp.hpp"
#endif
#if TROUPE_KILL_WITH_STOMP
#include "troupe/bridge/stomp.hpp"
#endif

namespace {

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;

// Every byte of `text` to `fd`; false if the pipe is gone (the parent died).
bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

using line_protocol = troupe::protocol<bridge::received<std::string>>;

// Writes one line per message before returning (returning acknowledges).
// Spawned detached: its write blocks while the parent does not read.
struct line_writer : troupe::actor<line_protocol> {
  void on(const bridge::received<std::string>& m) {
    const std::string line = m.body + " " + std::to_string(m.from.delivery_count) + " " +
                             std::to_string(m.from.partition) + " " + std::to_string(m.from.offset) + "\n";
    // Lines are short (under PIPE_BUF): one write, never interleaved or torn.
    if (!write_all(STDOUT_FILENO, line)) throw std::runtime_error("stdout is gone");
  }
};

// Blocks until stdin reaches end of file (the parent closed it) or fails.
void wait_for_end_of_input() {
  char buffer[64];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
  }
}

int print_stats(const bridge::source_stats& s) {
  const std::string line = "stats " + std::to_string(s.delivered) + " " + std::to_string(s.acknowledged) + " " +
                           std::to_string(s.redelivered) + " " + std::to_string(s.retried) + " " +
                           std::to_string(s.dead_lettered) + "\n";
  return write_all(STDOUT_FILENO, line) ? 0 : 1;
}

struct arguments {
  std::string kind;
  std::string address;      // Kafka's bootstrap servers; the AMQP or STOMP port on 127.0.0.1
  std::string destination;  // topic or queue
  std::size_t max_in_flight = 0;
  std::string group;  // Kafka's consumer group
};

std::uint16_t port_of(const std::string& text) {
  unsigned value = 0;
  const auto [end, problem] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (problem != std::errc{} || end != text.data() + text.size() || value == 0 || value > 65535) {
    throw std::invalid_argument("not a port: " + text);
  }
  return static_cast<std::uint16_t>(value);
}

bridge::source_settings flow_of(const arguments& a) {
  bridge::source_settings flow;
  flow.max_in_flight = a.max_in_flight;
  flow.handler_timeout = 30s;  // the handler may wait for the parent to read
  flow.drain_timeout = 20s;
  return flow;
}

// After the parent closed stdin (everything handled): the counts once nothing
// is in flight, then a graceful stop (the system's shutdown drains the source).
int finish(troupe::system& sys, const troupe::ref<bridge::source_protocol>& source) {
  wait_for_end_of_input();
  if (!troupe::test_support::stats_reach(
          source, [](const bridge::source_stats& s) { return s.in_flight == 0; }, 20s)) {
    std::fprintf(stderr, "bridge_consumer: messages still in flight after 20 s\n");
  }
  const troupe::expected<bridge::source_stats> stats = source.ask(bridge::stats_query{}, 10s).try_get();
  if (!stats) {
    std::fprintf(stderr, "bridge_consumer: no stats from the source: %s\n", stats.error().to_string().c_str());
    return 1;
  }
  sys.shutdown();
  return print_stats(*stats);
}

#if TROUPE_KILL_WITH_KAFKA
int consume_kafka(troupe::system& sys, const troupe::ref<line_protocol>& target, const arguments& a) {
  namespace kafka = bridge::kafka;
  kafka::source_config in;
  in.brokers = a.address;
  in.group = a.group;
  in.topics = {a.destination};
  in.flow = flow_of(a);
  // Frequent commits: what was handled but not committed at the kill comes again.
  in.commit_interval = 20ms;
  // Quick group membership on the mock cluster (the defaults are for real networks).
  in.config = {{"session.timeout.ms", "3000"},
               {"heartbeat.interval.ms", "500"},
               {"topic.metadata.refresh.interval.ms", "1000"},
               {"fetch.wait.max.ms", "20"},
               {"fetch.error.backoff.ms", "20"}};
  return finish(sys, sys.spawn_detached<kafka::source<std::string>>(in, target));
}
#endif

#if TROUPE_KILL_WITH_AMQP
int consume_amqp(troupe::system& sys, const troupe::ref<line_protocol>& target, const arguments& a) {
  namespace amqp = bridge::amqp;
  amqp::source_config in;
  in.connection.port = port_of(a.address);
  in.queue = a.destination;
  in.flow = flow_of(a);  // max_in_flight is the prefetch (basic.qos)
  return finish(sys, sys.spawn_detached<amqp::source<std::string>>(in, target));
}
#endif

#if TROUPE_KILL_WITH_STOMP
int consume_stomp(troupe::system& sys, const troupe::ref<line_protocol>& target, const arguments& a) {
  namespace stomp = bridge::stomp;
  stomp::endpoint endpoint;
  endpoint.port = std::to_string(port_of(a.address));
  endpoint.heart_beat = 1000ms;
  return finish(sys, sys.spawn_detached<stomp::source<std::string>>(
                         stomp::source_config{endpoint, a.destination, {}, flow_of(a)}, target));
}
#endif

int usage(const char* why) {
  std::fprintf(stderr,
               "bridge_consumer: %s\n"
               "usage: bridge_consumer kafka <bootstrap servers> <topic> <max in flight> <group>\n"
               "       bridge_consumer amqp <port> <queue> <max in flight>\n"
               "       bridge_consumer stomp <port> <destination> <max in flight>\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() < 4) return usage("too few arguments");
  arguments a{args[0], args[1], args[2], 0, args.size() > 4 ? args[4] : std::string()};
  const auto [end, problem] = std::from_chars(args[3].data(), args[3].data() + args[3].size(), a.max_in_flight);
  if (problem != std::errc{} || end != args[3].data() + args[3].size() || a.max_in_flight == 0) {
    return usage("max in flight is not a positive number");
  }
  try {
    troupe::system sys;
    const auto target = sys.spawn_detached<line_writer>();
#if TROUPE_KILL_WITH_KAFKA
    if (a.kind == "kafka") return a.group.empty() ? usage("kafka needs a group") : consume_kafka(sys, target, a);
#endif
#if TROUPE_KILL_WITH_AMQP
    if (a.kind == "amqp") return consume_amqp(sys, target, a);
#endif
#if TROUPE_KILL_WITH_STOMP
    if (a.kind == "stomp") return consume_stomp(sys, target, a);
#endif
    return usage(("unknown (or not built) bridge: " + a.kind).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bridge_consumer: %s\n", e.what());
    return 1;
  }
}
