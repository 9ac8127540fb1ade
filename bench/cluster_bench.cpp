// cluster_bench — what a cluster costs on top of plain nodes, each figure
// against its baseline measured in the same run (docs/benchmarks.md, Clusters):
//
// - resolution: lookup<P>("svc") of a cluster-wide name (seeds: from the
//   gossiped table; etcd: a range request, then the holder), against
//   lookup<P>("troupe://b/svc"), the plain node-to-node lookup it ends in;
// - placement: spawn<A>(troupe::anywhere) (asks every member its load), against
//   spawn<A>(on(node)), a remote spawn on a node named by the caller;
// - convergence: from constructing the last of `--nodes` members until every
//   member lists them all, and from an orderly leave until every other member
//   has heard member_down — seeds against etcd (no baseline outside troupe:
//   the two providers are compared with each other).
//
//   cluster_bench [--quick] [--reps R] [--nodes N]
//
// All nodes live in this process, each with a runtime directory of its own, so
// they link over TCP on 127.0.0.1 as on separate machines. etcd: a private one
// (tests/support/etcd_server.hpp) if /usr/bin/etcd exists; else its rows are
// skipped with a note.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

#include "support/etcd_server.hpp"

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct hello {
  using reply = int;
};
using svc_protocol = troupe::protocol<hello>;
struct svc : troupe::actor<svc_protocol> {
  int on(hello) { return 1; }
};
TROUPE_REGISTER_ACTOR(svc);

struct options {
  int reps = 5;
  int lookups = 2000;
  int spawns = 300;
  int nodes = 5;
};

// Also from actors' threads: _Exit, not exit(), which would run static
// destructors while the actor system's threads still run.
[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "cluster_bench: %s\n", why.c_str());
  std::fflush(nullptr);
  std::_Exit(1);
}

template <class T>
T value_or_fail(troupe::expected<T> e, const char* what) {
  if (!e) fail(std::string(what) + ": " + e.error().to_string());
  return std::move(*e);
}

void check(const troupe::expected<void>& e, const char* what) {
  if (!e) fail(std::string(what) + ": " + e.error().to_string());
}

