// port_actor: the actor half of every port (port.hpp has the lifecycle).
// It opens (or takes) its endpoint, links itself to its owner, forwards the
// owner's commands to the endpoint's strand and stops when the endpoint ends
// or the owner stops. It never waits on I/O.
#include "endpoint.hpp"

namespace troupe::ports::detail {

namespace {

// An endpoint opened by spawn() before the port existed, taken by the port's
// first start; a restart finds it empty and opens afresh.
using opened_slot = std::shared_ptr<std::shared_ptr<endpoint>>;

class port_actor : public actor<port_protocol> {
 public:
  port_actor(reactor* io, owner_sink sink, std::optional<endpoint_spec> what, port_options options, opened_slot slot)
      : io_(io), sink_(std::move(sink)), what_(std::move(what)), options_(options), slot_(std::move(slot)) {}
  port_actor(const port_actor&) = delete;
  port_actor& operator=(const port_actor&) = delete;
  ~port_actor() {
    if (endpoint_) endpoint_->shutdown();
  }

  void on_start() {
    link(sink_.owner);
    if (slot_ && *slot_) {
      endpoint_ = std::exchange(*slot_, nullptr);
    } else if (what_) {
      auto opened = what_->get().open(*io_);
      if (!opened) return fail(opened.error().text());
      endpoint_ = std::move(*opened);
    } else {
      return fail("an accepted connection cannot be reopened");
    }
    endpoint_->start(endpoint_context{sink_, self(), options_, io_, &system()});
  }

  void on(write w) {
    if (endpoint_) endpoint_->write(std::move(w.bytes));
  }
  void on(send_with_priority s) {
    if (endpoint_) endpoint_->send_with_priority(std::move(s.bytes), s.priority);
  }
  void on(send_typed s) {
    if (endpoint_) endpoint_->send_typed(s.type, std::move(s.bytes));
  }
  void on(send_to s) {
    if (endpoint_) endpoint_->send_to(std::move(s.to), std::move(s.bytes));
  }
  void on(close_output /*unused*/) {
    if (endpoint_) endpoint_->close_output();
  }
  void on(close /*unused*/) { stop(); }
  port_stats on(const stats& /*unused*/) { return endpoint_ ? endpoint_->stats() : port_stats{}; }
  std::string on(const local_address& /*unused*/) { return endpoint_ ? endpoint_->local_address() : std::string(); }
  void on(ended e) { stop(std::move(e.reason)); }

  // Traps exits: the owner's end, whatever its reason, closes the port;
  // another linked actor's abnormal end stops it with that reason.
  void on(const troupe::exit& e) {
    if (e.who == sink_.owner) {
      stop();
    } else if (!e.reason.is_normal()) {
      stop(e.reason);
    }
  }

 private:
  void fail(const std::string& what) {
    if (sink_.on_error) sink_.on_error(port_error{self(), what});
    stop(exit_reason::error(what, "troupe::ports::port_error"));
  }

  reactor* io_;
  owner_sink sink_;
  std::optional<endpoint_spec> what_;
  port_options options_;
  opened_slot slot_;
  std::shared_ptr<endpoint> endpoint_;
};

expected<void> check_options(const port_options& options) {
  if (options.low_water < 0 || options.high_water <= options.low_water) {
    return error(errc::invalid_request, "port_options: need 0 <= low_water < high_water");
  }
  if (options.frames.max_frame == 0) return error(errc::invalid_request, "port_options: max_frame is 0");
  return {};
}

}  // namespace

expected<port> spawn_port(reactor& io, troupe::system& sys, owner_sink sink, const endpoint_spec& what,
                          const port_options& options) {
  if (auto ok = check_options(options); !ok) return ok.error();
  auto opened = what.get().open(io);
  if (!opened) return opened.error();
  return sys.spawn<port_actor>(&io, std::move(sink), what, options,
                               std::make_shared<std::shared_ptr<endpoint>>(std::move(*opened)));
}

port spawn_opened(reactor& io, troupe::system& sys, owner_sink sink, std::shared_ptr<endpoint> opened,
                  const port_options& options) {
  return sys.spawn<port_actor>(&io, std::move(sink), std::nullopt, options,
                               std::make_shared<std::shared_ptr<endpoint>>(std::move(opened)));
}

child_spec supervised_port(const std::string& id, reactor& io, owner_sink sink, const endpoint_spec& what,
                           const port_options& options) {
  return troupe::child<port_actor>(id, &io, std::move(sink), std::optional<endpoint_spec>(what), options,
                                   opened_slot{});
}

}  // namespace troupe::ports::detail
