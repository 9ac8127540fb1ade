// program: a child program with its stdin, stdout and stderr as a port
// (Erlang's open_port({spawn_executable, ...})). fork + exec with the pipes
// made before fork; an exec that fails is reported through a close-on-exec
// pipe, so a missing program is an error at open, not a mysterious exit 127.
// The program's end is seen through a pidfd on the reactor (no SIGCHLD handler,
// no thread per child); the port reports it once stdout and stderr are drained.
// Stopping the port kills the program (SIGKILL) and reaps it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

#include "endpoint.hpp"
#include "os/os.hpp"

extern char** environ;

namespace troupe::ports::detail {

namespace {

using troupe::detail::errno_text;
using descriptor = asio::posix::stream_descriptor;

// Raw descriptors until asio owns them; closed here if opening fails half way.
struct fds {
  int value[2] = {-1, -1};
  fds() = default;
  fds(const fds&) = delete;
  fds& operator=(const fds&) = delete;
  ~fds() {
    for (int fd : value)
      if (fd >= 0) ::close(fd);
  }
  int take(int i) noexcept { return std::exchange(value[i], -1); }
};

class program_endpoint final : public endpoint {
 public:
  program_endpoint(reactor& io, pid_t pid, int pidfd, int in, int out, int err)
      : endpoint(io),
        pid_(pid),
        pidfd_(io.context(), pidfd),
        stdin_(io.context(), in),
        stdout_(io.context(), out),
        stderr_(io.context()) {
    if (err >= 0) stderr_.assign(err);
  }
  program_endpoint(const program_endpoint&) = delete;
  program_endpoint& operator=(const program_endpoint&) = delete;
  ~program_endpoint() override {
    // The last handler is gone: make sure the program is not left running or a zombie.
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);  // SIGKILL'd: returns at once
    }
  }

  [[nodiscard]] std::string local_address() const override { return "pid " + std::to_string(pid_); }

 private:
  void begin() override {
    const framing& f = context().options.frames;
    out_reader_.emplace(*this, stdout_, f, channel::output,
                        [this](const boost::system::error_code&) { output_done(); });
    if (stderr_.is_open()) {
      err_reader_.emplace(*this, stderr_, f, channel::errors,
                          [this](const boost::system::error_code&) { output_done(); });
    }
    writer_.emplace(*this, stdin_, [this](const boost::system::error_code&) {
      // The program closed its stdin (or exited): what it does next — its exit
      // status — is the outcome, not this write.
      boost::system::error_code ignored;
      stdin_.close(ignored);
    });
    out_reader_->pump();
    if (err_reader_) err_reader_->pump();
    pidfd_.async_wait(
        descriptor::wait_read,
        asio::bind_executor(strand(), [this, keep = shared_from_this()](const boost::system::error_code& ec) {
          if (ec) return;  // cancelled: the port is closing
          reap();
          finish_if_done();
        }));
  }

  void resume() override {
    if (out_reader_) out_reader_->pump();
    if (err_reader_) err_reader_->pump();
  }

  void do_write(std::vector<std::byte> bytes) override {
    if (stdin_.is_open()) writer_->push(std::move(bytes));
  }

  void do_close_output() override {
    writer_->close_when_done([this] {
      boost::system::error_code ignored;
      stdin_.close(ignored);
    });
  }

  void close_all() noexcept override {
    boost::system::error_code ignored;
    if (!reaped_) ::kill(pid_, SIGKILL);
    stdin_.close(ignored);
    stdout_.close(ignored);
    stderr_.close(ignored);
    // The pidfd wait stays: it reaps the killed program (and keeps this alive
    // until then). If it cannot be started, the destructor reaps instead.
    if (!reaped_) try_reap_later();
  }

  void try_reap_later() noexcept {
    try {
      pidfd_.async_wait(descriptor::wait_read,
                        asio::bind_executor(
                            strand(), [this, keep = shared_from_this()](const boost::system::error_code&) { reap(); }));
    } catch (...) {
      // Out of memory: ~program_endpoint kills and reaps the program instead.
    }
  }

