// cluster_demo: a word-counting service spread over four processes, one of
// them killed midway, with a result that is still exact.
//
//   process                  actors                how it is reached     supervised by
//   coordinator (this one)   dispatcher, 1 worker  in-process            child<worker>
//   worker-shm-1 (child)     2 workers             shared memory         node_child (the process)
//   worker-shm-2 (child)     2 workers             shared memory         node_child (the process)
//   worker-tcp   (child)     2 workers             TCP on loopback (its  remote_child (each worker)
//                                                  own runtime directory)
//
// The dispatcher sends jobs (an id and a text) to the workers, at most 64 in
// flight each, and merges the word counts they send back in batches. Midway
// the demo SIGKILLs worker-shm-1: the dispatcher gets down{process_down} for its
// two workers and sends their unanswered jobs to the others; the supervisor
// starts a new worker-shm-1 (a new process, a new incarnation), whose workers
// join and get work again. Results are deduplicated by job id. At the end the
// total is compared with a single-threaded count made here.
//
//   cluster_demo            # 10 s of work
//   cluster_demo --quick    # 3 s (the test)
//   cluster_demo --seconds 20
//
// One executable plays every part: troupe::run makes it a worker node when
// spawn_node started it; `--tcp-node` (tcp_node.cpp) makes it the TCP node.
// Exit status 0 means the result was exact and everything happened as planned.
#include <sys/random.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "console.hpp"
#include "dispatcher.hpp"
#include "milestones.hpp"
#include "tcp_node.hpp"
#include "work.hpp"

using namespace std::chrono_literals;
using namespace cluster_demo;

namespace {

struct options {
  double seconds = 10;  // of producing jobs
};

constexpr std::size_t window = 64;  // jobs in flight per worker (4 result batches)
const std::vector<std::string> shm_slots = {"shm-1", "shm-2"};
const std::vector<std::string> tcp_labels = {"tcp.a", "tcp.b"};
const std::string victim_slot = "shm-1";

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(static_cast<std::size_t>(at), ",");
  return (n < 0 ? "-" : "") + digits;
}

std::string fixed(double value, int decimals) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

double seconds_between(clock_type::time_point from, clock_type::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string short_hex(std::uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof text, "%08llx", static_cast<unsigned long long>(value >> 32));
  return text;
}

std::string random_cookie() {
  unsigned char bytes[32];
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) return {};
  std::string hex;
  for (unsigned char b : bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    hex += digits[b >> 4];
    hex += digits[b & 15];
  }
  return hex;
}

