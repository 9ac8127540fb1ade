// processes: a parent deploys word-counting workers into two child processes,
// supervises them, and survives one of them being killed with SIGKILL.
//
// The same executable is parent and child: troupe::run() makes a process that
// spawn_node() started into a node; the parent's supervisor restarts a dead
// node (a new process, a new incarnation) and `deploy` starts its counter
// again. Jobs whose worker died are retried, so the final count is exact.
#include <signal.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct count_words {
  std::string text;
  using reply = std::int64_t;
};
using counter_protocol = troupe::protocol<count_words>;

struct counter : troupe::actor<counter_protocol> {
  std::int64_t on(const count_words& c) {
    std::istringstream in(c.text);
    std::int64_t n = 0;
    for (std::string word; in >> word;) ++n;
    return n;
  }
};
TROUPE_REGISTER_ACTOR(counter);  // remote spawn: one line per actor type

// The workers' current refs; deploy() replaces one after each (re)start.
class workers {
 public:
  void set(std::size_t slot, troupe::ref<counter_protocol> r) {
    {
      std::lock_guard lock(mutex_);
      refs_[slot] = std::move(r);
      ++generation_;
    }
    changed_.notify_all();
  }
  troupe::ref<counter_protocol> get(std::size_t slot) {
    std::lock_guard lock(mutex_);
    return refs_[slot];
  }
  // Waits until a deploy happened after `seen` (or a timeout).
  std::uint64_t wait_newer_than(std::uint64_t seen) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 10s, [&] { return generation_ > seen; });
    return generation_;
  }
  std::uint64_t generation() {
    std::lock_guard lock(mutex_);
    return generation_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  troupe::ref<counter_protocol> refs_[2];
  std::uint64_t generation_ = 0;
};

int parent_main() {
  troupe::node_config cfg;
  cfg.name = "processes-" + std::to_string(::getpid());
  troupe::node n(cfg);
  workers pool;

  troupe::supervisor_spec spec;
  spec.max_restarts = 3;
  spec.within = 30s;
  for (std::size_t slot = 0; slot < 2; ++slot) {
    troupe::node_spawn_options options;
    options.name = cfg.name + "-worker-" + std::to_string(slot + 1);
    spec.children.push_back(troupe::node_child(n, "worker-" + std::to_string(slot + 1), options,
                                               [&pool, slot](troupe::node& self, const troupe::node_handle& h) {
                                                 pool.set(slot, self.spawn<counter>(troupe::on(h)).value());
                                                 std::cout << "deployed a counter on node '" << h.name() << "' (pid "
                                                           << h.pid() << ")\n";
                                               }));
  }
  auto sup = troupe::spawn_supervisor(n, std::move(spec));
  while (pool.generation() < 2) pool.wait_newer_than(pool.generation());

  const std::vector<std::string> lines = {
      "the quick brown fox jumps over the lazy dog", "actors share nothing and talk by messages",
      "a supervisor restarts what fails", "shared memory carries messages between processes", "let it crash"};
  constexpr int jobs = 200;
  std::int64_t expected = 0, counted = 0;
  int retries = 0;
  for (int job = 0; job < jobs; ++job) {
    const std::string& text = lines[static_cast<std::size_t>(job) % lines.size()];
    std::istringstream in(text);
    for (std::string w; in >> w;) ++expected;
    if (job == jobs / 2) {
      auto keeper = sup.child<troupe::node_keeper_protocol>("worker-1");
      const troupe::node_handle victim = keeper.ask(troupe::current_node{}, 5s).get();
      std::cout << "killing worker-1 (pid " << victim.pid() << ") with SIGKILL\n";
      ::kill(victim.pid(), SIGKILL);
    }
    const std::size_t slot = static_cast<std::size_t>(job) % 2;
    for (;;) {
      const std::uint64_t seen = pool.generation();
      auto result = pool.get(slot).ask(count_words{text}, 5s).try_get();
      if (result) {
        counted += *result;
        break;
      }
      ++retries;
      std::cout << "job " << job << " failed (" << result.error() << "); retrying once worker-" << slot + 1
                << " is back\n";
      pool.wait_newer_than(seen);
    }
  }
  std::cout << "counted " << counted << " words in " << jobs << " jobs (expected " << expected << "), " << retries
            << " retried after the kill\n";
  (void)sup.self().tell(troupe::shutdown_supervisor{});
  return counted == expected ? 0 : 1;
}

int main(int argc, char** argv) { return troupe::run(argc, argv, parent_main); }
