// netns_rig: several "machines" on one Linux box, for multi-host tests. Each host is a
// network namespace (own interfaces, addresses, routes, ports and loopback) whose one
// interface, eth0, is plugged into a private switch; hosts talk real TCP/IP to each
// other and to nothing else. Needs root (see unavailable_reason()).
//
//   TROUPE_REQUIRE_NETNS_RIG();                 // skip here, or fail if TROUPE_REQUIRE_NETNS=1
//   troupe::test_support::netns_rig rig(3);
//   rig.enter(0);                               // first thing: this thread is host 0 now
//   const pid_t peer = rig.spawn_in(1, {current_executable(), "--some-role"});
//   ... connect to rig.address(1) ...; rig.cut(1); ...; rig.restore(1); ...
//
// Layout of one rig, <id> = creator's pid, its start time, a per-process counter:
//
//   namespace troupe-rig-<id>-h0:      lo, eth0 10.a.b.1/24 <--veth pair--> p0
//   namespace troupe-rig-<id>-h1:      lo, eth0 10.a.b.2/24 <--veth pair--> p1
//   namespace troupe-rig-<id>-h2:      lo, eth0 10.a.b.3/24 <--veth pair--> p2
//   namespace troupe-rig-<id>-switch:  bridge br0 with ports p0, p1, p2
//
// Design:
// - The bridge has a namespace of its own rather than living in the root namespace: in
//   the root namespace, bridged frames go through the machine's firewall when
//   br_netfilter is loaded with bridge-nf-call-iptables=1 (Docker loads it, and sets the
//   FORWARD policy to DROP), which would silently eat the rig's traffic; a fresh
//   namespace has empty tables. It also makes teardown atomic (deleting the switch
//   namespace destroys the bridge and every veth pair) and keeps the root namespace free
//   of test interfaces. cut()/restore() act on the switch-side port, the "cable".
// - Names carry the creator's pid and start time, so parallel runs never collide, and a
//   new rig deletes leftovers of a crashed run (creator gone, or its pid now someone
//   else's) but never those of a live one.
// - Addresses: 10.a.b.0/24, a and b derived from the id. Rigs cannot see each other (each
//   has its own switch) nor the machine's networks (a host has no route beyond its /24),
//   so equal subnets would not interfere; distinct ones keep logs unambiguous.
// - Programs start in a host with fork + setns + execve, not `ip netns exec`, so the
//   returned pid is the program itself (signals, pidfds and /proc/<pid> reach it).
// - Setup is 2 + hosts `ip -batch` runs: 10-70 ms for three hosts, teardown ~2 ms.
//
// Thread safety: use a rig from one thread, the test's main thread (construction,
// spawn_in, cut, restore, destruction). Network namespaces are per thread: enter() moves
// only the calling thread; threads it creates afterwards start in that host, threads
// created before stay where they were. So call enter() first thing in a test, before
// creating nodes, worker pools or any other thread. A socket stays in the namespace it
// was created in. The destructor returns its own thread to the original namespace if
// that thread had entered a host.
//
// Not separated between hosts: the file system (so UNIX sockets and shared memory still
// connect them) and /sys (it keeps showing the original namespace's interfaces; only
// `ip netns exec` remounts it).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/unique_fd.hpp"

// At the top of a test that needs the rig: skips the test with the reason when the rig
// cannot run here, or fails it when TROUPE_REQUIRE_NETNS=1 (CI sets it, so that a CI
// machine that lost root or iproute2 cannot turn the multi-host tests into silent skips).
#define TROUPE_REQUIRE_NETNS_RIG()                                                                \
  do {                                                                                            \
    if (const auto troupe_rig_reason = ::troupe::test_support::netns_rig::unavailable_reason()) { \
      if (::troupe::test_support::netns_rig::required()) {                                        \
        FAIL() << *troupe_rig_reason << " (and TROUPE_REQUIRE_NETNS=1)";                          \
      }                                                                                           \
      GTEST_SKIP() << *troupe_rig_reason;                                                         \
    }                                                                                             \
  } while (false)

namespace troupe::test_support {

class netns_rig {
 public:
  // Every rig namespace's name starts with this; nothing else may use it.
  static constexpr std::string_view name_prefix = "troupe-rig-";
  static constexpr int max_hosts = 253;  // .1 to .253 in one /24
  static constexpr int prefix_length = 24;

