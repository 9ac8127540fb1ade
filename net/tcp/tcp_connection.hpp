// tcp_connection: a connection to a node on another machine. Owns: one TCP
// (or TLS) socket's reads, writes, heartbeats and failure detector. May use: connection/, tcp/, wire/.
//
// Reads: plain TCP has a delivery thread that reads the socket itself (one
// thread between the wire and the actors, as a shared-memory reader); under
// TLS the strand reads and hands whole frames to the delivery thread. Writes:
// a lone message goes out from the sender's thread (non-blocking write_some);
// a stream is gathered and written by the strand, many frames per system
// call. A heartbeat every heartbeat_interval feeds the peer's phi-accrual
// detector (tcp/phi_detector.hpp). tcp/tcp_transport.hpp has the whole picture.
//
// Thread safety: write(), close(), say_goodbye() and join() from any thread;
// the members marked "strand" only on the connection's strand; the inbox and
// write queue under their mutexes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "connection/connection.hpp"
#include "tcp/phi_detector.hpp"
#include "tcp/tcp_stream.hpp"
#include "tcp/transport_impl.hpp"
#include "troupe/mailbox/mutex.hpp"

namespace troupe::detail {

class tcp_connection final : public connection {
 public:
  tcp_connection(node_core& node, tcp_transport::impl& transport, std::unique_ptr<tcp_stream> stream,
                 std::vector<std::byte> leftover, std::shared_ptr<peer_info> peer, schema_map schema);

  ~tcp_connection() override;  // the last reference may drop on the delivery thread itself

  void start() override;

  std::error_code write(record_kind kind, std::span<const std::byte> head,
                        std::span<const std::byte> body = {}) noexcept override;

  void close(const std::string& why) noexcept override;

  // Tells the peer this connection ends on purpose (it will not re-dial), then closes.
  void say_goodbye(const std::string& why) noexcept;

  void join() noexcept override;

  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] exit_reason loss_reason(const std::string& why) const override;
  [[nodiscard]] std::size_t inbound_high_water() noexcept override;

  std::string remote_;  // the peer's socket address, for log lines

 private:
  std::shared_ptr<tcp_connection> self();

  std::size_t queued_locked() const noexcept TROUPE_REQUIRES(write_mutex_);

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
  void parse_and_read();

  // Why reading ended with `ec` (and whether the peer said goodbye first).
  std::string why_ended(const boost::system::error_code& ec, bool& said_goodbye);

  void on_read(const boost::system::error_code& ec, std::size_t n);

  std::optional<std::string> on_record(std::uint32_t kind, std::span<const std::byte> body);

  // Hands the read buffer itself, whose frames before `end` were just parsed,
  // to the delivery thread — the bytes are not copied — and continues in a
  // spare buffer holding the partial frame after `end` (strand). False if
  // there was nothing to deliver (heartbeats only).
  bool hand_over(std::size_t end);

  // Plain TCP: the delivery thread reads the socket itself, cuts frames,
  // consumes heartbeats and goodbyes, decodes the rest and runs the actors they
  // make runnable (as the shared-memory reader does). It blocks in a
  // synchronous Asio read when there is nothing to read; finish() shuts the
  // socket down to end it.
  // Heartbeats it has not read yet (a long handler, a dial to a third node)
  // wait in the socket, where the failure detector counts them as life.
  void read_loop() noexcept;
  // read_loop()'s parts: reading until the connection ends (may throw on
  // out of memory), then reporting the end.
  void read_frames(bool& ended_here, boost::system::error_code& ec);
  void end_reading(const boost::system::error_code& ec, bool ended_here) noexcept;

  // The delivery thread: decodes records and runs the actors they make
  // runnable (as the shared-memory reader does), off the I/O threads — so a
  // handler, or a ref to a third node whose decoding dials it, never holds up
  // reads, heartbeats or other connections. Ends, after delivering everything that
  // arrived, once finish() closed the inbox; then the connection is lost.
  void deliver_loop() noexcept;
  // deliver_loop()'s parts, as read_loop()'s.
  void deliver_batches();
  void end_delivery() noexcept;

  // A defect: this node ends the connection on purpose (and does not re-dial a peer
  // that broke the protocol), as for a defect found by the delivery thread.
  void fail(const std::string& defect);

  // --- writing (strand) ---
  void write_batch();

  void on_written(const boost::system::error_code& ec);

  // --- heartbeats and the failure detector (strand) ---
  void tick();

  // The end of the connection, once (strand).
  void finish(const std::string& why, bool deliberate) noexcept;

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
  troupe::mutex liveness_mutex_;
  phi_detector detector_;
  clock_type::time_point last_heard_ TROUPE_GUARDED_BY(liveness_mutex_);
  clock_type::time_point last_heartbeat_heard_ TROUPE_GUARDED_BY(liveness_mutex_);
  bool goodbye_ TROUPE_GUARDED_BY(liveness_mutex_) = false;
  std::string goodbye_text_ TROUPE_GUARDED_BY(liveness_mutex_);
  bool finished_flag_ = false;
  bool deliverable_ = false;  // the current read holds records for the delivery thread

  // The delivery thread's inbox (under inbox_mutex_): read buffers and where
  // their whole frames end; spare buffers go back the other way.
  struct delivery {
    std::vector<std::byte> bytes;
    std::size_t end = 0;
  };
  troupe::mutex inbox_mutex_;
  std::condition_variable_any inbox_changed_;
  std::deque<delivery> inbox_ TROUPE_GUARDED_BY(inbox_mutex_);
  std::size_t inbox_bytes_ TROUPE_GUARDED_BY(inbox_mutex_) = 0;  // of the deliveries queued
  std::size_t inbox_high_water_ TROUPE_GUARDED_BY(inbox_mutex_) = 0;
  bool reading_paused_ TROUPE_GUARDED_BY(inbox_mutex_) = false;  // the strand stopped reading until the inbox drains
  std::vector<std::vector<std::byte>> spare_ TROUPE_GUARDED_BY(inbox_mutex_);
  bool inbox_closed_ TROUPE_GUARDED_BY(inbox_mutex_) = false;
  bool said_goodbye_ TROUPE_GUARDED_BY(inbox_mutex_) = false;
  std::thread delivery_;
  troupe::mutex join_mutex_;  // join() from several threads

  // Under write_mutex_.
  troupe::mutex write_mutex_;
  std::condition_variable_any room_;                              // room in the queue
  std::vector<std::byte> out_ TROUPE_GUARDED_BY(write_mutex_);    // frames not yet handed to the socket
  std::size_t sending_size_ TROUPE_GUARDED_BY(write_mutex_) = 0;  // bytes of the batch in flight
  bool write_in_flight_ TROUPE_GUARDED_BY(write_mutex_) = false;
  bool write_closed_ TROUPE_GUARDED_BY(write_mutex_) = false;
  clock_type::time_point last_direct_write_
      TROUPE_GUARDED_BY(write_mutex_) = {};  // when the last direct write_some returned
};

}  // namespace troupe::detail
