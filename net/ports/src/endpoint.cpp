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

bool endpoint::deliver(std::vector<std::byte> bytes, channel from) {
  if (ended_) return false;
  if (!context_.sink.frame) {
    end_failed("the owner's protocol lists no message for a frame (ports::data or ports::received<T>)");
    return false;
  }
  credit token(flow_);
  raise_max(max_outstanding_, flow_->outstanding());
  count_delivery();
  const error e = context_.sink.frame(context_.self, std::move(bytes), from, std::move(token));
  if (e.code() != errc::ok) uncount_delivery();
  if (e.code() == errc::no_such_actor) {
    end_closed("the owner is gone");
    return false;
  }
  if (e.code() != errc::ok) {
    end_failed(e.text());
    return false;
  }
  return true;
}

bool endpoint::deliver_datagram(std::string from, std::vector<std::byte> bytes) {
  if (ended_) return false;
  if (!context_.sink.on_datagram) {
    end_failed("the owner's protocol does not list ports::datagram");
    return false;
  }
  datagram d{context_.self, std::move(from), std::move(bytes), credit(flow_)};
  raise_max(max_outstanding_, flow_->outstanding());
  count_delivery();
  const error e = context_.sink.on_datagram(std::move(d));
  if (e.code() != errc::ok) {
    uncount_delivery();
    end_closed("the owner is gone");
    return false;
  }
  return true;
}

bool endpoint::deliver_queue_message(std::vector<std::byte> bytes, unsigned priority) {
  if (ended_) return false;
  if (!context_.sink.on_queue_message) {
    end_failed("the owner's protocol does not list ports::queue_message");
    return false;
  }
  queue_message m{context_.self, std::move(bytes), priority, credit(flow_)};
  raise_max(max_outstanding_, flow_->outstanding());
  count_delivery();
  if (context_.sink.on_queue_message(std::move(m)).code() != errc::ok) {
    uncount_delivery();
    end_closed("the owner is gone");
    return false;
  }
  return true;
}

bool endpoint::deliver_typed_message(long type, std::vector<std::byte> bytes) {
  if (ended_) return false;
  if (!context_.sink.on_typed_message) {
    end_failed("the owner's protocol does not list ports::typed_message");
    return false;
  }
  typed_message m{context_.self, type, std::move(bytes), credit(flow_)};
  raise_max(max_outstanding_, flow_->outstanding());
  count_delivery();
  if (context_.sink.on_typed_message(std::move(m)).code() != errc::ok) {
    uncount_delivery();
    end_closed("the owner is gone");
    return false;
  }
  return true;
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
