// The AMQP source's broker half: consumer_link (troupe/bridge/amqp.hpp has the
// design). One thread owns the connection: it reads deliveries and hands them
// to source_core, and writes the settles other threads queued for it.
//
// Channels: 1 consumes (basic.qos prefetch = max_in_flight, manual acks); 2
// publishes dead letters in confirm mode. A delivery's token is the connection's
// generation (high 24 bits) and its delivery tag (low 40): delivery tags count
// per channel and start again on a new connection, so a settle that arrives
// after its connection was lost must not ack whatever now has that tag — it is
// dropped and counted (RabbitMQ redelivers that message anyway).
//
// Acks: the settles handed over since the thread last looked are written
// together, and the acked run at the front of what is outstanding goes out as
// one basic.ack with `multiple` (up to the last tag of the run: a tag still
// outstanding, so RabbitMQ knows it). An ack behind a message still in a
// handler (or a dead letter awaiting its confirm) is written on its own at
// once, never held back. Under load the batches grow by themselves: a settle
// wakes the thread only when the queue was empty.
#include <amqp.h>
#include <amqp_framing.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "amqp_session.hpp"
#include "troupe/bridge/amqp.hpp"

namespace troupe::bridge::amqp {

using namespace detail_session;
using bridge::detail::core_port;

namespace {

constexpr amqp_channel_t consume_channel = 1;
constexpr amqp_channel_t dead_letter_channel = 2;
constexpr int tag_bits = 40;
constexpr std::uint64_t tag_mask = (std::uint64_t{1} << tag_bits) - 1;
// How long close() waits for the broker to confirm the dead letters already
// published: their originals are acked only then.
constexpr std::chrono::seconds confirm_wait_on_close{2};
// The longest the thread sleeps in poll() without calling into rabbitmq-c,
// which sends heartbeats only from inside its calls.
constexpr std::chrono::milliseconds max_idle{500};

std::string text_of(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return string_of(v.value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN:
      return v.value.boolean != 0 ? "true" : "false";
    case AMQP_FIELD_KIND_I8:
      return std::to_string(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return std::to_string(v.value.u8);
    case AMQP_FIELD_KIND_I16:
      return std::to_string(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return std::to_string(v.value.u16);
    case AMQP_FIELD_KIND_I32:
      return std::to_string(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return std::to_string(v.value.u32);
    case AMQP_FIELD_KIND_I64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return std::to_string(v.value.i64);
    case AMQP_FIELD_KIND_U64:
      return std::to_string(v.value.u64);
    default:
      return {};  // tables, arrays, decimals, floats: not carried as text
  }
}

std::optional<std::int64_t> integer_of(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_I8:
      return v.value.i8;
    case AMQP_FIELD_KIND_U8:
      return v.value.u8;
    case AMQP_FIELD_KIND_I16:
      return v.value.i16;
    case AMQP_FIELD_KIND_U16:
      return v.value.u16;
    case AMQP_FIELD_KIND_I32:
      return v.value.i32;
    case AMQP_FIELD_KIND_U32:
      return v.value.u32;
    case AMQP_FIELD_KIND_I64:
      return v.value.i64;
    default:
      return std::nullopt;
  }
}

}  // namespace

struct consumer_link::impl {
  impl(source_config c, std::function<void(std::string)> f) : config(std::move(c)), fail(std::move(f)) {
    dead_letter_queue = config.dead_letter_queue.empty() ? config.queue + ".dead" : config.dead_letter_queue;
  }

  // A settle handed over by another thread.
  struct settle {
    std::uint64_t token = 0;
    bool dead = false;
    std::string bytes;   // dead letters: the original payload
    std::string reason;  // dead letters: why
    std::string routing_key;
  };

  source_config config;
  std::function<void(std::string)> fail;  // the source stops with it
  std::string dead_letter_queue;
  core_port* core = nullptr;  // set by start(), before the thread
  std::thread thread;
  waker wake;

  std::mutex mutex;
  std::deque<settle> settles;  // guarded by mutex
  bool closing = false;        // guarded by mutex
  bool cancel = false;         // guarded by mutex: stop_consuming() was called
  bool consuming = false;      // guarded by mutex
  bool thread_done = false;    // guarded by mutex: settles after this are stale
  std::string last_error;      // guarded by mutex

  // Relaxed counters: each is a total on its own, read for stats only.
  std::atomic<std::uint64_t> connects{0}, losses{0}, acks_sent{0}, stale{0}, dead_letters{0};

  // The thread's own state.
  session link;
  std::uint32_t generation = 0;
  bool cancelled = false;
  std::string consumer_tag;
  std::uint64_t next_dead_letter_seq = 1;
  std::map<std::uint64_t, std::uint64_t> dead_letters_unconfirmed;  // publish seq -> original's delivery tag
  // This connection's deliveries not yet acked or nacked on the wire: tag -> settled
  // (an ack handed over, waiting for the run before it to complete).
  std::map<std::uint64_t, bool> outstanding;

  void run();
  [[nodiscard]] expected<void> connect();
  // Serves one connection; returns why it ended, or nothing when closing.
  std::optional<std::string> serve();
  // Writes the queued settles; false with `why` set if the connection failed.
  bool write_settles(std::deque<settle>& batch, std::string& why);
  // One basic.ack (multiple: `tag` and every outstanding tag before it);
  // false with `why` set if the connection failed.
  bool write_ack(std::uint64_t tag, bool multiple, std::uint64_t count, std::string& why);
  // Reads what is there (a delivery or a method frame) without waiting.
  std::optional<std::string> read_available();
  std::optional<std::string> handle_method(const amqp_frame_t& frame);
  void set_consuming(bool on) {
    std::lock_guard lock(mutex);
    consuming = on;
  }
  bool is_closing() {
    std::lock_guard lock(mutex);
    return closing;
  }
};

consumer_link::consumer_link(source_config config, std::function<void(std::string)> fail)
    : impl_(std::make_unique<impl>(std::move(config), std::move(fail))) {}

consumer_link::~consumer_link() { close(false, std::chrono::nanoseconds::zero()); }

void consumer_link::start(core_port& core) {
  impl_->core = &core;
  impl_->thread = std::thread([i = impl_.get()] { i->run(); });
}

void consumer_link::close(bool graceful, std::chrono::nanoseconds drain_timeout) {
  if (graceful && impl_->core != nullptr) {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->cancel = true;  // basic.cancel: no new deliveries
    }
    impl_->wake.wake();
    (void)impl_->core->drain(drain_timeout);
  }
  {
    std::lock_guard lock(impl_->mutex);
    impl_->closing = true;
  }
  impl_->wake.wake();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void consumer_link::acknowledge(std::uint64_t token) {
  bool first = true;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->thread_done) {
      // A settle into a non-empty queue needs no wake: the one that made it
      // non-empty woke the thread, which takes the whole queue after it.
      first = impl_->settles.empty();
      impl_->settles.push_back({token, false, {}, {}, {}});
      token = 0;
    }
  }
  // The link is closed: nothing acks it now; RabbitMQ redelivers it.
  if (token != 0) impl_->stale.fetch_add(1, std::memory_order_relaxed);
  if (first) impl_->wake.wake();
}

void consumer_link::dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                                const std::string& reason) {
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->thread_done) {
      impl_->settles.push_back({token, true, std::string(bytes), reason, from.key});
      token = 0;
    }
  }
  if (token != 0) impl_->stale.fetch_add(1, std::memory_order_relaxed);
  impl_->wake.wake();
}

