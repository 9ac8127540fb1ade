// tcp_baseline — the floor for the remote_* workloads of WORKLOADS.md: what a
// hand-written, length-prefixed protocol over blocking TCP sockets costs
// between two processes on 127.0.0.1, with no runtime at all. troupe's TCP
// transport (troupe_remote) and CAF's middleman (caf_remote) are compared
// against it in bench/compare.
//
//   tcp_baseline [--quick] [--reps R] [--only NAME[,NAME...]] [--threads N]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// One TCP connection (TCP_NODELAY on both ends) carries frames of
// [u32 length][64-byte message] (ipc_common.hpp's message: sequence, kind,
// payload). remote_ping_pong writes each frame with one write() as it is sent;
// remote_stream lets the writer batch the way a tuned sender would: frames are
// appended to a 64 KiB buffer that goes out in one write() when full (and
// before the writer waits for anything). The reader reads whatever has arrived
// into a 256 KiB buffer and parses frames out of it one by one, checking each
// length. The two-process harness (fork, start/ready handshake, warm-up,
// sequence checks, watchdog, peer death) is ipc_common.hpp's, so this floor is
// measured exactly like the ipc_* baselines. --threads is accepted and ignored
// (each side is one single-threaded process).
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>

#include "ipc_common.hpp"
#include "remote_common.hpp"

namespace {

namespace ipc = troupe::bench::ipc;
namespace remote = troupe::bench::remote;
using ipc::message;
using ipc::side;

using ipc::unique_fd;

// The frame header: the length of what follows. Host byte order, since both
// ends are this machine (a wire protocol would fix one; on x86 a little-endian
// one costs nothing).
using frame_length = std::uint32_t;
constexpr std::size_t frame_bytes = sizeof(frame_length) + sizeof(message);

// One side of the connection. send() writes its frame at once; stream_send()
// appends to the batch and writes the batch when it is full; every send() and
// receive() first writes out a pending batch, so nothing waits on a frame that
// is still in our buffer.
class framed_endpoint {
 public:
  static constexpr std::size_t batch_bytes = std::size_t{64} * 1024;
  static constexpr std::size_t receive_buffer_bytes = std::size_t{256} * 1024;

  explicit framed_endpoint(unique_fd socket)
      : socket_(std::move(socket)), batch_(batch_bytes), incoming_(receive_buffer_bytes) {}

  void send(const message& m) noexcept {
    append(m);
    flush();
  }
  void receive(message& m) noexcept {
    flush();
    next_frame(m);
  }
  void stream_send(const message& m) noexcept {
    if (batched_ + frame_bytes > batch_.size()) flush();
    append(m);
  }
  void stream_receive(message& m) noexcept { next_frame(m); }

 private:
  void append(const message& m) noexcept {
    frame_length length = sizeof m;
    std::memcpy(batch_.data() + batched_, &length, sizeof length);
    std::memcpy(batch_.data() + batched_ + sizeof length, &m, sizeof m);
    batched_ += frame_bytes;
  }

  void flush() noexcept {
    ipc::write_all(socket_.get(), batch_.data(), batched_);
    batched_ = 0;
  }

  // Parses the next frame out of the receive buffer, reading more when it
  // holds less than a whole frame. The length comes from the other process:
  // checked before use (this protocol has one frame size).
  void next_frame(message& m) noexcept {
    while (end_ - begin_ < sizeof(frame_length)) fill();
    frame_length length;
    std::memcpy(&length, incoming_.data() + begin_, sizeof length);
    if (length != sizeof m)
      ipc::fatal("a frame of " + std::to_string(length) + " bytes on the wire, expected " + std::to_string(sizeof m));
    while (end_ - begin_ < frame_bytes) fill();
    std::memcpy(&m, incoming_.data() + begin_ + sizeof length, sizeof m);
    begin_ += frame_bytes;
  }

  // One read() of whatever has arrived, into the whole buffer: the partial
  // frame we are called for (under frame_bytes) moves to the front first.
  void fill() noexcept {
    if (begin_ > 0) {
      std::memmove(incoming_.data(), incoming_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    for (;;) {
      ssize_t got = ::read(socket_.get(), incoming_.data() + end_, incoming_.size() - end_);
      if (got > 0) {
        end_ += static_cast<std::size_t>(got);
        return;
      }
      if (got == 0) ipc::fatal("read: the peer closed the connection (did it die?)");
      if (errno != EINTR) ipc::fatal_errno("read");
    }
  }

  unique_fd socket_;
  std::vector<std::byte> batch_;
  std::size_t batched_ = 0;  // bytes of batch_ not yet written
  std::vector<std::byte> incoming_;
  std::size_t begin_ = 0;  // incoming_[begin_, end_) is received and not yet parsed
  std::size_t end_ = 0;
};

// Both ends of one loopback TCP connection, made before fork(): listen on
// 127.0.0.1 at an ephemeral port, connect, accept, close the listener. Side A
// keeps the connecting end, side B the accepted one.
class tcp_channel {
 public:
  tcp_channel() { std::tie(a_end_, b_end_) = ipc::loopback_tcp_pair(); }

  // Closes the other side's end, so that a dead peer reads as EOF / EPIPE.
  framed_endpoint become(side s) {
    if (s == side::a) {
      b_end_.reset();
      return framed_endpoint{std::move(a_end_)};
    }
    a_end_.reset();
    return framed_endpoint{std::move(b_end_)};
  }

 private:
  unique_fd a_end_;
  unique_fd b_end_;
};

ipc::workload harness_workload(remote::workload w) {
  return w == remote::workload::ping_pong ? ipc::workload::ping_pong : ipc::workload::stream;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = remote::parse_options(argc, argv);
  ipc::install_handlers(argc > 0 ? argv[0] : "tcp_baseline", nullptr);
  auto counts = opts.parameters();
  // The harness takes its counts as ipc::params; these are the remote_* counts.
  ipc::params harness_counts{counts.round_trips, counts.stream_messages};
  for (auto w : remote::all_workloads) {
    if (!opts.selected(w)) continue;
    ipc::set_context("tcp", remote::name_of(w));
    auto rates = ipc::measure(
        harness_workload(w), [] { return tcp_channel{}; }, harness_counts, opts.reps);
    remote::report("tcp_baseline", w, rates);
  }
  return 0;
}
