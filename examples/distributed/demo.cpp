// The --demo mode of the distributed example: starts nodes a, b and c as
// child processes of this program (fork and exec of itself), gives each a
// fresh cookie and, once all three listen, the others' endpoints, over a
// socket of its own; SIGKILLs c when a says it is halfway; checks how each
// ended. Needs no troupe node itself: nodes are the children.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "common.hpp"

using namespace std::chrono_literals;

namespace distributed {

namespace {

struct child_node {
  std::string name;
  pid_t pid = -1;
  int pidfd = -1;
  std::unique_ptr<line_channel> control;
  bool control_open = true;
  std::string endpoint;
  int status = -1;  // from waitpid, once exited
};

std::string random_cookie() {
  unsigned char bytes[32];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return {};
  std::string hex;
  for (unsigned char b : bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

bool start_child(child_node& c, const std::string& dir, const options& o) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return false;
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    // The child dies with the demo; its end of the control socket becomes fd 3.
    // (The demo runs no other threads, so the child may allocate before exec.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (pair[1] == 3) {
      ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(pair[1], 3) != 3) {
      ::_exit(127);
    }
    std::vector<std::string> args = {
        "distributed",
        "--name",
        c.name,
        "--listen",
        "0",  // any free port: the child reports the one it got
        "--runtime-dir",
        dir + "/" + c.name,
        "--control-fd",
        "3",
        "--jobs",
        std::to_string(o.jobs),
        "--work-ms",
        std::to_string(o.work_ms),
    };
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(pair[1]);
  c.pid = pid;
  c.control = std::make_unique<line_channel>(pair[0]);
  c.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return c.pidfd >= 0;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + (WTERMSIG(status) == SIGKILL ? "SIGKILL" : "a signal");
  return "?";
}

}  // namespace

int run_demo(const options& o) {
  log_origin = clock_type::now();
  const auto deadline = log_origin + 25s;
  say("demo", "three nodes on loopback over TCP: a coordinates; b and c run workers; b also collects results");
  const std::string cookie = random_cookie();
  std::string base = (std::filesystem::temp_directory_path() / "troupe-distributed-XXXXXX").string();
  if (cookie.empty() || ::mkdtemp(base.data()) == nullptr) {
    say("demo", "FAILED: no randomness or no temporary directory");
    return 1;
  }
  std::vector<child_node> nodes(3);
  nodes[0].name = "a";
  nodes[1].name = "b";
  nodes[2].name = "c";
  bool ok = true;
  for (child_node& c : nodes) ok = ok && start_child(c, base, o);
  const std::string t0 = std::to_string(log_origin.time_since_epoch().count());
  for (child_node& c : nodes) ok = ok && c.control->send("cookie " + cookie) && c.control->send("t0 " + t0);
  // Each listens on a free port (port 0) and says which.
  for (child_node& c : nodes) {
    auto line = ok ? c.control->receive(deadline) : std::nullopt;
    ok = line && line->starts_with("endpoint ");
    if (ok) c.endpoint = line->substr(9);
  }
  for (child_node& c : nodes) {
    std::string peers;
    for (const child_node& other : nodes) {
      if (&other != &c) peers += (peers.empty() ? "" : ",") + other.endpoint;
    }
    ok = ok && c.control->send("peers " + peers);
  }
  if (ok)
    say("demo", "a, b, c are pids " + std::to_string(nodes[0].pid) + ", " + std::to_string(nodes[1].pid) + ", " +
                    std::to_string(nodes[2].pid) + " (each with its own runtime directory: TCP only)");

  // Until all three have ended: SIGKILL c when a says it is halfway.
  bool killed = false;
  while (ok && std::any_of(nodes.begin(), nodes.end(), [](const child_node& c) { return c.status < 0; })) {
    std::vector<pollfd> fds;
    for (const child_node& c : nodes) {
      // poll() skips negative descriptors: an ended child, a closed control socket.
      fds.push_back({c.status < 0 ? c.pidfd : -1, POLLIN, 0});
      fds.push_back({c.control_open ? c.control->fd() : -1, POLLIN, 0});
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left <= 0 || ::poll(fds.data(), fds.size(), static_cast<int>(left)) < 0) {
      say("demo", "FAILED: the nodes did not finish in time");
      ok = false;
      break;
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      child_node& c = nodes[i];
      if (fds[2 * i + 1].revents != 0) c.control_open = c.control->fill();
      if (c.control_open) {
        while (auto line = c.control->take_line()) {
          if (*line == "midway" && !killed) {
            killed = true;
            say("demo", "SIGKILL -> node c (pid " + std::to_string(nodes[2].pid) + ")");
            ::kill(nodes[2].pid, SIGKILL);
          }
        }
      }
      if (fds[2 * i].revents != 0) {
        int status = 0;
        if (::waitpid(c.pid, &status, 0) == c.pid) c.status = status;
        if (c.status >= 0) say("demo", "node " + c.name + " " + describe_status(c.status));
      }
    }
  }
  for (child_node& c : nodes) {
    if (c.status < 0 && c.pid > 0) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &c.status, 0);
    }
  }
  std::filesystem::remove_all(base);
  const bool success = ok && killed && WIFEXITED(nodes[0].status) && WEXITSTATUS(nodes[0].status) == 0 &&
                       WIFEXITED(nodes[1].status) && WEXITSTATUS(nodes[1].status) == 0 &&
                       WIFSIGNALED(nodes[2].status) && WTERMSIG(nodes[2].status) == SIGKILL;
  const double took = std::chrono::duration<double>(clock_type::now() - log_origin).count();
  char text[96];
  std::snprintf(text, sizeof text, "%s in %.1f s", success ? "success" : "FAILED", took);
  say("demo", text);
  return success ? 0 : 1;
}

}  // namespace distributed
