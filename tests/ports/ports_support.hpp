// What the port tests share: an owner actor that writes every message it gets
// from its ports into an event_log as one line, so the test can wait for it
// with a deadline, and a few helpers.
//
//   troupe::ports::reactor io;  event_log log;  troupe::system sys;
//   auto owner = sys.spawn<recorder>(&log);
//   auto p = troupe::ports::spawn(io, sys, owner, troupe::ports::program({{"/bin/cat"}}), options);
//   ASSERT_TRUE(log.wait_for("data hello"));
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/event_log.hpp"
#include "troupe/ports/ports.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/system.hpp"

namespace ports_test {

using namespace std::chrono_literals;
using troupe::test_support::event_log;
namespace ports = troupe::ports;

// Hold every data and datagram message (and its credit) until release_held arrives.
struct hold_data {
  bool on = true;
};
struct release_held {};

using recorder_protocol = troupe::protocol<ports::data, ports::datagram, ports::closed, ports::port_error,
                                           ports::child_exited, ports::accepted, hold_data, release_held>;

inline std::string status_text(const ports::program_status& s) {
  if (const auto* e = std::get_if<ports::exit_status>(&s)) return "exit_status " + std::to_string(e->code);
  return "signal " + std::to_string(std::get<ports::signal>(s).number);
}

// Traps exits: a port's end arrives as "exit <reason>" instead of stopping it.
struct recorder : troupe::actor<recorder_protocol> {
  explicit recorder(event_log* log, ports::port* connection = nullptr) : log_(log), connection_(connection) {}
  void on(ports::data d) {
    const std::string prefix = d.from == ports::channel::errors ? "stderr " : "data ";
    log_->add(prefix + std::string(d.text()));
    if (holding_) {
      held_.push_back(std::move(d));
      log_->add("held " + std::to_string(held_.size()));
    }
  }
  void on(ports::datagram d) {
    log_->add("datagram " + std::string(d.text()));
    log_->add("from " + d.from);
    if (holding_) held_datagrams_.push_back(std::move(d));
  }
  void on(const ports::closed& c) { log_->add("closed " + c.why); }
  void on(const ports::port_error& e) { log_->add("error " + e.what); }
  void on(const ports::child_exited& e) { log_->add("exited " + status_text(e.status)); }
  void on(const ports::accepted& a) {
    log_->add("accepted");
    // The first connection's port, for the test to write to.
    if (connection_ != nullptr && !*connection_) *connection_ = a.connection;
    log_->add("connection " + a.connection.address());
  }
  void on(hold_data h) { holding_ = h.on; }
  void on(release_held /*unused*/) {
    holding_ = false;
    held_.clear();
    held_datagrams_.clear();
    log_->add("released");
  }
  void on(const troupe::exit& e) { log_->add("exit " + e.reason.to_string()); }

 private:
  event_log* log_;
  ports::port* connection_;  // written before "connection ..." is logged: the log's lock orders it
  bool holding_ = false;
  std::vector<ports::data> held_;
  std::vector<ports::datagram> held_datagrams_;
};

// The text after `prefix` in the first line of `log` that starts with it
// (waited for, with a deadline); empty if none came.
inline std::string wait_for_prefix(event_log& log, const std::string& prefix,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  std::string found;
  (void)log.wait_until(
      [&](const std::vector<std::string>& lines) {
        for (const auto& l : lines) {
          if (l.starts_with(prefix)) {
            found = l.substr(prefix.size());
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

// Waits (poll on a pidfd, with a deadline) until process `pid` has exited.
inline bool wait_until_gone(pid_t pid, std::chrono::milliseconds timeout) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return r == 1;
}

inline pid_t pid_of(const ports::port& p) {
  const std::string where = p.ask(ports::local_address{}, 10s).get();
  return where.starts_with("pid ") ? static_cast<pid_t>(std::stol(where.substr(4))) : -1;
}

inline troupe::config two_workers() {
  troupe::config c;
  c.worker_threads = 2;
  return c;
}

// Line framing (at most max_line bytes a line).
inline ports::port_options lines(std::size_t max_line = std::size_t{64} << 10) {
  ports::port_options o;
  o.frames = ports::framing::lines(max_line);
  return o;
}

#ifdef TROUPE_MQ_PEER
// Starts mq_peer (the queue tests' C-API program) with `args`, its output as
// lines to `owner`.
inline void start_mq_peer(ports::reactor& io, troupe::system& sys, const troupe::ref<recorder_protocol>& owner,
                          std::vector<std::string> args) {
  args.insert(args.begin(), TROUPE_MQ_PEER);
  auto p = ports::spawn(io, sys, owner, ports::program(std::move(args)), lines());
  ASSERT_TRUE(p) << p.error().text();
}
#endif

}  // namespace ports_test