  // Builds `hosts` hosts (1..max_hosts) on one switch, all links up. Removes leftovers
  // of dead rigs first. Throws std::runtime_error naming the failing command and its
  // stderr (and cleans up what it had built).
  explicit netns_rig(int hosts);
  // Kills and reaps the children spawn_in started, returns this thread to its original
  // namespace if it entered a host, and deletes the namespaces (with them the bridge and
  // the veth pairs). Never throws; problems are printed.
  ~netns_rig();
  netns_rig(const netns_rig&) = delete;
  netns_rig& operator=(const netns_rig&) = delete;

  int hosts() const { return static_cast<int>(hosts_.size()); }
  // "10.a.b.<host + 1>"
  const std::string& address(int host) const { return at(host).address; }
  // The namespace's name, as `ip netns list` shows it (`ip -n <name> ...` works).
  const std::string& ns_name(int host) const { return at(host).ns_name; }
  const std::string& switch_ns_name() const { return switch_ns_name_; }

  // Starts argv (argv[0] a path, or a name looked up in $PATH) inside `host`, with this
  // process's environment plus `extra_env` ("NAME=value"). Returns the program's own
  // pid once it has been exec'ed; reap it with wait_for_exit()/kill_child()
  // (support/child_process.hpp), or leave it to the destructor. stdin, stdout and stderr
  // are inherited, and so is every descriptor not marked close-on-exec. The child gets
  // PR_SET_PDEATHSIG(SIGKILL): it dies with the calling thread, so call this from the
  // test's main thread.
  pid_t spawn_in(int host, const std::vector<std::string>& argv, const std::vector<std::string>& extra_env = {});

  // Moves the calling thread (only it) into `host`: sockets it creates from now on, and
  // threads it creates from now on, live there. Call it before creating any thread.
  void enter(int host);
  // Moves the calling thread back to the namespace the rig was built from.
  void leave();

  // Unplugs / replugs `host`'s cable: its switch port goes down, eth0 loses carrier.
  // Packets to and from the host are dropped (not refused): connects time out and
  // established connections stall, as with a pulled cable. Works from any namespace.
  void cut(int host);
  void restore(int host);

  // nullopt if rigs can be built here, else why not (not root, no iproute2, no veth or
  // bridge support...). Found by building a one-host rig once per process.
  static std::optional<std::string> unavailable_reason();
  // TROUPE_REQUIRE_NETNS=1: tests needing the rig must fail, not skip, without it.
  static bool required() {
    const char* value = std::getenv("TROUPE_REQUIRE_NETNS");
    return value != nullptr && std::string_view(value) == "1";
  }

  // The creator pid and start time encoded in a rig namespace's name, nullopt if the
  // name is not one of ours. Exposed for the rig's own tests.
  struct owner {
    pid_t pid = 0;
    unsigned long long start_time = 0;
  };
  static std::optional<owner> owner_of(std::string_view ns_name);
  // The start time of a process (field 22 of /proc/<pid>/stat), nullopt if none.
  static std::optional<unsigned long long> start_time_of(pid_t pid);

 private:
  struct host_state {
    std::string ns_name;
    std::string address;
    std::string switch_port;  // the switch-side end of the host's veth pair
    unique_fd netns;
  };
  struct child {
    pid_t pid = 0;
    unique_fd pidfd;
  };

  const host_state& at(int host_index) const {
    if (host_index < 0 || host_index >= hosts()) {
      throw std::out_of_range("netns_rig: no host " + std::to_string(host_index) + " (hosts 0.." +
                              std::to_string(hosts() - 1) + ")");
    }
    return hosts_[static_cast<std::size_t>(host_index)];
  }
  void build(int host_count);
  void tear_down() noexcept;
  void set_link(int host, const char* state);
  // Runs `ip [-force] -batch -` with `commands` (one per line) in `netns_fd`; throws
  // with the commands and ip's stderr unless it succeeds.
  static void ip_batch(const std::string& ip_program, int netns_fd, const std::string& where,
                       const std::vector<std::string>& commands, bool force = false);
  // original_netns_ for run_command, or -1 if the calling thread is in it already: a
  // setns, even into one's own namespace, needs CAP_SYS_ADMIN, and without it the
  // error worth reporting is ip's own.
  int in_original() const;
  static unique_fd open_netns(const std::string& path);
  // Where `ip netns add` puts a namespace's name (a bind mount of it).
  static std::string name_path(const std::string& ns_name) { return "/run/netns/" + ns_name; }
  static void remove_stale_namespaces(const std::string& ip_program, int netns_fd) noexcept;

