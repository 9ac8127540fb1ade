// ipc_baselines — what the operating system's own IPC mechanisms cost between
// two processes on this machine: the baselines for troupe's shared-memory
// transport, measured with the ipc_* workloads of WORKLOADS.md (ipc_common.hpp).
//
//   ipc_baselines --mechanism pipe --quick --reps 3   # CSV: workload,unit,median,min,max
//   ipc_baselines --mechanism all --quick             # a table of every mechanism
//
// Mechanisms: pipe (two anonymous pipes), unix_socket (socketpair, SOCK_STREAM),
// posix_mq (mq_open, two queues), sysv_mq (msgget, two queues), tcp_loopback
// (127.0.0.1, TCP_NODELAY) and shm_spin (a MAP_SHARED mapping with one handoff
// slot per direction and an SPSC ring, both busy-waited: the physical floor).
// Every message is one 64-byte write and one 64-byte read (or one queue
// operation); nothing is batched, because per-message cost is what we measure.
//
// port_raw and port_raw_batched are the baselines of troupe_ports_bench (the port_*
// workloads, port_common.hpp): one thread talking to /bin/cat over two pipes
// or to a forked UDP echo peer, with the same lines, counts and windows as the
// port. port_raw writes each message with its own write()/send();
// port_raw_batched (stream workloads only) refills the window with one write()
// (one sendmmsg()) and reads datagrams with recvmmsg(). Both read a pipe with
// 64 KiB reads, as the port does.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>

#include <troupe/mailbox/cache_line.hpp>

#include "ipc_common.hpp"
#include "port_common.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's environment

namespace {

namespace ipc = troupe::bench::ipc;
using ipc::message;
using ipc::side;

constexpr std::array<std::string_view, 8> mechanism_names = {
    "pipe", "unix_socket", "posix_mq", "sysv_mq", "tcp_loopback", "shm_spin", "port_raw", "port_raw_batched"};

// --- file descriptors: pipe, unix_socket, tcp_loopback ------------------------------

using ipc::unique_fd;

// One message per write() and per read(); loops only for the short transfers
// a stream socket may make.
class fd_endpoint {
 public:
  fd_endpoint(unique_fd read_end, unique_fd write_end)
      : read_fd_(read_end.get()), write_fd_(write_end.get()), owned_{std::move(read_end), std::move(write_end)} {}
  explicit fd_endpoint(unique_fd both)
      : read_fd_(both.get()), write_fd_(both.get()), owned_{std::move(both), unique_fd{}} {}

  void send(const message& m) noexcept { ipc::write_all(write_fd_, &m, sizeof m); }
  void receive(message& m) noexcept {
    auto* data = reinterpret_cast<std::byte*>(&m);
    std::size_t left = sizeof m;
    while (left > 0) {
      ssize_t got = ::read(read_fd_, data, left);
      if (got < 0) {
        if (errno == EINTR) continue;
        ipc::fatal_errno("read");
      }
      if (got == 0) ipc::fatal("read: the peer closed its end (did it die?)");
      data += got;
      left -= static_cast<std::size_t>(got);
    }
  }
  void stream_send(const message& m) noexcept { send(m); }
  void stream_receive(message& m) noexcept { receive(m); }

 private:
  int read_fd_;
  int write_fd_;
  std::array<unique_fd, 2> owned_;
};

class pipe_channel {
 public:
  pipe_channel() {
    make_pipe(a_to_b_);
    make_pipe(b_to_a_);
  }
  fd_endpoint become(side s) {
    // Close the other side's ends, so that a dead peer reads as EOF / EPIPE.
    if (s == side::a) {
      a_to_b_[0].reset();
      b_to_a_[1].reset();
      return fd_endpoint{std::move(b_to_a_[0]), std::move(a_to_b_[1])};
    }
    a_to_b_[1].reset();
    b_to_a_[0].reset();
    return fd_endpoint{std::move(a_to_b_[0]), std::move(b_to_a_[1])};
  }

