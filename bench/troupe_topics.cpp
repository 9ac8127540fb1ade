// troupe_topics — the topic_* workloads of bench/WORKLOADS.md on troupe's
// topics (troupe/net/topic.hpp), the program bench/compare runs beside
// caf_topics (CAF 0.17's groups; same parameters, same CSV contract).
//
//   troupe_topics [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]
//
// In one process (topic_fan_out, topic_fan_out_text): one publisher actor and
// S subscriber actors; the publisher publishes N messages on a topic, a chunk
// per activation (it re-tells itself to go on, as fan_in's senders do); every
// subscriber counts to N and reports. Topics belong to a node, so each
// repetition gets a fresh troupe::node (a system with a name; no peer ever
// connects); its start-up, the spawning and subscribing, and its shutdown are
// outside the timed region. Completion is S "done" messages received by a
// scoped inbox with a watchdog deadline.
//
// Across processes (topic_fan_out_shm, topic_fan_out_tcp): main() publishes N
// messages from its own thread (a plain thread's publish() waits while a
// connection is full: the backpressure) to 3 child processes, each a node
// with 100 subscribers and an aggregator that reports once for the node's
// subscribers. Each repetition gets a fresh main node and fresh children:
// topic_fan_out_shm starts them with spawn_node() (this executable, through
// troupe::run: one runtime directory, shared-memory links), topic_fan_out_tcp
// starts them (fork and exec of this executable) before any node exists,
// each with a runtime directory of its own and listening on
// tcp://127.0.0.1:0, and main's node dials them (TCP links only; checked in
// /proc/self/maps). Set-up (children, connections,
// subscriptions, await_subscribers) is untimed; the clock stops when all 3
// node reports are in. Failures end the run with a line on stderr and exit
// status 1 after the children are killed and reaped; every wait has a
// deadline and an alarm() watchdog backs up the waits without one.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "topic_common.hpp"
#include "troupe_harness.hpp"

