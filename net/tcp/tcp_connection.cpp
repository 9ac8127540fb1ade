// tcp_connection: see tcp_connection.hpp.
#include "tcp/tcp_connection.hpp"

#include <unistd.h>

#include <cstring>
#include <limits>

#include "node/node_core.hpp"
#include "troupe/mailbox/assert.hpp"

namespace troupe::detail {

namespace {

constexpr std::size_t read_chunk = std::size_t{64} << 10;
// A send this soon after the previous direct write returned is part of a
// stream and is gathered (see tcp_connection::write). Far below a network
// round trip (tens of microseconds even on loopback), so request/response
// traffic always takes the direct path.
constexpr auto stream_gap = std::chrono::microseconds(5);

}  // namespace

tcp_connection::tcp_connection(node_core& node, tcp_transport::impl& transport, std::unique_ptr<tcp_stream> stream,
                               std::vector<std::byte> leftover, std::shared_ptr<peer_info> peer, schema_map schema)
    : connection(node, std::move(peer), std::move(schema)),
      transport_(transport),
      strand_(asio::make_strand(transport.io)),
      stream_(std::move(stream)),
      timer_(strand_),
      in_(std::move(leftover)),
      detector_(static_cast<double>(transport.config.failure_detector.heartbeat_interval.count()),
                static_cast<double>(transport.config.failure_detector.acceptable_pause.count()),
                static_cast<double>(transport.config.failure_detector.min_std_deviation.count()),
                transport.config.failure_detector.window) {
  in_used_ = in_.size();
  max_frame_ = node.config().max_message_bytes + 64;  // a message record's head is 24 bytes
}

tcp_connection::~tcp_connection() { join(); }

void tcp_connection::start() {
  boost::system::error_code ec;
  // Non-blocking from here on: a sender's direct write_some must never block,
  // and with the flag set by us, Asio's own operations never touch it again
  // (see write()).
  stream_->plain.non_blocking(true, ec);
  (void)stream_->plain.set_option(tcp::no_delay(true), ec);
  const auto now = clock_type::now();
  last_heartbeat_sent_ = now;
  {
    troupe::mutex_lock lock(liveness_mutex_);  // no other thread yet: for the analysis
    last_heard_ = last_heartbeat_heard_ = now;
  }
  // Plain TCP: the delivery thread reads the socket itself (one thread
  // between the wire and the actors, as a shared-memory reader). TLS: the
  // SSL object may not be shared with the strand's writes, so the strand
  // reads and hands the bytes over.
  reads_directly_ = !stream_->tls;
  // Under join_mutex_: a connection that ends at once may be joined by another
  // thread while delivery_ is being assigned.
  troupe::mutex_lock join_lock(join_mutex_);
  if (reads_directly_) {
    delivery_ = std::thread([self = self()] { self->read_loop(); });
    asio::post(strand_, [self = self()] { self->tick(); });
  } else {
    delivery_ = std::thread([self = self()] { self->deliver_loop(); });
    asio::post(strand_, [self = self()] {
      self->parse_and_read();
      self->tick();
    });
  }
}

std::error_code tcp_connection::write(record_kind kind, std::span<const std::byte> head,
                                      std::span<const std::byte> body) noexcept {
  const std::size_t size = head.size() + body.size();
  if (size > max_frame_) return make_error_code(errc::malformed_message);
  troupe::mutex_lock lock(write_mutex_);
  if (write_closed_) return make_error_code(errc::connection_lost);
  if (carries_user_message(kind)) {
    // Only user messages count against the bound: replies and the small
    // runtime records must not be lost, or a peer would wait forever.
    const std::size_t limit = node_.config().max_queued_bytes;
    while (queued_locked() > 0 && queued_locked() + size > limit) {
      if (!blocking_sends_allowed() || node_.config().overflow == connection_overflow::fail) {
        return make_error_code(errc::peer_overloaded);
      }
      room_.wait(lock);  // a plain thread: backpressure until the batch drains
      if (write_closed_) return make_error_code(errc::connection_lost);
    }
  }
  const bool idle = !write_in_flight_ && out_.empty();
  try {
    append_frame(out_, static_cast<std::uint32_t>(kind), head, body);
  } catch (...) {
    return make_error_code(errc::peer_overloaded);
  }
  if (!idle) return {};  // joins the batch being gathered; the strand writes it
  // A lone message goes out at once from this thread. A message right behind
  // another (a stream: the previous direct write ended moments ago) is
  // gathered instead: the strand writes whatever has accumulated by the time
  // it runs, many frames per system call.
  const auto now = clock_type::now();
  const bool streaming = now - last_direct_write_ < stream_gap;
  if (!stream_->tls && !streaming) {
    // The lone-message fast path: this thread writes the frame now. Safe
    // beside the strand's pending read: a non-blocking write_some only reads
    // the descriptor and state flags fixed in start(), and writers are
    // serialized by write_mutex_ (no async write is in flight: idle).
    boost::system::error_code ec;
    const std::size_t n = stream_->plain.write_some(asio::buffer(out_), ec);
    last_direct_write_ = clock_type::now();
    if (!ec && n == out_.size()) {
      out_.clear();
      return {};
    }
    if (!ec) out_.erase(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(n));
    // would_block: the rest goes out from the strand; a broken socket: the
    // strand's write fails and ends the connection.
  }
  write_in_flight_ = true;
  try {
    asio::post(strand_, [self = self()] { self->write_batch(); });
  } catch (...) {
    // Out of memory for the strand's handler: nothing would write out_ now.
    write_in_flight_ = false;
    lock.unlock();
    close("out of memory scheduling a write");
    return make_error_code(errc::connection_lost);
  }
  return {};
}

void tcp_connection::close(const std::string& why) noexcept {
  try {
    set_close_reason("connection to " + describe() + " closed: " + why);
    // release: pairs with the acquire in read_loop(); set before closing_, so
    // a reader that sees the connection closing knows it was on purpose.
    deliberate_end_.store(true, std::memory_order_release);
    mark_closing();
    asio::post(strand_, [self = self()] { self->finish(self->close_reason(), /*deliberate=*/true); });
  } catch (...) {
  }
}

void tcp_connection::say_goodbye(const std::string& why) noexcept {
  try {
    std::vector<std::byte> body;
    wire_writer out(body);
    troupe::encode(out, why);
    (void)write(record_kind::goodbye, {}, body);
  } catch (...) {
  }
  close(why);
}

void tcp_connection::join() noexcept {
  // The delivery thread ends after finish() (on the I/O threads) closed the
  // inbox or shut the socket down. Several threads may join (the control
  // thread's reap, the transport's stop, the node's stop): one at a time.
  troupe::mutex_lock lock(join_mutex_);
  if (!delivery_.joinable()) return;
  // It holds a reference to its connection: the last one may drop on it, which then
  // cannot join itself.
  if (delivery_.get_id() == std::this_thread::get_id()) {
    delivery_.detach();
  } else {
    delivery_.join();
  }
}

std::string tcp_connection::describe() const {
  return "node '" + peer_->name + "' at " + (peer_->endpoint.empty() ? remote_ : peer_->endpoint);
}

exit_reason tcp_connection::loss_reason(const std::string& why) const { return exit_reason::node_down(why); }

std::size_t tcp_connection::inbound_high_water() noexcept {
  troupe::mutex_lock lock(inbox_mutex_);
  return inbox_high_water_;
}

std::shared_ptr<tcp_connection> tcp_connection::self() {
  return std::static_pointer_cast<tcp_connection>(shared_from_this());
}

std::size_t tcp_connection::queued_locked() const noexcept { return out_.size() + sending_size_; }

void tcp_connection::parse_and_read() {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::parse_and_read(): strand only");
  if (finished_flag_) return;
  std::size_t offset = 0;
  for (;;) {
    const std::size_t frame_start = offset;
    frame_view frame;
    std::string defect;
    const frame_status status = next_frame({in_.data(), in_used_}, offset, max_frame_, frame, defect);
    if (status == frame_status::incomplete) break;
    if (status == frame_status::defect) {
      hand_over(frame_start);
      return fail(defect);
    }
    if (auto problem = guarded([&] { return on_record(frame.kind, frame.body); })) {
      hand_over(frame_start);
      return fail(*problem);
    }
    if (finished_flag_) return;
  }
  if (!hand_over(offset) && offset > 0) {
    // Nothing for the delivery thread: keep the partial frame at the front.
    std::memmove(in_.data(), in_.data() + offset, in_used_ - offset);
    in_used_ -= offset;
  }
  {
    // The delivery thread is behind by more than max_queued_bytes: stop
    // reading (TCP's flow control then holds the peer back) until it has
    // caught up to half of that; it resumes us (see deliver_loop).
    troupe::mutex_lock lock(inbox_mutex_);
    if (inbox_bytes_ > node_.config().max_queued_bytes) {
      reading_paused_ = true;
      return;
    }
  }
  // Room for the next read, and for all of a large frame.
  std::size_t want = in_used_ + read_chunk;
  if (in_used_ >= frame_head_bytes) {
    std::uint32_t length = 0;
    std::memcpy(&length, in_.data(), 4);
    want = std::max(want, frame_head_bytes + length);
  }
  if (in_.size() < want) in_.resize(want);
  auto buffer = asio::buffer(in_.data() + in_used_, in_.size() - in_used_);
  stream_->visit([&](auto& s) {
    s.async_read_some(buffer, asio::bind_executor(strand_, [self = self()](boost::system::error_code ec,
                                                                           std::size_t n) { self->on_read(ec, n); }));
  });
}

std::string tcp_connection::why_ended(const boost::system::error_code& ec, bool& said_goodbye) {
  std::string why;
  {
    troupe::mutex_lock lock(liveness_mutex_);
    said_goodbye = goodbye_;
    if (goodbye_) why = "node '" + peer_->name + "' closed the connection: " + goodbye_text_;
  }
  if (!why.empty()) return why;
  why = close_reason();
  if (!why.empty()) return why;  // closed here (close(), a defect, the failure detector)
  if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
    return "the connection to " + describe() +
           " was closed by the peer (its process exited, or it closed the connection)";
  }
  if (ec) return "the connection to " + describe() + " failed: " + text_of(ec);
  return "the connection to " + describe() + " closed";
}

