// ipc_common.hpp — what every cross-process workload program in bench/ shares:
// the command line, the parameters of the ipc_* workloads of WORKLOADS.md, the
// 64-byte message, the two-process harness (fork, peer-death handling, watchdog)
// and the workload drivers. A program supplies only the mechanism: a channel made
// in the parent before fork() that each process turns into its endpoint, so every
// OS baseline (ipc_baselines) is measured the same way. troupe_ipc shares the
// command line, parameters and names but not the harness: it measures troupe's
// own deployment path (spawn_node, remote spawn, the shared-memory links).
//
//   auto opts = ipc::parse_options(argc, argv, mechanism_names);  // --mechanism NAME
//   ipc::install_handlers(argv[0], nullptr);
//   auto rates = ipc::measure(ipc::workload::ping_pong, [] { return pipe_channel{}; },
//                             opts.parameters(), opts.reps);
//
// Roles: the parent is side A (it drives and times), the forked child is side B.
// Every session (one untimed warm-up, then one per repetition) starts with a
// start/ready round trip over the mechanism itself, and A starts the clock when
// it has B's `ready`, so both processes are running. No sleeps anywhere.
//
// Failure handling: every error prints one line to stderr and exits non-zero.
// The child dies with the parent (PR_SET_PDEATHSIG); the parent notices a failed
// child at once (SIGCHLD), and an alarm() watchdog ends a session that hangs.
// Before exiting, the parent runs the program's cleanup hook (e.g. IPC_RMID).
//
// Thread safety: single-threaded processes only (fork() copies one thread).
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>

#include "bench_common.hpp"

namespace troupe::bench::ipc {

// --- workloads, message, parameters ---------------------------------------------

enum class workload { ping_pong, stream };

inline constexpr std::array<std::string_view, 2> workload_names = {"ipc_ping_pong", "ipc_stream"};
inline constexpr std::array<std::string_view, 2> workload_units = {"round_trips/s", "msgs/s"};

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }
inline std::string_view unit_of(workload w) { return workload_units[static_cast<std::size_t>(w)]; }

enum class message_kind : std::uint64_t { start = 1, ready, ping, pong, data, ack };

// The unit every mechanism moves: 64 bytes, one cache line. The sequence and
// kind let the receiver check order and loss; the payload is the rest.
struct message {
  std::uint64_t sequence;
  message_kind kind;
  std::array<std::byte, 48> payload;
};
static_assert(sizeof(message) == 64 && std::is_trivially_copyable_v<message>);

// The two sides of a channel: A is the parent (it times), B the forked child.
enum class side { a, b };

// What a mechanism gives each process. send/receive carry messages in both
// directions (ping-pong, and the ready/ack handshakes); stream_send (side A
// only) and stream_receive (side B only) carry the ipc_stream data, which lets
// a mechanism use a different path for it (a ring instead of a handoff slot).
// Calls block until done and end the process on error.
//
// The drivers alternate on send/receive: after a send() a side sends again
// only once it has received something the peer sent after reading that
// message. So send/receive may be a capacity-1 handoff (shm_spin's is).
template <class Endpoint>
concept endpoint = requires(Endpoint& e, message& out, const message& in) {
  e.send(in);
  e.receive(out);
  e.stream_send(in);
  e.stream_receive(out);
};

// A channel is made in the parent before fork(); after fork() each process
// calls become() once with its side (closing what the other side owns) and
// keeps the endpoint. The parent destroys the channel after the child exited.
template <class Channel>
concept channel = requires(Channel& c) {
  { c.become(side::a) } -> endpoint;
};

// Counts of WORKLOADS.md; change them there too. The warm-up session moves a
// tenth of the count, untimed.
struct params {
  std::int64_t ping_pong_round_trips;
  std::int64_t stream_messages;

