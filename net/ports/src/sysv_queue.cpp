// sysv_queue: System V message queues (msgget, msgsnd, msgrcv). A queue id is
// not a file descriptor: neither epoll nor the reactor can wait on it, and
// Linux has no timed msgrcv. So each such port has one thread of its own,
// blocked in msgrcv (read side) or in msgsnd on a full queue (write side) —
// the one documented exception to "no thread per port". A bounded wait
// (IPC_NOWAIT plus a timer) was the alternative; it is a polling loop, which
// costs a wake-up per period per queue on two shared cores and adds its
// period to every message's latency.
//
// Stopping the thread: it is told to stop (a flag under its mutex) and woken
// out of msgrcv/msgsnd by a signal with a handler that does nothing
// (wake_signal, installed once, without SA_RESTART, so the call fails with
// EINTR). A signal sent just before the thread enters the call is lost, so the
// stopper sends it again every few milliseconds until the thread says it has
// finished: a bounded retry, not a spin.
//
// Flow control: the thread hands each message to the strand and waits until
// the strand has delivered it, and while the owner is over high_water.
#include <pthread.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "endpoint.hpp"
#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"

namespace troupe::ports::detail {

namespace {

int wake_signal() noexcept { return SIGRTMIN + 4; }

void install_wake_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_handler = [](int) {};  // only to interrupt msgrcv/msgsnd with EINTR
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART
    ::sigaction(wake_signal(), &action, nullptr);
  });
}

// What the port's thread and its strand share.
struct worker_state {
  troupe::mutex mutex;
  std::condition_variable_any changed;
  bool stop TROUPE_GUARDED_BY(mutex) = false;
  bool finished TROUPE_GUARDED_BY(mutex) = false;
  bool paused TROUPE_GUARDED_BY(mutex) = false;       // read side: owner over high_water
  std::uint64_t handed TROUPE_GUARDED_BY(mutex) = 0;  // read side: messages given to the strand
  std::uint64_t taken TROUPE_GUARDED_BY(mutex) = 0;   // ... and delivered by it
  std::deque<std::pair<long, std::vector<std::byte>>> outbox TROUPE_GUARDED_BY(mutex);  // write side
};

class sysv_queue_endpoint final : public endpoint {
 public:
  sysv_queue_endpoint(reactor& io, sysv_queue_spec spec, int id, bool created)
      : endpoint(io), spec_(spec), id_(id), created_(created), state_(std::make_shared<worker_state>()) {}
  sysv_queue_endpoint(const sysv_queue_endpoint&) = delete;
  sysv_queue_endpoint& operator=(const sysv_queue_endpoint&) = delete;
  ~sysv_queue_endpoint() override { stop_thread(); }

  [[nodiscard]] std::string local_address() const override { return "sysv key " + std::to_string(spec_.key); }

 private:
  void begin() override {
    install_wake_handler();
    std::weak_ptr<endpoint> self = shared_from_this();
    if (spec_.side == fifo_side::read) {
      thread_ = std::thread([this, self, state = state_] { read_loop(self, *state); });
    } else {
      thread_ = std::thread([this, self, state = state_] { write_loop(self, *state); });
    }
  }

  void resume() override {
    troupe::mutex_lock lock(state_->mutex);
    state_->paused = false;
    state_->changed.notify_all();
  }

  void stopping() noexcept override {
    if (created_ && spec_.remove_if_created) ::msgctl(id_, IPC_RMID, nullptr);  // also wakes a blocked msgrcv (EIDRM)
  }
  void close_all() noexcept override {
    troupe::mutex_lock lock(state_->mutex);
    state_->stop = true;
    state_->changed.notify_all();
  }

  void do_write(std::vector<std::byte> bytes) override { do_send_typed(spec_.send_type, std::move(bytes)); }
  void do_send_typed(long type, std::vector<std::byte> bytes) override {
    if (spec_.side != fifo_side::write) return end_failed("the read side of a System V queue takes no write");
    if (type <= 0) return end_failed("a System V message type must be above 0, not " + std::to_string(type));
    if (bytes.size() > spec_.max_message) {
      return end_failed("a message of " + std::to_string(bytes.size()) + " bytes, over max_message " +
                        std::to_string(spec_.max_message));
    }
    troupe::mutex_lock lock(state_->mutex);
    state_->outbox.emplace_back(type, std::move(bytes));
    state_->changed.notify_all();
  }

  // --- the port's thread ---
  void read_loop(const std::weak_ptr<endpoint>& self, worker_state& state) {
    std::vector<char> buffer(sizeof(long) + spec_.max_message);
    while (true) {
      {
        troupe::mutex_lock lock(state.mutex);
        state.changed.wait(lock, [&]() TROUPE_REQUIRES(state.mutex) {
          return state.stop || (!state.paused && state.taken == state.handed);
        });
        if (state.stop) break;
      }
      const ssize_t n = ::msgrcv(id_, buffer.data(), spec_.max_message, spec_.receive_type, MSG_NOERROR);
      if (n < 0) {
        if (errno == EINTR) continue;
        const std::string what = troupe::detail::errno_text("msgrcv");
        hand_over(self, [what](sysv_queue_endpoint& e) { e.end_failed(what); });
        break;
      }
      long type = 0;
      std::memcpy(&type, buffer.data(), sizeof type);
      const auto* first = reinterpret_cast<const std::byte*>(buffer.data() + sizeof(long));  // NOLINT
      std::vector<std::byte> bytes(first, first + n);
      {
        troupe::mutex_lock lock(state.mutex);
        ++state.handed;
      }
      hand_over(self, [type, bytes = std::move(bytes)](sysv_queue_endpoint& e) mutable {
        e.deliver_typed_message(type, std::move(bytes));
        troupe::mutex_lock lock(e.state_->mutex);
        ++e.state_->taken;
        if (e.over_high_water()) {
          e.state_->paused = true;
          e.note_pause();
        }
        e.state_->changed.notify_all();
      });
    }
    finish(state);
  }

