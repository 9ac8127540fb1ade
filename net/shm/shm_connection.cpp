// shm_connection: a connection over shared-memory rings (see shm_connection.hpp).
#include "shm/shm_connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "node/node_core.hpp"

namespace troupe::detail {

namespace {

std::span<const std::byte> as_bytes_of(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

// The record being handled, copied out of shared memory first: the peer could
// rewrite the ring under us, and a check must hold for the bytes we then use.
thread_local std::vector<std::byte> record_copy;

}  // namespace

shm_connection::shm_connection(node_core& node, unique_fd socket, mapped_memory memory, spsc_ring out, spsc_ring in,
                               std::shared_ptr<peer_info> peer, schema_map peer_schema)
    : connection(node, std::move(peer), std::move(peer_schema)),
      socket_(std::move(socket)),
      memory_(std::move(memory)),
      out_(out),
      in_(in) {}

shm_connection::~shm_connection() { join(); }

void shm_connection::start() {
  // Under join_mutex_: a connection that ends at once (a defect in the peer's first
  // record) is reaped by the control thread's join(), which must not read the
  // thread objects while they are being assigned.
  troupe::mutex_lock join_lock(join_mutex_);
  reader_ = std::thread([self = std::static_pointer_cast<shm_connection>(shared_from_this())] { self->read_loop(); });
  flusher_ = std::thread([this] { flush_loop(); });
}

void shm_connection::join() noexcept {
  troupe::mutex_lock join_lock(join_mutex_);  // join() from several threads: one at a time
  {
    // The flusher ends once writes are closed (close() or on_hangup(), which
    // always precede the reader's end).
    troupe::mutex_lock lock(write_mutex_);
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

// --- writing --------------------------------------------------------------------

std::error_code shm_connection::write(record_kind kind, std::span<const std::byte> head,
                                      std::span<const std::byte> body) noexcept {
  const std::size_t size = head.size() + body.size();
  const auto type = static_cast<std::uint32_t>(kind);
  // A plain thread waits for room (backpressure); actors, timer and reader
  // threads never block: their records queue for the flusher instead.
  const bool may_wait = size <= out_.max_payload() && blocking_sends_allowed() &&
                        node_.config().overflow == connection_overflow::backpressure;
  troupe::mutex_lock lock(write_mutex_);
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
  troupe::mutex_lock lock(write_mutex_);
  for (;;) {
    flush_wanted_.wait(lock, [&]() TROUPE_REQUIRES(write_mutex_) { return !queue_.empty() || write_closed_; });
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
    // seq_cst: the Dekker pair of mark_closing()'s store (close(), on_hangup()),
    // which comes before interrupt_consumer().
    if (closing_.load(std::memory_order_seq_cst)) break;
    (void)in_.wait_readable(std::chrono::steady_clock::time_point::max(), &closing_, spins);
  }
  if (defect) {
    node_.log("connection to " + describe() + " closed: " + *defect);
    close(*defect);
  }
  std::string why = close_reason();
  if (why.empty())
    why = "the connection to " + describe() + " hung up (its process exited, or it closed the connection)";
  lost(why);
}

// --- closing ------------------------------------------------------------------------

void shm_connection::close(const std::string& why) noexcept {
  try {
    set_close_reason("connection to " + describe() + " closed: " + why);
  } catch (...) {
  }
  {
    troupe::mutex_lock lock(write_mutex_);
    write_closed_ = true;
  }
  flush_wanted_.notify_all();
  ::shutdown(socket_.get(), SHUT_RDWR);
  mark_closing();  // before the wake-up: the reader re-checks it before it parks
  in_.interrupt_consumer();
}

void shm_connection::on_hangup() noexcept {
  {
    troupe::mutex_lock lock(write_mutex_);
    write_closed_ = true;
  }
  flush_wanted_.notify_all();
  mark_closing();
  in_.interrupt_consumer();
}

}  // namespace troupe::detail
