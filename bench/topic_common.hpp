// topic_common.hpp — what the topic workload programs share (troupe_topics:
// troupe's topics; caf_topics: CAF 0.17's local groups): the command line, the
// names, units and counts of the topic_* workloads of WORKLOADS.md, and the
// message they publish. Both run the same workloads with the same counts and
// print the CSV contract of WORKLOADS.md.
//
//   auto opts = topic::parse_options(argc, argv);
//   for (auto w : topic::all_workloads)
//     if (opts.selected(topic::name_of(w))) bench::run_reps(topic::name_of(w), topic::unit, opts.reps, [&] { ... });
//
// A family of its own (like remote_common.hpp's), so that adding it changes
// nothing in troupe_workloads' and caf_workloads' output. Kept C++17-compatible
// on purpose: caf_topics is built as C++17 (CAF 0.17).
#pragma once

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "bench_common.hpp"

namespace troupe::bench::topic {

// --- workloads, message, parameters ---------------------------------------------

enum class workload { fan_out, fan_out_text, fan_out_shm, fan_out_tcp };

inline constexpr std::array<workload, 4> all_workloads = {workload::fan_out, workload::fan_out_text,
                                                          workload::fan_out_shm, workload::fan_out_tcp};
inline constexpr std::array<std::string_view, 4> workload_names = {"topic_fan_out", "topic_fan_out_text",
                                                                   "topic_fan_out_shm", "topic_fan_out_tcp"};
// One delivery: one publication reaching one subscriber.
inline constexpr std::string_view unit = "deliveries/s";

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }

// The rows with subscribers in other processes: topic_fan_out_shm (troupe's
// shared-memory link) and topic_fan_out_tcp (TCP on 127.0.0.1).
inline bool across_processes(workload w) { return w == workload::fan_out_shm || w == workload::fan_out_tcp; }

// topic_fan_out_text's message carries this text (and the sequence number):
// a payload that costs an allocation to copy.
inline const std::string& text_payload() {
  static const std::string text(100, 't');
  return text;
}

// Counts of WORKLOADS.md; change them there too.
struct params {
  std::int64_t subscribers;   // S, all in the publisher's process
  std::int64_t publications;  // N: each reaches every subscriber
  std::int64_t chunk;         // publications per activation of the publisher
  // The cross-process rows: `nodes` child processes with `node_subscribers`
  // each, `node_publications` publications from the main process.
  std::int64_t nodes;
  std::int64_t node_subscribers;
  std::int64_t node_publications;