 private:
  static void make_pipe(std::array<unique_fd, 2>& ends) {
    int fds[2];
    ipc::check(::pipe2(fds, O_CLOEXEC), "pipe2");
    ends[0] = unique_fd{fds[0]};
    ends[1] = unique_fd{fds[1]};
  }

  std::array<unique_fd, 2> a_to_b_;  // [0] read end, [1] write end
  std::array<unique_fd, 2> b_to_a_;
};

// Two connected stream sockets, one per side (a Unix socketpair, or both ends
// of a loopback TCP connection).
class socket_channel {
 public:
  fd_endpoint become(side s) {
    if (s == side::a) {
      b_end_.reset();
      return fd_endpoint{std::move(a_end_)};
    }
    a_end_.reset();
    return fd_endpoint{std::move(b_end_)};
  }

  static socket_channel unix_pair() {
    int fds[2];
    ipc::check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), "socketpair(AF_UNIX)");
    return socket_channel{unique_fd{fds[0]}, unique_fd{fds[1]}};
  }

  // Listen on 127.0.0.1 at an ephemeral port, connect, accept, close the
  // listener: all before fork(), so neither process waits for the other.
  static socket_channel tcp_loopback() {
    auto [client, server] = ipc::loopback_tcp_pair();
    return socket_channel{std::move(client), std::move(server)};
  }

 private:
  socket_channel(unique_fd a_end, unique_fd b_end) : a_end_(std::move(a_end)), b_end_(std::move(b_end)) {}

  unique_fd a_end_;
  unique_fd b_end_;
};

// --- POSIX message queues -----------------------------------------------------------

class posix_mq_endpoint {
 public:
  posix_mq_endpoint(mqd_t outgoing, mqd_t incoming) : outgoing_(outgoing), incoming_(incoming) {}

  void send(const message& m) noexcept {
    while (::mq_send(outgoing_, reinterpret_cast<const char*>(&m), sizeof m, 0) != 0) {
      if (errno != EINTR) ipc::fatal_errno("mq_send");
    }
  }
  void receive(message& m) noexcept {
    for (;;) {
      ssize_t got = ::mq_receive(incoming_, reinterpret_cast<char*>(&m), sizeof m, nullptr);
      if (got == static_cast<ssize_t>(sizeof m)) return;
      if (got >= 0) ipc::fatal("mq_receive: a message of " + std::to_string(got) + " bytes, expected 64");
      if (errno != EINTR) ipc::fatal_errno("mq_receive");
    }
  }
  void stream_send(const message& m) noexcept { send(m); }
  void stream_receive(message& m) noexcept { receive(m); }

 private:
  mqd_t outgoing_;
  mqd_t incoming_;
};

// Two queues of 10 messages of 64 bytes (10 is Linux's default
// /proc/sys/fs/mqueue/msg_max, the deepest queue an unprivileged user may ask
// for out of the box). The names are unlinked right after creation: the
// descriptors survive fork(), and no name is left behind whatever happens.
class posix_mq_channel {
 public:
  static constexpr long depth = 10;

  posix_mq_channel() : a_to_b_(open_queue("a_to_b")), b_to_a_(open_queue("b_to_a")) {}
  posix_mq_channel(const posix_mq_channel&) = delete;
  posix_mq_channel& operator=(const posix_mq_channel&) = delete;
  ~posix_mq_channel() {
    ipc::check(::mq_close(a_to_b_), "mq_close");
    ipc::check(::mq_close(b_to_a_), "mq_close");
  }

  posix_mq_endpoint become(side s) const {
    return s == side::a ? posix_mq_endpoint{a_to_b_, b_to_a_} : posix_mq_endpoint{b_to_a_, a_to_b_};
  }

 private:
  static mqd_t open_queue(const char* direction) {
    static unsigned serial = 0;
    std::string name =
        "/troupe_ipc_baselines_" + std::to_string(::getpid()) + "_" + std::to_string(serial++) + "_" + direction;
    mq_attr attributes{};
    attributes.mq_maxmsg = depth;
    attributes.mq_msgsize = sizeof(message);
    std::string what = "mq_open(" + name + ", maxmsg 10, msgsize 64)";
    mqd_t queue =
        ipc::check(::mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attributes), what.c_str());
    if (::mq_unlink(name.c_str()) != 0) ipc::fatal_errno("mq_unlink(" + name + ")");
    return queue;
  }

  mqd_t a_to_b_;
  mqd_t b_to_a_;
};