void tcp_connection::on_read(const boost::system::error_code& ec, std::size_t n) {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::on_read(): strand only");
  if (ec) {
    if (finished_flag_) return;
    bool said_goodbye = false;
    const std::string why = why_ended(ec, said_goodbye);
    return finish(why, said_goodbye);
  }
  in_used_ += n;
  {
    troupe::mutex_lock lock(liveness_mutex_);
    last_heard_ = clock_type::now();
  }
  parse_and_read();
}

std::optional<std::string> tcp_connection::on_record(std::uint32_t kind, std::span<const std::byte> body) {
  switch (static_cast<record_kind>(kind)) {
    case record_kind::heartbeat: {
      if (!body.empty()) return "malformed heartbeat record";
      const auto now = clock_type::now();
      troupe::mutex_lock lock(liveness_mutex_);
      detector_.add_gap(ms_between(last_heartbeat_heard_, now));
      last_heartbeat_heard_ = now;
      return std::nullopt;
    }
    case record_kind::goodbye: {
      wire_reader in(body);
      std::string why;
      if (!troupe::decode(in, why) || in.remaining() != 0 || why.size() > 4096) return "malformed goodbye record";
      troupe::mutex_lock lock(liveness_mutex_);
      goodbye_ = true;
      goodbye_text_ = why;
      return std::nullopt;
    }
    case record_kind::fragment:
      return "a fragment record on a TCP connection (frames carry whole records)";
    default:
      deliverable_ = true;  // the delivery thread handles it (see deliver_loop)
      return std::nullopt;
  }
}

