#include "tcp_node.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <system_error>

using namespace std::chrono_literals;

namespace cluster_demo {

namespace {

constexpr int control_fd = 3;  // the child's end of the control socket

int milliseconds_until(clock_type::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

bool send_line(int fd, const std::string& line) {
  const std::string text = line + "\n";
  return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Lines from the control socket, each read bounded by a deadline; nothing on
// EOF (`closed` set) or at the deadline.
std::optional<std::string> next_line(int fd, std::string& buffer, clock_type::time_point deadline, bool& closed) {
  closed = false;
  for (;;) {
    if (const auto end = buffer.find('\n'); end != std::string::npos) {
      std::string line = buffer.substr(0, end);
      buffer.erase(0, end + 1);
      return line;
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, milliseconds_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char chunk[256];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      closed = true;
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + std::to_string(WTERMSIG(status));
  return "ended";
}

}  // namespace

std::optional<std::string> tcp_worker_process::start(const std::string& node_name, const std::string& runtime_dir) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return std::string("socketpair: ") + std::generic_category().message(errno);
  }
  // Built before fork: the child only makes system calls until exec.
  std::vector<std::string> args = {"cluster_demo", "--tcp-node", node_name, runtime_dir};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pair[0]);
    ::close(pair[1]);
    return std::string("fork: ") + std::generic_category().message(errno);
  }
  if (pid == 0) {
    // The node dies with the demo (SIGKILL when this thread, main, ends).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (pair[1] == control_fd) {
      ::fcntl(control_fd, F_SETFD, 0);
    } else if (::dup2(pair[1], control_fd) != control_fd) {  // dup2's copy is not close-on-exec
      ::_exit(127);
    }
    ::execv("/proc/self/exe", argv.data());
    ::_exit(127);
  }
  ::close(pair[1]);
  pid_ = pid;
  control_ = pair[0];
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd_ < 0) return std::string("pidfd_open: ") + std::generic_category().message(errno);
  return std::nullopt;
}

tcp_worker_process::endpoint_or_error tcp_worker_process::hand_over(const std::string& cookie, const std::string& seed,
                                                                    clock_type::time_point deadline) {
  if (!send_line(control_, "cookie " + cookie) || !send_line(control_, "seed " + seed)) {
    return {{}, "the TCP node process is gone (" + reap(clock_type::now() + 2s) + ")"};
  }
  bool closed = false;
  const std::optional<std::string> line = next_line(control_, buffer_, deadline, closed);
  if (line && line->starts_with("endpoint tcp://")) return {line->substr(9), {}};
  if (line && line->starts_with("error ")) return {{}, "the TCP node failed: " + line->substr(6)};
  if (closed) return {{}, "the TCP node process ended before it listened (" + reap(clock_type::now() + 2s) + ")"};
  return {{}, line ? "the TCP node said '" + *line + "'" : "the TCP node did not report its endpoint in time"};
}

std::string tcp_worker_process::stop(clock_type::time_point deadline) {
  if (control_ >= 0) {
    ::close(control_);  // its EOF is the node's cue to leave
    control_ = -1;
  }
  return reap(deadline);
}

std::string tcp_worker_process::reap(clock_type::time_point deadline) {
  if (pid_ < 0) return ended_;
  pollfd p{pidfd_, POLLIN, 0};
  // A pidfd turns readable when the process has ended.
  int ready = 0;
  do {
    ready = pidfd_ >= 0 ? ::poll(&p, 1, milliseconds_until(deadline)) : 0;
  } while (ready < 0 && errno == EINTR);
  std::string how;
  if (ready <= 0) {
    ::kill(pid_, SIGKILL);
    how = " (did not leave in time: killed)";
  }
  int status = 0;
  // Blocking is bounded: the process has ended, or SIGKILL ends it.
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  pid_ = -1;
  ended_ = describe_status(status) + how;
  return ended_;
}

int tcp_node_main(const std::string& node_name, const std::string& runtime_dir) {
  std::string buffer;
  bool closed = false;
  const std::optional<std::string> first = next_line(control_fd, buffer, clock_type::now() + 10s, closed);
  if (!first || !first->starts_with("cookie ")) {
    // A closed socket: the coordinator gave up before handing over; it says why.
    if (!closed) std::cerr << "cluster_demo --tcp-node: no cookie on fd 3 (cluster_demo starts this node itself)\n";
    return 2;
  }
  const std::optional<std::string> seed = next_line(control_fd, buffer, clock_type::now() + 10s, closed);
  if (!seed || !seed->starts_with("seed tcp://")) return 2;
  try {
    troupe::node_config cfg;
    cfg.name = node_name;
    // Its own directory: the coordinator's shared-memory socket is not there,
    // so the two can only meet over TCP, as if on two machines.
    cfg.runtime_dir = runtime_dir;
    cfg.listen = "tcp://127.0.0.1:0";  // any free port; n.endpoint() says which
    cfg.cookie = first->substr(7);
    // It joins the coordinator's cluster, as a node on another machine would
    // from its command line (--cluster seeds=...).
    auto cluster = troupe::parse_cluster("seeds=" + seed->substr(5) + ";gossip_ms=200");
    if (!cluster) throw troupe::troupe_error(cluster.error());
    cfg.cluster = std::move(*cluster);
    troupe::node n(cfg);
    if (!send_line(control_fd, "endpoint " + n.endpoint())) return 1;
    // Serve until the coordinator closes the socket (or dies); a backstop
    // deadline ends a node whose coordinator hangs.
    const auto backstop = clock_type::now() + 10min;
    while (!closed && clock_type::now() < backstop) (void)next_line(control_fd, buffer, backstop, closed);
    return 0;
  } catch (const std::exception& e) {
    (void)send_line(control_fd, std::string("error ") + e.what());
    return 1;
  }
}

troupe::expected<std::vector<std::string>> reach_tcp_node(troupe::node& n, const std::string& endpoint) {
  if (auto joined = n.await_members(2, 10s); !joined) return joined.error();
  for (const troupe::member& m : n.members()) {
    if (m.endpoint == endpoint) return std::vector<std::string>{endpoint};
  }
  return troupe::error(troupe::errc::no_such_node, "the member that joined is not the node at " + endpoint);
}

}  // namespace cluster_demo
