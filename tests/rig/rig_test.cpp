// Checks the multi-host test rig (tests/support/netns_rig.hpp) with real sockets:
// hosts have separate network stacks and reach each other only over the switch, a cut
// cable really drops traffic, children are the programs themselves and die on time,
// and teardown leaves nothing behind.
//
// The executable is also its own helper program (see main()):
//   rig_test --listen-echo PORT READY_FD   echo server on 0.0.0.0:PORT; writes a byte to
//                                          READY_FD once listening
//   rig_test --connect-echo ADDRESS PORT   exits 0 if ADDRESS:PORT echoes a ping
//   rig_test --check-child-setup           exits 0 if it has the rig's death signal and
//                                          the extra environment variable
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/netns_rig.hpp"
#include "support/unique_fd.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::test_support::current_executable;
using troupe::test_support::describe_wait_status;
using troupe::test_support::kill_child;
using troupe::test_support::netns_rig;
using troupe::test_support::poll_timeout_until;
using troupe::test_support::run_command;
using troupe::test_support::unique_fd;
using troupe::test_support::wait_for_exit;
using troupe::test_support::watchdog;

// Every host has a fresh network stack, so any port is free in it.
constexpr std::uint16_t echo_port = 7000;
// For things that work: a safety net, not a timing assertion.
constexpr std::chrono::milliseconds work_deadline = 10s;
// How long a connect or a reply through a cut cable must stay unanswered. On a working
// link both take well under a millisecond, so 500 ms without one means "dropped".
constexpr std::chrono::milliseconds cut_probe = 500ms;

const std::string ping = "ping";

// --- sockets -------------------------------------------------------------------------

struct connect_outcome {
  unique_fd socket;  // non-blocking, connected when error == 0 and !timed_out
  int error = 0;
  bool timed_out = false;
  bool connected() const { return socket && error == 0 && !timed_out; }
  std::string describe() const {
    if (timed_out) return "no answer (timed out)";
    if (error != 0) return std::string("failed: ") + std::generic_category().message(error);
    return "connected";
  }
};

sockaddr_in ipv4(const std::string& address, std::uint16_t port) {
  sockaddr_in socket_address{};
  socket_address.sin_family = AF_INET;
  socket_address.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &socket_address.sin_addr) != 1) {
    throw std::invalid_argument("not an IPv4 address: " + address);
  }
  return socket_address;
}

// A TCP connect that gives up after `timeout` (in the calling thread's namespace).
connect_outcome connect_within(const std::string& address, std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  connect_outcome outcome;
  outcome.socket.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!outcome.socket) {
    outcome.error = errno;
    return outcome;
  }
  const sockaddr_in peer = ipv4(address, port);
  if (::connect(outcome.socket.get(), reinterpret_cast<const sockaddr*>(&peer), sizeof peer) == 0) return outcome;
  if (errno != EINPROGRESS) {
    outcome.error = errno;
    return outcome;
  }
  for (;;) {
    pollfd writable{outcome.socket.get(), POLLOUT, 0};
    const int ready = ::poll(&writable, 1, poll_timeout_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) {
      outcome.error = errno;
      return outcome;
    }
    if (ready == 0) {
      outcome.timed_out = true;
      return outcome;
    }
    break;
  }
  socklen_t length = sizeof outcome.error;
  if (::getsockopt(outcome.socket.get(), SOL_SOCKET, SO_ERROR, &outcome.error, &length) != 0) outcome.error = errno;
  return outcome;
}