  void write_loop(const std::weak_ptr<endpoint>& self, worker_state& state) {
    std::vector<char> buffer;
    while (true) {
      std::pair<long, std::vector<std::byte>> next;
      {
        troupe::mutex_lock lock(state.mutex);
        state.changed.wait(lock, [&]() TROUPE_REQUIRES(state.mutex) { return state.stop || !state.outbox.empty(); });
        if (state.stop) break;
        next = std::move(state.outbox.front());
        state.outbox.pop_front();
      }
      buffer.resize(sizeof(long) + next.second.size());
      std::memcpy(buffer.data(), &next.first, sizeof(long));
      std::memcpy(buffer.data() + sizeof(long), next.second.data(), next.second.size());
      while (::msgsnd(id_, buffer.data(), next.second.size(), 0) != 0) {
        const int failure = errno;
        troupe::mutex_lock lock(state.mutex);
        if (failure != EINTR || state.stop) {
          errno = failure;
          const std::string what = state.stop ? std::string() : troupe::detail::errno_text("msgsnd");
          lock.unlock();
          if (!what.empty()) hand_over(self, [what](sysv_queue_endpoint& e) { e.end_failed(what); });
          finish(state);
          return;
        }
      }
      const std::size_t size = next.second.size();
      hand_over(self, [size](sysv_queue_endpoint& e) { e.note_written(size); });
    }
    finish(state);
  }

  template <class F>
  void hand_over(const std::weak_ptr<endpoint>& self, F f) {
    if (auto e = self.lock()) {
      asio::post(e->strand(), [e, f = std::move(f)]() mutable {
        if (!e->ended()) f(static_cast<sysv_queue_endpoint&>(*e));
      });
    }
  }

  static void finish(worker_state& state) {
    troupe::mutex_lock lock(state.mutex);
    state.finished = true;
    state.changed.notify_all();
  }

  void stop_thread() noexcept {
    if (!thread_.joinable()) return;
    {
      troupe::mutex_lock lock(state_->mutex);
      state_->stop = true;
      state_->changed.notify_all();
      // Wakes the thread out of msgrcv/msgsnd; again every 5 ms, in case a
      // signal came just before it entered the call (see the top of the file).
      while (!state_->finished) {
        ::pthread_kill(thread_.native_handle(), wake_signal());
        state_->changed.wait_for(lock, std::chrono::milliseconds(5));
      }
    }
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // the thread itself let go of the last reference: it is returning anyway
    } else {
      thread_.join();
    }
  }

  sysv_queue_spec spec_;
  int id_;
  bool created_;
  std::shared_ptr<worker_state> state_;
  std::thread thread_;
};

class sysv_queue_opener final : public endpoint_spec::opener {
 public:
  explicit sysv_queue_opener(sysv_queue_spec spec) : spec_(spec) {}

  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    if (spec_.key == IPC_PRIVATE)
      return error(errc::invalid_request, "a System V queue port needs a key, not IPC_PRIVATE");
    if (spec_.max_message == 0) return error(errc::invalid_request, "max_message is 0");
    bool created = false;
    int id = -1;
    if (spec_.create) {
      id = ::msgget(spec_.key, IPC_CREAT | IPC_EXCL | static_cast<int>(spec_.mode));
      if (id >= 0)
        created = true;
      else if (errno != EEXIST)
        return error(errc::invalid_request, troupe::detail::errno_text("msgget"));
    }
    if (!created) {
      id = ::msgget(spec_.key, 0);
      if (id < 0) return error(errc::invalid_request, troupe::detail::errno_text("msgget"));
      msqid_ds info{};
      if (::msgctl(id, IPC_STAT, &info) != 0) return error(errc::invalid_request, troupe::detail::errno_text("msgctl"));
      const unsigned mode = info.msg_perm.mode & 0777U;
      if (spec_.create && mode != spec_.mode) {
        char text[64];
        std::snprintf(text, sizeof text, "exists with mode %04o, not the %04o asked for", mode, spec_.mode);
        return error(errc::invalid_request, "System V queue key " + std::to_string(spec_.key) + " " + text);
      }
    }
    return std::shared_ptr<endpoint>(std::make_shared<sysv_queue_endpoint>(io, spec_, id, created));
  }

 private:
  sysv_queue_spec spec_;
};

}  // namespace

}  // namespace troupe::ports::detail

namespace troupe::ports {
endpoint_spec sysv_queue(sysv_queue_spec spec) {
  return endpoint_spec(std::make_shared<detail::sysv_queue_opener>(spec));
}
}  // namespace troupe::ports
