// database.hpp and group_writer.hpp: opening real SQLite files (good, corrupt,
// unwritable, held by another process) and group commit.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "database.hpp"
#include "durable/durable_support.hpp"
#include "group_writer.hpp"
#include "support/watchdog.hpp"
#include "troupe/durable/outbox.hpp"

namespace {

using troupe::durable::detail::database;
using troupe::durable::detail::database_options;
using troupe::durable::detail::group_writer;

// Holds a group_writer's thread inside a piece of work until release(), so
// that what is submitted meanwhile piles up for the next batch.
class writer_blocker {
 public:
  explicit writer_blocker(group_writer& writer) {
    writer.submit(
        [this](group_writer::session&) -> troupe::expected<void> {
          std::unique_lock lock(mutex_);
          started_ = true;
          changed_.notify_all();
          changed_.wait(lock, [&] { return released_; });
          finished_ = true;
          changed_.notify_all();
          return {};
        },
        {});
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return started_; });
  }
  writer_blocker(const writer_blocker&) = delete;
  writer_blocker& operator=(const writer_blocker&) = delete;
  // Also when a test ends early: the writer's thread must be out of this first.
  ~writer_blocker() {
    release();
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return finished_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool started_ = false;
  bool released_ = false;
  bool finished_ = false;
};

std::string text_of(const troupe::expected<database>& db) { return db ? "" : db.error().to_string(); }

TEST(database, opens_a_new_file_in_wal_mode_with_normal_synchronous) {
  durable_test::scratch_dir dir;
  auto db = database::open(dir.file("a.db").string(), {});
  ASSERT_TRUE(db) << text_of(db);
  auto mode = db->prepare("PRAGMA journal_mode").value();
  ASSERT_TRUE(mode.next().value());
  EXPECT_EQ(mode.column_text(0), "wal");
  auto sync = db->prepare("PRAGMA synchronous").value();
  ASSERT_TRUE(sync.next().value());
  EXPECT_EQ(sync.column_int64(0), 1);  // NORMAL
}

TEST(database, full_sync_sets_synchronous_full) {
  durable_test::scratch_dir dir;
  database_options options;
  options.full_sync = true;
  auto db = database::open(dir.file("a.db").string(), options);
  ASSERT_TRUE(db) << text_of(db);
  auto sync = db->prepare("PRAGMA synchronous").value();
  ASSERT_TRUE(sync.next().value());
  EXPECT_EQ(sync.column_int64(0), 2);  // FULL
}

TEST(database, a_file_that_is_not_a_database_is_a_clear_storage_error) {
  durable_test::scratch_dir dir;
  const auto path = dir.file("garbage.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 200; ++i) out << "this is not an SQLite database, just text. ";
  }
  auto db = database::open(path.string(), {});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), troupe::errc::storage_failed);
  EXPECT_NE(db.error().text().find("is not an SQLite database"), std::string::npos) << db.error();
  EXPECT_NE(db.error().text().find(path.string()), std::string::npos) << db.error();
}

TEST(database, a_database_whose_header_was_overwritten_is_a_clear_storage_error) {
  durable_test::scratch_dir dir;
  const auto path = dir.file("damaged.db");
  {
    auto db = database::open(path.string(), {});
    ASSERT_TRUE(db) << text_of(db);
    ASSERT_TRUE(db->exec("CREATE TABLE t(v); INSERT INTO t VALUES (1); PRAGMA wal_checkpoint(TRUNCATE)"));
  }
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(0);
    file << "CORRUPTED HEADER!";  // the first 16 bytes are SQLite's magic string
  }
  auto db = database::open(path.string(), {});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), troupe::errc::storage_failed);
  EXPECT_NE(db.error().text().find("is not an SQLite database"), std::string::npos) << db.error();
}

TEST(database, a_path_in_a_missing_directory_is_a_clear_storage_error) {
  durable_test::scratch_dir dir;
  auto db = database::open(dir.file("no-such-dir/a.db").string(), {});
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code(), troupe::errc::storage_failed);
  EXPECT_NE(db.error().text().find("cannot open"), std::string::npos) << db.error();
}

