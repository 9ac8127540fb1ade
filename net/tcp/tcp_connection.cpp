// The TCP transport (see tcp.hpp): links, handshakes, the listener, heartbeats
// and the failure detector, re-dialing.
#include "tcp/tcp_transport.hpp"

#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "node/node_core.hpp"
#include "tcp/phi_detector.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

// Handshake frames are small (a nonce; a hello with its schema table).
constexpr std::size_t max_handshake_frame = std::size_t{4} << 20;
constexpr std::size_t read_chunk = std::size_t{64} << 10;
// A send this soon after the previous direct write returned is part of a
// stream and is gathered (see tcp_connection::write). Far below a network
// round trip (tens of microseconds even on loopback), so request/response
// traffic always takes the direct path.
constexpr auto stream_gap = std::chrono::microseconds(5);

std::string text_of(const boost::system::error_code& ec) { return ec.message(); }

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The socket of one link, plain or wrapped in TLS. Not movable once TLS wraps
// it (the SSL stream refers to the socket).
struct tcp_stream {
  explicit tcp_stream(tcp::socket s) : plain(std::move(s)) {}
  tcp::socket plain;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls;

  template <class F>
  void visit(F&& f) {
    if (tls) {
      f(*tls);
    } else {
      f(plain);
    }
  }
  [[nodiscard]] std::string remote() const {
    boost::system::error_code ec;
    const auto e = plain.remote_endpoint(ec);
    if (ec) return "an unknown address";
    return format_endpoint(e.address().to_string(), e.port());
  }
};

// Blocking handshake steps over async operations on a strand, each bounded by
// one deadline for the whole handshake: past it, the operation is cancelled.
// The calling thread only waits; the socket is touched on the strand only.
class handshake_io {
 public:
  handshake_io(asio::io_context& io, tcp_stream& stream, time_limit until)
      : strand_(asio::make_strand(io)), stream_(stream), until_(until) {}

  expected<void> connect(const tcp::resolver::results_type& endpoints) {
    auto [ec, n] = run([&](auto done) {
      asio::async_connect(
          stream_.plain, endpoints,
          asio::bind_executor(strand_, [done](boost::system::error_code e, const tcp::endpoint&) { done(e, 0); }));
    });
    if (ec) return failure("connect", ec);
    return {};
  }

  expected<void> tls_handshake(ssl::stream_base::handshake_type type) {
    auto [ec, n] = run([&](auto done) {
      stream_.tls->async_handshake(type,
                                   asio::bind_executor(strand_, [done](boost::system::error_code e) { done(e, 0); }));
    });
    if (ec) return failure("TLS handshake", ec);
    return {};
  }

  expected<void> send(std::uint32_t kind, std::span<const std::byte> head, std::span<const std::byte> body = {}) {
    std::vector<std::byte> bytes;
    append_frame(bytes, kind, head, body);
    auto [ec, n] = run([&](auto done) {
      stream_.visit([&](auto& s) { asio::async_write(s, asio::buffer(bytes), asio::bind_executor(strand_, done)); });
    });
    if (ec) return failure("send", ec);
    return {};
  }

  struct frame {
    std::uint32_t kind = 0;
    std::vector<std::byte> body;
  };
  expected<frame> receive(std::size_t max_body) {
    for (;;) {
      std::size_t offset = 0;
      frame_view view;
      std::string defect;
      switch (next_frame(buffer_, offset, max_body, view, defect)) {
        case frame_status::frame: {
          frame f{view.kind, std::vector<std::byte>(view.body.begin(), view.body.end())};
          buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset));
          return f;
        }
        case frame_status::defect:
          return error(errc::malformed_message, defect);
        case frame_status::incomplete:
          break;
      }
      std::vector<std::byte> chunk(4096);
      auto [ec, n] = run([&](auto done) {
        stream_.visit([&](auto& s) { s.async_read_some(asio::buffer(chunk), asio::bind_executor(strand_, done)); });
      });
      if (ec) return failure("receive", ec);
      buffer_.insert(buffer_.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
    }
  }

  // Bytes read past the last frame (the peer's first records): the link's.
  std::vector<std::byte> take_leftover() { return std::move(buffer_); }

 private:
  template <class Start>
  std::pair<boost::system::error_code, std::size_t> run(Start start) {
    auto promise = std::make_shared<std::promise<std::pair<boost::system::error_code, std::size_t>>>();
    auto result = promise->get_future();
    auto done = [promise](boost::system::error_code ec, std::size_t n) { promise->set_value({ec, n}); };
    asio::post(strand_, [&start, done] { start(done); });
    if (result.wait_until(until_) == std::future_status::timeout) {
      timed_out_ = true;
      asio::post(strand_, [this] {
        boost::system::error_code ignored;
        stream_.plain.cancel(ignored);
      });
    }
    // The operation always completes (cancelled, at worst), and only then may
    // its buffers and this object go.
    auto r = result.get();
    if (timed_out_) r.first = asio::error::timed_out;
    return r;
  }

  error failure(const char* step, const boost::system::error_code& ec) const {
    if (ec == asio::error::timed_out) return error(errc::timeout, std::string(step) + ": no answer in time");
    if (ec == asio::error::eof)
      return error(errc::connection_lost, std::string(step) + ": the peer closed the connection");
    // With TLS, a refused certificate shows up as an alert at the next read.
    const bool tls = ec.category() == asio::error::get_ssl_category() || ec == ssl::error::stream_truncated;
    return error(errc::connection_lost, std::string(step) + ": " + (tls ? "TLS: " : "") + text_of(ec));
  }

  asio::strand<asio::io_context::executor_type> strand_;
  tcp_stream& stream_;
  time_limit until_;
  bool timed_out_ = false;
  std::vector<std::byte> buffer_;
};

}  // namespace

