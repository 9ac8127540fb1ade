// Clusters across machines, on the netns rig (tests/support/netns_rig.hpp).
// Each member is this executable in the --cluster-node role (main.cpp) on a
// host of its own, configured from its command line alone (--name, --listen,
// --cookie-file, --cluster) as an operator would start it. A member reports
// over a pipe what its membership subscription hears ("up NAME INCARNATION",
// "down NAME INCARNATION REASON") and answers commands ("members", "publish",
// "lookup") sent over another. The test reads the reports with deadlines and
// keeps each member's view: the names and incarnations it has heard up and not
// down since. Host 0 is the test's own: etcd runs there in the etcd test, and
// the global-name test's own node.
//
// The in-process cluster tests are tests/net/cluster_test.cpp (seeds) and
// tests/net/etcd_provider_test.cpp (etcd).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "process_fixture.hpp"
#include "support/child_process.hpp"
#include "support/etcd_server.hpp"
#include "support/event_log.hpp"
#include "support/netns_rig.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;
namespace ts = troupe::test_support;

namespace it {
namespace {

// Fresh namespaces have no other listeners: fixed ports cannot collide.
constexpr int member_port = 7200;
constexpr std::uint16_t etcd_client_port = 2379;
// Safety nets for a sanitizer build on a loaded two-core machine, not timings.
constexpr auto start_deadline = 30s;
constexpr auto event_deadline = 30s;
constexpr const char* cookie = "cluster-rig-cookie-0123456789abcdef";

// name -> incarnation
using view_t = std::map<std::string, std::uint64_t>;

std::string to_text(const view_t& v) {
  std::string text = "{";
  for (const auto& [name, incarnation] : v) text += " " + name + ":" + std::to_string(incarnation);
  return text + " }";
}

// One --cluster-node process, as the test sees it through its pipes.
struct cluster_member {
  std::string name;
  int host = 0;
  pid_t pid = 0;
  ts::unique_fd reports;   // read end; reset at EOF (the process is gone)
  ts::unique_fd commands;  // write end
  std::string partial;     // a report line not complete yet
  // From its "ready" line: who the command line made it.
  std::uint64_t incarnation = 0;
  std::string endpoint;
  std::string failure;              // its "failed" line, if any
  bool ended = false;               // its report pipe closed while the test had not killed it
  view_t view;                      // up and not down since, as its subscription heard
  std::vector<std::string> events;  // every "up ..." / "down ..." line, in order
  std::deque<std::string> answers;  // answers to commands, in order
  std::vector<std::int64_t> ticks;  // "tick SEQ" reports of its "ticks" subscriber, in order

  bool heard(const std::string& line_start) const {
    return std::any_of(events.begin(), events.end(), [&](const std::string& e) { return e.starts_with(line_start); });
  }
  std::size_t count(const std::string& line) const {
    return static_cast<std::size_t>(std::count(events.begin(), events.end(), line));
  }
};

// In-process membership events (the test's own node in host 0).
using ts::event_log;

using membership_protocol = troupe::protocol<troupe::member_up, troupe::member_down>;
struct membership_watcher : troupe::actor<membership_protocol> {
  explicit membership_watcher(event_log* into) : log(into) {}
  void on(const troupe::member_up& e) { log->add("up " + e.who.name + " " + std::to_string(e.who.incarnation)); }
  void on(const troupe::member_down& e) { log->add("down " + e.who.name + " " + std::to_string(e.who.incarnation)); }
  event_log* log;
};

// etcd in host 0, on the rig's network (tests/support/etcd_server.hpp binds
// loopback only, which no other host reaches).
class rig_etcd {
 public:
  rig_etcd(ts::netns_rig& rig, int host, const std::string& directory)
      : address_(rig.address(host)), log_(directory + "/etcd.log") {
    const std::string client = url();
    // The peer port is this host's own business: loopback.
    const std::string peer = "http://127.0.0.1:2380";
    pid_ = rig.spawn_in(host, {ts::etcd_server::program,
                               "--name",
                               "rig",
                               "--data-dir",
                               directory + "/etcd",
                               "--listen-client-urls",
                               client,
                               "--advertise-client-urls",
                               client,
                               "--listen-peer-urls",
                               peer,
                               "--initial-advertise-peer-urls",
                               peer,
                               "--initial-cluster",
                               "rig=" + peer,
                               "--initial-cluster-state",
                               "new",
                               "--log-level",
                               "warn",
                               "--logger",
                               "zap",
                               "--log-outputs",
                               log_});
  }
  std::string url() const { return "http://" + address_ + ":" + std::to_string(etcd_client_port); }