// Named (not anonymous) namespace: the type names are part of the wire schemas.
namespace troupe_topics {

namespace bench = troupe::bench;
namespace topic = troupe::bench::topic;
using std::int64_t;

// topic_fan_out (and the cross-process rows): 16 trivially copyable bytes,
// copied into each subscriber's envelope.
struct value_tick {
  int64_t seq = 0;
  int64_t value = 0;
};
// topic_fan_out_text: holds a string, so one payload is shared by every subscriber.
struct text_tick {
  std::string text;
  int64_t seq = 0;
};

value_tick make_tick(value_tick*, int64_t seq) { return value_tick{seq, seq}; }
text_tick make_tick(text_tick*, int64_t seq) { return text_tick{topic::text_payload(), seq}; }

struct keep_going {};
using publisher_protocol = troupe::protocol<keep_going>;

template <class M>
struct publisher_actor : troupe::actor<publisher_protocol> {
  publisher_actor(troupe::topic<M> t, int64_t n, int64_t c) : channel(std::move(t)), remaining(n), chunk(c) {}
  troupe::topic<M> channel;
  int64_t remaining;
  int64_t chunk;
  int64_t next = 0;
  void on(keep_going) {
    const int64_t n = std::min(chunk, remaining);
    for (int64_t i = 0; i < n; ++i) (void)channel.publish(make_tick(static_cast<M*>(nullptr), next++));
    remaining -= n;
    if (remaining > 0) {
      self().tell(keep_going{});
    } else {
      stop();
    }
  }
};

// Counts to `expected`, checks the order, tells `report_to` done{N} (or done{-1}
// if a message came out of order). Report: main()'s inbox in one process, the
// node's aggregator across processes.
template <class M, class Report = bench::report>
struct subscriber_actor : troupe::actor<troupe::protocol<M>> {
  subscriber_actor(int64_t n, troupe::ref<Report> r) : expected(n), report_to(std::move(r)) {}
  int64_t expected;
  troupe::ref<Report> report_to;
  int64_t received = 0;
  int64_t out_of_order = 0;
  // const M&: the shared payload is read in place (what a subscriber that only reads does).
  void on(const M& m) {
    out_of_order += m.seq == received ? 0 : 1;
    if (++received == expected) (void)report_to.tell(bench::done{out_of_order == 0 ? received : -1});
  }
};

template <class M>
double run_fan_out(unsigned threads, const topic::params& p, const char* workload, int rep) {
  troupe::node_config cfg;
  cfg.name = "bench-topics-" + std::to_string(::getpid()) + "-" + std::to_string(rep);
  cfg.system.worker_threads = threads;
  troupe::node n(cfg);
  bench::require(n.worker_count() == threads, "troupe did not start the requested workers");
  double result = 0;
  {
    bench::inbox in{n};
    auto channel = n.topic<M>("fan-out");
    for (int64_t i = 0; i < p.subscribers; ++i) {
      const auto subscribed = channel.subscribe(n.spawn<subscriber_actor<M>>(p.publications, in.self()));
      bench::require(static_cast<bool>(subscribed), std::string(workload) + ": subscribe failed");
    }
    auto publisher = n.spawn<publisher_actor<M>>(channel, p.publications, p.chunk);
    bench::stopwatch clock;
    publisher.tell(keep_going{});
    int64_t deliveries = 0;
    for (int64_t i = 0; i < p.subscribers; ++i) {
      const int64_t got = bench::await_done(in, workload);
      bench::require(got == p.publications, std::string(workload) + ": a subscriber got messages out of order");
      deliveries += got;
    }
    result = static_cast<double>(deliveries) / clock.seconds();
    const troupe::topic_stats s = channel.stats();
    bench::require(s.dropped == 0 && s.delivered == static_cast<std::uint64_t>(p.deliveries()),
                   std::string(workload) + ": the topic's counters do not match the deliveries");
  }
  return result;
}

// --- across processes: failing ----------------------------------------------------------

// A wait that takes longer than this has hung (a repetition takes about a second).
constexpr auto deadline = std::chrono::seconds(60);
constexpr unsigned watchdog_seconds = 120;  // the backstop for waits without a deadline (a full link)
// Every node's shared secret (node_config::cookie), for the TCP row's own nodes.
constexpr std::string_view cookie = "troupe-topics-bench-cookie";
constexpr std::string_view topic_name = "fan-out";
// argv[1] of a child that spawn_node() started: its setup opens the subscribers.
constexpr std::string_view child_flag = "--topic-subscribers";
// argv[1] of a child that fan_out_tcp started (run_subscriber_process).
constexpr std::string_view tcp_child_flag = "--topic-tcp-subscribers";

// The failure paths and the children's list (topic_common.hpp).
using topic::children;
using topic::fail;
using topic::fail_errno;
using topic::max_children;
using topic::on_child_exit;
using topic::on_watchdog;
using topic::require;
using topic::say;
using topic::set_handler;

// The runtime files of the nodes, kept in plain arrays so that a failure, the
// watchdog and the SIGCHLD handler can remove them with async-signal-safe
// calls only (unlink, rmdir), after the children are reaped.
struct runtime_files {
  char directory[128];  // the node's own runtime directory, made here; empty if shared
  char socket[256];
};
std::array<runtime_files, max_children + 1> node_files{};
std::size_t node_file_count = 0;
char base_directory[64] = {};  // the run's temporary directory, removed last

void remember_child(pid_t pid) {
  for (pid_t& slot : children) {
    if (slot == 0) {
      slot = pid;
      return;
    }
  }
}

// Records a node's socket in `directory` (and the directory, made here, if it
// is the node's own) for the failure paths.
void remember_node_files(const std::string& directory, const std::string& node, bool own_directory) {
  if (node_file_count == node_files.size()) return;
  runtime_files& files = node_files[node_file_count];
  // The node's socket: its runtime directory, its name, ".sock" (net/os/os.cpp).
  const int a = std::snprintf(files.socket, sizeof files.socket, "%s/%s.sock", directory.c_str(), node.c_str());
  const int b = std::snprintf(files.directory, sizeof files.directory, "%s", own_directory ? directory.c_str() : "");
  if (a <= 0 || static_cast<std::size_t>(a) >= sizeof files.socket || b < 0 ||
      static_cast<std::size_t>(b) >= sizeof files.directory) {
    std::fprintf(stderr, "troupe_topics: runtime directory path too long: %s\n", directory.c_str());
    ::_exit(1);
  }
  ++node_file_count;
}

// Removes the nodes' runtime files (topic::after_children: run once the
// children are reaped); async-signal-safe.
void remove_node_files() noexcept {
  for (std::size_t i = 0; i < node_file_count; ++i) {
    (void)::unlink(node_files[i].socket);
    if (node_files[i].directory[0] != '\0') (void)::rmdir(node_files[i].directory);
  }
  node_file_count = 0;
  if (base_directory[0] != '\0') (void)::rmdir(base_directory);
}

template <class T>
T value_or_fail(troupe::expected<T> r, const std::string& what) {
  if (!r) fail(what + ": " + r.error().to_string());
  return std::move(*r);
}
void value_or_fail(troupe::expected<void> r, const std::string& what) {
  if (!r) fail(what + ": " + r.error().to_string());
}

// --- across processes: messages and actors -------------------------------------------------

// A child node's report: its subscribers' deliveries and its topic's counters.
struct node_done {
  int64_t deliveries = 0;  // by the subscribers that got all N in order
  int64_t failed = 0;      // subscribers that saw a message out of order
  std::uint64_t received = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dropped = 0;
};
using collector_protocol = troupe::protocol<node_done>;

// main() tells each aggregator where to report (refs travel inside messages).
struct hello {
  troupe::ref<collector_protocol> report_to;
};
using aggregator_protocol = troupe::protocol<hello, bench::done>;

// One per child node: hears its S subscribers' done and reports once to main().
struct aggregator_actor : troupe::actor<aggregator_protocol> {
  aggregator_actor(troupe::topic<value_tick> t, int64_t s) : channel(std::move(t)), subscribers(s) {}
  troupe::topic<value_tick> channel;
  int64_t subscribers;
  int64_t reported = 0;
  node_done tally;
  troupe::ref<collector_protocol> report_to;