// --- the transport's state ------------------------------------------------------------

class tcp_connection;

struct tcp_transport::impl {
  explicit impl(node_core& n) : node(n), config(n.config()) {}

  node_core& node;
  const node_config& config;
  std::string cookie;
  std::unique_ptr<ssl::context> tls;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::string endpoint;

  mutable std::mutex mutex;  // the fields below
  std::condition_variable changed;
  bool stopping = false;
  std::size_t pending_handshakes = 0;
  std::size_t active_dials = 0;
  std::vector<std::weak_ptr<tcp_connection>> links;
  struct redial {
    std::string endpoint;
    int attempts = 0;
    time_limit since;
    time_limit next;
    std::string last_error;
  };
  std::map<std::string, redial> redials;
  // Nonces this node made for its recent handshakes (the last 4096, whether
  // still running or not): a challenge carrying one of them is a reflection
  // of our own (see docs/security.md). Kept after a handshake ends, so the
  // check does not depend on which of two reflected handshakes gets there first.
  std::set<nonce> own_nonces;
  std::deque<nonce> own_order;
  nonce fresh_own_nonce() {
    const nonce n = fresh_nonce();
    std::lock_guard lock(mutex);
    own_nonces.insert(n);
    own_order.push_back(n);
    if (own_order.size() > 4096) {
      own_nonces.erase(own_order.front());
      own_order.pop_front();
    }
    return n;
  }
  bool is_own(const nonce& n) const {
    std::lock_guard lock(mutex);
    return own_nonces.count(n) != 0;
  }
  std::thread redialer;
  std::minstd_rand jitter_random{static_cast<std::minstd_rand::result_type>(random_u64())};

  void accept_next();
  void handshake_accepted(tcp::socket socket) noexcept;
  expected<std::shared_ptr<connection>> dial(const std::string& endpoint, const std::string& expected_name,
                                             time_limit until);
  std::unique_ptr<tcp_stream> wrap(tcp::socket socket);
  std::shared_ptr<connection> make_link(std::unique_ptr<tcp_stream> stream, std::vector<std::byte> leftover,
                                        hello_info hello);
  hello_info my_hello() const;
  void redial_loop() noexcept;
  std::chrono::milliseconds backoff(int attempts);
};

// --- one link ----------------------------------------------------------------------------