// --- System V message queues -----------------------------------------------------------

// The queues alive in this process, for the cleanup hook: a failure or a
// signal must not leave them behind (they outlive the process otherwise).
// Touched by signal handlers, hence volatile sig_atomic_t; -1 is a free slot.
volatile std::sig_atomic_t live_sysv_queues[4] = {-1, -1, -1, -1};

// The cleanup hook of ipc::install_handlers: async-signal-safe.
void remove_live_sysv_queues() noexcept {
  for (auto& id : live_sysv_queues) {
    int queue = id;
    id = -1;
    if (queue >= 0) ::msgctl(queue, IPC_RMID, nullptr);  // best effort: we are exiting anyway
  }
}

class sysv_mq_endpoint {
 public:
  sysv_mq_endpoint(int outgoing, int incoming) : outgoing_(outgoing), incoming_(incoming) {}

  void send(const message& m) noexcept {
    record_.body = m;
    while (::msgsnd(outgoing_, &record_, sizeof record_.body, 0) != 0) {
      if (errno != EINTR) ipc::fatal_errno("msgsnd");  // EIDRM: the queue was removed
    }
  }
  void receive(message& m) noexcept {
    for (;;) {
      ssize_t got = ::msgrcv(incoming_, &record_, sizeof record_.body, 0, 0);
      if (got == static_cast<ssize_t>(sizeof record_.body)) break;
      if (got >= 0) ipc::fatal("msgrcv: a message of " + std::to_string(got) + " bytes, expected 64");
      if (errno != EINTR)  // msgrcv is never restarted after a signal handler
        ipc::fatal_errno("msgrcv");
    }
    m = record_.body;
  }
  void stream_send(const message& m) noexcept { send(m); }
  void stream_receive(message& m) noexcept { receive(m); }

 private:
  struct record {
    long type = 1;  // msgsnd requires > 0; we receive any type
    message body;
  };
  int outgoing_;
  int incoming_;
  record record_{};
};

// Two private queues with the system's default size limit (msgmnb, 16 KiB by
// default: 256 messages of 64 bytes).
class sysv_mq_channel {
 public:
  sysv_mq_channel() : a_to_b_(create_queue()), b_to_a_(create_queue()) {}
  sysv_mq_channel(const sysv_mq_channel&) = delete;
  sysv_mq_channel& operator=(const sysv_mq_channel&) = delete;
  ~sysv_mq_channel() {
    remove_queue(a_to_b_);
    remove_queue(b_to_a_);
  }

  sysv_mq_endpoint become(side s) const {
    return s == side::a ? sysv_mq_endpoint{a_to_b_, b_to_a_} : sysv_mq_endpoint{b_to_a_, a_to_b_};
  }

 private:
  static int create_queue() {
    for (auto& slot : live_sysv_queues) {
      if (slot >= 0) continue;
      // Registered before anything else can fail, so the hook removes it.
      slot = ipc::check(::msgget(IPC_PRIVATE, IPC_CREAT | 0600), "msgget(IPC_PRIVATE)");
      return slot;
    }
    ipc::fatal("more System V queues alive than expected");
  }
  static void remove_queue(int queue) {
    for (auto& slot : live_sysv_queues) {
      if (slot == queue) slot = -1;
    }
    ipc::check(::msgctl(queue, IPC_RMID, nullptr), "msgctl(IPC_RMID)");
  }

  int a_to_b_;
  int b_to_a_;
};

// --- shared memory, busy-waiting ----------------------------------------------------------

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#endif
}