  void reap() {
    if (reaped_) return;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r != pid_) return;
    reaped_ = true;
    if (WIFSIGNALED(status)) {
      status_ = signal{WTERMSIG(status)};
    } else {
      status_ = exit_status{WEXITSTATUS(status)};
    }
  }

  void output_done() { finish_if_done(); }

  // The program's end is reported once it has exited and its output is drained.
  void finish_if_done() {
    if (ended() || !reaped_) return;
    if (out_reader_ && !out_reader_->done()) return;
    if (err_reader_ && !err_reader_->done()) return;
    const program_status status = *status_;
    if (context().sink.on_exit) context().sink.on_exit(child_exited{context().self, status});
    if (const auto* e = std::get_if<exit_status>(&status)) {
      if (e->code == 0) {
        end_with(exit_reason::normal());
      } else {
        end_with(exit_reason::error("exit_status " + std::to_string(e->code), "troupe::ports::exit_status"));
      }
    } else {
      end_with(
          exit_reason::error("signal " + std::to_string(std::get<signal>(status).number), "troupe::ports::signal"));
    }
  }

  pid_t pid_;
  descriptor pidfd_;
  descriptor stdin_;
  descriptor stdout_;
  descriptor stderr_;
  std::optional<stream_reader<descriptor>> out_reader_;
  std::optional<stream_reader<descriptor>> err_reader_;
  std::optional<stream_writer<descriptor>> writer_;
  std::optional<program_status> status_;
  bool reaped_ = false;
};

class program_opener final : public endpoint_spec::opener {
 public:
  explicit program_opener(program_spec spec) : spec_(std::move(spec)) {}

  [[nodiscard]] expected<std::shared_ptr<endpoint>> open(reactor& io) const override {
    if (spec_.argv.empty()) return error(errc::invalid_request, "program: argv is empty");
    // Everything exec needs is built before fork: between fork and exec the
    // child may only make async-signal-safe calls.
    std::vector<std::string> args = spec_.argv;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    fds in, out, err, status;
    if (::pipe2(in.value, O_CLOEXEC) != 0 || ::pipe2(out.value, O_CLOEXEC) != 0 ||
        ::pipe2(status.value, O_CLOEXEC) != 0) {
      return error(errc::invalid_request, errno_text("pipe2"));
    }
    if (spec_.errors == errors_to::owner && ::pipe2(err.value, O_CLOEXEC) != 0) {
      return error(errc::invalid_request, errno_text("pipe2"));
    }
    const char* dir = spec_.working_directory.empty() ? nullptr : spec_.working_directory.c_str();
    const errors_to errors = spec_.errors;
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return error(errc::invalid_request, errno_text("fork"));
    if (pid == 0) {
      // The program dies with this process (also if it is killed -9).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(in.value[0], STDIN_FILENO);
      ::dup2(out.value[1], STDOUT_FILENO);
      if (errors == errors_to::owner) ::dup2(err.value[1], STDERR_FILENO);
      if (errors == errors_to::output) ::dup2(out.value[1], STDERR_FILENO);
      // The reactor threads block SIGPIPE; the program starts with the default.
      sigset_t none;
      sigemptyset(&none);
      ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
      int failed_call = 0;  // 1: chdir, 2: exec
      if (dir != nullptr && ::chdir(dir) != 0) {
        failed_call = 1;
      } else {
        ::execve(argv[0], argv.data(), environ);
        failed_call = 2;
      }
      const int report[2] = {failed_call, errno};
      [[maybe_unused]] const ssize_t ignored = ::write(status.value[1], report, sizeof report);
      ::_exit(127);
    }
    ::close(status.take(1));
    int report[2] = {0, 0};
    ssize_t n;
    do {
      n = ::read(status.value[0], report, sizeof report);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof report)) {
      int ignored = 0;
      ::waitpid(pid, &ignored, 0);
      const std::string call = (report[0] == 1 ? "chdir " + spec_.working_directory : "exec " + spec_.argv[0]);
      errno = report[1];  // the child's errno, for errno_text's thread-safe strerror
      return error(errc::invalid_request, errno_text(call.c_str()));
    }
    troupe::detail::unique_fd pidfd = troupe::detail::open_pidfd(pid);
    if (!pidfd) {
      ::kill(pid, SIGKILL);
      int ignored = 0;
      ::waitpid(pid, &ignored, 0);
      return error(errc::invalid_request, errno_text("pidfd_open"));
    }
    const int pidfd_raw = ::dup(pidfd.get());  // unique_fd cannot hand its descriptor over
    if (pidfd_raw < 0) {
      ::kill(pid, SIGKILL);
      int ignored = 0;
      ::waitpid(pid, &ignored, 0);
      return error(errc::invalid_request, errno_text("dup"));
    }
    ::fcntl(pidfd_raw, F_SETFD, FD_CLOEXEC);
    return std::shared_ptr<endpoint>(std::make_shared<program_endpoint>(io, pid, pidfd_raw, in.take(1), out.take(0),
                                                                        errors == errors_to::owner ? err.take(0) : -1));
  }

 private:
  program_spec spec_;
};

}  // namespace

}  // namespace troupe::ports::detail

namespace troupe::ports {
endpoint_spec program(program_spec spec) {
  return endpoint_spec(std::make_shared<detail::program_opener>(std::move(spec)));
}
endpoint_spec program(std::vector<std::string> argv) {
  program_spec spec;
  spec.argv = std::move(argv);
  return program(std::move(spec));
}
}  // namespace troupe::ports
