// node_core and connection: the machinery behind troupe::node.
//
// A connection is one link to one peer node on this host: the UNIX socket it
// was set up over (kept open as the liveness channel), and one memfd holding two
// spsc_rings, one per direction. Threads per connection: a reader (spins
// briefly, then parks on the inbound ring's futex) and a flusher (parked unless
// the outbound ring filled up and records had to queue). The node_core owns the
// listening socket and a control thread that accepts peers, handshakes, and
// polls every connection's socket and every spawned child's pidfd: a peer's
// death is a hang-up seen at once, not a missed heartbeat.
//
// Records on the rings (docs/wire.md): the spsc_ring record type is the record
// kind below; bodies are little-endian. A record bigger than the ring's largest
// payload travels as `fragment` records followed by the final piece.
//
// Thread safety: connection::write() from any thread (a mutex orders writers,
// and makes the ring single-producer); everything else as commented.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cluster_core.hpp"
#include "os.hpp"
#include "tcp_transport.hpp"
#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/spsc_ring.hpp"
#include "troupe/net/detail/remote.hpp"
#include "troupe/net/node.hpp"
#include "wire.hpp"

namespace troupe::detail {

enum class record_kind : std::uint32_t {
  message = 1,        // u64 target, u64 type id, u64 request id (0: none), payload
  reply = 2,          // u64 request id, u8 status (0 ok: value | 1 error: errc, text)
  fragment = 3,       // a piece of the next non-fragment record
  watch = 4,          // u64 actor id: tell me when it stops
  gone = 5,           // u64 actor id, exit reason
  exit = 6,           // u64 target, address from, exit reason
  lookup = 7,         // u64 request id, string name
  lookup_result = 8,  // u64 request id, u8 status (0: u64 id, u64 protocol fingerprint, string protocol | 1: error)
  spawn = 9,          // u64 request id, string key, argument bytes
  spawn_result = 10,  // u64 request id, u8 status (0: u64 id | 1: error)
  stop = 11,          // the parent asks this node to shut down
  heartbeat = 12,     // TCP only: empty; sent every heartbeat interval (failure detector)
  goodbye = 13,       // TCP only: string why; the sender shuts the link down on purpose
  gossip = 14,        // cluster (seeds): the sender's identity, the members it is linked to, its global names
  load = 15,          // u64 request id, string actor key: how loaded is the node, can it spawn that type
  load_result = 16,   // u64 request id, u8 status (0: u8 registered, u64 live actors | 1: error)
  tell = 17,          // u64 target, u64 type id, payload: a message that asks for no reply
};

// The records that carry user messages (they count against max_queued_bytes).
constexpr bool carries_user_message(record_kind kind) noexcept {
  return kind == record_kind::message || kind == record_kind::tell;
}

// Who is at the other end of a link (also behind node_handle).
struct peer_info {
  std::string name;
  std::uint64_t incarnation = 0;
  pid_t pid = 0;                           // from SO_PEERCRED
  std::atomic<bool> spawned_by_us{false};  // spawn_node started it
  std::uint64_t anchor_id = 0;             // the peer's anchor actor
  std::uint64_t host = 0;                  // its host_id() (wire.hpp)
  std::string endpoint;                    // its TCP endpoint, if it listens
  std::atomic<bool> alive{true};
};

class node_core;

// The writers' lock of a link: a test-and-set lock whose unlock is a plain
// release store. A std::mutex unlock is a locked instruction — a full fence
// that waits for the record just copied into the ring to leave the store
// buffer (perf: 15% of a cross-process ping-pong); here that wait overlaps
// with whatever the sender does next. Critical sections are short (a ring
// write or a queue append): a contender spins a little, then yields its core.
class write_lock {
 public:
  void lock() noexcept {
    for (int attempt = 0;; ++attempt) {
      // acquire: pairs with the release in unlock(); the previous writer's ring
      // writes and queue changes are visible.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // relaxed: only a hint of when to retry the exchange.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++attempt < 100) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept {
    // release: publishes the critical section to the next lock().
    locked_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> locked_{false};
};

// One link to one peer node: the record handling both transports share
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
  // Closes the link (defect or shutdown): the peer sees it end too; the reader
  // drains and cleans up. Any thread, idempotent.
  virtual void close(const std::string& why) noexcept = 0;
  // After the link's threads ended (the node joins them).
  virtual void join() noexcept = 0;
  // The socket the control thread polls for a hang-up (shared memory), or -1.
  [[nodiscard]] virtual int liveness_socket() const noexcept { return -1; }
  // The control thread saw liveness_socket() hang up.
  virtual void on_hangup() noexcept {}
  // "node 'b' (pid 42)", "node 'b' at tcp://10.0.0.2:4000".
  [[nodiscard]] virtual std::string describe() const = 0;
  // What the peer's actors stop with when this link is lost: process_down on
  // one host (the process is gone), node_down across machines.
  [[nodiscard]] virtual exit_reason loss_reason(const std::string& why) const = 0;
  // Tests: the most bytes ever read from the peer and not yet delivered (TCP).
  [[nodiscard]] virtual std::size_t inbound_high_water() noexcept { return 0; }

  // Synchronous control requests (lookup, spawn): the caller blocks until the
  // result record or the deadline.
  expected<std::vector<std::byte>> request(record_kind kind, std::span<const std::byte> body, time_limit until);

  [[nodiscard]] bool alive() const noexcept { return peer_->alive.load(std::memory_order_acquire); }
  // close() or on_hangup() has begun ending the link.
  [[nodiscard]] bool closing() const noexcept { return closing_.load(std::memory_order_acquire); }
  [[nodiscard]] const std::shared_ptr<peer_info>& peer() const noexcept { return peer_; }
  [[nodiscard]] node_core& node() const noexcept { return node_; }
  // The peer's fingerprint for a message type, if it announced the type.
  [[nodiscard]] std::optional<std::uint64_t> peer_fingerprint(std::uint64_t type_id) const noexcept;
  // Why the peer cannot take a message of this type (it does not know it, or
  // knows another schema), naming the type; nothing if it can. The last type
  // found acceptable is remembered, so a stream of one type checks once.
  [[nodiscard]] std::optional<error> schema_refusal(std::uint64_t type_id, std::uint64_t fingerprint,
                                                    std::string_view type_name) noexcept;
  // A remote ask waiting for its reply: its request id (0 if the link is closed,
  // and then `pending` has been failed).
  std::uint64_t add_pending(std::unique_ptr<pending_reply> pending);
  // Fails and forgets a remote ask (its record could not be sent).
  void fail_pending(std::uint64_t request_id, const error& why) noexcept;

 protected:
  // Before the first record: the decoding context (which holds a reference to
  // this link until lost()). `run_inline`: the calling thread is the reader,
  // and the actors that records make runnable run on it after each batch
  // (run_batch()); otherwise they go to the scheduler's workers.
  void begin_reading(bool run_inline);
  // Handles one whole record; returns the defect text if the peer broke the protocol.
  std::optional<std::string> handle(record_kind kind, std::span<const std::byte> body);
  // After a batch of records: runs the actors they made runnable (run_inline).
  void run_batch() noexcept;
  // Records why the link ends (the first reason wins); the text lost() reports.
  void set_close_reason(const std::string& why);
  [[nodiscard]] std::string close_reason() const;
  // The reader's last act: the peer is gone; fails what waits on it, stops its proxies.
  void lost(const std::string& why) noexcept;

  node_core& node_;
  std::shared_ptr<peer_info> peer_;
  std::atomic<bool> closing_{false};

 private:
  std::optional<std::string> handle_message(std::span<const std::byte> body, bool with_request_id);
  std::optional<std::string> handle_reply(std::span<const std::byte> body);
  std::optional<std::string> handle_control_result(std::span<const std::byte> body);

  const schema_map peer_schema_;  // type id -> fingerprint

  // Remote asks in flight and control requests.
  std::mutex pending_mutex_;
  std::uint64_t next_request_ = 1;
  std::unordered_map<std::uint64_t, std::unique_ptr<pending_reply>> pending_;
  struct control_wait {
    std::optional<std::vector<std::byte>> result;
    std::optional<error> failure;
  };
  std::condition_variable control_done_;
  std::unordered_map<std::uint64_t, std::shared_ptr<control_wait>> controls_;
  bool lost_ = false;  // under pending_mutex_

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
  wire_context read_context_;  // the reader's: this node, this link
  bool run_inline_ = false;
  std::size_t batch_limit_ = 1;  // records per batch (begin_reading)
  std::size_t batched_ = 0;      // records handled since the last run_batch()
  std::vector<cell*> ready_;     // actors to run after the current batch (run_inline_); see cell::enqueue
  // The last message type a sender found in the peer's schema with our fingerprint.
  std::atomic<std::uint64_t> checked_type_{0};

  mutable std::mutex reason_mutex_;
  std::string close_reason_;  // set once
};

// A link to a node on this host: the UNIX socket it was set up over (kept open
// as the liveness channel), and one memfd holding two spsc_rings, one per
// direction. Threads: a reader (spins briefly, then parks on the inbound
// ring's futex; runs the actors its records make runnable) and a flusher
// (parked unless the outbound ring filled up and records had to queue).
class shm_connection final : public connection {
 public:
  shm_connection(node_core& node, unique_fd socket, mapped_memory memory, spsc_ring out, spsc_ring in,
                 std::shared_ptr<peer_info> peer, schema_map peer_schema);
  ~shm_connection() override;