bridge::link_stats consumer_link::link() const {
  bridge::link_stats s;
  // Relaxed: counters, each a total on its own.
  s.connects = impl_->connects.load(std::memory_order_relaxed);
  s.connection_losses = impl_->losses.load(std::memory_order_relaxed);
  s.settles_sent = impl_->acks_sent.load(std::memory_order_relaxed);
  s.stale_settles = impl_->stale.load(std::memory_order_relaxed);
  s.dead_letters = impl_->dead_letters.load(std::memory_order_relaxed);
  std::lock_guard lock(impl_->mutex);
  s.connected = impl_->consuming;
  s.last_error = impl_->last_error;
  return s;
}

void consumer_link::impl::run() {
  keep_connected(config.connection, "source of '" + config.queue + "'", link, wake, connects, losses,
                 {.closing = [this] { return is_closing(); },
                  .connect = [this] { return connect(); },
                  .serving = [this](bool on) { set_consuming(on); },
                  .serve = [this] { return serve(); },
                  // What was delivered and not acked on it, RabbitMQ redelivers
                  // (flagged redelivered); its settles still queued are now stale.
                  .lost =
                      [this](const std::string& why) {
                        dead_letters_unconfirmed.clear();
                        std::lock_guard lock(mutex);
                        last_error = why;
                      }});
  link.close();
  // keep_connected returns without a close only when it gave up reconnecting.
  if (!is_closing() && fail) fail("amqp source of '" + config.queue + "': gave up reconnecting");
  std::deque<settle> left;
  {
    std::lock_guard lock(mutex);
    thread_done = true;
    left.swap(settles);
  }
  stale.fetch_add(left.size(), std::memory_order_relaxed);
}