  // Polls /health (the calling thread must be in a rig host) until it says
  // true; between probes, a short pause that etcd's exit cuts short.
  bool wait_until_healthy(std::chrono::steady_clock::time_point deadline) const {
    const ts::unique_fd pidfd = ts::open_pidfd(pid_);
    for (;;) {
      if (healthy(deadline)) return true;
      pollfd exited{pidfd.get(), POLLIN, 0};
      const auto pause = std::min(deadline, std::chrono::steady_clock::now() + 25ms);
      if (::poll(&exited, 1, ts::poll_timeout_until(pause)) > 0) return false;  // etcd exited
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
  }

  std::string log_tail() const {
    std::ifstream in(log_);
    std::stringstream all;
    all << in.rdbuf();
    const std::string text = all.str();
    return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
  }

 private:
  bool healthy(std::chrono::steady_clock::time_point deadline) const {
    in_addr to{};
    ::inet_pton(AF_INET, address_.c_str(), &to);
    return ts::etcd_healthy(to.s_addr, etcd_client_port, deadline);
  }

  std::string address_;
  std::string log_;
  pid_t pid_ = 0;
};

class cluster_hosts : public ts::node_fixture {
 protected:
  // A rig of `count` + 1 hosts: members n1..n<count> on hosts 1..count (not
  // started yet), host 0 for the test.
  void build(int count) {
    rig_.emplace(count + 1);
    cookie_file_ = dir_ + "/cookie";
    const ts::unique_fd f(::open(cookie_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    ASSERT_TRUE(f);
    ASSERT_EQ(::write(f.get(), cookie, std::strlen(cookie)), static_cast<ssize_t>(std::strlen(cookie)));
    for (int h = 1; h <= count; ++h) {
      members_.push_back(std::make_unique<cluster_member>());
      members_.back()->name = "n" + std::to_string(h);
      members_.back()->host = h;
    }
  }

  std::string endpoint(int host) const { return "tcp://" + rig_->address(host) + ":" + std::to_string(member_port); }

  // Every member gets the same seed list, itself included.
  std::string seeds_spec() const {
    std::string spec = "seeds=";
    for (std::size_t i = 0; i < members_.size(); ++i) {
      spec += (i == 0 ? "" : ",") + rig_->address(members_[i]->host) + ":" + std::to_string(member_port);
    }
    return spec + ";gossip_ms=100";
  }

  cluster_member& member(const std::string& name) {
    for (auto& m : members_) {
      if (m->name == name) return *m;
    }
    throw std::out_of_range("no member " + name);
  }

  // Starts (or restarts) `m`'s process on its host with `spec`; forgets what
  // an earlier process of it reported.
  void launch(cluster_member& m, const std::string& spec) {
    int report[2], command[2];
    // The test's ends are close-on-exec; the child's ends are inherited by it
    // and closed here right after, so no other child holds them.
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(command, O_CLOEXEC), 0);
    ts::unique_fd report_write(report[1]), command_read(command[0]);
    m.reports.reset(report[0]);
    m.commands.reset(command[1]);
    ASSERT_EQ(::fcntl(report_write.get(), F_SETFD, 0), 0);
    ASSERT_EQ(::fcntl(command_read.get(), F_SETFD, 0), 0);
    const std::string runtime_dir = dir_ + "/host" + std::to_string(m.host);  // a machine's own
    std::filesystem::create_directories(runtime_dir);
    std::filesystem::permissions(runtime_dir, std::filesystem::perms::owner_all);
    m.partial.clear();
    m.incarnation = 0;
    m.endpoint.clear();
    m.failure.clear();
    m.ended = false;
    m.view.clear();
    m.events.clear();
    m.answers.clear();
    m.ticks.clear();
    m.pid =
        rig_->spawn_in(m.host,
                       {ts::current_executable(), "--cluster-node", "--report-fd", std::to_string(report_write.get()),
                        "--command-fd", std::to_string(command_read.get()), "--name", m.name, "--listen",
                        endpoint(m.host), "--cookie-file", cookie_file_, "--cluster", spec},
                       {"TROUPE_RUNTIME_DIR=" + runtime_dir});
  }

  // Waits for `m`'s "ready" line and checks that its command line configured it.
  void await_ready(cluster_member& m) {
    ASSERT_TRUE(wait_until([&] { return m.incarnation != 0 || !m.failure.empty() || !m.reports; }, start_deadline))
        << m.name << " on host " << m.host << " did not report ready" << describe();
    ASSERT_TRUE(m.failure.empty()) << m.name << ": " << m.failure;
    ASSERT_NE(m.incarnation, 0u) << m.name << " ended before it was ready";
    EXPECT_EQ(m.endpoint, endpoint(m.host)) << m.name << ": --listen did not take";
  }

  void start_all(const std::string& spec) {
    for (auto& m : members_) ASSERT_NO_FATAL_FAILURE(launch(*m, spec));
    for (auto& m : members_) ASSERT_NO_FATAL_FAILURE(await_ready(*m));
  }

  // SIGKILL, reaped; its pipes closed.
  void kill_member(cluster_member& m) {
    ts::kill_child(m.pid);
    m.pid = 0;
    m.reports.reset();
    m.commands.reset();
  }

  // SIGKILLs `victim` and waits until every other member has reported it down
  // (printing how long that took, as `what`).
  void kill_and_await_down(cluster_member& victim, const char* what) {
    const std::string gone = "down " + victim.name + " " + std::to_string(victim.incarnation) + " ";
    kill_member(victim);
    const auto killed_at = std::chrono::steady_clock::now();
    ASSERT_TRUE(wait_until(
        [&] {
          return std::all_of(members_.begin(), members_.end(), [&](auto& m) { return m->pid == 0 || m->heard(gone); });
        },
        event_deadline))
        << "expected '" << gone << "...' from every other member" << describe();
    std::printf("%s: member_down everywhere after %lld ms\n", what,
                static_cast<long long>(
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at)
                        .count()));
  }

