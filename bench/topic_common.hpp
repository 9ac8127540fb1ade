// topic_common.hpp — what the topic workload programs share (troupe_topics:
// troupe's topics; caf_topics: CAF 0.17's local groups): the command line, the
// names, units and counts of the topic_* workloads of WORKLOADS.md, and the
// message they publish. Both run the same workloads with the same counts and
// print the CSV contract of WORKLOADS.md.
//
//   auto opts = topic::parse_options(argc, argv);
//   for (auto w : topic::all_workloads)
//     if (opts.selected(w)) bench::run_reps(topic::name_of(w), topic::unit, opts.reps, [&] { ... });
//
// A family of its own (like remote_common.hpp's), so that adding it changes
// nothing in troupe_workloads' and caf_workloads' output. Kept C++17-compatible
// on purpose: caf_topics is built as C++17 (CAF 0.17).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace troupe::bench::topic {

// --- workloads, message, parameters ---------------------------------------------

enum class workload { fan_out, fan_out_text };

inline constexpr std::array<workload, 2> all_workloads = {workload::fan_out, workload::fan_out_text};
inline constexpr std::array<std::string_view, 2> workload_names = {"topic_fan_out", "topic_fan_out_text"};
// One delivery: one publication reaching one subscriber.
inline constexpr std::string_view unit = "deliveries/s";

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }

// topic_fan_out_text's message carries this text (and the sequence number):
// a payload that costs an allocation to copy.
inline const std::string& text_payload() {
  static const std::string text(100, 't');
  return text;
}

// Counts of WORKLOADS.md; change them there too.
struct params {
  std::int64_t subscribers;   // S, all in the publisher's process
  std::int64_t publications;  // N: each reaches every subscriber
  std::int64_t chunk;         // publications per activation of the publisher

  static params full() { return params{100, 20'000, 1'000}; }
  static params quick() { return params{100, 5'000, 1'000}; }

  std::int64_t deliveries() const { return subscribers * publications; }
};

// --- command line ---------------------------------------------------------------

struct options {
  bool quick = false;
  unsigned threads = 0;           // scheduler worker threads; hardware concurrency if not given
  int reps = 0;                   // 0 is replaced by the default (5, quick 3)
  std::vector<std::string> only;  // empty: every workload

  bool selected(workload w) const {
    return only.empty() || std::find(only.begin(), only.end(), name_of(w)) != only.end();
  }
  params parameters() const { return quick ? params::quick() : params::full(); }
};

[[noreturn]] inline void usage_error(const char* program, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\n"
               "usage: %s [--quick] [--threads N] [--reps R] [--only NAME[,NAME...]]\n"
               "workloads:",
               program, why.c_str(), program);
  for (auto name : workload_names) std::fprintf(stderr, " %.*s", static_cast<int>(name.size()), name.data());
  std::fprintf(stderr, "\n");
  std::exit(2);  // NOLINT(concurrency-mt-unsafe): a usage error, before any thread starts
}

inline options parse_options(int argc, char** argv) {
  const char* program = argc > 0 ? argv[0] : "topic";
  options result;
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
        if (std::find(workload_names.begin(), workload_names.end(), name) == workload_names.end())
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

}  // namespace troupe::bench::topic
