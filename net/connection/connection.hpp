// connection: one connection to one peer node, whatever carries it. Owns: the
// record handling both transports share. May use: runtime/, wire/, os/.
//
// A transport subclasses it (shm/shm_connection.hpp on one host,
// tcp/tcp_connection.hpp across machines) and provides write(), close() and a
// reader thread that calls handle() for each whole record; everything a record
// means — a message for an actor, a reply to a remote ask, a watch, a lookup or
// spawn request, the schema check of an outgoing message — is here, once.
//
// Thread safety: write() from any thread (each transport orders its writers);
// handle() and the reader's cache only on the connection's reader thread;
// request(), add_pending() and fail_pending() from any thread (pending_mutex_).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "connection/peer_info.hpp"
#include "connection/records.hpp"
#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/detail/remote.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

class node_core;

// One connection to one peer node: the record handling both transports share
// (messages, replies, watches, control requests, the schema check), over a
// transport a subclass provides (shm_connection below; tcp_connection in
// tcp.hpp). A subclass's reader calls handle() for each whole record.
class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(node_core& node, std::shared_ptr<peer_info> peer, schema_map peer_schema);
  virtual ~connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  virtual void start() = 0;
  // Writes one record (kind + head + body). Actors, timer and reader threads
  // never block here; when the transport is backed up their records queue, up
  // to max_queued_bytes of user messages (then errc::peer_overloaded). A plain
  // thread waits for room instead (backpressure).
  virtual std::error_code write(record_kind kind, std::span<const std::byte> head,
                                std::span<const std::byte> body = {}) noexcept = 0;
  // Closes the connection (defect or shutdown): the peer sees it end too; the reader
  // drains and cleans up. Any thread, idempotent.
  virtual void close(const std::string& why) noexcept = 0;
  // After the connection's threads ended (the node joins them).
  virtual void join() noexcept = 0;
  // The socket the control thread polls for a hang-up (shared memory), or -1.
  [[nodiscard]] virtual int liveness_socket() const noexcept { return -1; }
  // The control thread saw liveness_socket() hang up.
  virtual void on_hangup() noexcept {}
  // "node 'b' (pid 42)", "node 'b' at tcp://10.0.0.2:4000".
  [[nodiscard]] virtual std::string describe() const = 0;
  // What the peer's actors stop with when this connection is lost: process_down on
  // one host (the process is gone), node_down across machines.
  [[nodiscard]] virtual exit_reason loss_reason(const std::string& why) const = 0;
  // Tests: the most bytes ever read from the peer and not yet delivered (TCP).
  [[nodiscard]] virtual std::size_t inbound_high_water() noexcept { return 0; }

  // Synchronous control requests (lookup, spawn): the caller blocks until the
  // result record or the deadline.
  expected<std::vector<std::byte>> request(record_kind kind, std::span<const std::byte> body, time_limit until);

  // False once the reader reported the peer lost.
  [[nodiscard]] bool alive() const noexcept {
    // acquire: pairs with the release in lost(); what the reader did before is visible.
    return peer_->alive.load(std::memory_order_acquire);
  }
  // The connection has begun to end (close(), a hang-up, a defect).
  [[nodiscard]] bool closing() const noexcept {
    // acquire: pairs with the seq_cst store in mark_closing(); the close reason set before is visible.
    return closing_.load(std::memory_order_acquire);
  }
  [[nodiscard]] const std::shared_ptr<peer_info>& peer() const noexcept { return peer_; }
  [[nodiscard]] node_core& node() const noexcept { return node_; }
  // The peer's fingerprint for a message type, if it announced the type.
  [[nodiscard]] std::optional<std::uint64_t> peer_fingerprint(std::uint64_t type_id) const noexcept;
  // Why the peer cannot take a message of this type (it does not know it, or
  // knows another schema), naming the type; nothing if it can. The last type
  // found acceptable is remembered, so a stream of one type checks once.
  [[nodiscard]] std::optional<error> schema_refusal(std::uint64_t type_id, std::uint64_t fingerprint,
                                                    std::string_view type_name) noexcept;
  // A remote ask waiting for its reply: its request id (0 if the connection is closed,
  // and then `pending` has been failed).
  std::uint64_t add_pending(std::unique_ptr<pending_reply> pending);
  // Fails and forgets a remote ask (its record could not be sent).
  void fail_pending(std::uint64_t request_id, const error& why) noexcept;

 protected:
  // Before the first record: the decoding context (which holds a reference to
  // this connection until lost()). `run_inline`: the calling thread is the reader,
  // and the actors that records make runnable run on it after each batch
  // (run_batch()); otherwise they go to the scheduler's workers.
  void begin_reading(bool run_inline);
  // Handles one whole record; returns the defect text if the peer broke the protocol.
  std::optional<std::string> handle(record_kind kind, std::span<const std::byte> body);
  // After a batch of records: runs the actors they made runnable (run_inline).
  void run_batch() noexcept;
  // Records why the connection ends (the first reason wins); the text lost() reports.
  void set_close_reason(const std::string& why);
  [[nodiscard]] std::string close_reason() const;
  // The reader's last act: the peer is gone; fails what waits on it, stops its proxies.
  void lost(const std::string& why) noexcept;
  // Sets closing_ (idempotent); then the transport wakes its reader.
  void mark_closing() noexcept {
    // seq_cst: the shared-memory reader parks on its ring with closing_ as the
    // stop flag (spsc_ring::wait_readable), a Dekker pair with this store:
    // either it sees the flag before it sleeps or the wake-up that follows
    // this store finds it asleep. Every transport stores it this way, so the
    // field has one protocol; loads are acquire (closing()) or, in that
    // reader, seq_cst.
    closing_.store(true, std::memory_order_seq_cst);
  }

  node_core& node_;
  std::shared_ptr<peer_info> peer_;
  // Set once, by mark_closing(); never reset.
  std::atomic<bool> closing_{false};

 private:
  std::optional<std::string> handle_message(std::span<const std::byte> body, bool with_request_id);
  std::optional<std::string> handle_reply(std::span<const std::byte> body);
  std::optional<std::string> handle_control_result(std::span<const std::byte> body);

  const schema_map peer_schema_;  // type id -> fingerprint

  // Remote asks in flight and control requests.
  troupe::mutex pending_mutex_;
  std::uint64_t next_request_ TROUPE_GUARDED_BY(pending_mutex_) = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<pending_reply>> pending_ TROUPE_GUARDED_BY(pending_mutex_);
  struct control_wait {
    std::optional<std::vector<std::byte>> result;
    std::optional<error> failure;
  };
  std::condition_variable_any control_done_;
  std::unordered_map<std::uint64_t, std::shared_ptr<control_wait>> controls_ TROUPE_GUARDED_BY(pending_mutex_);
  bool lost_ TROUPE_GUARDED_BY(pending_mutex_) = false;  // under pending_mutex_

  // The reader's cache of the last message target (see handle_message).
  std::uint64_t cached_target_ = 0;
  std::uint64_t cached_type_ = 0;
  const message_entry* cached_entry_ = nullptr;
  cell_ptr cached_cell_;
  // Consecutive messages to the cached actor, not queued yet: one chain, queued
  // with one CAS (cell::enqueue_chain) before any other record is handled and
  // at the end of the batch. Newest first.
  envelope* chain_newest_ = nullptr;
  envelope* chain_oldest_ = nullptr;
  void flush_chain() noexcept;
  wire_context read_context_;  // the reader's: this node, this connection
  bool run_inline_ = false;
  std::size_t batch_limit_ = 1;  // records per batch (begin_reading)
  std::size_t batched_ = 0;      // records handled since the last run_batch()
  std::vector<cell*> ready_;     // actors to run after the current batch (run_inline_); see cell::enqueue
  // The last message type a sender found in the peer's schema with our fingerprint.
  std::atomic<std::uint64_t> checked_type_{0};

  mutable troupe::mutex reason_mutex_;
  std::string close_reason_ TROUPE_GUARDED_BY(reason_mutex_);  // set once
};

}  // namespace troupe::detail
