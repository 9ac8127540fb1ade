// The AMQP sink's broker half: publisher (troupe/bridge/amqp.hpp has the
// design). One thread owns a connection whose channel 1 is in confirm mode:
// the sink actor queues publishes for it; it writes them, numbers them as
// RabbitMQ does (1, 2, ... per channel after confirm.select) and answers each
// one's reply_promise when the broker's basic.ack or basic.nack names it.
#include <amqp.h>
#include <amqp_framing.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "amqp_session.hpp"
#include "troupe/bridge/amqp.hpp"

namespace troupe::bridge::amqp {

using namespace detail_session;

namespace {
constexpr amqp_channel_t publish_channel = 1;
// How long a closing publisher waits for the confirms of what it wrote.
constexpr std::chrono::seconds confirm_wait_on_close{2};
// The longest the thread sleeps in poll() without calling into rabbitmq-c,
// which sends heartbeats only from inside its calls.
constexpr std::chrono::milliseconds max_idle{500};
}  // namespace

struct publisher::impl {
  explicit impl(sink_config c) : config(std::move(c)) {}

  struct job {
    std::string bytes;
    std::string routing_key;
    reply_promise<published> reply;
  };

  sink_config config;
  std::thread thread;
  waker wake;

  std::mutex mutex;
  std::condition_variable connected_changed;
  std::deque<job> waiting;  // guarded by mutex: accepted, not yet written
  bool closing = false;     // guarded by mutex
  bool connected = false;   // guarded by mutex
  bool gave_up = false;     // guarded by mutex: publishes fail at once

  // Relaxed counters: each is a total on its own, read for stats only.
  std::atomic<std::uint64_t> connects{0}, losses{0}, confirmed{0}, refused{0};

  // The thread's own state.
  session link;
  std::uint64_t next_seq = 1;
  std::map<std::uint64_t, job> unconfirmed;  // publish seq -> its reply

  void run();
  [[nodiscard]] expected<void> connect();
  std::optional<std::string> serve();
  std::optional<std::string> read_available();
  void fail_unconfirmed(const std::string& why) {
    for (auto& [seq, j] : unconfirmed) {
      j.reply.fail(
          error(errc::connection_lost, "AMQP publish to '" + destination(j) + "': " + why +
                                           " before the broker confirmed it (it may or may not have been taken)"));
      refused.fetch_add(1, std::memory_order_relaxed);
    }
    unconfirmed.clear();
  }
  std::string destination(const job& j) const { return config.exchange.empty() ? j.routing_key : config.exchange; }
  void set_connected(bool on) {
    {
      std::lock_guard lock(mutex);
      connected = on;
    }
    connected_changed.notify_all();
  }
  bool is_closing() {
    std::lock_guard lock(mutex);
    return closing;
  }
};

publisher::publisher(sink_config config) : impl_(std::make_unique<impl>(std::move(config))) {
  impl_->thread = std::thread([i = impl_.get()] { i->run(); });
}

publisher::~publisher() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->closing = true;
  }
  impl_->wake.wake();
  impl_->thread.join();
}

void publisher::publish(std::string bytes, std::string routing_key, reply_promise<published> reply) {
  if (routing_key.empty()) routing_key = impl_->config.routing_key;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->gave_up || impl_->closing) {
      reply.fail(error(errc::connection_lost,
                       impl_->closing ? "AMQP sink: closing" : "AMQP sink: gave up reconnecting to the broker"));
      return;
    }
    if (impl_->waiting.size() >= impl_->config.max_waiting) {
      reply.fail(error(errc::mailbox_full, "AMQP sink: " + std::to_string(impl_->waiting.size()) +
                                               " publishes already wait for the connection"));
      return;
    }
    impl_->waiting.push_back({std::move(bytes), std::move(routing_key), std::move(reply)});
  }
  impl_->wake.wake();
}

bool publisher::wait_connected(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->connected_changed.wait_for(lock, timeout, [i = impl_.get()] { return i->connected; });
}

publisher_stats publisher::stats() const {
  publisher_stats s;
  s.connects = impl_->connects.load(std::memory_order_relaxed);
  s.connection_losses = impl_->losses.load(std::memory_order_relaxed);
  s.confirmed = impl_->confirmed.load(std::memory_order_relaxed);
  s.refused = impl_->refused.load(std::memory_order_relaxed);
  return s;
}

void publisher::impl::run() {
  keep_connected(config.connection,
                 "sink to '" + (config.exchange.empty() ? config.routing_key : config.exchange) + "'", link, wake,
                 connects, losses,
                 {.closing = [this] { return is_closing(); },
                  .connect = [this] { return connect(); },
                  .serving = [this](bool on) { set_connected(on); },
                  .serve = [this] { return serve(); },
                  .lost = [this](const std::string& why) { fail_unconfirmed(why); }});
  fail_unconfirmed("the sink closed");
  link.close();
  std::deque<job> left;
  {
    std::lock_guard lock(mutex);
    gave_up = true;
    left.swap(waiting);
  }
  for (job& j : left) {
    j.reply.fail(error(errc::connection_lost, "AMQP publish to '" + destination(j) + "': the sink closed first"));
    refused.fetch_add(1, std::memory_order_relaxed);
  }
}

