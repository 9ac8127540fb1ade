// outbox: see troupe/durable/outbox.hpp. Every outbox of one file in this
// process shares one group_writer (one connection, one writer thread): the
// file's exclusive lock allows one connection, and one writer is what makes
// their appends share commits.
#include "troupe/durable/outbox.hpp"

#include <future>
#include <map>
#include <system_error>
#include <utility>

#include "group_writer.hpp"
#include "troupe/mailbox/mutex.hpp"

namespace troupe::durable {

namespace {

constexpr const char* schema =
    "CREATE TABLE IF NOT EXISTS troupe_outbox ("
    "  name TEXT NOT NULL, seq INTEGER NOT NULL, bytes BLOB NOT NULL,"
    "  PRIMARY KEY (name, seq)) WITHOUT ROWID";

// The writers of this process, by file (canonical path).
struct writer_registry {
  troupe::mutex mutex;
  std::map<std::string, std::weak_ptr<detail::group_writer>> writers TROUPE_GUARDED_BY(mutex);
};

writer_registry& registry() {
  static writer_registry instance;
  return instance;
}

expected<std::shared_ptr<detail::group_writer>> writer_for(const std::filesystem::path& file,
                                                           const outbox_options& options) {
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(file, ec);
  if (ec) canonical = std::filesystem::absolute(file, ec);
  if (ec) canonical = file;
  writer_registry& r = registry();
  troupe::mutex_lock lock(r.mutex);
  std::weak_ptr<detail::group_writer>& slot = r.writers[canonical.string()];
  if (std::shared_ptr<detail::group_writer> open = slot.lock()) return open;
  detail::database_options db_options;
  db_options.busy_timeout = options.busy_timeout;
  db_options.full_sync = options.full_sync;
  auto made = detail::group_writer::open(canonical.string(), db_options, schema);
  if (!made) {
    r.writers.erase(canonical.string());
    return made.error();
  }
  slot = *made;
  return made;
}

// Blocks the calling thread until `done` runs on the writer thread.
template <class T>
struct waiter {
  std::promise<expected<T>> promise;
  std::future<expected<T>> future = promise.get_future();
};

}  // namespace

expected<outbox> outbox::open(const std::filesystem::path& file, std::string name, const outbox_options& options) {
  auto writer = writer_for(file, options);
  if (!writer) return writer.error();
  return outbox(std::move(*writer), std::move(name));
}

void outbox::append(std::uint64_t seq, std::span<const std::byte> bytes, on_durable done) {
  append(seq, std::vector<std::byte>(bytes.begin(), bytes.end()), std::move(done));
}

void outbox::append(std::uint64_t seq, std::vector<std::byte> bytes, on_durable done) {
  writer_->submit(
      [name = name_, seq, bytes = std::move(bytes)](detail::group_writer::session& s) {
        return s.prepared("INSERT OR REPLACE INTO troupe_outbox(name, seq, bytes) VALUES (?1, ?2, ?3)")
            .bind(1, name)
            .bind(2, static_cast<std::int64_t>(seq))
            .bind(3, std::span<const std::byte>(bytes))
            .run();
      },
      std::move(done));
}

void outbox::confirm(std::uint64_t up_to_seq, on_durable done) {
  writer_->submit(
      [name = name_, up_to_seq](detail::group_writer::session& s) {
        // Sequence numbers are stored as SQLite's signed 64-bit integers, so
        // the comparison is done on that same mapping of the unsigned values.
        return s.prepared("DELETE FROM troupe_outbox WHERE name = ?1 AND seq <= ?2")
            .bind(1, name)
            .bind(2, static_cast<std::int64_t>(up_to_seq))
            .run();
      },
      std::move(done));
}

expected<std::vector<outbox_entry>> outbox::load() const {
  auto entries = std::make_shared<std::vector<outbox_entry>>();
  auto wait = std::make_shared<waiter<void>>();
  writer_->submit(
      [name = name_, entries](detail::group_writer::session& s) -> expected<void> {
        detail::statement& select = s.prepared("SELECT seq, bytes FROM troupe_outbox WHERE name = ?1 ORDER BY seq");
        select.bind(1, name);
        for (;;) {
          expected<bool> row = select.next();
          if (!row) return row.error();
          if (!*row) break;
          std::span<const std::byte> bytes = select.column_blob(1);
          entries->push_back(outbox_entry{static_cast<std::uint64_t>(select.column_int64(0)),
                                          std::vector<std::byte>(bytes.begin(), bytes.end())});
        }
        select.reset();
        return {};
      },
      [wait](const expected<void>& r) { wait->promise.set_value(r); });
  expected<void> r = wait->future.get();
  if (!r) return r.error();
  return std::move(*entries);
}

expected<void> outbox::flush() const {
  auto wait = std::make_shared<waiter<void>>();
  writer_->submit([](detail::group_writer::session&) -> expected<void> { return {}; },
                  [wait](const expected<void>& r) { wait->promise.set_value(r); });
  return wait->future.get();
}

std::size_t outbox::pending() const { return writer_->pending(); }

}  // namespace troupe::durable