  static params full() { return params{100'000, 1'000'000}; }
  static params quick() { return params{10'000, 100'000}; }

  std::int64_t count(workload w) const { return w == workload::ping_pong ? ping_pong_round_trips : stream_messages; }
};

// --- command line ---------------------------------------------------------------

struct options {
  bool quick = false;
  int reps = 0;                   // 0 is replaced by the default (5, quick 3)
  std::vector<std::string> only;  // empty: every workload
  std::string mechanism;          // one of the program's mechanisms, or "all"
  unsigned threads = 0;           // --threads; 0 when not given

  bool selected(std::string_view name) const {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  }
  bool selected(workload w) const { return selected(name_of(w)); }
  params parameters() const { return quick ? params::quick() : params::full(); }
};

[[noreturn]] inline void usage_error(const char* program, const std::string& why,
                                     std::span<const std::string_view> mechanisms) {
  std::fprintf(stderr,
               "%s: %s\n"
               "usage: %s %s [--quick] [--reps R] [--only NAME[,NAME...]] [--threads N]\n"
               "  --mechanism NAME  print `workload,unit,median,min,max` CSV for one mechanism\n"
               "                    (optional in a program with only one: troupe_ipc);\n"
               "  --mechanism all   print a table of every mechanism (for people)\n"
               "  --threads N       worker threads of an actor system (troupe_ipc's parent node);\n"
               "                    ipc_baselines ignores it (one thread per side)\n"
               "mechanisms:",
               program, why.c_str(), program, mechanisms.size() == 1 ? "[--mechanism NAME]" : "--mechanism NAME|all");
  for (auto name : mechanisms) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\nworkloads:");
  for (auto name : workload_names) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\n");
  std::exit(2);  // NOLINT(concurrency-mt-unsafe): a usage error, before any thread starts
}

// Same flags as bench_common.hpp's parse_options, plus --mechanism. --only
// accepts the actor workload names too (bench/compare passes one list to every
// program); they select nothing here. --mechanism is required when the program
// has several (ipc_baselines); a program with one (troupe_ipc) defaults to it.
// `more_workloads`: names of other workloads the program implements (ipc_baselines'
// port_* baselines).
inline options parse_options(int argc, char** argv, std::span<const std::string_view> mechanisms,
                             std::span<const std::string_view> more_workloads = {}) {
  const char* program = argc > 0 ? argv[0] : "ipc";
  options result;
  auto positive = [&](std::string_view flag, const char* text) {
    char* end = nullptr;
    long value = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || value <= 0 || value > 1'000'000)
      usage_error(program, std::string(flag) + " needs a positive integer, got '" + text + "'", mechanisms);
    return static_cast<int>(value);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(program, std::string(arg) + " needs a value", mechanisms);
      return argv[++i];
    };
    if (arg == "--quick") {
      result.quick = true;
    } else if (arg == "--threads") {
      result.threads = static_cast<unsigned>(positive(arg, value()));
    } else if (arg == "--reps") {
      result.reps = positive(arg, value());
    } else if (arg == "--mechanism") {
      std::string_view name = value();
      const bool all = name == "all" && mechanisms.size() > 1;
      if (!all && std::find(mechanisms.begin(), mechanisms.end(), name) == mechanisms.end())
        usage_error(program, "unknown mechanism '" + std::string(name) + "'", mechanisms);
      result.mechanism = name;
    } else if (arg == "--only") {
      std::string_view list = value();
      while (!list.empty()) {
        auto comma = list.find(',');
        auto name = list.substr(0, comma);
        bool ours = std::find(workload_names.begin(), workload_names.end(), name) != workload_names.end();
        bool actor =
            std::find(bench::workload_names.begin(), bench::workload_names.end(), name) != bench::workload_names.end();
        bool more = std::find(more_workloads.begin(), more_workloads.end(), name) != more_workloads.end();
        if (!ours && !actor && !more) usage_error(program, "unknown workload '" + std::string(name) + "'", mechanisms);
        result.only.emplace_back(name);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      }
    } else if (arg == "--help" || arg == "-h") {
      usage_error(program, "help", mechanisms);
    } else {
      usage_error(program, "unknown argument '" + std::string(arg) + "'", mechanisms);
    }
  }
  if (result.mechanism.empty() && mechanisms.size() == 1) result.mechanism = mechanisms.front();
  if (result.mechanism.empty()) usage_error(program, "--mechanism is required", mechanisms);
  if (result.reps == 0) result.reps = result.quick ? 3 : 5;
  return result;
}

// --- failing, from ordinary code and from signal handlers ------------------------

