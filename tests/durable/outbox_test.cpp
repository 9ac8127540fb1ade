// outbox.hpp: append, confirm, load across reopen, several outboxes in one
// file, and kill -9 of the appending process with exact accounting.
#include "troupe/durable/outbox.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "durable/durable_support.hpp"
#include "support/watchdog.hpp"

namespace durable_test {
std::vector<std::byte> entry_body(std::uint64_t seq);  // main.cpp: what the child role appends
}

namespace {

using troupe::durable::outbox;
using troupe::durable::outbox_entry;

std::vector<std::byte> bytes_of(const std::string& text) {
  std::vector<std::byte> bytes;
  for (char c : text) bytes.push_back(static_cast<std::byte>(c));
  return bytes;
}

std::vector<std::uint64_t> seqs_of(const std::vector<outbox_entry>& entries) {
  std::vector<std::uint64_t> seqs;
  for (const auto& e : entries) seqs.push_back(e.seq);
  return seqs;
}

TEST(outbox, entries_appended_out_of_order_load_by_ascending_seq_after_reopening) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  {
    auto box = outbox::open(dir.file("o.db"), "a").value();
    for (std::uint64_t seq : {5, 1, 3, 2, 4}) box.append(seq, bytes_of("m" + std::to_string(seq)));
    ASSERT_TRUE(box.flush());
  }
  auto box = outbox::open(dir.file("o.db"), "a").value();
  auto entries = box.load().value();
  EXPECT_EQ(seqs_of(entries), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(entries[2].bytes, bytes_of("m3"));
}

TEST(outbox, the_callback_runs_once_the_entry_is_durable_and_load_then_sees_it) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  auto box = outbox::open(dir.file("o.db"), "a").value();
  std::promise<troupe::expected<void>> durable;
  box.append(7, bytes_of("seven"), [&](const troupe::expected<void>& r) { durable.set_value(r); });
  ASSERT_TRUE(durable.get_future().get());
  EXPECT_EQ(box.pending(), 0u);
  auto entries = box.load().value();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].seq, 7u);
  EXPECT_EQ(entries[0].bytes, bytes_of("seven"));
}

TEST(outbox, confirm_deletes_every_entry_up_to_and_including_its_seq_and_no_other) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  {
    auto box = outbox::open(dir.file("o.db"), "a").value();
    for (std::uint64_t seq = 1; seq <= 10; ++seq) box.append(seq, bytes_of("x"));
    box.confirm(6);
    ASSERT_TRUE(box.flush());
  }
  auto box = outbox::open(dir.file("o.db"), "a").value();
  EXPECT_EQ(seqs_of(box.load().value()), (std::vector<std::uint64_t>{7, 8, 9, 10}));
}

TEST(outbox, appending_a_seq_again_replaces_its_bytes) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  auto box = outbox::open(dir.file("o.db"), "a").value();
  box.append(1, bytes_of("old"));
  box.append(1, bytes_of("new"));
  auto entries = box.load().value();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].bytes, bytes_of("new"));
}

TEST(outbox, outboxes_of_one_file_keep_their_entries_apart) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  auto a = outbox::open(dir.file("o.db"), "a").value();
  auto b = outbox::open(dir.file("o.db"), "b").value();
  a.append(1, bytes_of("a1"));
  b.append(1, bytes_of("b1"));
  b.append(2, bytes_of("b2"));
  a.confirm(5);
  EXPECT_TRUE(a.load().value().empty());
  EXPECT_EQ(seqs_of(b.load().value()), (std::vector<std::uint64_t>{1, 2}));
}

TEST(outbox, empty_bytes_are_stored_as_an_empty_entry) {
  durable_test::scratch_dir dir;
  auto box = outbox::open(dir.file("o.db"), "a").value();
  box.append(1, std::vector<std::byte>{});
  auto entries = box.load().value();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_TRUE(entries[0].bytes.empty());
}

// A child appends 1..N as fast as it can and reports each durable seq; it is
// killed -9 mid-stream. Reopened, the outbox holds exactly 1..M for some M at
// least the highest seq reported durable (commits are in order: a prefix),
// each with its bytes intact.
TEST(outbox, every_entry_reported_durable_survives_kill_9_of_the_appending_process) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  const auto path = dir.file("o.db");
  constexpr std::uint64_t total = 200000;
  std::uint64_t highest_durable = 0;
  {
    durable_test::child appender({"outbox-append", path.string(), std::to_string(total)});
    ASSERT_EQ(appender.read_line(), "open");
    // Kill once a good number are durable but (almost surely) not all.
    while (highest_durable < 2000) {
      std::optional<std::string> line = appender.read_line();
      ASSERT_TRUE(line) << "the child stopped reporting after durable " << highest_durable;
      ASSERT_EQ(line->rfind("durable ", 0), 0u) << *line;
      const std::uint64_t seq = std::stoull(line->substr(8));
      ASSERT_EQ(seq, highest_durable + 1) << "callbacks run in commit order";
      highest_durable = seq;
    }
    const int status = appender.kill();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  auto box = outbox::open(path, "stream").value();
  auto entries = box.load().value();
  ASSERT_GE(entries.size(), highest_durable);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    ASSERT_EQ(entries[i].seq, i + 1) << "not a prefix: a gap at " << i + 1;
    ASSERT_EQ(entries[i].bytes, durable_test::entry_body(i + 1));
  }
  RecordProperty("durable_reported", static_cast<int>(highest_durable));
  RecordProperty("found_after_kill", static_cast<int>(entries.size()));
}

}  // namespace
