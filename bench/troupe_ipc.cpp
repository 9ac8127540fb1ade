// troupe_ipc — the cross-process workloads of WORKLOADS.md (ipc_ping_pong,
// ipc_stream) on troupe's same-host transport: the program bench/compare runs
// beside ipc_baselines (same parameters, same 64-byte messages, same CSV
// contract: `workload,unit,median,min,max`).
//
//   troupe_ipc [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//
// Written the way a troupe user deploys across processes: main() is
// troupe::run(), the parent node starts one child node with spawn_node() (this
// executable) and remote-spawns the peer actors there with spawn<A>(on(child)).
// Every message crosses the real link: typed tell()s serialized into the
// shared-memory rings, refs travelling inside messages.
//
// - ipc_ping_pong: a pinger actor here and an echo actor in the child exchange
//   one 64-byte blob N times, tell for tell: the echo replies to the pinger's
//   ref, which it got once in a `hello` message.
// - ipc_stream: main() (a plain thread) tells N blobs to a sink actor in the
//   child as fast as the link takes them (a plain thread's tell() waits while
//   the ring is full: backpressure), then asks the sink for its count; the
//   clock stops at that reply, so the timing covers delivery.
//
// --threads N sets the parent node's worker threads (default: hardware
// concurrency). The child node runs troupe::run()'s defaults (hardware
// concurrency, default ring size and reader spins): run() takes no config.
// Each session (one untimed warm-up of N/10, then one per repetition) starts
// after an untimed request/reply with the peer actor, so both processes are
// running and everything earlier has been handled. No sleeps anywhere.
//
// Failures end the run with a line on stderr and exit status 1; the node's
// destructor stops the child (and the child dies with this process anyway).
// Every wait has a deadline, and an alarm() watchdog ends a run stuck in a
// tell() that cannot make progress.
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include <troupe/troupe.hpp>

#include "ipc_common.hpp"

// Named (not anonymous) namespace: the type names are part of the wire
// schemas and of the remote-spawn keys.
namespace troupe_ipc {

namespace bench = troupe::bench;
namespace ipc = troupe::bench::ipc;

// A ping-pong or stream session that takes longer than this has hung.
constexpr auto session_timeout = std::chrono::seconds(120);

// --- messages and protocols ----------------------------------------------------------

// The 64-byte unit every workload moves, like ipc_common.hpp's message. All
// fields are integers, so its encoding is one 64-byte copy (serialization.hpp).
namespace kind {
constexpr std::uint64_t ping = 1;
constexpr std::uint64_t pong = 2;
constexpr std::uint64_t data = 3;
}  // namespace kind

struct blob {
  std::uint64_t sequence;
  std::uint64_t kind;
  std::array<std::uint8_t, 48> payload;
};
static_assert(sizeof(blob) == 64 && std::is_trivially_copyable_v<blob>);

blob make_blob(std::uint64_t kind, std::uint64_t sequence) {
  blob b{};
  b.sequence = sequence;
  b.kind = kind;
  return b;
}

// The pinger (here) hears `go` from main() and pongs from the echo.
struct go {
  std::int64_t round_trips;
};
using pinger_protocol = troupe::protocol<go, blob>;

// The echo (in the child) learns the pinger's ref from `hello`; `sync` is the
// untimed request/reply around each session (reply: pings echoed since the last).
struct hello {
  troupe::ref<pinger_protocol> pinger;
};
struct sync {
  using reply = std::uint64_t;
};
using echo_protocol = troupe::protocol<hello, blob, sync>;

// The sink (in the child) counts blobs; `done` replies with the count since the
// last `done` — or all_ones if a blob came out of order or of the wrong kind.
struct done {
  using reply = std::uint64_t;
};
using sink_protocol = troupe::protocol<blob, done>;
constexpr std::uint64_t out_of_order = ~std::uint64_t{0};

// The pinger's report to main(): the round trips made, or why it gave up.
struct finished {
  std::int64_t round_trips;
  std::string failure;
};
using report_protocol = troupe::protocol<finished>;

// --- actors ------------------------------------------------------------------------------

struct echo_actor : troupe::actor<echo_protocol> {
  troupe::ref<pinger_protocol> pinger;
  std::uint64_t echoed = 0;