class tcp_connection final : public connection {
 public:
  tcp_connection(node_core& node, tcp_transport::impl& transport, std::unique_ptr<tcp_stream> stream,
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

  ~tcp_connection() override { join(); }  // the last reference may drop on the delivery thread itself

  void start() override {
    boost::system::error_code ec;
    // Non-blocking from here on: a sender's direct write_some must never block,
    // and with the flag set by us, Asio's own operations never touch it again
    // (see write()).
    stream_->plain.non_blocking(true, ec);
    (void)stream_->plain.set_option(tcp::no_delay(true), ec);
    const auto now = clock_type::now();
    last_heard_ = last_heartbeat_heard_ = last_heartbeat_sent_ = now;
    // Plain TCP: the delivery thread reads the socket itself (one thread
    // between the wire and the actors, as a shared-memory reader). TLS: the
    // SSL object may not be shared with the strand's writes, so the strand
    // reads and hands the bytes over.
    reads_directly_ = !stream_->tls;
    // Under join_mutex_: a link that ends at once may be joined by another
    // thread while delivery_ is being assigned.
    std::lock_guard join_lock(join_mutex_);
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

  std::error_code write(record_kind kind, std::span<const std::byte> head,
                        std::span<const std::byte> body = {}) noexcept override {
    const std::size_t size = head.size() + body.size();
    if (size > max_frame_) return make_error_code(errc::malformed_message);
    std::unique_lock lock(write_mutex_);
    if (write_closed_) return make_error_code(errc::connection_lost);
    if (carries_user_message(kind)) {
      // Only user messages count against the bound: replies and the small
      // runtime records must not be lost, or a peer would wait forever.
      const std::size_t limit = node_.config().max_queued_bytes;
      while (queued_locked() > 0 && queued_locked() + size > limit) {
        if (!blocking_sends_allowed() || node_.config().overflow == link_overflow::fail) {
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
      // strand's write fails and ends the link.
    }
    write_in_flight_ = true;
    asio::post(strand_, [self = self()] { self->write_batch(); });
    return {};
  }

  void close(const std::string& why) noexcept override {
    try {
      set_close_reason("link to " + describe() + " closed: " + why);
      deliberate_end_.store(true, std::memory_order_release);
      closing_.store(true, std::memory_order_release);
      asio::post(strand_, [self = self()] { self->finish(self->close_reason(), /*deliberate=*/true); });
    } catch (...) {
    }
  }

  // Tells the peer this link ends on purpose (it will not re-dial), then closes.
  void say_goodbye(const std::string& why) noexcept {
    try {
      std::vector<std::byte> body;
      wire_writer out(body);
      troupe::encode(out, why);
      (void)write(record_kind::goodbye, {}, body);
    } catch (...) {
    }
    close(why);
  }

  void join() noexcept override {
    // The delivery thread ends after finish() (on the I/O threads) closed the
    // inbox or shut the socket down. Several threads may join (the control
    // thread's reap, the transport's stop, the node's stop): one at a time.
    std::lock_guard lock(join_mutex_);
    if (!delivery_.joinable()) return;
    // It holds a reference to its link: the last one may drop on it, which then
    // cannot join itself.
    if (delivery_.get_id() == std::this_thread::get_id()) {
      delivery_.detach();
    } else {
      delivery_.join();
    }
  }

  [[nodiscard]] std::string describe() const override {
    return "node '" + peer_->name + "' at " + (peer_->endpoint.empty() ? remote_ : peer_->endpoint);
  }
  [[nodiscard]] exit_reason loss_reason(const std::string& why) const override { return exit_reason::node_down(why); }
  [[nodiscard]] std::size_t inbound_high_water() noexcept override {
    std::lock_guard lock(inbox_mutex_);
    return inbox_high_water_;
  }

  std::string remote_;  // the peer's socket address, for log lines

 private:
  std::shared_ptr<tcp_connection> self() { return std::static_pointer_cast<tcp_connection>(shared_from_this()); }

  std::size_t queued_locked() const noexcept { return out_.size() + sending_size_; }

  // Runs one step of handling a record; an exception is a defect like any other.
  template <class Step>
  static std::optional<std::string> guarded(Step&& step) noexcept {
    try {
      return step();
    } catch (const std::exception& e) {
      return std::string("handling a record failed: ") + e.what();
    } catch (...) {
      return std::string("handling a record failed");
    }
  }

  // --- reading (strand) ---
  void parse_and_read() {
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
      std::lock_guard lock(inbox_mutex_);
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

  // Why reading ended with `ec` (and whether the peer said goodbye first).
  std::string why_ended(const boost::system::error_code& ec, bool& said_goodbye) {
    std::string why;
    {
      std::lock_guard lock(liveness_mutex_);
      said_goodbye = goodbye_;
      if (goodbye_) why = "node '" + peer_->name + "' closed the link: " + goodbye_text_;
    }
    if (!why.empty()) return why;
    why = close_reason();
    if (!why.empty()) return why;  // closed here (close(), a defect, the failure detector)
    if (ec == asio::error::eof || ec == ssl::error::stream_truncated) {
      return "the link to " + describe() + " was closed by the peer (its process exited, or it closed the link)";
    }
    if (ec) return "the link to " + describe() + " failed: " + text_of(ec);
    return "the link to " + describe() + " closed";
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (ec) {
      if (finished_flag_) return;
      bool said_goodbye = false;
      const std::string why = why_ended(ec, said_goodbye);
      return finish(why, said_goodbye);
    }
    in_used_ += n;
    {
      std::lock_guard lock(liveness_mutex_);
      last_heard_ = clock_type::now();
    }
    parse_and_read();
  }

  std::optional<std::string> on_record(std::uint32_t kind, std::span<const std::byte> body) {
    switch (static_cast<record_kind>(kind)) {
      case record_kind::heartbeat: {
        if (!body.empty()) return "malformed heartbeat record";
        const auto now = clock_type::now();
        std::lock_guard lock(liveness_mutex_);
        detector_.add_gap(ms_between(last_heartbeat_heard_, now));
        last_heartbeat_heard_ = now;
        return std::nullopt;
      }
      case record_kind::goodbye: {
        wire_reader in(body);
        std::string why;
        if (!troupe::decode(in, why) || in.remaining() != 0 || why.size() > 4096) return "malformed goodbye record";
        std::lock_guard lock(liveness_mutex_);
        goodbye_ = true;
        goodbye_text_ = why;
        return std::nullopt;
      }
      case record_kind::fragment:
        return "a fragment record on a TCP link (frames carry whole records)";
      default:
        deliverable_ = true;  // the delivery thread handles it (see deliver_loop)
        return std::nullopt;
    }
  }

  // Hands the read buffer itself, whose frames before `end` were just parsed,
  // to the delivery thread — the bytes are not copied — and continues in a
  // spare buffer holding the partial frame after `end` (strand). False if
  // there was nothing to deliver (heartbeats only).
  bool hand_over(std::size_t end) {
    if (!deliverable_) return false;
    deliverable_ = false;
    std::vector<std::byte> next;
    {
      std::lock_guard lock(inbox_mutex_);
      if (!spare_.empty()) {
        next = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    const std::size_t tail = in_used_ - end;
    if (next.size() < std::max(read_chunk, tail)) next.resize(std::max(read_chunk, tail));
    if (tail > 0) std::memcpy(next.data(), in_.data() + end, tail);
    {
      std::lock_guard lock(inbox_mutex_);
      inbox_.push_back(delivery{std::move(in_), end});
      inbox_bytes_ += end;
      inbox_high_water_ = std::max(inbox_high_water_, inbox_bytes_);
    }
    inbox_changed_.notify_one();
    in_ = std::move(next);
    in_used_ = tail;
    return true;
  }

  // Plain TCP: the delivery thread reads the socket itself, cuts frames,
  // consumes heartbeats and goodbyes, decodes the rest and runs the actors they
  // make runnable (as the shared-memory reader does). It blocks in a
  // synchronous Asio read when there is nothing to read; finish() shuts the
  // socket down to end it.
  // Heartbeats it has not read yet (a long handler, a dial to a third node)
  // wait in the socket, where the failure detector counts them as life.
  void read_loop() noexcept {
    begin_reading(/*run_inline=*/true);
    std::vector<std::byte> buffer = std::move(in_);
    std::size_t used = in_used_;
    bool ended_here = false;  // a defect ended the link (deliberately: no re-dial)
    boost::system::error_code ec;
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
          set_close_reason("link to " + describe() + " closed: " + *problem);
          ended_here = true;
          break;
        }
      }
      run_batch();
      if (ended_here || closing_.load(std::memory_order_acquire)) break;
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
        std::lock_guard lock(inbox_mutex_);  // read, not yet delivered: one buffer at most
        inbox_high_water_ = std::max(inbox_high_water_, used);
      }
      std::lock_guard lock(liveness_mutex_);
      last_heard_ = clock_type::now();
    }
    boost::system::error_code close_error;
    reader.close(close_error);
    bool said_goodbye = false;
    const std::string why = why_ended(ec, said_goodbye);
    // The strand shuts the link down (timer, writes); this thread reports the loss.
    asio::post(strand_, [self = self(), why, deliberate = said_goodbye || ended_here] {
      self->finish(why, deliberate);
      boost::system::error_code ignored;
      self->stream_->plain.close(ignored);  // nobody reads it any more
    });
    lost(why);
    try {
      transport_.node.tcp_link_lost(peer_->name, peer_->endpoint,
                                    said_goodbye || ended_here || deliberate_end_.load(std::memory_order_acquire));
    } catch (...) {
    }
  }

  // The delivery thread: decodes records and runs the actors they make
  // runnable (as the shared-memory reader does), off the I/O threads — so a
  // handler, or a ref to a third node whose decoding dials it, never holds up
  // reads, heartbeats or other links. Ends, after delivering everything that
  // arrived, once finish() closed the inbox; then the link is lost.
  void deliver_loop() noexcept {
    begin_reading(/*run_inline=*/true);
    delivery batch;
    bool broken = false;
    for (;;) {
      {
        std::unique_lock lock(inbox_mutex_);
        // Back to the I/O thread for reuse (a few, of a usual size).
        if (!batch.bytes.empty() && spare_.size() < 4 && batch.bytes.capacity() <= 4 * read_chunk) {
          spare_.push_back(std::move(batch.bytes));
        }
        inbox_changed_.wait(lock, [&] { return !inbox_.empty() || inbox_closed_; });
        if (inbox_.empty()) break;
        batch = std::move(inbox_.front());
        inbox_.pop_front();
        inbox_bytes_ -= batch.end;
        if (reading_paused_ && inbox_bytes_ <= node_.config().max_queued_bytes / 2) {
          reading_paused_ = false;
          asio::post(strand_, [self = self()] { self->parse_and_read(); });
        }
      }
      if (broken) continue;  // a defect ended the link: the rest is not trusted
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
          set_close_reason("link to " + describe() + " closed: " + *problem);
          close(*problem);
          break;
        }
      }
      run_batch();
    }
    std::string why = close_reason();
    if (why.empty()) why = "the link to " + describe() + " closed";
    const std::string name = peer_->name, endpoint = peer_->endpoint;
    bool said_goodbye = false;
    {
      std::lock_guard lock(inbox_mutex_);
      said_goodbye = said_goodbye_;
    }
    lost(why);
    try {
      transport_.node.tcp_link_lost(name, endpoint, said_goodbye);
    } catch (...) {
    }
  }

  // A defect: this node ends the link on purpose (and does not re-dial a peer
  // that broke the protocol), as for a defect found by the delivery thread.
  void fail(const std::string& defect) {
    set_close_reason("link to " + describe() + " closed: " + defect);
    finish(close_reason(), /*deliberate=*/true);
  }

  // --- writing (strand) ---
  void write_batch() {
    {
      std::lock_guard lock(write_mutex_);
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

  void on_written(const boost::system::error_code& ec) {
    {
      std::lock_guard lock(write_mutex_);
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

  // --- heartbeats and the failure detector (strand) ---
  void tick() {
    if (finished_flag_) return;
    const auto& fd = transport_.config.failure_detector;
    const auto now = clock_type::now();
    if (now - last_heartbeat_sent_ >= fd.heartbeat_interval) {
      last_heartbeat_sent_ = now;
      (void)write(record_kind::heartbeat, {});
    }
    double silence = 0, phi = 0;
    {
      std::lock_guard lock(liveness_mutex_);
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
        set_close_reason("link to " + describe() + " closed: failure detector: " + text);
        return finish(close_reason(), /*deliberate=*/false);
      }
    }
    timer_.expires_after(fd.heartbeat_interval / 2);
    timer_.async_wait([self = self()](boost::system::error_code ec) {
      if (!ec) self->tick();
    });
  }

  // The end of the link, once (strand).
  void finish(const std::string& why, bool deliberate) noexcept {
    if (finished_flag_) return;
    finished_flag_ = true;
    if (deliberate) deliberate_end_.store(true, std::memory_order_release);
    closing_.store(true, std::memory_order_release);
    {
      std::lock_guard lock(write_mutex_);
      write_closed_ = true;
    }
    boost::system::error_code ignored;
    timer_.cancel();
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
      std::lock_guard lock(liveness_mutex_);
      goodbye = goodbye_;
    }
    {
      std::lock_guard lock(inbox_mutex_);
      said_goodbye_ = goodbye || deliberate;
      inbox_closed_ = true;
    }
    inbox_changed_.notify_one();  // the delivery thread drains, then reports the loss
  }

  tcp_transport::impl& transport_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::unique_ptr<tcp_stream> stream_;
  asio::steady_timer timer_;
  std::size_t max_frame_ = 0;

  // Strand only.
  std::vector<std::byte> in_;  // TLS: the strand's read buffer; plain: the leftover until read_loop takes it
  std::size_t in_used_ = 0;
  bool reads_directly_ = false;              // plain TCP: read_loop reads; set in start()
  std::atomic<bool> deliberate_end_{false};  // ended on purpose here (close(), a defect): no re-dial
  std::vector<std::byte> sending_;
  clock_type::time_point last_heartbeat_sent_;
  // What the reading thread learns and the strand's tick judges (under liveness_mutex_).
  std::mutex liveness_mutex_;
  phi_detector detector_;
  clock_type::time_point last_heard_, last_heartbeat_heard_;
  bool goodbye_ = false;
  std::string goodbye_text_;
  bool finished_flag_ = false;
  bool deliverable_ = false;  // the current read holds records for the delivery thread

  // The delivery thread's inbox (under inbox_mutex_): read buffers and where
  // their whole frames end; spare buffers go back the other way.
  struct delivery {
    std::vector<std::byte> bytes;
    std::size_t end = 0;
  };
  std::mutex inbox_mutex_;
  std::condition_variable inbox_changed_;
  std::deque<delivery> inbox_;
  std::size_t inbox_bytes_ = 0;  // of the deliveries queued
  std::size_t inbox_high_water_ = 0;
  bool reading_paused_ = false;  // the strand stopped reading until the inbox drains
  std::vector<std::vector<std::byte>> spare_;
  bool inbox_closed_ = false;
  bool said_goodbye_ = false;
  std::thread delivery_;
  std::mutex join_mutex_;  // join() from several threads

  // Under write_mutex_.
  std::mutex write_mutex_;
  std::condition_variable room_;  // room in the queue
  std::vector<std::byte> out_;    // frames not yet handed to the socket
  std::size_t sending_size_ = 0;  // bytes of the batch in flight
  bool write_in_flight_ = false;
  bool write_closed_ = false;
  clock_type::time_point last_direct_write_{};  // when the last direct write_some returned
};

// --- the transport ---------------------------------------------------------------------------

tcp_transport::tcp_transport(node_core& node) : impl_(std::make_unique<impl>(node)) {
  impl& s = *impl_;
  const node_config& cfg = s.config;
  if (!cfg.cookie.empty()) {
    if (cfg.cookie.size() < 16)
      throw troupe_error(error(errc::connection_lost, "the cookie must have at least 16 characters"));
    s.cookie = cfg.cookie;
  } else {
    auto cookie = load_cookie(cfg.cookie_file.empty() ? default_cookie_path() : cfg.cookie_file,
                              /*create=*/cfg.cookie_file.empty());
    if (!cookie) throw troupe_error(cookie.error());
    s.cookie = std::move(*cookie);
  }
  if (cfg.tls.enabled) {
    try {
      s.tls = std::make_unique<ssl::context>(ssl::context::tls);
      s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      s.tls->use_certificate_chain_file(cfg.tls.certificate_file);
      s.tls->use_private_key_file(cfg.tls.private_key_file, ssl::context::pem);
      s.tls->load_verify_file(cfg.tls.ca_file);
      s.tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    } catch (const std::exception& e) {
      throw troupe_error(
          error(errc::connection_lost, std::string("TLS set-up failed (certificate, key or CA file): ") + e.what()));
    }
  }
  if (!cfg.listen.empty()) {
    auto where = parse_endpoint(cfg.listen, /*allow_any_port=*/true);
    if (!where) throw troupe_error(where.error());
    try {
      const auto address = asio::ip::make_address(where->host);
      tcp::endpoint local(address, where->port);
      s.acceptor = std::make_unique<tcp::acceptor>(s.io);
      s.acceptor->open(local.protocol());
      s.acceptor->set_option(tcp::acceptor::reuse_address(true));
      s.acceptor->bind(local);
      s.acceptor->listen(static_cast<int>(std::max<std::size_t>(cfg.max_pending_connections, 16)));
      const auto bound = s.acceptor->local_endpoint();
      std::string host = where->host;
      if (address.is_unspecified()) {
        char name[256] = {};
        host = ::gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
      }
      s.endpoint = cfg.advertise.empty() ? format_endpoint(host, bound.port()) : cfg.advertise;
    } catch (const std::exception& e) {
      throw troupe_error(error(errc::name_in_use, "cannot listen on " + cfg.listen + ": " + e.what()));
    }
  }
  s.work.emplace(s.io.get_executor());
  for (std::size_t i = 0; i < std::max<std::size_t>(cfg.io_threads, 1); ++i) {
    s.threads.emplace_back([&s] {
      // Records written from here (heartbeats, replies to lookups) never wait.
      forbid_blocking_sends_on_this_thread();
      s.io.run();
    });
  }
  s.redialer = std::thread([&s] { s.redial_loop(); });
  if (s.acceptor) asio::post(s.io, [&s] { s.accept_next(); });
}

tcp_transport::~tcp_transport() { stop(); }

std::string tcp_transport::endpoint() const { return impl_->endpoint; }

void tcp_transport::stop() noexcept {
  impl& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;  // from here no link is made (make_link) and no dial starts
    s.changed.notify_all();
  }
  if (s.acceptor) {
    asio::post(s.io, [&s] {
      boost::system::error_code ignored;
      s.acceptor->close(ignored);
    });
  }
  if (s.redialer.joinable()) s.redialer.join();
  {
    // Handshakes and dials in progress end by their deadlines (they need the I/O threads).
    std::unique_lock lock(s.mutex);
    s.changed.wait(lock, [&] { return s.pending_handshakes == 0 && s.active_dials == 0; });
  }
  std::vector<std::shared_ptr<tcp_connection>> links;
  {
    std::lock_guard lock(s.mutex);
    for (auto& w : s.links) {
      if (auto c = w.lock()) links.push_back(std::move(c));
    }
  }
  for (auto& c : links) c->say_goodbye("node '" + s.node.name() + "' is shutting down");
  for (auto& c : links) c->join();
  s.work.reset();
  s.io.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

hello_info tcp_transport::impl::my_hello() const {
  hello_info h;
  h.name = node.name();
  h.incarnation = node.incarnation();
  h.anchor_id = node.anchor_id();
  h.host = node.host();
  h.endpoint = endpoint;
  return h;
}

std::unique_ptr<tcp_stream> tcp_transport::impl::wrap(tcp::socket socket) {
  auto stream = std::make_unique<tcp_stream>(std::move(socket));
  if (tls) stream->tls = std::make_unique<ssl::stream<tcp::socket&>>(stream->plain, *tls);
  return stream;
}

std::shared_ptr<connection> tcp_transport::impl::make_link(std::unique_ptr<tcp_stream> stream,
                                                           std::vector<std::byte> leftover, hello_info hello) {
  auto peer = std::make_shared<peer_info>();
  peer->name = hello.name;
  peer->incarnation = hello.incarnation;
  peer->anchor_id = hello.anchor_id;
  peer->host = hello.host;
  peer->endpoint = hello.endpoint;
  const std::string remote = stream->remote();
  auto c = std::make_shared<tcp_connection>(node, *this, std::move(stream), std::move(leftover), std::move(peer),
                                            std::move(hello.schema));
  c->remote_ = remote;
  {
    std::lock_guard lock(mutex);
    // stop() has collected the links to close: a late one would outlive the I/O threads.
    if (stopping) return nullptr;
    std::erase_if(links, [](const std::weak_ptr<tcp_connection>& w) { return w.expired(); });
    links.push_back(c);
    redials.erase(hello.name);
  }
  return node.register_connection(c);
}

void tcp_transport::impl::accept_next() {
  acceptor->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      bool admitted = false;
      {
        std::lock_guard lock(mutex);
        if (!stopping && pending_handshakes < config.max_pending_connections) {
          ++pending_handshakes;
          admitted = true;
        }
      }
      if (!admitted) {
        boost::system::error_code e2;
        const auto from = socket.remote_endpoint(e2);
        node.log("refused a connection from " + (e2 ? std::string("?") : from.address().to_string()) +
                 ": too many handshakes pending (max_pending_connections)");
        socket.close(e2);
      } else {
        try {
          std::thread([this, s = std::move(socket)]() mutable {
            handshake_accepted(std::move(s));
            std::lock_guard lock(mutex);
            --pending_handshakes;
            changed.notify_all();
          }).detach();  // stop() waits for pending_handshakes to reach 0
        } catch (...) {
          std::lock_guard lock(mutex);
          --pending_handshakes;
        }
      }
    }
    accept_next();
  });
}