bool send_all(int fd, const std::string& data) {
  // MSG_NOSIGNAL: a peer that is gone must fail the check, not kill the test with SIGPIPE.
  return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Reads exactly `size` bytes from non-blocking `fd`, or fewer if the deadline passes
// or the peer closes.
std::string receive_within(int fd, std::size_t size, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string received;
  while (received.size() < size) {
    pollfd readable{fd, POLLIN, 0};
    const int ready = ::poll(&readable, 1, poll_timeout_until(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buffer[256];
    const ssize_t n = ::recv(fd, buffer, std::min(sizeof buffer, size - received.size()), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  return received;
}

bool echoes(int fd, std::chrono::milliseconds timeout) {
  return send_all(fd, ping) && receive_within(fd, ping.size(), timeout) == ping;
}

std::string address_text(const sockaddr_in& socket_address) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &socket_address.sin_addr, text, sizeof text);
  return text;
}

std::string local_address(int fd) {
  sockaddr_in local{};
  socklen_t length = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0) return "(getsockname failed)";
  return address_text(local);
}

// Listens on 0.0.0.0:port. Binding the wildcard matters: were the stacks shared, a
// connect to 127.0.0.1 from another host would reach it.
unique_fd listen_on_any(std::uint16_t port) {
  unique_fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) return listener;
  const int yes = 1;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  const sockaddr_in any = ipv4("0.0.0.0", port);
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&any), sizeof any) != 0 ||
      ::listen(listener.get(), 16) != 0) {
    return unique_fd();
  }
  return listener;
}

// --- helper roles (run as child processes) -------------------------------------------

std::optional<std::uint16_t> parse_port(std::string_view text) {
  std::uint16_t port = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (error != std::errc() || end != text.data() + text.size() || port == 0) return std::nullopt;
  return port;
}

int listen_echo(std::uint16_t port, int ready_fd) {
  const unique_fd listener = listen_on_any(port);
  if (!listener) {
    std::perror("rig_test --listen-echo: listen");
    return 2;
  }
  const char ready = 'r';
  if (::write(ready_fd, &ready, 1) != 1) return 2;
  ::close(ready_fd);
  // Serves any number of connections at once until killed.
  std::vector<pollfd> watched = {{listener.get(), POLLIN, 0}};
  for (;;) {
    if (::poll(watched.data(), watched.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return 2;
    }
    for (std::size_t i = watched.size(); i-- > 1;) {
      if (watched[i].revents == 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(watched[i].fd, buffer, sizeof buffer);
      if (n > 0 && ::send(watched[i].fd, buffer, static_cast<std::size_t>(n), MSG_NOSIGNAL) == n) continue;
      ::close(watched[i].fd);
      watched.erase(watched.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (watched[0].revents != 0) {
      const int accepted = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (accepted >= 0) watched.push_back({accepted, POLLIN, 0});
    }
  }
}

int connect_echo(const std::string& address, std::uint16_t port) {
  const connect_outcome outcome = connect_within(address, port, work_deadline);
  if (!outcome.connected()) {
    std::fprintf(stderr, "rig_test --connect-echo %s:%u: %s\n", address.c_str(), port, outcome.describe().c_str());
    return 1;
  }
  return echoes(outcome.socket.get(), work_deadline) ? 0 : 1;
}

int check_child_setup() {
  int death_signal = 0;
  if (::prctl(PR_GET_PDEATHSIG, &death_signal) != 0 || death_signal != SIGKILL) {
    std::fprintf(stderr, "rig_test --check-child-setup: death signal %d, not SIGKILL\n", death_signal);
    return 1;
  }
  const char* extra = std::getenv("TROUPE_RIG_TEST_EXTRA");
  if (extra == nullptr || std::string_view(extra) != "42") {
    std::fprintf(stderr, "rig_test --check-child-setup: TROUPE_RIG_TEST_EXTRA is %s\n", extra ? extra : "unset");
    return 2;
  }
  return 0;
}

// --- test helpers --------------------------------------------------------------------

// Starts an echo server in `host` and returns once it listens (it says so on a pipe).
pid_t start_echo_server(netns_rig& rig, int host) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  unique_fd ready_read(ends[0]), ready_write(ends[1]);
  // The write end, alone, is inherited by the server.
  if (::fcntl(ready_write.get(), F_SETFD, 0) != 0) throw std::system_error(errno, std::generic_category(), "fcntl");
  const pid_t pid = rig.spawn_in(
      host, {current_executable(), "--listen-echo", std::to_string(echo_port), std::to_string(ready_write.get())});
  ready_write.reset();  // now EOF means the server died before it listened
  pollfd readable{ready_read.get(), POLLIN, 0};
  char ready = 0;
  const auto deadline = std::chrono::steady_clock::now() + work_deadline;
  int polled = 0;
  while ((polled = ::poll(&readable, 1, poll_timeout_until(deadline))) < 0 && errno == EINTR) {
  }
  if (polled <= 0 || ::read(ready_read.get(), &ready, 1) != 1) {
    const int status = kill_child(pid);
    throw std::runtime_error("echo server in host " + std::to_string(host) +
                             " did not start listening: " + describe_wait_status(status));
  }
  return pid;
}

ino_t inode_of(const std::string& path) {
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0) return 0;
  return status.st_ino;
}

std::string thread_namespace() { return "/proc/thread-self/ns/net"; }
std::string name_path(const std::string& ns_name) { return "/run/netns/" + ns_name; }

// Names `ip netns list` shows (lines are "name" or "name (id: N)").
std::set<std::string> listed_namespaces() {
  const auto result = run_command({"ip", "netns", "list"});
  EXPECT_TRUE(result.succeeded()) << result.err;
  std::set<std::string> names;
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) names.insert(line.substr(0, line.find(' ')));
  }
  return names;
}

