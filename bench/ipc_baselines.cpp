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
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>

#include <troupe/mailbox/cache_line.hpp>

#include "ipc_common.hpp"

namespace {

namespace ipc = troupe::bench::ipc;
using ipc::message;
using ipc::side;

constexpr std::array<std::string_view, 6> mechanism_names = {"pipe",    "unix_socket",  "posix_mq",
                                                             "sysv_mq", "tcp_loopback", "shm_spin"};

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

// Measures every selected workload over one mechanism and prints each result:
// CSV (the contract of WORKLOADS.md) or, with `table`, a row for people.
template <class MakeChannel>
void run_mechanism(std::string_view mechanism, MakeChannel make_channel, const ipc::options& opts, bool table) {
  for (auto w : {ipc::workload::ping_pong, ipc::workload::stream}) {
    if (!opts.selected(w)) continue;
    auto name = ipc::name_of(w);
    auto unit = ipc::unit_of(w);
    ipc::set_context(mechanism, name);
    auto rates = ipc::measure(w, make_channel, opts.parameters(), opts.reps);
    for (std::size_t rep = 0; rep < rates.size(); ++rep)
      std::fprintf(stderr, "%.*s %.*s rep %zu/%zu: %.2f %.*s\n", static_cast<int>(mechanism.size()), mechanism.data(),
                   static_cast<int>(name.size()), name.data(), rep + 1, rates.size(), rates[rep],
                   static_cast<int>(unit.size()), unit.data());
    auto result = troupe::bench::summarize(rates);
    if (table)
      std::printf("%-13.*s %-14.*s %-14.*s %10s %10s %10s\n", static_cast<int>(mechanism.size()), mechanism.data(),
                  static_cast<int>(name.size()), name.data(), static_cast<int>(unit.size()), unit.data(),
                  human(result.median).c_str(), human(result.min).c_str(), human(result.max).c_str());
    else
      std::printf("%.*s,%.*s,%.2f,%.2f,%.2f\n", static_cast<int>(name.size()), name.data(),
                  static_cast<int>(unit.size()), unit.data(), result.median, result.min, result.max);
    std::fflush(stdout);
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
  else
    ipc::fatal("no such mechanism: " + std::string(mechanism));
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = ipc::parse_options(argc, argv, mechanism_names);
  ipc::install_handlers(argc > 0 ? argv[0] : "ipc_baselines", remove_live_sysv_queues);
  if (opts.mechanism != "all") {
    run(opts.mechanism, opts, false);
    return 0;
  }
  std::printf("ipc baselines: %s parameters, %d reps, median (min-max) over reps\n", opts.quick ? "quick" : "full",
              opts.reps);
  std::printf("%-13s %-14s %-14s %10s %10s %10s\n", "mechanism", "workload", "unit", "median", "min", "max");
  for (auto mechanism : mechanism_names) run(mechanism, opts, true);
  return 0;
}
