// endpoint: what every port's I/O half shares (endpoint.hpp).
#include "endpoint.hpp"

namespace troupe::ports::detail {

class endpoint::port_flow final : public flow {
 public:
  port_flow(std::int64_t low_water, std::weak_ptr<endpoint> owner) : flow(low_water), owner_(std::move(owner)) {}

 private:
  void below_low_water() noexcept override {
    if (auto e = owner_.lock()) {
      try {
        asio::post(e->strand(), [e] {
          if (!e->ended()) e->resume();
        });
      } catch (...) {
        // Out of memory posting a resume: the port stays paused; nothing else can be done here.
      }
    }
  }
  std::weak_ptr<endpoint> owner_;
};

void endpoint::start(endpoint_context context) {
  asio::post(strand_, [self = shared_from_this(), context = std::move(context)]() mutable {
    if (self->shut_) return;
    self->context_ = std::move(context);
    self->flow_ = std::make_shared<port_flow>(self->context_.options.low_water, self);
    self->begin();
  });
}

void endpoint::write(std::vector<std::byte> bytes) {
  asio::post(strand_, [self = shared_from_this(), bytes = std::move(bytes)]() mutable {
    if (!self->ended_) self->do_write(std::move(bytes));
  });
}

void endpoint::send_to(std::string to, std::vector<std::byte> bytes) {
  asio::post(strand_, [self = shared_from_this(), to = std::move(to), bytes = std::move(bytes)]() mutable {
    if (!self->ended_) self->do_send_to(std::move(to), std::move(bytes));
  });
}

void endpoint::send_with_priority(std::vector<std::byte> bytes, unsigned priority) {
  asio::post(strand_, [self = shared_from_this(), bytes = std::move(bytes), priority]() mutable {
    if (!self->ended_) self->do_send_with_priority(std::move(bytes), priority);
  });
}

void endpoint::send_typed(long type, std::vector<std::byte> bytes) {
  asio::post(strand_, [self = shared_from_this(), type, bytes = std::move(bytes)]() mutable {
    if (!self->ended_) self->do_send_typed(type, std::move(bytes));
  });
}

void endpoint::close_output() {
  asio::post(strand_, [self = shared_from_this()] {
    if (!self->ended_) self->do_close_output();
  });
}

void endpoint::shutdown() {
  stopping();
  asio::post(strand_, [self = shared_from_this()] {
    self->shut_ = true;
    self->ended_ = true;
    self->close_all();
    // The port is stopping: let go of its ref and of the owner's.
    self->context_.self = {};
    self->context_.sink = {};
  });
}

port_stats endpoint::stats() const noexcept {
  port_stats s;
  // relaxed: counters, a snapshot; each is written on the strand alone.
  s.delivered = delivered_.load(std::memory_order_relaxed);
  s.datagrams_dropped = dropped_.load(std::memory_order_relaxed);
  s.pauses = pauses_.load(std::memory_order_relaxed);
  s.max_outstanding = max_outstanding_.load(std::memory_order_relaxed);
  s.bytes_written = written_.load(std::memory_order_relaxed);
  const std::int64_t queued = queued_.load(std::memory_order_relaxed);
  s.write_queue_bytes = queued > 0 ? static_cast<std::uint64_t>(queued) : 0;
  return s;
}

// The defaults refuse; the overrides take their arguments by value because they keep them.
// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature is the overrides'
void endpoint::do_write(std::vector<std::byte> /*bytes*/) {
  end_failed("this port does not take write (a UDP port takes send_to)");
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature is the overrides'
void endpoint::do_send_to(std::string /*to*/, std::vector<std::byte> /*bytes*/) {
  end_failed("this port does not take send_to (only UDP ports do)");
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature is the overrides'
void endpoint::do_send_with_priority(std::vector<std::byte> /*bytes*/, unsigned /*priority*/) {
  end_failed("this port does not take send_with_priority (only POSIX queue ports do)");
}

// NOLINTNEXTLINE(performance-unnecessary-value-param): the signature is the overrides'
void endpoint::do_send_typed(long /*type*/, std::vector<std::byte> /*bytes*/) {
  end_failed("this port does not take send_typed (only System V queue ports do)");
}

bool endpoint::over_high_water() const noexcept { return flow_ && flow_->outstanding() >= context_.options.high_water; }

namespace {
void raise_max(std::atomic<std::int64_t>& max, std::int64_t value) noexcept {
  // relaxed: a statistic written on the strand only.
  if (value > max.load(std::memory_order_relaxed)) max.store(value, std::memory_order_relaxed);
}
}  // namespace

// One delivery to the owner, whatever its message: `send` is the sink's entry
// (empty when the owner's protocol lacks the message, then `missing` is the
// error), `make(credit)` builds what it takes. The delivery is counted before
// the owner can see it, so stats() asked after the owner handled a message
// includes it; a failed send takes the count back and ends the endpoint.
template <class Send, class Make>
bool endpoint::hand_over(const Send& send, const char* missing, Make&& make) {
  if (ended_) return false;
  if (!send) {
    end_failed(missing);
    return false;
  }
  credit token(flow_);
  raise_max(max_outstanding_, flow_->outstanding());
  // relaxed: a counter, written on the strand only.
  delivered_.fetch_add(1, std::memory_order_relaxed);
  const error e = std::forward<Make>(make)(std::move(token));
  if (e.code() == errc::ok) return true;
  delivered_.fetch_sub(1, std::memory_order_relaxed);
  if (e.code() == errc::no_such_actor) {
    end_closed("the owner is gone");
  } else {
    end_failed(e.text());
  }
  return false;
}

bool endpoint::deliver(std::vector<std::byte> bytes, channel from) {
  const auto& send = context_.sink.frame;
  return hand_over(send, "the owner's protocol lists no message for a frame (ports::data or ports::received<T>)",
                   [&](credit token) { return send(context_.self, std::move(bytes), from, std::move(token)); });
}

bool endpoint::deliver_datagram(std::string from, std::vector<std::byte> bytes) {
  const auto& send = context_.sink.on_datagram;
  return hand_over(send, "the owner's protocol does not list ports::datagram", [&](credit token) {
    return send(datagram{context_.self, std::move(from), std::move(bytes), std::move(token)});
  });
}

bool endpoint::deliver_queue_message(std::vector<std::byte> bytes, unsigned priority) {
  const auto& send = context_.sink.on_queue_message;
  return hand_over(send, "the owner's protocol does not list ports::queue_message", [&](credit token) {
    return send(queue_message{context_.self, std::move(bytes), priority, std::move(token)});
  });
}

bool endpoint::deliver_typed_message(long type, std::vector<std::byte> bytes) {
  const auto& send = context_.sink.on_typed_message;
  return hand_over(send, "the owner's protocol does not list ports::typed_message", [&](credit token) {
    return send(typed_message{context_.self, type, std::move(bytes), std::move(token)});
  });
}

void endpoint::end_closed(std::string why) {
  if (ended_) return;
  if (context_.sink.on_closed) context_.sink.on_closed(closed{context_.self, std::move(why)});
  end_with(exit_reason::normal());
}

void endpoint::end_failed(std::string what) {
  if (ended_) return;
  if (context_.sink.on_error) context_.sink.on_error(port_error{context_.self, what});
  end_with(exit_reason::error(std::move(what), "troupe::ports::port_error"));
}

void endpoint::end_with(exit_reason reason) {
  if (ended_) return;
  ended_ = true;
  (void)context_.self.tell(troupe::ports::detail::ended{std::move(reason)});
}

}  // namespace troupe::ports::detail
