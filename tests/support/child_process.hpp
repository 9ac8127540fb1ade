// child_process: start, wait for and kill the child programs of a test, with
// deadlines and without sleeps.
//
// A test that starts programs must never hang on one and never leave one behind:
// wait_for_exit() waits on a pidfd with poll() (the kernel wakes us when the child
// exits; no sleep-and-recheck), kill_child() is kill -9 plus a bounded reap, and
// start_child() gives every child PR_SET_PDEATHSIG(SIGKILL) so it dies with the
// test even if the test is killed -9 itself. run_command() runs a short tool
// (e.g. `ip`) to completion and hands back its exit status, stdout and stderr.
//
//   const pid_t pid = start_child({current_executable(), "--role", "x"}, environment_with({}), {});
//   ...
//   std::optional<int> status = wait_for_exit(pid, std::chrono::seconds(5));  // nullopt: still running
//   if (!status) status = kill_child(pid);                                    // wait status, reaped
//
// Thread safety: all functions may be called from any thread. `pid` arguments must
// be unreaped children of this process (a reaped pid may already name another
// process). PR_SET_PDEATHSIG fires when the *thread* that started the child ends,
// not only the process: start long-lived children from the test's main thread.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sched.h>  // setns: a GNU extension (g++ and clang++ define _GNU_SOURCE for C++)
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>  // environ and close_range: GNU extensions too

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "support/unique_fd.hpp"

namespace troupe::test_support {

// Generous enough for a loaded two-core machine running a sanitizer build; a
// safety net against hangs, never a timing assertion.
inline constexpr std::chrono::seconds default_child_deadline{10};

[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// "exited with status 3" / "killed by signal 9 (Killed)", for failure messages.
inline std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int signal_number = WTERMSIG(status);
    // sigdescr_np: strsignal's text without its static buffer (MT-safe; glibc 2.32).
    const char* description = ::sigdescr_np(signal_number);
    return "killed by signal " + std::to_string(signal_number) + " (" +
           (description != nullptr ? description : "unknown signal") + ")";
  }
  return "wait status " + std::to_string(status);
}

// `a b c`, for failure messages.
inline std::string quote_command(const std::vector<std::string>& argv) {
  std::string text = "`";
  for (std::size_t i = 0; i < argv.size(); ++i) text += (i == 0 ? "" : " ") + argv[i];
  return text + "`";
}

// Milliseconds until `deadline` for poll(): rounded up (so a poll that returns
// "nothing yet" really is past the deadline), 0 once it has passed.
inline int poll_timeout_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = deadline - std::chrono::steady_clock::now();
  if (left <= std::chrono::steady_clock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<decltype(ms)>(ms, INT_MAX));
}

inline unique_fd open_pidfd(pid_t pid) { return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

// Waits up to `timeout` for child `pid` to exit and reaps it. Returns its wait
// status, or nullopt if it is still running at the deadline (then it is not
// reaped and may be waited for again).
inline std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Opened before the first waitpid: an exit after that check makes it readable,
  // so poll() below cannot miss it.
  const unique_fd pidfd = open_pidfd(pid);
  if (!pidfd) throw_errno("pidfd_open(" + std::to_string(pid) + ") (not an unreaped child?)");
  for (;;) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped == pid) return status;
    if (reaped < 0 && errno != EINTR) throw_errno("waitpid(" + std::to_string(pid) + ")");
    const int wait_ms = poll_timeout_until(deadline);
    if (reaped == 0 && wait_ms == 0) return std::nullopt;
    pollfd exited{pidfd.get(), POLLIN, 0};
    if (::poll(&exited, 1, wait_ms) < 0 && errno != EINTR) throw_errno("poll(pidfd)");
  }
}

// kill -9 and reap; returns the wait status (normally "killed by signal 9", or
// the exit status if the child had already exited). Throws if the child is not
// gone by the deadline (e.g. stuck in uninterruptible sleep).
inline int kill_child(pid_t pid, std::chrono::milliseconds timeout = default_child_deadline) {
  // Safe against pid reuse: an unreaped child's pid cannot be reused.
  if (::kill(pid, SIGKILL) != 0) throw_errno("kill(" + std::to_string(pid) + ", SIGKILL)");
  const std::optional<int> status = wait_for_exit(pid, timeout);
  if (!status) {
    throw std::runtime_error("child " + std::to_string(pid) + " still running " + std::to_string(timeout.count()) +
                             " ms after SIGKILL");
  }
  return *status;
}