  void on(hello h) { pinger = std::move(h.pinger); }
  void on(const blob& b) {
    blob reply = b;
    reply.kind = kind::pong;
    ++echoed;
    // A pong that cannot be sent ends the echo; the pinger's monitor reports it.
    if (std::error_code ec = pinger.tell(reply)) throw std::system_error(ec, "echo: tell to the pinger");
  }
  std::uint64_t on(sync) { return std::exchange(echoed, 0); }
};

struct sink_actor : troupe::actor<sink_protocol> {
  std::uint64_t received = 0;
  bool in_order = true;

  void on(const blob& b) {
    if (b.kind != kind::data || b.sequence != received) in_order = false;
    ++received;
  }
  std::uint64_t on(done) {
    const std::uint64_t count = in_order ? received : out_of_order;
    received = 0;
    in_order = true;
    return count;
  }
};

TROUPE_REGISTER_ACTOR(echo_actor);
TROUPE_REGISTER_ACTOR(sink_actor);

struct pinger_actor : troupe::actor<pinger_protocol> {
  pinger_actor(troupe::ref<echo_protocol> e, troupe::ref<report_protocol> r)
      : echo(std::move(e)), report_to(std::move(r)) {}
  troupe::ref<echo_protocol> echo;
  troupe::ref<report_protocol> report_to;
  std::uint64_t target = 0;  // round trips of the current session
  std::uint64_t next = 0;    // the sequence number of the pong expected next

  void on_start() { monitor(echo); }
  void on(go g) {
    target = static_cast<std::uint64_t>(g.round_trips);
    next = 0;
    send_ping();
  }
  void on(const blob& b) {
    if (b.kind != kind::pong || b.sequence != next) {
      give_up("pong " + std::to_string(b.sequence) + " of kind " + std::to_string(b.kind) + ", expected pong " +
              std::to_string(next));
      return;
    }
    if (++next == target) {
      (void)report_to.tell(finished{static_cast<std::int64_t>(target), {}});
      return;
    }
    send_ping();
  }
  void on(const troupe::down& d) { give_up("the echo actor stopped: " + d.reason.to_string()); }

