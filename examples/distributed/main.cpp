// distributed: three nodes on loopback, linked over TCP, exchange refs and
// survive one node's death with an exact result.
//
// Node a runs the coordinator; every other node runs a worker, and node b also
// runs the collector. b and c look the coordinator up by its TCP endpoint and
// send it refs to their actors (register by message); the coordinator sends
// jobs to the workers through those refs, each job carrying a ref to the
// collector on b, so c's worker reports to a third node it was introduced to by
// a. The collector acknowledges every result to the coordinator. When a
// worker's node dies, the coordinator's monitor gets down{node_down} and its
// unacknowledged jobs go to the workers left; the collector counts a job that
// arrives twice once. Jobs compute n * n for n = 1..jobs.
//
//   distributed --demo      # all three as child processes; c gets SIGKILL midway
//   distributed --name a --listen 7301 --peers 7302,7303 [--cookie-file F]   # one node;
//   distributed --name b --listen 7302 --peers 7301,7303                     # a terminal
//   distributed --name c --listen 7303 --peers 7301,7302                     # each
//       [--jobs 40] [--work-ms 25]: how much work, and how long each job takes
//
// Run by hand, the nodes share the cookie file (default ~/.troupe/cookie,
// created on first use; see docs/security.md); --demo makes a fresh cookie for
// its run and hands it to its children over a private socket (demo.cpp). Each
// node has a runtime directory of its own, so the nodes cannot meet over shared
// memory: everything here goes over TCP.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <troupe/troupe.hpp>

#include "common.hpp"

using namespace std::chrono_literals;
using distributed::clock_type;
using distributed::line_channel;
using distributed::options;
using distributed::say;
using distributed::split;

// --- protocols --------------------------------------------------------------------

struct job_result {
  std::int64_t id = 0;
  std::int64_t output = 0;
  std::string by;  // the node whose worker computed it
};
struct summary {
  std::int64_t results = 0;
  std::int64_t sum = 0;
  std::int64_t duplicates = 0;
};
struct get_summary {
  using reply = summary;
};
using collector_protocol = troupe::protocol<job_result, get_summary>;

struct job {
  std::int64_t id = 0;
  std::int64_t input = 0;
  troupe::ref<collector_protocol> deliver_to;  // a ref that travels a -> worker
};
struct work_done {};  // a worker's own timer: the current job's work time is over
using worker_protocol = troupe::protocol<job, work_done>;

struct join_as_worker {
  std::string node;
  troupe::ref<worker_protocol> worker;
};
struct offer_collector {
  std::string node;
  troupe::ref<collector_protocol> collector;
};
struct job_done {
  std::int64_t id = 0;
  std::string by;
};
using coordinator_protocol = troupe::protocol<join_as_worker, offer_collector, job_done>;

// --- actors -----------------------------------------------------------------------

// One job at a time; the work is a timer standing in for a computation.
class worker : public troupe::actor<worker_protocol> {
 public:
  worker(std::string node, std::chrono::milliseconds work) : node_(std::move(node)), work_(work) {}
  void on(job j) {
    queue_.push_back(std::move(j));
    if (queue_.size() == 1) system().send_after(self(), work_, work_done{});
  }
  void on(work_done) {
    const job j = std::move(queue_.front());
    queue_.pop_front();
    if (auto failed = j.deliver_to.tell(job_result{j.id, j.input * j.input, node_})) {
      say(node_, "worker: the result of job " + std::to_string(j.id) + " was not delivered: " + failed.message());
    }
    if (!queue_.empty()) system().send_after(self(), work_, work_done{});
  }

 private:
  std::string node_;
  std::chrono::milliseconds work_;
  std::deque<job> queue_;
};

// Keeps one result per job, whoever computed it, and acknowledges each.
class collector : public troupe::actor<collector_protocol> {
 public:
  collector(std::string node, troupe::ref<coordinator_protocol> coordinator)
      : node_(std::move(node)), coordinator_(std::move(coordinator)) {}
  void on(const job_result& r) {
    auto [first, fresh] = outputs_.try_emplace(r.id, r.output, r.by);
    if (!fresh) {
      ++duplicates_;
      say(node_, "collector: job " + std::to_string(r.id) + " arrived again (from " + r.by + ", first from " +
                     first->second.second + "): counted once");
    }
    (void)coordinator_.tell(job_done{r.id, r.by});
  }
  summary on(get_summary) const {
    summary s;
    s.results = static_cast<std::int64_t>(outputs_.size());
    for (const auto& [id, result] : outputs_) s.sum += result.first;
    s.duplicates = duplicates_;
    return s;
  }