  // Starts `victim` again (same name, host and address; a new process, so a
  // new incarnation) and waits until every member has reported it up and all
  // agree on the members.
  void restart_and_await_up(cluster_member& victim, const std::string& spec) {
    const std::uint64_t old_incarnation = victim.incarnation;
    ASSERT_NO_FATAL_FAILURE(launch(victim, spec));
    ASSERT_NO_FATAL_FAILURE(await_ready(victim));
    ASSERT_NE(victim.incarnation, old_incarnation);
    const std::string back = "up " + victim.name + " " + std::to_string(victim.incarnation);
    ASSERT_TRUE(wait_until(
        [&] { return std::all_of(members_.begin(), members_.end(), [&](auto& m) { return m->heard(back); }); },
        event_deadline))
        << "expected '" << back << "' from every member" << describe();
    ASSERT_NO_FATAL_FAILURE(expect_agreement());
  }

  // After a cut cable is restored: every pair across the cut heard each other
  // come up twice (at the start, and again), with the same incarnations.
  void expect_back_across_the_cut(const cluster_member& cut_off) {
    for (auto& m : members_) {
      for (auto& other : members_) {
        if (m == other || (m.get() != &cut_off && other.get() != &cut_off)) continue;
        EXPECT_EQ(m->count("up " + other->name + " " + std::to_string(other->incarnation)), 2u)
            << m->name << " about " << other->name << describe();
      }
    }
  }

  // The members that run, by their "ready" incarnations.
  view_t running() const {
    view_t v;
    for (const auto& m : members_) {
      if (m->pid != 0) v[m->name] = m->incarnation;
    }
    return v;
  }

