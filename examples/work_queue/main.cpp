// work_queue: a producer puts jobs in a durable queue (an SQLite file); workers
// in two child processes take them, compute, report and delete; one worker is
// killed with SIGKILL mid-run. Its leased jobs come back when their
// visibility timeout ends and the other worker does them: the sum over all
// jobs is still exact.
//
//   work_queue [--quick] [jobs]
//
// At least once, made exact: a worker reports a result (an ask the collector
// acknowledges) before it deletes the job, so a job is never lost; a job done
// twice (its worker died between report and delete) is reported twice, and the
// collector keeps one result per job, counting the repeats.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

#include <troupe/durable/queue.hpp>
#include <troupe/troupe.hpp>

using namespace std::chrono_literals;
namespace durable = troupe::durable;

// The work: any pure function of the job number.
std::int64_t compute(std::int64_t job) { return (job * job) % 1'000'003 + job; }

struct result {
  std::int64_t job = 0;
  std::int64_t value = 0;
  std::int64_t worker_pid = 0;
  using reply = bool;
};
using collector_protocol = troupe::protocol<result>;

// What the collector saw, for the main thread (which waits on it).
struct tally {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::int64_t, std::int64_t> values;  // one per job
  std::map<std::int64_t, std::int64_t> by_worker;
  std::int64_t repeats = 0;
};

struct collector : troupe::actor<collector_protocol> {
  explicit collector(tally* t) : out(t) {}
  bool on(const result& r) {
    std::lock_guard lock(out->mutex);
    if (!out->values.emplace(r.job, r.value).second) ++out->repeats;
    ++out->by_worker[r.worker_pid];
    out->changed.notify_all();
    return true;
  }
  tally* out;
};

// A worker (in a child process): receive a few jobs, and for each report the
// result, then delete the job once the report is acknowledged. Never blocks:
// each step is an ask whose reply continues the loop.
struct next_batch {};
struct worker : troupe::actor<troupe::protocol<next_batch>> {
  worker(troupe::ref<durable::queue_protocol> q, troupe::ref<collector_protocol> c)
      : queue(std::move(q)), results(std::move(c)) {}
  void on(next_batch /*unused*/) {
    queue.ask(durable::receive_messages{.max_messages = 4, .visibility_timeout = 1s, .wait = 1s}, 5s)
        .then([this](const durable::received& got) { handle(got); }, [this](const troupe::error&) { again(); });
  }
  void handle(const durable::received& got) {
    if (got.messages.empty()) return again();
    for (const auto& m : got.messages) {
      const std::int64_t job = std::stoll(m.body);
      results.ask(result{job, compute(job), ::getpid()}, 5s)
          .then(
              [this, receipt = m.receipt](bool) {
                queue.ask(durable::delete_message{receipt}, 5s)
                    .then([](const durable::queue_status&) {}, [](const troupe::error&) {});
              },
              [](const troupe::error&) {});  // not acknowledged: the job comes back, another worker does it
    }
    again();
  }
  void again() { (void)self().tell(next_batch{}); }
  troupe::ref<durable::queue_protocol> queue;
  troupe::ref<collector_protocol> results;
};

int produce_and_collect(std::int64_t jobs) {
  troupe::node_config cfg;
  cfg.name = "work-" + std::to_string(::getpid());
  troupe::node n(cfg);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / cfg.name;
  std::filesystem::create_directories(dir);

  durable::queue_config qc;
  qc.file = (dir / "jobs.db").string();
  auto queue = durable::spawn_queue(n, qc).value();
  tally seen;
  n.publish("jobs", queue);
  n.publish("results", n.spawn<collector>(&seen));

  for (std::int64_t job = 0; job < jobs; ++job) {
    const durable::sent s = queue.ask(durable::send_message{.body = std::to_string(job)}, 10s).get();
    if (!s.status.ok()) {
      std::cerr << "work_queue: send failed: " << s.status.text << '\n';
      return 1;
    }
  }
  std::cout << jobs << " jobs in " << qc.file << '\n';
  auto doomed = n.spawn_node(cfg.name + "-a", {"worker", cfg.name}).value();
  auto survivor = n.spawn_node(cfg.name + "-b", {"worker", cfg.name}).value();

  // Kill one worker mid-run: once it has done jobs / 8, or half of all are done.
  std::unique_lock lock(seen.mutex);
  seen.changed.wait_for(lock, 30s, [&] {
    return seen.by_worker[doomed.pid()] >= jobs / 8 || static_cast<std::int64_t>(seen.values.size()) >= jobs / 2;
  });
  ::kill(doomed.pid(), SIGKILL);
  std::cout << "killed worker " << doomed.pid() << " (-9) after " << seen.by_worker[doomed.pid()] << " jobs\n";
  const bool all =
      seen.changed.wait_for(lock, 60s, [&] { return static_cast<std::int64_t>(seen.values.size()) == jobs; });
  lock.unlock();
  std::int64_t expected = 0;
  for (std::int64_t job = 0; job < jobs; ++job) expected += compute(job);
  std::int64_t sum = 0;
  lock.lock();
  for (const auto& [job, value] : seen.values) sum += value;
  std::cout << seen.values.size() << " distinct jobs done (" << seen.repeats << " done twice: at least once)"
            << ", by worker " << doomed.pid() << ": " << seen.by_worker[doomed.pid()] << ", by worker "
            << survivor.pid() << ": " << seen.by_worker[survivor.pid()] << '\n';
  std::cout << "sum " << sum << ", computed locally " << expected << '\n';
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  if (all && sum == expected) {
    std::cout << "result: exact (matches local computation)\n";
    return 0;
  }
  std::cout << "result: WRONG\n";
  return 1;
}

int main(int argc, char** argv) {
  std::int64_t jobs = 2'000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      jobs = 400;
    } else if (std::atoll(argv[i]) > 0) {
      jobs = std::atoll(argv[i]);
    }
  }
  return troupe::run(
      argc, argv, [&] { return produce_and_collect(jobs); },
      [&](troupe::node& n) {
        if (argc == 3 && std::strcmp(argv[1], "worker") == 0) {
          const std::string parent = argv[2];
          auto q = n.lookup<durable::queue_protocol>("troupe://" + parent + "/jobs").value();
          auto c = n.lookup<collector_protocol>("troupe://" + parent + "/results").value();
          (void)n.spawn<worker>(q, c).tell(next_batch{});
        }
      });
}
