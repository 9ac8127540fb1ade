// troupe_ports_bench — the port_* workloads of WORKLOADS.md through troupe's port
// actors (troupe::ports): the "troupe" column of bench/compare's port rows,
// whose baselines are ipc_baselines --mechanism port_raw / port_raw_batched
// (the same peer programs, lines, counts and windows, one thread, no actors).
//
//   troupe_ports_bench [--quick] [--threads N] [--reps R] [--only port_pipe_stream,...]
//   -> one `workload,unit,median,min,max` line per workload on stdout
//
// An owner actor talks to one port: a program port to /bin/cat with lines
// framing (write{63 bytes}, the port appends '\n'; every echoed line arrives
// as data{63 bytes}), or a UDP port bound to 127.0.0.1:0 (send_to{peer, 64
// bytes}; every echo arrives as a datagram) whose peer is port_common.hpp's
// raw echo process. Each session the owner keeps `window` messages in flight
// (1: a round trip), sends one more for each echo it receives, checks each
// echo's sequence, and times from its first send to the last echo. One untimed
// warm-up session of a tenth of the count, then one per repetition, on the
// same port. Default port_options (high_water 64, low_water 16).
//
// Failures end the run with a line on stderr and exit status 1; every wait has
// a deadline. No sleeps.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <troupe/ports/ports.hpp>
#include <troupe/runtime/system.hpp>

#include "bench_common.hpp"
#include "port_common.hpp"

namespace {

namespace bench = troupe::bench;
namespace port_bench = troupe::bench::ports;
namespace ports = troupe::ports;

constexpr auto session_timeout = std::chrono::seconds(120);

// Starts a session: `count` messages, at most `window` in flight; the owner
// sets `done` to the rate (messages/s) or to the failure.
struct session {
  std::int64_t count;
  std::int64_t window;
  std::shared_ptr<std::promise<double>> done;
};
// Which port to use, and (UDP) where the echo peer is.
struct attach {
  ports::port port;
  std::string peer;  // empty: a stream port (write{}); else send_to{peer}
};

using owner_protocol = troupe::protocol<session, attach, ports::data, ports::datagram, ports::closed, ports::port_error,
                                        ports::child_exited>;

class owner : public troupe::actor<owner_protocol> {
 public:
  void on(attach a) {
    port_ = std::move(a.port);
    peer_ = std::move(a.peer);
  }
  void on(session s) {
    count_ = s.count;
    window_ = s.window;
    done_ = std::move(s.done);
    sent_ = 0;
    received_ = 0;
    clock_.emplace();
    refill();
  }
  void on(ports::data d) { echoed({reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size()}); }
  void on(ports::datagram d) { echoed({reinterpret_cast<const char*>(d.bytes.data()), d.bytes.size()}); }
  void on(const ports::closed& c) { fail("the port closed: " + c.why); }
  void on(const ports::port_error& e) { fail("port error: " + e.what); }
  void on(const ports::child_exited& /*unused*/) { fail("/bin/cat exited"); }
  // The port is linked to us: its end arrives here (we trap exits).
  void on(const troupe::exit& e) { fail("the port stopped: " + e.reason.to_string()); }

 private:
  void echoed(std::span<const char> bytes) {
    if (!done_) return;
    if (!port_bench::line_is(bytes, next_echo_)) {
      return fail("echo " + std::to_string(next_echo_) + " is wrong (lost, repeated or out of order)");
    }
    ++next_echo_;
    if (++received_ == count_) {
      std::exchange(done_, nullptr)->set_value(static_cast<double>(count_) / clock_->seconds());
      return;
    }
    refill();
  }
  void refill() {
    while (sent_ < count_ && sent_ - received_ < window_) {
      const auto line = port_bench::make_line(next_send_++);
      const auto* first = reinterpret_cast<const std::byte*>(line.data());
      if (peer_.empty()) {
        // lines framing: the port appends the '\n'
        (void)port_.tell(ports::write{std::vector<std::byte>(first, first + line.size() - 1)});
      } else {
        (void)port_.tell(ports::send_to{peer_, std::vector<std::byte>(first, first + line.size())});
      }
      ++sent_;
    }
  }
  void fail(const std::string& why) {
    if (done_) std::exchange(done_, nullptr)->set_exception(std::make_exception_ptr(std::runtime_error(why)));
  }

  ports::port port_;
  std::string peer_;
  std::shared_ptr<std::promise<double>> done_;
  std::optional<bench::stopwatch> clock_;
  std::int64_t count_ = 0;
  std::int64_t window_ = 1;
  std::int64_t sent_ = 0;
  std::int64_t received_ = 0;
  std::uint64_t next_send_ = 0;
  std::uint64_t next_echo_ = 0;
};

double run_session(const troupe::ref<owner_protocol>& me, std::int64_t count, std::int64_t window) {
  auto done = std::make_shared<std::promise<double>>();
  auto rate = done->get_future();
  bench::require(!me.tell(session{count, window, done}), "the owner is gone");
  bench::require(rate.wait_for(session_timeout) == std::future_status::ready, "a session did not finish in 120 s");
  return rate.get();
}

void run_workload(port_bench::workload w, const bench::options& opts, const port_bench::udp_echo_peer& peer) {
  const auto p = opts.quick ? port_bench::params::quick() : port_bench::params::full();
  const std::int64_t count = p.count(w);
  const std::int64_t window = port_bench::window_of(w);
  ports::reactor io;  // before the system: it must outlive every port
  troupe::config cfg;
  cfg.worker_threads = opts.threads;
  troupe::system sys{cfg};
  auto me = sys.spawn<owner>();
  ports::port_options options;
  std::string where;
  troupe::expected<ports::port> port = troupe::error(troupe::errc::invalid_request, "no port");
  if (port_bench::is_pipe(w)) {
    options.frames = ports::framing::lines();
    port = ports::spawn(io, sys, me, ports::program({port_bench::echo_program}), options);
  } else {
    port = ports::spawn(io, sys, me, ports::udp_bind("127.0.0.1", 0), options);
    where = peer.address();
  }
  bench::require(port.has_value(), "cannot open the port");
  bench::require(!me.tell(attach{*port, where}), "the owner is gone");
  (void)run_session(me, std::max<std::int64_t>(1, count / 10), window);  // warm-up
  bench::run_reps(port_bench::name_of(w), port_bench::unit_of(w), opts.reps,
                  [&] { return run_session(me, count, window); });
  (void)port->tell(ports::close{});
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> names(port_bench::workload_names.begin(), port_bench::workload_names.end());
  const auto opts = bench::parse_options(argc, argv, names);
  try {
    // Forked before any thread of ours exists; it serves every UDP workload.
    const port_bench::udp_echo_peer peer;
    for (auto w : port_bench::workloads) {
      if (opts.selected(port_bench::name_of(w))) run_workload(w, opts, peer);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe_ports_bench: FAILED: %s\n", e.what());
    return 1;
  }
  return 0;
}