void tcp_transport::impl::handshake_accepted(tcp::socket socket) noexcept {
  try {
    auto stream = wrap(std::move(socket));
    const std::string from = stream->remote();
    const time_limit until = clock_type::now() + config.connect_timeout;
    handshake_io io_steps(io, *stream, until);
    auto refuse = [&](const std::string& log_text, const std::string& told) {
      node.log("refused a link from " + from + ": " + log_text);
      (void)io_steps.send(static_cast<std::uint32_t>(tcp_kind::refusal),
                          {reinterpret_cast<const std::byte*>(told.data()), told.size()});
    };
    if (stream->tls) {
      if (auto ok = io_steps.tls_handshake(ssl::stream_base::server); !ok) {
        node.log("refused a link from " + from + ": " + ok.error().text());
        return;
      }
    }
    const nonce mine = fresh_own_nonce();
    if (auto sent = io_steps.send(static_cast<std::uint32_t>(tcp_kind::challenge), encode_challenge(mine)); !sent) {
      return;
    }
    auto challenge = io_steps.receive(64);
    if (!challenge) return refuse("no challenge: " + challenge.error().text(), "no challenge");
    if (challenge->kind != static_cast<std::uint32_t>(tcp_kind::challenge))
      return refuse("no challenge", "no challenge");
    auto theirs = parse_challenge(challenge->body);
    if (!theirs) return refuse(theirs.error().text(), theirs.error().text());
    if (is_own(*theirs))
      return refuse("a reflected challenge (one of this node's own nonces)", "authentication failed");
    auto proof = io_steps.receive(max_handshake_frame);
    if (!proof) return refuse("no proof: " + proof.error().text(), "no proof");
    if (proof->kind != static_cast<std::uint32_t>(tcp_kind::proof) || proof->body.size() < 32) {
      return refuse("no proof", "no proof");
    }
    const auto their_hello = std::span<const std::byte>(proof->body).subspan(32);
    const auth_mac expected_mac = compute_mac(cookie, dialer_role, *theirs, mine, their_hello);
    if (!macs_equal(expected_mac, std::span(proof->body).first(32))) {
      // The peer learns nothing but the refusal; it never reaches an actor.
      return refuse("authentication failed (wrong cookie)", "authentication failed");
    }
    auto hello = parse_hello(their_hello);
    if (!hello) return refuse(hello.error().text(), hello.error().text());
    if (hello->name == node.name()) return refuse("a peer with this node's own name", "a node named like this one");
    if (auto clash = node.admit_link(hello->name, hello->incarnation, hello->endpoint)) return refuse(*clash, *clash);
    const std::vector<std::byte> my_hello_bytes = encode_hello(my_hello(), node.schema_table());
    std::vector<std::byte> transcript(their_hello.begin(), their_hello.end());
    transcript.insert(transcript.end(), my_hello_bytes.begin(), my_hello_bytes.end());
    const auth_mac my_mac = compute_mac(cookie, acceptor_role, *theirs, mine, transcript);
    if (auto sent = io_steps.send(static_cast<std::uint32_t>(tcp_kind::welcome), my_mac, my_hello_bytes); !sent) {
      return;
    }
    (void)make_link(std::move(stream), io_steps.take_leftover(), std::move(*hello));  // null if stopping
  } catch (const std::exception& e) {
    node.log(std::string("accepting a TCP link failed: ") + e.what());
  }
}

