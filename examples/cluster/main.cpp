// cluster: a node that joins a cluster from its command line, hears members
// come and go, publishes a cluster-wide name, and finds the others' by name.
//
//   cluster --demo        # a founder and three member processes on this machine;
//                         # one is killed with SIGKILL and started again
//   cluster --name a --listen tcp://127.0.0.1:7401 --cluster seeds=127.0.0.1:7401,127.0.0.1:7402
//   cluster --name b --listen tcp://127.0.0.1:7402 --cluster seeds=127.0.0.1:7401,127.0.0.1:7402
//   cluster --name c --listen tcp://127.0.0.1:7403 --cluster seeds=127.0.0.1:7401,127.0.0.1:7402
//   cluster --config node.conf     # the same keys as "key = value" lines
//   (--cluster etcd=http://127.0.0.1:2379 joins through etcd instead; see docs/cluster.md)
//
// Every member publishes "greeter-<its name>"; a member's greeter answers who
// it is. Run by hand, the nodes share the cookie file (~/.troupe/cookie by
// default); --demo makes one for its run.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct greet {
  std::string from;
  using reply = std::string;
};
using greeter_protocol = troupe::protocol<greet>;

struct greeter : troupe::actor<greeter_protocol> {
  explicit greeter(std::string home) : node(std::move(home)) {}
  std::string on(const greet& g) { return "hello " + g.from + ", this is " + node; }
  std::string node;
};
TROUPE_REGISTER_ACTOR(greeter, std::string);  // for spawn<greeter>(troupe::anywhere, ...)

// What the membership events said so far; the demo waits on it.
class membership_log {
 public:
  void note(const std::string& what, const troupe::member& who) {
    {
      std::lock_guard lock(mutex_);
      incarnation_[who.name] = what == "up" ? who.incarnation : 0;
    }
    changed_.notify_all();
  }
  // Waits until `name` is up with an incarnation other than `not_this` (or down, with 0).
  bool wait(const std::string& name, bool up, std::uint64_t not_this = 0) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 20s, [&] {
      auto it = incarnation_.find(name);
      if (!up) return it != incarnation_.end() && it->second == 0;
      return it != incarnation_.end() && it->second != 0 && it->second != not_this;
    });
  }
  std::uint64_t incarnation(const std::string& name) {
    std::lock_guard lock(mutex_);
    return incarnation_[name];
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::uint64_t> incarnation_;  // 0: down
};

using events_protocol = troupe::protocol<troupe::member_up, troupe::member_down>;
struct member_printer : troupe::actor<events_protocol> {
  member_printer(std::string self, membership_log* into) : me(std::move(self)), log(into) {}
  void on(const troupe::member_up& e) {
    std::cout << "[" << me << "] member up:   " << e.who.name << " (incarnation " << std::hex << e.who.incarnation
              << std::dec << ", " << e.who.endpoint << ")" << std::endl;
    if (log) log->note("up", e.who);
  }
  void on(const troupe::member_down& e) {
    std::cout << "[" << me << "] member down: " << e.who.name << " (" << e.reason << ")" << std::endl;
    if (log) log->note("down", e.who);
  }
  std::string me;
  membership_log* log;
};

// One member: joins, publishes its greeter, serves until SIGINT or SIGTERM.
int serve(const troupe::node_config& cfg) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before the node's threads: all inherit it
  troupe::node n(cfg);
  (void)n.subscribe_members(n.spawn<member_printer>(n.name(), nullptr));
  if (auto published = n.publish_global("greeter-" + n.name(), n.spawn<greeter>(n.name())); !published) {
    std::cerr << n.name() << ": " << published.error() << '\n';
    return 1;
  }
  std::cout << "[" << n.name() << "] listening at " << n.endpoint() << std::endl;
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

