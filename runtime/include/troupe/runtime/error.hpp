// error and expected<T>: how troupe reports a recoverable failure (an ask that
// timed out, a message to an actor that is gone) without exceptions.
//
//   troupe::expected<int> r = counter.ask(get{}, 1s).try_get();
//   if (!r) std::cerr << r.error() << '\n';     // e.g. "timeout: no reply within 1000ms"
//   else use(*r);
#pragma once

#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace troupe {

// Every recoverable failure troupe reports. Values are stable (they may cross the wire).
enum class errc : int {
  ok = 0,
  timeout = 1,          // no reply within the ask's timeout
  actor_down = 2,       // the receiver stopped (normally or not) before replying; text has the reason
  no_such_actor = 3,    // tell() to an actor already gone (an ask reports actor_down, with the exit reason)
  request_dropped = 4,  // the receiver discarded the request without replying
  system_stopped = 5,   // the actor system is shutting down
  would_block = 6,      // a blocking call inside an actor, or a deterministic run with nothing left to do
  mailbox_full = 7,     // a bounded mailbox refused the message
  // Across processes and machines (net/):
  no_such_node = 8,        // no node of that name is reachable (or it is gone)
  no_such_name = 9,        // lookup(): the node has nothing published under that name
  protocol_mismatch = 10,  // the actor speaks another protocol, or a message type's schema differs between nodes
  malformed_message = 11,  // bytes from another process or machine that do not decode
  connection_lost = 12,    // the link to the peer node broke while the operation was in flight
  not_registered = 13,     // remote spawn of an actor type the node has not registered
  peer_overloaded = 14,    // the outbound queue to a peer node is full
  name_in_use = 15,        // another live node on this host has that name
  name_taken = 16,         // publish_global(): another live node holds that cluster-wide name
  // Durable queues and outboxes (net/durable/); numbered from 32, apart from the
  // codes above, so other capabilities can add theirs without renumbering.
  storage_failed =
      32,  // the SQLite file cannot be used: not a database, corrupt, unwritable, disk full; text says which
  storage_locked = 33,   // another process (or connection) holds the SQLite file; retried for the busy timeout first
  queue_full = 34,       // a durable queue is at its configured message or byte limit
  invalid_receipt = 35,  // a receipt handle that is malformed, or whose lease ended (the message became visible again)
  invalid_request = 36,  // a request with a bad parameter (body too large, delay out of range, ...); text says which
  // RPC gateways (net/gateway/): numbered from 48.
  remote_fault = 48,  // an outside RPC service refused or failed the call: an XML-RPC fault, a JSON-RPC
                      // error object, an HTTP error status; text has its code and message
  // Broker bridges (net/bridge/): numbered from 64.
  broker_failed = 64,  // the broker refused or could not take a publish, or the connection to it failed
                       // for good; text has the client library's error name and message
};

const std::error_category& troupe_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), troupe_category()}; }
const char* to_string(errc e) noexcept;

// A failure: a code to branch on and a text for people.
class error {
 public:
  error() = default;
  error(errc code, std::string text) : code_(code), text_(std::move(text)) {}
  explicit error(errc code) : code_(code) {}

  [[nodiscard]] errc code() const noexcept { return code_; }
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const error& a, const error& b) noexcept { return a.code_ == b.code_; }
  friend std::ostream& operator<<(std::ostream& out, const error& e);

 private:
  errc code_ = errc::ok;
  std::string text_;
};

// Thrown by expected<T>::value() and by blocking/awaiting an ask that failed.
class troupe_error : public std::runtime_error {
 public:
  explicit troupe_error(troupe::error e) : std::runtime_error(e.to_string()), error_(std::move(e)) {}
  [[nodiscard]] const troupe::error& error() const noexcept { return error_; }

 private:
  troupe::error error_;
};

// A value or an error. Small on purpose: the subset of C++23 std::expected that
// troupe needs, with the error type fixed to troupe::error.
template <class T>
class [[nodiscard]] expected {
 public:
  using value_type = T;
  expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit like std::expected
  expected(troupe::error e) : state_(std::in_place_index<1>, std::move(e)) {}  // NOLINT
  template <class... Args>
  explicit expected(std::in_place_t, Args&&... args) : state_(std::in_place_index<0>, std::forward<Args>(args)...) {}

  [[nodiscard]] bool has_value() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    check();
    return std::get<0>(state_);
  }
  const T& value() const& {
    check();
    return std::get<0>(state_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(state_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : T(std::forward<U>(fallback));
  }

  [[nodiscard]] const troupe::error& error() const& { return std::get<1>(state_); }

 private:
  void check() const {
    if (!has_value()) throw troupe_error(std::get<1>(state_));
  }
  std::variant<T, troupe::error> state_;
};

template <>
class [[nodiscard]] expected<void> {
 public:
  using value_type = void;
  expected() = default;
  expected(troupe::error e) : error_(std::move(e)) {}  // NOLINT
  [[nodiscard]] bool has_value() const noexcept { return !error_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const {
    if (error_) throw troupe_error(*error_);
  }
  [[nodiscard]] const troupe::error& error() const& { return *error_; }

 private:
  std::optional<troupe::error> error_;
};

}  // namespace troupe

template <>
struct std::is_error_code_enum<troupe::errc> : std::true_type {};
