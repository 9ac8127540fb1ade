// port_common.hpp — what the port_* workloads of WORKLOADS.md share between
// troupe's side (troupe_ports_bench: an owner actor and a port actor) and the raw
// side (ipc_baselines --mechanism port_raw / port_raw_batched: one thread on
// the same OS mechanism): the workloads, their counts and windows, the 64-byte
// line both sides move, and the UDP echo peer both sides talk to.
//
//   troupe::bench::ports::udp_echo_peer peer;              // forks the peer
//   auto line = troupe::bench::ports::make_line(7);        // 63 bytes + '\n'
//   if (!troupe::bench::ports::line_is(line, 7)) ...;      // order and loss check
//
// Both sides talk to the same peer program, which is not troupe: /bin/cat for
// the pipe workloads (it echoes what it reads), a forked raw UDP echo loop for
// the UDP ones. Each workload moves `count` messages of 64 bytes; a stream
// keeps at most `window` of them in flight (sent, not yet echoed back), so that
// a pipe never fills (no side blocks on a write the other cannot drain) and
// no datagram is lost to a full socket buffer.
//
// Thread safety: udp_echo_peer is made and destroyed on one thread, before the
// process starts threads of its own (it forks).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

namespace troupe::bench::ports {

enum class workload : std::uint8_t { pipe_ping_pong, pipe_stream, udp_ping_pong, udp_stream };

inline constexpr std::array<workload, 4> workloads = {workload::pipe_ping_pong, workload::pipe_stream,
                                                      workload::udp_ping_pong, workload::udp_stream};
inline constexpr std::array<std::string_view, 4> workload_names = {"port_pipe_ping_pong", "port_pipe_stream",
                                                                   "port_udp_ping_pong", "port_udp_stream"};

inline std::string_view name_of(workload w) { return workload_names[static_cast<std::size_t>(w)]; }
inline bool is_stream(workload w) { return w == workload::pipe_stream || w == workload::udp_stream; }
inline bool is_pipe(workload w) { return w == workload::pipe_ping_pong || w == workload::pipe_stream; }
inline std::string_view unit_of(workload w) { return is_stream(w) ? "msgs/s" : "round_trips/s"; }

// The program at the other end of the pipe workloads.
inline constexpr const char* echo_program = "/bin/cat";

// Counts and windows of WORKLOADS.md; change them there too. The warm-up
// session moves a tenth of the count, untimed.
struct params {
  std::int64_t round_trips;
  std::int64_t stream_messages;

  static params full() { return params{50'000, 500'000}; }
  static params quick() { return params{5'000, 50'000}; }

  [[nodiscard]] std::int64_t count(workload w) const { return is_stream(w) ? stream_messages : round_trips; }
};

// Messages in flight at most: 1 for a round trip; a pipe stream 256 lines
// (16 KiB, a quarter of one pipe's buffer); a UDP stream 32 datagrams (far
// below the socket buffers, and below a port's default high_water of 64, past
// which a UDP port drops what it reads).
inline std::int64_t window_of(workload w) {
  if (!is_stream(w)) return 1;
  return is_pipe(w) ? 256 : 32;
}

// --- the line ---------------------------------------------------------------------

inline constexpr std::size_t line_size = 64;  // with its '\n'

// 16 hexadecimal digits of the sequence, 47 filler bytes, '\n'.
inline std::array<char, line_size> make_line(std::uint64_t sequence) {
  std::array<char, line_size> line{};
  static constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 16; ++i) line[15 - i] = digits[(sequence >> (4 * i)) & 0xFU];
  for (std::size_t i = 16; i < line_size - 1; ++i) line[i] = 'x';
  line[line_size - 1] = '\n';
  return line;
}

// True if `bytes` (with or without its '\n') is the line of `sequence`.
inline bool line_is(std::span<const char> bytes, std::uint64_t sequence) {
  if (bytes.size() != line_size && bytes.size() != line_size - 1) return false;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    const char c = bytes[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return false;
    value = (value << 4U) | static_cast<std::uint64_t>(digit);
  }
  return value == sequence;
}

// --- the UDP echo peer ------------------------------------------------------------

// A forked process that sends every datagram it receives on 127.0.0.1:<port()>
// back to its sender, one recvfrom() and one sendto() each. Killed (SIGKILL)
// and reaped when destroyed; dies with its parent (PR_SET_PDEATHSIG).
class udp_echo_peer {
 public:
  udp_echo_peer() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      std::perror("udp_echo_peer: socket/bind/getsockname");
      std::_Exit(1);
    }
    port_ = ntohs(address.sin_port);
    const pid_t parent = ::getpid();
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) {
      std::perror("udp_echo_peer: fork");
      std::_Exit(1);
    }
    if (pid_ == 0) {
      ::signal(SIGCHLD, SIG_DFL);
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(1);
      echo(fd);
    }
    ::close(fd);
  }
  udp_echo_peer(const udp_echo_peer&) = delete;
  udp_echo_peer& operator=(const udp_echo_peer&) = delete;
  ~udp_echo_peer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  [[noreturn]] static void echo(int fd) {
    std::array<char, 65536> buffer{};
    for (;;) {
      sockaddr_storage from{};
      socklen_t length = sizeof from;
      const ssize_t got = ::recvfrom(fd, buffer.data(), buffer.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
      if (got < 0) continue;  // EINTR; nothing else happens to a bound datagram socket
      (void)::sendto(fd, buffer.data(), static_cast<std::size_t>(got), 0, reinterpret_cast<const sockaddr*>(&from),
                     length);
    }
  }

  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace troupe::bench::ports