// The running test executable's path, to start it again in a helper role.
inline std::string current_executable() {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) throw std::system_error(error, "readlink /proc/self/exe");
  return self.string();
}

// `name` found in $PATH, then in the sbin directories a non-root PATH often
// lacks (where iproute2's `ip` lives). A name with a '/' is returned as is.
inline std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  std::vector<std::string> directories;
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const std::size_t colon = rest.find(':');
      directories.emplace_back(rest.substr(0, colon));
      rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    }
  }
  for (const char* fallback : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) directories.emplace_back(fallback);
  for (const std::string& directory : directories) {
    if (directory.empty()) continue;
    std::string candidate = directory;  // not const: returned by move
    candidate += '/';
    candidate += name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  throw std::runtime_error("program '" + name + "' not found in $PATH, /usr/sbin, /sbin, /usr/bin or /bin");
}

// This process's environment with `extra` ("NAME=value") added; an entry of
// `extra` replaces one of the same name.
inline std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
  const auto name_of = [](std::string_view entry) { return entry.substr(0, entry.find('=')); };
  std::vector<std::string> environment;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view current(*entry);
    const bool replaced =
        std::any_of(extra.begin(), extra.end(), [&](const std::string& e) { return name_of(e) == name_of(current); });
    if (!replaced) environment.emplace_back(current);
  }
  environment.insert(environment.end(), extra.begin(), extra.end());
  return environment;
}

struct child_options {
  int netns_fd = -1;   // >= 0: the child joins this network namespace before exec
  int stdin_fd = -1;   // >= 0: becomes the child's stdin; -1: inherited
  int stdout_fd = -1;  // likewise
  int stderr_fd = -1;  // likewise
  // Only fds 0-2 survive exec. Otherwise every descriptor this process did not
  // mark close-on-exec is inherited (create sockets with SOCK_CLOEXEC).
  bool close_inherited_fds = false;
};

// fork + (setns) + execve of argv (argv[0] is looked up with find_program), with
// environment `env`. Returns once the program has been exec'ed, so /proc/<pid>
// already shows it; throws with the failing step if setns or execve failed. The
// child gets PR_SET_PDEATHSIG(SIGKILL) (see the thread-safety note at the top).
inline pid_t start_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         const child_options& options) {
  if (argv.empty()) throw std::invalid_argument("start_child: empty argv");
  // Everything exec needs is built before fork: between fork and exec the child
  // of a multi-threaded process may only make async-signal-safe calls.
  const std::string program = find_program(argv[0]);
  std::vector<std::string> arguments = argv;
  std::vector<std::string> environment = env;
  std::vector<char*> argv_pointers, env_pointers;
  for (std::string& a : arguments) argv_pointers.push_back(a.data());
  argv_pointers.push_back(nullptr);
  for (std::string& e : environment) env_pointers.push_back(e.data());
  env_pointers.push_back(nullptr);

  // The child reports a failed step here; a successful execve closes it (O_CLOEXEC),
  // so EOF without data means "exec'ed".
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd report_read(report[0]), report_write(report[1]);
  enum step : int { step_setns = 1, step_dup2 = 2, step_execve = 3 };

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    const auto fail = [&](int failed_step) {
      const int message[2] = {failed_step, errno};
      [[maybe_unused]] const ssize_t ignored = ::write(report_write.get(), message, sizeof message);
      ::_exit(127);
    };
    // Dies with the test, also when the test is killed -9; the check closes the
    // window in which the parent died before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    sigset_t none;
    ::sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);  // a test runner's blocked signals are not the program's
    if (options.netns_fd >= 0 && ::setns(options.netns_fd, CLONE_NEWNET) != 0) fail(step_setns);
    if (options.stdin_fd >= 0 && ::dup2(options.stdin_fd, STDIN_FILENO) < 0) fail(step_dup2);
    if (options.stdout_fd >= 0 && ::dup2(options.stdout_fd, STDOUT_FILENO) < 0) fail(step_dup2);
    if (options.stderr_fd >= 0 && ::dup2(options.stderr_fd, STDERR_FILENO) < 0) fail(step_dup2);
    // Best effort (needs Linux 5.11); the report pipe is close-on-exec anyway.
    if (options.close_inherited_fds) ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(program.c_str(), argv_pointers.data(), env_pointers.data());
    fail(step_execve);
  }
  report_write.reset();
  int message[2] = {0, 0};
  std::size_t received = 0;
  while (received < sizeof message) {
    const ssize_t n = ::read(report_read.get(), reinterpret_cast<char*>(message) + received, sizeof message - received);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    received += static_cast<std::size_t>(n);
  }
  if (received == 0) return pid;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const char* what = message[0] == step_setns ? "setns(CLONE_NEWNET)" : message[0] == step_dup2 ? "dup2" : "execve";
  throw std::runtime_error("cannot start " + quote_command(argv) + " (" + program + "): " + what +
                           " failed: " + std::generic_category().message(message[1]));
}