  void on(hello h) {
    report_to = std::move(h.report_to);
    report_when_complete();
  }
  void on(bench::done d) {
    ++reported;
    if (d.value < 0) {
      ++tally.failed;
    } else {
      tally.deliveries += d.value;
    }
    report_when_complete();
  }
  void report_when_complete() {
    if (reported < subscribers || !report_to) return;
    const troupe::topic_stats s = channel.stats();
    tally.received = s.received;
    tally.delivered = s.delivered;
    tally.dropped = s.dropped;
    if (std::error_code ec = report_to.tell(tally)) throw std::system_error(ec, "aggregator: report to main()");
  }
};

// A child node's set-up: the aggregator (published as "aggregator") and S
// subscribers of the topic, each counting to N.
void open_subscribers(troupe::node& n, int64_t subscribers, int64_t publications) {
  auto channel = n.topic<value_tick>(topic_name);
  auto aggregator = n.spawn<aggregator_actor>(channel, subscribers);
  for (int64_t i = 0; i < subscribers; ++i) {
    auto subscriber = n.spawn<subscriber_actor<value_tick, aggregator_protocol>>(publications, aggregator);
    if (!channel.subscribe(subscriber)) throw std::runtime_error("subscribe failed");
  }
  n.publish("aggregator", aggregator);
}

// The shared-memory link's rings are memfds named "troupe:<from>-><to>".
bool shared_memory_link_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/memfd:troupe:") != std::string::npos) return true;
  return false;
}

