// database: see database.hpp.
#include "database.hpp"

#include <sqlite3.h>

#include <climits>
#include <utility>

namespace troupe::durable::detail {

error sqlite_error(int code, std::string_view message, std::string_view path, std::string_view what) {
  const int primary = code & 0xff;
  std::string text = "SQLite file '" + std::string(path) + "': " + std::string(what) + ": ";
  switch (primary) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      text += "locked by another process or connection (it keeps the file open); waited for the busy timeout";
      return {errc::storage_locked, text + " (" + std::string(message) + ")"};
    case SQLITE_NOTADB:
      text += "is not an SQLite database (or its header is damaged)";
      break;
    case SQLITE_CORRUPT:
      text += "is corrupt";
      break;
    case SQLITE_CANTOPEN:
      text += "cannot open (does its directory exist, and may this process write there?)";
      break;
    case SQLITE_READONLY:
      text += "is read-only for this process";
      break;
    case SQLITE_FULL:
      text += "the disk is full";
      break;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      text += "permission denied";
      break;
    default:
      text += sqlite3_errstr(code);
      break;
  }
  return {errc::storage_failed, text + " (" + std::string(message) + ")"};
}

// --- statement ---------------------------------------------------------------

statement::statement(statement&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), stmt_(std::exchange(other.stmt_, nullptr)) {}

statement& statement::operator=(statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = std::exchange(other.db_, nullptr);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

statement::~statement() { sqlite3_finalize(stmt_); }

statement& statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

statement& statement::bind(int index, std::span<const std::byte> value) {
  // A zero-length blob is still a blob, not NULL: SQLite needs a non-null pointer.
  static const std::byte empty{};
  const void* data = value.empty() ? &empty : value.data();
  sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_STATIC);
  return *this;
}

statement& statement::bind(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
  return *this;
}

statement& statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

expected<bool> statement::next() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  error e =
      sqlite_error(rc, sqlite3_errmsg(db_), sqlite3_db_filename(db_, "main") ? sqlite3_db_filename(db_, "main") : "",
                   sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "a statement");
  sqlite3_reset(stmt_);
  return e;
}

expected<void> statement::run() {
  for (;;) {
    expected<bool> row = next();
    if (!row) {
      reset();
      return row.error();
    }
    if (!*row) break;
  }
  reset();
  return {};
}

void statement::reset() noexcept {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t statement::column_int64(int column) const noexcept { return sqlite3_column_int64(stmt_, column); }

bool statement::column_is_null(int column) const noexcept { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::span<const std::byte> statement::column_blob(int column) const noexcept {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const std::byte*>(data), static_cast<std::size_t>(size)};
}

std::string_view statement::column_text(int column) const noexcept {
  const unsigned char* data = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr || size <= 0) return {};
  return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(size)};
}

// --- statement_cache -----------------------------------------------------------

statement& statement_cache::get(const char* sql) {
  auto found = statements_.find(sql);
  if (found == statements_.end()) {
    expected<statement> made = db_->prepare(sql);
    if (!made) throw troupe_error(made.error());
    found = statements_.emplace(sql, std::move(*made)).first;
  }
  found->second.reset();
  return found->second;
}

// --- database ----------------------------------------------------------------

expected<database> database::open(const std::string& path, const database_options& options) {
  sqlite3* handle = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    error e = sqlite_error(rc, handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc), path, "open");
    sqlite3_close(handle);
    return e;
  }
  database db(handle, path);
  sqlite3_extended_result_codes(handle, 1);
  const auto timeout = options.busy_timeout.count();
  sqlite3_busy_timeout(handle, timeout > INT_MAX ? INT_MAX : static_cast<int>(timeout));
  // The order matters: exclusive locking before WAL, so the WAL index lives in
  // this process's memory (no -shm file), then the lock taken at once.
  if (auto r = db.exec("PRAGMA locking_mode=EXCLUSIVE"); !r) return r.error();
  auto mode = db.prepare("PRAGMA journal_mode=WAL");
  if (!mode) return mode.error();
  expected<bool> row = mode->next();
  if (!row) return row.error();
  if (!*row || mode->column_text(0) != "wal") {
    return error(errc::storage_failed, "SQLite file '" + path + "': cannot switch to WAL mode (journal_mode is '" +
                                           std::string(*row ? mode->column_text(0) : "") + "')");
  }
  mode->reset();
  if (auto r = db.exec(options.full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL"); !r) {
    return r.error();
  }
  // Takes the exclusive lock now (kept until close: locking_mode=EXCLUSIVE), so
  // a second owner is refused here and not at its first write.
  if (auto r = db.exec("BEGIN EXCLUSIVE"); !r) return r.error();
  if (auto r = db.exec("COMMIT"); !r) return r.error();
  return db;
}

database::database(database&& other) noexcept : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

database& database::operator=(database&& other) noexcept {
  if (this != &other) {
    sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

database::~database() { sqlite3_close_v2(db_); }

expected<void> database::exec(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return {};
  error e = sqlite_error(rc, message != nullptr ? message : sqlite3_errmsg(db_), path_, sql);
  sqlite3_free(message);
  return e;
}

expected<statement> database::prepare(const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(rc, sqlite3_errmsg(db_), path_, sql);
  return statement(db_, stmt);
}

expected<void> database::define_note(const char* name, std::int64_t* slot) {
  auto note = [](sqlite3_context* context, int /*argc*/, sqlite3_value** argv) {
    *static_cast<std::int64_t*>(sqlite3_user_data(context)) = sqlite3_value_int64(argv[0]);
    sqlite3_result_int(context, 1);
  };
  // DIRECTONLY: usable in this connection's own statements, never from a
  // trigger or view a damaged or hostile file might carry.
  const int rc =
      sqlite3_create_function_v2(db_, name, 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, slot, note, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(rc, sqlite3_errmsg(db_), path_, "define an SQL function");
  return {};
}

std::int64_t database::changes() const noexcept { return sqlite3_changes64(db_); }

std::int64_t database::last_insert_rowid() const noexcept { return sqlite3_last_insert_rowid(db_); }

bool database::in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }

error database::last_error(std::string_view what) const {
  return sqlite_error(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_), path_, what);
}

}  // namespace troupe::durable::detail