// Busy-waits with a pause per turn. Two safety valves that an idle machine
// never reaches: after 16Ki turns it also yields the CPU every 1Ki turns (on a
// busy 2-core machine the peer may need our core to make progress), and after
// 10 s without progress the peer is presumed dead and the process fails.
class spin_waiter {
 public:
  void wait() noexcept {
    cpu_relax();
    if ((++turns_ & (check_every - 1)) == 0) check_progress();
  }

 private:
  static constexpr std::uint64_t check_every = 1024;
  static constexpr std::uint64_t yield_after = std::uint64_t{16} * 1024;
  static constexpr auto patience = std::chrono::seconds(10);

  void check_progress() noexcept {
    auto now = std::chrono::steady_clock::now();
    if (turns_ == check_every) {
      deadline_ = now + patience;
      return;
    }
    if (now > deadline_) ipc::fatal("shm_spin: the peer made no progress for 10 s (is it still alive?)");
    if (turns_ >= yield_after && ::sched_yield() != 0) ipc::fatal_errno("sched_yield");
  }

  std::uint64_t turns_ = 0;
  std::chrono::steady_clock::time_point deadline_{};
};

// One direction of send/receive: a slot and a counter. A capacity-1 handoff
// that relies on the drivers alternating (see ipc::endpoint): the sender
// writes the slot again only after the receiver has answered, i.e. after it
// copied the slot out. receive() fails loudly if that is ever violated.
struct handoff {
  // Written by the sender only: the number of messages sent. Its own line, so
  // that the receiver's polling does not contend with the slot being written.
  alignas(troupe::cache_line) std::atomic<std::uint64_t> sent;
  alignas(troupe::cache_line) message slot;
};

// The ipc_stream direction (A to B): an SPSC ring of 64-byte slots, 64 KiB like
// a pipe's default buffer. Counters are positions since creation (64-bit, never
// wrap); slot = position % capacity.
struct stream_ring {
  static constexpr std::uint64_t capacity = 1024;
  // Written by the producer only; apart from `consumed` so that the two sides
  // do not invalidate each other's counter line on every message.
  alignas(troupe::cache_line) std::atomic<std::uint64_t> published;
  alignas(troupe::cache_line) std::atomic<std::uint64_t> consumed;  // consumer only
  alignas(troupe::cache_line) std::array<message, capacity> slots;
};

// The whole mapping. No pointers, only positions; every atomic is lock-free
// (a lock-based atomic would use a lock private to each process).
struct shm_layout {
  static constexpr std::uint32_t current_version = 1;
  std::uint32_t version;
  handoff a_to_b;
  handoff b_to_a;
  stream_ring stream;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<shm_layout>);
static_assert(offsetof(shm_layout, a_to_b) % troupe::cache_line == 0 && offsetof(handoff, slot) == troupe::cache_line &&
              sizeof(handoff) == 2 * troupe::cache_line);
static_assert(offsetof(stream_ring, consumed) == troupe::cache_line &&
              offsetof(stream_ring, slots) == 2 * troupe::cache_line);

// Thread safety: one endpoint per process; side A's endpoint is the only
// sender on a_to_b and producer of the stream, side B's the only sender on
// b_to_a and consumer of the stream. Everything a sender wrote into a slot
// before publishing happens-before the receiver's copy of it (release store of
// the counter, acquire load of it).
class shm_endpoint {
 public:
  shm_endpoint(shm_layout* shared, side s)
      : outgoing_(s == side::a ? &shared->a_to_b : &shared->b_to_a),
        incoming_(s == side::a ? &shared->b_to_a : &shared->a_to_b),
        stream_(&shared->stream) {}

  void send(const message& m) noexcept {
    outgoing_->slot = m;
    // release: pairs with the acquire in the peer's receive(): the slot written
    // above is complete when the peer sees the new count.
    outgoing_->sent.store(++sent_, std::memory_order_release);
  }

  void receive(message& m) noexcept {
    ++received_;
    spin_waiter waiter;
    std::uint64_t sent;
    // acquire: pairs with the release in the peer's send(): the slot is complete.
    while ((sent = incoming_->sent.load(std::memory_order_acquire)) < received_) waiter.wait();
    if (sent != received_) ipc::fatal("shm_spin: the peer sent twice without waiting for an answer");
    m = incoming_->slot;
  }

