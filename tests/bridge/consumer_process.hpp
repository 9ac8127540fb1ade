// consumer_process: the parent's side of bridge_consumer (bridge_consumer_main.cpp),
// the consuming process that bridge_kill_*_test.cpp kill -9 mid-stream. Owns:
// starting it with pipes on stdin and stdout, reading its "<id>
// <delivery_count> <partition> <offset>" lines with deadlines, kill -9,
// waiting until it is stuck (its handler blocked on the full pipe), the
// graceful end (stdin closed, then its "stats ..." line), and the accounting
// of runs one after the other (every id, what came again). May use:
// child_process.hpp, /proc, GoogleTest.
//
//   consumer_process first({"amqp", port, queue, "16"});
//   ASSERT_TRUE(first.read_until(500, 30s));  // then stops reading: its handler blocks, its window fills
//   first.kill();                             // SIGKILL, then the lines still in the pipe
//
// Its stdout pipe is one page: a consumer the parent stops reading is held
// within a page of lines of where the parent stopped (the handler blocks in
// write), so "mid-stream" is a fact, not a race. Its stderr is the test's.
//
// Thread safety: one owner, the test's main thread (the child's
// PR_SET_PDEATHSIG is tied to the thread that starts it).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/child_process.hpp"
#include "support/unique_fd.hpp"

namespace troupe::test_support {

// One handled message, as the consumer wrote it.
struct handled_line {
  std::int64_t id = -1;
  std::uint32_t delivery_count = 0;
  std::int32_t partition = -1;  // Kafka's; -1 elsewhere
  std::int64_t offset = -1;     // Kafka's; -1 elsewhere
};

// The consumer's source_stats after its graceful end.
struct consumer_stats {
  std::uint64_t delivered = 0;
  std::uint64_t acknowledged = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t retried = 0;
  std::uint64_t dead_lettered = 0;
};

class consumer_process {
 public:
  // The bytes of the stdout pipe: one page (the kernel's least).
  static constexpr int pipe_bytes = 4096;

  explicit consumer_process(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
    unique_fd out_read(fds[0]), out_write(fds[1]);
    if (::fcntl(out_write.get(), F_SETPIPE_SZ, pipe_bytes) < 0) throw_errno("F_SETPIPE_SZ");
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
    unique_fd in_read(fds[0]), in_write(fds[1]);
    std::vector<std::string> argv{TROUPE_BRIDGE_CONSUMER};
    argv.insert(argv.end(), args.begin(), args.end());
    child_options options;
    options.stdin_fd = in_read.get();
    options.stdout_fd = out_write.get();
    options.close_inherited_fds = true;
    pid_ = start_child(argv, environment_with({}), options);
    out_ = std::move(out_read);
    in_ = std::move(in_write);
  }
  consumer_process(const consumer_process&) = delete;
  consumer_process& operator=(const consumer_process&) = delete;
  ~consumer_process() {
    if (pid_ > 0) {
      try {
        (void)kill_child(pid_);
      } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; PR_SET_PDEATHSIG ends it with the test anyway
      }
    }
  }

  // Reads until `done(lines())` holds, at most `timeout`; false at the
  // deadline or at end of file before it held.
  bool read_until(const std::function<bool(const std::vector<handled_line>&)>& done,
                  std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(lines_)) {
      if (!read_some(deadline)) return false;
    }
    return true;
  }
  bool read_until(std::size_t count, std::chrono::milliseconds timeout) {
    return read_until([count](const std::vector<handled_line>& l) { return l.size() >= count; }, timeout);
  }

  // Re-reads /proc (nothing signals it), at most `timeout`, until a thread of
  // the consumer is blocked in write(2) on its stdout: the test stopped
  // reading, the pipe is full, and the handler of a delivered message waits —
  // that message is not acknowledged, nor are the others of the window behind it.
  bool wait_until_stuck(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string writing_stdout = std::to_string(SYS_write) + " 0x1 ";
    const std::filesystem::path tasks = "/proc/" + std::to_string(pid_) + "/task";
    for (;;) {
      std::error_code ignored;  // a thread may end while it is listed
      for (const auto& task : std::filesystem::directory_iterator(tasks, ignored)) {
        std::ifstream in(task.path() / "syscall");
        std::string line;
        if (std::getline(in, line) && line.rfind(writing_stdout, 0) == 0) return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a re-read interval, not a guess at when
    }
  }

  // kill -9 and reap; then reads what the pipe still holds (lines written
  // before the kill: messages this process handled).
  void kill() {
    const int status = kill_child(pid_);
    pid_ = -1;
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_wait_status(status);
    read_to_end(std::chrono::seconds(10));
  }

  // The graceful end: closes stdin (the consumer drains and exits), reads to
  // end of file, and reaps it. Its exit status, as describe_wait_status words.
  std::string finish(std::chrono::milliseconds timeout) {
    in_.reset();
    read_to_end(timeout);
    std::optional<int> status = wait_for_exit(pid_, timeout);
    if (!status) {
      status = kill_child(pid_);
      pid_ = -1;
      return "still running " + std::to_string(timeout.count()) +
             " ms after stdin closed (killed: " + describe_wait_status(*status) + ")";
    }
    pid_ = -1;
    return describe_wait_status(*status);
  }

  [[nodiscard]] const std::vector<handled_line>& lines() const noexcept { return lines_; }
  [[nodiscard]] const std::optional<consumer_stats>& stats() const noexcept { return stats_; }

 private:
  // One poll and read, bounded by `deadline`; false at the deadline or end of file.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    if (!out_) return false;
    pollfd readable{out_.get(), POLLIN, 0};
    const int ready = ::poll(&readable, 1, poll_timeout_until(deadline));
    if (ready < 0 && errno == EINTR) return true;
    if (ready < 0) throw_errno("poll(consumer stdout)");
    if (ready == 0) return false;
    char buffer[pipe_bytes];
    const ssize_t n = ::read(out_.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) return true;
    if (n < 0) throw_errno("read(consumer stdout)");
    if (n == 0) {
      out_.reset();
      return false;
    }
    partial_.append(buffer, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t end = partial_.find('\n'); end != std::string::npos; end = partial_.find('\n', start)) {
      parse(partial_.substr(start, end - start));
      start = end + 1;
    }
    partial_.erase(0, start);
    return true;
  }

  void read_to_end(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (read_some(deadline)) {
    }
    EXPECT_FALSE(out_) << "the consumer's stdout did not end within " << timeout.count() << " ms";
    EXPECT_TRUE(partial_.empty()) << "a torn last line: " << partial_;
  }

  void parse(const std::string& line) {
    std::istringstream in(line);
    std::string word;
    in >> word;
    if (word == "stats") {
      consumer_stats s;
      in >> s.delivered >> s.acknowledged >> s.redelivered >> s.retried >> s.dead_lettered;
      if (!in) throw std::runtime_error("bridge_consumer wrote a bad stats line: " + line);
      stats_ = s;
      return;
    }
    handled_line h;
    std::istringstream whole(line);
    whole >> h.id >> h.delivery_count >> h.partition >> h.offset;
    if (!whole)
      throw std::runtime_error("bridge_consumer wrote a line that is not \"id count partition offset\": " + line);
    lines_.push_back(h);
  }

  pid_t pid_ = -1;
  unique_fd out_;  // the consumer's stdout
  unique_fd in_;   // its stdin: closed to end it gracefully
  std::string partial_;
  std::vector<handled_line> lines_;
  std::optional<consumer_stats> stats_;
};

