// The multi-process test executable is also its own child program (see
// process_fixture.hpp): started by spawn_node(), troupe::run() makes it a node.
#include <gtest/gtest.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "process_fixture.hpp"

TROUPE_REGISTER_ACTOR(it::echo_actor);
TROUPE_REGISTER_ACTOR(it::relay_actor);
TROUPE_REGISTER_ACTOR(it::tick_forwarder, troupe::ref<it::tick_report_protocol>, std::int64_t);

namespace {

// hosts_test.cpp's "other machine": a node listening on TCP in its own network
// namespace, serving until it is killed (or gets SIGTERM).
//   --host-node NAME ENDPOINT COOKIE READY_FD [TLS_DIR CERT]
int host_node(int argc, char** argv) {
  if (argc < 6) return 2;
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread: all inherit it
  troupe::node_config cfg;
  cfg.name = argv[2];
  cfg.listen = argv[3];
  cfg.cookie = argv[4];
  cfg.system.worker_threads = 2;
  if (argc >= 8) {
    const std::string dir = argv[6], cert = argv[7];
    cfg.tls.enabled = true;
    cfg.tls.certificate_file = dir + "/" + cert + ".pem";
    cfg.tls.private_key_file = dir + "/" + cert + ".key";
    cfg.tls.ca_file = dir + "/ca.pem";
  }
  troupe::node n(cfg);
  n.publish("echo", n.spawn<it::echo_actor>());
  n.publish("relay", n.spawn<it::relay_actor>());
  const int ready = std::atoi(argv[5]);
  const char up = 1;
  if (::write(ready, &up, 1) != 1) return 1;
  ::close(ready);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

// Lines to the test over a pipe, whole (a line is far below PIPE_BUF, so one
// write() is atomic), from any thread.
class line_writer {
 public:
  explicit line_writer(int fd) : fd_(fd) {}
  void write(std::string line) {
    for (char& c : line) {
      if (c == '\n') c = ' ';  // an error text must not end the line early
    }
    line += '\n';
    std::lock_guard lock(mutex_);
    for (std::size_t done = 0; done < line.size();) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the test is gone; this process follows (PR_SET_PDEATHSIG)
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  std::mutex mutex_;
  int fd_;
};

using membership_protocol = troupe::protocol<troupe::member_up, troupe::member_down>;
struct membership_reporter : troupe::actor<membership_protocol> {
  explicit membership_reporter(line_writer* to) : out(to) {}
  void on(const troupe::member_up& e) { out->write("up " + e.who.name + " " + std::to_string(e.who.incarnation)); }
  void on(const troupe::member_down& e) {
    out->write("down " + e.who.name + " " + std::to_string(e.who.incarnation) + " " + e.reason);
  }
  line_writer* out;
};

// Reports every tick of the "ticks" topic it gets: "tick SEQ".
struct tick_reporter : troupe::actor<it::tick_protocol> {
  explicit tick_reporter(line_writer* to) : out(to) {}
  void on(const it::tick& t) { out->write("tick " + std::to_string(t.seq)); }
  line_writer* out;
};

// The reporters subscribe-ticks spawned (unsubscribe-ticks takes them off the topic).
using tick_reporters = std::vector<troupe::ref<it::tick_protocol>>;

// One command from the test; the answer is one line.
std::string answer(troupe::node& n, line_writer& out, tick_reporters& reporters, const std::string& command) {
  const auto space = command.find(' ');
  const std::string verb = command.substr(0, space);
  const std::string arg = space == std::string::npos ? std::string() : command.substr(space + 1);
  if (verb == "members") {
    std::string line = "members";
    for (const troupe::member& m : n.members()) line += " " + m.name + ":" + std::to_string(m.incarnation);
    return line;
  }
  if (verb == "publish") {
    auto published = n.publish_global(arg, n.spawn<it::echo_actor>());
    if (!published) return "publish-failed " + arg + " " + published.error().text();
    return "published " + arg;
  }
  if (verb == "lookup") {  // lookup NAME TIMEOUT_MS
    const auto at = arg.find(' ');
    const std::string name = arg.substr(0, at);
    const auto timeout = std::chrono::milliseconds(at == std::string::npos ? 0 : std::atoll(arg.c_str() + at + 1));
    auto found = n.lookup<it::echo_protocol>(name, timeout);
    if (!found) {
      return "missing " + name + " " +
             std::string(found.error().code() == troupe::errc::no_such_name ? "no_such_name" : "other") + " " +
             found.error().text();
    }
    auto reply = found->ask(it::echo{"from " + n.name()}, std::chrono::seconds(10)).try_get();
    if (!reply) return "unanswered " + name + " " + reply.error().text();
    return "found " + name + " " + *reply;
  }
  if (verb == "subscribe-ticks") {
    auto reporter = n.spawn<tick_reporter>(&out);
    auto subscribed = n.topic<it::tick>("ticks").subscribe(reporter);
    if (!subscribed) return "subscribe-failed " + subscribed.error().text();
    reporters.push_back(reporter);
    return "subscribed-ticks";
  }
  if (verb == "unsubscribe-ticks") {  // every reporter this node subscribed
    auto ticks = n.topic<it::tick>("ticks");
    for (const auto& reporter : reporters) ticks.unsubscribe(reporter);
    reporters.clear();
    return "unsubscribed-ticks";
  }
  if (verb == "publish-ticks") {  // publish-ticks FROM COUNT
    std::istringstream in(arg);
    std::int64_t from = 0, count = 0;
    in >> from >> count;
    auto ticks = n.topic<it::tick>("ticks");
    for (std::int64_t i = from; i < from + count; ++i) {
      if (ticks.publish(it::tick{i})) return "publish-failed " + std::to_string(i);
    }
    return "published-ticks " + std::to_string(from) + " " + std::to_string(count);
  }
  if (verb == "await-tick-subscribers") {  // await-tick-subscribers N TIMEOUT_MS: exactly N, here and elsewhere
    std::istringstream in(arg);
    std::size_t count = 0;
    long long timeout_ms = 0;
    in >> count >> timeout_ms;
    auto ticks = n.topic<it::tick>("ticks");
    auto reached = ticks.await_stats([count](const troupe::topic_stats& s) { return s.subscribers() == count; },
                                     std::chrono::milliseconds(timeout_ms));
    return reached ? "tick-subscribers " + std::to_string(count)
                   : "tick-subscribers-timeout " + std::to_string(ticks.stats().subscribers());
  }
  return "unknown-command " + command;
}

// cluster_hosts_test.cpp's member: a node configured from its command line
// alone, as an operator would start one, that reports membership events and
// answers commands over two pipes, and serves until SIGTERM (an orderly
// leave) or SIGKILL.
//   --cluster-node --report-fd FD --command-fd FD --name NAME --listen tcp://HOST:PORT
//                  --cookie-file PATH --cluster SPEC
// Reports: "ready NAME INCARNATION ENDPOINT" (or "failed ERROR"), then
// "up NAME INCARNATION" / "down NAME INCARNATION REASON" as its subscription
// hears them, and one answer per command line:
//   members                 -> "members NAME:INCARNATION ..." (node::members(), by name)
//   publish NAME            -> "published NAME" / "publish-failed NAME ERROR" (an echo actor)
//   lookup NAME TIMEOUT_MS  -> "found NAME ECHO-REPLY" / "missing NAME no_such_name|other ERROR"
//   subscribe-ticks         -> "subscribed-ticks": an actor subscribes to the "ticks" topic and
//                              reports "tick SEQ" for every tick it gets
//   unsubscribe-ticks       -> "unsubscribed-ticks": those actors leave the topic (they keep running)
//   publish-ticks FROM COUNT -> "published-ticks FROM COUNT" (ticks FROM .. FROM+COUNT-1)
//   await-tick-subscribers N TIMEOUT_MS -> "tick-subscribers N" once "ticks" has exactly N
//                              (here and announced), else "tick-subscribers-timeout HAVE"
int cluster_node(int argc, char** argv) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread: all inherit it
  ::signal(SIGPIPE, SIG_IGN);                  // a write to a test that is gone fails instead
  const int stop_fd = ::signalfd(-1, &stop, SFD_CLOEXEC);
  if (stop_fd < 0) return 1;

  troupe::node_config cfg;
  auto rest = troupe::configure_from_command_line(cfg, argc, argv);
  if (!rest) {
    std::fprintf(stderr, "--cluster-node: %s\n", rest.error().text().c_str());
    return 2;
  }
  // What configure_from_command_line left: this role's own arguments.
  int report_fd = -1, command_fd = -1;
  for (std::size_t i = 0; i < rest->size(); ++i) {
    const std::string& a = (*rest)[i];
    if (a == "--cluster-node") continue;
    if ((a == "--report-fd" || a == "--command-fd") && i + 1 < rest->size()) {
      (a == "--report-fd" ? report_fd : command_fd) = std::atoi((*rest)[++i].c_str());
      continue;
    }
    std::fprintf(stderr, "--cluster-node: unexpected argument '%s'\n", a.c_str());
    return 2;
  }
  if (report_fd < 0 || command_fd < 0) return 2;
  // Not on the command line: the test's tuning. Two workers (a loaded
  // two-core machine); quick re-dials after a cut cable is restored.
  cfg.system.worker_threads = 2;
  cfg.connect_timeout = std::chrono::seconds(2);
  cfg.reconnect.max_backoff = std::chrono::seconds(1);

  line_writer out(report_fd);  // outlives the node: its reporter may write until the end
  std::optional<troupe::node> n;
  try {
    n.emplace(cfg);
  } catch (const std::exception& e) {
    out.write(std::string("failed ") + e.what());
    return 1;
  }
  if (auto subscribed = n->subscribe_members(n->spawn<membership_reporter>(&out)); !subscribed) {
    out.write("failed " + subscribed.error().text());
    return 1;
  }
  out.write("ready " + n->name() + " " + std::to_string(n->incarnation()) + " " + n->endpoint());
  tick_reporters reporters;  // let go before the node stops

  pollfd watched[2] = {{stop_fd, POLLIN, 0}, {command_fd, POLLIN, 0}};
  std::string pending;
  for (;;) {
    if (::poll(watched, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (watched[0].revents != 0) break;  // SIGTERM: the node leaves in its destructor
    if (watched[1].revents == 0) continue;
    char buffer[1024];
    const ssize_t got = ::read(command_fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      watched[1].fd = -1;  // the test closed its end: no more commands, keep serving
      continue;
    }
    pending.append(buffer, static_cast<std::size_t>(got));
    for (auto end = pending.find('\n'); end != std::string::npos; end = pending.find('\n')) {
      const std::string command = pending.substr(0, end);
      pending.erase(0, end + 1);
      out.write(answer(*n, out, reporters, command));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--host-node") == 0) return host_node(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "--cluster-node") == 0) return cluster_node(argc, argv);
  return troupe::run(
      argc, argv,
      [&] {
        ::testing::InitGoogleTest(&argc, argv);
        return RUN_ALL_TESTS();
      },
      [&](troupe::node& n) {
        // Roles a test can ask for with node_spawn_options::args.
        for (int i = 1; i < argc; ++i) {
          if (std::strcmp(argv[i], "publish") == 0) n.publish("echo", n.spawn<it::echo_actor>());
          if (std::strcmp(argv[i], "ticks") == 0) it::child_ticks = n.topic<it::tick>("ticks");
        }
      });
}