  // Producer (side A) only.
  void stream_send(const message& m) noexcept {
    if (published_ - consumed_seen_ == stream_ring::capacity) {
      spin_waiter waiter;
      // acquire: pairs with the release in stream_receive(): the consumer has
      // copied out the slot we are about to overwrite.
      while ((consumed_seen_ = stream_->consumed.load(std::memory_order_acquire)) + stream_ring::capacity == published_)
        waiter.wait();
    }
    stream_->slots[published_ % stream_ring::capacity] = m;
    // release: pairs with the acquire in stream_receive(): the slot is written
    // before the consumer sees it published.
    stream_->published.store(++published_, std::memory_order_release);
  }

  // Consumer (side B) only.
  void stream_receive(message& m) noexcept {
    if (consumed_ == published_seen_) {
      spin_waiter waiter;
      // acquire: pairs with the release in stream_send(): the slot is complete.
      while ((published_seen_ = stream_->published.load(std::memory_order_acquire)) == consumed_) waiter.wait();
    }
    m = stream_->slots[consumed_ % stream_ring::capacity];
    // release: pairs with the acquire in stream_send(): our copy is done before
    // the producer may reuse the slot.
    stream_->consumed.store(++consumed_, std::memory_order_release);
  }

 private:
  handoff* outgoing_;
  handoff* incoming_;
  stream_ring* stream_;
  // Process-local copies: what this side did and last saw of the other.
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t consumed_seen_ = 0;
  std::uint64_t consumed_ = 0;
  std::uint64_t published_seen_ = 0;
};

// An anonymous MAP_SHARED mapping made before fork(): both processes see the
// same pages at the same address.
class shm_channel {
 public:
  shm_channel() {
    void* memory = ::mmap(nullptr, sizeof(shm_layout), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) ipc::fatal_errno("mmap(MAP_SHARED | MAP_ANONYMOUS)");
    shared_ = new (memory) shm_layout{};
    shared_->version = shm_layout::current_version;
  }
  shm_channel(const shm_channel&) = delete;
  shm_channel& operator=(const shm_channel&) = delete;
  ~shm_channel() { ipc::check(::munmap(shared_, sizeof(shm_layout)), "munmap"); }

  shm_endpoint become(side s) const { return shm_endpoint{shared_, s}; }

 private:
  shm_layout* shared_ = nullptr;
};

// --- port_raw, port_raw_batched: the baselines of troupe_ports_bench -------------------------

namespace port_bench = troupe::bench::ports;

