// bridge_stomp_bench — bridge_stomp_consume of WORKLOADS.md (troupe_bridge_bench,
// bridge_bench.hpp): a queue of ActiveMQ (a private broker this program
// starts: tests/support/activemq_server.hpp) consumed through troupe's
// stomp::source into an actor that acknowledges by returning (broker -> session
// thread -> actor -> ACK), vs, with --baseline, a raw STOMP consumer on a
// blocking socket that ACKs each MESSAGE as it reads it — the same codec, the
// same prefetch, no actor. Compiled only when troupe::bridge_stomp is built.
// May use: troupe::bridge_stomp, bench_common.hpp, tests/support.
//
// Each repetition fills a queue of its own first (untimed: pipelined SENDs,
// non-persistent, then one SEND with a receipt to know they are all in), then
// times its consumption from the subscription to the last message handled.
// Every wait has a deadline; no sleeps.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <troupe/bridge/stomp.hpp>
#include <troupe/troupe.hpp>
#include <vector>

#include "bench_common.hpp"
#include "bridge/source_control.hpp"
#include "bridge_bench.hpp"
#include "runtime/countdown.hpp"
#include "support/activemq_server.hpp"

namespace {

namespace bench = troupe::bench;
namespace bridge = troupe::bridge;
namespace stomp = troupe::bridge::stomp;
using namespace std::chrono_literals;

constexpr std::size_t prefetch = 256;

// A blocking STOMP connection for the filler and the baseline consumer.
class raw_stomp {
 public:
  explicit raw_stomp(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bench::require(fd_ >= 0, "socket");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    bench::require(::connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0, "connect to ActiveMQ");
    timeval limit{30, 0};  // a read that waits longer than this fails the run
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    send(stomp::encode({"CONNECT", {{"accept-version", "1.2"}, {"host", "localhost"}, {"heart-beat", "0,0"}}, {}}));
    bench::require(next().command == "CONNECTED", "the broker did not answer CONNECT");
  }
  raw_stomp(const raw_stomp&) = delete;
  raw_stomp& operator=(const raw_stomp&) = delete;
  ~raw_stomp() { ::close(fd_); }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      bench::require(n > 0, "send to ActiveMQ");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  stomp::frame next() {
    for (;;) {
      if (auto f = decoder_.next()) return std::move(*f);
      bench::require(!decoder_.failed(), "a bad frame: " + decoder_.error());
      char buffer[64 << 10];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      bench::require(n > 0, "reading from ActiveMQ (timeout or closed)");
      decoder_.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
    }
  }
  // Whole frames already read, without waiting.
  std::optional<stomp::frame> ready() { return decoder_.next(); }

 private:
  int fd_ = -1;
  stomp::decoder decoder_;
};

void fill(std::uint16_t port, const std::string& queue, std::int64_t n) {
  raw_stomp c(port);
  std::string batch;
  for (std::int64_t i = 0; i < n; ++i) {
    batch += stomp::encode({"SEND", {{"destination", queue}}, "message " + std::to_string(i)});
    if (batch.size() > (256 << 10)) {
      c.send(batch);
      batch.clear();
    }
  }
  batch += stomp::encode({"SEND", {{"destination", queue + ".done"}, {"receipt", "filled"}}, "x"});
  c.send(batch);
  const stomp::frame r = c.next();
  bench::require(r.command == "RECEIPT", "no receipt for the fill: " + r.command + " " + r.body);
}

// The baseline: read, ACK each MESSAGE at once (one write per read batch).
double consume_raw(std::uint16_t port, const std::string& queue, std::int64_t n) {
  raw_stomp c(port);
  bench::stopwatch sw;
  c.send(stomp::encode({"SUBSCRIBE",
                        {{"id", "0"},
                         {"destination", queue},
                         {"ack", "client-individual"},
                         {"activemq.prefetchSize", std::to_string(prefetch)}},
                        {}}));
  std::int64_t got = 0;
  while (got < n) {
    std::string acks;
    stomp::frame f = c.next();
    for (;;) {
      bench::require(f.command == "MESSAGE", "expected MESSAGE, got " + f.command);
      acks += stomp::encode({"ACK", {{"id", std::string(f.header("ack").value_or(""))}}, {}});
      ++got;
      std::optional<stomp::frame> more = c.ready();
      if (!more) break;
      f = std::move(*more);
    }
    c.send(acks);
  }
  return static_cast<double>(n) / sw.seconds();
}

struct counter : troupe::actor<troupe::protocol<bridge::received<std::string>>> {
  explicit counter(troupe_test::countdown* d) : done(d) {}
  void on(const bridge::received<std::string>& /*m*/) { done->count_down(); }
  troupe_test::countdown* done;
};

double consume_troupe(troupe::system& sys, std::uint16_t port, const std::string& queue, std::int64_t n) {
  troupe_test::countdown done(static_cast<std::size_t>(n));
  auto actor = sys.spawn<counter>(&done);
  bridge::stomp::endpoint e;
  e.port = std::to_string(port);
  bridge::source_settings s;
  s.max_in_flight = prefetch;
  bench::stopwatch sw;
  auto source = sys.spawn<bridge::stomp::source<std::string>>(bridge::stomp::source_config{e, queue, {}, s}, actor);
  bench::require(done.wait_for(120s), "the troupe source did not get every message");
  const double rate = static_cast<double>(n) / sw.seconds();
  bench::require(
      troupe::test_support::stats_reach(
          source, [n](const bridge::source_stats& st) { return st.acknowledged == static_cast<std::uint64_t>(n); },
          30s),
      "the last acknowledgements did not settle");
  bench::require(troupe::test_support::stop_source(sys, source, 30s).has_value(), "the source did not stop");
  return rate;
}

}  // namespace

void troupe::bench::bridge_bench::run_stomp(const options& opts, bool baseline) {
  if (!opts.selected("bridge_stomp_consume")) return;
  if (auto why = troupe::test_support::activemq_server::unavailable_reason()) {
    std::fprintf(stderr, "troupe_bridge_bench: %s; no bridge_stomp_consume\n", why->c_str());
    return;
  }
  troupe::test_support::activemq_server broker;
  troupe::config cfg;
  cfg.worker_threads = opts.threads;
  troupe::system sys(cfg);
  const std::int64_t n = opts.quick ? 20'000 : 100'000;
  int rep = 0;
  bench::run_reps("bridge_stomp_consume", "msgs/s", opts.reps, [&] {
    const std::string queue = "/queue/bench." + std::to_string(::getpid()) + "." + std::to_string(rep++);
    fill(broker.stomp_port(), queue, n);
    return baseline ? consume_raw(broker.stomp_port(), queue, n) : consume_troupe(sys, broker.stomp_port(), queue, n);
  });
}