namespace detail {

inline const char* program_name = "ipc";
inline char context[96] = "";  // "<mechanism> <workload>", for messages
// Async-signal-safe; run by the parent before it exits on a failure.
inline void (*cleanup_hook)() noexcept = nullptr;
// Parent: the live child, 0 when there is none or it was reaped. A signal
// handler reads and writes these, hence volatile sig_atomic_t (pid_t is int).
inline volatile std::sig_atomic_t child_pid = 0;
inline volatile std::sig_atomic_t is_child = 0;

// async-signal-safe output: write(2) only, best effort (nothing to do if it fails)
inline void say(const char* text) noexcept {
  std::size_t length = std::strlen(text);
  while (length > 0) {
    ssize_t written = ::write(STDERR_FILENO, text, length);
    if (written <= 0) return;
    text += written;
    length -= static_cast<std::size_t>(written);
  }
}

inline void say_number(int value) noexcept {
  char digits[16];
  char* p = digits + sizeof digits;
  *--p = '\0';
  unsigned magnitude = value < 0 ? 0u - static_cast<unsigned>(value) : static_cast<unsigned>(value);
  do {
    *--p = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  if (value < 0) *--p = '-';
  say(p);
}

inline void say_prefix() noexcept {
  say(program_name);
  say(is_child ? " (child, " : " (parent, ");
  say(context);
  say("): ");
}

// Ends this process after a failure. Async-signal-safe.
[[noreturn]] inline void terminate_after_failure() noexcept {
  if (is_child) _exit(1);  // the parent sees a failed child (SIGCHLD) and cleans up
  pid_t child = child_pid;
  child_pid = 0;  // so that the SIGCHLD of our own kill does not read as the peer failing
  if (child > 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  if (cleanup_hook != nullptr) cleanup_hook();
  _exit(1);
}

}  // namespace detail

[[noreturn]] inline void fatal(const std::string& what) noexcept {
  detail::say_prefix();
  detail::say(what.c_str());
  detail::say("\n");
  detail::terminate_after_failure();
}

// fatal() with errno's text appended.
[[noreturn]] inline void fatal_errno(const std::string& what) noexcept {
  int error = errno;
  fatal(what + ": " + std::generic_category().message(error));
}

// Writes all of `size` bytes to `fd` (retrying short writes and EINTR); any
// other failure is fatal (EPIPE: the peer is gone).
inline void write_all(int fd, const void* bytes, std::size_t size) noexcept {
  auto* data = static_cast<const std::byte*>(bytes);
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      fatal_errno("write");
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

// An owned file descriptor (closed on destruction; a failed close is fatal).
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0 && ::close(std::exchange(fd_, -1)) != 0) fatal_errno("close");
  }

 private:
  int fd_ = -1;
};

// Most calls return -1 and set errno on failure.
template <class Result>
Result check(Result result, const char* what) noexcept {
  if (result == static_cast<Result>(-1)) fatal_errno(what);
  return result;
}