  // Every running member's subscription view is `expected`.
  bool views_are(const view_t& expected) const {
    return std::all_of(members_.begin(), members_.end(),
                       [&](const auto& m) { return m->pid == 0 || m->view == expected; });
  }

  // What every member saw, for failure messages.
  std::string describe() const {
    std::string text = "\n";
    for (const auto& m : members_) {
      text += "  " + m->name + (m->pid == 0 ? " (stopped by the test)" : "") +
              (m->ended ? " (ENDED on its own: see its stderr above)" : "") + " view " + to_text(m->view) + ", events:";
      for (const auto& e : m->events) text += "\n    " + e;
      text += "\n";
    }
    return text;
  }

  // Reads reports until `done` holds or the deadline passes; false then, or
  // as soon as a member ends that the test did not kill (a crash).
  bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (done()) return true;
      if (std::chrono::steady_clock::now() >= deadline) return false;
      if (std::any_of(members_.begin(), members_.end(), [](const auto& m) { return m->ended; })) return false;
      if (pump(deadline) < 0) return done();  // no member left to report anything
    }
  }

  // One round of reading: waits until some member reports or the deadline.
  // Returns how many pipes had something (0: the deadline passed), -1 if no
  // member's report pipe is open.
  int pump(std::chrono::steady_clock::time_point deadline) {
    std::vector<pollfd> fds;
    std::vector<cluster_member*> whose;
    for (auto& m : members_) {
      if (!m->reports) continue;
      fds.push_back({m->reports.get(), POLLIN, 0});
      whose.push_back(m.get());
    }
    if (fds.empty()) return -1;
    const int ready = ::poll(fds.data(), fds.size(), ts::poll_timeout_until(deadline));
    if (ready < 0 && errno != EINTR) ts::throw_errno("poll");
    for (std::size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      cluster_member& m = *whose[i];
      char buffer[4096];
      const ssize_t n = ::read(m.reports.get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        m.reports.reset();  // EOF: the process ended
        m.ended = true;     // kill_member() closes the pipe first: not by the test's hand
        continue;
      }
      m.partial.append(buffer, static_cast<std::size_t>(n));
      for (auto end = m.partial.find('\n'); end != std::string::npos; end = m.partial.find('\n')) {
        const std::string line = m.partial.substr(0, end);
        m.partial.erase(0, end + 1);
        take(m, line);
      }
    }
    return std::max(ready, 0);
  }

  // Every test ends with an orderly leave: each member still running gets
  // SIGTERM and must exit with status 0. A member that crashed during the
  // test (also after the test's last wait) fails it here, with its status.
  void TearDown() override {
    for (const auto& m : members_) {
      if (m->pid != 0) ::kill(m->pid, SIGTERM);
    }
    for (const auto& m : members_) {
      if (m->pid == 0) continue;
      const std::optional<int> status = ts::wait_for_exit(m->pid, ts::default_child_deadline);
      if (!status) {
        ADD_FAILURE() << m->name << " did not leave within " << ts::default_child_deadline.count() << " s of SIGTERM"
                      << describe();
        continue;  // the rig kills it
      }
      const bool left_cleanly = WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
      EXPECT_TRUE(left_cleanly) << m->name << " " << ts::describe_wait_status(*status)
                                << (m->ended ? " during the test" : " on SIGTERM") << " (its stderr is above)"
                                << describe();
      m->pid = 0;
    }
    // The processes go before their runtime and data directories do.
    members_.clear();
    etcd_.reset();
    rig_.reset();
    ts::node_fixture::TearDown();
  }

  static void take(cluster_member& m, const std::string& line) {
    std::istringstream in(line);
    std::string kind, name;
    std::uint64_t incarnation = 0;
    in >> kind;
    if (kind == "ready") {
      in >> name >> m.incarnation >> m.endpoint;
      EXPECT_EQ(name, m.name) << "--name did not take";
    } else if (kind == "failed") {
      m.failure = line;
    } else if (kind == "up" && (in >> name >> incarnation)) {
      m.view[name] = incarnation;
      m.events.push_back(line);
    } else if (kind == "down" && (in >> name >> incarnation)) {
      if (auto it = m.view.find(name); it != m.view.end() && it->second == incarnation) m.view.erase(it);
      m.events.push_back(line);
    } else if (std::int64_t seq = 0; kind == "tick" && (in >> seq)) {
      m.ticks.push_back(seq);
    } else {
      m.answers.push_back(line);
    }
  }

