// caf_remote — the remote_* workloads of bench/WORKLOADS.md on CAF 0.17's
// network layer (libcaf_io's middleman, BASP over TCP): the actor-library
// baseline for troupe's TCP transport (troupe_remote); see bench/compare.
//
//   caf_remote [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// Two processes per workload: the parent is the client (it drives and times),
// a fork()ed child is the server. Each builds its own actor_system (with the
// middleman loaded and `--threads` scheduler workers) after the fork, never
// before: CAF starts threads, and fork() copies only the calling one. The
// server publishes its actor on 127.0.0.1 at an ephemeral port and hands the
// port to the parent through a pipe; the client connects with remote_actor.
// Both run the workload the way CAF's manual shows remote actors: messages of
// atoms and built-in types (no type announcement needed), request(...).then
// for request/response, send for one-way messages. One connection per
// workload serves an untimed warm-up session (a tenth of the count) and then
// one timed session per repetition.
//
// Every message is (atom, int64_t sequence, std::string of 48 bytes): the 64
// bytes of application data of WORKLOADS.md. Receivers check order and count.
// Failures end the run with a line on stderr and a non-zero exit: the server
// dies with the parent (PR_SET_PDEATHSIG), the client monitors the server and
// fails at once if the connection goes down, every wait has a deadline, and
// an alarm() watchdog ends a session that takes too long.

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <vector>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>

#include "caf/all.hpp"
#include "caf/io/all.hpp"

#include "remote_common.hpp"

