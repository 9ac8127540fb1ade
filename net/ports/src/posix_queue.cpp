// posix_queue: POSIX message queues (mq_open, mq_send, mq_receive). On Linux
// an mqd_t is a file descriptor that poll() reports readable when a message
// waits and writable when there is room, so the reactor waits on it like on a
// socket: no notification thread (mq_notify), no polling loop. The descriptor
// is non-blocking; each readiness drains what is there, up to high_water.
#include <fcntl.h>
#include <mqueue.h>
#include <sys/stat.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <deque>

#include "endpoint.hpp"
#include "os/os.hpp"

namespace troupe::ports::detail {

namespace {

using descriptor = asio::posix::stream_descriptor;

class posix_queue_endpoint final : public endpoint {
 public:
  posix_queue_endpoint(reactor& io, posix_queue_spec spec, mqd_t queue, long message_size, bool created)
      : endpoint(io),
        spec_(std::move(spec)),
        queue_(io.context(), queue),
        message_size_(message_size),
        created_(created),
        buffer_(static_cast<std::size_t>(message_size)) {}

  [[nodiscard]] std::string local_address() const override { return spec_.name; }

 private:
  void begin() override {
    if (spec_.side == fifo_side::read) wait_readable();
  }
  void resume() override {
    if (spec_.side == fifo_side::read && !waiting_) wait_readable();
  }
  void stopping() noexcept override {
    if (created_ && spec_.unlink_if_created) ::mq_unlink(spec_.name.c_str());
  }
  void close_all() noexcept override {
    boost::system::error_code ignored;
    queue_.close(ignored);  // an mqd_t is a descriptor on Linux: close() is mq_close()
  }

  void wait_readable() {
    if (over_high_water()) {
      note_pause();
      return;  // resume() waits again once the owner is below low_water
    }
    waiting_ = true;
    queue_.async_wait(
        descriptor::wait_read,
        asio::bind_executor(strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec) {
          waiting_ = false;
          if (ended()) return;
          if (ec) return end_failed("wait on " + spec_.name + ": " + ec.message());
          drain();
        }));
  }

  void drain() {
    while (!over_high_water()) {
      unsigned priority = 0;
      const ssize_t n = ::mq_receive(queue_.native_handle(), reinterpret_cast<char*>(buffer_.data()),  // NOLINT
                                     buffer_.size(), &priority);
      if (n < 0) {
        if (errno == EAGAIN) break;
        if (errno == EINTR) continue;
        return end_failed(troupe::detail::errno_text(("mq_receive " + spec_.name).c_str()));
      }
      const auto size = std::min(static_cast<std::size_t>(n), context().options.frames.max_frame);
      if (!deliver_queue_message(std::vector<std::byte>(buffer_.data(), buffer_.data() + size), priority)) return;
    }
    wait_readable();
  }

  void do_write(std::vector<std::byte> bytes) override { do_send_with_priority(std::move(bytes), 0); }

  void do_send_with_priority(std::vector<std::byte> bytes, unsigned priority) override {
    if (spec_.side != fifo_side::write) return end_failed("the read side of a POSIX queue takes no write");
    if (bytes.size() > static_cast<std::size_t>(message_size_)) {
      return end_failed("a message of " + std::to_string(bytes.size()) + " bytes, over the queue's message size of " +
                        std::to_string(message_size_));
    }
    if (queued_bytes_ + bytes.size() > context().options.max_write_queue) {
      return end_failed("write queue over " + std::to_string(context().options.max_write_queue) +
                        " bytes: nobody reads " + spec_.name);
    }
    queued_bytes_ += bytes.size();
    note_queued(static_cast<std::int64_t>(bytes.size()));
    pending_.push_back({std::move(bytes), priority});
    if (!waiting_) send_pending();
  }