  // Sends a command and waits for its answer ("" if none in time).
  std::string ask(cluster_member& m, const std::string& command) {
    const std::string line = command + "\n";
    if (::write(m.commands.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      ADD_FAILURE() << "cannot send '" << command << "' to " << m.name;
      return {};
    }
    if (!wait_until([&] { return !m.answers.empty() || !m.reports; }, event_deadline) || m.answers.empty()) {
      ADD_FAILURE() << m.name << " did not answer '" << command << "'";
      return {};
    }
    std::string answer = std::move(m.answers.front());
    m.answers.pop_front();
    return answer;
  }

  // node::members() of `m`.
  view_t members_of(cluster_member& m) {
    std::istringstream in(ask(m, "members"));
    std::string word;
    in >> word;
    EXPECT_EQ(word, "members");
    view_t v;
    while (in >> word) {
      const auto colon = word.find(':');
      v[word.substr(0, colon)] = std::stoull(word.substr(colon + 1));
    }
    return v;
  }

  // The membership every running member reports, by subscription and by
  // members(), is the running set.
  void expect_agreement() {
    const view_t everyone = running();
    ASSERT_TRUE(wait_until([&] { return views_are(everyone); }, event_deadline))
        << "expected every member to see " << to_text(everyone) << describe();
    for (auto& m : members_) {
      if (m->pid == 0) continue;
      EXPECT_EQ(to_text(members_of(*m)), to_text(everyone)) << "members() of " << m->name;
    }
  }

  // Builds `count` hosts, starts a member on each, all listing every member as
  // a seed, and waits until all agree on the members.
  void form_with_seeds(int count) {
    build(count);
    ASSERT_NO_FATAL_FAILURE(start_all(seeds_spec()));  // the list names the hosts just built
    ASSERT_NO_FATAL_FAILURE(expect_agreement());
  }
  // As form_with_seeds(), through an etcd started in host 0; `spec` is the
  // members' --cluster.
  void form_with_etcd(int count, std::string& spec) {
    build(count);
    spec = start_etcd();
    ASSERT_FALSE(spec.empty());
    ASSERT_NO_FATAL_FAILURE(start_all(spec));
    ASSERT_NO_FATAL_FAILURE(expect_agreement());
  }

  // Starts etcd in host 0 and moves this thread there (to probe its health);
  // returns the members' --cluster spec, with a lease TTL of 2 s.
  std::string start_etcd() {
    rig_->enter(0);
    etcd_.emplace(*rig_, 0, dir_);
    if (!etcd_->wait_until_healthy(std::chrono::steady_clock::now() + start_deadline)) {
      ADD_FAILURE() << "etcd did not become healthy; its log ends:\n" << etcd_->log_tail();
      return {};
    }
    return "etcd=" + etcd_->url() + ";ttl=2";
  }

  std::optional<ts::netns_rig> rig_;
  std::optional<rig_etcd> etcd_;  // its process belongs to the rig
  std::string cookie_file_;
  std::vector<std::unique_ptr<cluster_member>> members_;  // stable addresses
};

TEST_F(cluster_hosts, members_on_separate_hosts_join_through_one_seed_list_and_agree_on_the_members) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(4));
  // Each member heard each (itself included) come up once, and none go down.
  for (auto& m : members_) {
    for (auto& other : members_) {
      EXPECT_EQ(m->count("up " + other->name + " " + std::to_string(other->incarnation)), 1u)
          << m->name << " about " << other->name << describe();
    }
    EXPECT_FALSE(m->heard("down ")) << m->name << describe();
  }
}

TEST_F(cluster_hosts, a_killed_member_is_reported_down_by_every_other_member) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(4));
  cluster_member& victim = member("n2");
  ASSERT_NO_FATAL_FAILURE(kill_and_await_down(victim, "SIGKILL"));
  ASSERT_NO_FATAL_FAILURE(expect_agreement());  // n1, n3, n4 only
}