// /bin/cat with its stdin and stdout as pipes to this process. It is the
// harness's peer process (a failure kills it, its failure is seen at once);
// destroying this closes its stdin, and cat exits 0 on that EOF.
class cat_process {
 public:
  cat_process() {
    int input[2];
    int output[2];
    ipc::check(::pipe2(input, O_CLOEXEC), "pipe2");
    ipc::check(::pipe2(output, O_CLOEXEC), "pipe2");
    posix_spawn_file_actions_t actions;
    // dup2 onto 0 and 1 clears O_CLOEXEC there; every other end closes at exec.
    if (::posix_spawn_file_actions_init(&actions) != 0 ||
        ::posix_spawn_file_actions_adddup2(&actions, input[0], 0) != 0 ||
        ::posix_spawn_file_actions_adddup2(&actions, output[1], 1) != 0)
      ipc::fatal("posix_spawn_file_actions");
    std::array<char*, 2> argv = {const_cast<char*>(port_bench::echo_program), nullptr};  // NOLINT: exec's signature
    ipc::detail::block_child_signal(true);
    const int failed = ::posix_spawn(&pid_, port_bench::echo_program, &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (failed != 0) ipc::fatal(std::string("posix_spawn(/bin/cat): ") + std::generic_category().message(failed));
    ipc::detail::child_pid = pid_;
    ipc::detail::block_child_signal(false);
    unique_fd{input[0]}.reset();
    unique_fd{output[1]}.reset();
    to_ = unique_fd{input[1]};
    from_ = unique_fd{output[0]};
  }
  cat_process(const cat_process&) = delete;
  cat_process& operator=(const cat_process&) = delete;
  ~cat_process() {
    to_.reset();
    ipc::detail::wait_for_peer(pid_);
  }
  [[nodiscard]] int to() const noexcept { return to_.get(); }
  [[nodiscard]] int from() const noexcept { return from_.get(); }

 private:
  pid_t pid_ = -1;
  unique_fd to_;
  unique_fd from_;
};

// Reads lines with 64 KiB reads (as a stream port does) and checks each one's
// sequence: a lost, repeated or reordered line is fatal.
class line_reader {
 public:
  // One read (it waits for at least one byte); returns the lines it completed.
  std::int64_t read_some(int fd) {
    ssize_t got = -1;
    while ((got = ::read(fd, buffer_.data() + held_, buffer_.size() - held_)) < 0) {
      if (errno != EINTR) ipc::fatal_errno("read");
    }
    if (got == 0) ipc::fatal("read: /bin/cat closed its output (did it die?)");
    held_ += static_cast<std::size_t>(got);
    std::int64_t lines = 0;
    std::size_t start = 0;
    while (const void* end = std::memchr(buffer_.data() + start, '\n', held_ - start)) {
      const auto length = static_cast<std::size_t>(static_cast<const char*>(end) - (buffer_.data() + start)) + 1;
      if (!port_bench::line_is({buffer_.data() + start, length}, next_))
        ipc::fatal("/bin/cat echoed line " + std::to_string(next_) + " wrong (lost, repeated or out of order)");
      ++next_;
      ++lines;
      start += length;
    }
    std::memmove(buffer_.data(), buffer_.data() + start, held_ - start);
    held_ -= start;
    return lines;
  }