  std::string ip_program_;
  unique_fd original_netns_;  // where the rig was built; `ip` runs there
  std::string id_;
  std::string switch_ns_name_;
  unique_fd switch_netns_;
  std::vector<std::string> namespaces_;  // every name we may have created, for teardown
  std::vector<host_state> hosts_;
  std::vector<child> children_;
  std::optional<std::thread::id> entered_by_;  // the thread in a host, if any
};

inline netns_rig::netns_rig(int host_count) {
  if (host_count < 1 || host_count > max_hosts) {
    throw std::invalid_argument("netns_rig: " + std::to_string(host_count) + " hosts; 1.." + std::to_string(max_hosts) +
                                " supported");
  }
  ip_program_ = find_program("ip");
  // thread-self, not self: /proc/self/ns/net is the main thread's namespace.
  original_netns_ = open_netns("/proc/thread-self/ns/net");
  static std::atomic<unsigned> rigs_made{0};
  const std::optional<unsigned long long> start_time = start_time_of(::getpid());
  if (!start_time) throw std::runtime_error("netns_rig: cannot read this process's start time");
  // relaxed: the counter only needs distinct values, it orders nothing.
  id_ = std::to_string(::getpid()) + "-" + std::to_string(*start_time) + "-" +
        std::to_string(rigs_made.fetch_add(1, std::memory_order_relaxed));
  remove_stale_namespaces(ip_program_, in_original());
  try {
    build(host_count);
  } catch (...) {
    tear_down();
    throw;
  }
}

inline netns_rig::~netns_rig() { tear_down(); }

inline void netns_rig::build(int host_count) {
  const std::string base = std::string(name_prefix) + id_;
  switch_ns_name_ = base + "-switch";
  const std::size_t hash = std::hash<std::string>{}(id_);
  const std::string subnet = "10." + std::to_string(1 + hash % 254) + "." + std::to_string((hash / 254) % 256) + ".";
  for (int i = 0; i < host_count; ++i) {
    host_state h;
    h.ns_name = base + "-h" + std::to_string(i);
    h.address = subnet + std::to_string(i + 1);
    h.switch_port = "p" + std::to_string(i);
    hosts_.push_back(std::move(h));
  }

  // Recorded before creating, so a batch that fails halfway is still cleaned up.
  std::vector<std::string> add_namespaces;
  namespaces_.push_back(switch_ns_name_);
  for (const host_state& h : hosts_) namespaces_.push_back(h.ns_name);
  for (const std::string& name : namespaces_) add_namespaces.push_back("netns add " + name);
  ip_batch(ip_program_, in_original(), "the original namespace", add_namespaces);
  switch_netns_ = open_netns(name_path(switch_ns_name_));
  for (host_state& h : hosts_) h.netns = open_netns(name_path(h.ns_name));

  // STP stays off (the default), so a port forwards as soon as it is up: no 15 s
  // listening/learning delay after creation or restore().
  std::vector<std::string> switch_setup = {"link add br0 type bridge", "link set dev br0 up"};
  for (const host_state& h : hosts_) {
    switch_setup.push_back("link add " + h.switch_port + " type veth peer name eth0 netns " + h.ns_name);
    switch_setup.push_back("link set dev " + h.switch_port + " master br0");
    switch_setup.push_back("link set dev " + h.switch_port + " up");
  }
  ip_batch(ip_program_, switch_netns_.get(), switch_ns_name_, switch_setup);
  for (const host_state& h : hosts_) {
    ip_batch(ip_program_, h.netns.get(), h.ns_name,
             {"link set dev lo up", "address add " + h.address + "/" + std::to_string(prefix_length) + " dev eth0",
              "link set dev eth0 up"});
  }
}

inline void netns_rig::tear_down() noexcept {
  // Children first: a process inside a namespace would keep it alive after deletion.
  for (child& c : children_) {
    // pidfd_send_signal, not kill(): the test may have reaped this pid already, and
    // the pid may name another process by now; the pidfd still names ours.
    if (::syscall(SYS_pidfd_send_signal, c.pidfd.get(), SIGKILL, nullptr, 0) != 0 && errno != ESRCH) {
      std::fprintf(stderr, "netns_rig: cannot kill child %d: %s\n", static_cast<int>(c.pid),
                   std::generic_category().message(errno).c_str());
      continue;
    }
    pollfd exited{c.pidfd.get(), POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + default_child_deadline;
    int ready = 0;
    while ((ready = ::poll(&exited, 1, poll_timeout_until(deadline))) < 0 && errno == EINTR) {
    }
    if (ready == 0) {
      std::fprintf(stderr, "netns_rig: child %d still running %lld s after SIGKILL\n", static_cast<int>(c.pid),
                   static_cast<long long>(default_child_deadline.count()));
      continue;
    }
    siginfo_t info{};
    // ECHILD: the test reaped it already.
    if (::waitid(P_PIDFD, static_cast<id_t>(c.pidfd.get()), &info, WEXITED | WNOHANG) != 0 && errno != ECHILD) {
      std::fprintf(stderr, "netns_rig: cannot reap child %d: %s\n", static_cast<int>(c.pid),
                   std::generic_category().message(errno).c_str());
    }
  }
  children_.clear();
  if (entered_by_) {
    if (*entered_by_ == std::this_thread::get_id()) {
      if (::setns(original_netns_.get(), CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "netns_rig: cannot return this thread to its namespace: %s\n",
                     std::generic_category().message(errno).c_str());
      }
    } else {
      std::fprintf(stderr, "netns_rig: a thread other than the destroying one entered a host and stays there\n");
    }
  }
  // Our handles would keep the namespaces alive after their names are gone.
  switch_netns_.reset();
  for (host_state& h : hosts_) h.netns.reset();
  std::vector<std::string> deletions;
  for (const std::string& name : namespaces_) {
    std::error_code ignored;
    if (std::filesystem::exists(name_path(name), ignored)) deletions.push_back("netns del " + name);
  }
  if (deletions.empty()) return;
  try {
    // -force: one failed deletion must not leave the others behind.
    ip_batch(ip_program_, in_original(), "the original namespace", deletions, true);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "netns_rig: teardown: %s\n", e.what());
  }
}

inline pid_t netns_rig::spawn_in(int host_index, const std::vector<std::string>& argv,
                                 const std::vector<std::string>& extra_env) {
  child_options options;
  options.netns_fd = at(host_index).netns.get();
  const pid_t pid = start_child(argv, environment_with(extra_env), options);
  // Not reaped yet (only we reap it), so the pid still names our child.
  unique_fd pidfd = open_pidfd(pid);
  if (!pidfd) {
    const int error = errno;
    kill_child(pid);
    errno = error;
    throw_errno("pidfd_open for " + quote_command(argv));
  }
  children_.push_back(child{pid, std::move(pidfd)});
  return pid;
}

inline void netns_rig::enter(int host_index) {
  if (::setns(at(host_index).netns.get(), CLONE_NEWNET) != 0) throw_errno("setns into " + ns_name(host_index));
  entered_by_ = std::this_thread::get_id();
}

inline void netns_rig::leave() {
  if (::setns(original_netns_.get(), CLONE_NEWNET) != 0) throw_errno("setns back to the original namespace");
  if (entered_by_ == std::this_thread::get_id()) entered_by_.reset();
}

inline void netns_rig::cut(int host_index) { set_link(host_index, "down"); }
inline void netns_rig::restore(int host_index) { set_link(host_index, "up"); }

inline void netns_rig::set_link(int host_index, const char* state) {
  // Run inside the switch namespace through our own handle, so it works whatever
  // namespace the calling thread is in.
  ip_batch(ip_program_, switch_netns_.get(), switch_ns_name_,
           {"link set dev " + at(host_index).switch_port + " " + state});
}

inline std::optional<std::string> netns_rig::unavailable_reason() {
  // Built once per process (thread-safe static initialization); tens of ms.
  static const std::optional<std::string> reason = []() -> std::optional<std::string> {
    try {
      const netns_rig probe(1);
      return std::nullopt;
    } catch (const std::exception& e) {
      std::string why = std::string("the netns test rig cannot run here: ") + e.what();
      if (::geteuid() != 0) why += " (not running as root, euid " + std::to_string(::geteuid()) + ")";
      return why;
    }
  }();
  return reason;
}

inline std::optional<netns_rig::owner> netns_rig::owner_of(std::string_view ns_name) {
  // <prefix><pid>-<start time>-<counter>-<role>
  if (!ns_name.starts_with(name_prefix)) return std::nullopt;
  std::string_view rest = ns_name.substr(name_prefix.size());
  owner result;
  const auto number = [&rest](auto& value) {
    const auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (error != std::errc() || end == rest.data() || end == rest.data() + rest.size() || *end != '-') return false;
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()) + 1);
    return true;
  };
  unsigned long long counter = 0;
  if (!number(result.pid) || !number(result.start_time) || !number(counter) || result.pid <= 0) return std::nullopt;
  return result;
}