// (This test found a use-after-free in the TCP re-dial thread, since fixed:
// TearDown's exit-status check is what shows such a member dying.)
TEST_F(cluster_hosts, a_killed_member_that_restarts_rejoins_everywhere_as_a_new_incarnation) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(4));
  cluster_member& victim = member("n3");
  kill_member(victim);
  ASSERT_NO_FATAL_FAILURE(expect_agreement());  // down everywhere first

  ASSERT_NO_FATAL_FAILURE(restart_and_await_up(victim, seeds_spec()));  // same name, host and address
}

TEST_F(cluster_hosts, a_global_name_published_on_one_host_resolves_on_the_others_and_goes_with_its_host) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(3));
  // The test joins too, as node "a" on host 0 (before any thread of its own:
  // the node's threads start in host 0).
  rig_->enter(0);
  event_log log;  // outlives the node: its watcher may report until the end
  troupe::node_config cfg = config("a");
  cfg.listen = endpoint(0);
  cfg.cookie_file = cookie_file_;
  cfg.cluster = troupe::parse_cluster(seeds_spec()).value();
  troupe::node a(cfg);
  ASSERT_TRUE(a.subscribe_members(a.spawn<membership_watcher>(&log)));
  ASSERT_TRUE(a.await_members(4, event_deadline));

  cluster_member& holder = member("n3");
  ASSERT_EQ(ask(holder, "publish ledger"), "published ledger");
  const std::string echo_of_holder = "@" + std::to_string(holder.pid);
  // From host 0 (this process)...
  auto ledger = a.lookup<echo_protocol>("ledger", event_deadline);
  ASSERT_TRUE(ledger) << ledger.error();
  EXPECT_EQ(ledger->ask(echo{"hi"}, 10s).get(), "echo:hi" + echo_of_holder);
  // ...and from host 1 (another member's process).
  EXPECT_EQ(ask(member("n1"), "lookup ledger 20000"), "found ledger echo:from n1" + echo_of_holder);

  const std::string gone = "down n3 " + std::to_string(holder.incarnation);
  kill_member(holder);
  ASSERT_TRUE(log.wait_for(gone, event_deadline)) << "a did not hear '" << gone << "'";
  auto after = a.lookup<echo_protocol>("ledger", 10ms);
  ASSERT_FALSE(after) << "the name outlived its host";
  EXPECT_EQ(after.error().code(), troupe::errc::no_such_name) << after.error();
  EXPECT_FALSE(ledger->ask(echo{"stale"}, 5s).try_get());
  ASSERT_TRUE(wait_until([&] { return member("n1").heard(gone + " "); }, event_deadline)) << describe();
  const std::string missing = ask(member("n1"), "lookup ledger 10");
  EXPECT_TRUE(missing.starts_with("missing ledger no_such_name")) << missing;
  // The name is free again: another member may claim it.
  EXPECT_TRUE(a.publish_global("ledger", a.spawn<echo_actor>()));
}

TEST_F(cluster_hosts, a_cut_cable_is_member_down_on_both_sides_and_member_up_again_when_restored) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(3));
  const view_t everyone = running();
  cluster_member& cut_off = member("n1");

  rig_->cut(cut_off.host);
  const view_t alone{{"n1", everyone.at("n1")}};
  view_t rest = everyone;
  rest.erase("n1");
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(members_.begin(), members_.end(),
                           [&](auto& m) { return m->view == (m.get() == &cut_off ? alone : rest); });
      },
      event_deadline))
      << "expected n1 to see only itself, and n2, n3 each other" << describe();

  rig_->restore(cut_off.host);
  // The same processes (same incarnations) link again: every member hears the
  // others come up again after they went down.
  ASSERT_NO_FATAL_FAILURE(expect_agreement());
  expect_back_across_the_cut(cut_off);
}

