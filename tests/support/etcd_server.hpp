// etcd_server: a real, private etcd (Debian's etcd-server: /usr/bin/etcd) for
// one test or test suite, on free loopback ports, with a temporary data
// directory, killed and removed again at the end.
//
//   TEST(etcd_provider, ...) {
//     TROUPE_REQUIRE_ETCD();                       // skip (or fail in CI) without etcd
//     troupe::test_support::etcd_server etcd;      // started and healthy (or ::shared())
//     use(etcd.url());                             // "http://127.0.0.1:<port>"
//   }
//
// Ports: each is picked by binding port 0, then released for etcd to bind; if
// another process takes one meanwhile, etcd exits at once and is started again
// on new ports. Readiness: etcd's /health is polled (the cluster has a leader)
// until a deadline, with a short pause between probes that a crash of etcd
// cuts short (the pause waits on its pidfd). kill() and start() (same ports,
// same data) let a test take etcd away and bring it back.
//
// Thread safety: one owner thread. Construct it on the test's main thread
// (the child gets PR_SET_PDEATHSIG, tied to the starting thread).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback_port.hpp"
#include "support/unique_fd.hpp"

// Skips the test when etcd is not installed, or fails it when
// TROUPE_REQUIRE_ETCD=1 (CI sets it: a CI machine without etcd must not turn
// the etcd tests into silent skips).
#define TROUPE_REQUIRE_ETCD()                                                                        \
  do {                                                                                               \
    if (const auto troupe_etcd_reason = ::troupe::test_support::etcd_server::unavailable_reason()) { \
      if (::troupe::test_support::etcd_server::required()) {                                         \
        FAIL() << *troupe_etcd_reason << " (and TROUPE_REQUIRE_ETCD=1)";                             \
      }                                                                                              \
      GTEST_SKIP() << *troupe_etcd_reason;                                                           \
    }                                                                                                \
  } while (false)

