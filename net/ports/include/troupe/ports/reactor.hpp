// reactor: the one I/O reactor every port shares — a Boost.Asio io_context run
// by a small fixed pool of threads. Ports never get a thread of their own (the
// one exception, System V queues, is documented in docs/ports.md), and a port
// never blocks a scheduler worker: its reads, writes and waits run here.
//
//   troupe::ports::reactor io;              // declare it before the system: it must outlive the ports
//   troupe::system sys;
//   auto p = troupe::ports::spawn_program(io, sys, owner, {"/usr/bin/sort"});
//
// Thread safety: construct and destroy on one thread; context() from any thread.
// The destructor stops the pool and joins it: destroy the system (and so every
// port) first, or ports still open are cut off without their closing messages.
#pragma once

#include <cstddef>
#include <memory>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace troupe::ports {

class reactor {
 public:
  // `threads` reactor threads (at least one); two keep one slow handler from
  // delaying every port on a busy host, more rarely help.
  explicit reactor(std::size_t threads = 1);
  ~reactor();
  reactor(const reactor&) = delete;
  reactor& operator=(const reactor&) = delete;

  [[nodiscard]] boost::asio::io_context& context() noexcept;
  [[nodiscard]] std::size_t threads() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace troupe::ports
