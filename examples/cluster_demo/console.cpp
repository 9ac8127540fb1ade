#include "console.hpp"

#include <unistd.h>

#include <cstdio>

namespace cluster_demo {

namespace {
// "\r" to the line's start, then erase it (ANSI EL): a shorter line leaves nothing behind.
constexpr const char* clear_line = "\r\033[K";
}  // namespace

void console::event(const std::string& text) {
  char head[24];
  std::snprintf(head, sizeof head, "[%6.2fs] ", elapsed());
  std::lock_guard lock(mutex_);
  if (muted_) return;
  if (tty_ && !live_.empty()) {
    write_locked(clear_line + (head + text) + "\n" + live_);
  } else {
    write_locked(head + text + "\n");
  }
}

void console::progress(const std::string& text) {
  char head[24];
  std::snprintf(head, sizeof head, "[%6.2fs] ", elapsed());
  std::lock_guard lock(mutex_);
  if (tty_) {
    live_ = head + text;
    write_locked(clear_line + live_);
  } else {
    write_locked(head + text + "\n");
  }
}

void console::end_progress() {
  std::lock_guard lock(mutex_);
  if (tty_ && !live_.empty()) write_locked("\n");
  live_.clear();
}

void console::mute_events() {
  std::lock_guard lock(mutex_);
  muted_ = true;
}

void console::print(const std::string& text) {
  std::lock_guard lock(mutex_);
  write_locked(text);
}

void console::write_locked(const std::string& text) {
  // One write() per call: the child processes share this terminal, and a line
  // must not be split by their output (or the runtime's log lines on stderr).
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, text.data() + done, text.size() - done);
    if (n <= 0) return;  // stdout closed: nothing sensible left to do with output
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace cluster_demo
