// Ports: an actor that owns one operating-system endpoint — a child program's
// pipes, a TCP or UNIX stream socket, a listening socket, a UDP socket — and
// turns its traffic into messages to an owner actor, and the owner's messages
// into writes (Erlang's open_port, gen_tcp, gen_udp). docs/ports.md is the guide.
//
//   troupe::ports::reactor io;                                  // before the system
//   troupe::system sys;
//   auto sorter = troupe::ports::spawn(io, sys, owner,
//       troupe::ports::program({"/usr/bin/sort"}), {.frames = troupe::ports::framing::lines()});
//   sorter->tell(troupe::ports::write{troupe::ports::bytes_of("b")});
//   sorter->tell(troupe::ports::close_output{});                // sort sees EOF, prints, exits
//
// Lifecycle: the port links itself to its owner when it starts, and traps
// exits: when the owner stops, for any reason, the port closes (a program is
// killed with SIGKILL and reaped). When the endpoint ends — EOF, hang-up, a
// framing error, the program's exit — the owner gets closed / port_error /
// child_exited (if its protocol lists them) and the port stops: normally after
// a clean end, with exit_reason::error otherwise, which (through the link)
// stops an owner that does not trap exits, as in Erlang.
//
// Under a supervisor (supervised()), each restart opens the endpoint afresh
// (starts the program again, dials again); the port's ref stays valid.
//
// Typed layer: spawn_typed<T>() decodes every frame with troupe::from_bytes<T>
// (or a codec of the caller's) and the owner receives received<T>; a frame that
// does not decode is a port_error and the port closes.
//
// Thread safety: spawn*, supervised* from any thread, actors included; they do
// not block beyond the system calls that open the endpoint (fork/exec, connect
// of a UNIX socket, bind). TCP connect is asynchronous: its failure arrives as
// port_error.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "troupe/ports/framing.hpp"
#include "troupe/ports/messages.hpp"
#include "troupe/ports/reactor.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/serialization.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::ports {

struct port_options {
  framing frames = framing::raw();
  // Flow control, in messages the owner has not handled yet (see messages.hpp).
  std::int64_t high_water = 64;
  std::int64_t low_water = 16;
  // Bytes the owner may have written that the peer has not taken yet; more is
  // a port_error ("write queue over ...") and the port closes.
  std::size_t max_write_queue = std::size_t{64} << 20;
};

// What to do with a program's stderr.
enum class errors_to : std::uint8_t {
  owner,    // data{from = channel::errors}, framed like stdout
  output,   // merged into stdout
  inherit,  // this process's stderr
};

struct program_spec {
  std::vector<std::string> argv;  // argv[0] is the program's path (not searched in PATH)
  errors_to errors = errors_to::owner;
  std::string working_directory;  // empty: this process's
};

enum class fifo_side : std::uint8_t { read, write };

struct fifo_spec {
  std::string path;
  fifo_side side = fifo_side::read;
  // Create the FIFO if it does not exist (mkfifo with `mode`, less the umask).
  // An existing one must be a FIFO and, when `create` is set, have exactly
  // `mode`: anything else is an error at open.
  bool create = true;
  unsigned mode = 0600;
  // Remove the FIFO when the port closes, if this port created it.
  bool unlink_if_created = false;
};

struct posix_queue_spec {
  std::string name;  // "/orders": a leading '/', no other
  fifo_side side = fifo_side::read;
  // Create it if missing, with these attributes. An existing queue must have
  // exactly these attributes when `create` is set: anything else is an error at open.
  bool create = true;
  long max_messages = 10;
  long message_size = 8192;
  unsigned mode = 0600;
  bool unlink_if_created = false;  // mq_unlink when the port closes, if it created the queue
};