// Interface names of the calling thread's namespace.
std::set<std::string> interfaces_here() {
  const auto result = run_command({"ip", "-o", "link", "show"});
  EXPECT_TRUE(result.succeeded()) << result.err;
  std::set<std::string> names;
  std::istringstream lines(result.out);
  for (std::string line; std::getline(lines, line);) {
    // "4: eth0: <BROADCAST,..." or "3: v0@if2: ..."
    const std::size_t start = line.find(": ");
    if (start == std::string::npos) continue;
    const std::size_t end = line.find_first_of(":@", start + 2);
    names.insert(line.substr(start + 2, end - start - 2));
  }
  return names;
}

// Deletes namespaces a test made by hand, also when an assertion returns early.
struct namespace_cleanup {
  std::vector<std::string> names;
  ~namespace_cleanup() {
    try {
      std::string commands;
      for (const std::string& name : names) commands += "netns del " + name + "\n";
      (void)run_command({"ip", "-force", "-batch", "-"}, commands);
    } catch (...) {
      // Best effort: a namespace left behind must not turn a failed assertion
      // into std::terminate.
    }
  }
};

// --- tests ---------------------------------------------------------------------------

TEST(netns_rig, gives_each_host_its_own_namespace_and_address_on_one_subnet) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  const netns_rig rig(3);
  const std::set<std::string> listed = listed_namespaces();
  EXPECT_TRUE(listed.contains(rig.switch_ns_name()));
  std::set<std::string> addresses, names;
  std::set<ino_t> namespaces = {inode_of(thread_namespace())};
  const std::string subnet = rig.address(0).substr(0, rig.address(0).rfind('.') + 1);
  for (int host = 0; host < rig.hosts(); ++host) {
    addresses.insert(rig.address(host));
    names.insert(rig.ns_name(host));
    namespaces.insert(inode_of(name_path(rig.ns_name(host))));
    EXPECT_TRUE(listed.contains(rig.ns_name(host))) << rig.ns_name(host);
    EXPECT_EQ(rig.address(host), subnet + std::to_string(host + 1));
    // Configured on eth0 inside that namespace, not merely promised.
    const unique_fd ns(::open(name_path(rig.ns_name(host)).c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(ns) << std::generic_category().message(errno);
    const auto shown = run_command({"ip", "-o", "-4", "address", "show", "dev", "eth0", "up"}, {}, ns.get());
    ASSERT_TRUE(shown.succeeded()) << shown.err;
    EXPECT_NE(shown.out.find("inet " + rig.address(host) + "/24 "), std::string::npos) << shown.out;
  }
  EXPECT_EQ(addresses.size(), 3u);
  EXPECT_EQ(names.size(), 3u);
  EXPECT_EQ(namespaces.size(), 4u) << "three hosts plus the test's own namespace";
  EXPECT_EQ(subnet.rfind("10.", 0), 0u) << subnet;
}

TEST(netns_rig, host_zero_reaches_a_listener_in_host_one_at_its_address_but_not_on_its_own_loopback) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig rig(3);
  rig.enter(0);
  start_echo_server(rig, 1);

  const connect_outcome to_host_one = connect_within(rig.address(1), echo_port, work_deadline);
  ASSERT_TRUE(to_host_one.connected()) << to_host_one.describe();
  EXPECT_TRUE(echoes(to_host_one.socket.get(), work_deadline));
  EXPECT_EQ(local_address(to_host_one.socket.get()), rig.address(0)) << "the connection must leave host 0's eth0";

  // The server listens on 0.0.0.0: in a shared stack 127.0.0.1 would reach it.
  const connect_outcome loopback = connect_within("127.0.0.1", echo_port, work_deadline);
  EXPECT_EQ(loopback.error, ECONNREFUSED) << "127.0.0.1 in host 0: " << loopback.describe();
  const connect_outcome to_host_two = connect_within(rig.address(2), echo_port, work_deadline);
  EXPECT_EQ(to_host_two.error, ECONNREFUSED) << "host 2 has no server: " << to_host_two.describe();
}

