#include "work.hpp"

#include <unordered_map>

namespace cluster_demo {

// Remote spawn (node_child's deploy, remote_child) finds the worker by this.
TROUPE_REGISTER_ACTOR(worker, troupe::ref<dispatcher_protocol>, std::string);

const char* to_string(transport t) noexcept {
  switch (t) {
    case transport::in_process:
      return "in-process";
    case transport::shared_memory:
      return "shared memory";
    case transport::tcp:
      return "TCP";
  }
  return "?";
}

namespace {

constexpr std::array<std::string_view, 64> vocabulary = {
    "the",         "actor",    "message", "node",     "a",          "sends",     "to",        "and",
    "of",          "mailbox",  "ref",     "process",  "supervisor", "restarts",  "link",      "monitor",
    "down",        "shared",   "memory",  "ring",     "tcp",        "socket",    "cookie",    "handshake",
    "typed",       "protocol", "ask",     "reply",    "tell",       "crash",     "let",       "it",
    "worker",      "job",      "result",  "exactly",  "once",       "again",     "kill",      "signal",
    "child",       "parent",   "tree",    "strategy", "backoff",    "intensity", "proxy",     "address",
    "incarnation", "name",     "publish", "lookup",   "spawn",      "remote",    "scheduler", "thread",
    "queue",       "lock",     "free",    "future",   "await",      "timer",     "heartbeat", "cluster"};

// splitmix64: a tiny, well-mixed generator; the same id gives the same text
// in every process and on every run.
std::uint64_t next(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::string job_text(std::int64_t id) {
  std::uint64_t state = static_cast<std::uint64_t>(id);
  const std::uint64_t words = 40 + next(state) % 17;
  std::string text;
  text.reserve(words * 8);
  for (std::uint64_t i = 0; i < words; ++i) {
    // u^2 for u uniform in [0, 1): early words of the vocabulary are far more
    // frequent than late ones, as in real text, so counts differ widely.
    const std::uint64_t u = next(state) % 1024;
    if (i > 0) text += ' ';
    text += vocabulary[(u * u) >> 14];
  }
  return text;
}

void count_words(std::string_view text, word_counts& into) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find(' ', at), text.size());
    if (end > at) {
      const std::string_view word = text.substr(at, end - at);
      // Heterogeneous lookup (std::less<>): no string is built for a word already counted.
      if (auto it = into.find(word); it != into.end()) {
        ++it->second;
      } else {
        into.emplace(word, 1);
      }
    }
    at = end + 1;
  }
}

word_counts count_locally(std::int64_t last) {
  struct text_hash {
    using is_transparent = void;  // find() by string_view: no string built per word
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::int64_t, text_hash, std::equal_to<>> counts;
  for (std::int64_t id = 1; id <= last; ++id) {
    const std::string text = job_text(id);
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t end = std::min(text.find(' ', at), text.size());
      const std::string_view word(text.data() + at, end - at);
      if (auto it = counts.find(word); it != counts.end()) {
        ++it->second;
      } else if (!word.empty()) {
        counts.emplace(word, 1);
      }
      at = end + 1;
    }
  }
  return word_counts(counts.begin(), counts.end());
}

}  // namespace cluster_demo