expected<std::shared_ptr<connection>> tcp_transport::impl::dial(const std::string& where,
                                                                const std::string& expected_name, time_limit until) {
  auto target = parse_endpoint(where);
  if (!target) return target.error();
  {
    std::lock_guard lock(mutex);
    if (stopping) return error(errc::system_stopped, "the node is shutting down");
    ++active_dials;
  }
  struct dial_done {
    impl& s;
    ~dial_done() {
      std::lock_guard lock(s.mutex);
      --s.active_dials;
      s.changed.notify_all();
    }
  } done_guard{*this};
  tcp::resolver::results_type endpoints;
  try {
    tcp::resolver resolver(io);
    endpoints = resolver.resolve(target->host, std::to_string(target->port));
  } catch (const std::exception& e) {
    return error(errc::no_such_node, "cannot resolve " + where + ": " + e.what());
  }
  auto stream = wrap(tcp::socket(io));
  handshake_io io_steps(io, *stream, until);
  auto unreachable = [&](const error& e) {
    // A TLS alert (our certificate refused) is a refusal, not an absent node.
    const bool tls_refusal = e.text().find("TLS: ") != std::string::npos;
    return error(e.code() == errc::timeout ? errc::timeout
                 : tls_refusal             ? errc::connection_lost
                                           : errc::no_such_node,
                 "no node reachable at " + where + " (" + e.text() + ")");
  };
  if (auto ok = io_steps.connect(endpoints); !ok) return unreachable(ok.error());
  if (stream->tls) {
    if (auto ok = io_steps.tls_handshake(ssl::stream_base::client); !ok) {
      return error(errc::connection_lost, "TLS with " + where + " failed: " + ok.error().text());
    }
  }
  const nonce mine = fresh_own_nonce();
  if (auto ok = io_steps.send(static_cast<std::uint32_t>(tcp_kind::challenge), encode_challenge(mine)); !ok) {
    return unreachable(ok.error());
  }
  auto challenge = io_steps.receive(64);
  if (!challenge) return unreachable(challenge.error());
  if (challenge->kind == static_cast<std::uint32_t>(tcp_kind::refusal)) {
    return error(errc::connection_lost, where + " refused the link: " +
                                            std::string(reinterpret_cast<const char*>(challenge->body.data()),
                                                        std::min<std::size_t>(challenge->body.size(), 512)));
  }
  if (challenge->kind != static_cast<std::uint32_t>(tcp_kind::challenge)) {
    return error(errc::malformed_message, where + " is not a troupe node (no challenge)");
  }
  auto theirs = parse_challenge(challenge->body);
  if (!theirs) return error(theirs.error().code(), where + ": " + theirs.error().text());
  if (is_own(*theirs)) {
    node.log("refused the link to " + where + ": it reflected one of this node's own challenges");
    return error(errc::connection_lost, where + " reflected this node's own challenge (an attack?)");
  }
  const std::vector<std::byte> my_hello_bytes = encode_hello(my_hello(), node.schema_table());
  const auth_mac my_mac = compute_mac(cookie, dialer_role, mine, *theirs, my_hello_bytes);
  if (auto ok = io_steps.send(static_cast<std::uint32_t>(tcp_kind::proof), my_mac, my_hello_bytes); !ok) {
    return unreachable(ok.error());
  }
  auto answer = io_steps.receive(max_handshake_frame);
  if (!answer) return error(errc::connection_lost, "no welcome from " + where + ": " + answer.error().text());
  if (answer->kind == static_cast<std::uint32_t>(tcp_kind::refusal)) {
    std::string text(reinterpret_cast<const char*>(answer->body.data()),
                     std::min<std::size_t>(answer->body.size(), 512));
    if (text.starts_with("already linked") || text.starts_with("simultaneous dial")) {
      // The other direction's link is (about to be) the one: use it.
      auto c = expected_name.empty() ? node.await_endpoint(where, until) : node.await_link(expected_name, until);
      if (c) return c;
    }
    return error(errc::connection_lost, where + " refused the link: " + text);
  }
  if (answer->kind != static_cast<std::uint32_t>(tcp_kind::welcome) || answer->body.size() < 32) {
    return error(errc::malformed_message, where + " answered the proof with something else than a welcome");
  }
  const auto their_hello = std::span<const std::byte>(answer->body).subspan(32);
  std::vector<std::byte> transcript = my_hello_bytes;
  transcript.insert(transcript.end(), their_hello.begin(), their_hello.end());
  const auth_mac their_mac = compute_mac(cookie, acceptor_role, mine, *theirs, transcript);
  if (!macs_equal(their_mac, std::span(answer->body).first(32))) {
    node.log("refused the link to " + where + ": it failed to prove the cookie");
    return error(errc::connection_lost, where + " failed authentication (a different cookie)");
  }
  auto hello = parse_hello(their_hello);
  if (!hello) return error(hello.error().code(), where + ": " + hello.error().text());
  if (!expected_name.empty() && hello->name != expected_name) {
    return error(errc::no_such_node, where + " is node '" + hello->name + "', not '" + expected_name + "'");
  }
  if (hello->name == node.name()) return error(errc::no_such_node, where + " is this node itself");
  auto c = make_link(std::move(stream), io_steps.take_leftover(), std::move(*hello));
  if (!c) return error(errc::system_stopped, "the node is shutting down");
  return c;
}