  void start() override;
  std::error_code write(record_kind kind, std::span<const std::byte> head,
                        std::span<const std::byte> body = {}) noexcept override;
  void close(const std::string& why) noexcept override;
  void join() noexcept override;
  [[nodiscard]] int liveness_socket() const noexcept override { return socket_.get(); }
  void on_hangup() noexcept override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] exit_reason loss_reason(const std::string& why) const override {
    return exit_reason::process_down(why);
  }
  // Tests that play a hostile peer (net/include/troupe/net/testing.hpp).
  [[nodiscard]] spsc_ring& outbound_ring_for_tests() noexcept { return out_; }

 private:
  void read_loop() noexcept;
  void flush_loop() noexcept;

  unique_fd socket_;
  mapped_memory memory_;
  spsc_ring out_;
  spsc_ring in_;

  // Writers.
  write_lock write_mutex_;
  std::condition_variable_any flush_wanted_;
  bool flushing_ = false;  // records are queued: only the flusher writes the ring
  bool write_closed_ = false;
  struct queued_record {
    record_kind kind;
    std::vector<std::byte> bytes;
  };
  std::deque<queued_record> queue_;
  std::size_t queued_bytes_ = 0;

  std::thread reader_;
  std::thread flusher_;
  std::mutex join_mutex_;  // join() from several threads
};

// The factory registered for a remote-spawn key, or null (remote.cpp).
actor_factory find_actor_factory(const std::string& key);

class node_core {
 public:
  node_core(troupe::node& owner, node_config cfg);
  ~node_core();
  node_core(const node_core&) = delete;
  node_core& operator=(const node_core&) = delete;