// --demo: this process founds the cluster; three members join it from their
// command lines (this same program); m2 is killed and started again.
pid_t start_member(const std::string& name, const std::string& seed, const std::string& cookie_file) {
  const std::vector<std::string> args{"/proc/self/exe",
                                      "--name",
                                      name,
                                      "--listen",
                                      "tcp://127.0.0.1:0",
                                      "--cookie-file",
                                      cookie_file,
                                      "--cluster",
                                      "seeds=" + seed + ";gossip_ms=200"};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the members end with the demo
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int demo() {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("troupe-cluster-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cookie_file = (dir / "cookie").string();
  {
    std::ofstream out(cookie_file);
    out << "cluster-demo-" << std::chrono::steady_clock::now().time_since_epoch().count() << '\n';
  }
  std::filesystem::permissions(cookie_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  troupe::node_config cfg;
  cfg.name = "founder";
  cfg.listen = "tcp://127.0.0.1:0";
  cfg.cookie_file = cookie_file;
  cfg.cluster.provider = troupe::membership_provider_kind::seeds;  // no seeds: it is the first
  cfg.cluster.gossip_interval = 200ms;
  membership_log log;
  int status = 1;
  std::map<std::string, pid_t> members;
  {
    troupe::node n(cfg);
    (void)n.subscribe_members(n.spawn<member_printer>(n.name(), &log));
    const std::string seed = n.endpoint().substr(std::string("tcp://").size());
    for (const char* name : {"m1", "m2", "m3"}) members[name] = start_member(name, seed, cookie_file);
    auto fail = [&](const std::string& why) {
      std::cerr << "cluster demo: " << why << '\n';
      return 1;
    };
    status = [&]() -> int {
      if (auto all = n.await_members(4, 20s); !all) return fail(all.error().text());
      std::cout << "\n--- 4 members; each greeter, found by its cluster-wide name:\n";
      for (const char* name : {"m1", "m2", "m3"}) {
        auto g = n.lookup<greeter_protocol>(std::string("greeter-") + name, 10s);
        if (!g) return fail(g.error().text());
        std::cout << "  " << g->ask(greet{"founder"}, 5s).get() << '\n';
      }
      auto placed = n.spawn<greeter>(troupe::anywhere, std::string("a greeter placed on the least-loaded member"));
      if (!placed) return fail(placed.error().text());
      std::cout << "  spawn(anywhere) placed " << placed->address() << ": " << placed->ask(greet{"founder"}, 5s).get()
                << '\n';

      std::cout << "\n--- SIGKILL to m2:\n" << std::flush;
      const std::uint64_t first_life = log.incarnation("m2");
      ::kill(members["m2"], SIGKILL);
      ::waitpid(members["m2"], nullptr, 0);
      if (!log.wait("m2", false)) return fail("m2's death was not noticed");
      std::cout << "  members now:";
      for (const auto& m : n.members()) std::cout << ' ' << m.name;
      std::cout << "\n  greeter-m2: "
                << (n.lookup<greeter_protocol>("greeter-m2", 10ms) ? "still there (wrong)" : "gone with its node")
                << "\n\n--- m2 starts again (a new process, a new incarnation):\n"
                << std::flush;
      members["m2"] = start_member("m2", seed, cookie_file);
      if (!log.wait("m2", true, first_life)) return fail("m2 did not rejoin");
      auto g = n.lookup<greeter_protocol>("greeter-m2", 10s);
      if (!g) return fail(g.error().text());
      std::cout << "  " << g->ask(greet{"founder"}, 5s).get() << "\n\ncluster demo: done\n";
      return 0;
    }();
    for (auto& [name, pid] : members) ::kill(pid, SIGTERM);
    for (auto& [name, pid] : members) ::waitpid(pid, nullptr, 0);
  }
  std::filesystem::remove_all(dir);
  return status;
}

int main(int argc, char** argv) {
  troupe::node_config cfg;
  auto rest = troupe::configure_from_command_line(cfg, argc, argv);
  if (!rest) {
    std::cerr << "cluster: " << rest.error() << '\n';
    return 2;
  }
  if (rest->size() == 1 && (*rest)[0] == "--demo") return demo();
  if (!rest->empty() || cfg.cluster.provider == troupe::membership_provider_kind::none) {
    std::cerr
        << "usage: cluster --demo\n"
           "       cluster --name NAME --listen tcp://HOST:PORT --cluster seeds=HOST:PORT,...|etcd=http://HOST:PORT\n"
           "       cluster --config FILE\n";
    return 2;
  }
  try {
    return serve(cfg);
  } catch (const std::exception& e) {
    std::cerr << "cluster: " << e.what() << '\n';
    return 1;
  }
}
