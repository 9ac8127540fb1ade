// What every role of the cluster demo shares: the messages, the worker actor,
// and the work itself (counting words in a text that each job id determines).
//
// A job's text is a pure function of its id, so the coordinator keeps no copy
// of a job it sent: it re-makes the text to re-send a job, and re-makes all of
// them at the end for the single-threaded count the result is checked against.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <troupe/troupe.hpp>

namespace cluster_demo {

// How the coordinator reaches a worker.
enum class transport : std::uint8_t { in_process, shared_memory, tcp };
inline constexpr std::size_t transport_count = 3;
const char* to_string(transport t) noexcept;

// std::map, not unordered_map: the keys arrive from other processes, and an
// ordered map cannot be hash-flooded (docs/deployment.md, Known limits).
using word_counts = std::map<std::string, std::int64_t, std::less<>>;

std::string job_text(std::int64_t id);
void count_words(std::string_view text, word_counts& into);
// The check: jobs 1..last counted here, on one thread, apart from the workers'
// code (a hash table: the ordered map would make the check twice as slow).
word_counts count_locally(std::int64_t last);

// --- messages -----------------------------------------------------------------------

struct job {
  std::int64_t id = 0;
  std::string text;
};
struct flush_results {};  // a worker's own timer: send what it has
using worker_protocol = troupe::protocol<job, flush_results>;

struct job_result {
  std::int64_t id = 0;
  word_counts counts;
};
// A worker reports its results in batches (fewer, larger messages). A job
// whose result is still in a batch when its worker dies is lost with it, and
// the dispatcher sends that job again.
struct results {
  std::string worker;  // the worker's label, e.g. "shm-1.b"
  std::vector<job_result> batch;
};
// A worker announces itself when it starts, and again after every restart
// (a new process gives it a new ref).
struct worker_joined {
  std::string label;
  troupe::ref<worker_protocol> worker;
};

// From the coordinator's main thread to its dispatcher.
struct start_producing {};
struct stop_producing {};
struct progress {
  std::int64_t issued = 0;      // distinct job ids handed out so far
  std::int64_t done = 0;        // distinct jobs with a result
  std::int64_t in_flight = 0;   // sent, no result yet
  std::int64_t resent = 0;      // sent again because their worker died
  std::int64_t duplicates = 0;  // results for a job that already had one: dropped
  std::int32_t live_workers = 0;
  std::int32_t rejoins = 0;  // workers that joined again after a restart
  bool finished = false;     // stopped producing and every job has its result
};
struct get_progress {
  using reply = progress;
};
struct transport_stats {
  std::int32_t workers = 0;    // labels that ever joined over this transport
  std::int64_t jobs_sent = 0;  // job messages, re-sends included
  std::int64_t results = 0;    // result messages (batches)
  std::int64_t jobs_done = 0;  // job results accepted (the first per job id)
};
struct report {
  progress totals;
  std::array<transport_stats, transport_count> per_transport{};
  word_counts counts;
};
struct get_report {
  using reply = report;
};

// Everything in it crosses processes (workers send results and joins), so
// every message and reply type is a plain serializable struct.
using dispatcher_protocol =
    troupe::protocol<results, worker_joined, start_producing, stop_producing, get_progress, get_report>;

// --- the worker -------------------------------------------------------------------------

// Counts the words of each job and sends the counts to the dispatcher, in
// batches of up to `batch_size`, or after `linger` at the latest. The same
// class runs in the coordinator's process, in the shared-memory children and
// on the TCP node (remote spawn: registered in work.cpp).
class worker : public troupe::actor<worker_protocol> {
 public:
  static constexpr std::size_t batch_size = 16;
  static constexpr std::chrono::milliseconds linger{2};

  worker(troupe::ref<dispatcher_protocol> dispatcher, std::string label)
      : dispatcher_(std::move(dispatcher)), label_(std::move(label)) {}
  void on_start() { (void)dispatcher_.tell(worker_joined{label_, self()}); }
  void on(const job& j) {
    job_result& r = pending_.emplace_back();
    r.id = j.id;
    count_words(j.text, r.counts);
    if (pending_.size() >= batch_size) {
      flush();
    } else if (!flush_scheduled_) {
      flush_scheduled_ = true;
      system().send_after(self(), linger, flush_results{});
    }
  }
  void on(flush_results) {
    flush_scheduled_ = false;
    flush();
  }

 private:
  void flush() {
    if (pending_.empty()) return;
    // A failed send (the coordinator is gone) needs no handling here: the
    // coordinator sends again every job it has no result for.
    (void)dispatcher_.tell(results{label_, std::move(pending_)});
    pending_.clear();
  }

  troupe::ref<dispatcher_protocol> dispatcher_;
  std::string label_;
  std::vector<job_result> pending_;
  bool flush_scheduled_ = false;
};

}  // namespace cluster_demo