namespace {

namespace bench = troupe::bench;
namespace remote = troupe::bench::remote;
using std::int64_t;

using ping_atom = caf::atom_constant<caf::atom("ping")>;
using pong_atom = caf::atom_constant<caf::atom("pong")>;
using data_atom = caf::atom_constant<caf::atom("data")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using done_atom = caf::atom_constant<caf::atom("done")>;

// A wait that takes longer than this has hung (a session takes seconds).
constexpr auto deadline = std::chrono::seconds(120);
constexpr unsigned watchdog_seconds = 150;  // the backstop for waits without a deadline

// See caf_workloads.cpp: CAF 0.17 must not construct a state holding a
// caf::actor from the actor pointer. Built as C++17, where it does not.
template <class State>
constexpr bool default_constructed_state = !std::is_constructible_v<State, caf::stateful_actor<State>*>;

std::string make_payload() { return std::string(remote::payload_bytes, 'p'); }

// --- failing --------------------------------------------------------------------

// async-signal-safe: write(2) only, best effort.
void say(const char* text) noexcept {
  std::size_t length = std::strlen(text);
  while (length > 0) {
    ssize_t written = ::write(STDERR_FILENO, text, length);
    if (written <= 0) return;
    text += written;
    length -= static_cast<std::size_t>(written);
  }
}

void on_watchdog(int) noexcept {
  say("caf_remote: a session did not finish within the watchdog's time; giving up\n");
  _exit(1);  // the server dies with us (PR_SET_PDEATHSIG)
}

void set_handler(int signal_number, void (*handler)(int)) {
  struct sigaction action {};
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  bench::require(::sigaction(signal_number, &action, nullptr) == 0, "sigaction failed");
}

// bench::fail with errno's text appended.
[[noreturn]] void fail_errno(const std::string& what) {
  int error = errno;
  bench::fail(what + ": " + std::generic_category().message(error));
}

// The actor_system keeps a reference to its config: the caller owns both.
void configure(caf::actor_system_config& config, unsigned threads) {
  config.load<caf::io::middleman>();
  config.set("scheduler.max-threads", static_cast<size_t>(threads));
}

// --- the server (the forked child) ------------------------------------------------

struct server_state {
  int64_t expected = 0;  // messages of the current stream session
  int64_t received = 0;
  caf::actor report_to;  // who started the stream session
};
static_assert(default_constructed_state<server_state>);

// Answers pings (request/response) and counts stream sessions: a (start, n)
// request opens one, the n-th data message closes it with (done, n) to the
// requester. Data must arrive in order, all of it. (The per-message checks
// are `if (!ok) fail(...)`, not bench::require: that would build its message
// string for every message.)
caf::behavior server_actor(caf::stateful_actor<server_state>* self) {
  return {
      [=](ping_atom, int64_t sequence, std::string& payload) {
        if (payload.size() != remote::payload_bytes)
          bench::fail("server: a ping's payload has " + std::to_string(payload.size()) + " bytes");
        return caf::make_message(pong_atom::value, sequence, std::move(payload));
      },
      [=](start_atom, int64_t count) {
        auto& state = self->state;
        bench::require(state.received == state.expected, "server: a stream session started early");
        state.expected = count;
        state.received = 0;
        state.report_to = caf::actor_cast<caf::actor>(self->current_sender());
        return ready_atom::value;
      },
      [=](data_atom, int64_t sequence, const std::string& payload) {
        auto& state = self->state;
        if (sequence != state.received || payload.size() != remote::payload_bytes)
          bench::fail("server: data message " + std::to_string(sequence) + " arrived as number " +
                      std::to_string(state.received) + " of the session");
        if (++state.received == state.expected) self->send(state.report_to, done_atom::value, state.received);
      },
  };
}

// The child's whole life: publish, tell the parent the port, serve until the
// parent closes `stop` (or dies), shut down.
[[noreturn]] void run_server(unsigned threads, int port_out, int stop_in, pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_errno("prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != parent)  // the parent died before prctl took effect
    _exit(1);
  {
    caf::actor_system_config config;
    configure(config, threads);
    caf::actor_system system{config};
    auto server = system.spawn(server_actor);
    auto port = system.middleman().publish(server, 0, "127.0.0.1");
    if (!port) bench::fail("server: publish failed: " + system.render(port.error()));
    uint16_t bound = *port;
    if (::write(port_out, &bound, sizeof bound) != static_cast<ssize_t>(sizeof bound))
      fail_errno("server: writing the port to the parent");
    ::close(port_out);
    // Serve until the parent closes its end: read() returns 0 then.
    char byte;
    ssize_t got;
    while ((got = ::read(stop_in, &byte, 1)) != 0) {
      if (got > 0) bench::fail("server: unexpected data on the stop pipe");
      if (errno != EINTR) fail_errno("server: reading the stop pipe");
    }
    caf::anon_send_exit(server, caf::exit_reason::user_shutdown);
  }  // the actor_system's destructor waits for the actors and stops the middleman
  std::fflush(stderr);
  _exit(0);  // the parent's atexit handlers and stdio buffers are not ours
}

// --- the client (the parent) --------------------------------------------------------

// remote_ping_pong: sends request i+1 when response i has arrived, `count`
// times, then reports (done, count) to `report_to`.
void ping(caf::event_based_actor* self, const caf::actor& server, const caf::actor& report_to,
          const std::string& payload, int64_t sequence, int64_t count) {
  self->request(server, caf::infinite, ping_atom::value, sequence, payload)
      .then(
          [=](pong_atom, int64_t echoed, const std::string& echoed_payload) {
            if (echoed != sequence || echoed_payload != payload)
              bench::fail("client: pong " + std::to_string(echoed) + " for ping " + std::to_string(sequence));
            if (sequence + 1 < count)
              ping(self, server, report_to, payload, sequence + 1, count);
            else
              self->send(report_to, done_atom::value, count);
          },
          [=](caf::error& error) { bench::fail("client: ping failed: " + self->system().render(error)); });
}

caf::behavior pinger(caf::event_based_actor* self, const caf::actor& server, const caf::actor& report_to) {
  return {
      [=](start_atom, int64_t count) { ping(self, server, report_to, make_payload(), 0, count); },
  };
}

// Waits for (done, n) and returns n; a lost server or the deadline fails the run.
int64_t await_done(caf::scoped_actor& self) {
  int64_t result = -1;
  self->receive(
      [&](done_atom, int64_t count) { result = count; },
      [&](caf::down_msg& down) { bench::fail("client: the server went down: " + self->system().render(down.reason)); },
      caf::after(deadline) >> [] { bench::fail("client: no done message within the deadline"); });
  return result;
}

// One session of remote_ping_pong; returns round trips per second.
double ping_pong_session(caf::actor_system& system, caf::scoped_actor& self, const caf::actor& server, int64_t count) {
  auto client = system.spawn(pinger, server, caf::actor_cast<caf::actor>(self));
  bench::stopwatch clock;
  self->send(client, start_atom::value, count);
  int64_t round_trips = await_done(self);
  double seconds = clock.seconds();
  bench::require(round_trips == count, "client: wrong number of round trips");
  caf::anon_send_exit(client, caf::exit_reason::user_shutdown);
  return static_cast<double>(count) / seconds;
}

// One session of remote_stream; returns messages per second. A plain thread
// (the scoped actor) sends all `count` messages, then waits for the server's
// (done, count): the timing covers delivery.
double stream_session(caf::scoped_actor& self, const caf::actor& server, int64_t count) {
  // The start request is answered before the clock starts: the server is
  // reachable and expects `count` messages.
  self->request(server, deadline, start_atom::value, count)
      .receive([](ready_atom) {},
               [&](caf::error& error) { bench::fail("client: stream start failed: " + self->system().render(error)); });
  const std::string payload = make_payload();
  bench::stopwatch clock;
  for (int64_t i = 0; i < count; ++i) self->send(server, data_atom::value, i, payload);
  int64_t received = await_done(self);
  double seconds = clock.seconds();
  bench::require(received == count, "client: the server counted the wrong number of messages");
  return static_cast<double>(count) / seconds;
}

// Runs one workload: forks the server, connects, runs the warm-up and `reps`
// timed sessions, shuts both sides down. Returns one rate per repetition.
std::vector<double> measure(remote::workload w, const remote::params& p, unsigned threads, int reps) {
  // fork() copies only this thread: the previous workload's actor system must be gone.
  bench::require(bench::thread_count() == 1, "caf_remote: threads are still running before fork()");
  int port_pipe[2];
  int stop_pipe[2];
  if (::pipe2(port_pipe, O_CLOEXEC) != 0 || ::pipe2(stop_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
  std::fflush(nullptr);  // the child must not flush our buffered output again
  pid_t parent = ::getpid();
  pid_t child = ::fork();
  if (child < 0) fail_errno("fork");
  if (child == 0) {
    ::close(port_pipe[0]);
    ::close(stop_pipe[1]);
    run_server(threads, port_pipe[1], stop_pipe[0], parent);
  }
  ::close(port_pipe[1]);
  ::close(stop_pipe[0]);

  // The server writes its port once it is published; EOF means it died.
  uint16_t port = 0;
  ssize_t got;
  while ((got = ::read(port_pipe[0], &port, sizeof port)) < 0 && errno == EINTR) {
  }
  bench::require(got == static_cast<ssize_t>(sizeof port), "client: the server died before publishing");
  ::close(port_pipe[0]);

  std::vector<double> rates;
  {
    caf::actor_system_config config;
    configure(config, threads);
    caf::actor_system system{config};
    ::alarm(watchdog_seconds);
    auto connected = system.middleman().remote_actor("127.0.0.1", port);
    if (!connected)
      bench::fail("client: remote_actor(127.0.0.1, " + std::to_string(port) +
                  ") failed: " + system.render(connected.error()));
    caf::actor server = *connected;
    caf::scoped_actor self{system};
    self->monitor(server);  // a lost connection fails the run at once (await_done)
    int64_t count = p.count(w);
    for (int session = 0; session <= reps; ++session) {
      ::alarm(watchdog_seconds);
      int64_t n = session == 0 ? remote::params::warmup(count) : count;
      double rate = w == remote::workload::ping_pong ? ping_pong_session(system, self, server, n)
                                                     : stream_session(self, server, n);
      if (session > 0) rates.push_back(rate);
    }
    self->demonitor(server);
  }  // the client's actor system goes first: the server sees a closed connection
  ::alarm(watchdog_seconds);
  ::close(stop_pipe[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) != child) {
    if (errno != EINTR) fail_errno("waitpid");
  }
  ::alarm(0);
  bench::require(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the server process failed");
  return rates;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = remote::parse_options(argc, argv);
  // A write to a closed pipe or socket must fail with EPIPE, not kill us silently.
  set_handler(SIGPIPE, SIG_IGN);
  set_handler(SIGALRM, on_watchdog);
  std::fprintf(stderr, "caf_remote: CAF %d.%d.%d, %u worker threads per process, %d reps, %s parameters\n",
               CAF_MAJOR_VERSION, CAF_MINOR_VERSION, CAF_PATCH_VERSION, opts.threads, opts.reps,
               opts.quick ? "quick" : "full");
  for (auto w : remote::all_workloads) {
    if (opts.selected(w)) remote::report("caf_remote", w, measure(w, opts.parameters(), opts.threads, opts.reps));
  }
  return 0;
}