struct sysv_queue_spec {
  key_t key = 0;  // e.g. from ftok(); IPC_PRIVATE is refused (nobody else could open it)
  fifo_side side = fifo_side::read;
  bool create = true;  // msgget with IPC_CREAT; an existing queue must then have exactly `mode`
  unsigned mode = 0600;
  long receive_type = 0;  // read side: msgrcv's msgtyp (0: any type, in order)
  long send_type = 1;     // write side: the type write{} sends
  std::size_t max_message = 8192;
  bool remove_if_created = false;  // IPC_RMID when the port closes, if it created the queue
};

// Describes an endpoint to open; copyable (a supervisor reopens from a copy).
class endpoint_spec {
 public:
  struct opener;
  explicit endpoint_spec(std::shared_ptr<const opener> o) noexcept : opener_(std::move(o)) {}
  [[nodiscard]] const opener& get() const noexcept { return *opener_; }

 private:
  std::shared_ptr<const opener> opener_;
};

// A child program with its stdin/stdout (and stderr) as the port.
endpoint_spec program(program_spec spec);
// As above, stderr to the owner: program({"/usr/bin/sort", "-r"}).
endpoint_spec program(std::vector<std::string> argv);
// A named pipe's read or write side. The read side survives its writers
// closing and reopening (it never sees EOF); the write side never waits for a
// reader to open it.
endpoint_spec fifo(fifo_spec spec);
// A POSIX message queue's read side (messages arrive as queue_message, with
// their priority) or write side (write{} at priority 0, send_with_priority{}).
// The queue descriptor is pollable on Linux: reads and full-queue writes wait
// on the reactor, never in a loop or a thread.
endpoint_spec posix_queue(posix_queue_spec spec);
// A System V message queue's read side (typed_message{type, bytes}) or write
// side (write{}, send_typed{}). Not pollable: each such port has one thread of
// its own, blocked in msgrcv (or msgsnd on a full queue) — see docs/ports.md.
endpoint_spec sysv_queue(sysv_queue_spec spec);
// A TCP connection to host:port (connected asynchronously on the reactor).
endpoint_spec tcp_connect(std::string host, std::uint16_t port_number);
// A connection to a UNIX stream socket.
endpoint_spec unix_connect(std::string path);
// Listening sockets: every accepted connection is a port of its own, sent to
// the owner as accepted{...}. Port 0 picks a free one (port_stats does not
// say which: use local_port() on the returned listener handle).
endpoint_spec tcp_listen(std::string host, std::uint16_t port_number);
endpoint_spec unix_listen(std::string path);
// A UDP socket bound to host:port; datagrams arrive as datagram{from, bytes}.
endpoint_spec udp_bind(std::string host, std::uint16_t port_number);

// How the port hands frames to its owner; built by spawn() from the owner's ref.
struct owner_sink {
  actor_addr owner;
  // One frame: data, or received<T> for a typed port. errc::no_such_actor if
  // the owner is gone, errc::malformed_message (text says why) if it does not decode.
  std::function<error(const actor_addr& from_port, std::vector<std::byte>, channel, credit)> frame;
  std::function<error(datagram)> on_datagram;
  std::function<error(queue_message)> on_queue_message;
  std::function<error(typed_message)> on_typed_message;
  std::function<void(closed)> on_closed;
  std::function<void(port_error)> on_error;
  std::function<void(child_exited)> on_exit;
  std::function<void(accepted)> on_accepted;
};

template <class P, class M>
std::function<void(M)> notice_to(const ref<P>& owner) {
  if constexpr (accepts<P, M>) {
    return [owner](M m) { (void)owner.tell(std::move(m)); };
  } else {
    return {};
  }
}

