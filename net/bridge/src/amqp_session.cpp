// The AMQP links' shared pieces (amqp_session.hpp).
#include "amqp_session.hpp"

#include <amqp_tcp_socket.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <iostream>

namespace troupe::bridge::amqp::detail_session {

namespace {

timeval timeval_of(std::chrono::milliseconds d) noexcept {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d);
  return timeval{static_cast<time_t>(s.count()), static_cast<suseconds_t>((d - s).count() * 1000)};
}

error failed(std::string text) { return error(errc::connection_lost, std::move(text)); }

}  // namespace

std::string describe_status(int status, std::string_view what) {
  return std::string(what) + ": " + amqp_error_string2(status);
}

std::string describe(const amqp_rpc_reply_t& reply, std::string_view what) {
  std::string text(what);
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return text + ": ok";
    case AMQP_RESPONSE_NONE:
      return text + ": no reply (missing RPC reply type)";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return text + ": " + amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
        return text + ": the broker closed the connection: " + std::to_string(m->reply_code) + " " +
               string_of(m->reply_text);
      }
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
        return text + ": the broker closed the channel: " + std::to_string(m->reply_code) + " " +
               string_of(m->reply_text);
      }
      return text + ": the broker answered with method " + std::to_string(reply.reply.id);
  }
  return text + ": unknown reply";
}

expected<void> session::open(const connection_settings& settings, int channels) {
  close();
  conn_ = amqp_new_connection();
  if (conn_ == nullptr) return failed("amqp_new_connection: out of memory");
  amqp_socket_t* socket = amqp_tcp_socket_new(conn_);  // owned by the connection
  if (socket == nullptr) return failed("amqp_tcp_socket_new: out of memory");
  timeval deadline = timeval_of(settings.connect_timeout);
  // Bounds the handshake and every synchronous method: a broker that accepts
  // the TCP connection and then says nothing cannot hold the link's thread.
  amqp_set_handshake_timeout(conn_, &deadline);
  amqp_set_rpc_timeout(conn_, &deadline);
  const std::string where = settings.host + ":" + std::to_string(settings.port);
  if (const int status = amqp_socket_open_noblock(socket, settings.host.c_str(), settings.port, &deadline);
      status != AMQP_STATUS_OK) {
    return failed(describe_status(status, "connecting to " + where));
  }
  const amqp_rpc_reply_t login =
      amqp_login(conn_, settings.vhost.c_str(), 0, 131072, static_cast<int>(settings.heartbeat.count()),
                 AMQP_SASL_METHOD_PLAIN, settings.user.c_str(), settings.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) return failed(describe(login, "logging in to " + where));
  healthy_ = true;
  for (int c = 1; c <= channels; ++c) {
    amqp_channel_open(conn_, static_cast<amqp_channel_t>(c));
    const amqp_rpc_reply_t opened = amqp_get_rpc_reply(conn_);
    if (opened.reply_type != AMQP_RESPONSE_NORMAL) {
      healthy_ = false;
      return failed(describe(opened, "opening channel " + std::to_string(c)));
    }
    channels_ = c;
  }
  return {};
}

void session::close() noexcept {
  if (conn_ == nullptr) return;
  if (healthy_) {
    // Polite close; each is bounded by the RPC timeout set in open().
    for (int c = channels_; c >= 1; --c) amqp_channel_close(conn_, static_cast<amqp_channel_t>(c), AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
  channels_ = 0;
  healthy_ = false;
}

waker::waker() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "troupe::bridge::amqp: eventfd");
}

waker::~waker() { ::close(fd_); }

void waker::wake() noexcept {
  const std::uint64_t one = 1;
  // Cannot fail short of a counter overflow (2^64 - 1 wakes unread), and a
  // failed write still leaves the eventfd readable: nothing to handle.
  (void)!::write(fd_, &one, sizeof one);
}

