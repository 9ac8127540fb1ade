// reliable: a producer hands out jobs over a reliable channel to workers in two
// child processes that pull work as they have room. One worker process is
// killed (SIGKILL) half way; its unconfirmed jobs go to the other, and the sum
// of the squares of 1..N still comes out exact.
//
//   reliable [jobs]
//
// The same executable is the producer and the workers' processes:
// troupe::run() makes a process that spawn_node() started into a node that
// serves the remote spawn of `worker`.
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct job {
  std::int64_t n = 0;
};
struct result {
  std::int64_t n = 0;
  std::int64_t square = 0;
  std::int64_t pid = 0;
};
using results_protocol = troupe::protocol<result>;
using jobs = troupe::ref<troupe::producer_controller_protocol<job>>;

// In a child process: squares each job, reports it, then confirms it.
struct worker : troupe::actor<troupe::protocol<troupe::delivery<job>>> {
  worker(jobs from, troupe::ref<results_protocol> to) : source(std::move(from)), results(std::move(to)) {}
  void on_start() { (void)troupe::spawn_consumer<job>(system(), self(), source, {.window = 50}); }
  void on(const troupe::delivery<job>& d) {
    (void)results.tell(result{d.message.n, d.message.n * d.message.n, ::getpid()});
    (void)d.confirm();
  }
  jobs source;
  troupe::ref<results_protocol> results;
};
TROUPE_REGISTER_ACTOR(worker, jobs, troupe::ref<results_protocol>);

// Here: jobs 1..total, as fast as the channel's demand allows.
struct dispatcher : troupe::actor<troupe::protocol<troupe::demand<job>>> {
  explicit dispatcher(std::int64_t count) : total(count) {}
  void on(const troupe::demand<job>& d) {
    out.update(d);
    while (out.credit() > 0 && next <= total) (void)out.send(job{next++});
  }
  troupe::producer_window<job> out;
  std::int64_t total;
  std::int64_t next = 1;
};

// Adds up the results, once per job (a job handled twice, across the kill, counts once).
class ledger {
 public:
  void add(const result& r) {
    std::lock_guard lock(mutex_);
    ++reports_;
    if (seen_.insert(r.n).second) sum_ += r.square;
    changed_.notify_all();
  }
  bool wait_for(std::size_t distinct, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return seen_.size() >= distinct; });
  }
  std::int64_t sum() {
    std::lock_guard lock(mutex_);
    return sum_;
  }
  std::size_t reports() {
    std::lock_guard lock(mutex_);
    return reports_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::int64_t> seen_;
  std::int64_t sum_ = 0;
  std::size_t reports_ = 0;
};

struct accountant : troupe::actor<results_protocol> {
  explicit accountant(ledger* l) : book(l) {}
  void on(const result& r) { book->add(r); }
  ledger* book;
};

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    const std::int64_t total = argc > 1 ? std::atoll(argv[1]) : 20000;
    if (total <= 0) {
      std::cerr << "usage: reliable [jobs]\n";
      return 2;
    }
    ledger book;  // outlives the node: its accountant writes here
    troupe::node_config cfg;
    cfg.name = "reliable-" + std::to_string(::getpid());
    troupe::node n(cfg);
    auto results = n.spawn<accountant>(&book);
    auto channel = troupe::spawn_producer<job>(n, n.spawn<dispatcher>(total), {.window = 50, .buffer = 100});
    auto a = n.spawn_node("worker-a");
    auto b = n.spawn_node("worker-b");
    if (!a || !b || !n.spawn<worker>(troupe::on(*a), channel, results) ||
        !n.spawn<worker>(troupe::on(*b), channel, results)) {
      std::cerr << "could not start the workers\n";
      return 1;
    }
    if (!book.wait_for(static_cast<std::size_t>(total / 2), 60s)) return 1;
    std::cout << "killing worker-b (pid " << b->pid() << ") half way\n";
    n.kill_node(*b);
    if (!book.wait_for(static_cast<std::size_t>(total), 60s)) {
      std::cerr << "not every job came back\n";
      return 1;
    }
    std::int64_t expected = 0;
    for (std::int64_t i = 1; i <= total; ++i) expected += i * i;
    const troupe::producer_stats s = channel.ask(troupe::producer_stats_request{}, 5s).get();
    std::cout << total << " jobs, " << book.reports() << " results ("
              << book.reports() - static_cast<std::size_t>(total) << " handled twice across the kill), " << s.requeued
              << " jobs handed to the other worker\n";
    std::cout << "sum of squares: " << book.sum() << (book.sum() == expected ? " (exact)" : " (WRONG)") << "\n";
    return book.sum() == expected ? 0 : 1;
  });
}
