// endpoint: the I/O half of a port, living on the shared reactor. Owns: one OS
// endpoint's asio objects, its read side's framing and flow control, its write
// queue. May use: Boost.Asio, the port's public messages.
//
// The port actor (port_actor.cpp) owns an endpoint through a shared_ptr, and so
// does every handler in flight on the reactor. Everything an endpoint does runs
// on its strand; the port actor only posts to it (write, close_output, shutdown)
// and reads its counters, so a slow or dead peer never blocks a scheduler worker.
// When the endpoint ends (EOF, error, program exit) it tells the owner and then
// its port (detail::ended), which stops; the port's destructor calls shutdown(),
// which closes the OS objects and lets go of the port's ref (no cycle remains).
//
// Thread safety: start/write/send_to/close_output/shutdown/stats from any
// thread (the port actor); everything else on the strand.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "troupe/ports/port.hpp"

namespace troupe::ports::detail {

namespace asio = boost::asio;
using strand_type = asio::strand<asio::io_context::executor_type>;

struct endpoint_context {
  owner_sink sink;
  port self;
  port_options options;
  reactor* io = nullptr;
  troupe::system* sys = nullptr;
};

class endpoint : public std::enable_shared_from_this<endpoint> {
 public:
  explicit endpoint(reactor& io) : strand_(asio::make_strand(io.context())) {}
  virtual ~endpoint() = default;
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  // --- from the port actor ---
  void start(endpoint_context context);
  void write(std::vector<std::byte> bytes);
  void send_to(std::string to, std::vector<std::byte> bytes);
  void send_with_priority(std::vector<std::byte> bytes, unsigned priority);
  void send_typed(long type, std::vector<std::byte> bytes);
  void close_output();
  void shutdown();
  [[nodiscard]] port_stats stats() const noexcept;
  [[nodiscard]] virtual std::string local_address() const = 0;

  // --- on the strand, for readers and writers ---
  // Hands one frame to the owner with a credit; false if the endpoint ended.
  bool deliver(std::vector<std::byte> bytes, channel from);
  bool deliver_datagram(std::string from, std::vector<std::byte> bytes);
  bool deliver_queue_message(std::vector<std::byte> bytes, unsigned priority);
  bool deliver_typed_message(long type, std::vector<std::byte> bytes);
  [[nodiscard]] bool over_high_water() const noexcept;
  void note_pause() noexcept { pauses_.fetch_add(1, std::memory_order_relaxed); }
  void note_dropped() noexcept { dropped_.fetch_add(1, std::memory_order_relaxed); }
  void note_written(std::size_t n) noexcept { written_.fetch_add(n, std::memory_order_relaxed); }
  void note_queued(std::int64_t delta) noexcept { queued_.fetch_add(delta, std::memory_order_relaxed); }
  // The endpoint ended cleanly (closed{why}) or with an error (port_error{what}).
  void end_closed(std::string why);
  void end_failed(std::string what);
  // As end_*, with the notice and reason given (program ports).
  void end_with(exit_reason reason);
  [[nodiscard]] bool ended() const noexcept { return ended_; }
  [[nodiscard]] const endpoint_context& context() const noexcept { return context_; }
  [[nodiscard]] strand_type& strand() noexcept { return strand_; }

 protected:
  virtual void begin() = 0;               // start reading
  virtual void resume() = 0;              // below low_water again
  virtual void close_all() noexcept = 0;  // close every OS object, kill a program
  virtual void stopping() noexcept {}     // on the port's thread, as it stops (before close_all)
  virtual void do_write(std::vector<std::byte> bytes);
  virtual void do_send_to(std::string to, std::vector<std::byte> bytes);
  virtual void do_send_with_priority(std::vector<std::byte> bytes, unsigned priority);
  virtual void do_send_typed(long type, std::vector<std::byte> bytes);
  virtual void do_close_output() {}

 private:
  class port_flow;
  template <class Send, class Make>
  bool hand_over(const Send& send, const char* missing, Make&& make);
  strand_type strand_;
  endpoint_context context_;  // set on the strand by start(); the port's ref dropped by shutdown()
  std::shared_ptr<port_flow> flow_;
  bool ended_ = false;
  bool shut_ = false;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> pauses_{0};
  std::atomic<std::int64_t> max_outstanding_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::int64_t> queued_{0};
};

// Reads one stream into frames. Stream: an asio stream (descriptor or socket).
// `on_end` is told when the stream is over (EOF or error) and every frame has
// been delivered; it decides what that means for the endpoint.
template <class Stream>
class stream_reader {
 public:
  using end_handler = std::function<void(const boost::system::error_code&)>;
  stream_reader(endpoint& owner, Stream& stream, const framing& f, channel from, end_handler on_end)
      : owner_(owner), stream_(stream), framer_(f), from_(from), on_end_(std::move(on_end)) {}