 private:
  std::string node_;
  troupe::ref<coordinator_protocol> coordinator_;
  std::map<std::int64_t, std::pair<std::int64_t, std::string>> outputs_;  // id -> (output, by)
  std::int64_t duplicates_ = 0;
};

struct outcome {
  bool complete = false;
  std::string why;
  troupe::ref<collector_protocol> collector;
};

// Hands out jobs (at most `window` in flight per worker) and re-sends the
// unacknowledged ones of a worker whose node died.
class coordinator : public troupe::actor<coordinator_protocol> {
 public:
  static constexpr std::size_t window = 3;

  coordinator(std::int64_t jobs, std::size_t workers_expected, std::promise<outcome>* done,
              std::function<void()> at_midway)
      : jobs_(jobs), workers_expected_(workers_expected), done_(done), at_midway_(std::move(at_midway)) {}

  void on(const join_as_worker& w) {
    (void)monitor(troupe::actor_addr(w.worker));
    workers_.push_back({w.node, w.worker, {}});
    say("a", "coordinator: worker on " + w.node + " joined (" + w.worker.address() + ")");
    maybe_start();
  }
  void on(const offer_collector& c) {
    (void)monitor(troupe::actor_addr(c.collector));
    collector_ = c.collector;
    say("a", "coordinator: results go to the collector on " + c.node + " (" + c.collector.address() + ")");
    maybe_start();
  }
  void on(const job_done& d) {
    if (!acked_.insert(d.id).second) return;  // the second copy of a re-sent job
    for (assignment& w : workers_) w.in_flight.erase(d.id);
    std::erase(pending_, d.id);  // re-queued, but its first result made it after all
    const auto acked = static_cast<std::int64_t>(acked_.size());
    if (acked % 10 == 0 || acked == jobs_) {
      say("a", "coordinator: " + std::to_string(acked) + "/" + std::to_string(jobs_) + " done");
    }
    if (acked == jobs_ / 2 && at_midway_) at_midway_();
    if (acked == jobs_) return finish(true, "all jobs acknowledged");
    dispatch();
  }
  void on(const troupe::down& d) {
    if (finished_) return;  // this node is shutting down: its proxies stop too
    if (d.who == collector_) return finish(false, "the collector is gone (" + d.reason.to_string() + ")");
    auto it = std::find_if(workers_.begin(), workers_.end(), [&](const assignment& w) { return d.who == w.worker; });
    if (it == workers_.end()) return;
    say("a", "coordinator: down{" + std::string(troupe::to_string(d.reason.what())) + "} for the worker on " +
                 it->node + " (" + d.reason.text() + ")");
    const std::set<std::int64_t> lost = std::move(it->in_flight);
    const std::string node = it->node;
    workers_.erase(it);
    if (workers_.empty()) return finish(false, "no worker left");
    std::string ids;
    for (std::int64_t id : lost) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    say("a", "coordinator: re-sending " + node + "'s " + std::to_string(lost.size()) + " unacknowledged job(s) (" +
                 ids + ") to the workers left");
    pending_.insert(pending_.begin(), lost.begin(), lost.end());
    dispatch();
  }

 private:
  struct assignment {
    std::string node;
    troupe::ref<worker_protocol> worker;
    std::set<std::int64_t> in_flight;
  };

  void maybe_start() {
    if (started_ || !collector_ || workers_.size() < workers_expected_) return;
    started_ = true;
    for (std::int64_t id = 1; id <= jobs_; ++id) pending_.push_back(id);
    say("a", "coordinator: sending " + std::to_string(jobs_) + " jobs to " + std::to_string(workers_.size()) +
                 " workers, at most " + std::to_string(window) + " in flight each");
    dispatch();
  }

  void dispatch() {
    while (!pending_.empty()) {
      auto w = std::min_element(workers_.begin(), workers_.end(), [](const assignment& x, const assignment& y) {
        return x.in_flight.size() < y.in_flight.size();
      });
      if (w == workers_.end() || w->in_flight.size() >= window) return;
      const std::int64_t id = pending_.front();
      pending_.pop_front();
      w->in_flight.insert(id);
      if (auto failed = w->worker.tell(job{id, id, collector_})) {
        // Its node is gone; the down on its way re-queues the job.
        say("a", "coordinator: job " + std::to_string(id) + " not sent to " + w->node + ": " + failed.message());
        return;
      }
    }
  }

  void finish(bool complete, std::string why) {
    if (finished_) return;
    finished_ = true;
    done_->set_value(outcome{complete, std::move(why), collector_});
  }