// The timed part of a cross-process repetition, once the child nodes run:
// main() publishes N ticks and waits for every node's report; returns
// deliveries per second. Untimed before: each aggregator learns where to
// report, and the topic counts every remote subscriber. Checks every count.
double publish_and_collect(troupe::node& parent, const std::vector<troupe::ref<aggregator_protocol>>& aggregators,
                           const topic::params& p, const std::string& workload) {
  troupe::scoped<collector_protocol> inbox{parent};
  for (const auto& aggregator : aggregators)
    require(!aggregator.tell(hello{inbox.self()}), workload + ": hello: an aggregator is gone");
  auto channel = parent.topic<value_tick>(topic_name);
  const auto subscribers = static_cast<std::size_t>(p.nodes * p.node_subscribers);
  value_or_fail(channel.await_subscribers(subscribers, deadline), workload + ": await_subscribers");
  const troupe::topic_stats before = channel.stats();
  require(before.remote_subscribers == subscribers && before.local_subscribers == 0 &&
              before.subscribed_nodes == static_cast<std::size_t>(p.nodes),
          workload + ": the topic counts " + std::to_string(before.remote_subscribers) + " subscribers on " +
              std::to_string(before.subscribed_nodes) + " nodes");
  const int64_t n = p.node_publications;
  bench::stopwatch clock;
  for (int64_t i = 0; i < n; ++i) {
    if (std::error_code ec = channel.publish(value_tick{i, i}))
      fail(workload + ": publish " + std::to_string(i) + ": " + ec.message());
  }
  int64_t deliveries = 0;
  for (int64_t node = 0; node < p.nodes; ++node) {
    const node_done d = value_or_fail(inbox.receive<node_done>(deadline), workload + ": waiting for the nodes");
    const auto per_node = static_cast<std::uint64_t>(p.node_subscribers * n);
    require(d.failed == 0, workload + ": " + std::to_string(d.failed) + " subscribers got messages out of order");
    require(d.deliveries == p.node_subscribers * n && d.received == static_cast<std::uint64_t>(n) &&
                d.delivered == per_node && d.dropped == 0,
            workload + ": a node reports " + std::to_string(d.deliveries) + " deliveries, its topic received " +
                std::to_string(d.received) + ", delivered " + std::to_string(d.delivered) + ", dropped " +
                std::to_string(d.dropped));
    deliveries += d.deliveries;
  }
  const double seconds = clock.seconds();
  // One publication record per subscribed node per publication: one copy per node on the wire.
  const troupe::topic_stats s = channel.stats();
  require(s.published == static_cast<std::uint64_t>(n) && s.sent == static_cast<std::uint64_t>(p.nodes * n) &&
              s.dropped == 0 && s.delivered == 0,
          workload + ": the publisher's topic counts published " + std::to_string(s.published) + ", sent " +
              std::to_string(s.sent) + ", dropped " + std::to_string(s.dropped));
  return static_cast<double>(deliveries) / seconds;
}

// --- across processes: the two rows -------------------------------------------------------

std::string node_name(int rep) { return "troupe-topics-" + std::to_string(::getpid()) + "-" + std::to_string(rep); }

// topic_fan_out_shm: children started with spawn_node() in `runtime_dir`.
double fan_out_shm(unsigned threads, const topic::params& p, const std::string& runtime_dir, int rep) {
  const std::string workload(topic::name_of(topic::workload::fan_out_shm));
  double result = 0;
  {
    troupe::node_config cfg;
    cfg.name = node_name(rep);
    cfg.runtime_dir = runtime_dir;
    cfg.system.worker_threads = threads;  // the children get as many (spawn_node passes it on)
    remember_node_files(runtime_dir, cfg.name, false);
    for (int64_t i = 0; i < p.nodes; ++i) remember_node_files(runtime_dir, cfg.name + "-" + std::to_string(i), false);
    troupe::node parent(cfg);
    // A child that dies during the repetition ends it at once, not at a deadline.
    set_handler(SIGCHLD, on_child_exit, SA_NOCLDSTOP);
    std::vector<troupe::ref<aggregator_protocol>> aggregators;
    for (int64_t i = 0; i < p.nodes; ++i) {
      const troupe::node_handle child = value_or_fail(
          parent.spawn_node(
              cfg.name + "-" + std::to_string(i),
              {std::string(child_flag), std::to_string(p.node_subscribers), std::to_string(p.node_publications)}),
          workload + ": spawn_node");
      remember_child(child.pid());
      aggregators.push_back(
          value_or_fail(parent.lookup<aggregator_protocol>("troupe://" + child.name() + "/aggregator", deadline),
                        workload + ": lookup of the aggregator of " + child.name()));
    }
    require(shared_memory_link_mapped(), workload + ": no shared-memory link is mapped");
    result = publish_and_collect(parent, aggregators, p, workload);
    // From here the children's exit is expected.
    set_handler(SIGCHLD, SIG_DFL);
  }  // ~node: asks the children to stop and reaps them
  children.fill(0);
  node_file_count = 0;
  return result;
}