// Counts member_down events: the leave measurement waits on it.
class down_latch {
 public:
  void count() {
    {
      std::lock_guard lock(mutex_);
      ++downs_;
    }
    changed_.notify_all();
  }
  void wait(int n) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, 30s, [&] { return downs_ >= n; })) fail("a leave was not heard");
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int downs_ = 0;
};
using events_protocol = troupe::protocol<troupe::member_up, troupe::member_down>;
struct down_counter : troupe::actor<events_protocol> {
  explicit down_counter(down_latch* l) : latch(l) {}
  void on(const troupe::member_up&) {}
  void on(const troupe::member_down&) { latch->count(); }
  down_latch* latch;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Nodes of one cluster, each in its own runtime directory.
class cluster {
 public:
  // `provider`: "seeds" (the first node is the seed) or "etcd=http://...";
  // `options`: what follows ';' in a cluster spec.
  cluster(std::string provider, std::string options) : provider_(std::move(provider)), options_(std::move(options)) {
    char pattern[] = "/tmp/troupe-cluster-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) fail("mkdtemp");
    dir_ = pattern;
  }
  ~cluster() {
    nodes_.clear();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  troupe::node& add(const std::string& name) {
    troupe::node_config cfg;
    cfg.name = name;
    cfg.runtime_dir = dir_ + "/" + name;
    std::filesystem::create_directories(cfg.runtime_dir);
    std::filesystem::permissions(cfg.runtime_dir, std::filesystem::perms::owner_all);
    cfg.listen = "tcp://127.0.0.1:0";
    cfg.cookie = "cluster-bench-cookie";
    cfg.system.worker_threads = 1;
    if (provider_ == "seeds") {
      // The first node founds the cluster (no seeds); the others join through it.
      const std::string seed = nodes_.empty() ? "127.0.0.1:1" : nodes_.front()->endpoint().substr(6);
      cfg.cluster = value_or_fail(troupe::parse_cluster("seeds=" + seed + ";" + options_), "cluster spec");
      if (nodes_.empty()) cfg.cluster.seeds.clear();
    } else {
      cfg.cluster = value_or_fail(troupe::parse_cluster(provider_ + ";" + options_), "cluster spec");
    }
    nodes_.push_back(std::make_unique<troupe::node>(cfg));
    return *nodes_.back();
  }
  void remove_last() { nodes_.pop_back(); }
  troupe::node& at(std::size_t i) { return *nodes_.at(i); }
  [[nodiscard]] std::size_t size() const { return nodes_.size(); }
  // Until every member lists `count` members.
  void await_all(std::size_t count) {
    for (auto& n : nodes_) check(n->await_members(count, 30s), "await_members");
  }

 private:
  std::string provider_, options_, dir_;
  std::vector<std::unique_ptr<troupe::node>> nodes_;
};

// Operations per second of `op`, `count` times.
double rate(int count, const std::function<void()>& op) {
  const auto start = clock_type::now();
  for (int i = 0; i < count; ++i) op();
  return count / std::chrono::duration<double>(clock_type::now() - start).count();
}

void resolution(cluster& c, const char* label, const options& o) {
  troupe::node& a = c.at(0);
  troupe::node& b = c.at(1);
  auto target = b.spawn<svc>();
  check(b.publish_global("svc", target), "publish_global");
  const std::string direct = "troupe://" + b.name() + "/svc";
  // Warm: the link exists, the name has spread.
  value_or_fail(a.lookup<svc_protocol>("svc", 10s), "global lookup");
  std::vector<double> global, plain;
  for (int r = 0; r < o.reps; ++r) {
    plain.push_back(rate(o.lookups, [&] { value_or_fail(a.lookup<svc_protocol>(direct, 5s), "lookup"); }));
    global.push_back(rate(o.lookups, [&] { value_or_fail(a.lookup<svc_protocol>("svc", 5s), "lookup"); }));
  }
  const double g = median(global), p = median(plain);
  std::printf("resolution (%s)    lookup(\"svc\") %9.0f/s   lookup(\"troupe://b/svc\") %9.0f/s   ratio %.2f\n", label,
              g, p, g / p);
}

void placement(cluster& c, const options& o) {
  troupe::node& a = c.at(0);
  const troupe::node_handle b = value_or_fail(a.connect(c.at(1).endpoint()), "connect");
  std::vector<double> anywhere, named;
  for (int r = 0; r < o.reps; ++r) {
    named.push_back(rate(o.spawns, [&] { value_or_fail(a.spawn<svc>(troupe::on(b)), "spawn on b"); }));
    anywhere.push_back(rate(o.spawns, [&] { value_or_fail(a.spawn<svc>(troupe::anywhere), "spawn anywhere"); }));
  }
  const double w = median(anywhere), n = median(named);
  std::printf("placement (seeds, %zu members) spawn(anywhere) %7.0f/s   spawn(on(b)) %7.0f/s   ratio %.2f\n", c.size(),
              w, n, w / n);
}

// "n<i>", built by appending: for `"n" + std::to_string(i)` GCC 12 reports a
// false -Wrestrict at -O2.
std::string node_name(int i) {
  std::string name = "n";
  name += std::to_string(i);
  return name;
}

// Join: the last node's construction until all list everyone; leave: its
// destruction until all others have only the rest.
std::pair<double, double> convergence(const std::string& provider, const std::string& tag, const options& o) {
  std::vector<double> join, leave;
  for (int r = 0; r < o.reps; ++r) {
    down_latch downs;  // outlives the nodes: their counters tell it
    cluster c(provider, "gossip_ms=100;ttl=5;cluster=" + tag + "-" + std::to_string(r));
    for (int i = 0; i + 1 < o.nodes; ++i) c.add(node_name(i));
    c.await_all(static_cast<std::size_t>(o.nodes - 1));
    for (std::size_t i = 0; i < c.size(); ++i)
      check(c.at(i).subscribe_members(c.at(i).spawn<down_counter>(&downs)), "subscribe");
    auto start = clock_type::now();
    c.add(node_name(o.nodes - 1));
    c.await_all(static_cast<std::size_t>(o.nodes));
    join.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
    start = clock_type::now();
    c.remove_last();
    downs.wait(o.nodes - 1);  // every other member heard it leave
    leave.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
  }
  return {median(join), median(leave)};
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      o.reps = 3;
      o.lookups = 300;
      o.spawns = 50;
    } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      o.reps = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
      o.nodes = std::max(2, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: cluster_bench [--quick] [--reps R] [--nodes N]\n");
      return 2;
    }
  }
  std::printf("cluster_bench: %d reps (medians), nodes in one process over TCP on 127.0.0.1\n", o.reps);
  {
    cluster c("seeds", "gossip_ms=100;cluster=resolve");
    c.add("a");
    c.add("b");
    c.add("c");
    c.await_all(3);
    resolution(c, "seeds", o);
    placement(c, o);
  }
  std::unique_ptr<troupe::test_support::etcd_server> etcd;
  if (auto why = troupe::test_support::etcd_server::unavailable_reason()) {
    std::printf("etcd rows skipped: %s\n", why->c_str());
  } else {
    etcd = std::make_unique<troupe::test_support::etcd_server>();
    cluster c("etcd=" + etcd->url(), "ttl=5;cluster=resolve");
    c.add("a");
    c.add("b");
    c.await_all(2);
    resolution(c, "etcd ", o);
  }
  const auto seeds = convergence("seeds", "conv", o);
  std::printf("convergence (seeds, gossip 100 ms, %d nodes)  join %7.1f ms   leave %7.1f ms\n", o.nodes, seeds.first,
              seeds.second);
  if (etcd) {
    const auto e = convergence("etcd=" + etcd->url(), "conv", o);
    std::printf(
        "convergence (etcd, %d nodes)                 join %7.1f ms   leave %7.1f ms   (seeds/etcd: %.2f, %.2f)\n",
        o.nodes, e.first, e.second, seeds.first / e.first, seeds.second / e.second);
  }
  return 0;
}
