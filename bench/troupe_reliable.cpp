// troupe_reliable — the reliable_stream workload of WORKLOADS.md: a stream of
// 64-byte messages from this process to an actor in a child process over the
// shared-memory link, through a reliable channel (--mode reliable, the default:
// the "troupe" column of bench/compare) or as plain tell()s over the same link
// (--mode tell: the baseline), so the ratio is what at-least-once costs.
//
//   troupe_reliable [--mode reliable|tell] [--quick] [--threads N] [--reps R] [--only reliable_stream]
//   -> one `workload,unit,median,min,max` line on stdout
//
// Written the way a troupe program deploys: main() is troupe::run(), the
// parent node starts one child node with spawn_node() (this executable) and
// remote-spawns the sink there.
// - reliable: a producing actor here (demand<blob> in, all its credit out at
//   once through producer_window::send_all) feeds a producer controller here; the sink's consumer
//   controller in the child (spawned by the sink) takes the channel; the sink
//   confirms the last delivery of each batch (batch_end; confirmation is
//   cumulative). Window and buffer: 10,000 messages (with 1,000 the stream is
//   bound by the acknowledgement's round trip, not by the work per message).
// - tell: main(), a plain thread, tells the blobs to the same sink (a plain
//   thread's tell() waits while the ring is full: the link's backpressure), as
//   ipc_stream does.
// Each session: an untimed `expect` request tells the sink how many blobs come
// and where to report; the clock runs from the first send until the sink's
// report (it checks order and count) is in main()'s inbox. One untimed warm-up
// session of a tenth of the count, then one per repetition. No sleeps.
//
// Failures end the run with a line on stderr and exit status 1; every wait has
// a deadline, and an alarm() watchdog ends a run stuck where none reaches.
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"

