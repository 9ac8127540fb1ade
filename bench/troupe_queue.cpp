// troupe_queue — the queue_durable workload of bench/WORKLOADS.md: messages
// through troupe's durable queue (troupe/durable/queue.hpp), persistence on,
// and, with --floor, its baseline: raw SQLite inserts and deletes of the same
// rows in a tight loop, same settings. bench/compare runs both back to back.
//
//   troupe_queue [--floor] [--quick] [--threads N] [--reps R] [--only queue_durable]
//
// troupe: a queue actor on its own thread (spawn_queue) over a fresh SQLite
// file (WAL, synchronous=NORMAL, exclusive lock: the queue's defaults). A
// producer thread sends N messages of 100 bytes, keeping `window` sends in
// flight (each an ask; the queue group-commits whatever waits in its mailbox);
// a consumer thread receives batches of up to `batch` (visibility 60 s, long
// poll) and deletes each batch with one delete_messages. Timed: from the first
// send to the last delete acknowledged. Per message the queue writes three
// times (insert, lease, delete), each committed before its reply.
// --floor: one thread, the same file settings (troupe's own database wrapper,
// so the PRAGMAs are the very same), a table with the queue's columns and
// index; per `batch` messages one transaction inserting them and one deleting
// them by id: two writes per message, no lease, no actor, no messages between
// threads. The same batching the queue gets from its group commit.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "database.hpp"
#include "troupe/durable/queue.hpp"
#include "troupe/runtime/system.hpp"

namespace {

namespace bench = troupe::bench;
namespace durable = troupe::durable;
using namespace std::chrono_literals;

constexpr std::string_view workload = "queue_durable";
constexpr std::string_view unit = "msgs/s";

// Counts of WORKLOADS.md; change them there too.
struct params {
  std::int64_t messages;
  std::int64_t window;  // sends in flight (producer)
  std::int64_t batch;   // receive / delete batch (consumer); the floor's transaction size
  static params full() { return params{200'000, 256, 256}; }
  static params quick() { return params{50'000, 256, 256}; }
};

const std::string& payload() {
  static const std::string body(100, 'q');
  return body;
}

// A fresh directory for one repetition's file, removed afterwards.
struct scratch {
  scratch() {
    std::string pattern = (std::filesystem::temp_directory_path() / "troupe-queue-bench-XXXXXX").string();
    bench::require(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    dir = pattern;
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  ~scratch() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::filesystem::path dir;
};

double run_queue(unsigned threads, const params& p) {
  scratch files;
  troupe::config cfg;
  cfg.worker_threads = threads;
  troupe::system sys(cfg);
  durable::queue_config qc;
  qc.file = (files.dir / "queue.db").string();
  qc.max_receive_batch = static_cast<std::uint32_t>(p.batch);
  auto q = durable::spawn_queue(sys, qc).value();

  std::atomic<std::int64_t> deleted{0};
  bench::stopwatch clock;
  std::thread consumer([&] {
    while (deleted.load(std::memory_order_relaxed) < p.messages) {
      auto got = q.ask(durable::receive_messages{static_cast<std::uint32_t>(p.batch), 60s, 1s}, 30s).get();
      bench::require(got.status.ok(), "receive failed: " + got.status.text);
      if (got.messages.empty()) continue;
      durable::delete_messages del;
      for (auto& m : got.messages) del.receipts.push_back(std::move(m.receipt));
      for (const auto& s : q.ask(std::move(del), 30s).get()) bench::require(s.ok(), "delete failed: " + s.text);
      deleted.fetch_add(static_cast<std::int64_t>(got.messages.size()), std::memory_order_relaxed);
    }
  });
  std::vector<troupe::response<durable::sent>> in_flight;
  for (std::int64_t sent = 0; sent < p.messages;) {
    const std::int64_t n = std::min(p.window, p.messages - sent);
    for (std::int64_t i = 0; i < n; ++i) in_flight.push_back(q.ask(durable::send_message{.body = payload()}, 30s));
    for (auto& r : in_flight) {
      const durable::sent s = r.get();
      bench::require(s.status.ok(), "send failed: " + s.status.text);
    }
    in_flight.clear();
    sent += n;
  }
  consumer.join();
  const double seconds = clock.seconds();
  bench::require(deleted.load() == p.messages, "the consumer deleted more messages than were sent");
  const auto stats = q.ask(durable::get_queue_stats{}, 30s).get();
  bench::require(stats.messages == 0, "messages left in the queue after the run");
  std::fprintf(stderr, "queue_durable: %llu commits (%.1f messages per commit)\n",
               static_cast<unsigned long long>(stats.commits),
               static_cast<double>(p.messages) / static_cast<double>(stats.commits));
  return static_cast<double>(p.messages) / seconds;
}

double run_floor(const params& p) {
  namespace db = troupe::durable::detail;
  scratch files;
  auto conn = db::database::open((files.dir / "floor.db").string(), {}).value();
  conn.exec(
          "CREATE TABLE m (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, attributes BLOB,"
          " group_id TEXT NOT NULL DEFAULT '', sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,"
          " receive_count INTEGER NOT NULL DEFAULT 0, lease INTEGER NOT NULL DEFAULT 0);"
          "CREATE INDEX m_visible ON m(visible_at)")
      .value();
  auto insert =
      conn.prepare("INSERT INTO m(body, attributes, group_id, sent_at, visible_at) VALUES (?1, NULL, '', ?2, ?2)")
          .value();
  auto remove = conn.prepare("DELETE FROM m WHERE id = ?1").value();
  const std::span<const std::byte> body(reinterpret_cast<const std::byte*>(payload().data()), payload().size());
  // Milliseconds since the epoch, as the queue stores: the same integer width
  // in each row (a small counter would make the floor's rows shorter).
  const std::int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::vector<std::int64_t> ids;
  bench::stopwatch clock;
  for (std::int64_t done = 0; done < p.messages;) {
    const std::int64_t n = std::min(p.batch, p.messages - done);
    ids.clear();
    conn.exec("BEGIN IMMEDIATE").value();
    for (std::int64_t i = 0; i < n; ++i) {
      insert.bind(1, body).bind(2, now_ms + done + i);
      insert.run().value();
      ids.push_back(conn.last_insert_rowid());
    }
    conn.exec("COMMIT").value();
    conn.exec("BEGIN IMMEDIATE").value();
    for (std::int64_t id : ids) {
      remove.bind(1, id);
      remove.run().value();
    }
    conn.exec("COMMIT").value();
    done += n;
  }
  return static_cast<double>(p.messages) / clock.seconds();
}

}  // namespace

int main(int argc, char** argv) {
  // --floor is ours; the rest is bench_common's command line.
  bool floor = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--floor") {
      floor = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  const auto opts = bench::parse_options(static_cast<int>(args.size()), args.data(), {workload});
  const params p = opts.quick ? params::quick() : params::full();
  if (!opts.selected(workload)) return 0;
  bench::run_reps(std::string(workload), std::string(unit), opts.reps,
                  [&] { return floor ? run_floor(p) : run_queue(opts.threads, p); });
  return 0;
}
