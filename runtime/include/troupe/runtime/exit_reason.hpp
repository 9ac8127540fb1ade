// exit_reason: why an actor stopped. Printable, comparable, and carried to
// everyone who cares (a pending ask fails with it; later, monitors and links).
//
//   troupe::exit_reason r = troupe::exit_reason::error("bad input", "std::invalid_argument");
//   std::cout << r;                 // "error: bad input (std::invalid_argument)"
//   if (r.is_normal()) ...
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace troupe {

class exit_reason {
 public:
  enum class kind : std::uint8_t {
    normal,        // the actor called stop() or finished
    shutdown,      // its system (or a supervisor) shut it down
    killed,        // stopped without running on_stop
    error,         // a handler threw; text() and exception_type() say what
    process_down,  // the process hosting it died (cross-process transports)
    node_down,     // the machine/node hosting it became unreachable
  };

  exit_reason() = default;
  static exit_reason normal() { return exit_reason(kind::normal, {}, {}); }
  static exit_reason shutdown() { return exit_reason(kind::shutdown, {}, {}); }
  static exit_reason killed() { return exit_reason(kind::killed, {}, {}); }
  static exit_reason error(std::string text, std::string exception_type = {}) {
    return exit_reason(kind::error, std::move(text), std::move(exception_type));
  }
  static exit_reason process_down(std::string text = {}) {
    return exit_reason(kind::process_down, std::move(text), {});
  }
  static exit_reason node_down(std::string text = {}) { return exit_reason(kind::node_down, std::move(text), {}); }

  [[nodiscard]] kind what() const noexcept { return kind_; }
  [[nodiscard]] bool is_normal() const noexcept { return kind_ == kind::normal; }
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] const std::string& exception_type() const noexcept { return exception_type_; }
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const exit_reason&, const exit_reason&) = default;
  friend std::ostream& operator<<(std::ostream& out, const exit_reason& r);

 private:
  exit_reason(kind k, std::string text, std::string exception_type)
      : kind_(k), text_(std::move(text)), exception_type_(std::move(exception_type)) {}

  kind kind_ = kind::normal;
  std::string text_;
  std::string exception_type_;
};

const char* to_string(exit_reason::kind k) noexcept;

}  // namespace troupe
