// outbox: a durable, ordered log of numbered messages a producer has sent and
// not yet seen confirmed — the durable producer side of a reliable channel.
// After a kill -9 the producer reopens it and sends load()'s entries again.
//
//   auto box = troupe::durable::outbox::open("/var/lib/app/out.db", "orders").value();
//   for (auto& e : box.load().value()) resend(e.seq, e.bytes);      // after a restart
//   box.append(seq, bytes, [self](const troupe::expected<void>& r) { self.tell(stored{seq, r.has_value()}); });
//   box.confirm(acked_seq);                                           // the consumer has them all up to here
//
// Durability: append() returns at once; its callback runs once the entry's
// transaction has committed (or failed). Appends and confirms from every
// outbox of one file in this process are group-committed: one writer thread
// puts everything pending into one transaction, so a burst costs one commit,
// not one per message. A committed entry survives kill -9 of the process;
// with outbox_options::full_sync it also survives power loss (see
// net/durable/src/database.hpp for the SQLite settings: WAL, synchronous=NORMAL
// or FULL). An entry whose callback has not yet run may or may not survive.
//
// Order: appends and confirms take effect in call order (one thread's calls,
// or calls ordered by happens-before); load() returns entries by ascending seq.
// append() of a seq already present replaces its bytes. confirm(n) deletes
// every entry with seq <= n.
//
// Memory: entries wait in memory only until their transaction commits (one
// batch); the caller bounds how many are in flight (a reliable channel's
// confirmation window does). pending() says how many wait.
//
// Files: one file may hold many outboxes (by name), used by one process at a
// time: a second process opening it gets errc::storage_locked after the busy
// timeout. Errors at open: storage_failed (not a database, corrupt, unwritable
// path), storage_locked.
//
// Thread safety: every member from any thread, an actor's handler included —
// nothing but load() and flush() blocks, and those wait for one transaction.
// Callbacks run on the writer thread, in commit order: keep them short (a
// tell() to the actor that cares), and never call flush() or load() in one.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe::durable {

namespace detail {
class group_writer;
}

struct outbox_options {
  std::chrono::milliseconds busy_timeout{2000};  // how long open() waits for another process's lock
  bool full_sync = false;                        // fsync every commit (survives power loss)
};

struct outbox_entry {
  std::uint64_t seq = 0;
  std::vector<std::byte> bytes;
};

class outbox {
 public:
  using on_durable = std::function<void(const expected<void>&)>;

  // Opens (creating if needed) the outbox `name` in the SQLite file `file`.
  [[nodiscard]] static expected<outbox> open(const std::filesystem::path& file, std::string name,
                                             const outbox_options& options = {});

  // Stores (seq, bytes); `done` (may be empty) runs once it is durable, or failed.
  void append(std::uint64_t seq, std::span<const std::byte> bytes, on_durable done = {});
  void append(std::uint64_t seq, std::vector<std::byte> bytes, on_durable done = {});
  // Deletes every entry with seq <= up_to_seq; `done` as for append().
  void confirm(std::uint64_t up_to_seq, on_durable done = {});

  // The entries not confirmed, by ascending seq (including those appended
  // before this call). Blocks for one transaction.
  [[nodiscard]] expected<std::vector<outbox_entry>> load() const;
  // Waits until everything appended or confirmed before this call is durable;
  // the first failure among them, if any. Blocks.
  [[nodiscard]] expected<void> flush() const;
  // Appends and confirms (of any outbox of this file) not yet committed.
  [[nodiscard]] std::size_t pending() const;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

 private:
  outbox(std::shared_ptr<detail::group_writer> writer, std::string name) noexcept
      : writer_(std::move(writer)), name_(std::move(name)) {}
  std::shared_ptr<detail::group_writer> writer_;
  std::string name_;
};

}  // namespace troupe::durable