// Topics across a partition: the subscriber on the far side of a cut cable
// leaves the publisher's count when the failure detector gives up on it, misses
// exactly what is published while it is cut off, and gets everything published
// after the cable is restored and its node has announced it again, in order.
TEST_F(cluster_hosts, a_subscriber_behind_a_cut_cable_misses_only_what_was_published_while_cut_off) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(3));
  cluster_member& publisher = member("n1");
  cluster_member& stays = member("n2");
  cluster_member& cut_off = member("n3");
  ASSERT_EQ(ask(stays, "subscribe-ticks"), "subscribed-ticks");
  ASSERT_EQ(ask(cut_off, "subscribe-ticks"), "subscribed-ticks");
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 2 20000"), "tick-subscribers 2");
  const auto got = [&](std::size_t stays_count, std::size_t cut_off_count) {
    return wait_until([&] { return stays.ticks.size() >= stays_count && cut_off.ticks.size() >= cut_off_count; },
                      event_deadline);
  };

  ASSERT_EQ(ask(publisher, "publish-ticks 0 20"), "published-ticks 0 20");
  ASSERT_TRUE(got(20, 20)) << stays.ticks.size() << " and " << cut_off.ticks.size() << describe();

  rig_->cut(cut_off.host);
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 1 20000"), "tick-subscribers 1") << describe();
  ASSERT_EQ(ask(publisher, "publish-ticks 20 20"), "published-ticks 20 20");
  ASSERT_TRUE(got(40, 20)) << stays.ticks.size() << describe();

  rig_->restore(cut_off.host);
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 2 20000"), "tick-subscribers 2") << describe();
  ASSERT_EQ(ask(publisher, "publish-ticks 40 20"), "published-ticks 40 20");
  ASSERT_TRUE(got(60, 40)) << stays.ticks.size() << " and " << cut_off.ticks.size() << describe();

  std::vector<std::int64_t> all(60), around_the_cut;
  for (std::int64_t i = 0; i < 60; ++i) {
    all[static_cast<std::size_t>(i)] = i;
    if (i < 20 || i >= 40) around_the_cut.push_back(i);
  }
  EXPECT_EQ(stays.ticks, all);
  EXPECT_EQ(cut_off.ticks, around_the_cut);
}

// Topics while members leave and join: a subscriber that unsubscribes gets
// nothing published after the publisher's count dropped; a member killed takes
// its subscriber out of the count; the member restarted (a new incarnation)
// and subscribed again gets exactly what is published after the publisher
// counts it, in order.
TEST_F(cluster_hosts, topic_subscribers_that_leave_get_nothing_more_and_one_that_rejoins_gets_what_follows) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  ASSERT_NO_FATAL_FAILURE(form_with_seeds(3));
  cluster_member& publisher = member("n1");
  cluster_member& leaves = member("n2");
  cluster_member& rejoins = member("n3");
  ASSERT_EQ(ask(leaves, "subscribe-ticks"), "subscribed-ticks");
  ASSERT_EQ(ask(rejoins, "subscribe-ticks"), "subscribed-ticks");
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 2 20000"), "tick-subscribers 2");
  ASSERT_EQ(ask(publisher, "publish-ticks 0 10"), "published-ticks 0 10");
  ASSERT_TRUE(wait_until([&] { return leaves.ticks.size() >= 10 && rejoins.ticks.size() >= 10; }, event_deadline))
      << leaves.ticks.size() << " and " << rejoins.ticks.size() << describe();

  // A leave: after unsubscribe returned on n2, no tick reaches its reporter there,
  // and once the publisher counts one subscriber it sends none to n2 at all.
  ASSERT_EQ(ask(leaves, "unsubscribe-ticks"), "unsubscribed-ticks");
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 1 20000"), "tick-subscribers 1") << describe();
  ASSERT_EQ(ask(publisher, "publish-ticks 10 10"), "published-ticks 10 10");
  ASSERT_TRUE(wait_until([&] { return rejoins.ticks.size() >= 20; }, event_deadline))
      << rejoins.ticks.size() << describe();

  // A crash: the killed member's subscriber leaves the count.
  ASSERT_NO_FATAL_FAILURE(kill_and_await_down(rejoins, "SIGKILL"));
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 0 20000"), "tick-subscribers 0") << describe();
  ASSERT_EQ(ask(publisher, "publish-ticks 20 10"), "published-ticks 20 10");  // nobody subscribes

  // A join: the new incarnation's subscriber gets what follows its announcement.
  ASSERT_NO_FATAL_FAILURE(restart_and_await_up(rejoins, seeds_spec()));
  ASSERT_EQ(ask(rejoins, "subscribe-ticks"), "subscribed-ticks");
  ASSERT_EQ(ask(publisher, "await-tick-subscribers 1 20000"), "tick-subscribers 1") << describe();
  ASSERT_EQ(ask(publisher, "publish-ticks 30 10"), "published-ticks 30 10");
  ASSERT_TRUE(wait_until([&] { return rejoins.ticks.size() >= 10; }, event_deadline))
      << rejoins.ticks.size() << describe();

  std::vector<std::int64_t> first_ten, last_ten;
  for (std::int64_t i = 0; i < 10; ++i) {
    first_ten.push_back(i);
    last_ten.push_back(30 + i);
  }
  EXPECT_EQ(leaves.ticks, first_ten);
  EXPECT_EQ(rejoins.ticks, last_ten);  // the restarted process reported only these
}