TEST(netns_rig, enter_moves_only_the_calling_thread_and_the_threads_it_creates_afterwards) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  const ino_t original = inode_of(thread_namespace());
  netns_rig rig(3);
  std::promise<void> entered;
  std::future<ino_t> earlier_thread_namespace = std::async(std::launch::async, [&entered] {
    entered.get_future().wait();
    return inode_of(thread_namespace());
  });
  // The promise is kept even if enter() throws: the thread waiting on it is joined below.
  std::string enter_error;
  try {
    rig.enter(0);
  } catch (const std::exception& e) {
    enter_error = e.what();
  }
  entered.set_value();
  ASSERT_EQ(enter_error, "");
  const ino_t host_zero = inode_of(name_path(rig.ns_name(0)));
  EXPECT_EQ(inode_of(thread_namespace()), host_zero);
  EXPECT_EQ(earlier_thread_namespace.get(), original) << "a thread created before enter() stays";
  EXPECT_EQ(std::async(std::launch::async, [] { return inode_of(thread_namespace()); }).get(), host_zero)
      << "a thread created after enter() starts in the host";

  // A program in host 2 reaches the test thread's listener at host 0's address.
  const unique_fd listener = listen_on_any(echo_port);
  ASSERT_TRUE(listener) << std::generic_category().message(errno);
  const pid_t client =
      rig.spawn_in(2, {current_executable(), "--connect-echo", rig.address(0), std::to_string(echo_port)});
  pollfd incoming{listener.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&incoming, 1, static_cast<int>(work_deadline.count())), 1) << "no connection from host 2";
  sockaddr_in peer{};
  socklen_t length = sizeof peer;
  const unique_fd accepted(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC));
  ASSERT_TRUE(accepted) << std::generic_category().message(errno);
  EXPECT_EQ(address_text(peer), rig.address(2));
  EXPECT_EQ(receive_within(accepted.get(), ping.size(), work_deadline), ping);
  EXPECT_TRUE(send_all(accepted.get(), ping));
  const std::optional<int> status = wait_for_exit(client, work_deadline);
  ASSERT_TRUE(status.has_value()) << "the client in host 2 did not finish";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describe_wait_status(*status);

  rig.leave();
  EXPECT_EQ(inode_of(thread_namespace()), original);
}

TEST(netns_rig, cut_drops_a_hosts_traffic_until_restore) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig rig(3);
  rig.enter(0);
  start_echo_server(rig, 1);
  start_echo_server(rig, 2);
  const connect_outcome established = connect_within(rig.address(1), echo_port, work_deadline);
  ASSERT_TRUE(established.connected()) << established.describe();
  ASSERT_TRUE(echoes(established.socket.get(), work_deadline));

  rig.cut(1);
  const connect_outcome during_cut = connect_within(rig.address(1), echo_port, cut_probe);
  EXPECT_FALSE(during_cut.connected()) << "host 1 answered a connect through a cut cable";
  ASSERT_TRUE(send_all(established.socket.get(), ping));
  EXPECT_EQ(receive_within(established.socket.get(), ping.size(), cut_probe), "")
      << "an established connection must stall, not answer, while the cable is cut";
  const connect_outcome other_host = connect_within(rig.address(2), echo_port, work_deadline);
  ASSERT_TRUE(other_host.connected()) << "cutting host 1 must not affect host 2: " << other_host.describe();
  EXPECT_TRUE(echoes(other_host.socket.get(), work_deadline));

  rig.restore(1);
  // TCP retransmits the stalled ping; its echo arrives.
  EXPECT_EQ(receive_within(established.socket.get(), ping.size(), work_deadline), ping);
  const connect_outcome after_restore = connect_within(rig.address(1), echo_port, work_deadline);
  ASSERT_TRUE(after_restore.connected()) << after_restore.describe();
  EXPECT_TRUE(echoes(after_restore.socket.get(), work_deadline));
}