TEST(database, a_file_another_process_holds_is_storage_locked_after_the_busy_timeout_then_opens_once_released) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  const auto path = dir.file("held.db");
  durable_test::child holder({"outbox-hold", path.string()});
  ASSERT_EQ(holder.read_line(), "open");

  database_options options;
  options.busy_timeout = std::chrono::milliseconds(200);
  auto refused = database::open(path.string(), options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), troupe::errc::storage_locked) << refused.error();
  EXPECT_NE(refused.error().text().find("locked by another process"), std::string::npos) << refused.error();
  // The outbox says the same.
  troupe::durable::outbox_options box_options;
  box_options.busy_timeout = std::chrono::milliseconds(200);
  auto box = troupe::durable::outbox::open(path, "x", box_options);
  ASSERT_FALSE(box);
  EXPECT_EQ(box.error().code(), troupe::errc::storage_locked) << box.error();

  holder.close_stdin();
  const std::optional<int> status = holder.wait();
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  auto opened = database::open(path.string(), options);
  EXPECT_TRUE(opened) << text_of(opened);
}

TEST(group_writer, work_submitted_while_the_writer_is_busy_shares_one_commit) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  auto writer = group_writer::open(dir.file("g.db").string(), {}, "CREATE TABLE t(v INTEGER)").value();

  // The first batch holds the writer until released, so the next 100 pile up.
  writer_blocker blocker(*writer);
  std::atomic<int> done{0};
  constexpr int count = 100;
  for (int i = 0; i < count; ++i) {
    writer->submit(
        [i](group_writer::session& s) {
          return s.prepared("INSERT INTO t VALUES (?1)").bind(1, std::int64_t{i}).run();
        },
        [&](const troupe::expected<void>& r) {
          EXPECT_TRUE(r);
          done.fetch_add(1);
        });
  }
  // A sentinel after the 100: when it is done, they are too.
  std::promise<void> flushed;
  writer->submit([](group_writer::session&) -> troupe::expected<void> { return {}; },
                 [&](const troupe::expected<void>&) { flushed.set_value(); });
  EXPECT_EQ(writer->pending(), static_cast<std::size_t>(count + 2));
  EXPECT_EQ(writer->commits(), 0u);
  blocker.release();
  flushed.get_future().wait();
  EXPECT_EQ(done.load(), count);
  EXPECT_EQ(writer->commits(), 2u) << "the blocker's batch, then one batch for the 100 inserts and the sentinel";
}

TEST(group_writer, a_failing_piece_of_work_rolls_back_its_whole_batch_and_reports_the_error_to_each) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  auto writer = group_writer::open(dir.file("g.db").string(), {}, "CREATE TABLE t(v INTEGER UNIQUE)").value();
  writer_blocker blocker(*writer);
  std::vector<troupe::expected<void>> results;
  std::promise<void> all_done;
  for (int v : {1, 2, 1}) {  // the second 1 violates UNIQUE
    writer->submit(
        [v](group_writer::session& s) {
          return s.prepared("INSERT INTO t VALUES (?1)").bind(1, std::int64_t{v}).run();
        },
        [&](const troupe::expected<void>& r) {
          results.push_back(r);
          if (results.size() == 3) all_done.set_value();
        });
  }
  blocker.release();
  all_done.get_future().wait();
  for (const auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), troupe::errc::storage_failed);
  }
  // Nothing of the batch is in the table.
  std::promise<std::int64_t> rows;
  writer->submit(
      [&](group_writer::session& s) -> troupe::expected<void> {
        auto& count = s.prepared("SELECT count(*) FROM t");
        if (!count.next().value()) return troupe::error(troupe::errc::storage_failed, "no row");
        rows.set_value(count.column_int64(0));
        count.reset();
        return {};
      },
      {});
  EXPECT_EQ(rows.get_future().get(), 0);
}

}  // namespace
