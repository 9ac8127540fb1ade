// The messages of ports: what a port sends its owner, and what the owner sends
// the port. An owner lists the ones it handles in its protocol:
//
//   using owner_protocol = troupe::protocol<troupe::ports::data, troupe::ports::closed,
//                                           troupe::ports::port_error, troupe::ports::child_exited>;
//   void on(troupe::ports::data d) { use(d.text()); }     // d.token returns its credit when d is destroyed
//   port.tell(troupe::ports::write{troupe::ports::bytes_of("hello\n")});
//
// A port sends only the notices its owner's protocol lists (data or received<T>
// is required; see port.hpp). Flow control: every data, datagram or received<T>
// carries a credit; the port stops reading while `high_water` of its messages
// are unhandled (their credits alive) and resumes when `low_water` are left.
// Keep a message (or move its token out) and you keep its credit.
//
// Thread safety: messages are values; a credit may be released on any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/protocol.hpp"
#include "troupe/runtime/ref.hpp"

namespace troupe::ports {

namespace detail {
// The count of a port's messages its owner has not yet handled. Lives as long
// as the port or its last credit, whichever is later.
class flow {
 public:
  virtual ~flow() = default;
  void take() noexcept {
    // relaxed: only the count matters; the port reads it on its strand, and a
    // resume is handed over by posting to that strand (a full barrier).
    outstanding_.fetch_add(1, std::memory_order_relaxed);
  }
  void give_back() noexcept {
    // acq_rel: the crossing to low_water is seen by exactly one releaser.
    if (outstanding_.fetch_sub(1, std::memory_order_acq_rel) == low_water_ + 1) below_low_water();
  }
  [[nodiscard]] std::int64_t outstanding() const noexcept {
    // acquire: pairs with give_back()'s release.
    return outstanding_.load(std::memory_order_acquire);
  }

 protected:
  explicit flow(std::int64_t low_water) noexcept : low_water_(low_water) {}
  // Called once per crossing down to low_water, on the thread that released.
  virtual void below_low_water() noexcept = 0;

 private:
  std::atomic<std::int64_t> outstanding_{0};
  const std::int64_t low_water_;
};
}  // namespace detail

// One unhandled message's worth of a port's flow control; returned when
// destroyed or released.
class credit {
 public:
  credit() noexcept = default;
  explicit credit(std::shared_ptr<detail::flow> f) noexcept : flow_(std::move(f)) {
    if (flow_) flow_->take();
  }
  credit(credit&& other) noexcept = default;
  credit& operator=(credit&& other) noexcept {
    if (this != &other) {
      release();
      flow_ = std::move(other.flow_);
    }
    return *this;
  }
  credit(const credit&) = delete;
  credit& operator=(const credit&) = delete;
  ~credit() { release(); }
  // Returns the credit now (the message may be kept).
  void release() noexcept {
    if (auto f = std::move(flow_)) f->give_back();
  }

 private:
  std::shared_ptr<detail::flow> flow_;
};

// --- port → owner ---------------------------------------------------------

enum class channel : std::uint8_t { output, errors };  // a program's stdout, its stderr

// One frame (or, raw, one read) from a stream port.
struct data {
  actor_addr port;
  std::vector<std::byte> bytes;
  channel from = channel::output;
  credit token;
  [[nodiscard]] std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT: bytes as chars
  }
};

// A UDP sender, as text "address:port" (IPv6 in brackets).
struct datagram {
  actor_addr port;
  std::string from;
  std::vector<std::byte> bytes;
  credit token;
  [[nodiscard]] std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT: bytes as chars
  }
};

// One message from a POSIX message queue, with its priority.
struct queue_message {
  actor_addr port;
  std::vector<std::byte> bytes;
  unsigned priority = 0;
  credit token;
  [[nodiscard]] std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT: bytes as chars
  }
};

// One message from a System V message queue, with its type (mtype, above 0).
struct typed_message {
  actor_addr port;
  long type = 0;
  std::vector<std::byte> bytes;
  credit token;
  [[nodiscard]] std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};  // NOLINT: bytes as chars
  }
};

// A frame decoded into the owner's type T (the typed layer, port.hpp).
template <class T>
struct received {
  actor_addr port;
  T value;
  credit token;
};

// The peer finished: end of file, hang-up. The port stops normally after this
// (a program port: once the program has exited, see child_exited).
struct closed {
  actor_addr port;
  std::string why;
};

// The port failed (bad framing, a read or write error, a frame that does not
// decode); the port stops with exit_reason::error(what) after this.
struct port_error {
  actor_addr port;
  std::string what;
};

struct exit_status {
  int code = 0;
  friend bool operator==(const exit_status&, const exit_status&) = default;
};
struct signal {
  int number = 0;
  friend bool operator==(const signal&, const signal&) = default;
};
using program_status = std::variant<exit_status, signal>;

// A program port's program ended. The port's exit reason says the same:
// normal for exit_status{0}, else error("exit_status 3" / "signal 9").
struct child_exited {
  actor_addr port;
  program_status status;
};

// --- owner → port ---------------------------------------------------------

// Bytes to write, framed by the port's framing.
struct write {
  std::vector<std::byte> bytes;
};
// POSIX message queue ports: one message with a priority (write{} sends at 0).
struct send_with_priority {
  std::vector<std::byte> bytes;
  unsigned priority;
};
// System V queue ports: one message of type `type` (above 0; write{} sends
// the port's default type).
struct send_typed {
  long type;
  std::vector<std::byte> bytes;
};
// UDP ports: one datagram to "host:port".
struct send_to {
  std::string to;
  std::vector<std::byte> bytes;
};
// Closes the writing side (a program's stdin, a socket's write half): the peer sees EOF.
struct close_output {};
// Closes the port: it stops normally (a program is killed).
struct close {};

// What a port counted (ask it: port.ask(troupe::ports::stats{}, 1s)).
struct port_stats {
  std::uint64_t delivered = 0;          // messages sent to the owner
  std::uint64_t datagrams_dropped = 0;  // datagrams read while the owner was over high_water
  std::uint64_t pauses = 0;             // times reading stopped at high_water
  std::int64_t max_outstanding = 0;     // most unhandled messages at the owner at once
  std::uint64_t bytes_written = 0;
  std::uint64_t write_queue_bytes = 0;  // accepted, not yet written
};
struct stats {
  using reply = port_stats;
};
// The port's own address: "127.0.0.1:40001" (a listening or UDP port bound to
// port 0 says which it got), a socket path, or "pid 1234" for a program.
struct local_address {
  using reply = std::string;
};

namespace detail {
// The endpoint ended: the port stops with this reason (sent by the port to itself).
struct ended {
  exit_reason reason;
};
}  // namespace detail

using port_protocol =
    protocol<write, send_with_priority, send_typed, send_to, close_output, close, stats, local_address, detail::ended>;
using port = ref<port_protocol>;

// A listening port accepted a connection: `connection` is its own port, linked
// to the same owner, framed like the listener.
struct accepted {
  actor_addr listener;
  port connection;
  std::string peer;
};

inline std::vector<std::byte> bytes_of(std::string_view text) {
  const auto* first = reinterpret_cast<const std::byte*>(text.data());  // NOLINT: chars as bytes
  return {first, first + text.size()};
}

}  // namespace troupe::ports
