// troupe_remote — the cross-machine workloads of WORKLOADS.md (remote_ping_pong,
// remote_stream) on troupe's TCP transport: the program bench/compare runs
// beside caf_remote (CAF 0.17's middleman) and tcp_baseline (raw framed TCP),
// with the same counts, 64 bytes of data per message and CSV contract
// (remote_common.hpp).
//
//   troupe_remote [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// Written the way a troupe program deploys across machines, on one: two
// processes, each a troupe node, linked over TCP on 127.0.0.1. The parent (A,
// the client: it drives and times) fork()s the server (B) before either builds
// its node — a node starts threads, and fork() copies only the calling one.
// Each node has its own runtime directory (mkdtemp, both made by A before the
// fork), so neither can find the other's UNIX socket and the shared-memory
// transport that two nodes on one host would otherwise use is out of reach.
// B's node listens on tcp://127.0.0.1:0, publishes the workload's actor and
// sends its endpoint() to A through a pipe; A's node finds the actor with
// lookup<P>("tcp://127.0.0.1:<port>/<name>"). Both nodes get the same explicit
// cookie (so the run needs no ~/.troupe/cookie); no TLS, like the baselines.
// Both get `--threads` scheduler workers. One link per workload serves an
// untimed warm-up session (a tenth of the count), then one timed session per
// repetition.
//
// - remote_ping_pong: request/response, as caf_remote's request(...).then: a
//   pinger actor in A asks the echo actor in B with a 64-byte `ping` and sends
//   the next one from the reply's then() callback; one in flight. (Chosen over
//   a pair of actors exchanging tells, troupe's faster idiom, because the
//   baseline it is read against, CAF, measures request/response: an ask adds
//   a pending-request entry with its timeout and the reply routing.) The
//   pinger checks that every answer echoes its request; main() tells it to
//   start and waits for its report.
// - remote_stream: main(), a plain thread, first asks the sink in B to expect
//   N blobs and whom to tell when they are in (untimed), then tells it the N
//   blobs (a plain thread's tell() waits while the link has max_queued_bytes
//   queued: the backpressure). The sink checks order and kind and, at the N-th,
//   tells main()'s inbox `stream_done`; the clock stops when main() has it, so
//   the timing covers delivery.
//
// Failures end the run with a line on stderr and exit status 1: B dies with A
// (PR_SET_PDEATHSIG), A notices a dead B at once (SIGCHLD; and the pinger
// monitors the echo), every wait has a deadline, and an alarm() watchdog ends a
// session stuck where no deadline reaches (a tell() waiting for room).
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <troupe/troupe.hpp>

#include "remote_common.hpp"

// Named (not anonymous) namespace: the type names are part of the wire schemas.
namespace troupe_remote {

namespace bench = troupe::bench;
namespace remote = troupe::bench::remote;

// A wait that takes longer than this has hung (a session takes seconds).
constexpr auto deadline = std::chrono::seconds(120);
constexpr unsigned watchdog_seconds = 150;  // the backstop for waits without a deadline
// Both nodes' shared secret (node_config::cookie: at least 16 characters).
constexpr std::string_view cookie = "troupe-remote-bench-cookie";

// --- failing -----------------------------------------------------------------------------

// async-signal-safe: write(2) only, best effort.
void say(const char* text) noexcept {
  std::size_t length = std::strlen(text);
  while (length > 0) {
    const ssize_t written = ::write(STDERR_FILENO, text, length);
    if (written <= 0) return;
    text += written;
    length -= static_cast<std::size_t>(written);
  }
}

// Which process a failure line comes from.
const char* role = "client";

// The two nodes' runtime directories and the UNIX socket each node makes in
// its own, while a workload runs. The client makes both (before the fork) and
// removes them at the end; a failure removes them with unlink() and rmdir()
// only, which are async-signal-safe, so the SIGCHLD handler can do it too.
struct runtime_files {
  char directory[64];
  char socket[192];
};
std::array<runtime_files, 2> node_files;  // [0]: the client's, [1]: the server's
bool node_files_made = false;

void remove_node_files() noexcept {
  if (!node_files_made) return;
  for (const runtime_files& files : node_files) {
    (void)::unlink(files.socket);
    (void)::rmdir(files.directory);
  }
}

// Ends the process at once, from any thread: no node destructor that could
// wait on a dead peer. The server dies with the client (PR_SET_PDEATHSIG); the
// client's SIGCHLD handler then removes the runtime directories.
[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "troupe_remote (%s): FAILED: %s\n", role, what.c_str());
  std::fflush(nullptr);
  if (std::strcmp(role, "client") == 0) remove_node_files();
  ::_exit(1);
}

