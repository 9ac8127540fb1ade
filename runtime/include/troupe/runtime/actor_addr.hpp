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

class actor_addr {
 public:
  actor_addr() noexcept = default;
  template <class P>
  actor_addr(const ref<P>& r) noexcept : cell_(detail::ref_access::get(r)) {}  // NOLINT: implicit on purpose
  explicit actor_addr(detail::cell* c) noexcept : cell_(c) {}

  [[nodiscard]] std::uint64_t id() const noexcept { return cell_ ? cell_->id() : 0; }
  [[nodiscard]] std::string to_string() const { return detail::address_of(cell_.get()); }
  explicit operator bool() const noexcept { return static_cast<bool>(cell_); }
  [[nodiscard]] detail::cell* cell() const noexcept { return cell_.get(); }

  friend bool operator==(const actor_addr& a, const actor_addr& b) noexcept { return a.cell_ == b.cell_; }
  template <class P>
  friend bool operator==(const actor_addr& a, const ref<P>& r) noexcept {
    return a.cell_.get() == detail::ref_access::get(r);
  }
  friend std::ostream& operator<<(std::ostream& out, const actor_addr& a) { return out << a.to_string(); }

 private:
  detail::cell_ptr cell_;
};

}  // namespace troupe

template <>
struct std::hash<troupe::actor_addr> {
  std::size_t operator()(const troupe::actor_addr& a) const noexcept { return std::hash<std::uint64_t>{}(a.id()); }
};
