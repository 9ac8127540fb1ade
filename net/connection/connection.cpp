// connection: the record handling both transports share (see connection.hpp).
#include "connection/connection.hpp"

#include <algorithm>
#include <cstring>

#include "node/node_core.hpp"

namespace troupe::detail {

namespace {

// Bytes of the message record's fixed head: target, type id, request id.
constexpr std::size_t message_head = 24;  // target, type id, request id
constexpr std::size_t tell_head = 16;     // target, type id
// A batch: records handled before the actors they made runnable run (one
// activation per actor per batch), bounded so that a busy sender cannot pile
// up an actor's mailbox without the actor ever running.
constexpr std::size_t max_batch = 256;

// The connection whose reader this thread is (actors may run on it).
thread_local const connection* reading_connection = nullptr;

}  // namespace

connection::connection(node_core& node, std::shared_ptr<peer_info> peer, schema_map peer_schema)
    : node_(node), peer_(std::move(peer)), peer_schema_(std::move(peer_schema)) {}

void connection::set_close_reason(const std::string& why) {
  troupe::mutex_lock lock(reason_mutex_);
  if (close_reason_.empty()) close_reason_ = why;
}

std::string connection::close_reason() const {
  troupe::mutex_lock lock(reason_mutex_);
  return close_reason_;
}

std::optional<std::uint64_t> connection::peer_fingerprint(std::uint64_t type_id) const noexcept {
  auto it = peer_schema_.find(type_id);
  if (it == peer_schema_.end()) return std::nullopt;
  return it->second;
}

std::optional<error> connection::schema_refusal(std::uint64_t type_id, std::uint64_t fingerprint,
                                                std::string_view type_name) noexcept {
  // relaxed: a hint only; a miss re-checks the immutable table.
  if (checked_type_.load(std::memory_order_relaxed) == type_id) return std::nullopt;
  try {
    const auto theirs = peer_fingerprint(type_id);
    if (!theirs) {
      return error(errc::protocol_mismatch, "message type " + std::string(type_name) + " is unknown to " + describe());
    }
    if (*theirs != fingerprint) {
      return error(errc::protocol_mismatch, "message type " + std::string(type_name) + " has a different schema on " +
                                                describe() + " (its fields differ from this program's)");
    }
  } catch (...) {
    return error(errc::protocol_mismatch, "out of memory while checking a schema");
  }
  // relaxed: a hint (see above); the table it caches never changes.
  checked_type_.store(type_id, std::memory_order_relaxed);
  return std::nullopt;
}

// --- pending asks and control requests -------------------------------------------

std::uint64_t connection::add_pending(std::unique_ptr<pending_reply> pending) {
  troupe::mutex_lock lock(pending_mutex_);
  if (lost_) {
    pending->fail(error(errc::connection_lost, "the connection to " + describe() + " is closed"));
    return 0;
  }
  const std::uint64_t id = next_request_++;
  pending_.emplace(id, std::move(pending));
  return id;
}

void connection::fail_pending(std::uint64_t request_id, const error& why) noexcept {
  std::unique_ptr<pending_reply> pending;
  {
    troupe::mutex_lock lock(pending_mutex_);
    auto it = pending_.find(request_id);
    if (it == pending_.end()) return;
    pending = std::move(it->second);
    pending_.erase(it);
  }
  pending->fail(why);
}

expected<std::vector<std::byte>> connection::request(record_kind kind, std::span<const std::byte> body,
                                                     time_limit until) {
  if (reading_connection == this) {
    // An actor running on this connection's reader (see cell::enqueue) would wait for
    // an answer that only this very thread can read.
    return error(errc::would_block,
                 "lookup/spawn over a connection from a handler that runs on that connection's reader; "
                 "call it from on_start or a plain thread");
  }
  auto wait = std::make_shared<control_wait>();
  std::uint64_t id;
  {
    troupe::mutex_lock lock(pending_mutex_);
    if (lost_) return error(errc::connection_lost, "the connection to " + describe() + " is closed");
    id = next_request_++;
    controls_.emplace(id, wait);
  }
  std::byte head[8];
  std::memcpy(head, &id, 8);
  if (std::error_code ec = write(kind, head, body)) {
    troupe::mutex_lock lock(pending_mutex_);
    controls_.erase(id);
    return error(static_cast<errc>(ec.value()), "could not send to " + describe());
  }
  troupe::mutex_lock lock(pending_mutex_);
  if (!control_done_.wait_until(lock, until, [&] { return wait->result || wait->failure; })) {
    controls_.erase(id);
    return error(errc::timeout, "no answer from " + describe() + " in time");
  }
  if (wait->failure) return *wait->failure;
  return std::move(*wait->result);
}

// --- reading ----------------------------------------------------------------------

void connection::begin_reading(bool run_inline) {
  if (run_inline) {
    // This thread is the reader, and runs actors. Replies, gone records and
    // forwarded messages written from here must never wait for room: two
    // readers waiting on each other would deadlock.
    forbid_blocking_sends_on_this_thread();
    reading_connection = this;
    set_reply_run_list(&ready_);  // remote replies wake their askers here too
  }
  run_inline_ = run_inline;
  // Fewer records per batch than an activation's budget (max_throughput): a
  // batch of exactly that many messages to one actor would end its activation
  // here with `again` although its mailbox is empty, handing it to a worker,
  // which then races this reader for the mailbox (a stream ran on three
  // threads, its envelopes bouncing between two caches, instead of one).
  batch_limit_ = std::clamp<std::size_t>(node_.config().system.max_throughput, 2, max_batch + 1) - 1;
  read_context_ = wire_context{&node_, shared_from_this()};
}

void connection::run_batch() noexcept {
  batched_ = 0;
  flush_chain();
  if (!ready_.empty()) cell::run_cells(ready_);
}

void connection::flush_chain() noexcept {
  if (chain_newest_ == nullptr) return;
  (void)cached_cell_->enqueue_chain(chain_newest_, chain_oldest_, run_inline_ ? &ready_ : nullptr);
  chain_newest_ = chain_oldest_ = nullptr;
}

std::optional<std::string> connection::handle(record_kind kind, std::span<const std::byte> body) {
  // A transport reads as much as is there (a ring's records, a socket read's
  // frames); the actors run at least every batch_limit_ records.
  if (batched_ == batch_limit_) run_batch();
  ++batched_;
  // Any other record (a reply, an exit signal, a watch, a publication...) comes
  // after the messages before it: those are queued first.
  if (kind != record_kind::message && kind != record_kind::tell) flush_chain();
  switch (kind) {
    case record_kind::message:
      return handle_message(body, /*with_request_id=*/true);
    case record_kind::tell:
      return handle_message(body, /*with_request_id=*/false);
    case record_kind::reply:
      return handle_reply(body);
    case record_kind::watch: {
      wire_reader in(body);
      std::uint64_t id = 0;
      if (!in.read_scalar(id) || in.remaining() != 0) return "malformed watch record";
      node_.watch(id, read_context_.via);
      return std::nullopt;
    }
    case record_kind::gone: {
      wire_reader in(body);
      std::uint64_t id = 0;
      exit_reason reason;
      if (!in.read_scalar(id) || !decode_reason(in, reason) || in.remaining() != 0) return "malformed gone record";
      node_.remote_gone(*this, id, reason);
      return std::nullopt;
    }
    case record_kind::exit: {
      wire_reader in(body, &read_context_);
      std::uint64_t target = 0;
      cell_ptr from;
      exit_reason reason;
      if (!in.read_scalar(target) || !decode_address(in, protocol_table_of<protocol<>>(), from) ||
          !decode_reason(in, reason) || in.remaining() != 0) {
        return "malformed exit record" + (in.failed() ? ": " + in.failure() : std::string());
      }
      if (auto entry = node_.exported(target)) cell::send_exit(entry->first.get(), from.get(), std::move(reason));
      return std::nullopt;
    }
    case record_kind::lookup:
    case record_kind::spawn:
    case record_kind::load: {
      std::uint64_t request_id = 0;
      bool ok = false;
      std::vector<std::byte> result = kind == record_kind::lookup  ? node_.answer_lookup(body, request_id, ok)
                                      : kind == record_kind::spawn ? node_.answer_spawn(body, request_id, ok)
                                                                   : node_.answer_load(body, request_id, ok);
      if (!ok)
        return "malformed control request (record kind " + std::to_string(static_cast<std::uint32_t>(kind)) + ")";
      std::byte head[8];
      std::memcpy(head, &request_id, 8);
      const record_kind answer = kind == record_kind::lookup  ? record_kind::lookup_result
                                 : kind == record_kind::spawn ? record_kind::spawn_result
                                                              : record_kind::load_result;
      (void)write(answer, head, result);
      return std::nullopt;
    }
    case record_kind::lookup_result:
    case record_kind::spawn_result:
    case record_kind::load_result:
      return handle_control_result(body);
    case record_kind::topic_interest:
      return node_.topics().handle_interest(read_context_.via, body);
    case record_kind::publication:
      return node_.topics().handle_publication(read_context_, body, run_inline_ ? &ready_ : nullptr);
    case record_kind::gossip:
      // A node outside any cluster ignores its peers' gossip.
      if (cluster_core* cluster = node_.cluster()) return cluster->handle_gossip(read_context_.via, body);
      return std::nullopt;
    case record_kind::stop:
      if (!body.empty()) return "malformed stop record";
      // Only the node that started this one may stop it.
      if (node_.is_parent(peer_->name)) {
        node_.request_stop();
      } else {
        node_.log("ignored a stop request from " + describe() + ", which is not this node's parent");
      }
      return std::nullopt;
    case record_kind::fragment:   // reassembled by the shared-memory reader
    case record_kind::heartbeat:  // consumed by the TCP reader
    case record_kind::goodbye:
      break;
  }
  return "unknown record kind " + std::to_string(static_cast<std::uint32_t>(kind));
}

std::optional<std::string> connection::handle_message(std::span<const std::byte> body, bool with_request_id) {
  const std::size_t head = with_request_id ? message_head : tell_head;
  if (body.size() < head) return "message record shorter than its head";
  std::uint64_t target, type_id, request_id = 0;
  std::memcpy(&target, body.data(), 8);
  std::memcpy(&type_id, body.data() + 8, 8);
  if (with_request_id) std::memcpy(&request_id, body.data() + 16, 8);
  // The last target and type seen: a stream to one actor skips the export table
  // (a mutex) and the schema checks. Kept by the reader thread only. A cached
  // actor that has stopped meanwhile discards the message like an unknown one
  // would be (a request gets actor_down, with the exit reason).
  if (target != cached_target_ || type_id != cached_type_ || !cached_cell_) {
    flush_chain();  // the chain is the cached actor's
    auto entry = node_.exported(target);
    if (!entry) {
      // Not a defect: the actor stopped (or was never shown to this peer). A
      // request gets an answer; a tell is dropped (at-most-once).
      if (request_id != 0) {
        remote_reply_sink<void>(read_context_.via, request_id)
            .set(
                error(errc::actor_down, "troupe://" + node_.name() + "/" + std::to_string(target) + " is not running"));
      }
      return std::nullopt;
    }
    const message_entry* m = entry->second->find(type_id);
    if (m == nullptr) {
      return "message type id " + std::to_string(type_id) + " is not in " + entry->second->name + " (actor " +
             std::to_string(target) + ")";
    }
    auto announced = peer_fingerprint(type_id);
    if (!announced || *announced != m->fingerprint) {
      return "message of type " + std::string(m->name) + " whose schema differs from this node's";
    }
    cached_target_ = target;
    cached_type_ = type_id;
    cached_entry_ = m;
    cached_cell_ = std::move(entry->first);
  }
  wire_reader in(body.subspan(head), &read_context_);
  envelope* e = cached_entry_->decode(in, cached_entry_->index, read_context_.via, request_id);
  if (e == nullptr) return "malformed " + std::string(cached_entry_->name) + ": " + in.failure();
  if (cached_cell_->takes_chains()) {
    // Queued with the messages after it to the same actor (flush_chain()).
    e->next = chain_newest_;
    chain_newest_ = e;
    if (chain_oldest_ == nullptr) chain_oldest_ = e;
    return std::nullopt;
  }
  // The actor runs on this thread after the batch if this made it runnable (see cell::enqueue).
  (void)cached_cell_->enqueue(e, run_inline_ ? &ready_ : nullptr);
  return std::nullopt;
}

std::optional<std::string> connection::handle_reply(std::span<const std::byte> body) {
  if (body.size() < 8) return "reply record shorter than its head";
  std::uint64_t id;
  std::memcpy(&id, body.data(), 8);
  std::unique_ptr<pending_reply> pending;
  {
    troupe::mutex_lock lock(pending_mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return "reply to request " + std::to_string(id) + ", which was never sent";
    pending = std::move(it->second);
    pending_.erase(it);
  }
  wire_reader in(body.subspan(8), &read_context_);
  pending->complete(in);
  return std::nullopt;
}

std::optional<std::string> connection::handle_control_result(std::span<const std::byte> body) {
  if (body.size() < 8) return "result record shorter than its head";
  std::uint64_t id;
  std::memcpy(&id, body.data(), 8);
  {
    troupe::mutex_lock lock(pending_mutex_);
    auto it = controls_.find(id);
    if (it == controls_.end()) return std::nullopt;  // the asker gave up (timeout)
    it->second->result.emplace(body.begin() + 8, body.end());
    controls_.erase(it);
  }
  control_done_.notify_all();
  return std::nullopt;
}

// --- closing ------------------------------------------------------------------------

void connection::lost(const std::string& why) noexcept {
  flush_chain();  // before the cached actor is let go: the chain is its
  cached_cell_ = cell_ptr{};
  run_batch();
  read_context_ = wire_context{};  // no reference to itself left behind
  // release: pairs with the acquire in alive() and node_handle::alive(); the
  // reader's last records were handled before.
  peer_->alive.store(false, std::memory_order_release);
  std::unordered_map<std::uint64_t, std::unique_ptr<pending_reply>> pending;
  {
    troupe::mutex_lock lock(pending_mutex_);
    lost_ = true;
    pending.swap(pending_);
    for (auto& [id, wait] : controls_) wait->failure = error(errc::connection_lost, why);
    controls_.clear();
  }
  control_done_.notify_all();
  const error failure(errc::actor_down, why);
  for (auto& [id, p] : pending) p->fail(failure);
  node_.connection_lost(shared_from_this(), loss_reason(why));
  // On the reader thread, the failures above woke their idle askers onto this
  // reader's list (reply_run_list(): the askers' consumer role is this
  // thread's now). No batch comes after this one: run them here, or an actor
  // whose asks were in flight to the lost node never runs again.
  if (!ready_.empty()) cell::run_cells(ready_);
}

}  // namespace troupe::detail
