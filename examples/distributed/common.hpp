// What the nodes (main.cpp) and the --demo launcher (demo.cpp) of the
// distributed example share: the options, the log, and the line-based control
// socket between the demo and its three child processes.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace distributed {

using clock_type = std::chrono::steady_clock;

// The command line (main.cpp has the usage).
struct options {
  bool demo = false;
  std::string name;
  std::string listen;              // a port
  std::vector<std::string> peers;  // ports
  std::string cookie_file;
  std::string runtime_dir;
  int control_fd = -1;  // --demo's children: the socket to the demo
  std::int64_t jobs = 40;
  std::int64_t work_ms = 25;
};

inline std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t at; (at = text.find(separator, start)) != std::string::npos; start = at + 1) {
    parts.push_back(text.substr(start, at - start));
  }
  parts.push_back(text.substr(start));
  return parts;
}

// The log: one write() per line, as the three processes share the terminal.
// Times count from log_origin: the demo's start, in every process.
inline clock_type::time_point log_origin = clock_type::now();

inline void say(const std::string& who, const std::string& text) {
  const double seconds = std::chrono::duration<double>(clock_type::now() - log_origin).count();
  char head[32];
  std::snprintf(head, sizeof head, "%6.3f  %-5s", seconds, who.c_str());
  const std::string line = head + text + "\n";
  [[maybe_unused]] const ssize_t n = ::write(STDOUT_FILENO, line.data(), line.size());
}

// Lines over a socket, each read bounded by a deadline.
class line_channel {
 public:
  explicit line_channel(int fd) : fd_(fd) {}
  [[nodiscard]] int fd() const { return fd_; }
  bool send(const std::string& line) {
    const std::string text = line + "\n";
    return ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  }
  // The next line, or nothing on EOF or at the deadline.
  std::optional<std::string> receive(clock_type::time_point deadline) {
    for (;;) {
      if (auto line = take_line()) return line;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      pollfd p{fd_, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0 || !fill()) return std::nullopt;
    }
  }
  // Reads what is there (after poll said so); false on EOF.
  bool fill() {
    char chunk[512];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  std::optional<std::string> take_line() {
    const auto end = buffer_.find('\n');
    if (end == std::string::npos) return std::nullopt;
    std::string line = buffer_.substr(0, end);
    buffer_.erase(0, end + 1);
    return line;
  }

 private:
  int fd_;
  std::string buffer_;
};

// --demo: starts the three nodes as child processes, kills c halfway, and
// reports (0: the result was exact and everything ended as planned).
int run_demo(const options& o);

}  // namespace distributed
