// Shared by the durable tests: a scratch directory per test, and a child
// process of this test executable whose stdout is read line by line with a
// deadline (the child roles are in main.cpp).
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/scratch_dir.hpp"
#include "support/unique_fd.hpp"

namespace durable_test {

using troupe::test_support::unique_fd;

// A fresh directory for a test's queue files (tests/support/scratch_dir.hpp).
class scratch_dir : public troupe::test_support::scratch_dir {
 public:
  scratch_dir() : troupe::test_support::scratch_dir("troupe-durable") {}
};

// This executable started as `--child <role> args...`, its stdin and stdout
// pipes held by the test. Killed (and reaped) on destruction if still running.
class child {
 public:
  explicit child(const std::vector<std::string>& args) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) troupe::test_support::throw_errno("pipe2");
    unique_fd in_read(in[0]);
    unique_fd out_write(out[1]);
    stdin_ = unique_fd(in[1]);
    stdout_ = unique_fd(out[0]);
    std::vector<std::string> argv{troupe::test_support::current_executable(), "--child"};
    argv.insert(argv.end(), args.begin(), args.end());
    troupe::test_support::child_options options;
    options.stdin_fd = in_read.get();
    options.stdout_fd = out_write.get();
    pid_ = troupe::test_support::start_child(argv, troupe::test_support::environment_with({}), options);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  ~child() {
    if (pid_ <= 0) return;
    try {
      (void)troupe::test_support::kill_child(pid_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "could not kill child " << pid_ << ": " << e.what();
    }
  }

  // The next line of the child's stdout (without '\n'), or nullopt at EOF or
  // when `timeout` passes first.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      pollfd p{stdout_.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, troupe::test_support::poll_timeout_until(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::read(stdout_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Closes the child's stdin (the roles that wait on it then exit).
  void close_stdin() { stdin_.reset(); }
  // kill -9, reaped; the wait status.
  int kill() { return troupe::test_support::kill_child(std::exchange(pid_, -1)); }
  // The exit's wait status, or nullopt if still running after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::optional<int> status = troupe::test_support::wait_for_exit(pid_, timeout);
    if (status) pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  unique_fd stdin_;
  unique_fd stdout_;
  std::string buffer_;
};

}  // namespace durable_test