template <class P>
owner_sink sink_of(const ref<P>& owner) {
  owner_sink sink;
  sink.owner = owner;
  if constexpr (accepts<P, data>) {
    sink.frame = [owner](const actor_addr& from_port, std::vector<std::byte> bytes, channel from, credit token) {
      const std::error_code ec = owner.tell(data{from_port, std::move(bytes), from, std::move(token)});
      return ec ? error(errc::no_such_actor, ec.message()) : error();
    };
  }
  if constexpr (accepts<P, datagram>) {
    sink.on_datagram = [owner](datagram d) {
      const std::error_code ec = owner.tell(std::move(d));
      return ec ? error(errc::no_such_actor, ec.message()) : error();
    };
  }
  if constexpr (accepts<P, queue_message>) {
    sink.on_queue_message = [owner](queue_message m) {
      const std::error_code ec = owner.tell(std::move(m));
      return ec ? error(errc::no_such_actor, ec.message()) : error();
    };
  }
  if constexpr (accepts<P, typed_message>) {
    sink.on_typed_message = [owner](typed_message m) {
      const std::error_code ec = owner.tell(std::move(m));
      return ec ? error(errc::no_such_actor, ec.message()) : error();
    };
  }
  sink.on_closed = notice_to<P, closed>(owner);
  sink.on_error = notice_to<P, port_error>(owner);
  sink.on_exit = notice_to<P, child_exited>(owner);
  sink.on_accepted = notice_to<P, accepted>(owner);
  return sink;
}

// A codec for the typed layer: bytes → T or an error.
template <class T>
using decoder = std::function<expected<T>(std::span<const std::byte>)>;

template <class T, class P>
owner_sink typed_sink_of(const ref<P>& owner, decoder<T> decode) {
  static_assert(accepts<P, received<T>>, "troupe::ports: the owner's protocol must list received<T>");
  owner_sink sink = sink_of(owner);
  sink.frame = [owner, decode = std::move(decode)](const actor_addr& from_port, std::vector<std::byte> bytes, channel,
                                                   credit token) {
    expected<T> value = decode(bytes);
    if (!value) return error(errc::malformed_message, "a frame that does not decode: " + value.error().to_string());
    const std::error_code ec = owner.tell(received<T>{from_port, std::move(*value), std::move(token)});
    return ec ? error(errc::no_such_actor, ec.message()) : error();
  };
  return sink;
}

namespace detail {
// Non-template halves (src/port_actor.cpp).
expected<port> spawn_port(reactor& io, system& sys, owner_sink sink, const endpoint_spec& what,
                          const port_options& options);
child_spec supervised_port(const std::string& id, reactor& io, owner_sink sink, const endpoint_spec& what,
                           const port_options& options);
}  // namespace detail

// Opens `what` now (an error here is a clear open failure: no such program,
// address in use, ...) and spawns its port, owned by `owner`.
template <class P>
[[nodiscard]] expected<port> spawn(reactor& io, system& sys, const ref<P>& owner, const endpoint_spec& what,
                                   const port_options& options = {}) {
  static_assert(accepts<P, data> || accepts<P, datagram> || accepts<P, queue_message> || accepts<P, typed_message> ||
                    accepts<P, accepted>,
                "troupe::ports: the owner's protocol must list ports::data, datagram, queue_message or accepted");
  return detail::spawn_port(io, sys, sink_of(owner), what, options);
}

// As spawn(), but every frame is decoded into T (troupe::from_bytes<T> unless
// a decoder is given) and arrives as received<T>.
template <class T, class P>
[[nodiscard]] expected<port> spawn_typed(reactor& io, system& sys, const ref<P>& owner, const endpoint_spec& what,
                                         const port_options& options = {}, decoder<T> decode = {}) {
  if (!decode) decode = [](std::span<const std::byte> bytes) { return troupe::from_bytes<T>(bytes); };
  return detail::spawn_port(io, sys, typed_sink_of<T>(owner, std::move(decode)), what, options);
}

// A supervisor's child spec for a port owned by `owner`: every start opens the
// endpoint afresh; an open that fails is the child's failure.
template <class P>
child_spec supervised(const std::string& id, reactor& io, const ref<P>& owner, const endpoint_spec& what,
                      const port_options& options = {}) {
  return detail::supervised_port(id, io, sink_of(owner), what, options);
}

}  // namespace troupe::ports