expected<std::shared_ptr<connection>> tcp_transport::dial(const std::string& endpoint, const std::string& expected_name,
                                                          time_limit until) {
  try {
    return impl_->dial(endpoint, expected_name, until);
  } catch (const troupe_error& e) {
    return e.error();  // no randomness for a nonce, say
  } catch (const std::exception& e) {
    return error(errc::connection_lost, "dialing " + endpoint + " failed: " + e.what());
  }
}

// --- re-dialing --------------------------------------------------------------------------------

std::chrono::milliseconds tcp_transport::impl::backoff(int attempts) {
  const auto& r = config.reconnect;
  double wait = static_cast<double>(r.initial_backoff.count());
  for (int i = 1; i < attempts && wait < static_cast<double>(r.max_backoff.count()); ++i) wait *= 2;
  wait = std::min(wait, static_cast<double>(r.max_backoff.count()));
  std::uniform_real_distribution<double> spread(1.0 - r.jitter, 1.0 + r.jitter);
  return std::chrono::milliseconds(static_cast<std::int64_t>(wait * spread(jitter_random)));
}

void tcp_transport::link_lost(const std::string& name, const std::string& endpoint, bool said_goodbye) {
  impl& s = *impl_;
  if (said_goodbye || endpoint.empty() || s.config.reconnect.give_up_after.count() == 0) return;
  std::lock_guard lock(s.mutex);
  if (s.stopping) return;
  const auto now = clock_type::now();
  auto& r = s.redials[name];
  r.endpoint = endpoint;
  r.attempts = 0;
  r.since = now;
  r.next = now + s.backoff(1);
  r.last_error = "the link was lost";
  s.changed.notify_all();
}

