// rabbitmq_broker: a real, private RabbitMQ (Debian's rabbitmq-server) for one
// test binary: its own AMQP, distribution and epmd ports, node name
// troupe-test-<pid>@localhost, Erlang cookie, config and data directory in a
// scratch directory; stopped (rabbitmqctl stop, then kill) and removed at the end.
//
//   rabbitmq_broker broker;            // started and accepting AMQP (throws after its deadline)
//   use(broker.port());
//   broker.ctl({"stop_app"}); broker.ctl({"start_app"});   // take the broker away and back
//
// Startup takes seconds (Erlang): one per test binary (a gtest Environment).
// Readiness: `rabbitmqctl wait <pid file>` — RabbitMQ's own wait for the node
// and its application, with its own timeout — then one AMQP login.
//
// Thread safety: one owner thread; construct it on the main thread before any
// other thread starts (it sets ERL_EPMD_PORT in this process's environment, so
// that rabbitmqctl and epmd, run by run_command, find the private epmd).
#pragma once

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/child_process.hpp"
#include "support/loopback_port.hpp"
#include "support/scratch_dir.hpp"
#include "support/unique_fd.hpp"

namespace troupe::test_support {

class rabbitmq_broker {
 public:
  static constexpr const char* server = "/usr/lib/rabbitmq/bin/rabbitmq-server";
  static constexpr const char* rabbitmqctl = "/usr/lib/rabbitmq/bin/rabbitmqctl";

  static std::optional<std::string> unavailable_reason() {
    if (::access(server, X_OK) != 0) {
      return std::string(server) + " is not installed (Debian package rabbitmq-server; scripts/deps installs it)";
    }
    return std::nullopt;
  }
  // TROUPE_REQUIRE_BROKERS=1 (CI sets it): a missing broker fails the tests
  // instead of turning them into silent skips.
  static bool required() {
    const char* value = std::getenv("TROUPE_REQUIRE_BROKERS");
    return value != nullptr && std::string_view(value) == "1";
  }

  rabbitmq_broker() : dir_("troupe-rabbitmq") {
    port_ = free_loopback_port();
    const std::uint16_t dist_port = free_loopback_port();
    epmd_port_ = free_loopback_port();
    node_ = "troupe-test-" + std::to_string(::getpid()) + "@localhost";
    std::random_device random;
    cookie_ = "troupe" + std::to_string(random()) + std::to_string(random());
    {
      std::ofstream cookie(dir_.file(".erlang.cookie"));
      cookie << cookie_;
    }
    ::chmod(dir_.file(".erlang.cookie").c_str(), 0400);  // Erlang refuses a cookie others can read
    // The disk alarm would block publishers on a nearly full scratch disk; the
    // tests store a few hundred small messages.
    std::ofstream(dir_.file("rabbit.conf")) << "listeners.tcp.default = 127.0.0.1:" << port_ << "\n"
                                            << "disk_free_limit.absolute = 1MB\n";
    std::ofstream(dir_.file("enabled_plugins")) << "[].\n";
    // Before any thread: run_command passes this process's environment on.
    // NOLINTNEXTLINE(concurrency-mt-unsafe): constructed before any other thread runs (see the top)
    ::setenv("ERL_EPMD_PORT", std::to_string(epmd_port_).c_str(), 1);
    const std::string d = dir_.path().string();
    environment_ = environment_with(
        {"HOME=" + d, "RABBITMQ_NODENAME=" + node_, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
         "RABBITMQ_NODE_PORT=" + std::to_string(port_), "RABBITMQ_DIST_PORT=" + std::to_string(dist_port),
         "ERL_EPMD_PORT=" + std::to_string(epmd_port_), "RABBITMQ_MNESIA_BASE=" + d + "/mnesia",
         "RABBITMQ_LOG_BASE=" + d + "/log", "RABBITMQ_CONFIG_FILE=" + d + "/rabbit",
         "RABBITMQ_ENABLED_PLUGINS_FILE=" + d + "/enabled_plugins", "RABBITMQ_PID_FILE=" + d + "/rabbit.pid"});
    log_ = unique_fd(::open(dir_.file("server.out").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    child_options options;
    options.stdout_fd = log_.get();
    options.stderr_fd = log_.get();
    options.close_inherited_fds = true;
    // setsid: the server script and the Erlang VM it starts form a process
    // group of their own, which stop() can kill as one.
    pid_ = start_child({"setsid", server}, environment_, options);
    const command_result waited =
        ctl({"wait", (dir_.path() / "rabbit.pid").string(), "--timeout", "60"}, std::chrono::seconds(70));
    if (!waited.succeeded() || !accepts_login(std::chrono::seconds(10))) {
      const std::string why = "rabbitmq-server did not start: " + waited.err + waited.out + "\n" + log_tail();
      stop();
      throw std::runtime_error(why);
    }
  }
  rabbitmq_broker(const rabbitmq_broker&) = delete;
  rabbitmq_broker& operator=(const rabbitmq_broker&) = delete;
  ~rabbitmq_broker() {
    try {
      stop();
    } catch (const std::exception& e) {
      // A destructor must not throw; the broker's process group was killed
      // already if anything failed before this point.
      std::fprintf(stderr, "rabbitmq_broker: stopping the broker failed: %s\n", e.what());
    }
  }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] const std::string& node() const noexcept { return node_; }

  // rabbitmqctl <args> against this node.
  command_result ctl(std::vector<std::string> args, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::vector<std::string> argv{rabbitmqctl, "-n", node_, "--erlang-cookie", cookie_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, {}, -1, timeout);
  }

  // An AMQP login works within `timeout` (rabbit_app started).
  bool accepts_login(std::chrono::milliseconds timeout) const {
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t* s = amqp_tcp_socket_new(c);
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    bool ok = amqp_socket_open_noblock(s, "127.0.0.1", port_, &tv) == AMQP_STATUS_OK;
    if (ok) {
      amqp_set_handshake_timeout(c, &tv);
      ok =
          amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest").reply_type == AMQP_RESPONSE_NORMAL;
      if (ok) amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
    return ok;
  }

  std::string log_tail() const {
    std::ifstream in(dir_.file("server.out"));
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
  }

 private:
  void stop() {
    if (pid_ > 0) {
      // Graceful first (the node halts; the script exits), then the group.
      try {
        (void)ctl({"stop"}, std::chrono::seconds(20));
      } catch (const std::exception&) {
        // rabbitmqctl hung or did not start: the kill below does the job.
      }
      if (!wait_for_exit(pid_, std::chrono::seconds(15))) {
        ::kill(-pid_, SIGKILL);
        (void)wait_for_exit(pid_, std::chrono::seconds(10));
      }
      ::kill(-pid_, SIGKILL);  // anything of the group left behind
      pid_ = -1;
    }
    try {
      (void)run_command({"epmd", "-kill"}, {}, -1, std::chrono::seconds(10));  // the private epmd (ERL_EPMD_PORT)
    } catch (const std::exception&) {
      // epmd not found or hung: it only holds a port, nothing of the test's.
    }
  }

  scratch_dir dir_;
  std::uint16_t port_ = 0;
  std::uint16_t epmd_port_ = 0;
  std::string node_;
  std::string cookie_;
  std::vector<std::string> environment_;
  unique_fd log_;
  pid_t pid_ = -1;
};

}  // namespace troupe::test_support
