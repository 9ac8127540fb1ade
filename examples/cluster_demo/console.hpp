// The demo's output: one live progress line and event lines between.
//
// On a terminal the progress line is rewritten in place ('\r'), and an event
// clears it, prints itself on a line of its own and puts the progress line back
// under it. Elsewhere (a pipe, a log, ctest) every progress update is a plain
// line, so the caller updates less often there.
//
// Thread safety: every member from any thread (the main thread prints
// progress; actors print events).
#pragma once

#include <chrono>
#include <mutex>
#include <string>

namespace cluster_demo {

class console {
 public:
  using clock_type = std::chrono::steady_clock;

  explicit console(bool tty) : tty_(tty) {}

  [[nodiscard]] bool tty() const noexcept { return tty_; }
  // Seconds since the demo started.
  [[nodiscard]] double elapsed() const noexcept {
    return std::chrono::duration<double>(clock_type::now() - origin_).count();
  }
  [[nodiscard]] clock_type::time_point origin() const noexcept { return origin_; }

  // "[  5.02s] text" on a line of its own.
  void event(const std::string& text);
  // The live line: rewritten on a terminal, a plain line otherwise.
  void progress(const std::string& text);
  // Ends the live line (a terminal keeps its last state); later output starts on a fresh line.
  void end_progress();
  // Plain text, as is (the summary).
  void print(const std::string& text);
  // Drops later events: what actors report while the demo shuts down is not news.
  void mute_events();

 private:
  void write_locked(const std::string& text);

  const bool tty_;
  const clock_type::time_point origin_ = clock_type::now();
  std::mutex mutex_;
  std::string live_;  // the progress line on screen (terminal only); empty: none
  bool muted_ = false;
};

}  // namespace cluster_demo