  // Claims the name and starts the control thread; throws troupe_error.
  void start();
  // Closes every link, stops child nodes, joins the threads.
  void stop() noexcept;

  [[nodiscard]] const std::string& name() const noexcept { return config_.name; }
  [[nodiscard]] std::uint64_t incarnation() const noexcept { return incarnation_; }
  [[nodiscard]] const node_config& config() const noexcept { return config_; }
  [[nodiscard]] troupe::node& owner() noexcept { return owner_; }

  [[nodiscard]] std::uint64_t anchor_id() const noexcept { return anchor_.id(); }
  [[nodiscard]] std::uint64_t host() const noexcept { return host_; }
  // This node's TCP endpoint ("" if it does not listen).
  [[nodiscard]] std::string endpoint() const;

  // --- links ------------------------------------------------------------------
  // A live link to the node of that name, dialing it if needed: over shared
  // memory if it is on this host, else over TCP at its endpoint (known from a
  // ref's address, a hello, or the hint).
  expected<std::shared_ptr<connection>> link_to(std::string_view node_name, std::uint64_t host_hint = 0,
                                                const std::string& endpoint_hint = {});
  // A live link to whatever node listens at "tcp://host:port".
  expected<std::shared_ptr<connection>> link_to_endpoint(const std::string& endpoint);
  // Waits (without dialing) for a live link to that node.
  expected<std::shared_ptr<connection>> await_link(const std::string& node_name, time_limit until);
  [[nodiscard]] bool has_link(const std::string& node_name);
  // The newest live link to that node, or null.
  std::shared_ptr<connection> live_link(const std::string& node_name);
  // Every live link.
  std::vector<std::shared_ptr<connection>> live_links();
  // The node's cluster membership; null when config.cluster has no provider.
  [[nodiscard]] cluster_core* cluster() noexcept { return cluster_.get(); }
  // An accepted TCP handshake from `name`: why it must be refused (a link to
  // that incarnation exists, or this node's own dial to it wins the tie), or
  // nothing. Closes links to an earlier incarnation of it.
  std::optional<std::string> admit_link(const std::string& name, std::uint64_t incarnation,
                                        const std::string& endpoint);
  // Waits (without dialing) for a live link to the node at that TCP endpoint.
  expected<std::shared_ptr<connection>> await_endpoint(const std::string& endpoint, time_limit until);
  // Starts a link made by a transport and makes it known.
  std::shared_ptr<connection> register_connection(std::shared_ptr<connection> c);
  // A TCP link ended: the transport re-dials unless it ended on purpose.
  void tcp_link_lost(const std::string& name, const std::string& endpoint, bool said_goodbye);
  void connection_lost(const std::shared_ptr<connection>& c, const exit_reason& why) noexcept;
  expected<node_handle> spawn_node(node_spawn_options options);
  // A handle on the peer of `c`, with its anchor's proxy.
  node_handle handle_for(const std::shared_ptr<connection>& c);
  void stop_node(const node_handle& h);
  void kill_node(const node_handle& h);
  // run(): blocks until a stop record arrives or the parent's link is gone.
  void wait_for_stop();
  void request_stop() noexcept;
  [[nodiscard]] bool is_parent(const std::string& name) {
    std::lock_guard lock(stop_mutex_);
    return !parent_.empty() && name == parent_;
  }
  void set_parent(std::string name) {
    std::lock_guard lock(stop_mutex_);
    parent_ = std::move(name);
  }