// A TCP child's whole life (this executable, started by start_child() with
// tcp_child_flag): build its node (listening on 127.0.0.1), open the
// subscribers, send the endpoint to main() on fd 3, serve until main() closes
// fd 4 (or dies: then PR_SET_PDEATHSIG ends us), shut down.
// argv: <program> --topic-tcp-subscribers NAME RUNTIME_DIR THREADS S N
[[noreturn]] void run_subscriber_process(char** argv) {
  topic::role = "subscriber node";
  const std::string name = argv[2];
  const std::string runtime_dir = argv[3];
  const auto threads = static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10));
  const int64_t subscribers = std::strtoll(argv[5], nullptr, 10);
  const int64_t publications = std::strtoll(argv[6], nullptr, 10);
  const int endpoint_out = topic::child_channel_fd;
  const int stop_in = topic::child_stop_fd;
  set_handler(SIGPIPE, SIG_IGN);
  {
    troupe::node_config cfg;
    cfg.name = name;
    cfg.runtime_dir = runtime_dir;
    cfg.cookie = std::string(cookie);
    cfg.system.worker_threads = threads;
    cfg.listen = "tcp://127.0.0.1:0";
    troupe::node n(cfg);
    open_subscribers(n, subscribers, publications);
    const std::string endpoint = n.endpoint();
    require(!endpoint.empty(), "the node has no TCP endpoint");
    if (::write(endpoint_out, endpoint.data(), endpoint.size()) != static_cast<ssize_t>(endpoint.size()))
      fail_errno("writing the endpoint to main()");
    ::close(endpoint_out);
    char byte;
    ssize_t got;
    while ((got = ::read(stop_in, &byte, 1)) != 0) {
      if (got > 0) fail("unexpected data on the stop pipe");
      if (errno != EINTR) fail_errno("reading the stop pipe");
    }
  }  // ~node: stops the actors, closes the connection
  std::fflush(stderr);
  ::_exit(0);  // this process has nothing else to do (no CSV line: stdout is main()'s)
}