expected<void> consumer_link::impl::connect() {
  if (expected<void> r = link.open(config.connection, 2); !r) return r;
  amqp_connection_state_t c = link.get();
  if (!config.exchange.empty()) {
    if (expected<void> r = declare_exchange(c, consume_channel, config.exchange, config.exchange_type); !r) return r;
  }
  if (expected<std::uint32_t> r = declare_queue(c, consume_channel, config.queue, config.passive_queue); !r) {
    return r.error();
  }
  for (const std::string& key : config.binding_keys) {
    if (expected<void> r = bind_queue(c, consume_channel, config.queue, config.exchange, key); !r) return r;
  }
  if (expected<std::uint32_t> r = declare_queue(c, dead_letter_channel, dead_letter_queue, false); !r) {
    return r.error();
  }
  // The prefetch is the in-flight bound: RabbitMQ stops sending while this many
  // are unacknowledged on the channel — the backpressure lives in the broker.
  // At least 1: a prefetch of 0 means "unlimited" to RabbitMQ.
  const auto prefetch = static_cast<std::uint16_t>(std::clamp<std::size_t>(config.flow.max_in_flight, 1, 65535));
  amqp_basic_qos(c, consume_channel, 0, prefetch, 0);
  if (amqp_rpc_reply_t r = amqp_get_rpc_reply(c); r.reply_type != AMQP_RESPONSE_NORMAL) {
    return error(errc::connection_lost, describe(r, "basic.qos"));
  }
  amqp_confirm_select(c, dead_letter_channel);
  if (amqp_rpc_reply_t r = amqp_get_rpc_reply(c); r.reply_type != AMQP_RESPONSE_NORMAL) {
    return error(errc::connection_lost, describe(r, "confirm.select on the dead-letter channel"));
  }
  next_dead_letter_seq = 1;
  outstanding.clear();  // the last connection's: RabbitMQ redelivers them
  ++generation;
  {
    std::lock_guard lock(mutex);
    cancelled = cancel;
  }
  if (!cancelled) {
    const amqp_basic_consume_ok_t* ok =
        amqp_basic_consume(c, consume_channel, bytes_of(config.queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (ok == nullptr || r.reply_type != AMQP_RESPONSE_NORMAL) {
      return error(errc::connection_lost, describe(r, "basic.consume on '" + config.queue + "'"));
    }
    consumer_tag = string_of(ok->consumer_tag);
  }
  return {};
}

std::optional<std::string> consumer_link::impl::serve() {
  std::optional<std::chrono::steady_clock::time_point> close_by;
  for (;;) {
    std::deque<settle> batch;
    bool want_cancel = false;
    bool want_close = false;
    {
      std::lock_guard lock(mutex);
      batch.swap(settles);
      want_cancel = cancel;
      want_close = closing;
    }
    std::string why;
    if (!write_settles(batch, why)) return why;
    if (want_cancel && !cancelled) {
      // nowait: no basic.cancel-ok to wait for; deliveries already on their way
      // still arrive and are handled (the drain waits for them).
      amqp_basic_cancel_t m{bytes_of(consumer_tag), 1};
      if (const int status = amqp_send_method(link.get(), consume_channel, AMQP_BASIC_CANCEL_METHOD, &m);
          status != AMQP_STATUS_OK) {
        return describe_status(status, "basic.cancel");
      }
      cancelled = true;
    }
    if (want_close) {
      // The settles are written; acks of dead letters wait for their confirms,
      // a little.
      if (!close_by) close_by = std::chrono::steady_clock::now() + confirm_wait_on_close;
      if (dead_letters_unconfirmed.empty() || std::chrono::steady_clock::now() >= *close_by) return std::nullopt;
    }
    if (!link.has_buffered()) {
      const auto idle = want_close ? std::chrono::milliseconds(50) : max_idle;
      (void)wake.wait(amqp_get_sockfd(link.get()), idle);
    }
    if (std::optional<std::string> failed = read_available()) return failed;
  }
}

bool consumer_link::impl::write_ack(std::uint64_t tag, bool multiple, std::uint64_t count, std::string& why) {
  if (const int status = amqp_basic_ack(link.get(), consume_channel, tag, multiple ? 1 : 0); status != AMQP_STATUS_OK) {
    why = describe_status(status, "basic.ack");
    return false;
  }
  acks_sent.fetch_add(count, std::memory_order_relaxed);
  return true;
}

bool consumer_link::impl::write_settles(std::deque<settle>& batch, std::string& why) {
  amqp_connection_state_t c = link.get();
  std::vector<std::uint64_t> acked;  // this batch's acks, in the order they came
  for (settle& s : batch) {
    if ((s.token >> tag_bits) != generation) {
      stale.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const std::uint64_t tag = s.token & tag_mask;
    if (!s.dead) {
      const auto it = outstanding.find(tag);
      if (it == outstanding.end()) {
        // Not a delivery this thread knows (cannot happen): acked alone, as RabbitMQ sees fit.
        if (!write_ack(tag, false, 1, why)) return false;
        continue;
      }
      it->second = true;
      acked.push_back(tag);
      continue;
    }
    amqp_table_entry_t headers[3];
    headers[0].key = amqp_cstring_bytes("x-troupe-reason");
    headers[0].value.kind = AMQP_FIELD_KIND_UTF8;
    headers[0].value.value.bytes = bytes_of(s.reason);
    headers[1].key = amqp_cstring_bytes("x-troupe-queue");
    headers[1].value.kind = AMQP_FIELD_KIND_UTF8;
    headers[1].value.value.bytes = bytes_of(config.queue);
    headers[2].key = amqp_cstring_bytes("x-troupe-routing-key");
    headers[2].value.kind = AMQP_FIELD_KIND_UTF8;
    headers[2].value.value.bytes = bytes_of(s.routing_key);
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    props.headers = amqp_table_t{3, headers};
    // The default exchange routes by queue name: straight to the dead-letter queue.
    if (const int status = amqp_basic_publish(c, dead_letter_channel, amqp_empty_bytes, bytes_of(dead_letter_queue), 0,
                                              0, &props, bytes_of(s.bytes));
        status != AMQP_STATUS_OK) {
      why = describe_status(status, "publishing a dead letter");
      return false;
    }
    dead_letters_unconfirmed.emplace(next_dead_letter_seq++, tag);
  }
  if (acked.empty()) return true;
  // The settled run at the front of what is outstanding: one ack up to its last tag.
  std::uint64_t run_end = 0;
  std::uint64_t run_length = 0;
  while (!outstanding.empty() && outstanding.begin()->second) {
    run_end = outstanding.begin()->first;
    ++run_length;
    outstanding.erase(outstanding.begin());
  }
  if (run_length > 0 && !write_ack(run_end, run_length > 1, run_length, why)) return false;
  // Acks behind a message not settled yet: each on its own, now.
  for (const std::uint64_t tag : acked) {
    if (outstanding.erase(tag) == 0) continue;  // went out with the run
    if (!write_ack(tag, false, 1, why)) return false;
  }
  return true;
}

std::optional<std::string> consumer_link::impl::read_available() {
  amqp_connection_state_t c = link.get();
  // Zero: only what is already there; poll() did the waiting.
  timeval now{0, 0};
  for (;;) {
    amqp_maybe_release_buffers(c);
    amqp_envelope_t envelope;
    const amqp_rpc_reply_t r = amqp_consume_message(c, &envelope, &now, 0);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
      origin from;
      from.broker = "amqp";
      from.destination = config.queue;
      from.key = string_of(envelope.routing_key);
      from.delivery_count = envelope.redelivered != 0 ? 2 : 1;
      if ((envelope.message.properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        const amqp_table_t& table = envelope.message.properties.headers;
        for (int i = 0; i < table.num_entries; ++i) {
          const amqp_table_entry_t& e = table.entries[i];
          std::string name = string_of(e.key);
          // Quorum queues count deliveries; classic queues only flag a redelivery.
          if (name == "x-delivery-count") {
            if (std::optional<std::int64_t> n = integer_of(e.value); n && *n >= 0 && *n < 1000000) {
              from.delivery_count = static_cast<std::uint32_t>(*n) + 1;
            }
          }
          from.headers.emplace_back(std::move(name), text_of(e.value));
        }
      }
      const std::uint64_t token = (std::uint64_t{generation} << tag_bits) | (envelope.delivery_tag & tag_mask);
      outstanding.emplace(envelope.delivery_tag & tag_mask, false);
      std::string body = string_of(envelope.message.body);
      amqp_destroy_envelope(&envelope);
      core->deliver(token, std::move(body), std::move(from));
      continue;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      return std::nullopt;
    }
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      // Not a delivery: rabbitmq-c put the frame back; read it as a frame.
      amqp_frame_t frame;
      if (const int status = amqp_simple_wait_frame_noblock(c, &frame, &now); status != AMQP_STATUS_OK) {
        return describe_status(status, "reading a frame");
      }
      if (frame.frame_type == AMQP_FRAME_METHOD) {
        if (std::optional<std::string> failed = handle_method(frame)) return failed;
      }
      continue;
    }
    return describe(r, "reading deliveries");
  }
}

std::optional<std::string> consumer_link::impl::handle_method(const amqp_frame_t& frame) {
  amqp_connection_state_t c = link.get();
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD:
    case AMQP_BASIC_NACK_METHOD: {
      // Confirms of dead letters (channel 2): ack the originals — or, if the
      // broker refused a dead letter, give the original back to the queue.
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
      auto first = multiple ? dead_letters_unconfirmed.begin() : dead_letters_unconfirmed.find(upto);
      auto last = multiple ? dead_letters_unconfirmed.upper_bound(upto)
                           : (first == dead_letters_unconfirmed.end() ? first : std::next(first));
      for (auto i = first; i != last; ++i) {
        const int status = ack ? amqp_basic_ack(c, consume_channel, i->second, 0)
                               : amqp_basic_nack(c, consume_channel, i->second, 0, 1);
        if (status != AMQP_STATUS_OK) return describe_status(status, "settling a dead-lettered message");
        outstanding.erase(i->second);
        if (ack) {
          dead_letters.fetch_add(1, std::memory_order_relaxed);
          acks_sent.fetch_add(1, std::memory_order_relaxed);
        }
      }
      dead_letters_unconfirmed.erase(first, last);
      return std::nullopt;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      // The broker cancelled the consumer (the queue was deleted, a node went
      // down): a new connection declares and consumes again.
      return std::string("the broker cancelled the consumer of '" + config.queue + "'");
    case AMQP_CHANNEL_CLOSE_METHOD: {
      const auto* m = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
      return "the broker closed channel " + std::to_string(frame.channel) + ": " + std::to_string(m->reply_code) + " " +
             string_of(m->reply_text);
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
      return std::nullopt;  // basic.cancel-ok and the like: nothing to do
  }
}

}  // namespace troupe::bridge::amqp