// A fresh directory for the run's runtime directories, removed at the end.
struct scratch_dir {
  std::string path;
  scratch_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "troupe-cluster-demo-XXXXXX").string();
    if (::mkdtemp(pattern.data()) != nullptr) path = pattern;
  }
  ~scratch_dir() {
    std::error_code ignored;
    if (!path.empty()) std::filesystem::remove_all(path, ignored);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

// Tells a plain thread when an actor (the supervisor, at the end) has stopped.
struct watch_this {
  troupe::actor_addr who;
};
class stop_watcher : public troupe::actor<troupe::protocol<watch_this>> {
 public:
  explicit stop_watcher(std::promise<void>* stopped) : stopped_(stopped) {}
  void on(const watch_this& w) { (void)monitor(w.who); }
  void on(const troupe::down&) {
    if (!fired_) stopped_->set_value();
    fired_ = true;
  }

 private:
  std::promise<void>* stopped_;
  bool fired_ = false;
};

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Jobs per second over the last second of samples.
class rate_meter {
 public:
  double add(clock_type::time_point at, std::int64_t done) {
    samples_.emplace_back(at, done);
    while (samples_.size() > 2 && at - samples_.front().first > 1s) samples_.pop_front();
    const double span = seconds_between(samples_.front().first, at);
    return span > 0 ? static_cast<double>(done - samples_.front().second) / span : 0.0;
  }

 private:
  std::deque<std::pair<clock_type::time_point, std::int64_t>> samples_;
};

// What the kill and the restart looked like, for the summary.
struct kill_record {
  troupe::node_handle victim;
  clock_type::time_point at;
};

class coordinator_run {
 public:
  coordinator_run(const options& o, console& out) : options_(o), out_(out) {}
  int run();

 private:
  troupe::supervisor_spec supervision(troupe::node& n, const troupe::ref<dispatcher_protocol>& d,
                                      const std::vector<std::string>& tcp_candidates);
  void wait_for_workers(const std::map<std::string, transport>& roster);
  void produce(troupe::node& n, const troupe::supervisor_ref& sup, const troupe::ref<dispatcher_protocol>& d);
  void drain(const troupe::ref<dispatcher_protocol>& d);
  void show_progress(const troupe::ref<dispatcher_protocol>& d, const char* phase);
  void kill_victim(troupe::node& n, const troupe::supervisor_ref& sup);
  int summarize(const report& r, const std::string& tcp_endpoint);
  void check_failure();
  // Ends the run with `why`. What actors report while the nodes then shut
  // down (every worker's down) would only bury the reason: muted.
  [[noreturn]] void fail(const std::string& why);

  options options_;
  console& out_;
  milestones board_;
  rate_meter rate_;
  std::optional<kill_record> kill_;
  clock_type::time_point started_, finished_;
  int workers_expected_ = 0;
};

troupe::supervisor_spec coordinator_run::supervision(troupe::node& n, const troupe::ref<dispatcher_protocol>& d,
                                                     const std::vector<std::string>& tcp_candidates) {
  troupe::supervisor_spec spec;
  spec.strategy = troupe::supervision_strategy::one_for_one;
  spec.max_restarts = 5;
  spec.within = 30s;
  spec.log_events = false;  // reported below, in step with the progress line
  spec.on_event = [this](const troupe::supervisor_event& e) {
    using kind = troupe::supervisor_event::kind;
    if (e.what == kind::restarted) {
      out_.event("supervisor: restarting " + e.child_id + " (" +
                 (e.reason.text().empty() ? e.reason.to_string() : e.reason.text()) + ")");
      board_.update([&](milestones::record& r) { r.restarts.push_back(e.child_id); });
    } else if (e.what == kind::escalated) {
      board_.update(
          [&](milestones::record& r) { r.failure = "the supervisor gave up (" + e.reason.to_string() + ")"; });
    } else if (e.what == kind::not_restarted) {
      out_.event("supervisor: " + e.child_id + " ended and is not restarted (" + e.reason.to_string() + ")");
    }
  };

  // The in-process worker: an ordinary supervised actor.
  spec.children.push_back(troupe::child<worker>("local", d, std::string("local")));

  // A node per shared-memory slot; each (re)start of the process runs deploy,
  // which starts the node's workers there (remote spawn) and so hands the
  // dispatcher their new refs (they announce themselves).
  for (const std::string& slot : shm_slots) {
    troupe::node_spawn_options where;
    where.name = "worker-" + slot;
    spec.children.push_back(
        troupe::node_child(n, slot, where, [this, d, slot](troupe::node& self, const troupe::node_handle& h) {
          bool again = false;
          board_.update([&](milestones::record& r) {
            auto& starts = r.deployments[slot];
            again = !starts.empty();
            starts.push_back({h.pid(), h.incarnation(), clock_type::now()});
          });
          for (const char* suffix : {".a", ".b"}) {
            auto w = self.spawn<worker>(troupe::on(h), d, slot + suffix);
            // Failing the keeper makes the supervisor try the node again.
            if (!w) throw troupe::troupe_error(w.error());
          }
          out_.event("node " + h.name() + (again ? " is back" : " is up") + ": pid " + std::to_string(h.pid()) +
                     ", incarnation " + short_hex(h.incarnation()) + "..., workers " + slot + ".a and " + slot +
                     ".b over shared memory");
        }));
  }

  // The TCP node's workers, each kept running on the first candidate node
  // that answers (there is one candidate today).
  for (const std::string& label : tcp_labels) {
    spec.children.push_back(troupe::remote_child<worker>(n, label, tcp_candidates, d, label));
  }
  return spec;
}

void coordinator_run::fail(const std::string& why) {
  out_.end_progress();
  out_.mute_events();
  throw failure(why);
}

void coordinator_run::check_failure() {
  const milestones::record r = board_.snapshot();
  if (!r.failure.empty()) fail(r.failure);
}

void coordinator_run::wait_for_workers(const std::map<std::string, transport>& roster) {
  const auto deadline = clock_type::now() + 30s;
  const bool up = board_.wait_until(
      deadline, [&](const milestones::record& r) { return r.joined.size() == roster.size() || !r.failure.empty(); });
  check_failure();
  if (!up) {
    std::string missing;
    const milestones::record r = board_.snapshot();
    for (const auto& [label, via] : roster) {
      if (!r.joined.contains(label)) missing += (missing.empty() ? "" : ", ") + label;
    }
    fail("workers did not start within 30 s: " + missing);
  }
}

void coordinator_run::show_progress(const troupe::ref<dispatcher_protocol>& d, const char* phase) {
  auto p = d.ask(get_progress{}, 5s).try_get();
  if (!p) fail("the dispatcher did not answer: " + p.error().to_string());
  const double per_second = rate_.add(clock_type::now(), p->done);
  const milestones::record r = board_.snapshot();
  out_.progress(std::string(phase) + "  jobs done " + with_commas(p->done) + "  " +
                with_commas(std::llround(per_second)) + "/s  in flight " + std::to_string(p->in_flight) + "  workers " +
                std::to_string(p->live_workers) + "/" + std::to_string(workers_expected_) + "  restarts " +
                std::to_string(r.restarts.size()) + "  re-sent " + std::to_string(p->resent));
}

void coordinator_run::kill_victim(troupe::node& n, const troupe::supervisor_ref& sup) {
  auto keeper = sup.child<troupe::node_keeper_protocol>(victim_slot);
  auto victim = keeper.ask(troupe::current_node{}, 5s).try_get();
  if (!victim || !*victim) {
    fail("could not find node " + victim_slot +
         " to kill: " + (victim ? std::string("no node") : victim.error().to_string()));
  }
  out_.event("SIGKILL -> node " + victim->name() + " (pid " + std::to_string(victim->pid()) +
             "), with the jobs it holds");
  kill_ = kill_record{*victim, clock_type::now()};
  n.kill_node(*victim);
}

void coordinator_run::produce(troupe::node& n, const troupe::supervisor_ref& sup,
                              const troupe::ref<dispatcher_protocol>& d) {
  const auto period = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(options_.seconds));
  started_ = clock_type::now();
  (void)rate_.add(started_, 0);
  const auto end = started_ + period;
  const auto kill_at = started_ + period * 45 / 100;
  (void)d.tell(start_producing{});
  out_.event("producing jobs for " + fixed(options_.seconds, 0) + " s; node " + victim_slot + " gets SIGKILL " +
             fixed(options_.seconds * 0.45, 1) + " s in");
  // A terminal gets a smooth line; a log a line a second.
  const auto tick = out_.tty() ? 200ms : 1000ms;
  auto next = started_ + tick;
  while (clock_type::now() < end) {
    auto wake = std::min(next, end);
    if (!kill_) wake = std::min(wake, kill_at);
    // Paces the progress line; wakes early only if the supervisor gives up.
    board_.wait_until(wake, [](const milestones::record& r) { return !r.failure.empty(); });
    check_failure();
    if (!kill_ && clock_type::now() >= kill_at) kill_victim(n, sup);
    if (clock_type::now() >= next) {
      show_progress(d, "producing");
      next += tick;
    }
  }
  (void)d.tell(stop_producing{});
}