 private:
  std::array<char, std::size_t{64} << 10> buffer_{};
  std::size_t held_ = 0;
  std::uint64_t next_ = 0;
};

// One session over /bin/cat: `count` lines, at most `window` in flight; returns messages/s.
double cat_session(const cat_process& cat, line_reader& reader, std::uint64_t& sequence, std::int64_t count,
                   std::int64_t window, bool batched) {
  std::vector<char> batch;
  std::int64_t sent = 0;
  std::int64_t received = 0;
  troupe::bench::stopwatch clock;
  while (received < count) {
    const std::int64_t room = std::min(count - sent, window - (sent - received));
    if (batched && room > 0) {
      batch.clear();
      for (std::int64_t i = 0; i < room; ++i) {
        const auto line = port_bench::make_line(sequence++);
        batch.insert(batch.end(), line.begin(), line.end());
      }
      ipc::write_all(cat.to(), batch.data(), batch.size());
    } else {
      for (std::int64_t i = 0; i < room; ++i) {
        const auto line = port_bench::make_line(sequence++);
        ipc::write_all(cat.to(), line.data(), line.size());
      }
    }
    sent += room;
    received += reader.read_some(cat.from());
  }
  return static_cast<double>(count) / clock.seconds();
}

// A UDP socket on 127.0.0.1, connected to the echo peer.
unique_fd udp_socket_to(const port_bench::udp_echo_peer& peer) {
  unique_fd fd{ipc::check(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket(udp)")};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(peer.port());
  ipc::check(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address), "connect(udp)");
  return fd;
}

// One session with the UDP echo peer, as cat_session. Batched: one sendmmsg()
// per refill, one recvmmsg() for what has arrived.
double udp_session(int fd, std::uint64_t& sequence, std::uint64_t& expected, std::int64_t count, std::int64_t window,
                   bool batched) {
  constexpr std::size_t most = 64;
  std::array<std::array<char, port_bench::line_size>, most> lines{};
  std::array<iovec, most> vectors{};
  std::array<mmsghdr, most> headers{};
  for (std::size_t i = 0; i < most; ++i) {
    vectors[i] = iovec{lines[i].data(), lines[i].size()};
    headers[i] = mmsghdr{};
    headers[i].msg_hdr.msg_iov = &vectors[i];
    headers[i].msg_hdr.msg_iovlen = 1;
  }
  auto check_datagram = [&](const char* bytes, std::size_t size) {
    if (!port_bench::line_is({bytes, size}, expected))
      ipc::fatal("the UDP echo peer's datagram " + std::to_string(expected) + " is wrong (lost or out of order)");
    ++expected;
  };
  std::int64_t sent = 0;
  std::int64_t received = 0;
  troupe::bench::stopwatch clock;
  while (received < count) {
    const auto room = static_cast<std::size_t>(std::min(count - sent, window - (sent - received)));
    if (batched && room > 0) {
      for (std::size_t i = 0; i < room; ++i) lines[i] = port_bench::make_line(sequence++);
      std::size_t done = 0;
      while (done < room) {
        const int n = ::sendmmsg(fd, headers.data() + done, static_cast<unsigned>(room - done), 0);
        if (n < 0 && errno != EINTR) ipc::fatal_errno("sendmmsg");
        if (n > 0) done += static_cast<std::size_t>(n);
      }
      int n = -1;
      while ((n = ::recvmmsg(fd, headers.data(), most, MSG_WAITFORONE, nullptr)) < 0) {
        if (errno != EINTR) ipc::fatal_errno("recvmmsg");
      }
      for (int i = 0; i < n; ++i)
        check_datagram(lines[static_cast<std::size_t>(i)].data(), headers[static_cast<std::size_t>(i)].msg_len);
      received += n;
    } else {
      for (std::size_t i = 0; i < room; ++i) {
        const auto line = port_bench::make_line(sequence++);
        while (::send(fd, line.data(), line.size(), 0) < 0) {
          if (errno != EINTR) ipc::fatal_errno("send(udp)");
        }
      }
      ssize_t got = -1;
      while ((got = ::recv(fd, lines[0].data(), lines[0].size(), 0)) < 0) {
        if (errno != EINTR) ipc::fatal_errno("recv(udp)");
      }
      check_datagram(lines[0].data(), static_cast<std::size_t>(got));
      ++received;
    }
    sent += static_cast<std::int64_t>(room);
  }
  return static_cast<double>(count) / clock.seconds();
}

// Runs one port_* workload raw: an untimed warm-up session, then `reps`.
std::vector<double> measure_port(port_bench::workload w, const ipc::options& opts, bool batched) {
  const auto p = opts.quick ? port_bench::params::quick() : port_bench::params::full();
  const std::int64_t count = p.count(w);
  const std::int64_t window = port_bench::window_of(w);
  std::vector<double> rates;
  std::uint64_t sequence = 0;
  if (port_bench::is_pipe(w)) {
    cat_process cat;
    line_reader reader;
    for (int session = 0; session <= opts.reps; ++session) {
      ::alarm(ipc::watchdog_seconds);
      const double rate = cat_session(cat, reader, sequence,
                                      session == 0 ? std::max<std::int64_t>(1, count / 10) : count, window, batched);
      if (session > 0) rates.push_back(rate);
    }
  } else {
    port_bench::udp_echo_peer peer;
    const unique_fd fd = udp_socket_to(peer);
    std::uint64_t expected = 0;
    for (int session = 0; session <= opts.reps; ++session) {
      ::alarm(ipc::watchdog_seconds);
      const double rate = udp_session(fd.get(), sequence, expected,
                                      session == 0 ? std::max<std::int64_t>(1, count / 10) : count, window, batched);
      if (session > 0) rates.push_back(rate);
    }
  }
  ::alarm(0);
  return rates;
}

// --- the program ------------------------------------------------------------------------

// 12345.6 -> "12.3k", like bench/compare's table.
std::string human(double value) {
  char text[32];
  if (value >= 1e9)
    std::snprintf(text, sizeof text, "%.2fG", value / 1e9);
  else if (value >= 1e6)
    std::snprintf(text, sizeof text, "%.2fM", value / 1e6);
  else if (value >= 1e3)
    std::snprintf(text, sizeof text, "%.1fk", value / 1e3);
  else
    std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

// Prints one workload's result: CSV (the contract of WORKLOADS.md) or, with
// `table`, a row for people; each repetition on stderr.
void report(std::string_view mechanism, std::string_view name, std::string_view unit, const std::vector<double>& rates,
            bool table) {
  for (std::size_t rep = 0; rep < rates.size(); ++rep)
    std::fprintf(stderr, "%.*s %.*s rep %zu/%zu: %.2f %.*s\n", static_cast<int>(mechanism.size()), mechanism.data(),
                 static_cast<int>(name.size()), name.data(), rep + 1, rates.size(), rates[rep],
                 static_cast<int>(unit.size()), unit.data());
  auto result = troupe::bench::summarize(rates);
  if (table)
    std::printf("%-16.*s %-20.*s %-14.*s %10s %10s %10s\n", static_cast<int>(mechanism.size()), mechanism.data(),
                static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()), unit.data(),
                human(result.median).c_str(), human(result.min).c_str(), human(result.max).c_str());
  else
    std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()),
                unit.data(), result.median, result.min, result.max);
  std::fflush(stdout);
}