bool waker::wait(int socket_fd, std::chrono::milliseconds timeout) noexcept {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {socket_fd, POLLIN, 0}};
  const int count = socket_fd >= 0 ? 2 : 1;
  const int ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(timeout.count(), 0, INT_MAX));
  if (::poll(fds, static_cast<nfds_t>(count), ms) <= 0) return false;  // timeout or EINTR: the caller loops
  if ((fds[0].revents & POLLIN) != 0) {
    std::uint64_t ignored = 0;
    (void)!::read(fd_, &ignored, sizeof ignored);
  }
  // POLLHUP/POLLERR too: the read that follows reports the failure.
  return count == 2 && fds[1].revents != 0;
}

expected<void> declare_exchange(amqp_connection_state_t c, amqp_channel_t channel, const std::string& name,
                                const std::string& type) {
  amqp_exchange_declare(c, channel, bytes_of(name), bytes_of(type), 0, 1, 0, 0, amqp_empty_table);
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) return failed(describe(r, "declaring exchange '" + name + "'"));
  return {};
}

expected<std::uint32_t> declare_queue(amqp_connection_state_t c, amqp_channel_t channel, const std::string& name,
                                      bool passive) {
  const amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(c, channel, bytes_of(name), passive ? 1 : 0, 1, 0, 0, amqp_empty_table);
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (ok == nullptr || r.reply_type != AMQP_RESPONSE_NORMAL) {
    return failed(describe(r, "declaring queue '" + name + "'"));
  }
  return ok->message_count;
}

expected<void> bind_queue(amqp_connection_state_t c, amqp_channel_t channel, const std::string& queue,
                          const std::string& exchange, const std::string& key) {
  amqp_queue_bind(c, channel, bytes_of(queue), bytes_of(exchange), bytes_of(key), amqp_empty_table);
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    return failed(describe(r, "binding queue '" + queue + "' to '" + exchange + "' under '" + key + "'"));
  }
  return {};
}

std::chrono::milliseconds reconnect_pause(const connection_settings& s, std::uint32_t failures) noexcept {
  std::chrono::milliseconds pause = s.reconnect_backoff;
  // Doubling stops at the cap, so many failures cannot overflow.
  for (std::uint32_t i = 1; i < failures && pause < s.max_reconnect_backoff; ++i) pause *= 2;
  return std::min(pause, s.max_reconnect_backoff);
}

void keep_connected(const connection_settings& s, const std::string& who, session& link, waker& wake,
                    std::atomic<std::uint64_t>& connects, std::atomic<std::uint64_t>& losses, const link_steps& steps) {
  std::uint32_t failures = 0;
  while (!steps.closing()) {
    if (expected<void> opened = steps.connect(); !opened) {
      link.broken();
      link.close();
      ++failures;
      report(s, connection_event::kind::lost, who,
             "attempt " + std::to_string(failures) + " failed: " + opened.error().text());
      if (s.max_reconnect_attempts != 0 && failures >= s.max_reconnect_attempts) {
        report(s, connection_event::kind::gave_up, who, "after " + std::to_string(failures) + " attempts");
        return;
      }
      wake.wait(-1, reconnect_pause(s, failures));
      continue;
    }
    failures = 0;
    // Relaxed: counters, read for stats only.
    connects.fetch_add(1, std::memory_order_relaxed);
    report(s, connection_event::kind::connected, who, {});
    steps.serving(true);
    const std::optional<std::string> why = steps.serve();
    steps.serving(false);
    if (!why) return;
    losses.fetch_add(1, std::memory_order_relaxed);
    link.broken();
    link.close();
    steps.lost(*why);
    report(s, connection_event::kind::lost, who, *why);
    wake.wait(-1, reconnect_pause(s, 1));
  }
}

void report(const connection_settings& s, connection_event::kind what, const std::string& who,
            const std::string& text) {
  const char* verb = what == connection_event::kind::connected ? "connected"
                     : what == connection_event::kind::lost    ? "connection lost"
                                                               : "gave up reconnecting";
  std::cerr << "troupe::bridge::amqp " << who << " (" << s.host << ':' << s.port << "): " << verb
            << (text.empty() ? "" : ": ") << text << '\n';
  if (s.on_event) s.on_event(connection_event{what, text});
}

}  // namespace troupe::bridge::amqp::detail_session
