// connection: one link to one peer node (see node_core.hpp).
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "node_core.hpp"

namespace troupe::detail {

namespace {

// Bytes of the message record's fixed head: target, type id, request id.
constexpr std::size_t message_head = 24;  // target, type id, request id
constexpr std::size_t tell_head = 16;     // target, type id
// A batch: records handled before the actors they made runnable run (one
// activation per actor per batch), bounded so that a busy sender cannot pile
// up an actor's mailbox without the actor ever running.
constexpr std::size_t max_batch = 256;

std::span<const std::byte> as_bytes_of(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

// The record being handled, copied out of shared memory first: the peer could
// rewrite the ring under us, and a check must hold for the bytes we then use.
thread_local std::vector<std::byte> record_copy;

// The link whose reader this thread is (actors may run on it).
thread_local const connection* reading_connection = nullptr;

}  // namespace

connection::connection(node_core& node, std::shared_ptr<peer_info> peer, schema_map peer_schema)
    : node_(node), peer_(std::move(peer)), peer_schema_(std::move(peer_schema)) {}

void connection::set_close_reason(const std::string& why) {
  std::lock_guard lock(reason_mutex_);
  if (close_reason_.empty()) close_reason_ = why;
}

std::string connection::close_reason() const {
  std::lock_guard lock(reason_mutex_);
  return close_reason_;
}

shm_connection::shm_connection(node_core& node, unique_fd socket, mapped_memory memory, spsc_ring out, spsc_ring in,
                               std::shared_ptr<peer_info> peer, schema_map peer_schema)
    : connection(node, std::move(peer), std::move(peer_schema)),
      socket_(std::move(socket)),
      memory_(std::move(memory)),
      out_(out),
      in_(in) {}

shm_connection::~shm_connection() { join(); }

void shm_connection::start() {
  // Under join_mutex_: a link that ends at once (a defect in the peer's first
  // record) is reaped by the control thread's join(), which must not read the
  // thread objects while they are being assigned.
  std::lock_guard join_lock(join_mutex_);
  reader_ = std::thread([self = std::static_pointer_cast<shm_connection>(shared_from_this())] { self->read_loop(); });
  flusher_ = std::thread([this] { flush_loop(); });
}

void shm_connection::join() noexcept {
  std::lock_guard join_lock(join_mutex_);  // join() from several threads: one at a time
  {
    // The flusher ends once writes are closed (close() or on_hangup(), which
    // always precede the reader's end).
    std::lock_guard lock(write_mutex_);
    write_closed_ = true;
  }
  flush_wanted_.notify_all();
  for (std::thread* t : {&reader_, &flusher_}) {
    if (!t->joinable()) continue;
    // The reader holds a reference to its connection: the last one may drop on
    // the reader itself, which then cannot join itself.
    if (t->get_id() == std::this_thread::get_id()) {
      t->detach();
    } else {
      t->join();
    }
  }
}

std::string shm_connection::describe() const {
  return "node '" + peer_->name + "' (pid " + std::to_string(peer_->pid) + ")";
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
  checked_type_.store(type_id, std::memory_order_relaxed);
  return std::nullopt;
}

// --- writing --------------------------------------------------------------------

std::error_code shm_connection::write(record_kind kind, std::span<const std::byte> head,
                                      std::span<const std::byte> body) noexcept {
  const std::size_t size = head.size() + body.size();
  const auto type = static_cast<std::uint32_t>(kind);
  // A plain thread waits for room (backpressure); actors, timer and reader
  // threads never block: their records queue for the flusher instead.
  const bool may_wait =
      size <= out_.max_payload() && blocking_sends_allowed() && node_.config().overflow == link_overflow::backpressure;
  std::unique_lock lock(write_mutex_);
  for (;;) {
    if (write_closed_) return make_error_code(errc::connection_lost);
    if (!flushing_ && size <= out_.max_payload()) {
      if (out_.try_write(type, head, body) == write_result::written) return {};
    }
    if (!may_wait) break;
    const std::uint64_t seen = out_.consumer_position();
    lock.unlock();
    out_.wait_for_room(seen, std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    lock.lock();
  }
  // The ring is full (or the flusher owns it, or the record needs fragments):
  // queue, in order, for the flusher. Only user messages count against the
  // limit: replies and the small runtime records (watch, gone, exit, results)
  // must not be lost, or a peer would wait for an answer that never comes.
  if (carries_user_message(kind) && queued_bytes_ + size > node_.config().max_queued_bytes) {
    return make_error_code(errc::peer_overloaded);
  }
  try {
    std::vector<std::byte> whole(size);
    if (!head.empty()) std::memcpy(whole.data(), head.data(), head.size());
    if (!body.empty()) std::memcpy(whole.data() + head.size(), body.data(), body.size());
    const std::size_t piece = out_.max_payload();
    std::size_t at = 0;
    while (size - at > piece) {
      queue_.push_back(
          {record_kind::fragment, std::vector<std::byte>(whole.begin() + static_cast<std::ptrdiff_t>(at),
                                                         whole.begin() + static_cast<std::ptrdiff_t>(at + piece))});
      at += piece;
    }
    if (at == 0) {
      queue_.push_back({kind, std::move(whole)});
    } else {
      queue_.push_back({kind, std::vector<std::byte>(whole.begin() + static_cast<std::ptrdiff_t>(at), whole.end())});
    }
  } catch (...) {
    return make_error_code(errc::peer_overloaded);
  }
  queued_bytes_ += size;
  flushing_ = true;
  lock.unlock();
  flush_wanted_.notify_one();
  return {};
}

void shm_connection::flush_loop() noexcept {
  std::unique_lock lock(write_mutex_);
  for (;;) {
    flush_wanted_.wait(lock, [&] { return !queue_.empty() || write_closed_; });
    if (write_closed_) return;
    // While flushing_ is set, senders only append: this thread is the ring's
    // single producer, and may write outside the lock.
    const record_kind kind = queue_.front().kind;
    std::span<const std::byte> bytes = as_bytes_of(queue_.front().bytes);
    lock.unlock();
    const write_result r = out_.write_wait(static_cast<std::uint32_t>(kind), bytes,
                                           std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    lock.lock();
    if (r == write_result::written) {
      queued_bytes_ -= queue_.front().bytes.size();
      queue_.pop_front();
      if (queue_.empty()) flushing_ = false;
    }
    // full: the peer is slow (or gone: then close() sets write_closed_).
  }
}

std::uint64_t connection::add_pending(std::unique_ptr<pending_reply> pending) {
  std::lock_guard lock(pending_mutex_);
  if (lost_) {
    pending->fail(error(errc::connection_lost, "the link to " + describe() + " is closed"));
    return 0;
  }
  const std::uint64_t id = next_request_++;
  pending_.emplace(id, std::move(pending));
  return id;
}

void connection::fail_pending(std::uint64_t request_id, const error& why) noexcept {
  std::unique_ptr<pending_reply> pending;
  {
    std::lock_guard lock(pending_mutex_);
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
    // An actor running on this link's reader (see cell::enqueue) would wait for
    // an answer that only this very thread can read.
    return error(errc::would_block,
                 "lookup/spawn over a link from a handler that runs on that link's reader; "
                 "call it from on_start or a plain thread");
  }
  auto wait = std::make_shared<control_wait>();
  std::uint64_t id;
  {
    std::lock_guard lock(pending_mutex_);
    if (lost_) return error(errc::connection_lost, "the link to " + describe() + " is closed");
    id = next_request_++;
    controls_.emplace(id, wait);
  }
  std::byte head[8];
  std::memcpy(head, &id, 8);
  if (std::error_code ec = write(kind, head, body)) {
    std::lock_guard lock(pending_mutex_);
    controls_.erase(id);
    return error(static_cast<errc>(ec.value()), "could not send to " + describe());
  }
  std::unique_lock lock(pending_mutex_);
  if (!control_done_.wait_until(lock, until, [&] { return wait->result || wait->failure; })) {
    controls_.erase(id);
    return error(errc::timeout, "no answer from " + describe() + " in time");
  }
  if (wait->failure) return *wait->failure;
  return std::move(*wait->result);
}

// --- reading ----------------------------------------------------------------------

void shm_connection::read_loop() noexcept {
  // Replies, gone records and forwarded messages written from here must never
  // wait for room in a ring: two readers waiting on each other would deadlock.
  begin_reading(/*run_inline=*/true);
  std::vector<std::byte> assembly;  // fragments of the record being reassembled
  std::optional<std::string> defect;
  const std::size_t max_bytes = node_.config().max_message_bytes;
  const int spins = node_.config().reader_spins;
  for (;;) {
    // Drain what is there (also after a hang-up: what the peer wrote before it
    // died is delivered before its death is).
    bool drained = false;
    for (;;) {
      const read_result r = in_.read([&](std::uint32_t type, std::span<const std::byte> payload) {
        if (type == static_cast<std::uint32_t>(record_kind::fragment)) {
          if (assembly.size() + payload.size() > max_bytes) {
            defect = "a fragmented record exceeds max_message_bytes (" + std::to_string(max_bytes) + ")";
            return;
          }
          assembly.insert(assembly.end(), payload.begin(), payload.end());
          return;
        }
        if (!assembly.empty()) {
          if (assembly.size() + payload.size() > max_bytes) {
            defect = "a fragmented record exceeds max_message_bytes";
            return;
          }
          assembly.insert(assembly.end(), payload.begin(), payload.end());
          record_copy.swap(assembly);
          assembly.clear();
        } else {
          record_copy.assign(payload.begin(), payload.end());
        }
        const auto kind = static_cast<record_kind>(type);
        try {
          defect = handle(kind, {record_copy.data(), record_copy.size()});
        } catch (const std::exception& e) {
          defect = std::string("handling a record failed: ") + e.what();
        } catch (...) {
          defect = "handling a record failed";
        }
      });
      if (r == read_result::corrupt) defect = "the shared ring is corrupt (bad record position or length)";
      drained = r == read_result::empty;
      if (defect || drained) break;
    }
    // The actors this batch made runnable run here, before the next wait
    // (handle() also runs them every batch_limit_ records).
    run_batch();
    if (defect) break;
    // seq_cst: pairs with the store in close()/on_hangup() before interrupt_consumer().
    if (closing_.load(std::memory_order_seq_cst)) break;
    (void)in_.wait_readable(std::chrono::steady_clock::time_point::max(), &closing_, spins);
  }
  if (defect) {
    node_.log("link to " + describe() + " closed: " + *defect);
    close(*defect);
  }
  std::string why = close_reason();
  if (why.empty()) why = "the link to " + describe() + " hung up (its process exited, or it closed the link)";
  lost(why);
}

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
  // Any other record (a reply, an exit signal, a watch...) comes after the
  // messages before it: those are queued first.
  if (!carries_user_message(kind)) flush_chain();
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
    std::lock_guard lock(pending_mutex_);
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
    std::lock_guard lock(pending_mutex_);
    auto it = controls_.find(id);
    if (it == controls_.end()) return std::nullopt;  // the asker gave up (timeout)
    it->second->result.emplace(body.begin() + 8, body.end());
    controls_.erase(it);
  }
  control_done_.notify_all();
  return std::nullopt;
}

// --- closing ------------------------------------------------------------------------

void shm_connection::close(const std::string& why) noexcept {
  try {
    set_close_reason("link to " + describe() + " closed: " + why);
  } catch (...) {
  }
  {
    std::lock_guard lock(write_mutex_);
    write_closed_ = true;
  }
  flush_wanted_.notify_all();
  ::shutdown(socket_.get(), SHUT_RDWR);
  // seq_cst: pairs with the reader's load before it parks (see spsc_ring::wait_readable).
  closing_.store(true, std::memory_order_seq_cst);
  in_.interrupt_consumer();
}

void shm_connection::on_hangup() noexcept {
  {
    std::lock_guard lock(write_mutex_);
    write_closed_ = true;
  }
  flush_wanted_.notify_all();
  // seq_cst: as in close().
  closing_.store(true, std::memory_order_seq_cst);
  in_.interrupt_consumer();
}

void connection::lost(const std::string& why) noexcept {
  flush_chain();  // before the cached actor is let go: the chain is its
  cached_cell_ = cell_ptr{};
  run_batch();
  read_context_ = wire_context{};  // no reference to itself left behind
  peer_->alive.store(false, std::memory_order_release);
  std::unordered_map<std::uint64_t, std::unique_ptr<pending_reply>> pending;
  {
    std::lock_guard lock(pending_mutex_);
    lost_ = true;
    pending.swap(pending_);
    for (auto& [id, wait] : controls_) wait->failure = error(errc::connection_lost, why);
    controls_.clear();
  }
  control_done_.notify_all();
  const error failure(errc::actor_down, why);
  for (auto& [id, p] : pending) p->fail(failure);
  node_.connection_lost(shared_from_this(), loss_reason(why));
}

}  // namespace troupe::detail
