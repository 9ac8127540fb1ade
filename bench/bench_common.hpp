// bench_common.hpp — what every workload program in bench/ shares: the command
// line, the parameter sets of WORKLOADS.md, the repetition/report loop and the
// measuring tools (stopwatch, RSS). It knows nothing about any actor library, so
// troupe_workloads and each baseline program (caf_workloads, ...) measure the
// same things the same way and print the same CSV contract.
//
//   int main(int argc, char** argv) {
//     auto opts = troupe::bench::parse_options(argc, argv);
//     auto p = troupe::bench::params::for_options(opts);
//     if (opts.selected("ping_pong"))
//       troupe::bench::run_reps("ping_pong", "roundtrips/s", opts.reps, [&] {
//         /* set up (untimed) */ troupe::bench::stopwatch sw;
//         /* run, wait for "done" */ return p.ping_pong_roundtrips / sw.seconds();
//       });
//   }
//
// Kept C++17-compatible on purpose: a baseline library's headers may force an
// older language mode on the program that includes this.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <dirent.h>
#include <malloc.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace troupe::bench {

// The workload names of WORKLOADS.md, in the order the programs run them.
inline constexpr std::array<std::string_view, 17> workload_names = {
    "ping_pong",   "ping_pong_bounded", "ping_pong_pairs", "fan_in",       "actor_creation",
    "thread_ring", "fork_join",         "chameneos",       "counting",     "big",
    "bank",        "concdict",          "barber",          "philosophers", "trapezoid",
    "logmap",      "idle_actor_memory"};

// Prints `what` to stderr and aborts. Used for correctness checks that must
// survive -DNDEBUG (a benchmark that counts wrong must not report a number).
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "bench: FAILED: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

inline void require(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

// --- command line ---------------------------------------------------------

struct options {
  bool quick = false;
  unsigned threads = 0;           // scheduler worker threads; 0 is replaced by the default
  int reps = 0;                   // 0 is replaced by the default (5, quick 3)
  std::vector<std::string> only;  // empty: every workload

  bool selected(std::string_view name) const {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  }
};

// `names`: the workloads --only accepts (a family of programs with workloads
// of its own, such as topic_common.hpp's, passes its list).
[[noreturn]] inline void usage_error(const char* program, const std::string& why,
                                     const std::vector<std::string_view>& names) {
  std::fprintf(stderr,
               "%s: %s\n"
               "usage: %s [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]\n"
               "workloads:",
               program, why.c_str(), program);
  for (auto name : names) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\n");
  std::exit(2);  // NOLINT(concurrency-mt-unsafe): a usage error, before any thread starts
}
[[noreturn]] inline void usage_error(const char* program, const std::string& why) {
  usage_error(program, why, {workload_names.begin(), workload_names.end()});
}

// Parses a positive decimal integer; anything else is a usage error.
inline long parse_positive(const char* program, const char* flag, const char* text) {
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value <= 0)
    usage_error(program, std::string(flag) + " needs a positive integer, got '" + text + "'");
  return value;
}

inline options parse_options(int argc, char** argv, const std::vector<std::string_view>& names) {
  const char* program = argc > 0 ? argv[0] : "bench";
  options result;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(program, std::string(arg) + " needs a value", names);
      return argv[++i];
    };
    if (arg == "--quick") {
      result.quick = true;
    } else if (arg == "--threads") {
      result.threads = static_cast<unsigned>(parse_positive(program, "--threads", value()));
    } else if (arg == "--reps") {
      result.reps = static_cast<int>(parse_positive(program, "--reps", value()));
    } else if (arg == "--only") {
      std::string_view list = value();
      while (!list.empty()) {
        auto comma = list.find(',');
        auto name = list.substr(0, comma);
        if (std::find(names.begin(), names.end(), name) == names.end())
          usage_error(program, "unknown workload '" + std::string(name) + "'", names);
        result.only.emplace_back(name);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      }
    } else if (arg == "--help" || arg == "-h") {
      usage_error(program, "help", names);
    } else {
      usage_error(program, "unknown argument '" + std::string(arg) + "'", names);
    }
  }
  if (result.threads == 0) result.threads = std::max(1u, std::thread::hardware_concurrency());
  if (result.reps == 0) result.reps = result.quick ? 3 : 5;
  return result;
}
inline options parse_options(int argc, char** argv) {
  return parse_options(argc, argv, {workload_names.begin(), workload_names.end()});
}

// --- parameters -----------------------------------------------------------

// Every workload parameter of WORKLOADS.md; `full()` and `quick()` are its two
// columns. Change a number here and in WORKLOADS.md together.
struct params {
  std::int64_t ping_pong_roundtrips;        // N, one pair
  std::int64_t ping_pong_pairs;             // pairs running at once
  std::int64_t ping_pong_pairs_roundtrips;  // N in total, N / pairs per pair
  std::int64_t fan_in_senders;
  std::int64_t fan_in_messages_per_sender;  // M
  std::int64_t fan_in_chunk;                // messages a sender sends per activation
  int actor_creation_depth;                 // D; the tree has 2^(D+1) - 1 actors
  std::int64_t thread_ring_actors;
  std::int64_t thread_ring_hops;              // T
  std::int64_t fork_join_actors;              // K
  std::int64_t fork_join_messages_per_actor;  // M
  std::int64_t chameneos_count;               // C
  std::int64_t chameneos_meetings;            // N
  std::int64_t idle_actors;