TEST(netns_rig, reports_a_child_killed_with_sigkill_as_exited_within_a_deadline) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig rig(1);
  const pid_t server = start_echo_server(rig, 0);
  EXPECT_EQ(wait_for_exit(server, 100ms), std::nullopt) << "a listening server has not exited";
  const int status = kill_child(server, work_deadline);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_wait_status(status);

  // A child that exits by itself is reported with its exit status.
  const pid_t client =
      rig.spawn_in(0, {current_executable(), "--connect-echo", "127.0.0.1", std::to_string(echo_port)});
  const std::optional<int> client_status = wait_for_exit(client, work_deadline);
  ASSERT_TRUE(client_status.has_value());
  EXPECT_TRUE(WIFEXITED(*client_status) && WEXITSTATUS(*client_status) == 1) << describe_wait_status(*client_status);
}

TEST(netns_rig, spawn_in_starts_the_program_itself_in_the_host_with_a_death_signal_and_extra_environment) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig rig(2);
  const pid_t server = start_echo_server(rig, 1);
  std::error_code error;
  EXPECT_EQ(std::filesystem::read_symlink("/proc/" + std::to_string(server) + "/exe", error).string(),
            current_executable())
      << "the pid must be the program's own, not that of `ip netns exec` or a shell";
  EXPECT_EQ(inode_of("/proc/" + std::to_string(server) + "/ns/net"), inode_of(name_path(rig.ns_name(1))));
  kill_child(server);

  const pid_t checker = rig.spawn_in(0, {current_executable(), "--check-child-setup"}, {"TROUPE_RIG_TEST_EXTRA=42"});
  const std::optional<int> status = wait_for_exit(checker, work_deadline);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describe_wait_status(*status);

  try {
    rig.spawn_in(0, {"/nonexistent/program"});
    ADD_FAILURE() << "spawn_in of a missing program did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/program"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(netns_rig, teardown_kills_children_returns_the_thread_and_removes_every_namespace) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  const ino_t original = inode_of(thread_namespace());
  const std::set<std::string> interfaces_before = interfaces_here();
  std::vector<std::string> names;
  unique_fd server_pidfd;
  {
    netns_rig rig(3);
    names = {rig.switch_ns_name(), rig.ns_name(0), rig.ns_name(1), rig.ns_name(2)};
    EXPECT_EQ(interfaces_here(), interfaces_before) << "the rig must add no interface to the original namespace";
    const pid_t server = start_echo_server(rig, 2);
    server_pidfd = troupe::test_support::open_pidfd(server);
    ASSERT_TRUE(server_pidfd);
    rig.enter(1);  // and never leave: the destructor must bring this thread back
  }
  EXPECT_EQ(inode_of(thread_namespace()), original);
  // pidfd_send_signal with signal 0 probes without pid-reuse doubts: ESRCH once the
  // process is gone (the rig killed and reaped it).
  const long probed = ::syscall(SYS_pidfd_send_signal, server_pidfd.get(), 0, nullptr, 0);
  const int probe_error = errno;
  EXPECT_NE(probed, 0) << "the child outlived the rig";
  EXPECT_EQ(probe_error, ESRCH) << std::generic_category().message(probe_error);
  const std::set<std::string> listed = listed_namespaces();
  for (const std::string& name : names) EXPECT_FALSE(listed.contains(name)) << name << " is left over";
  // The bridge and the switch-side veth ends lived in the switch namespace, so they are
  // gone with it; nothing ever appeared in the original namespace.
  EXPECT_EQ(interfaces_here(), interfaces_before);
}