// Runs one after the other over ids [0, n), each killed but the last.
struct runs_account {
  std::set<std::int64_t> missing;         // handled by none
  std::set<std::int64_t> strangers;       // ids outside [0, n)
  std::set<std::int64_t> twice_in_a_run;  // handled twice by one process (no handler fails here: never)
  // again[i]: ids run i handled that an earlier run had handled too.
  std::vector<std::set<std::int64_t>> again;
  [[nodiscard]] std::size_t duplicates() const {
    std::size_t total = 0;
    for (const auto& ids : again) total += ids.size();
    return total;
  }
};

inline runs_account account(const std::vector<const std::vector<handled_line>*>& runs, std::int64_t n) {
  runs_account out;
  std::set<std::int64_t> before;
  for (const std::vector<handled_line>* run : runs) {
    std::map<std::int64_t, int> times;
    for (const handled_line& h : *run) ++times[h.id];
    std::set<std::int64_t> again;
    for (const auto& [id, count] : times) {
      if (id < 0 || id >= n) out.strangers.insert(id);
      if (count > 1) out.twice_in_a_run.insert(id);
      if (before.count(id) != 0) again.insert(id);
    }
    for (const auto& [id, count] : times) before.insert(id);
    out.again.push_back(std::move(again));
  }
  for (std::int64_t id = 0; id < n; ++id) {
    if (before.count(id) == 0) out.missing.insert(id);
  }
  return out;
}

// "{1, 2, 3, ...} (12 in all)", for failure messages.
inline std::string some_of(const std::set<std::int64_t>& ids) {
  std::string text = "{";
  std::size_t shown = 0;
  for (const std::int64_t id : ids) {
    if (shown == 10) {
      text += ", ...";
      break;
    }
    text += (shown++ == 0 ? "" : ", ") + std::to_string(id);
  }
  return text + "} (" + std::to_string(ids.size()) + " in all)";
}

// Messages a run saw marked redelivered by the broker (delivery_count > 1).
inline std::size_t marked_redelivered(const std::vector<handled_line>& run) {
  std::size_t n = 0;
  for (const handled_line& h : run) n += h.delivery_count > 1 ? 1 : 0;
  return n;
}

// The checks of a broker that redelivers what a dead consumer had not
// acknowledged and says so (RabbitMQ, ActiveMQ), over runs each killed but the
// last, all with the same prefetch: nothing lost, and what comes again is
// marked redelivered and at most a window of the run before.
inline void expect_redeliveries_within_the_window(const std::vector<const std::vector<handled_line>*>& runs,
                                                  std::int64_t n, std::size_t prefetch) {
  const runs_account a = account(runs, n);
  EXPECT_TRUE(a.missing.empty()) << "lost: " << some_of(a.missing);
  EXPECT_TRUE(a.strangers.empty()) << some_of(a.strangers);
  EXPECT_TRUE(a.twice_in_a_run.empty()) << some_of(a.twice_in_a_run);
  for (const handled_line& h : *runs.front()) EXPECT_EQ(h.delivery_count, 1U) << "a fresh queue's message " << h.id;
  for (std::size_t i = 1; i < runs.size(); ++i) {
    // Only what the run before had not acknowledged comes again: its window at most.
    EXPECT_LE(a.again[i].size(), prefetch) << "run " << i << " handled again " << some_of(a.again[i]);
    // Marked redelivered: anything a killed run before had been sent and not
    // acknowledged — a window per killed run (a message sent to run 1 and
    // again to run 2, still unhandled when run 2 died, comes to run 3 marked).
    EXPECT_LE(marked_redelivered(*runs[i]), prefetch * i) << "run " << i;
    for (const handled_line& h : *runs[i]) {
      if (a.again[i].count(h.id) != 0) {
        EXPECT_GT(h.delivery_count, 1U) << "run " << i << ": handled again but not marked redelivered: " << h.id;
      }
    }
  }
}

}  // namespace troupe::test_support