// Named (not anonymous) namespace: the type names are part of the wire
// schemas and of the remote-spawn keys.
namespace troupe_reliable {

namespace bench = troupe::bench;

constexpr std::string_view workload_name = "reliable_stream";
constexpr std::string_view unit = "msgs/s";
constexpr auto session_timeout = std::chrono::seconds(120);
constexpr std::uint64_t window = 10000;

// Counts of WORKLOADS.md; change them there too.
constexpr std::int64_t full_count = 1'000'000;
constexpr std::int64_t quick_count = 200'000;

// 64 bytes, integers only: its encoding is one copy (serialization.hpp).
struct blob {
  std::uint64_t sequence;
  std::uint64_t kind;
  std::array<std::uint8_t, 48> payload;
};
static_assert(sizeof(blob) == 64 && std::is_trivially_copyable_v<blob>);
constexpr std::uint64_t data_kind = 3;

using channel = troupe::ref<troupe::producer_controller_protocol<blob>>;

// The sink's report to main(): how many arrived in order, or what went wrong.
struct stream_done {
  std::int64_t received;
  std::string failure;
};
using client_protocol = troupe::protocol<stream_done>;

// Opens a session: `count` blobs come, numbered from `first`; report to `report_to`.
struct expect {
  using reply = std::int64_t;
  std::int64_t count;
  std::uint64_t first;
  troupe::ref<client_protocol> report_to;
};
using sink_protocol = troupe::protocol<expect, blob, troupe::delivery<blob>>;

struct sink_actor : troupe::actor<sink_protocol> {
  explicit sink_actor(channel from) : producer(std::move(from)) {}
  void on_start() {
    if (producer) (void)troupe::spawn_consumer<blob>(system(), self(), producer, {.window = window});
  }
  std::int64_t on(expect e) {
    expected = e.count;
    next = e.first;
    received = 0;
    failed = false;
    report_to = std::move(e.report_to);
    return expected;
  }
  void on(const blob& b) { take(b); }
  void on(const troupe::delivery<blob>& d) {
    take(d.message);
    // Cumulative: confirming the last of a batch confirms the ones before it.
    if (d.batch_end) (void)d.confirm();
  }
  void take(const blob& b) {
    if (failed) return;
    if (b.kind != data_kind || b.sequence != next) {
      failed = true;
      (void)report_to.tell(
          stream_done{received, "blob " + std::to_string(b.sequence) + " arrived, expected " + std::to_string(next)});
      return;
    }
    ++next;
    if (++received == expected) (void)report_to.tell(stream_done{received, {}});
  }
  channel producer;
  troupe::ref<client_protocol> report_to;
  std::int64_t expected = 0;
  std::int64_t received = 0;
  std::uint64_t next = 0;
  bool failed = false;
};

TROUPE_REGISTER_ACTOR(sink_actor, channel);

// The producing actor: on `go`, sends that many blobs as its demand allows.
struct go {
  std::int64_t count;
};
using source_protocol = troupe::protocol<go, troupe::demand<blob>>;
struct source_actor : troupe::actor<source_protocol> {
  void on(go g) {
    remaining += g.count;
    pump();
  }
  void on(const troupe::demand<blob>& d) {
    out.update(d);
    pump();
  }
  // All the credit at once: one message to the controller per demand.
  void pump() {
    const auto n =
        static_cast<std::int64_t>(std::min<std::uint64_t>(out.credit(), static_cast<std::uint64_t>(remaining)));
    if (n <= 0) return;
    std::vector<blob> blobs(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      blobs[static_cast<std::size_t>(i)].sequence = out.next_id() + static_cast<std::uint64_t>(i);
      blobs[static_cast<std::size_t>(i)].kind = data_kind;
    }
    remaining -= static_cast<std::int64_t>(out.send_all(blobs));
  }
  troupe::producer_window<blob> out;
  std::int64_t remaining = 0;
};

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
void require(bool condition, const std::string& what) {
  if (!condition) throw failure(what);
}
template <class T>
T value_or_fail(troupe::expected<T> r, const std::string& what) {
  if (!r) throw failure(what + ": " + r.error().to_string());
  return std::move(*r);
}

void on_watchdog(int) {
  constexpr char text[] = "troupe_reliable: a session did not finish in time (watchdog); giving up\n";
  [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, text, sizeof text - 1);
  ::_exit(1);
}

class temporary_directory {
 public:
  temporary_directory() {
    char pattern[] = "/tmp/troupe-reliable-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw failure(std::string("mkdtemp: ") + std::generic_category().message(errno));
    path_ = pattern;
  }
  ~temporary_directory() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temporary_directory(const temporary_directory&) = delete;
  temporary_directory& operator=(const temporary_directory&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class mode { reliable, tell };

int run_parent(mode m, const bench::options& opts) {
  const std::int64_t count = opts.quick ? quick_count : full_count;
  temporary_directory dir;
  {
    const std::string name = "troupe-reliable-" + std::to_string(::getpid());
    troupe::node_config cfg;
    cfg.name = name;
    cfg.runtime_dir = dir.path();
    cfg.system.worker_threads = opts.threads;
    troupe::node parent(cfg);
    troupe::node_handle child = value_or_fail(parent.spawn_node(name + "-peer"), "spawn_node");
    troupe::scoped<client_protocol> inbox{parent};

    troupe::ref<source_protocol> source;
    channel producer;
    if (m == mode::reliable) {
      source = parent.spawn<source_actor>();
      producer = troupe::spawn_producer<blob>(parent, source, {.window = window, .buffer = window});
    }
    auto sink = value_or_fail(parent.spawn<sink_actor>(troupe::on(child), producer), "remote spawn of the sink");
    std::uint64_t sent = m == mode::reliable ? 1 : 0;  // the channel numbers from 1

    auto session = [&](std::int64_t n) {
      const std::int64_t opened =
          value_or_fail(sink.ask(expect{n, sent, inbox.self()}, session_timeout).try_get(), "expect");
      require(opened == n, "the sink expects " + std::to_string(opened));
      bench::stopwatch clock;
      if (m == mode::reliable) {
        require(!source.tell(go{n}), "go: the source is gone");
      } else {
        for (std::int64_t i = 0; i < n; ++i) {
          blob b{};
          b.sequence = sent + static_cast<std::uint64_t>(i);
          b.kind = data_kind;
          if (std::error_code ec = sink.tell(b)) throw failure("tell " + std::to_string(i) + ": " + ec.message());
        }
      }
      const stream_done done = value_or_fail(inbox.receive<stream_done>(session_timeout), "waiting for the sink");
      const double seconds = clock.seconds();
      require(done.failure.empty(), std::string(workload_name) + ": " + done.failure);
      require(done.received == n, "the sink received " + std::to_string(done.received));
      sent += static_cast<std::uint64_t>(n);
      return static_cast<double>(n) / seconds;
    };

    ::alarm(2 * static_cast<unsigned>(session_timeout.count()));
    (void)session(std::max<std::int64_t>(1, count / 10));
    bench::run_reps(workload_name, unit, opts.reps, [&] {
      ::alarm(2 * static_cast<unsigned>(session_timeout.count()));
      return session(count);
    });
    ::alarm(0);
    if (m == mode::reliable) {
      const troupe::producer_stats s =
          value_or_fail(producer.ask(troupe::producer_stats_request{}, session_timeout).try_get(), "stats");
      std::fprintf(stderr, "reliable_stream: %llu sent, %llu redelivered, %llu rejected\n",
                   static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.redelivered),
                   static_cast<unsigned long long>(s.rejected));
      require(s.rejected == 0, "the producer refused messages");
    }
  }
  return 0;
}

}  // namespace troupe_reliable

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    namespace t = troupe_reliable;
    // --mode VALUE is ours; the rest is bench_common's command line.
    t::mode m = t::mode::reliable;
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
      if (std::strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
        const std::string_view value = argv[++i];
        if (value == "tell") {
          m = t::mode::tell;
        } else if (value != "reliable") {
          std::fprintf(stderr, "troupe_reliable: --mode reliable|tell, got '%s'\n", argv[i]);
          return 2;
        }
        continue;
      }
      rest.push_back(argv[i]);
    }
    const std::vector<std::string_view> names = {t::workload_name};
    const auto opts = troupe::bench::parse_options(static_cast<int>(rest.size()), rest.data(), names);
    struct sigaction action {};
    action.sa_handler = t::on_watchdog;
    ::sigaction(SIGALRM, &action, nullptr);
    try {
      return t::run_parent(m, opts);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "troupe_reliable: FAILED: %s\n", e.what());
      return 1;
    }
  });
}