struct command_result {
  int status = 0;  // wait status
  std::string out;
  std::string err;
  bool succeeded() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

// Runs argv to completion with `input` on its stdin, capturing stdout and stderr,
// in network namespace `netns_fd` if >= 0. A non-zero exit is reported in the
// result, not thrown; throws if the program cannot start or does not finish within
// `timeout` (it is then killed).
inline command_result run_command(const std::vector<std::string>& argv, const std::string& input = {},
                                  int netns_fd = -1, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int fds[2];
  // stdin is written in full before the child starts, so that a child that exits
  // without reading cannot raise SIGPIPE in the test.
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd in_read(fds[0]), in_write(fds[1]);
  if (input.size() > 65536 && ::fcntl(in_write.get(), F_SETPIPE_SZ, static_cast<int>(input.size())) < 0) {
    throw_errno("F_SETPIPE_SZ for " + std::to_string(input.size()) + " bytes of input to " + quote_command(argv));
  }
  if (::fcntl(in_write.get(), F_SETFL, O_NONBLOCK) != 0) throw_errno("fcntl(O_NONBLOCK)");
  for (std::size_t written = 0; written < input.size();) {
    const ssize_t n = ::write(in_write.get(), input.data() + written, input.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("writing the input of " + quote_command(argv));
    written += static_cast<std::size_t>(n);
  }
  in_write.reset();
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd out_read(fds[0]), out_write(fds[1]);
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
  unique_fd err_read(fds[0]), err_write(fds[1]);

  child_options options;
  options.netns_fd = netns_fd;
  options.stdin_fd = in_read.get();
  options.stdout_fd = out_write.get();
  options.stderr_fd = err_write.get();
  options.close_inherited_fds = true;
  const pid_t pid = start_child(argv, environment_with({}), options);
  out_write.reset();
  err_write.reset();

  command_result result;
  const auto give_up = [&](const std::string& why) {
    kill_child(pid);
    throw std::runtime_error(quote_command(argv) + " " + why + "; stderr so far: " + result.err);
  };
  while (out_read || err_read) {
    pollfd readable[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    const int wait_ms = poll_timeout_until(deadline);
    const int ready = ::poll(readable, 2, wait_ms);  // a closed stream has fd -1: ignored
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw_errno("poll");
    if (ready == 0) give_up("did not finish within " + std::to_string(timeout.count()) + " ms");
    for (auto [stream, text] : {std::pair{&out_read, &result.out}, std::pair{&err_read, &result.err}}) {
      const pollfd& state = readable[stream == &out_read ? 0 : 1];
      if (state.fd < 0 || state.revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(stream->get(), buffer, sizeof buffer);
      if (n > 0) text->append(buffer, static_cast<std::size_t>(n));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) stream->reset();
    }
  }
  const std::optional<int> status =
      wait_for_exit(pid, std::chrono::milliseconds(std::max(1, poll_timeout_until(deadline))));
  if (!status) give_up("closed its output but did not exit within " + std::to_string(timeout.count()) + " ms");
  result.status = *status;
  return result;
}

}  // namespace troupe::test_support
