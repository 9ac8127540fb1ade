// fifo: named pipes. The read side opens the FIFO for writing as well (a
// writer of its own that never writes), so a writer closing is not an EOF:
// the port keeps reading when the next writer opens it. The write side opens
// it read-write too, so opening never fails for want of a reader (ENXIO) and
// never blocks; what is written waits in the pipe for the next reader.
// Create-or-open checks what is there: not a FIFO, or a mode that refuses us,
// is an error at open, never a surprise later.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "endpoint.hpp"
#include "os/os.hpp"

namespace troupe::ports::detail {

namespace {

using descriptor = asio::posix::stream_descriptor;

class fifo_endpoint final : public endpoint {
 public:
  fifo_endpoint(reactor& io, fifo_spec spec, int fd, bool created)
      : endpoint(io), spec_(std::move(spec)), pipe_(io.context(), fd), created_(created) {}
  fifo_endpoint(const fifo_endpoint&) = delete;
  fifo_endpoint& operator=(const fifo_endpoint&) = delete;
  ~fifo_endpoint() override = default;

  [[nodiscard]] std::string local_address() const override { return spec_.path; }

 private:
  void begin() override {
    if (spec_.side == fifo_side::read) {
      reader_.emplace(*this, pipe_, context().options.frames, channel::output,
                      [this](const boost::system::error_code& ec) {
                        // Never EOF (we hold a write end ourselves): only an error ends it.
                        end_failed("read " + spec_.path + ": " + ec.message());
                      });
      reader_->pump();
    } else {
      writer_.emplace(*this, pipe_, [this](const boost::system::error_code& ec) {
        end_failed("write " + spec_.path + ": " + ec.message());
      });
    }
  }
  void resume() override {
    if (reader_) reader_->pump();
  }
  void do_write(std::vector<std::byte> bytes) override {
    if (!writer_) return end_failed("the read side of a FIFO takes no write");
    writer_->push(std::move(bytes));
  }
  // Synchronously, as the port stops: once the owner hears of the port's end
  // the FIFO is gone.
  void stopping() noexcept override {
    if (created_ && spec_.unlink_if_created) ::unlink(spec_.path.c_str());
  }
  void close_all() noexcept override {
    boost::system::error_code ignored;
    pipe_.close(ignored);
  }

  fifo_spec spec_;
  descriptor pipe_;
  bool created_;
  std::optional<stream_reader<descriptor>> reader_;
  std::optional<stream_writer<descriptor>> writer_;
};

class fifo_opener final : public endpoint_spec::opener {
 public:
  explicit fifo_opener(fifo_spec spec) : spec_(std::move(spec)) {}

  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    const std::string& path = spec_.path;
    bool created = false;
    if (spec_.create) {
      if (::mkfifo(path.c_str(), spec_.mode) == 0) {
        created = true;
        ::chmod(path.c_str(), spec_.mode);  // exactly the mode asked for, whatever the umask
      } else if (errno != EEXIST) {
        return error(errc::invalid_request, troupe::detail::errno_text(("mkfifo " + path).c_str()));
      }
    }
    // O_NONBLOCK: opening never waits for the other side; the reactor does the waiting.
    const int fd = ::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      std::string what = troupe::detail::errno_text(("open FIFO " + path).c_str());
      if (created) ::unlink(path.c_str());
      return error(errc::invalid_request, std::move(what));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
      ::close(fd);
      return error(errc::invalid_request, path + " exists and is not a FIFO");
    }
    if (!created && spec_.create && (st.st_mode & 07777) != spec_.mode) {
      ::close(fd);
      return error(errc::invalid_request, path + " exists with mode " + to_octal(st.st_mode & 07777) + ", not the " +
                                              to_octal(spec_.mode) + " asked for");
    }
    return std::shared_ptr<endpoint>(std::make_shared<fifo_endpoint>(io, spec_, fd, created));
  }

 private:
  static std::string to_octal(unsigned mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%04o", mode);
    return text;
  }
  fifo_spec spec_;
};

}  // namespace

}  // namespace troupe::ports::detail

namespace troupe::ports {
endpoint_spec fifo(fifo_spec spec) { return endpoint_spec(std::make_shared<detail::fifo_opener>(std::move(spec))); }
}  // namespace troupe::ports