void tcp_transport::link_up(const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  impl_->redials.erase(name);
}

std::optional<error> tcp_transport::unreachable(const std::string& name) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->redials.find(name);
  if (it == impl_->redials.end()) return std::nullopt;
  const auto now = clock_type::now();
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.since).count();
  const auto next =
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(it->second.next - now).count());
  return error(errc::connection_lost, "node '" + name + "' is unreachable (link lost " + std::to_string(since) +
                                          " ms ago; re-dialing " + it->second.endpoint + ", next attempt in " +
                                          std::to_string(next) + " ms; last: " + it->second.last_error + ")");
}

void tcp_transport::impl::redial_loop() noexcept {
  std::unique_lock lock(mutex);
  while (!stopping) {
    // The earliest due attempt.
    auto due = redials.end();
    for (auto it = redials.begin(); it != redials.end(); ++it) {
      if (due == redials.end() || it->second.next < due->second.next) due = it;
    }
    if (due == redials.end()) {
      changed.wait(lock);
      continue;
    }
    if (clock_type::now() < due->second.next) {
      // A copy: while this waits, a link coming up erases the entry (make_link),
      // and wait_until reads its deadline again when it wakes.
      const clock_type::time_point when = due->second.next;
      changed.wait_until(lock, when);
      continue;
    }
    if (clock_type::now() - due->second.since > config.reconnect.give_up_after) {
      node.log("gave up re-dialing node '" + due->first + "' at " + due->second.endpoint);
      redials.erase(due);
      continue;
    }
    const std::string name = due->first, where = due->second.endpoint;
    due->second.next = clock_type::time_point::max();  // not again until this attempt ends
    lock.unlock();
    std::optional<error> failed;
    if (!node.has_link(name)) {
      auto c = dial(where, name, clock_type::now() + config.connect_timeout);
      if (!c) failed = c.error();
    }
    lock.lock();
    auto it = redials.find(name);
    if (it == redials.end()) continue;  // linked meanwhile
    if (!failed) {
      redials.erase(it);
      continue;
    }
    ++it->second.attempts;
    it->second.last_error = failed->text();
    it->second.next = clock_type::now() + backoff(it->second.attempts + 1);
  }
}

}  // namespace troupe::detail