// Reads what a child writes to `fd` until it closes it.
std::string read_all(int fd) {
  std::string text;
  for (;;) {
    char chunk[256];
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_errno("reading a child's endpoint");
    }
    text.append(chunk, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return text;
}

// Makes `directory`, the runtime directory of `node` alone.
void make_runtime_directory(const std::string& directory, const std::string& node) {
  remember_node_files(directory, node, true);
  if (::mkdir(directory.c_str(), 0700) != 0) fail_errno("mkdir " + directory);
}

// topic_fan_out_tcp: children started (fork and exec) before any node
// exists, each with its own runtime directory (so no shared-memory link),
// dialed over TCP.
double fan_out_tcp(unsigned threads, const topic::params& p, const std::string& base_dir, int rep) {
  const std::string workload(topic::name_of(topic::workload::fan_out_tcp));
  // Every repetition starts from nothing: the previous one's node is gone.
  require(bench::thread_count() == 1, workload + ": threads are still running before the children start");
  const std::string name = node_name(rep);
  const auto nodes = static_cast<std::size_t>(p.nodes);
  require(nodes < max_children, "too many child nodes");
  const std::string prefix = base_dir + "/tcp-" + std::to_string(rep) + "-";
  std::vector<std::string> directories;
  for (std::size_t i = 0; i <= nodes; ++i) {
    directories.push_back(prefix + (i == 0 ? std::string("main") : std::to_string(i - 1)));
    make_runtime_directory(directories.back(), i == 0 ? name : name + "-" + std::to_string(i - 1));
  }
  int stop_pipe[2];
  if (::pipe2(stop_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
  // Installed before the first child starts, so one that dies at once is noticed too.
  set_handler(SIGCHLD, on_child_exit, SA_NOCLDSTOP);
  std::vector<int> endpoint_in;
  for (std::size_t i = 0; i < nodes; ++i) {
    int endpoint_pipe[2];
    if (::pipe2(endpoint_pipe, O_CLOEXEC) != 0) fail_errno("pipe2");
    const pid_t child = topic::start_child(
        {std::string(tcp_child_flag), name + "-" + std::to_string(i), directories[i + 1], std::to_string(threads),
         std::to_string(p.node_subscribers), std::to_string(p.node_publications)},
        endpoint_pipe[1], stop_pipe[0]);
    if (child < 0) fail_errno("fork");
    remember_child(child);
    ::close(endpoint_pipe[1]);  // our copy: the endpoint pipe reads EOF once the child closes its own
    endpoint_in.push_back(endpoint_pipe[0]);
  }
  ::close(stop_pipe[0]);
  std::vector<std::string> endpoints;
  for (int fd : endpoint_in) {
    endpoints.push_back(read_all(fd));
    require(endpoints.back().starts_with("tcp://"), workload + ": a child sent no endpoint");
  }

  double result = 0;
  {
    troupe::node_config cfg;
    cfg.name = name;
    cfg.runtime_dir = directories[0];
    cfg.cookie = std::string(cookie);
    cfg.system.worker_threads = threads;
    troupe::node parent(cfg);
    std::vector<troupe::ref<aggregator_protocol>> aggregators;
    for (const std::string& endpoint : endpoints)
      aggregators.push_back(value_or_fail(parent.lookup<aggregator_protocol>(endpoint + "/aggregator", deadline),
                                          workload + ": lookup " + endpoint + "/aggregator"));
    require(!shared_memory_link_mapped(), workload + ": the nodes are linked through shared memory, not TCP");
    result = publish_and_collect(parent, aggregators, p, workload);
  }  // ~node: says goodbye on each connection, so the children do not re-dial
  // From here the children's exit is expected.
  set_handler(SIGCHLD, SIG_DFL);
  ::close(stop_pipe[1]);
  for (pid_t& child : children) {
    if (child == 0) continue;
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
      if (errno != EINTR) fail_errno("waitpid");
    }
    child = 0;
    require(WIFEXITED(status) && WEXITSTATUS(status) == 0, workload + ": a subscriber process failed");
  }
  for (const std::string& directory : directories) {
    std::error_code ignored;
    std::filesystem::remove_all(directory, ignored);
  }
  node_file_count = 0;
  return result;
}

// A fresh directory for the cross-process rows' runtime directories.
class temporary_directory {
 public:
  temporary_directory() {
    char pattern[] = "/tmp/troupe-topics-XXXXXX";
    static_assert(sizeof pattern <= sizeof base_directory);
    if (::mkdtemp(pattern) == nullptr) fail_errno("mkdtemp");
    path_ = pattern;
    std::memcpy(base_directory, pattern, sizeof pattern);
  }
  ~temporary_directory() {
    base_directory[0] = '\0';
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int run_main(int argc, char** argv) {
  if (argc == 7 && argv[1] == tcp_child_flag) run_subscriber_process(argv);
  const auto opts = topic::parse_options(argc, argv);
  const topic::params p = topic::parameters_for(opts);
  // A write to a closed socket must fail with EPIPE, not kill us silently.
  set_handler(SIGPIPE, SIG_IGN);
  set_handler(SIGALRM, on_watchdog);
  temporary_directory dir;
  for (topic::workload w : topic::all_workloads) {
    if (!opts.selected(topic::name_of(w))) continue;
    const std::string name(topic::name_of(w));
    int rep = 0;
    bench::run_reps(name, topic::unit, opts.reps, [&] {
      ++rep;
      ::alarm(watchdog_seconds);
      double rate = 0;
      switch (w) {
        case topic::workload::fan_out:
          rate = run_fan_out<value_tick>(opts.threads, p, name.c_str(), rep);
          break;
        case topic::workload::fan_out_text:
          rate = run_fan_out<text_tick>(opts.threads, p, name.c_str(), rep);
          break;
        case topic::workload::fan_out_shm:
          rate = fan_out_shm(opts.threads, p, dir.path(), rep);
          break;
        case topic::workload::fan_out_tcp:
          rate = fan_out_tcp(opts.threads, p, dir.path(), rep);
          break;
      }
      ::alarm(0);
      return rate;
    });
  }
  return 0;
}

}  // namespace troupe_topics

int main(int argc, char** argv) {
  namespace t = troupe_topics;
  troupe::bench::topic::program_name = "troupe_topics";
  troupe::bench::topic::after_children = t::remove_node_files;
  return troupe::run(
      argc, argv, [&] { return t::run_main(argc, argv); },
      [&](troupe::node& n) {
        // A child that fan_out_shm started: <program> --topic-subscribers S N
        if (argc == 4 && argv[1] == t::child_flag)
          t::open_subscribers(n, std::strtoll(argv[2], nullptr, 10), std::strtoll(argv[3], nullptr, 10));
      });
}
