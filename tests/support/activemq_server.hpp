// activemq_server: a real, private ActiveMQ broker (Debian's activemq 5.17,
// run with its own JVM) for one test binary, with a STOMP connector on a free
// loopback port and KahaDB in a temporary directory; kill() and start() (same
// port, same data) let a test take the broker away and bring it back.
//
//   TROUPE_REQUIRE_ACTIVEMQ();
//   troupe::test_support::activemq_server& broker = activemq_server::shared();
//   connect_to("127.0.0.1", broker.stomp_port());
//
// Readiness: a STOMP CONNECT is tried until CONNECTED comes back, with a short
// pause between tries that the JVM's exit cuts short (it waits on the pidfd),
// up to a deadline. The JVM takes about two seconds to start here.
//
// Thread safety: one owner thread; construct it on the test's main thread
// (the child gets PR_SET_PDEATHSIG, tied to the starting thread).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

#include "support/child_process.hpp"
#include "support/loopback_port.hpp"
#include "support/unique_fd.hpp"

// Skips the test when ActiveMQ is not installed, or fails it when
// TROUPE_REQUIRE_BROKERS=1 (CI sets it: a CI machine without the broker must
// not turn its tests into silent skips).
#define TROUPE_REQUIRE_ACTIVEMQ()                                                                       \
  do {                                                                                                  \
    if (const auto troupe_amq_reason = ::troupe::test_support::activemq_server::unavailable_reason()) { \
      if (::troupe::test_support::activemq_server::required()) {                                        \
        FAIL() << *troupe_amq_reason << " (and TROUPE_REQUIRE_BROKERS=1)";                              \
      }                                                                                                 \
      GTEST_SKIP() << *troupe_amq_reason;                                                               \
    }                                                                                                   \
  } while (false)

namespace troupe::test_support {

class activemq_server {
 public:
  static constexpr const char* jar = "/usr/share/activemq/bin/activemq.jar";
  static constexpr const char* java = "/usr/bin/java";

  static std::optional<std::string> unavailable_reason() {
    if (::access(jar, R_OK) != 0) {
      return std::string(jar) + " is not installed (Debian package activemq; scripts/deps installs it)";
    }
    if (::access(java, X_OK) != 0) return std::string(java) + " is not installed (default-jre-headless)";
    return std::nullopt;
  }
  static bool required() {
    const char* value = std::getenv("TROUPE_REQUIRE_BROKERS");
    return value != nullptr && std::string_view(value) == "1";
  }

  activemq_server() {
    char pattern[] = "/tmp/troupe-activemq-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw_errno("mkdtemp");
    directory_ = pattern;
    port_ = free_loopback_port();
    std::ofstream(directory_ / "activemq.xml") << config();
    start();
  }
  // One broker for the whole test binary (a JVM start is seconds); tests keep
  // apart through destinations of their own.
  static activemq_server& shared() {
    static const std::unique_ptr<activemq_server> server = std::make_unique<activemq_server>();
    return *server;
  }
  activemq_server(const activemq_server&) = delete;
  activemq_server& operator=(const activemq_server&) = delete;
  ~activemq_server() {
    try {
      kill();
    } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; the JVM dies with us anyway (PR_SET_PDEATHSIG)
    }
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  [[nodiscard]] std::uint16_t stomp_port() const noexcept { return port_; }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0; }

  // kill -9 and reap: the broker gone as from a crash; KahaDB keeps the
  // persistent messages for start().
  void kill() {
    if (pid_ <= 0) return;
    kill_child(pid_);
    pid_ = -1;
  }

  // (Re)starts the broker on this port and data and waits until it answers
  // STOMP; throws with the end of its log if not within 60 s.
  void start() {
    if (pid_ > 0) return;
    unique_fd log(::open((directory_ / "broker.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!log) throw_errno("creating the broker's log");
    child_options options;
    options.stdout_fd = log.get();
    options.stderr_fd = log.get();
    options.close_inherited_fds = true;
    const std::string base = directory_.string();
    pid_ = start_child({java, "-Xms64M", "-Xmx256M", "-XX:TieredStopAtLevel=1", "-Dactivemq.base=" + base,
                        "-Dactivemq.home=/usr/share/activemq", "-Dactivemq.data=" + base + "/data", "-jar", jar,
                        "start", "xbean:file:" + base + "/activemq.xml"},
                       environment_with({}), options);
    wait_until_ready(std::chrono::steady_clock::now() + std::chrono::seconds(60));
  }

  [[nodiscard]] std::string log_tail(std::size_t bytes = 2000) const {
    std::ifstream in(directory_ / "broker.log");
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

 private:
  [[nodiscard]] std::string config() const {
    const std::string base = directory_.string();
    return R"(<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="troupe-test"
          dataDirectory=")" +
           base + R"(/data" schedulerSupport="false" advisorySupport="false">
    <persistenceAdapter><kahaDB directory=")" +
           base + R"(/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:)" +
           std::to_string(port_) + R"("/>
    </transportConnectors>
  </broker>
</beans>
)";
  }

  // One STOMP CONNECT over a fresh connection, each step bounded by `deadline`.
  [[nodiscard]] bool answers(std::chrono::steady_clock::time_point deadline) const {
    unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) throw_errno("socket");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port_);
    if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
      return false;
    }
    pollfd writable{s.get(), POLLOUT, 0};
    if (::poll(&writable, 1, poll_timeout_until(deadline)) <= 0) return false;
    int problem = 0;
    socklen_t length = sizeof problem;
    if (::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &problem, &length) != 0 || problem != 0) return false;
    std::string hello = "CONNECT\naccept-version:1.2\nhost:localhost\n\n";
    hello.push_back('\0');
    if (::send(s.get(), hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size())) return false;
    std::string answer;
    while (answer.find('\0') == std::string::npos) {
      pollfd readable{s.get(), POLLIN, 0};
      if (::poll(&readable, 1, poll_timeout_until(deadline)) <= 0) return false;
      char buffer[512];
      const ssize_t n = ::recv(s.get(), buffer, sizeof buffer, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return false;
      answer.append(buffer, static_cast<std::size_t>(n));
    }
    return answer.rfind("CONNECTED", 0) == 0;
  }

  void wait_until_ready(std::chrono::steady_clock::time_point deadline) {
    const unique_fd pidfd = open_pidfd(pid_);
    if (!pidfd) throw_errno("pidfd_open(activemq)");
    for (;;) {
      if (answers(std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2)))) return;
      const auto pause = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
      pollfd exited{pidfd.get(), POLLIN, 0};
      if (::poll(&exited, 1, poll_timeout_until(std::min(pause, deadline))) > 0) {
        const std::optional<int> status = wait_for_exit(pid_, std::chrono::seconds(5));
        pid_ = -1;
        throw std::runtime_error("ActiveMQ exited before it answered (" +
                                 (status ? describe_wait_status(*status) : std::string("?")) + "); its log ends:\n" +
                                 log_tail());
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill();
        throw std::runtime_error("ActiveMQ did not answer STOMP within 60 s; its log ends:\n" + log_tail());
      }
    }
  }

  std::filesystem::path directory_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace troupe::test_support