  void send_pending() {
    while (!pending_.empty()) {
      auto& [bytes, priority] = pending_.front();
      if (::mq_send(queue_.native_handle(), reinterpret_cast<const char*>(bytes.data()), bytes.size(),  // NOLINT
                    priority) != 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          // The queue is full: wait until the reader makes room.
          waiting_ = true;
          queue_.async_wait(
              descriptor::wait_write,
              asio::bind_executor(strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec) {
                waiting_ = false;
                if (ended()) return;
                if (ec) return end_failed("wait on " + spec_.name + ": " + ec.message());
                send_pending();
              }));
          return;
        }
        return end_failed(troupe::detail::errno_text(("mq_send " + spec_.name).c_str()));
      }
      queued_bytes_ -= bytes.size();
      note_queued(-static_cast<std::int64_t>(bytes.size()));
      note_written(bytes.size());
      pending_.pop_front();
    }
  }

  posix_queue_spec spec_;
  descriptor queue_;
  long message_size_;
  bool created_;
  std::vector<std::byte> buffer_;
  std::deque<std::pair<std::vector<std::byte>, unsigned>> pending_;
  std::size_t queued_bytes_ = 0;
  bool waiting_ = false;
};

class posix_queue_opener final : public endpoint_spec::opener {
 public:
  explicit posix_queue_opener(posix_queue_spec spec) : spec_(std::move(spec)) {}

  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    const std::string& name = spec_.name;
    if (name.size() < 2 || name.front() != '/' || name.find('/', 1) != std::string::npos || name.size() > 255) {
      return error(errc::invalid_request, "'" + name + "' is not a POSIX queue name (one '/', at the start)");
    }
    if (spec_.max_messages <= 0 || spec_.message_size <= 0) {
      return error(errc::invalid_request, "a POSIX queue needs max_messages and message_size above 0");
    }
    const int access = (spec_.side == fifo_side::read ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC;
    bool created = false;
    mqd_t queue = static_cast<mqd_t>(-1);
    if (spec_.create) {
      mq_attr wanted{};
      wanted.mq_maxmsg = spec_.max_messages;
      wanted.mq_msgsize = spec_.message_size;
      queue = ::mq_open(name.c_str(), access | O_CREAT | O_EXCL, static_cast<mode_t>(spec_.mode), &wanted);
      if (queue != static_cast<mqd_t>(-1)) {
        created = true;
      } else if (errno == EINVAL) {
        return error(errc::invalid_request, "mq_open " + name + ": attributes over the system's limits (" +
                                                std::to_string(spec_.max_messages) + " messages of " +
                                                std::to_string(spec_.message_size) +
                                                " bytes; see /proc/sys/fs/mqueue/msg_max and msgsize_max)");
      } else if (errno != EEXIST) {
        return error(errc::invalid_request, troupe::detail::errno_text(("mq_open " + name).c_str()));
      }
    }
    if (!created) {
      queue = ::mq_open(name.c_str(), access);
      if (queue == static_cast<mqd_t>(-1)) {
        return error(errc::invalid_request, troupe::detail::errno_text(("mq_open " + name).c_str()));
      }
    }
    mq_attr actual{};
    ::mq_getattr(queue, &actual);
    if (!created && spec_.create &&
        (actual.mq_maxmsg != spec_.max_messages || actual.mq_msgsize != spec_.message_size)) {
      ::mq_close(queue);
      return error(errc::invalid_request, name + " exists with " + std::to_string(actual.mq_maxmsg) + " messages of " +
                                              std::to_string(actual.mq_msgsize) + " bytes, not the " +
                                              std::to_string(spec_.max_messages) + " of " +
                                              std::to_string(spec_.message_size) + " asked for");
    }
    return std::shared_ptr<endpoint>(
        std::make_shared<posix_queue_endpoint>(io, spec_, queue, actual.mq_msgsize, created));
  }

 private:
  posix_queue_spec spec_;
};

}  // namespace

}  // namespace troupe::ports::detail

namespace troupe::ports {
endpoint_spec posix_queue(posix_queue_spec spec) {
  return endpoint_spec(std::make_shared<detail::posix_queue_opener>(std::move(spec)));
}
}  // namespace troupe::ports