TEST(netns_rig, removes_leftovers_of_dead_runs_but_not_those_of_live_ones) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  const pid_t gone = troupe::test_support::start_child({"true"}, {}, {});
  ASSERT_TRUE(wait_for_exit(gone, work_deadline).has_value());
  const std::string own_start = std::to_string(*netns_rig::start_time_of(::getpid()));
  const std::string prefix(netns_rig::name_prefix);
  // A run by a process that is gone; a live run (ours, a counter no rig will reach); and
  // a name with our prefix that is not a rig's. Were `gone` reused, the new process
  // would have a later start time than ours, so it still counts as gone.
  const std::string dead = prefix + std::to_string(gone) + "-" + own_start + "-0-h0";
  const std::string live = prefix + std::to_string(::getpid()) + "-" + own_start + "-999999-h0";
  const std::string foreign = prefix + "made-by-hand-" + std::to_string(::getpid());
  const namespace_cleanup cleanup{{dead, live, foreign}};
  for (const std::string& name : cleanup.names) {
    const auto added = run_command({"ip", "netns", "add", name});
    ASSERT_TRUE(added.succeeded()) << added.err;
  }
  EXPECT_TRUE(netns_rig::owner_of(dead).has_value());
  EXPECT_FALSE(netns_rig::owner_of(foreign).has_value());

  { const netns_rig rig(1); }

  const std::set<std::string> listed = listed_namespaces();
  EXPECT_FALSE(listed.contains(dead));
  EXPECT_TRUE(listed.contains(live));
  EXPECT_TRUE(listed.contains(foreign));
}

TEST(netns_rig, two_rigs_in_one_process_cannot_reach_each_other) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig first(2);
  netns_rig second(2);
  EXPECT_NE(first.ns_name(0), second.ns_name(0));
  EXPECT_NE(first.switch_ns_name(), second.switch_ns_name());
  start_echo_server(second, 1);
  first.enter(0);
  const connect_outcome across = connect_within(second.address(1), echo_port, cut_probe);
  EXPECT_FALSE(across.connected()) << "a host of one rig reached a host of another";
  first.leave();
  second.enter(0);
  const connect_outcome within = connect_within(second.address(1), echo_port, work_deadline);
  EXPECT_TRUE(within.connected()) << within.describe();
  second.leave();
}

TEST(netns_rig, names_the_failing_command_and_its_error) {
  TROUPE_REQUIRE_NETNS_RIG();
  watchdog guard;
  netns_rig rig(1);
  EXPECT_THROW((void)rig.address(1), std::out_of_range);
  EXPECT_THROW((void)netns_rig(0), std::invalid_argument);
  // Pull the switch port out from under the rig: cut() must then fail with a message
  // that names ip's command and carries ip's complaint.
  const auto removed = run_command({"ip", "-n", rig.switch_ns_name(), "link", "del", "p0"});
  ASSERT_TRUE(removed.succeeded()) << removed.err;
  try {
    rig.cut(0);
    ADD_FAILURE() << "cut() of a missing port did not throw";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("link set dev p0 down"), std::string::npos) << message;
    EXPECT_NE(message.find("Cannot find device"), std::string::npos) << message;
  }
}

}  // namespace

// An exception out of a helper role ends it through std::terminate, which the
// test that started it sees as a failed child: the report it needs.
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  // Helper roles first: they are child processes, not test runs.
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "--listen-echo") {
    const std::optional<std::uint16_t> port = parse_port(args[1]);
    int ready_fd = -1;
    const auto [end, error] = std::from_chars(args[2].data(), args[2].data() + args[2].size(), ready_fd);
    if (!port || error != std::errc() || ready_fd < 0) return 2;
    return listen_echo(*port, ready_fd);
  }
  if (args.size() == 3 && args[0] == "--connect-echo") {
    const std::optional<std::uint16_t> port = parse_port(args[2]);
    return port ? connect_echo(std::string(args[1]), *port) : 2;
  }
  if (args.size() == 1 && args[0] == "--check-child-setup") return check_child_setup();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