// Both ends of one loopback TCP connection with TCP_NODELAY, made before
// fork() so that neither process waits for the other: listen on 127.0.0.1 at
// an ephemeral port, connect, accept, close the listener. Returns (the
// connecting end, the accepted end).
inline std::pair<unique_fd, unique_fd> loopback_tcp_pair() {
  unique_fd listener{check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket(listen)")};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  check(::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), "bind(127.0.0.1:0)");
  check(::listen(listener.get(), 1), "listen");
  socklen_t length = sizeof address;
  check(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), "getsockname");
  unique_fd client{check(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket(connect)")};
  // Blocking connect to loopback completes through the listen backlog.
  while (::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINTR) fatal_errno("connect(127.0.0.1)");
  }
  unique_fd server{check(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept4")};
  for (int fd : {client.get(), server.get()}) {
    int on = 1;
    check(::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on), "setsockopt(TCP_NODELAY)");
  }
  return {std::move(client), std::move(server)};
}

inline void set_context(std::string_view mechanism, std::string_view what) {
  std::snprintf(detail::context, sizeof detail::context, "%.*s %.*s", static_cast<int>(mechanism.size()),
                mechanism.data(), static_cast<int>(what.size()), what.data());
}

// --- signals --------------------------------------------------------------------

// A session (warm-up or repetition) that takes longer than this has hung.
inline constexpr unsigned watchdog_seconds = 120;

namespace detail {

// SIGCHLD in the parent: a child that exited 0 finished its side (everything it
// sent is already in flight); any other end means the measurement is void.
inline void on_child_exit(int) noexcept {
  int saved_errno = errno;
  pid_t child = child_pid;
  int status = 0;
  if (child > 0 && ::waitpid(child, &status, WNOHANG) == child) {
    child_pid = 0;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      say_prefix();
      if (WIFSIGNALED(status)) {
        say("the peer process (side B) was killed by signal ");
        say_number(WTERMSIG(status));
      } else {
        say("the peer process (side B) exited with status ");
        say_number(WEXITSTATUS(status));
      }
      say("\n");
      terminate_after_failure();
    }
  }
  errno = saved_errno;
}

inline void on_watchdog(int) noexcept {
  say_prefix();
  say("a session did not finish within ");
  say_number(static_cast<int>(watchdog_seconds));
  say(" s (watchdog); giving up\n");
  terminate_after_failure();
}

// SIGINT/SIGTERM/SIGHUP in the parent: clean up, then die of the signal.
inline void on_interrupt(int signal_number) noexcept {
  pid_t child = child_pid;
  child_pid = 0;
  if (child > 0) ::kill(child, SIGKILL);
  if (cleanup_hook != nullptr) cleanup_hook();
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

inline void set_handler(int signal_number, void (*handler)(int), int flags) {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_flags = flags;
  check(sigemptyset(&action.sa_mask), "sigemptyset");
  check(::sigaction(signal_number, &action, nullptr), "sigaction");
}

inline void block_child_signal(bool block) {
  sigset_t set;
  check(sigemptyset(&set), "sigemptyset");
  check(sigaddset(&set, SIGCHLD), "sigaddset");
  // pthread_sigmask, not sigprocmask: the calling thread's mask, defined with threads.
  const int error = ::pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
  if (error != 0) fatal("pthread_sigmask: " + std::generic_category().message(error));
}

// In the child right after fork(): die with the parent, leave cleanup to it.
inline void become_child(pid_t parent) {
  is_child = 1;
  child_pid = 0;
  set_handler(SIGINT, SIG_DFL, 0);
  set_handler(SIGTERM, SIG_DFL, 0);
  set_handler(SIGHUP, SIG_DFL, 0);
  set_handler(SIGCHLD, SIG_DFL, 0);
  block_child_signal(false);
  check(::prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl(PR_SET_PDEATHSIG)");
  if (::getppid() != parent)  // the parent died before prctl took effect
    _exit(1);
}

// Waits for a child that has finished its side; a failure ends the process.
inline void wait_for_peer(pid_t child) {
  for (;;) {
    if (child_pid == 0) return;  // on_child_exit reaped it, and it had exited 0
    int status = 0;
    pid_t reaped = ::waitpid(child, &status, 0);
    if (reaped == child) {
      child_pid = 0;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) fatal("the peer process (side B) failed");
      return;
    }
    if (errno == EINTR || (errno == ECHILD && child_pid == 0)) continue;
    fatal_errno("waitpid");
  }
}

}  // namespace detail

// Once, at the start of main(). `cleanup` (may be null) must be async-signal-safe.
inline void install_handlers(const char* program, void (*cleanup)() noexcept) {
  detail::program_name = program;
  detail::cleanup_hook = cleanup;
  // SIGPIPE would kill us silently; write() then fails with EPIPE and says so.
  detail::set_handler(SIGPIPE, SIG_IGN, 0);
  detail::set_handler(SIGCHLD, detail::on_child_exit, SA_RESTART | SA_NOCLDSTOP);
  detail::set_handler(SIGALRM, detail::on_watchdog, SA_RESTART);
  detail::set_handler(SIGINT, detail::on_interrupt, 0);
  detail::set_handler(SIGTERM, detail::on_interrupt, 0);
  detail::set_handler(SIGHUP, detail::on_interrupt, 0);
}

// --- the workload drivers -----------------------------------------------------------

namespace detail {

inline void expect(const message& m, message_kind kind, std::uint64_t sequence) noexcept {
  if (m.kind != kind || m.sequence != sequence)
    fatal("unexpected message: kind " + std::to_string(static_cast<std::uint64_t>(m.kind)) + " sequence " +
          std::to_string(m.sequence) + ", expected kind " + std::to_string(static_cast<std::uint64_t>(kind)) +
          " sequence " + std::to_string(sequence));
}

inline message make_message(message_kind kind, std::uint64_t sequence) noexcept {
  message m{};
  m.kind = kind;
  m.sequence = sequence;
  return m;
}

// One session of side A; returns the rate (count / seconds).
template <endpoint Endpoint>
double run_side_a(Endpoint& e, workload w, std::int64_t count) {
  auto n = static_cast<std::uint64_t>(count);
  // start/ready: B is running and waiting when the clock starts. A starts
  // (rather than B announcing itself) to keep the sends alternating.
  e.send(make_message(message_kind::start, 0));
  message m{};
  e.receive(m);
  expect(m, message_kind::ready, 0);
  stopwatch clock;
  if (w == workload::ping_pong) {
    for (std::uint64_t i = 0; i < n; ++i) {
      m = make_message(message_kind::ping, i);
      e.send(m);
      e.receive(m);
      expect(m, message_kind::pong, i);
    }
  } else {
    for (std::uint64_t i = 0; i < n; ++i) e.stream_send(make_message(message_kind::data, i));
    // B acknowledges after receiving the last one: the timing covers delivery.
    e.receive(m);
    expect(m, message_kind::ack, n);
  }
  double seconds = clock.seconds();
  return static_cast<double>(count) / seconds;
}

template <endpoint Endpoint>
void run_side_b(Endpoint& e, workload w, std::int64_t count) {
  auto n = static_cast<std::uint64_t>(count);
  message m{};
  e.receive(m);
  expect(m, message_kind::start, 0);
  e.send(make_message(message_kind::ready, 0));
  if (w == workload::ping_pong) {
    for (std::uint64_t i = 0; i < n; ++i) {
      e.receive(m);
      expect(m, message_kind::ping, i);
      m.kind = message_kind::pong;
      e.send(m);
    }
  } else {
    for (std::uint64_t i = 0; i < n; ++i) {
      e.stream_receive(m);
      expect(m, message_kind::data, i);
    }
    e.send(make_message(message_kind::ack, n));
  }
}

}  // namespace detail

// Runs workload `w` between this process (side A) and a forked child (side B)
// over a fresh channel from make_channel(): one untimed warm-up session, then
// `reps` timed ones. Returns one rate per repetition.
// (clang-format 14 would join the requires-clause to the declaration)
// clang-format off
template <class MakeChannel>
  requires channel<std::invoke_result_t<MakeChannel&>>
std::vector<double> measure(workload w, MakeChannel&& make_channel, const params& p, int reps) {
  // clang-format on
  std::int64_t count = p.count(w);
  std::int64_t warmup = std::max<std::int64_t>(1, count / 10);
  auto shared = make_channel();
  std::fflush(nullptr);  // the child must not flush our buffered output again
  pid_t parent = ::getpid();
  // Blocked until child_pid is set, so that an early death of the child is seen.
  detail::block_child_signal(true);
  pid_t child = check(::fork(), "fork");
  if (child == 0) {
    detail::become_child(parent);
    auto self = shared.become(side::b);
    for (int session = 0; session <= reps; ++session) {
      ::alarm(watchdog_seconds);
      detail::run_side_b(self, w, session == 0 ? warmup : count);
    }
    _exit(0);  // the parent's atexit handlers and stdio buffers are not ours
  }
  detail::child_pid = child;
  detail::block_child_signal(false);
  std::vector<double> rates;
  {
    auto self = shared.become(side::a);
    for (int session = 0; session <= reps; ++session) {
      ::alarm(watchdog_seconds);
      double rate = detail::run_side_a(self, w, session == 0 ? warmup : count);
      if (session > 0) rates.push_back(rate);
    }
    ::alarm(0);
  }
  detail::wait_for_peer(child);
  return rates;
}

}  // namespace troupe::bench::ipc