expected<void> publisher::impl::connect() {
  if (expected<void> r = link.open(config.connection, 1); !r) return r;
  amqp_connection_state_t c = link.get();
  if (!config.exchange.empty()) {
    if (expected<void> r = declare_exchange(c, publish_channel, config.exchange, config.exchange_type); !r) return r;
  }
  amqp_confirm_select(c, publish_channel);
  if (amqp_rpc_reply_t r = amqp_get_rpc_reply(c); r.reply_type != AMQP_RESPONSE_NORMAL) {
    return error(errc::connection_lost, describe(r, "confirm.select"));
  }
  next_seq = 1;
  return {};
}

std::optional<std::string> publisher::impl::serve() {
  amqp_connection_state_t c = link.get();
  std::optional<std::chrono::steady_clock::time_point> close_by;
  for (;;) {
    std::deque<job> batch;
    bool want_close = false;
    {
      std::lock_guard lock(mutex);
      batch.swap(waiting);
      want_close = closing;
    }
    while (!batch.empty()) {
      job& j = batch.front();
      amqp_basic_properties_t props{};
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
      props.delivery_mode = config.persistent ? 2 : 1;
      props.content_type = bytes_of(config.content_type);
      const int status = amqp_basic_publish(c, publish_channel, bytes_of(config.exchange), bytes_of(j.routing_key), 0,
                                            0, &props, bytes_of(j.bytes));
      if (status != AMQP_STATUS_OK) {
        // This one may have reached the broker in part: it fails. Those after
        // it were not written: they wait for the next connection.
        const std::string why = describe_status(status, "basic.publish");
        j.reply.fail(error(errc::connection_lost, "AMQP publish to '" + destination(j) + "': " + why));
        refused.fetch_add(1, std::memory_order_relaxed);
        batch.pop_front();
        std::lock_guard lock(mutex);
        while (!batch.empty()) {
          waiting.push_front(std::move(batch.back()));
          batch.pop_back();
        }
        return why;
      }
      unconfirmed.emplace(next_seq++, std::move(j));
      batch.pop_front();
    }
    if (want_close) {
      if (!close_by) close_by = std::chrono::steady_clock::now() + confirm_wait_on_close;
      if (unconfirmed.empty() || std::chrono::steady_clock::now() >= *close_by) return std::nullopt;
    }
    if (!link.has_buffered()) {
      (void)wake.wait(amqp_get_sockfd(c), want_close ? std::chrono::milliseconds(50) : max_idle);
    }
    if (std::optional<std::string> failed = read_available()) return failed;
  }
}

std::optional<std::string> publisher::impl::read_available() {
  amqp_connection_state_t c = link.get();
  timeval now{0, 0};  // only what is there: poll() did the waiting
  for (;;) {
    amqp_maybe_release_buffers(c);
    amqp_frame_t frame;
    const int status = amqp_simple_wait_frame_noblock(c, &frame, &now);
    if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
    if (status != AMQP_STATUS_OK) return describe_status(status, "reading confirms");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD:
      case AMQP_BASIC_NACK_METHOD: {
        const bool ack = frame.payload.method.id == AMQP_BASIC_ACK_METHOD;
        std::uint64_t upto = 0;
        bool multiple = false;
        if (ack) {
          const auto* m = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
          upto = m->delivery_tag;
          multiple = m->multiple != 0;
        } else {
          const auto* m = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
          upto = m->delivery_tag;
          multiple = m->multiple != 0;
        }
        auto first = multiple ? unconfirmed.begin() : unconfirmed.find(upto);
        auto last = multiple ? unconfirmed.upper_bound(upto) : (first == unconfirmed.end() ? first : std::next(first));
        for (auto i = first; i != last; ++i) {
          if (ack) {
            i->second.reply.deliver(published{destination(i->second), -1, -1});
            confirmed.fetch_add(1, std::memory_order_relaxed);
          } else {
            i->second.reply.fail(error(errc::remote_fault, "AMQP publish to '" + destination(i->second) +
                                                               "': the broker refused it (basic.nack)"));
            refused.fetch_add(1, std::memory_order_relaxed);
          }
        }
        unconfirmed.erase(first, last);
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD: {
        const auto* m = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
        return "the broker closed the channel: " + std::to_string(m->reply_code) + " " + string_of(m->reply_text);
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        const auto* m = static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
        std::string why =
            "the broker closed the connection: " + std::to_string(m->reply_code) + " " + string_of(m->reply_text);
        amqp_connection_close_ok_t ok{};
        (void)amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return why;
      }
      default:
        break;  // basic.return of an unroutable publish is not asked for (mandatory = 0)
    }
  }
}

}  // namespace troupe::bridge::amqp