inline std::optional<unsigned long long> netns_rig::start_time_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  // Field 2 is "(comm)" and comm may hold spaces or parentheses: count from the last ')'.
  const std::size_t comm_end = stat.rfind(')');
  if (comm_end == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(comm_end + 1));
  std::string field;
  for (int number = 3; number <= 22; ++number) {
    if (!(fields >> field)) return std::nullopt;
  }
  unsigned long long start_time = 0;
  const auto [end, error] = std::from_chars(field.data(), field.data() + field.size(), start_time);
  if (error != std::errc() || end != field.data() + field.size()) return std::nullopt;
  return start_time;
}

inline void netns_rig::ip_batch(const std::string& ip_program, int netns_fd, const std::string& where,
                                const std::vector<std::string>& commands, bool force) {
  std::string input;
  for (const std::string& command : commands) input += command + "\n";
  std::vector<std::string> argv = {ip_program};
  if (force) argv.push_back("-force");
  argv.insert(argv.end(), {"-batch", "-"});
  const command_result result = run_command(argv, input, netns_fd);
  if (result.succeeded()) return;
  std::string message = "netns_rig: " + quote_command(argv) + " in " + where + " " +
                        describe_wait_status(result.status) +
                        "; its commands (ip names a failing one as \"-:<line>\"):\n";
  for (std::size_t i = 0; i < commands.size(); ++i)
    message += "  " + std::to_string(i + 1) + ": ip " + commands[i] + "\n";
  std::string err = result.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  message += "stderr: " + (err.empty() ? std::string("(empty)") : err);
  throw std::runtime_error(message);
}

