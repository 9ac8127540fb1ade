// database: troupe's thin wrapper of one SQLite connection — open with the
// settings every durable store uses, prepared statements, errors as
// troupe::error. Private to net/durable/ (and its tests and bench).
//
//   auto db = troupe::durable::detail::database::open("/var/lib/app/q.db", {});
//   if (!db) return db.error();           // storage_failed / storage_locked, with the reason
//   auto insert = db->prepare("INSERT INTO t(v) VALUES(?1)").value();
//   insert.bind(1, std::int64_t{7}); (void)insert.run();
//
// What open() sets, and why:
// - journal_mode=WAL: a commit appends to the write-ahead log; readers never
//   block the writer.
// - synchronous=NORMAL by default: a commit write()s the log but does not
//   fsync it; the log is fsynced at each checkpoint. A committed transaction
//   survives kill -9 of the process (the data is in the kernel's page cache);
//   the last transactions before a power loss or a kernel crash may be lost, the
//   file is never corrupted. synchronous=FULL (database_options::full_sync)
//   fsyncs the log at every commit: committed transactions survive power loss
//   too, and group commit is what keeps that affordable.
// - locking_mode=EXCLUSIVE and an exclusive lock taken at open and held until
//   close: one owner per file, so a second process (or a second connection of
//   this one) opening it gets errc::storage_locked after the busy timeout,
//   instead of two owners corrupting each other's view. A process killed -9
//   releases the lock with it (POSIX locks).
// - busy_timeout: how long open() keeps retrying a lock another process holds.
// Errors at open: a file that is not an SQLite database (or whose header is
// damaged) → storage_failed "... is not an SQLite database"; a directory that
// does not exist or cannot be written → storage_failed "cannot open"; a
// read-only file → storage_failed "read-only"; a held lock → storage_locked.
//
// Thread safety: a database and its statements are used by one thread at a
// time (SQLite's multi-thread mode); moving them between threads is fine.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "troupe/runtime/error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace troupe::durable::detail {

struct database_options {
  std::chrono::milliseconds busy_timeout{2000};
  bool full_sync = false;  // synchronous=FULL instead of NORMAL (see the top of this file)
};

class statement {
 public:
  statement() = default;
  statement(sqlite3* db, sqlite3_stmt* stmt) noexcept : db_(db), stmt_(stmt) {}
  statement(statement&& other) noexcept;
  statement& operator=(statement&& other) noexcept;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  ~statement();

  // Parameters are 1-based, as in SQL's ?1. Blobs and text are copied by SQLite
  // only if the statement outlives them: bind right before run()/next().
  statement& bind(int index, std::int64_t value);
  statement& bind(int index, std::span<const std::byte> value);
  statement& bind(int index, std::string_view value);
  statement& bind_null(int index);

  // One step: true if a row is ready to read, false when done.
  [[nodiscard]] expected<bool> next();
  // Runs to completion and resets (for INSERT/UPDATE/DELETE).
  [[nodiscard]] expected<void> run();
  // Ready for the next use: resets and clears the bindings.
  void reset() noexcept;

  [[nodiscard]] std::int64_t column_int64(int column) const noexcept;
  [[nodiscard]] bool column_is_null(int column) const noexcept;
  // Valid until the next step or reset.
  [[nodiscard]] std::span<const std::byte> column_blob(int column) const noexcept;
  [[nodiscard]] std::string_view column_text(int column) const noexcept;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class database {
 public:
  [[nodiscard]] static expected<database> open(const std::string& path, const database_options& options);

  database(database&& other) noexcept;
  database& operator=(database&& other) noexcept;
  database(const database&) = delete;
  database& operator=(const database&) = delete;
  ~database();

  [[nodiscard]] expected<void> exec(const char* sql);
  [[nodiscard]] expected<statement> prepare(const char* sql);
  [[nodiscard]] std::int64_t changes() const noexcept;
  // Defines the SQL function `name(x)` on this connection: it stores the
  // integer x in *slot and returns 1, so a statement can hand a value of the
  // row it works on to C++ without a RETURNING clause (which makes SQLite keep
  // a statement journal). Not deterministic: evaluated for each row. `slot`
  // must outlive the connection's use of the function.
  [[nodiscard]] expected<void> define_note(const char* name, std::int64_t* slot);
  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept;
  [[nodiscard]] bool in_transaction() const noexcept;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // The last failure of this connection as a troupe::error: `what` is the step.
  [[nodiscard]] error last_error(std::string_view what) const;

 private:
  database(sqlite3* db, std::string path) noexcept : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::string path_;
};

// The prepared statements of one connection, one per SQL string literal
// (keyed by the literal's address: one per call site), each handed out reset
// and ready to bind. The database must outlive it and stay where it is.
class statement_cache {
 public:
  explicit statement_cache(database& db) noexcept : db_(&db) {}
  // Throws troupe_error if `sql` does not prepare (a bug in the SQL, or a
  // schema damaged behind our back).
  statement& get(const char* sql);

 private:
  database* db_;
  std::map<const char*, statement> statements_;
};

// An SQLite result code and its connection's message as a troupe::error, with
// `path` and `what` (the step) in the text.
[[nodiscard]] error sqlite_error(int code, std::string_view message, std::string_view path, std::string_view what);

}  // namespace troupe::durable::detail