void coordinator_run::drain(const troupe::ref<dispatcher_protocol>& d) {
  const auto deadline = clock_type::now() + 20s;
  const auto tick = out_.tty() ? 200ms : 1000ms;
  bool done = false;
  while (!done && clock_type::now() < deadline) {
    done = board_.wait_until(std::min(clock_type::now() + tick, deadline),
                             [](const milestones::record& r) { return r.finished || !r.failure.empty(); });
    check_failure();
    show_progress(d, done ? "done     " : "draining ");
  }
  out_.end_progress();
  if (!done) fail("the last jobs did not come back within 20 s of the end of production");
  if (!kill_) fail("the kill did not happen");
  finished_ = clock_type::now();
  // The restarted node's workers must be back at work (in a short run they
  // may still be starting when the last job returns).
  const bool back = board_.wait_until(kill_->at + 30s, [](const milestones::record& r) {
    for (const char* suffix : {".a", ".b"}) {
      auto it = r.joins.find(victim_slot + suffix);
      if (it == r.joins.end() || it->second.size() < 2) return false;
    }
    return true;
  });
  if (!back) fail("node " + victim_slot + "'s workers did not rejoin within 30 s of the kill");
}

int coordinator_run::run() {
  scratch_dir scratch;  // removed last: after the nodes that live in it
  if (scratch.path.empty()) fail("cannot create a temporary directory");
  const std::string cookie = random_cookie();
  if (cookie.empty()) fail("no randomness for the cookie (getrandom)");

  // Started first, while this process has one thread: it forks.
  tcp_worker_process tcp;
  if (auto e = tcp.start("worker-tcp", scratch.path + "/tcp")) fail("cannot start the TCP node: " + *e);

  std::promise<void> tree_stopped;  // outlives the node: its shutdown may still report to it

  troupe::node_config cfg;
  cfg.name = "coordinator";
  cfg.runtime_dir = scratch.path + "/shm";  // the shared-memory children join here
  cfg.listen = "tcp://127.0.0.1:0";
  cfg.cookie = cookie;
  // The coordinator founds a cluster (no seeds: it is the first member); the
  // TCP node joins it with the coordinator as its seed.
  cfg.cluster.provider = troupe::membership_provider_kind::seeds;
  cfg.cluster.gossip_interval = 200ms;
  troupe::node n(cfg);  // destroyed before `tcp` stops: it says goodbye first
  out_.event("coordinator: node '" + n.name() + "', pid " + std::to_string(::getpid()) + ", " +
             std::to_string(n.worker_count()) + " worker threads, listening on " + n.endpoint());

  const auto up = tcp.hand_over(cookie, n.endpoint(), clock_type::now() + 15s);
  if (!up.error.empty()) fail(up.error);
  auto tcp_candidates = reach_tcp_node(n, up.endpoint);
  if (!tcp_candidates) fail("the TCP node at " + up.endpoint + " did not join: " + tcp_candidates.error().to_string());
  out_.event("node worker-tcp: pid " + std::to_string(tcp.pid()) +
             ", joined the cluster through its seed, linked over TCP at " + up.endpoint +
             " (its own runtime directory: no shared memory)");

  std::map<std::string, transport> roster = {{"local", transport::in_process}};
  for (const std::string& slot : shm_slots) {
    roster[slot + ".a"] = transport::shared_memory;
    roster[slot + ".b"] = transport::shared_memory;
  }
  for (const std::string& label : tcp_labels) roster[label] = transport::tcp;
  workers_expected_ = static_cast<int>(roster.size());

  auto d = n.spawn<dispatcher>(roster, window, &out_, &board_);
  auto sup = troupe::spawn_supervisor(n, supervision(n, d, *tcp_candidates));
  wait_for_workers(roster);
  out_.event(std::to_string(roster.size()) + " workers up: 1 in-process, " + std::to_string(2 * shm_slots.size()) +
             " in " + std::to_string(shm_slots.size()) + " child processes over shared memory, " +
             std::to_string(tcp_labels.size()) + " on a node over TCP");

  produce(n, sup, d);
  drain(d);
  auto r = d.ask(get_report{}, 10s).try_get();
  if (!r) fail("no report from the dispatcher: " + r.error().to_string());
  const int status = summarize(*r, up.endpoint);

  // Stop the tree before the node, in order: the TCP workers' keepers stop
  // them while the TCP node is still there, and no restart races the shutdown.
  out_.mute_events();
  n.spawn<stop_watcher>(&tree_stopped).tell(watch_this{troupe::actor_addr(sup.self())});
  (void)sup.self().tell(troupe::shutdown_supervisor{});
  if (tree_stopped.get_future().wait_for(15s) != std::future_status::ready) {
    out_.print("(the supervision tree did not stop within 15 s; the node stops it)\n");
  }
  // The nodes' goodbyes may show up on stderr as the runtime's log lines.
  out_.print("stopping the nodes\n");
  return status;
}

