// amqp_session: what the AMQP source and sink share (src/amqp.cpp,
// src/amqp_sink.cpp): one rabbitmq-c connection opened with deadlines and
// closed exactly once, rabbitmq-c's replies turned into readable errors, and
// the owner thread's wait — its socket and its wake-up eventfd in one poll().
//
// Thread safety: a session belongs to its link's thread; wake() alone may be
// called from any thread.
#pragma once

#include <amqp.h>
#include <amqp_framing.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "troupe/bridge/amqp.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::bridge::amqp::detail_session {

// The broker's or the library's words for a failed call ("what: ...").
std::string describe(const amqp_rpc_reply_t& reply, std::string_view what);
std::string describe_status(int status, std::string_view what);

inline amqp_bytes_t bytes_of(std::string_view s) noexcept {
  // rabbitmq-c's amqp_bytes_t is a non-owning (length, pointer) pair; it only
  // reads through it, so the const_cast never leads to a write.
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}
inline std::string string_of(amqp_bytes_t b) { return {static_cast<const char*>(b.bytes), b.len}; }

// A connection: socket, login, channels; destroyed (closed if it was open) once.
class session {
 public:
  session() = default;
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() { close(); }

  // Connects and logs in, then opens `channels` channels (1..channels). The
  // error's text says which step failed and why.
  [[nodiscard]] expected<void> open(const connection_settings& settings, int channels);
  // Channel.close and connection.close (bounded by the RPC timeout) if the
  // connection is still healthy, then frees it.
  void close() noexcept;
  // Marks the connection broken: close() will not talk to the broker.
  void broken() noexcept { healthy_ = false; }
  [[nodiscard]] amqp_connection_state_t get() const noexcept { return conn_; }
  [[nodiscard]] bool is_open() const noexcept { return conn_ != nullptr; }
  // A frame is already buffered by rabbitmq-c: read it without waiting.
  [[nodiscard]] bool has_buffered() const noexcept {
    return conn_ != nullptr && (amqp_frames_enqueued(conn_) != 0 || amqp_data_in_buffer(conn_) != 0);
  }

 private:
  amqp_connection_state_t conn_ = nullptr;
  int channels_ = 0;
  bool healthy_ = false;
};

// The link thread's wake-up: an eventfd other threads write and the thread
// polls with its socket.
class waker {
 public:
  waker();
  ~waker();
  waker(const waker&) = delete;
  waker& operator=(const waker&) = delete;
  void wake() noexcept;
  // Waits until the eventfd or `socket_fd` (if >= 0) is readable, at most
  // `timeout`. True when the socket is readable; the eventfd is reset.
  bool wait(int socket_fd, std::chrono::milliseconds timeout) noexcept;

 private:
  int fd_ = -1;
};

// Declares an exchange (durable) / a queue (durable, or passive) / a binding on
// `channel`; the error says which and why. queue_declare returns the message count.
[[nodiscard]] expected<void> declare_exchange(amqp_connection_state_t c, amqp_channel_t channel,
                                              const std::string& name, const std::string& type);
[[nodiscard]] expected<std::uint32_t> declare_queue(amqp_connection_state_t c, amqp_channel_t channel,
                                                    const std::string& name, bool passive);
[[nodiscard]] expected<void> bind_queue(amqp_connection_state_t c, amqp_channel_t channel, const std::string& queue,
                                        const std::string& exchange, const std::string& key);

// The backoff before reconnect attempt `failures` (1 = after the first failure).
std::chrono::milliseconds reconnect_pause(const connection_settings& s, std::uint32_t failures) noexcept;

// A line on stderr and the settings' on_event.
void report(const connection_settings& s, connection_event::kind what, const std::string& who, const std::string& text);

// What the source's and the sink's link threads do differently; keep_connected
// does the rest.
struct link_steps {
  std::function<bool()> closing;
  std::function<expected<void>()> connect;
  std::function<void(bool)> serving;                  // true before serve(), false after it
  std::function<std::optional<std::string>()> serve;  // why the connection was lost; nullopt: closing
  std::function<void(const std::string&)> lost;       // after the lost connection is closed, before the report
};

// The link thread's loop, the same for the source and the sink: connect, then
// serve until the connection is lost or the link closes, counting and
// reporting each step. A failed attempt waits reconnect_pause(failures) and,
// past max_reconnect_attempts (if set), gives up; after a lost connection the
// first attempt waits the first backoff too (a broker that just closed the
// connection is rarely back at once). Returns when closing or given up.
void keep_connected(const connection_settings& s, const std::string& who, session& link, waker& wake,
                    std::atomic<std::uint64_t>& connects, std::atomic<std::uint64_t>& losses, const link_steps& steps);

}  // namespace troupe::bridge::amqp::detail_session
