// remote_common.hpp — what every cross-machine workload program in bench/
// shares: the command line, the names, units and counts of the remote_*
// workloads of WORKLOADS.md, the size of a message and the report. Each
// program brings its own transport and process set-up (tcp_baseline: raw
// framed TCP; caf_remote: CAF 0.17's middleman; troupe_remote: two troupe
// nodes over TCP); all run the same two workloads with the same counts between
// two processes on 127.0.0.1 and print the CSV contract of WORKLOADS.md.
//
//   auto opts = remote::parse_options(argc, argv);
//   for (auto w : remote::all_workloads)
//     if (opts.selected(w))
//       remote::report("my_program", w, measure(w, opts.parameters(), opts.reps));
//
// Kept C++17-compatible on purpose: caf_remote is built as C++17 (CAF 0.17).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace troupe::bench::remote {

// --- workloads, message, parameters ---------------------------------------------

enum class workload { ping_pong, stream };

inline constexpr std::array<workload, 2> all_workloads = {workload::ping_pong, workload::stream};
inline constexpr std::array<std::string_view, 2> workload_names = {"remote_ping_pong", "remote_stream"};
inline constexpr std::array<std::string_view, 2> workload_units = {"round_trips/s", "msgs/s"};

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }
inline std::string_view unit_of(workload w) { return workload_units[static_cast<std::size_t>(w)]; }

// Every message carries 64 bytes of application data, like the ipc_* workloads:
// a sequence number (8 bytes), a kind (8 bytes: an enum, or an atom in CAF)
// and an opaque payload of this many bytes. How a library frames and encodes
// it on the wire is part of what is measured.
inline constexpr std::size_t payload_bytes = 48;

// Counts of WORKLOADS.md; change them there too. Every program runs one
// untimed warm-up session of a tenth of the count before the timed ones.
// Sized for the slowest program (CAF 0.17: ~0.2 ms per round trip, ~150k
// streamed messages per second here) to take a few seconds per session.
struct params {
  std::int64_t round_trips;      // remote_ping_pong: N
  std::int64_t stream_messages;  // remote_stream: N

  static params full() { return params{20'000, 1'000'000}; }
  static params quick() { return params{5'000, 200'000}; }

  std::int64_t count(workload w) const { return w == workload::ping_pong ? round_trips : stream_messages; }
  static std::int64_t warmup(std::int64_t count) { return std::max<std::int64_t>(1, count / 10); }
};

// --- command line ---------------------------------------------------------------

struct options {
  bool quick = false;
  unsigned threads = 0;           // worker threads of an actor system; hardware concurrency if not given
  int reps = 0;                   // 0 is replaced by the default (5, quick 3)
  std::vector<std::string> only;  // empty: every workload

  bool selected(workload w) const {
    return only.empty() || std::find(only.begin(), only.end(), name_of(w)) != only.end();
  }
  params parameters() const { return quick ? params::quick() : params::full(); }
};

// The names of the other families, which --only accepts and ignores, so that
// one list can be passed to every program (as ipc_common.hpp does).
inline constexpr std::array<std::string_view, 2> ipc_workload_names = {"ipc_ping_pong", "ipc_stream"};

[[noreturn]] inline void usage_error(const char* program, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\n"
               "usage: %s [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]\n"
               "  --threads N  worker threads of each process's actor system (raw TCP ignores it)\n"
               "workloads:",
               program, why.c_str(), program);
  for (auto name : workload_names) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\n");
  std::exit(2);  // NOLINT(concurrency-mt-unsafe): a usage error, before any thread starts
}

inline options parse_options(int argc, char** argv) {
  const char* program = argc > 0 ? argv[0] : "remote";
  options result;
  auto contains = [](const auto& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(program, std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--quick") {
      result.quick = true;
    } else if (arg == "--threads") {
      result.threads = static_cast<unsigned>(bench::parse_positive(program, "--threads", value()));
    } else if (arg == "--reps") {
      result.reps = static_cast<int>(bench::parse_positive(program, "--reps", value()));
    } else if (arg == "--only") {
      std::string_view list = value();
      while (!list.empty()) {
        auto comma = list.find(',');
        auto name = list.substr(0, comma);
        if (!contains(workload_names, name) && !contains(bench::workload_names, name) &&
            !contains(ipc_workload_names, name))
          usage_error(program, "unknown workload '" + std::string(name) + "'");
        result.only.emplace_back(name);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
      }
    } else if (arg == "--help" || arg == "-h") {
      usage_error(program, "help");
    } else {
      usage_error(program, "unknown argument '" + std::string(arg) + "'");
    }
  }
  if (result.threads == 0) result.threads = std::max(1u, std::thread::hardware_concurrency());
  if (result.reps == 0) result.reps = result.quick ? 3 : 5;
  return result;
}

// --- reporting --------------------------------------------------------------------

// Prints each repetition's rate to stderr (tagged with `label`, e.g. the
// program), then `workload,unit,median,min,max` to stdout, and flushes it.
inline summary report(std::string_view label, workload w, const std::vector<double>& rates) {
  auto name = name_of(w);
  auto unit = unit_of(w);
  for (std::size_t rep = 0; rep < rates.size(); ++rep)
    std::fprintf(stderr, "%.*s %.*s rep %zu/%zu: %.2f %.*s\n", static_cast<int>(label.size()), label.data(),
                 static_cast<int>(name.size()), name.data(), rep + 1, rates.size(), rates[rep],
                 static_cast<int>(unit.size()), unit.data());
  auto result = summarize(rates);
  std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()),
              unit.data(), result.median, result.min, result.max);
  std::fflush(stdout);
  return result;
}

}  // namespace troupe::bench::remote