int coordinator_run::summarize(const report& r, const std::string& tcp_endpoint) {
  const auto local_start = clock_type::now();
  const word_counts local = count_locally(r.totals.issued);
  const double local_seconds = seconds_between(local_start, clock_type::now());

  std::int64_t words = 0, local_words = 0;
  for (const auto& [word, n] : r.counts) words += n;
  for (const auto& [word, n] : local) local_words += n;
  const double run_seconds = seconds_between(started_, finished_);
  const milestones::record m = board_.snapshot();

  std::string text = "\nsummary\n";
  text += "  jobs        " + with_commas(r.totals.done) + " of " + with_commas(r.totals.issued) + " in " +
          fixed(run_seconds, 1) + " s (" + with_commas(std::llround(static_cast<double>(r.totals.done) / run_seconds)) +
          "/s): " + with_commas(r.totals.resent) + " re-sent after the kill, " + with_commas(r.totals.duplicates) +
          " duplicate result(s) dropped\n";
  char row[160];
  std::snprintf(row, sizeof row, "  %-22s %8s %12s %12s %12s\n", "transport", "workers", "jobs done", "messages",
                "msgs/s");
  text += row;
  for (std::size_t t = 0; t < transport_count; ++t) {
    const transport_stats& stats = r.per_transport[t];
    const std::int64_t messages = stats.jobs_sent + stats.results;
    std::string name = to_string(static_cast<transport>(t));
    if (static_cast<transport>(t) == transport::tcp) name += " (loopback)";
    std::snprintf(row, sizeof row, "  %-22s %8d %12s %12s %12s\n", name.c_str(), stats.workers,
                  with_commas(stats.jobs_done).c_str(), with_commas(messages).c_str(),
                  with_commas(std::llround(static_cast<double>(messages) / run_seconds)).c_str());
    text += row;
  }
  text += "  (messages: jobs sent plus result batches received by the coordinator; TCP node at " + tcp_endpoint + ")\n";

  std::string kill_line = "none";
  std::vector<milestones::deployment> starts;
  if (auto it = m.deployments.find(victim_slot); it != m.deployments.end()) starts = it->second;
  if (kill_ && starts.size() >= 2) {
    clock_type::time_point rejoined = kill_->at;
    for (const char* suffix : {".a", ".b"}) rejoined = std::max(rejoined, m.joins.at(victim_slot + suffix).back());
    kill_line = "SIGKILL to " + kill_->victim.name() + " (pid " + std::to_string(kill_->victim.pid()) + ") " +
                fixed(seconds_between(started_, kill_->at), 1) + " s in; restarted as pid " +
                std::to_string(starts.back().pid) + " (new incarnation) after " +
                fixed(seconds_between(kill_->at, starts.back().at) * 1000, 0) + " ms, its workers at work after " +
                fixed(seconds_between(kill_->at, rejoined) * 1000, 0) + " ms";
  }
  text += "  kill        " + kill_line + "\n";
  std::string restarted;
  for (const std::string& id : m.restarts) restarted += (restarted.empty() ? " (" : ", ") + id;
  text += "  restarts    " + std::to_string(m.restarts.size()) + " by the supervisor" +
          (restarted.empty() ? "" : restarted + ")") + "; " + std::to_string(r.totals.rejoins) + " workers rejoined\n";
  text += "  words       " + with_commas(words) + " counted (" + std::to_string(r.counts.size()) +
          " distinct); local single-threaded count: " + with_commas(local_words) + " in " + fixed(local_seconds, 2) +
          " s\n";

  std::vector<std::string> problems;
  if (r.counts != local) {
    std::string example;
    for (const auto& [word, n] : local) {
      auto there = r.counts.find(word);
      const std::int64_t counted = there == r.counts.end() ? 0 : there->second;
      if (counted != n) {
        example = " (e.g. '" + word + "': " + with_commas(counted) + ", locally " + with_commas(n) + ")";
        break;
      }
    }
    problems.push_back("the word counts differ from the local count" + example);
  }
  if (r.totals.done != r.totals.issued) problems.push_back("not every job has a result");
  for (std::size_t t = 0; t < transport_count; ++t) {
    if (r.per_transport[t].jobs_done == 0) {
      problems.push_back(std::string("no job was done over ") + to_string(static_cast<transport>(t)));
    }
  }
  if (!kill_ || starts.size() < 2) problems.push_back("the killed node was not restarted");
  if (problems.empty()) {
    text += "result: exact (matches local computation)\n";
  } else {
    text += "result: FAILED:";
    for (const std::string& p : problems) text += " " + p + ";";
    text += "\n";
  }
  out_.print(text);
  return problems.empty() ? 0 : 1;
}