// A killed member is down at once (its links close), and, its lease expiring,
// is never dialed up again: it comes back only as the new incarnation.
TEST_F(cluster_hosts, with_etcd_members_join_a_killed_one_goes_down_everywhere_and_rejoins_as_a_new_incarnation) {
  TROUPE_REQUIRE_NETNS_RIG();
  TROUPE_REQUIRE_ETCD();
  ts::watchdog guard(120s);
  std::string spec;
  ASSERT_NO_FATAL_FAILURE(form_with_etcd(3, spec));

  cluster_member& victim = member("n2");
  const std::uint64_t old_incarnation = victim.incarnation;
  ASSERT_NO_FATAL_FAILURE(kill_and_await_down(victim, "SIGKILL with etcd (ttl 2 s)"));
  ASSERT_NO_FATAL_FAILURE(expect_agreement());

  ASSERT_NO_FATAL_FAILURE(restart_and_await_up(victim, spec));
  // The dead incarnation was up once and down once everywhere: never revived.
  const std::string old_up = "up n2 " + std::to_string(old_incarnation);
  for (auto& m : members_) {
    if (m.get() == &victim) continue;
    EXPECT_EQ(m->count(old_up), 1u) << m->name << describe();
  }
}

// A cut cable: the failure detector takes the links down, so both sides hear
// member_down (the cut-off member for everyone else, the others for it); the
// cut-off member's lease expires meanwhile. Restored, its links are re-dialed,
// it registers again (the same incarnation) and everyone hears it come back.
TEST_F(cluster_hosts, with_etcd_a_cut_cable_is_member_down_on_both_sides_and_member_up_again_when_restored) {
  TROUPE_REQUIRE_NETNS_RIG();
  TROUPE_REQUIRE_ETCD();
  ts::watchdog guard(120s);
  std::string spec;
  ASSERT_NO_FATAL_FAILURE(form_with_etcd(3, spec));
  const view_t everyone = running();
  cluster_member& cut_off = member("n1");
  const std::string gone = "down n1 " + std::to_string(cut_off.incarnation) + " ";

  rig_->cut(cut_off.host);
  view_t rest = everyone;
  rest.erase("n1");
  ASSERT_TRUE(wait_until(
      [&] {
        return std::all_of(members_.begin(), members_.end(),
                           [&](auto& m) { return m.get() == &cut_off || (m->heard(gone) && m->view == rest); });
      },
      event_deadline))
      << "expected n2 and n3 to hear '" << gone << "...' and see each other only" << describe();
  // The cut-off member does not keep a stale view: it hears the others go.
  ASSERT_TRUE(wait_until(
      [&] {
        return cut_off.view == view_t{{"n1", cut_off.incarnation}};
      },
      event_deadline))
      << "expected n1 to see itself alone" << describe();

  rig_->restore(cut_off.host);
  ASSERT_NO_FATAL_FAILURE(expect_agreement());  // the same incarnations everywhere
  expect_back_across_the_cut(cut_off);
}

}  // namespace
}  // namespace it