  std::int64_t jobs_;
  std::size_t workers_expected_;
  std::promise<outcome>* done_;
  std::function<void()> at_midway_;
  std::vector<assignment> workers_;
  troupe::ref<collector_protocol> collector_;
  std::deque<std::int64_t> pending_;
  std::set<std::int64_t> acked_;
  bool started_ = false;
  bool finished_ = false;
};

// Tells a plain thread when an actor (here: the coordinator) is gone.
struct watch_this {
  troupe::actor_addr who;
};
class watcher : public troupe::actor<troupe::protocol<watch_this>> {
 public:
  explicit watcher(std::promise<troupe::exit_reason>* gone) : gone_(gone) {}
  void on(const watch_this& w) { (void)monitor(w.who); }
  void on(const troupe::down& d) {
    if (!fired_) gone_->set_value(d.reason);
    fired_ = true;
  }

 private:
  std::promise<troupe::exit_reason>* gone_;
  bool fired_ = false;
};

// --- one node ------------------------------------------------------------------------

std::string endpoint_of(const std::string& port) { return "tcp://127.0.0.1:" + port; }

troupe::expected<troupe::node_handle> connect_to(troupe::node& n, const std::string& where,
                                                 clock_type::time_point deadline) {
  for (;;) {
    auto h = n.connect(where);
    // Not up yet, or it dialed us at the same moment: the next try finds its link.
    if (h || clock_type::now() > deadline) return h;
    std::this_thread::sleep_for(100ms);
  }
}

// Node a: waits for the coordinator, then checks the collector's total.
int await_result(const options& o, std::promise<outcome>& finished) {
  auto result = finished.get_future();
  if (result.wait_for(o.control_fd >= 0 ? 20s : 24h) != std::future_status::ready) {
    say("a", "FAILED: the jobs did not finish in time");
    return 1;
  }
  const outcome out = result.get();
  if (!out.complete) {
    say("a", "FAILED: " + out.why);
    return 1;
  }
  auto s = out.collector.ask(get_summary{}, 5s).try_get();
  if (!s) {
    say("a", "FAILED: no summary from the collector: " + s.error().to_string());
    return 1;
  }
  const std::int64_t expected = o.jobs * (o.jobs + 1) * (2 * o.jobs + 1) / 6;
  const bool exact = s->results == o.jobs && s->sum == expected;
  say("a", "collector: " + std::to_string(s->results) + " results, sum of squares " + std::to_string(s->sum) +
               " (expected " + std::to_string(expected) + "), " + std::to_string(s->duplicates) +
               " duplicate(s) dropped: " + (exact ? "exact" : "WRONG"));
  return exact ? 0 : 1;
}

// The other nodes: register a worker (b: and the collector) with the
// coordinator, then serve until the coordinator is gone.
int serve(troupe::node& n, const std::vector<std::string>& peers, const options& o,
          std::promise<troupe::exit_reason>& coordinator_gone, clock_type::time_point deadline) {
  const std::string& me = o.name;
  // The coordinator, on whichever peer publishes it.
  std::optional<troupe::ref<coordinator_protocol>> coordinator_ref;
  while (!coordinator_ref) {
    for (const std::string& where : peers) {
      if (auto c = n.lookup<coordinator_protocol>(where + "/coordinator", 2s)) {
        coordinator_ref = *c;
        break;
      }
    }
    if (!coordinator_ref && clock_type::now() > deadline) {
      say(me, "no coordinator found on " + std::to_string(peers.size()) + " peers");
      return 1;
    }
    if (!coordinator_ref) std::this_thread::sleep_for(100ms);
  }
  n.spawn<watcher>(&coordinator_gone).tell(watch_this{troupe::actor_addr(*coordinator_ref)});
  if (me == "b") {
    auto c = n.spawn<collector>(me, *coordinator_ref);
    (void)coordinator_ref->tell(offer_collector{me, c});
  }
  auto w = n.spawn<worker>(me, std::chrono::milliseconds(o.work_ms));
  (void)coordinator_ref->tell(join_as_worker{me, w});
  say(me, "sent the coordinator a ref to this node's worker" + std::string(me == "b" ? " and collector" : ""));
  auto gone = coordinator_gone.get_future();
  if (gone.wait_for(o.control_fd >= 0 ? 30s : 24h) != std::future_status::ready) return 1;
  say(me, "the coordinator is gone (" + gone.get().to_string() + "); leaving");
  return 0;
}