int usage(const char* why) {
  if (why != nullptr) std::cerr << "cluster_demo: " << why << '\n';
  std::cerr << "usage: cluster_demo [--quick | --seconds S]\n"
               "  --quick       3 s of work (for tests)\n"
               "  --seconds S   seconds of producing jobs, 2 to 60 (default 10)\n";
  return 2;
}

int main_for(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "--tcp-node") {
    if (args.size() != 3) return usage("--tcp-node NAME RUNTIME_DIR is internal: cluster_demo starts it");
    return tcp_node_main(args[1], args[2]);
  }
  options o;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--quick") {
      o.seconds = 3;
    } else if (args[i] == "--seconds" && i + 1 < args.size()) {
      o.seconds = std::atof(args[++i].c_str());
      if (!(o.seconds >= 2 && o.seconds <= 60)) return usage("--seconds takes 2 to 60");
    } else if (args[i] == "--help" || args[i] == "-h") {
      return usage(nullptr);
    } else {
      return usage(("unknown argument '" + args[i] + "'").c_str());
    }
  }
  console out(::isatty(STDOUT_FILENO) == 1);
  out.print(
      "troupe cluster demo: word counting on 7 workers in 4 processes, linked by shared memory and TCP;\n"
      "one worker process is killed midway and restarted; the result is checked against a local count\n\n");
  try {
    coordinator_run run(o, out);
    const int status = run.run();
    out.print("took " + fixed(out.elapsed(), 1) + " s\n");
    return status;
  } catch (const std::exception& e) {
    out.end_progress();
    out.print("result: FAILED: " + std::string(e.what()) + "\n");
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] { return main_for(argc, argv); });
}