// Measures every selected ipc_* workload over one mechanism and prints each result.
template <class MakeChannel>
void run_mechanism(std::string_view mechanism, MakeChannel make_channel, const ipc::options& opts, bool table) {
  for (auto w : {ipc::workload::ping_pong, ipc::workload::stream}) {
    if (!opts.selected(w)) continue;
    ipc::set_context(mechanism, ipc::name_of(w));
    report(mechanism, ipc::name_of(w), ipc::unit_of(w), ipc::measure(w, make_channel, opts.parameters(), opts.reps),
           table);
  }
}

// Measures every selected port_* workload raw (batched: the stream ones only).
void run_port_baselines(std::string_view mechanism, const ipc::options& opts, bool table, bool batched) {
  for (auto w : port_bench::workloads) {
    if (!opts.selected(port_bench::name_of(w)) || (batched && !port_bench::is_stream(w))) continue;
    ipc::set_context(mechanism, port_bench::name_of(w));
    report(mechanism, port_bench::name_of(w), port_bench::unit_of(w), measure_port(w, opts, batched), table);
  }
}

void run(std::string_view mechanism, const ipc::options& opts, bool table) {
  if (mechanism == "pipe")
    run_mechanism(
        mechanism, [] { return pipe_channel{}; }, opts, table);
  else if (mechanism == "unix_socket")
    run_mechanism(
        mechanism, [] { return socket_channel::unix_pair(); }, opts, table);
  else if (mechanism == "posix_mq")
    run_mechanism(
        mechanism, [] { return posix_mq_channel{}; }, opts, table);
  else if (mechanism == "sysv_mq")
    run_mechanism(
        mechanism, [] { return sysv_mq_channel{}; }, opts, table);
  else if (mechanism == "tcp_loopback")
    run_mechanism(
        mechanism, [] { return socket_channel::tcp_loopback(); }, opts, table);
  else if (mechanism == "shm_spin")
    run_mechanism(
        mechanism, [] { return shm_channel{}; }, opts, table);
  else if (mechanism == "port_raw" || mechanism == "port_raw_batched")
    run_port_baselines(mechanism, opts, table, mechanism == "port_raw_batched");
  else
    ipc::fatal("no such mechanism: " + std::string(mechanism));
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = ipc::parse_options(argc, argv, mechanism_names, port_bench::workload_names);
  ipc::install_handlers(argc > 0 ? argv[0] : "ipc_baselines", remove_live_sysv_queues);
  if (opts.mechanism != "all") {
    run(opts.mechanism, opts, false);
    return 0;
  }
  std::printf("ipc baselines: %s parameters, %d reps, median (min-max) over reps\n", opts.quick ? "quick" : "full",
              opts.reps);
  std::printf("%-16s %-20s %-14s %10s %10s %10s\n", "mechanism", "workload", "unit", "median", "min", "max");
  for (auto mechanism : mechanism_names) run(mechanism, opts, true);
  return 0;
}