  // --- addresses, exports, proxies -------------------------------------------------
  void export_cell(cell* c, const protocol_table& table);
  struct export_entry {
    cell_ptr cell;
    const protocol_table* table = nullptr;
    std::vector<std::weak_ptr<connection>> watchers;
  };
  // A copy of the entry (without watchers), if the actor is exported here.
  std::optional<std::pair<cell_ptr, const protocol_table*>> exported(std::uint64_t id);
  void watch(std::uint64_t id, const std::shared_ptr<connection>& by);
  void export_stopped(cell* c, const exit_reason& reason);
  cell_ptr proxy_for(const std::shared_ptr<connection>& via, std::uint64_t remote_id, const protocol_table& table);
  void remote_gone(const connection& via, std::uint64_t remote_id, const exit_reason& reason);
  cell_ptr resolve(const wire_address& address, const protocol_table& table, const std::shared_ptr<connection>& via);

  // --- names and spawning -------------------------------------------------------
  void publish(std::string name, cell* c, const protocol_table& table);
  void unpublish(std::string_view name);
  std::optional<std::pair<cell_ptr, const protocol_table*>> published(const std::string& name);
  // The peer's lookup/spawn requests (on its reader thread); the result body.
  std::vector<std::byte> answer_lookup(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);
  std::vector<std::byte> answer_spawn(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);
  std::vector<std::byte> answer_load(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok);

  // Schema announced in the handshake: every registered protocol's messages and replies.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> schema_table() const;
  void log(const std::string& line) const noexcept;

 private:
  void control_loop() noexcept;
  void accept_one() noexcept;
  // The handshake of an accepted socket, on a thread of its own (a silent
  // client must not hold up the control thread, which notices peers' deaths).
  void handshake(unique_fd socket) noexcept;
  expected<std::shared_ptr<connection>> dial(const std::string& node_name);
  std::vector<std::byte> hello() const;
  std::shared_ptr<connection> find_link(const std::string& name);  // under links_mutex_
  tcp_transport& tcp();                                            // started on first use
  void wake_control() noexcept;
  void reap() noexcept;

  troupe::node& owner_;
  node_config config_;
  std::uint64_t incarnation_;
  std::uint64_t host_ = 0;
  std::mutex tcp_mutex_;
  std::unique_ptr<tcp_transport> tcp_;  // under tcp_mutex_ until set
  std::string runtime_dir_;
  std::string socket_path_;
  unique_fd listener_;
  unique_fd wake_fd_;  // eventfd: the control thread re-reads its poll set
  std::thread control_;
  std::atomic<bool> stopping_{false};
  ref<protocol<>> anchor_;
  // Set in start() before any link can come up; stopped first in stop().
  std::unique_ptr<cluster_core> cluster_;

  std::mutex links_mutex_;  // connections, children, retired
  std::condition_variable links_changed_;
  std::multimap<std::string, std::shared_ptr<connection>> connections_;  // by peer name; newest last
  std::vector<std::shared_ptr<connection>> retired_;                     // lost; threads to join
  struct child_process {
    pid_t pid;
    std::string name;
    unique_fd pidfd;
    bool exited = false;
  };
  std::vector<child_process> children_;
  std::mutex dial_mutex_;                    // one dial at a time
  std::set<std::string> dialing_;            // TCP dials by name in progress (under links_mutex_)
  std::set<std::string> dialing_endpoints_;  // ... and by endpoint
  // Where named nodes were last known to be: (host, endpoint) (under links_mutex_).
  std::map<std::string, std::pair<std::uint64_t, std::string>> contacts_;
  std::size_t handshakes_ = 0;  // running handshake threads (under links_mutex_)

  std::mutex exports_mutex_;
  std::unordered_map<std::uint64_t, export_entry> exports_;
  std::unordered_map<std::string, std::pair<cell_ptr, const protocol_table*>> names_;
  std::map<std::tuple<const connection*, std::uint64_t, const protocol_table*>, cell_ptr> proxies_;

  std::mutex stop_mutex_;
  std::condition_variable stop_requested_;
  bool stop_flag_ = false;
  bool parent_link_lost_ = false;
  std::string parent_;
};

}  // namespace troupe::detail