void require(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

[[noreturn]] void fail_errno(const std::string& what) {
  const int error = errno;
  fail(what + ": " + std::generic_category().message(error));
}

template <class T>
T value_or_fail(troupe::expected<T> r, const std::string& what) {
  if (!r) fail(what + ": " + r.error().to_string());
  return std::move(*r);
}

void on_watchdog(int) {
  say("troupe_remote: a session did not finish within the watchdog's time; giving up\n");
  ::_exit(1);
}

// Installed in the client while the server must be alive.
void on_server_exit(int) {
  say("troupe_remote (client): FAILED: the server process exited during the run\n");
  remove_node_files();
  ::_exit(1);
}

void set_handler(int signal_number, void (*handler)(int), int flags = 0) {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  if (::sigaction(signal_number, &action, nullptr) != 0) fail_errno("sigaction");
}

// --- messages and protocols ------------------------------------------------------------

// The 64 bytes of application data of WORKLOADS.md: a sequence number, a kind
// and an opaque payload. Integers only and no padding, so its encoding is one
// 64-byte copy (serialization.hpp's bulk path).
enum class kind : std::uint64_t { ping = 1, pong = 2, data = 3 };

using payload_type = std::array<std::uint8_t, remote::payload_bytes>;

struct blob {
  std::uint64_t sequence;
  kind type;
  payload_type payload;
};
static_assert(sizeof(blob) == 64 && std::is_trivially_copyable_v<blob> && troupe::serializable<blob>);

// A request of remote_ping_pong: the same 64 bytes, answered by a blob.
struct ping {
  using reply = blob;
  std::uint64_t sequence;
  kind type;
  payload_type payload;
};
static_assert(sizeof(ping) == 64 && troupe::serializable<ping>);

// Different bytes for every sequence number, so an answer that echoes the
// wrong request (or garbles it) fails the check.
payload_type payload_for(std::uint64_t sequence) {
  payload_type p;
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::uint8_t>(sequence * 31 + i);
  return p;
}

// The echo (in B) answers pings; `echo_count` (untimed, after each session)
// returns the pings answered since the last one.
struct echo_count {
  using reply = std::int64_t;
};
using echo_protocol = troupe::protocol<ping, echo_count>;

// The pinger (in A) hears `go` from main() and reports `finished` to it.
struct go {
  std::int64_t round_trips;
};
using pinger_protocol = troupe::protocol<go>;
struct finished {
  std::int64_t round_trips;
  std::string failure;  // empty: every answer matched its request
};
using report_protocol = troupe::protocol<finished>;

// main()'s inbox in remote_stream: the sink's word that the session is in.
struct stream_done {
  std::int64_t received;
  std::string failure;  // empty: all in order
};
using stream_client_protocol = troupe::protocol<stream_done>;

// The sink (in B): `expect` opens a session (the reply, untimed, says B is
// serving), then blobs.
struct expect {
  using reply = std::int64_t;
  std::int64_t count;
  troupe::ref<stream_client_protocol> report_to;
};
using sink_protocol = troupe::protocol<expect, blob>;

// --- actors --------------------------------------------------------------------------------

struct echo_actor : troupe::actor<echo_protocol> {
  std::int64_t answered = 0;

  blob on(const ping& p) {
    // A wrong kind stops the echo; the pinger's ask fails with the reason.
    if (p.type != kind::ping)
      throw std::runtime_error("echo: a ping of kind " + std::to_string(static_cast<std::uint64_t>(p.type)));
    ++answered;
    return blob{p.sequence, kind::pong, p.payload};
  }
  std::int64_t on(echo_count) { return std::exchange(answered, 0); }
};

struct sink_actor : troupe::actor<sink_protocol> {
  std::int64_t expected = 0;
  std::int64_t received = 0;
  bool failed = false;
  troupe::ref<stream_client_protocol> report_to;

  std::int64_t on(expect e) {
    expected = e.count;
    received = 0;
    failed = false;
    report_to = std::move(e.report_to);
    return expected;
  }
  void on(const blob& b) {
    if (failed) return;  // reported already; the rest of the session is ignored
    if (b.type != kind::data || b.sequence != static_cast<std::uint64_t>(received)) {
      failed = true;
      report(stream_done{received, "blob " + std::to_string(b.sequence) + " of kind " +
                                       std::to_string(static_cast<std::uint64_t>(b.type)) + " arrived as number " +
                                       std::to_string(received)});
      return;
    }
    if (++received == expected) report(stream_done{received, {}});
  }
  void report(stream_done d) {
    if (std::error_code ec = report_to.tell(std::move(d))) throw std::system_error(ec, "sink: tell to the client");
  }
};

struct pinger_actor : troupe::actor<pinger_protocol> {
  pinger_actor(troupe::ref<echo_protocol> e, troupe::ref<report_protocol> r)
      : echo(std::move(e)), report_to(std::move(r)) {}
  troupe::ref<echo_protocol> echo;
  troupe::ref<report_protocol> report_to;
  std::uint64_t target = 0;  // round trips of the current session
  std::uint64_t next = 0;    // the sequence number of the ping in flight
  bool active = false;

  void on_start() { monitor(echo); }
  void on(go g) {
    target = static_cast<std::uint64_t>(g.round_trips);
    next = 0;
    active = true;
    send_ping();
  }
  void on(const troupe::down& d) { give_up("the echo actor is down: " + d.reason.to_string()); }

  void send_ping() {
    echo.ask(ping{next, kind::ping, payload_for(next)}, deadline)
        .then([this](blob answer) { on_answer(answer); },
              [this](const troupe::error& e) { give_up("ping " + std::to_string(next) + ": " + e.to_string()); });
  }
  void on_answer(const blob& answer) {
    if (!active) return;
    if (answer.sequence != next || answer.type != kind::pong || answer.payload != payload_for(next)) {
      give_up("the answer to ping " + std::to_string(next) + " is pong " + std::to_string(answer.sequence) +
              " of kind " + std::to_string(static_cast<std::uint64_t>(answer.type)) +
              (answer.payload != payload_for(answer.sequence) ? " with a garbled payload" : ""));
      return;
    }
    if (++next == target) {
      active = false;
      (void)report_to.tell(finished{static_cast<std::int64_t>(target), {}});
      return;
    }
    send_ping();
  }
  void give_up(std::string why) {
    if (!active) return;
    active = false;
    (void)report_to.tell(finished{static_cast<std::int64_t>(next), std::move(why)});
  }
};

// --- processes and nodes --------------------------------------------------------------------

// One runtime directory per node, fresh (mkdtemp): the node's UNIX socket goes
// there, so the other process's node cannot find it (no shared-memory link).
// Made by the client before the fork, removed after the server has exited.
class node_directories {
 public:
  explicit node_directories(const std::array<std::string, 2>& node_names) {
    for (std::size_t i = 0; i < node_files.size(); ++i) {
      runtime_files& files = node_files[i];
      std::snprintf(files.directory, sizeof files.directory, "/tmp/troupe-remote-XXXXXX");
      if (::mkdtemp(files.directory) == nullptr) fail_errno("mkdtemp");
      // The node's socket: its runtime directory, its name, ".sock" (net/os/os.cpp).
      const int length =
          std::snprintf(files.socket, sizeof files.socket, "%s/%s.sock", files.directory, node_names[i].c_str());
      require(length > 0 && static_cast<std::size_t>(length) < sizeof files.socket, "node name too long");
      node_files_made = true;
    }
  }
  ~node_directories() {
    node_files_made = false;
    for (const runtime_files& files : node_files) {
      std::error_code ignored;
      std::filesystem::remove_all(files.directory, ignored);
    }
  }
  node_directories(const node_directories&) = delete;
  node_directories& operator=(const node_directories&) = delete;
  [[nodiscard]] static std::string of(std::size_t node) { return node_files[node].directory; }
};

constexpr std::size_t client_node = 0;
constexpr std::size_t server_node = 1;

troupe::node_config node_settings(std::string name, std::string runtime_dir, unsigned threads) {
  troupe::node_config config;
  config.name = std::move(name);
  config.runtime_dir = std::move(runtime_dir);
  config.cookie = std::string(cookie);
  config.system.worker_threads = threads;
  return config;
}

// The shared-memory link's rings are memfds named "troupe:<from>-><to>"; none
// mapped here means the nodes talk over TCP only.
bool shared_memory_link_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/memfd:troupe:") != std::string::npos) return true;
  return false;
}