int run_node(const options& o) {
  const std::string& me = o.name;
  std::optional<line_channel> control;
  if (o.control_fd >= 0) control.emplace(o.control_fd);
  const auto setup_deadline = clock_type::now() + (control ? 10s : 120s);

  troupe::node_config cfg;
  cfg.name = me;
  cfg.listen = endpoint_of(o.listen);
  cfg.cookie_file = o.cookie_file;
  if (control) {
    // The demo's cookie and clock; never on a command line, where others could read them.
    for (int i = 0; i < 2; ++i) {
      auto line = control->receive(setup_deadline);
      if (!line) return 2;
      if (line->starts_with("cookie ")) cfg.cookie = line->substr(7);
      if (line->starts_with("t0 ")) {
        distributed::log_origin = clock_type::time_point(clock_type::duration(std::stoll(line->substr(3))));
      }
    }
  }
  // A runtime directory of its own: this node meets others over TCP only.
  struct removed_at_exit {
    std::string path;
    ~removed_at_exit() {
      std::error_code ignored;
      if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
  } own_dir;  // declared before the node: removed after it stopped
  cfg.runtime_dir = o.runtime_dir;
  if (cfg.runtime_dir.empty()) {
    std::string pattern = (std::filesystem::temp_directory_path() / "troupe-distributed-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) return 2;
    own_dir.path = cfg.runtime_dir = pattern;
  }

  std::promise<outcome> finished;                      // outlive the node: its actors
  std::promise<troupe::exit_reason> coordinator_gone;  // may report until it is gone
  troupe::node n(cfg);
  say(me, "node '" + me + "' listening on " + n.endpoint());

  std::vector<std::string> peers;
  for (const std::string& port : o.peers) peers.push_back(endpoint_of(port));
  if (control) {
    (void)control->send("endpoint " + n.endpoint());
    auto line = control->receive(setup_deadline);
    if (!line || !line->starts_with("peers ")) return 2;
    peers = split(line->substr(6), ',');
  }
  if (me == "a") {
    std::function<void()> at_midway = [&control] {
      if (control) {
        (void)control->send("midway");
      } else {
        say("a", "coordinator: halfway; kill -9 node c now to see b take over its jobs");
      }
    };
    // Every peer runs a worker.
    n.publish("coordinator", n.spawn<coordinator>(o.jobs, peers.size(), &finished, std::move(at_midway)));
  }
  // Linked to every peer up front. A ref to a third node (c gets one to b's
  // collector from a) is followed over an existing link by the node's name;
  // without one, a node on the same host (the same host id) is dialed over
  // shared memory, in this node's runtime directory, where b is not.
  for (const std::string& where : peers) {
    auto h = connect_to(n, where, setup_deadline);
    if (!h) {
      say(me, "cannot link to " + where + ": " + h.error().to_string());
      return 1;
    }
    say(me, "linked to node '" + h->name() + "' at " + where);
  }
  return me == "a" ? await_result(o, finished) : serve(n, peers, o, coordinator_gone, setup_deadline);
}

int usage() {
  std::fprintf(stderr,
               "usage: distributed --demo\n"
               "       distributed --name NAME --listen PORT --peers PORT,PORT [--cookie-file FILE]\n"
               "                   [--jobs N] [--work-ms MS]\n"
               "node a coordinates; the others run workers; b also collects the results.\n");
  return 2;
}

int main(int argc, char** argv) {
  options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--demo") {
      o.demo = true;
    } else if (!has_value) {
      return usage();
    } else if (a == "--name") {
      o.name = args[++i];
    } else if (a == "--listen") {
      o.listen = args[++i];
    } else if (a == "--peers") {
      o.peers = split(args[++i], ',');
    } else if (a == "--cookie-file") {
      o.cookie_file = args[++i];
    } else if (a == "--runtime-dir") {
      o.runtime_dir = args[++i];
    } else if (a == "--control-fd") {
      o.control_fd = std::atoi(args[++i].c_str());
    } else if (a == "--jobs") {
      o.jobs = std::max<std::int64_t>(2, std::atoll(args[++i].c_str()));
    } else if (a == "--work-ms") {
      o.work_ms = std::max<std::int64_t>(0, std::atoll(args[++i].c_str()));
    } else {
      return usage();
    }
  }
  if (o.demo) return distributed::run_demo(o);
  if (o.name.empty() || o.listen.empty() || (o.peers.empty() && o.control_fd < 0)) return usage();
  try {
    return run_node(o);
  } catch (const std::exception& e) {
    say(o.name, std::string("failed: ") + e.what());
    return 1;
  }
}