  void send_ping() {
    if (std::error_code ec = echo.tell(make_blob(kind::ping, next))) give_up("ping: " + ec.message());
  }
  void give_up(std::string why) {
    (void)report_to.tell(finished{static_cast<std::int64_t>(next), std::move(why)});
    target = 0;
  }
};

// --- failing -------------------------------------------------------------------------------

// Thrown for a failed check; main_fn catches it after the node (and with it the
// child) is gone, prints it and exits 1.
struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void require(bool condition, const std::string& what) {
  if (!condition) throw failure(what);
}

template <class T>
T value_or_fail(troupe::expected<T> r, const std::string& what) {
  if (!r) throw failure(what + ": " + r.error().to_string());
  return std::move(*r);
}

// SIGALRM: a session hung where no deadline reaches (a tell() waiting for room
// forever). Async-signal-safe; the child dies with us (PR_SET_PDEATHSIG).
void on_watchdog(int) {
  constexpr char text[] = "troupe_ipc: a session did not finish in time (watchdog); giving up\n";
  [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, text, sizeof text - 1);
  ::_exit(1);
}

// --- the workloads -----------------------------------------------------------------------

// One session of ipc_ping_pong; returns round trips per second.
double ping_pong_session(troupe::ref<echo_protocol>& echo, troupe::ref<pinger_protocol>& pinger,
                         troupe::scoped<report_protocol>& reports, std::int64_t count) {
  // Untimed: the echo is running and has handled everything sent before.
  (void)value_or_fail(echo.ask(sync{}, session_timeout).try_get(), "sync with the echo actor");
  bench::stopwatch clock;
  require(!pinger.tell(go{count}), "go: the pinger is gone");
  finished f = value_or_fail(reports.receive<finished>(session_timeout), "waiting for the pinger");
  const double seconds = clock.seconds();
  require(f.failure.empty(), "ipc_ping_pong: " + f.failure);
  require(f.round_trips == count, "ipc_ping_pong: wrong number of round trips");
  const std::uint64_t echoed = value_or_fail(echo.ask(sync{}, session_timeout).try_get(), "sync");
  require(echoed == static_cast<std::uint64_t>(count),
          "ipc_ping_pong: the echo counted " + std::to_string(echoed) + " pings");
  return static_cast<double>(count) / seconds;
}

// One session of ipc_stream; returns messages per second.
double stream_session(troupe::ref<sink_protocol>& sink, std::int64_t count) {
  const std::uint64_t before = value_or_fail(sink.ask(done{}, session_timeout).try_get(), "sync with the sink");
  require(before == 0, "ipc_stream: the sink had " + std::to_string(before) + " blobs before the session");
  const auto n = static_cast<std::uint64_t>(count);
  bench::stopwatch clock;
  for (std::uint64_t i = 0; i < n; ++i) {
    if (std::error_code ec = sink.tell(make_blob(kind::data, i)))
      throw failure("ipc_stream: tell " + std::to_string(i) + ": " + ec.message());
  }
  const std::uint64_t received = value_or_fail(sink.ask(done{}, session_timeout).try_get(), "done");
  const double seconds = clock.seconds();
  require(received != out_of_order, "ipc_stream: blobs arrived out of order or of the wrong kind");
  require(received == n, "ipc_stream: the sink received " + std::to_string(received) + " of " + std::to_string(n));
  return static_cast<double>(count) / seconds;
}

// Runs `session` once with count/10 (untimed), then `reps` times with `count`,
// and prints the CSV line.
template <class Session>
void measure(ipc::workload w, std::int64_t count, int reps, Session&& session) {
  const auto name = ipc::name_of(w);
  ::alarm(2 * static_cast<unsigned>(session_timeout.count()));
  (void)session(std::max<std::int64_t>(1, count / 10));
  bench::run_reps(name, ipc::unit_of(w), reps, [&] {
    ::alarm(2 * static_cast<unsigned>(session_timeout.count()));
    return session(count);
  });
  ::alarm(0);
}

// A fresh runtime directory per run, so node names never meet other programs'.
class temporary_directory {
 public:
  temporary_directory() {
    char pattern[] = "/tmp/troupe-ipc-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw failure(std::string("mkdtemp: ") + std::generic_category().message(errno));
    path_ = pattern;
  }
  ~temporary_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr std::array<std::string_view, 1> mechanism_names = {"troupe"};

int run_parent(const ipc::options& opts) {
  const ipc::params p = opts.parameters();
  temporary_directory dir;
  {
    const std::string name = "troupe-ipc-" + std::to_string(::getpid());
    troupe::node_config cfg;
    cfg.name = name;
    cfg.runtime_dir = dir.path();
    cfg.system.worker_threads = opts.threads;  // 0: hardware concurrency
    troupe::node parent(cfg);
    troupe::node_handle child = value_or_fail(parent.spawn_node(name + "-peer"), "spawn_node");

    if (opts.selected(ipc::workload::ping_pong)) {
      auto echo = value_or_fail(parent.spawn<echo_actor>(troupe::on(child)), "remote spawn of the echo");
      troupe::scoped<report_protocol> reports{parent};
      auto pinger = parent.spawn<pinger_actor>(echo, reports.self());
      require(!echo.tell(hello{pinger}), "hello: the echo is gone");
      measure(ipc::workload::ping_pong, p.ping_pong_round_trips, opts.reps,
              [&](std::int64_t count) { return ping_pong_session(echo, pinger, reports, count); });
    }
    if (opts.selected(ipc::workload::stream)) {
      auto sink = value_or_fail(parent.spawn<sink_actor>(troupe::on(child)), "remote spawn of the sink");
      measure(ipc::workload::stream, p.stream_messages, opts.reps,
              [&](std::int64_t count) { return stream_session(sink, count); });
    }
  }  // ~node: stops the actors, asks the child to stop (SIGKILL after a grace period), reaps it
  return 0;
}

}  // namespace troupe_ipc

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    namespace t = troupe_ipc;
    const auto opts = troupe::bench::ipc::parse_options(argc, argv, t::mechanism_names);
    struct sigaction action {};
    action.sa_handler = t::on_watchdog;
    ::sigaction(SIGALRM, &action, nullptr);
    try {
      return t::run_parent(opts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "troupe_ipc: FAILED: %s\n", e.what());
      return 1;
    }
  });
}