inline int netns_rig::in_original() const {
  struct stat original {
  }, current{};
  if (::fstat(original_netns_.get(), &original) == 0 && ::stat("/proc/thread-self/ns/net", &current) == 0 &&
      original.st_dev == current.st_dev && original.st_ino == current.st_ino) {
    return -1;
  }
  return original_netns_.get();
}

inline unique_fd netns_rig::open_netns(const std::string& path) {
  unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("netns_rig: open " + path);
  return fd;
}

inline void netns_rig::remove_stale_namespaces(const std::string& ip_program, int netns_fd) noexcept {
  std::vector<std::string> deletions;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/run/netns", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    const std::string name = it->path().filename().string();
    const std::optional<owner> creator = owner_of(name);
    if (!creator) continue;
    // Alive means: the pid exists and is still the same process (pids are reused).
    if (start_time_of(creator->pid) == creator->start_time) continue;
    deletions.push_back("netns del " + name);
  }
  if (deletions.empty()) return;
  try {
    // -force: one failed deletion must not keep the others.
    ip_batch(ip_program, netns_fd, "the original namespace", deletions, true);
  } catch (const std::exception& e) {
    // A parallel run may have deleted the same leftovers first; only a name that is
    // still there is worth a line.
    const bool left = std::any_of(deletions.begin(), deletions.end(), [](const std::string& deletion) {
      std::error_code ignored;
      return std::filesystem::exists(name_path(deletion.substr(deletion.rfind(' ') + 1)), ignored);
    });
    if (left) std::fprintf(stderr, "netns_rig: removing leftovers of dead rigs: %s\n", e.what());
  }
}

}  // namespace troupe::test_support