constexpr std::string_view published_name(remote::workload w) {
  return w == remote::workload::ping_pong ? "echo" : "sink";
}

// The server's whole life: build the node, publish the workload's actor, send
// the endpoint to the client, serve until the client closes `stop_in` (or
// dies: then PR_SET_PDEATHSIG ends us), shut down.
[[noreturn]] void run_server(remote::workload w, std::string name, unsigned threads, int endpoint_out, int stop_in,
                             pid_t parent) {
  role = "server";
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_errno("prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != parent) ::_exit(1);  // the parent died before prctl took effect
  set_handler(SIGCHLD, SIG_DFL);
  {
    troupe::node_config config = node_settings(std::move(name), node_directories::of(server_node), threads);
    config.listen = "tcp://127.0.0.1:0";
    troupe::node server(config);
    if (w == remote::workload::ping_pong) {
      server.publish(std::string(published_name(w)), server.spawn<echo_actor>());
    } else {
      server.publish(std::string(published_name(w)), server.spawn<sink_actor>());
    }
    const std::string endpoint = server.endpoint();
    require(!endpoint.empty(), "the node has no TCP endpoint");
    if (::write(endpoint_out, endpoint.data(), endpoint.size()) != static_cast<ssize_t>(endpoint.size()))
      fail_errno("writing the endpoint to the client");
    ::close(endpoint_out);
    // Serve until the client closes its end: read() returns 0 then.
    char byte;
    ssize_t got;
    while ((got = ::read(stop_in, &byte, 1)) != 0) {
      if (got > 0) fail("unexpected data on the stop pipe");
      if (errno != EINTR) fail_errno("reading the stop pipe");
    }
  }  // ~node: stops the actors, closes the link; the client removes the runtime directory
  std::fflush(stderr);
  ::_exit(0);  // the parent's atexit handlers and stdio buffers are not ours
}

// --- the client's sessions --------------------------------------------------------------

// One session of remote_ping_pong; returns round trips per second.
double ping_pong_session(const troupe::ref<echo_protocol>& echo, const troupe::ref<pinger_protocol>& pinger,
                         troupe::scoped<report_protocol>& reports, std::int64_t count) {
  bench::stopwatch clock;
  require(!pinger.tell(go{count}), "remote_ping_pong: the pinger is gone");
  const finished f = value_or_fail(reports.receive<finished>(deadline), "remote_ping_pong: waiting for the pinger");
  const double seconds = clock.seconds();
  require(f.failure.empty(), "remote_ping_pong: " + f.failure);
  require(f.round_trips == count, "remote_ping_pong: wrong number of round trips");
  // Untimed: the echo agrees on the count.
  const std::int64_t answered = value_or_fail(echo.ask(echo_count{}, deadline).try_get(), "asking the echo's count");
  require(answered == count, "remote_ping_pong: the echo answered " + std::to_string(answered) + " of " +
                                 std::to_string(count) + " pings");
  return static_cast<double>(count) / seconds;
}

// One session of remote_stream; returns messages per second.
double stream_session(const troupe::ref<sink_protocol>& sink, troupe::scoped<stream_client_protocol>& inbox,
                      std::int64_t count) {
  // Untimed: the sink is serving and expects `count` blobs.
  const std::int64_t expecting =
      value_or_fail(sink.ask(expect{count, inbox.self()}, deadline).try_get(), "remote_stream: starting the session");
  require(expecting == count, "remote_stream: the sink expects the wrong count");
  const payload_type payload = payload_for(0);
  bench::stopwatch clock;
  for (std::int64_t i = 0; i < count; ++i) {
    if (std::error_code ec = sink.tell(blob{static_cast<std::uint64_t>(i), kind::data, payload}))
      fail("remote_stream: tell " + std::to_string(i) + ": " + ec.message());
  }
  const stream_done done = value_or_fail(inbox.receive<stream_done>(deadline), "remote_stream: waiting for the sink");
  const double seconds = clock.seconds();
  require(done.failure.empty(), "remote_stream: " + done.failure);
  require(done.received == count,
          "remote_stream: the sink received " + std::to_string(done.received) + " of " + std::to_string(count));
  return static_cast<double>(count) / seconds;
}

// Runs `session` for the warm-up and then `reps` times; returns the timed rates.
template <class Session>
std::vector<double> run_sessions(std::int64_t count, int reps, Session&& session) {
  std::vector<double> rates;
  for (int i = 0; i <= reps; ++i) {
    ::alarm(watchdog_seconds);
    const double rate = session(i == 0 ? remote::params::warmup(count) : count);
    if (i > 0) rates.push_back(rate);
  }
  return rates;
}

// Runs one workload: forks the server, links to it, runs the warm-up and
// `reps` timed sessions, shuts both sides down. Returns one rate per repetition.
std::vector<double> measure(remote::workload w, const remote::options& opts) {
  // fork() copies only this thread: the previous workload's node must be gone.
  require(bench::thread_count() == 1, "threads are still running before fork()");
  const std::string parent_id = std::to_string(::getpid());
  const std::array<std::string, 2> names = {"troupe-remote-client-" + parent_id, "troupe-remote-server-" + parent_id};
  node_directories directories(names);
  int endpoint_pipe[2];
  int stop_pipe[2];
  if (::pipe2(endpoint_pipe, O_CLOEXEC) != 0 || ::pipe2(stop_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
  // Installed before the fork, so a server that dies at once is noticed too.
  set_handler(SIGCHLD, on_server_exit, SA_NOCLDSTOP);
  std::fflush(nullptr);  // the child must not flush our buffered output again
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child < 0) fail_errno("fork");
  if (child == 0) {
    ::close(endpoint_pipe[0]);
    ::close(stop_pipe[1]);
    run_server(w, names[server_node], opts.threads, endpoint_pipe[1], stop_pipe[0], parent);
  }
  ::close(endpoint_pipe[1]);
  ::close(stop_pipe[0]);

  // The server writes its endpoint once it has published, then closes the pipe.
  ::alarm(watchdog_seconds);
  std::string endpoint;
  for (;;) {
    char chunk[256];
    const ssize_t got = ::read(endpoint_pipe[0], chunk, sizeof chunk);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_errno("reading the server's endpoint");
    }
    endpoint.append(chunk, static_cast<std::size_t>(got));
  }
  ::close(endpoint_pipe[0]);
  require(endpoint.starts_with("tcp://"), "the server sent no endpoint");

  const std::string uri = endpoint + "/" + std::string(published_name(w));
  const std::int64_t count = opts.parameters().count(w);
  std::vector<double> rates;
  {
    troupe::node client(node_settings(names[client_node], node_directories::of(client_node), opts.threads));
    auto say_link = [&] {
      require(!shared_memory_link_mapped(), "the nodes are linked through shared memory, not TCP");
      std::fprintf(stderr, "troupe_remote: %.*s over TCP: %s (no shared-memory link mapped)\n",
                   static_cast<int>(remote::name_of(w).size()), remote::name_of(w).data(), uri.c_str());
    };
    if (w == remote::workload::ping_pong) {
      auto echo = value_or_fail(client.lookup<echo_protocol>(uri, std::chrono::seconds(10)), "lookup " + uri);
      say_link();
      troupe::scoped<report_protocol> reports{client};
      auto pinger = client.spawn<pinger_actor>(echo, reports.self());
      rates =
          run_sessions(count, opts.reps, [&](std::int64_t n) { return ping_pong_session(echo, pinger, reports, n); });
    } else {
      auto sink = value_or_fail(client.lookup<sink_protocol>(uri, std::chrono::seconds(10)), "lookup " + uri);
      say_link();
      troupe::scoped<stream_client_protocol> inbox{client};
      rates = run_sessions(count, opts.reps, [&](std::int64_t n) { return stream_session(sink, inbox, n); });
    }
    ::alarm(watchdog_seconds);
  }  // ~node (the client's first): says goodbye on the link, so the server does not re-dial
  // From here the server's exit is expected.
  set_handler(SIGCHLD, SIG_DFL);
  ::close(stop_pipe[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) != child) {
    if (errno != EINTR) fail_errno("waitpid");
  }
  ::alarm(0);
  require(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server process failed");
  return rates;
}

}  // namespace troupe_remote

int main(int argc, char** argv) {
  namespace t = troupe_remote;
  const auto opts = troupe::bench::remote::parse_options(argc, argv);
  // A write to a closed socket must fail with EPIPE, not kill us silently.
  t::set_handler(SIGPIPE, SIG_IGN);
  t::set_handler(SIGALRM, t::on_watchdog);
  std::fprintf(stderr, "troupe_remote: %u worker threads per node, %d reps, %s parameters\n", opts.threads, opts.reps,
               opts.quick ? "quick" : "full");
  for (auto w : troupe::bench::remote::all_workloads) {
    if (opts.selected(w)) troupe::bench::remote::report("troupe_remote", w, t::measure(w, opts));
  }
  return 0;
}
