// topic_common.hpp — what the topic workload programs share (troupe_topics:
// troupe's topics; caf_topics: CAF 0.17's local groups): the command line, the
// names, units and counts of the topic_* workloads of WORKLOADS.md, and the
// message they publish. Both run the same workloads with the same counts and
// print the CSV contract of WORKLOADS.md.
//
//   auto opts = topic::parse_options(argc, argv);
//   for (auto w : topic::all_workloads)
//     if (opts.selected(topic::name_of(w))) bench::run_reps(topic::name_of(w), topic::unit, opts.reps, [&] { ... });
//
// A family of its own (like remote_common.hpp's), so that adding it changes
// nothing in troupe_workloads' and caf_workloads' output. Kept C++17-compatible
// on purpose: caf_topics is built as C++17 (CAF 0.17).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "bench_common.hpp"

namespace troupe::bench::topic {

// --- workloads, message, parameters ---------------------------------------------

enum class workload { fan_out, fan_out_text, fan_out_shm, fan_out_tcp };

inline constexpr std::array<workload, 4> all_workloads = {workload::fan_out, workload::fan_out_text,
                                                          workload::fan_out_shm, workload::fan_out_tcp};
inline constexpr std::array<std::string_view, 4> workload_names = {"topic_fan_out", "topic_fan_out_text",
                                                                   "topic_fan_out_shm", "topic_fan_out_tcp"};
// One delivery: one publication reaching one subscriber.
inline constexpr std::string_view unit = "deliveries/s";

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }

// The rows with subscribers in other processes: topic_fan_out_shm (troupe's
// shared-memory link) and topic_fan_out_tcp (TCP on 127.0.0.1).
inline bool across_processes(workload w) { return w == workload::fan_out_shm || w == workload::fan_out_tcp; }

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
  // The cross-process rows: `nodes` child processes with `node_subscribers`
  // each, `node_publications` publications from the main process.
  std::int64_t nodes;
  std::int64_t node_subscribers;
  std::int64_t node_publications;

  static params full() { return params{100, 20'000, 1'000, 3, 100, 50'000}; }
  static params quick() { return params{100, 5'000, 1'000, 3, 100, 5'000}; }

  std::int64_t deliveries() const { return subscribers * publications; }
  std::int64_t node_deliveries() const { return nodes * node_subscribers * node_publications; }
};

// --- command line ---------------------------------------------------------------

// bench_common.hpp's command line, with this family's workload names.
inline options parse_options(int argc, char** argv) {
  return bench::parse_options(argc, argv, {workload_names.begin(), workload_names.end()});
}
inline params parameters_for(const options& opts) { return opts.quick ? params::quick() : params::full(); }

}  // namespace troupe::bench::topic
