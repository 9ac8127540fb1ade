// actor_addr: the address of an actor without its protocol — who a down or exit
// message is about. Comparable with refs (same actor, same address), hashable,
// printable. It cannot send (it does not know what the actor accepts); keep the
// typed ref<P> for that.
//
//   void on(const troupe::down& d) {
//     if (d.who == worker_) std::cout << d.who << " stopped: " << d.reason << '\n';
//   }
//
// Thread safety: like ref<P>, copy and compare from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "troupe/runtime/detail/cell.hpp"
#include "troupe/runtime/ref.hpp"

namespace troupe {

namespace detail {
struct addr_access;
}  // namespace detail

class actor_addr {
 public:
  actor_addr() noexcept = default;
  template <class P>
  actor_addr(const ref<P>& r) noexcept : cell_(detail::ref_access::get(r)) {}  // NOLINT: implicit on purpose

  [[nodiscard]] std::uint64_t id() const noexcept { return cell_ ? cell_->id() : 0; }
  [[nodiscard]] std::string to_string() const { return detail::address_of(cell_.get()); }
  explicit operator bool() const noexcept { return static_cast<bool>(cell_); }

  friend bool operator==(const actor_addr& a, const actor_addr& b) noexcept { return a.cell_ == b.cell_; }
  template <class P>
  friend bool operator==(const actor_addr& a, const ref<P>& r) noexcept {
    return a.cell_.get() == detail::ref_access::get(r);
  }
  friend std::ostream& operator<<(std::ostream& out, const actor_addr& a) { return out << a.to_string(); }

 private:
  friend struct detail::addr_access;
  explicit actor_addr(detail::cell* c) noexcept : cell_(c) {}
  detail::cell_ptr cell_;
};

namespace detail {
// What the runtime (and net/) reach inside an actor_addr; users never name it.
struct addr_access {
  static actor_addr make(cell* c) noexcept { return actor_addr(c); }
  static cell* get(const actor_addr& a) noexcept { return a.cell_.get(); }
};
}  // namespace detail

}  // namespace troupe

template <>
struct std::hash<troupe::actor_addr> {
  std::size_t operator()(const troupe::actor_addr& a) const noexcept { return std::hash<std::uint64_t>{}(a.id()); }
};