bool tcp_connection::hand_over(std::size_t end) {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::hand_over(): strand only");
  if (!deliverable_) return false;
  deliverable_ = false;
  std::vector<std::byte> next;
  {
    troupe::mutex_lock lock(inbox_mutex_);
    if (!spare_.empty()) {
      next = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  const std::size_t tail = in_used_ - end;
  if (next.size() < std::max(read_chunk, tail)) next.resize(std::max(read_chunk, tail));
  if (tail > 0) std::memcpy(next.data(), in_.data() + end, tail);
  {
    troupe::mutex_lock lock(inbox_mutex_);
    inbox_.push_back(delivery{std::move(in_), end});
    inbox_bytes_ += end;
    inbox_high_water_ = std::max(inbox_high_water_, inbox_bytes_);
  }
  inbox_changed_.notify_one();
  in_ = std::move(next);
  in_used_ = tail;
  return true;
}

void tcp_connection::read_loop() noexcept {
  bool ended_here = false;  // a defect ended the connection (deliberately: no re-dial)
  boost::system::error_code ec;
  try {
    read_frames(ended_here, ec);
  } catch (const std::exception& e) {
    // Out of memory (a buffer, a batch): the connection ends as for a defect.
    try {
      set_close_reason("connection to " + describe() + " closed: reading failed: " + e.what());
    } catch (...) {
    }
    ended_here = true;
  }
  end_reading(ec, ended_here);
}

void tcp_connection::read_frames(bool& ended_here, boost::system::error_code& ec) {
  begin_reading(/*run_inline=*/true);
  std::vector<std::byte> buffer = std::move(in_);
  std::size_t used = in_used_;
  // A blocking read through Asio: a second socket object over a duplicate of
  // the descriptor, without the user non-blocking flag the writers' socket
  // has, so its read_some waits (Asio polls the descriptor) instead of
  // failing with would_block. Shutting the shared socket down (finish())
  // ends the wait.
  tcp::socket reader(transport_.io);
  const int duplicate = ::dup(stream_->plain.native_handle());
  if (duplicate < 0) {
    ec = boost::system::error_code(errno, boost::system::system_category());
  } else {
    reader.assign(tcp::v4(), duplicate, ec);  // the protocol only matters to Asio's bookkeeping
    if (ec) ::close(duplicate);
  }
  for (;;) {
    std::size_t offset = 0;
    for (;;) {
      frame_view frame;
      std::string defect;
      const frame_status status = next_frame({buffer.data(), used}, offset, max_frame_, frame, defect);
      if (status == frame_status::incomplete) break;
      std::optional<std::string> problem;
      if (status == frame_status::defect) {
        problem = defect;
      } else {
        problem = guarded([&]() -> std::optional<std::string> {
          auto bad = on_record(frame.kind, frame.body);
          if (bad || !deliverable_) return bad;
          deliverable_ = false;
          return handle(static_cast<record_kind>(frame.kind), frame.body);
        });
      }
      if (problem) {
        set_close_reason("connection to " + describe() + " closed: " + *problem);
        ended_here = true;
        break;
      }
    }
    run_batch();
    if (ended_here || closing()) break;
    // Keep the partial frame; make room for the next read and a large frame.
    if (offset > 0) {
      std::memmove(buffer.data(), buffer.data() + offset, used - offset);
      used -= offset;
    }
    std::size_t want = used + read_chunk;
    if (used >= frame_head_bytes) {
      std::uint32_t length = 0;
      std::memcpy(&length, buffer.data(), 4);
      want = std::max(want, frame_head_bytes + length);
    }
    if (buffer.size() < want) buffer.resize(want);
    if (ec) break;  // no reader socket
    const std::size_t n = reader.read_some(asio::buffer(buffer.data() + used, buffer.size() - used), ec);
    if (ec) break;
    used += n;
    {
      troupe::mutex_lock lock(inbox_mutex_);  // read, not yet delivered: one buffer at most
      inbox_high_water_ = std::max(inbox_high_water_, used);
    }
    troupe::mutex_lock lock(liveness_mutex_);
    last_heard_ = clock_type::now();
  }
  boost::system::error_code close_error;
  reader.close(close_error);
}

void tcp_connection::end_reading(const boost::system::error_code& ec, bool ended_here) noexcept {
  bool said_goodbye = false;
  std::string why;
  try {
    why = why_ended(ec, said_goodbye);
    // The strand shuts the connection down (timer, writes); this thread reports the loss.
    asio::post(strand_, [self = self(), why, deliberate = said_goodbye || ended_here] {
      self->finish(why, deliberate);
      boost::system::error_code ignored;
      self->stream_->plain.close(ignored);  // nobody reads it any more
    });
  } catch (...) {
    // Out of memory: the strand cannot be told. Shut the socket down from here
    // so that the peer and the strand's pending operations see the end.
    mark_closing();
    boost::system::error_code ignored;
    stream_->plain.shutdown(tcp::socket::shutdown_both, ignored);
  }
  lost(why);
  try {
    // acquire: pairs with the release in close() / finish().
    const bool deliberate = deliberate_end_.load(std::memory_order_acquire);
    transport_.node.tcp_connection_lost(peer_->name, peer_->endpoint, said_goodbye || ended_here || deliberate);
  } catch (...) {
  }
}

void tcp_connection::deliver_loop() noexcept {
  try {
    deliver_batches();
  } catch (const std::exception& e) {
    // Out of memory: the connection ends as for a defect; the records still
    // queued are not delivered.
    try {
      set_close_reason("connection to " + describe() + " closed: delivering failed: " + e.what());
    } catch (...) {
    }
    close("delivering failed");
  }
  end_delivery();
}

void tcp_connection::deliver_batches() {
  begin_reading(/*run_inline=*/true);
  delivery batch;
  bool broken = false;
  for (;;) {
    {
      troupe::mutex_lock lock(inbox_mutex_);
      // Back to the I/O thread for reuse (a few, of a usual size).
      if (!batch.bytes.empty() && spare_.size() < 4 && batch.bytes.capacity() <= 4 * read_chunk) {
        spare_.push_back(std::move(batch.bytes));
      }
      inbox_changed_.wait(lock, [&]() TROUPE_REQUIRES(inbox_mutex_) { return !inbox_.empty() || inbox_closed_; });
      if (inbox_.empty()) break;
      batch = std::move(inbox_.front());
      inbox_.pop_front();
      inbox_bytes_ -= batch.end;
      if (reading_paused_ && inbox_bytes_ <= node_.config().max_queued_bytes / 2) {
        reading_paused_ = false;
        asio::post(strand_, [self = self()] { self->parse_and_read(); });
      }
    }
    if (broken) continue;  // a defect ended the connection: the rest is not trusted
    std::size_t offset = 0;
    frame_view frame;
    std::string defect;
    // The I/O thread checked the lengths; heartbeats and goodbyes were its own.
    while (next_frame({batch.bytes.data(), batch.end}, offset, std::numeric_limits<std::uint32_t>::max(), frame,
                      defect) == frame_status::frame) {
      if (frame.kind == static_cast<std::uint32_t>(record_kind::heartbeat) ||
          frame.kind == static_cast<std::uint32_t>(record_kind::goodbye)) {
        continue;
      }
      if (auto problem = guarded([&] { return handle(static_cast<record_kind>(frame.kind), frame.body); })) {
        broken = true;
        set_close_reason("connection to " + describe() + " closed: " + *problem);
        close(*problem);
        break;
      }
    }
    run_batch();
  }
}

void tcp_connection::end_delivery() noexcept {
  bool said_goodbye = false;
  {
    troupe::mutex_lock lock(inbox_mutex_);
    said_goodbye = said_goodbye_;
  }
  std::string why;
  try {
    why = close_reason();
    if (why.empty()) why = "the connection to " + describe() + " closed";
  } catch (...) {  // out of memory: lost() reports the loss without a reason
  }
  lost(why);
  try {
    transport_.node.tcp_connection_lost(peer_->name, peer_->endpoint, said_goodbye);
  } catch (...) {
  }
}

void tcp_connection::fail(const std::string& defect) {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::fail(): strand only");
  set_close_reason("connection to " + describe() + " closed: " + defect);
  finish(close_reason(), /*deliberate=*/true);
}

void tcp_connection::write_batch() {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::write_batch(): strand only");
  {
    troupe::mutex_lock lock(write_mutex_);
    if (write_closed_ || out_.empty()) {
      write_in_flight_ = false;
      room_.notify_all();
      return;
    }
    sending_.clear();
    sending_.swap(out_);
    sending_size_ = sending_.size();
  }
  stream_->visit([&](auto& s) {
    asio::async_write(s, asio::buffer(sending_),
                      asio::bind_executor(strand_, [self = self()](boost::system::error_code ec, std::size_t) {
                        self->on_written(ec);
                      }));
  });
}

void tcp_connection::on_written(const boost::system::error_code& ec) {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::on_written(): strand only");
  {
    troupe::mutex_lock lock(write_mutex_);
    sending_size_ = 0;
    room_.notify_all();
  }
  if (ec) {
    if (ec != asio::error::operation_aborted && !finished_flag_) {
      finish("writing to " + describe() + " failed: " + text_of(ec), false);
    }
    return;
  }
  write_batch();
}

void tcp_connection::tick() {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::tick(): strand only");
  if (finished_flag_) return;
  const auto& fd = transport_.config.failure_detector;
  const auto now = clock_type::now();
  if (now - last_heartbeat_sent_ >= fd.heartbeat_interval) {
    last_heartbeat_sent_ = now;
    (void)write(record_kind::heartbeat, {});
  }
  double silence = 0, phi = 0;
  {
    troupe::mutex_lock lock(liveness_mutex_);
    silence = ms_between(last_heard_, now);
    phi = detector_.phi(silence);
  }
  if (phi > fd.threshold) {
    // Bytes already waiting in the socket are a sign of life this strand has
    // not read yet (a late tick on a busy host), not a silence.
    boost::system::error_code ec;
    if (stream_->plain.available(ec) == 0 || ec) {
      char text[160];
      std::snprintf(text, sizeof text, "nothing heard for %.0f ms (phi %.1f > %.1f)", silence, phi, fd.threshold);
      // Not a defect: the peer may come back (a healed partition), so it is re-dialed.
      set_close_reason("connection to " + describe() + " closed: failure detector: " + text);
      return finish(close_reason(), /*deliberate=*/false);
    }
  }
  timer_.expires_after(fd.heartbeat_interval / 2);
  timer_.async_wait([self = self()](boost::system::error_code ec) {
    if (!ec) self->tick();
  });
}

void tcp_connection::finish(const std::string& why, bool deliberate) noexcept {
  TROUPE_ASSERT(strand_.running_in_this_thread(), "tcp_connection::finish(): strand only");
  if (finished_flag_) return;
  finished_flag_ = true;
  // release: as in close().
  if (deliberate) deliberate_end_.store(true, std::memory_order_release);
  mark_closing();
  {
    troupe::mutex_lock lock(write_mutex_);
    write_closed_ = true;
  }
  boost::system::error_code ignored;
  try {
    timer_.cancel();
  } catch (...) {  // Asio reports a failed cancel by throwing; the next tick sees finished_flag_
  }
  // The shutdown wakes a reader blocked in wait(); the socket is closed once
  // nothing can be using it (the reading thread closes it on its way out).
  stream_->plain.shutdown(tcp::socket::shutdown_both, ignored);
  if (!reads_directly_) stream_->plain.close(ignored);
  try {
    set_close_reason(why);
    transport_.node.log(why);
  } catch (...) {
  }
  room_.notify_all();
  bool goodbye = false;
  {
    troupe::mutex_lock lock(liveness_mutex_);
    goodbye = goodbye_;
  }
  {
    troupe::mutex_lock lock(inbox_mutex_);
    said_goodbye_ = goodbye || deliberate;
    inbox_closed_ = true;
  }
  inbox_changed_.notify_one();  // the delivery thread drains, then reports the loss
}

}  // namespace troupe::detail
