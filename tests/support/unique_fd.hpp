// unique_fd: owns one file descriptor of a test helper and closes it exactly once,
// so that an assertion that returns early from a test never leaks a socket, pipe
// or namespace handle into the next test (or into the children it spawns).
//
//   troupe::test_support::unique_fd socket_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
//   if (!socket_fd) ...;               // -1: the call failed, errno says why
//   ::connect(socket_fd.get(), ...);   // closed when socket_fd goes out of scope
//
// Thread safety: like an int; one owner at a time.
#pragma once

#include <unistd.h>

#include <utility>

namespace troupe::test_support {

class unique_fd {
 public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    // close() is not retried on EINTR: on Linux the descriptor is released anyway.
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace troupe::test_support
