// queue: a durable message queue with Amazon SQS semantics, embedded: an actor
// that stores its messages in an SQLite file, reachable like any actor
// (ref<queue_protocol>, from this node or any other) and supervised like any.
//
//   troupe::durable::queue_config cfg;
//   cfg.file = "/var/lib/app/jobs.db";
//   troupe::ref<troupe::durable::queue_protocol> q = troupe::durable::spawn_queue(sys, cfg).value();
//   q.ask(troupe::durable::send_message{.body = "job 1"}, 1s).get();               // durable when this returns
//   auto got = q.ask(troupe::durable::receive_messages{.max_messages = 10}, 1s).get();
//   for (auto& m : got.messages) { work(m.body); q.ask(troupe::durable::delete_message{m.receipt}, 1s).get(); }
//
// Semantics (docs/delivery.md compares them with Amazon SQS line by line):
// - send_message: stored, then acknowledged: a reply with status ok means the
//   message is committed to the file and survives kill -9 of the queue's
//   process (and power loss with queue_config::full_sync). Optional delay (the
//   message is invisible until then), attributes, and a de-duplication id: a
//   second send with the same id within dedup_window is acknowledged with the
//   first one's message id and duplicate = true, and not enqueued again.
// - receive_messages: up to max_messages visible messages, each leased for the
//   visibility timeout: invisible to other receivers until it ends, then
//   visible again (at-least-once). Each lease has its own receipt; its
//   receive_count says how often the message was handed out. With wait > 0 an
//   empty queue holds the request (long poll) until a message becomes visible or
//   the wait ends (then an empty, ok reply).
// - delete_message(receipt): removes the message for good, acknowledged once
//   committed. A receipt of an earlier lease — the message became visible again
//   and was received again — deletes nothing and fails with invalid_receipt: the
//   new lease is not disturbed. A receipt whose lease ran out but that nobody
//   took since still deletes (as SQS).
// - change_visibility(receipt, timeout): the lease now ends `timeout` from now
//   (0: visible at once); invalid_receipt if the lease already ended.
// - purge_messages: every message goes, leased or not (SQS's PurgeQueue).
// - Dead letters: with redrive.max_receives = N, a message received N times and
//   still not deleted is, instead of its (N+1)th delivery, sent to the
//   redrive.dead_letter queue (another queue actor: any node) and deleted here
//   once that queue acknowledged it. A crash in between can leave a copy in
//   both: the move is at-least-once.
// - FIFO (queue_config::fifo): messages carry a group_id; one group's messages
//   are handed out in send order and never two at once: while a group's oldest
//   message is leased, nothing else of that group is received (other groups
//   are). Delays are per queue in SQS FIFO; here a delayed FIFO message blocks
//   its group until it is visible.
// - A full queue (max_messages or max_bytes) refuses sends with queue_full; a
//   body over max_body_bytes or a parameter out of range gets invalid_request.
//   Errors come back in the reply's status, and the queue keeps running.
//
// Persistence: every message, lease, receive count and de-duplication id is
// in the file; after a restart (same file) the queue continues where its last
// commit left it: nothing acknowledged is lost, nothing deleted comes back,
// leases keep their end time (a crash does not lengthen or cut one).
// Group commit: the queue puts the writes of every request waiting in its
// mailbox into one transaction and replies to them all after its commit.
// Memory: bodies live in the file, not in memory; the queue holds the replies
// of one batch and at most max_waiters long polls.
//
// Clock: lease and delay ends are wall-clock times in the file, advanced by the
// system's clock (troupe::config's virtual clock in deterministic tests).
//
// Thread safety: the queue is an actor; talk to it by messages. SQLite calls run
// on the actor's thread: spawn_queue() runs it detached (a thread of its own)
// so disk waits never stall the scheduler's workers; spawning queue_actor on
// the scheduler (as a supervisor or a deterministic test does) works too.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::durable {

// The outcome carried in every reply (errors travel in replies, so that a bad
// request fails only itself).
struct queue_status {
  errc code = errc::ok;
  std::string text{};  // empty when ok
  [[nodiscard]] bool ok() const noexcept { return code == errc::ok; }
};

struct sent {
  queue_status status{};
  std::uint64_t message_id = 0;
  bool duplicate = false;  // a repeat of a de-duplication id: not enqueued again
};

struct send_message {
  std::string body{};  // bytes; SQS's limit is 256 KiB (queue_config::max_body_bytes)
  std::map<std::string, std::string> attributes{};
  std::chrono::milliseconds delay{0};  // invisible until then; at most 15 minutes (SQS)
  std::string group_id{};              // FIFO queues: required; standard queues: ignored
  std::string dedup_id{};              // optional: de-duplication within queue_config::dedup_window
  using reply = sent;
};