  static params full() { return params{100, 20'000, 1'000, 3, 100, 50'000}; }
  static params quick() { return params{100, 5'000, 1'000, 3, 100, 5'000}; }

  std::int64_t deliveries() const { return subscribers * publications; }
};

// --- command line ---------------------------------------------------------------

// bench_common.hpp's command line, with this family's workload names.
inline options parse_options(int argc, char** argv) {
  return bench::parse_options(argc, argv, {workload_names.begin(), workload_names.end()});
}
inline params parameters_for(const options& opts) { return opts.quick ? params::quick() : params::full(); }

// --- child processes of the cross-process rows ----------------------------------

// The two pipe ends a child started by start_child() finds open.
inline constexpr int child_channel_fd = 3;  // what main() and the child tell each other once
inline constexpr int child_stop_fd = 4;     // read by the child: EOF when main() closes its end

// Starts this executable again as a child process (fork, then exec of
// /proc/self/exe with `args` as argv[1..]), with `channel` and `stop` as its
// fds 3 and 4, dying with the calling thread (PR_SET_PDEATHSIG). Exec, not a
// bare fork: a forked child would start with this process's heap, and reusing
// what earlier workloads left there (a runtime's message pool) would copy it
// page by page (it made troupe's TCP row 4x slower after topic_fan_out). Returns
// the child's pid, or -1 with errno set. Every other fd should be O_CLOEXEC.
inline pid_t start_child(const std::vector<std::string>& args, int channel, int stop) {
  std::vector<std::string> strings;
  strings.reserve(args.size() + 1);
  strings.emplace_back("/proc/self/exe");
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t child = ::fork();
  if (child != 0) return child;
  // The child, until exec: async-signal-safe calls only.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
  // Above the two target fds first, so that neither dup2 overwrites the other's source.
  const int high_channel = ::fcntl(channel, F_DUPFD_CLOEXEC, 10);
  const int high_stop = ::fcntl(stop, F_DUPFD_CLOEXEC, 10);
  // dup2 clears FD_CLOEXEC on the new fd: these two survive the exec.
  if (high_channel < 0 || high_stop < 0 || ::dup2(high_channel, child_channel_fd) < 0 ||
      ::dup2(high_stop, child_stop_fd) < 0)
    ::_exit(127);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

// --- failing in the cross-process rows ----------------------------------------
//
// The children of the running repetition are kept in a plain array, so that a
// failure (any thread), the watchdog and the SIGCHLD handler can kill and reap
// them with async-signal-safe calls only (kill, waitpid, sigaction, write).
// The first failure ends the process, without an actor system's or a node's
// destructor (which could wait on a dead peer); the others leave it to it.

inline constexpr std::size_t max_children = 16;
inline std::array<pid_t, max_children> children{};
inline const char* program_name = "";  // the first word of a failure line: set by main()
inline const char* role = "main";      // which process a failure line comes from
// Run by end_children() once the children are reaped (a program's own
// clean-up, e.g. its nodes' runtime files); async-signal-safe.
inline void (*after_children)() noexcept = nullptr;
// Set by the first failure: the one that ends the process.
inline std::atomic<bool> ending{false};

// Kills and reaps every child still on the list, then runs after_children;
// async-signal-safe.
inline void end_children() noexcept {
  // The children killed here must not look like a failure (on_child_exit).
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  (void)::sigaction(SIGCHLD, &action, nullptr);
  for (pid_t& pid : children) {
    if (pid <= 0) continue;
    (void)::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    pid = 0;
  }
  if (after_children != nullptr) after_children();
}

// The first failure (any thread, or a signal handler) ends the process; true
// for the others, which must leave it to the first.
inline bool another_failure_is_ending() noexcept {
  // relaxed: only which exchange comes first matters; no data is handed over through the flag.
  return ending.exchange(true, std::memory_order_relaxed);
}

// async-signal-safe: write(2) only, best effort.
inline void say(const char* text) noexcept {
  std::size_t length = std::strlen(text);
  while (length > 0) {
    const ssize_t written = ::write(STDERR_FILENO, text, length);
    if (written <= 0) return;
    text += written;
    length -= static_cast<std::size_t>(written);
  }
}

// Ends the process from any thread: the children are killed and reaped first.
[[noreturn]] inline void fail(const std::string& what) {
  if (another_failure_is_ending()) {
    for (;;) ::pause();  // the first failure's _exit() ends this thread too
  }
  std::fprintf(stderr, "%s (%s): FAILED: %s\n", program_name, role, what.c_str());
  std::fflush(nullptr);
  end_children();
  ::_exit(1);
}

inline void require(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

[[noreturn]] inline void fail_errno(const std::string& what) {
  const int error = errno;
  fail(what + ": " + std::generic_category().message(error));
}

inline void on_watchdog(int) {
  if (another_failure_is_ending()) return;
  say(program_name);
  say(": a repetition did not finish within the watchdog's time; giving up\n");
  end_children();
  ::_exit(1);
}

// Installed while the children of a cross-process row must be alive.
inline void on_child_exit(int) {
  if (another_failure_is_ending()) return;
  say(program_name);
  say(" (main): FAILED: a subscriber process exited during the run\n");
  end_children();
  ::_exit(1);
}

inline void set_handler(int signal_number, void (*handler)(int), int flags = 0) {
  struct sigaction action {};
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  if (::sigaction(signal_number, &action, nullptr) != 0) fail_errno("sigaction");
}

}  // namespace troupe::bench::topic