  // Starts (or resumes) reading; on the strand.
  void pump() {
    if (done_ || reading_ || owner_.ended()) return;
    if (!drain()) return;  // paused at high_water, or the framing failed
    if (end_) {
      finish();
      return;
    }
    reading_ = true;
    stream_.async_read_some(
        asio::buffer(buffer_),
        asio::bind_executor(owner_.strand(), [this, keep = owner_.shared_from_this()](
                                                 const boost::system::error_code& ec, std::size_t n) {
          reading_ = false;
          if (owner_.ended()) return;
          if (n > 0) framer_.feed(std::span<const std::byte>(buffer_.data(), n));
          if (ec) end_ = ec;
          pump();
        }));
  }
  [[nodiscard]] bool done() const noexcept { return done_; }

 private:
  // Delivers buffered frames; false while it must stop (paused or failed).
  bool drain() {
    while (true) {
      if (owner_.over_high_water()) {
        if (!paused_) owner_.note_pause();
        paused_ = true;
        return false;
      }
      paused_ = false;
      auto frame = framer_.next();
      if (!frame) return true;
      if (!*frame) {
        done_ = true;
        owner_.end_failed(frame->error().text());
        return false;
      }
      if (!owner_.deliver(std::move(**frame), from_)) return false;
    }
  }
  void finish() {
    if (auto last = framer_.finish()) {
      if (!*last) {
        done_ = true;
        owner_.end_failed(last->error().text());
        return;
      }
      if (!owner_.deliver(std::move(**last), from_)) return;
    }
    done_ = true;
    on_end_(*end_);
  }

  endpoint& owner_;
  Stream& stream_;
  framer framer_;
  channel from_;
  end_handler on_end_;
  std::array<std::byte, std::size_t{64} << 10> buffer_{};
  std::optional<boost::system::error_code> end_;
  bool reading_ = false;
  bool paused_ = false;
  bool done_ = false;
};

// Writes the owner's frames in order; at most max_write_queue bytes wait.
template <class Stream>
class stream_writer {
 public:
  using error_handler = std::function<void(const boost::system::error_code&)>;
  stream_writer(endpoint& owner, Stream& stream, error_handler on_error)
      : owner_(owner), stream_(stream), on_error_(std::move(on_error)) {}

  void push(std::vector<std::byte> bytes) {
    if (failed_ || owner_.ended()) return;
    const framing& f = owner_.context().options.frames;
    auto framed = framer::encode(f, std::move(bytes));
    if (!framed) {
      owner_.end_failed(framed.error().text());
      return;
    }
    if (queued_ + framed->size() > owner_.context().options.max_write_queue) {
      owner_.end_failed("write queue over " + std::to_string(owner_.context().options.max_write_queue) +
                        " bytes: the peer does not read");
      return;
    }
    queued_ += framed->size();
    owner_.note_queued(static_cast<std::int64_t>(framed->size()));
    queue_.push_back(std::move(*framed));
    flush();
  }
  // Closes the write side once the queue is written.
  void close_when_done(std::function<void()> close) {
    closer_ = std::move(close);
    flush();
  }

 private:
  void flush() {
    if (writing_ || failed_) return;
    if (queue_.empty()) {
      if (closer_) std::exchange(closer_, {})();
      return;
    }
    // Gathers what is queued into one write (up to 64 buffers).
    batch_.clear();
    for (std::size_t i = 0; i < queue_.size() && i < 64; ++i) batch_.emplace_back(asio::buffer(queue_[i]));
    const std::size_t count = batch_.size();
    writing_ = true;
    asio::async_write(stream_, batch_,
                      asio::bind_executor(owner_.strand(), [this, count, keep = owner_.shared_from_this()](
                                                               const boost::system::error_code& ec, std::size_t n) {
                        writing_ = false;
                        if (owner_.ended()) return;
                        for (std::size_t i = 0; i < count; ++i) queue_.pop_front();
                        queued_ -= n;
                        owner_.note_queued(-static_cast<std::int64_t>(n));
                        owner_.note_written(n);
                        if (ec) {
                          failed_ = true;
                          on_error_(ec);
                          return;
                        }
                        flush();
                      }));
  }

  endpoint& owner_;
  Stream& stream_;
  error_handler on_error_;
  std::deque<std::vector<std::byte>> queue_;
  std::vector<asio::const_buffer> batch_;
  std::function<void()> closer_;
  std::size_t queued_ = 0;
  bool writing_ = false;
  bool failed_ = false;
};

}  // namespace troupe::ports::detail

namespace troupe::ports {
// What an endpoint_spec holds: how to open the endpoint, again at every restart.
struct endpoint_spec::opener {
  virtual ~opener() = default;
  [[nodiscard]] virtual expected<std::shared_ptr<detail::endpoint>> open(reactor& io) const = 0;
};
}  // namespace troupe::ports

namespace troupe::ports::detail {
// Spawns the port of an endpoint opened already (an accepted connection).
port spawn_opened(reactor& io, troupe::system& sys, owner_sink sink, std::shared_ptr<endpoint> opened,
                  const port_options& options);
}  // namespace troupe::ports::detail
