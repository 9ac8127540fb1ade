#include <ostream>

#include "troupe/runtime/error.hpp"
#include "troupe/runtime/exit_reason.hpp"

namespace troupe {

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::ok:
      return "ok";
    case errc::timeout:
      return "timeout";
    case errc::actor_down:
      return "actor_down";
    case errc::no_such_actor:
      return "no_such_actor";
    case errc::request_dropped:
      return "request_dropped";
    case errc::system_stopped:
      return "system_stopped";
    case errc::would_block:
      return "would_block";
    case errc::mailbox_full:
      return "mailbox_full";
    case errc::no_such_node:
      return "no_such_node";
    case errc::no_such_name:
      return "no_such_name";
    case errc::protocol_mismatch:
      return "protocol_mismatch";
    case errc::malformed_message:
      return "malformed_message";
    case errc::connection_lost:
      return "connection_lost";
    case errc::not_registered:
      return "not_registered";
    case errc::peer_overloaded:
      return "peer_overloaded";
    case errc::name_in_use:
      return "name_in_use";
    case errc::name_taken:
      return "name_taken";
    case errc::storage_failed:
      return "storage_failed";
    case errc::storage_locked:
      return "storage_locked";
    case errc::queue_full:
      return "queue_full";
    case errc::invalid_receipt:
      return "invalid_receipt";
    case errc::invalid_request:
      return "invalid_request";
    case errc::remote_fault:
      return "remote_fault";
    case errc::broker_failed:
      return "broker_failed";
  }
  return "unknown";
}

namespace {
class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "troupe"; }
  std::string message(int value) const override { return to_string(static_cast<errc>(value)); }
};
}  // namespace

const std::error_category& troupe_category() noexcept {
  static const category instance;
  return instance;
}

std::string error::to_string() const {
  std::string s = troupe::to_string(code_);
  if (!text_.empty()) s += ": " + text_;
  return s;
}

std::ostream& operator<<(std::ostream& out, const error& e) { return out << e.to_string(); }

const char* to_string(exit_reason::kind k) noexcept {
  switch (k) {
    case exit_reason::kind::normal:
      return "normal";
    case exit_reason::kind::shutdown:
      return "shutdown";
    case exit_reason::kind::killed:
      return "killed";
    case exit_reason::kind::error:
      return "error";
    case exit_reason::kind::process_down:
      return "process_down";
    case exit_reason::kind::node_down:
      return "node_down";
  }
  return "unknown";
}

std::string exit_reason::to_string() const {
  std::string s = troupe::to_string(kind_);
  if (!text_.empty()) s += ": " + text_;
  if (!exception_type_.empty()) s += " (" + exception_type_ + ")";
  return s;
}

std::ostream& operator<<(std::ostream& out, const exit_reason& r) { return out << r.to_string(); }

}  // namespace troupe
