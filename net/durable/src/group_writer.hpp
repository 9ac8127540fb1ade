// group_writer: one SQLite file, one writer thread, group commit. Work is
// submitted from any thread; the writer takes everything pending, runs it in
// one transaction, commits, and only then reports each piece done. A burst of
// N writes costs one commit. Private to net/durable/ (the outbox uses it).
//
//   auto w = group_writer::open(path, options, "CREATE TABLE IF NOT EXISTS ...").value();
//   w->submit([](group_writer::session& s) { return s.prepared("INSERT ...").bind(1, x).run(); },
//             [](const troupe::expected<void>& r) { /* committed, or failed */ });
//
// A batch fails as a whole: if one piece of work or the commit fails, the
// transaction is rolled back and every piece of that batch gets the error.
// Work and callbacks run on the writer thread, in submission order.
//
// Thread safety: submit() and pending() from any thread. The destructor
// commits what is pending, then joins the writer (call it from no callback).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "database.hpp"
#include "troupe/mailbox/mutex.hpp"

namespace troupe::durable::detail {

class group_writer {
 public:
  // What a piece of work sees: the connection and its prepared statements.
  class session {
   public:
    explicit session(database& db) noexcept : db_(db) {}
    // A prepared statement for `sql` (a string literal: cached by its text),
    // reset and ready to bind. Throws troupe_error if it does not prepare.
    detail::statement& prepared(const char* sql);
    database& db() noexcept { return db_; }

   private:
    database& db_;
    std::map<std::string, detail::statement, std::less<>> statements_;
  };
  using work = std::function<expected<void>(session&)>;
  using done = std::function<void(const expected<void>&)>;

  // Opens `path` and runs `schema` (statements separated by ';') once.
  [[nodiscard]] static expected<std::shared_ptr<group_writer>> open(const std::string& path,
                                                                    const database_options& options,
                                                                    const char* schema);
  group_writer(const group_writer&) = delete;
  group_writer& operator=(const group_writer&) = delete;
  ~group_writer();

  void submit(work w, done d) TROUPE_EXCLUDES(mutex_);
  [[nodiscard]] std::size_t pending() const TROUPE_EXCLUDES(mutex_);
  [[nodiscard]] const std::string& path() const noexcept { return db_.path(); }
  // Transactions committed so far (each a batch).
  [[nodiscard]] std::uint64_t commits() const noexcept {
    // relaxed: a statistic; the done callbacks are what order a caller after a commit.
    return commits_.load(std::memory_order_relaxed);
  }

 private:
  struct job {
    work run;
    done on_done;
  };
  explicit group_writer(database db);
  void loop() TROUPE_EXCLUDES(mutex_);
  expected<void> run_batch(std::vector<job>& batch);

  database db_;
  session session_{db_};  // the writer thread's only
  mutable troupe::mutex mutex_;
  std::condition_variable_any wake_;
  std::vector<job> jobs_ TROUPE_GUARDED_BY(mutex_);
  std::size_t in_batch_ TROUPE_GUARDED_BY(mutex_) = 0;
  bool stopping_ TROUPE_GUARDED_BY(mutex_) = false;
  std::atomic<std::uint64_t> commits_{0};
  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace troupe::durable::detail