  static params full() {
    return params{2'000'000, 1'000,      2'000'000, 8,      1'000'000, 1'000,     19,
                  503,       10'000'000, 60,        40'000, 100,       2'000'000, 1'000'000};
  }
  static params quick() {
    return params{500'000, 1'000, 500'000, 8, 250'000, 1'000, 17, 503, 2'000'000, 60, 10'000, 100, 400'000, 1'000'000};
  }
  static params for_options(const options& opts) { return opts.quick ? quick() : full(); }

  std::int64_t actor_creation_total() const { return (std::int64_t{1} << (actor_creation_depth + 1)) - 1; }
};

// The per-message work of fork_join (Savina fjthrput), shared so that every
// program does exactly the same arithmetic. Returns a value the caller must
// consume (e.g. add to a per-actor sum) so the compiler cannot drop it.
inline double fork_join_compute(double x) {
  double s = std::sin(x);
  double c = std::cos(x);
  return std::sqrt(s * s + c * c);
}

// --- measuring ------------------------------------------------------------

// Monotonic wall-clock stopwatch, started on construction.
class stopwatch {
 public:
  stopwatch() : start_(clock::now()) {}
  void restart() { start_ = clock::now(); }
  double seconds() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  clock::time_point start_;
};

// Resident set size of this process in bytes (second field of /proc/self/statm).
inline std::int64_t resident_bytes() {
  std::FILE* file = std::fopen("/proc/self/statm", "r");
  require(file != nullptr, "cannot open /proc/self/statm");
  long long size_pages = 0;
  long long resident_pages = 0;
  int fields = std::fscanf(file, "%lld %lld", &size_pages, &resident_pages);
  std::fclose(file);
  require(fields == 2, "cannot parse /proc/self/statm");
  return static_cast<std::int64_t>(resident_pages) * sysconf(_SC_PAGESIZE);
}

// Runs fn() in a forked child and returns its result. For memory workloads:
// once a process has freed memory its allocator keeps it, so a second
// measurement in the same process would reuse pages and report too little.
// Call it only while the process runs no other threads (between actor systems).
// Number of threads in this process (entries of /proc/self/task).
inline int thread_count() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
    closedir(dir);
  }
  return count;
}

template <class Fn>
double run_in_child_process(Fn&& fn) {
  // fork() copies only the calling thread; a lock held by another thread
  // would stay locked forever in the child.
  require(thread_count() == 1, "run_in_child_process: other threads are still running");
  int fds[2];
  require(pipe(fds) == 0, "pipe() failed");
  std::fflush(nullptr);  // the child must not flush our buffered output twice
  pid_t child = fork();
  require(child >= 0, "fork() failed");
  if (child == 0) {
    close(fds[0]);
    // The child starts with the parent's heap, including memory that earlier
    // workloads freed but that is still resident: a measurement of resident
    // memory would see it reused and count too little. malloc_trim(0) gives
    // every arena's free pages back to the kernel first, so the child's figure
    // is the same whether it runs first or after other workloads.
    (void)malloc_trim(0);
    double value = fn();
    bool written = write(fds[1], &value, sizeof value) == static_cast<ssize_t>(sizeof value);
    std::fflush(stderr);
    // _exit: the child's actors need no orderly shutdown, and the parent's
    // atexit handlers and stdio buffers are not the child's to run.
    _exit(written ? 0 : 1);
  }
  close(fds[1]);
  double value = 0;
  ssize_t got = read(fds[0], &value, sizeof value);
  close(fds[0]);
  int status = 0;
  require(waitpid(child, &status, 0) == child, "waitpid() failed");
  require(WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == static_cast<ssize_t>(sizeof value),
          "measurement child process failed");
  return value;
}

// --- reporting --------------------------------------------------------------

struct summary {
  double median;
  double min;
  double max;
};

inline summary summarize(std::vector<double> values) {
  require(!values.empty(), "no repetitions to summarize");
  std::sort(values.begin(), values.end());
  auto n = values.size();
  double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return summary{median, values.front(), values.back()};
}

// Runs fn() `reps` times (fn sets up untimed, times the workload and returns the
// measured value), then prints `workload,unit,median,min,max` to stdout and
// flushes it. Per-repetition values go to stderr.
template <class Fn>
summary run_reps(std::string_view name, std::string_view unit, int reps, Fn&& fn) {
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(reps));
  for (int rep = 1; rep <= reps; ++rep) {
    double value = fn();
    std::fprintf(stderr, "%.*s rep %d/%d: %.2f %.*s\n", static_cast<int>(name.size()), name.data(), rep, reps, value,
                 static_cast<int>(unit.size()), unit.data());
    values.push_back(value);
  }
  auto result = summarize(std::move(values));
  std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()),
              unit.data(), result.median, result.min, result.max);
  std::fflush(stdout);
  return result;
}

}  // namespace troupe::bench
