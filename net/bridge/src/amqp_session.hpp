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

#include <chrono>
#include <cstdint>
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

}  // namespace troupe::bridge::amqp::detail_session
