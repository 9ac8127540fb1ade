// queue_store: the SQL half of a durable queue — its tables, and each SQS
// operation as statements on them, with no actor, timer or reply in sight (the
// queue actor, queue_actor.cpp, adds those). Times are milliseconds since the
// epoch, given by the caller. Private to net/durable/.
//
// Tables: troupe_queue_messages (one row per stored message: body, attributes,
// group, visible_at — the end of its delay or lease —, receive_count, and
// lease: the token of its current lease, 0 if never received), and
// troupe_queue_dedup (de-duplication ids and when they expire).
// A receipt is "<message id>-<lease token>" in hex; a lease token is random and
// new at each receive (the messages of one receive share it), so an old
// receipt never matches a newer lease.
//
// Statements per message sent, received and deleted: the INSERT, one row of
// the receive's SELECT, a 64th of the receive's lease UPDATE (one per
// lease_chunk messages) and the DELETE, which checks the lease and hands over
// the body's size for the byte count in the same statement.
//
// Writes start a transaction (begin_if_needed) that the caller commits; the
// in-memory counts (messages, bytes) follow the writes and are reloaded after
// a rollback.
//
// Thread safety: one thread at a time (the queue actor's).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "database.hpp"
#include "troupe/durable/queue.hpp"

namespace troupe::durable::detail {

// A message picked by receive(), before it is leased.
struct picked_message {
  queue_message message;
  std::int64_t receive_count_before = 0;
};

class queue_store {
 public:
  [[nodiscard]] static expected<std::unique_ptr<queue_store>> open(const queue_config& config);

  // Counts of what is stored (kept in memory; see the top of this file).
  [[nodiscard]] std::uint64_t messages() const noexcept { return messages_; }
  [[nodiscard]] std::uint64_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] expected<std::uint64_t> visible(std::int64_t now);

  [[nodiscard]] bool in_transaction() const noexcept { return db_.in_transaction(); }
  [[nodiscard]] expected<void> begin_if_needed();
  [[nodiscard]] expected<void> commit();
  // Undoes the open transaction (if any) and reloads the counts.
  void rollback();

  struct send_outcome {
    std::uint64_t message_id = 0;
    bool duplicate = false;
  };
  // Stores `m` (visible at now + delay), or finds its dedup_id's first message.
  [[nodiscard]] expected<send_outcome> send(const send_message& m, std::int64_t now, std::int64_t dedup_window_ms);

  // Up to `max` receivable messages (FIFO: the oldest of each group with
  // nothing of it leased), oldest visible first. Reads only.
  [[nodiscard]] expected<std::vector<picked_message>> pick(std::uint32_t max, std::int64_t now, bool fifo);
  // Leases `messages` (picked, distinct) until `until`: one new token for all
  // of them, so one UPDATE per lease_chunk messages; each gets its receipt and
  // receive_count + 1.
  [[nodiscard]] expected<void> lease(std::span<queue_message* const> messages, std::int64_t until);
  static constexpr std::size_t lease_chunk = 64;

  // Deletes the message `receipt` names, if that lease is its current one.
  [[nodiscard]] expected<void> remove(const std::string& receipt);
  // Moves the end of the current lease `receipt` names to `until`, if that
  // lease has not ended by `now`.
  [[nodiscard]] expected<void> change_visibility(const std::string& receipt, std::int64_t until, std::int64_t now);

  // The earliest visible_at after `now`, if any message becomes visible later.
  [[nodiscard]] expected<std::optional<std::int64_t>> next_visible_after(std::int64_t now);
  // Forgets de-duplication ids that expired by `now`.
  [[nodiscard]] expected<void> purge_dedup(std::int64_t now);
  // SQS's PurgeQueue: deletes every message, visible, leased or delayed (the
  // de-duplication ids stay). Returns how many there were.
  [[nodiscard]] expected<std::uint64_t> purge();

  [[nodiscard]] const std::string& path() const noexcept { return db_.path(); }

 private:
  explicit queue_store(database db) noexcept : db_(std::move(db)) {}
  statement& prepared(const char* sql) { return statements_.get(sql); }
  expected<void> load_counts();
  std::uint64_t new_token();

  database db_;
  statement_cache statements_{db_};
  std::uint64_t messages_ = 0;
  std::uint64_t bytes_ = 0;
  std::int64_t deleted_size_ = -1;  // set by troupe_note_size() in remove()'s DELETE
  std::mt19937_64 tokens_{std::random_device{}()};
};

// Receipts are untrusted input (they come back from any client): parsed
// strictly, nullopt if malformed.
struct receipt_parts {
  std::int64_t message_id = 0;
  std::int64_t token = 0;
};
[[nodiscard]] std::optional<receipt_parts> parse_receipt(const std::string& receipt) noexcept;
[[nodiscard]] std::string make_receipt(std::int64_t message_id, std::int64_t token);

}  // namespace troupe::durable::detail