struct queue_message {
  std::uint64_t message_id = 0;
  std::string receipt{};  // names this lease: delete_message / change_visibility
  std::string body{};
  std::map<std::string, std::string> attributes{};
  std::uint32_t receive_count = 0;  // 1 on the first delivery
  std::string group_id{};
  std::int64_t sent_at_ms = 0;  // wall clock, milliseconds since the epoch
};

struct received {
  queue_status status{};
  std::vector<queue_message> messages{};
};

struct receive_messages {
  std::uint32_t max_messages = 1;                    // 1..queue_config::max_receive_batch
  std::chrono::milliseconds visibility_timeout{-1};  // < 0: the queue's default; at most 12 hours
  std::chrono::milliseconds wait{0};                 // long poll: at most 20 seconds (SQS)
  using reply = received;
};

struct delete_message {
  std::string receipt{};
  using reply = queue_status;
};

// SQS's DeleteMessageBatch: one status per receipt, in order.
struct delete_messages {
  std::vector<std::string> receipts{};
  using reply = std::vector<queue_status>;
};

struct change_visibility {
  std::string receipt{};
  std::chrono::milliseconds timeout{0};  // from now; 0 makes the message visible at once
  using reply = queue_status;
};

struct queue_stats {
  std::uint64_t messages = 0;  // stored: visible, leased or delayed
  std::uint64_t bytes = 0;     // their bodies
  std::uint64_t visible = 0;   // receivable now
  std::uint64_t sent = 0;      // counters since this actor started
  std::uint64_t received = 0;
  std::uint64_t deleted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t commits = 0;  // transactions (each a group commit)
};
struct get_queue_stats {
  using reply = queue_stats;
};

// SQS's PurgeQueue: deletes every message, visible, leased or delayed, once
// committed (receipts of leases it ended then fail with invalid_receipt). The
// de-duplication ids stay. Counted in queue_stats::deleted.
struct purge_messages {
  using reply = queue_status;
};

// The queue's own timer and commit signals: sent by the queue to itself.
struct queue_tick {};
struct queue_flush {};

using queue_protocol = protocol<send_message, receive_messages, delete_message, delete_messages, change_visibility,
                                get_queue_stats, queue_tick, queue_flush, purge_messages>;

struct redrive_policy {
  ref<queue_protocol> dead_letter{};  // empty: no dead-letter queue
  std::uint32_t max_receives = 0;     // a message received this often goes there next (0: never)
};

struct queue_config {
  std::string file{};  // the SQLite file (created if missing)
  bool fifo = false;   // FIFO: message-group order, one in flight per group
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds dedup_window{std::chrono::minutes(5)};
  std::uint64_t max_messages = 10'000'000;           // sends beyond: queue_full
  std::uint64_t max_bytes = std::uint64_t{4} << 30;  // of bodies; sends beyond: queue_full
  std::uint32_t max_body_bytes = 256 * 1024;
  std::uint32_t max_receive_batch = 1000;  // SQS allows 10; bigger batches cost fewer round trips
  std::uint32_t max_waiters = 1024;        // long polls held at once; more get an empty reply at once
  std::uint32_t max_batch = 4096;          // requests per transaction before a commit is forced
  redrive_policy redrive{};
  bool full_sync = false;                        // fsync every commit: survives power loss too
  std::chrono::milliseconds busy_timeout{2000};  // for a file another process holds
};

namespace detail {
class queue_engine;
}

class queue_actor : public actor<queue_protocol> {
 public:
  // Opens the file; throws troupe_error if it cannot (spawn_queue() reports
  // that as an error instead; under a supervisor it is a failed start).
  explicit queue_actor(const queue_config& config);
  ~queue_actor();
  queue_actor(const queue_actor&) = delete;
  queue_actor& operator=(const queue_actor&) = delete;

  void on(const send_message& m, reply_promise<sent> reply);
  void on(receive_messages m, reply_promise<received> reply);
  void on(const delete_message& m, reply_promise<queue_status> reply);
  void on(const delete_messages& m, reply_promise<std::vector<queue_status>> reply);
  void on(const change_visibility& m, reply_promise<queue_status> reply);
  void on(const purge_messages& m, reply_promise<queue_status> reply);
  queue_stats on(get_queue_stats);
  void on(queue_tick);
  void on(queue_flush);
  void on_stop();

 private:
  std::unique_ptr<detail::queue_engine> engine_;
};

// Opens config.file here (so a corrupt or locked file is an error returned,
// not a failed actor), then spawns the queue detached.
[[nodiscard]] expected<ref<queue_protocol>> spawn_queue(troupe::system& sys, const queue_config& config);

}  // namespace troupe::durable