namespace troupe::test_support {

// One GET /health to an etcd at `address` (network order), `port`, over a
// fresh connection, each step bounded by `deadline`: true if it says healthy.
inline bool etcd_healthy(in_addr_t address, std::uint16_t port, std::chrono::steady_clock::time_point deadline) {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) throw_errno("socket");
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = address;
  to.sin_port = htons(port);
  if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
    return false;
  }
  pollfd writable{s.get(), POLLOUT, 0};
  if (::poll(&writable, 1, poll_timeout_until(deadline)) <= 0) return false;
  int problem = 0;
  socklen_t length = sizeof problem;
  if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &problem, &length) != 0 || problem != 0) return false;
  const std::string request = "GET /health HTTP/1.0\r\n\r\n";
  if (::send(s.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    return false;
  }
  std::string answer;
  for (;;) {
    pollfd readable{s.get(), POLLIN, 0};
    if (::poll(&readable, 1, poll_timeout_until(deadline)) <= 0) return false;
    char buffer[1024];
    const ssize_t n = ::recv(s.get(), buffer, sizeof buffer, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // HTTP/1.0: the answer ends with the connection
    answer.append(buffer, static_cast<std::size_t>(n));
    if (answer.size() > 65536) return false;
  }
  return answer.find("\"health\":\"true\"") != std::string::npos;
}

class etcd_server {
 public:
  static constexpr const char* program = "/usr/bin/etcd";

  // nullopt if etcd can run here, else why not.
  static std::optional<std::string> unavailable_reason() {
    if (::access(program, X_OK) != 0) {
      return std::string(program) + " is not installed (Debian package etcd-server; scripts/deps installs it)";
    }
    return std::nullopt;
  }
  static bool required() {
    const char* value = std::getenv("TROUPE_REQUIRE_ETCD");
    return value != nullptr && std::string_view(value) == "1";
  }

  etcd_server() {
    char pattern[] = "/tmp/troupe-etcd-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw_errno("mkdtemp");
    directory_ = pattern;
    // A port taken between our probe and etcd's bind: try again on others.
    for (int attempt = 1;; ++attempt) {
      client_port_ = free_loopback_port();
      peer_port_ = free_loopback_port();
      try {
        start();
        return;
      } catch (const std::exception&) {
        if (attempt == 5 || !lost_a_port_race()) {
          cleanup();
          throw;
        }
        // The data directory remembers the old peer URL: start afresh.
        std::filesystem::remove_all(directory_ / "data");
      }
    }
  }

  // One etcd for every test of the process that needs none of its own
  // (starting one takes about a second), started on first use and killed at
  // exit. Tests keep apart through their own key prefix (unique_etcd_name()).
  static etcd_server& shared() {
    static const std::unique_ptr<etcd_server> server = std::make_unique<etcd_server>();
    return *server;
  }

  etcd_server(const etcd_server&) = delete;
  etcd_server& operator=(const etcd_server&) = delete;

  ~etcd_server() { cleanup(); }

  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

  // kill -9 and reap: etcd gone as from a crash; its data stays for start().
  void kill() {
    if (pid_ <= 0) return;
    kill_child(pid_);
    pid_ = -1;
  }

  // (Re)starts etcd on this server's ports and data, and waits until it is
  // healthy; throws with the end of etcd's log if it is not within 30 s.
  void start() {
    if (pid_ > 0) return;
    const std::string data = (directory_ / "data").string();
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    unique_fd log(::open((directory_ / "etcd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!log) throw_errno("creating etcd's log");
    child_options options;
    options.stdout_fd = log.get();
    options.stderr_fd = log.get();
    options.close_inherited_fds = true;
    pid_ = start_child(
        {program, "--name", "troupe-test", "--data-dir", data, "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", "troupe-test=" + peer, "--initial-cluster-state", "new", "--log-level", "warn"},
        environment_with({}), options);
    wait_until_healthy(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  }

  // The end of etcd's log, for failure messages.
  [[nodiscard]] std::string log_tail(std::size_t bytes = 2000) const {
    std::ifstream in(directory_ / "etcd.log");
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

 private:
  [[nodiscard]] bool lost_a_port_race() const {
    return log_tail(20000).find("address already in use") != std::string::npos;
  }

  // Polls /health until it says true, etcd exits, or the deadline.
  void wait_until_healthy(std::chrono::steady_clock::time_point deadline) {
    const unique_fd pidfd = open_pidfd(pid_);
    if (!pidfd) throw_errno("pidfd_open(etcd)");
    for (;;) {
      if (healthy(deadline)) return;
      // Between probes: a pause that etcd's exit ends at once.
      const auto pause = std::chrono::steady_clock::now() + std::chrono::milliseconds(25);
      pollfd exited{pidfd.get(), POLLIN, 0};
      if (::poll(&exited, 1, poll_timeout_until(std::min(pause, deadline))) > 0) {
        const std::optional<int> status = wait_for_exit(pid_, std::chrono::seconds(5));
        pid_ = -1;
        throw std::runtime_error("etcd exited before it was healthy (" +
                                 (status ? describe_wait_status(*status) : std::string("?")) + "); its log ends:\n" +
                                 log_tail());
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill();
        throw std::runtime_error("etcd was not healthy within 30 s; its log ends:\n" + log_tail());
      }
    }
  }

  [[nodiscard]] bool healthy(std::chrono::steady_clock::time_point deadline) const {
    return etcd_healthy(htonl(INADDR_LOOPBACK), client_port_, deadline);
  }

  void cleanup() noexcept {
    try {
      kill();
    } catch (...) {  // a destructor: etcd dies with us anyway (PR_SET_PDEATHSIG)
    }
    std::error_code ignored;
    if (!directory_.empty()) std::filesystem::remove_all(directory_, ignored);
  }

  std::filesystem::path directory_;
  std::uint16_t client_port_ = 0;
  std::uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
};

// "t<pid>x<n>": a key prefix or cluster name (valid as a node name) that no
// other test, in this process or another, uses.
inline std::string unique_etcd_name() {
  static std::atomic<int> next{0};
  // relaxed: only uniqueness matters, not ordering with anything else
  return "t" + std::to_string(::getpid()) + "x" + std::to_string(next.fetch_add(1, std::memory_order_relaxed));
}

// The URL of a loopback port nobody listens on, for as long as this object
// lives: bound but not listening, so a connect is refused, and nothing else
// can take the port meanwhile. For "etcd is unreachable" tests.
class refused_url {
 public:
  refused_url() : socket_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!socket_ || ::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      throw_errno("binding a loopback port");
    }
    socklen_t length = sizeof address;
    if (::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) throw_errno("getsockname");
    port_ = ntohs(address.sin_port);
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  unique_fd socket_;
  std::uint16_t port_ = 0;
};

}  // namespace troupe::test_support
