// protocol<M...>: the typed contract of an actor's mailbox. A ref<P> accepts
// exactly the message types P lists; anything else is a compile error that names
// the protocol and the rejected type. A message type that declares
// `using reply = R;` is a request: ask() on it yields an R.
//
//   struct deposit { std::string account; std::int64_t cents; };
//   struct balance { std::string account; using reply = std::int64_t; };
//   using bank = troupe::protocol<deposit, balance>;
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace troupe {

namespace detail {
template <class M, class... Ms>
constexpr std::uint32_t index_in() noexcept {
  constexpr bool matches[] = {std::is_same_v<M, Ms>..., false};
  for (std::uint32_t i = 0; i < sizeof...(Ms); ++i)
    if (matches[i]) return i;
  return UINT32_MAX;
}
template <class... Ms>
constexpr bool all_distinct() noexcept {
  constexpr std::uint32_t first_index[] = {index_in<Ms, Ms...>()..., 0};
  std::uint32_t i = 0;
  for (std::uint32_t f : first_index) {
    if (i == sizeof...(Ms)) break;
    if (f != i++) return false;
  }
  return true;
}
template <std::size_t I, class... Ms>
struct nth;
template <class M, class... Ms>
struct nth<0, M, Ms...> {
  using type = M;
};
template <std::size_t I, class M, class... Ms>
struct nth<I, M, Ms...> : nth<I - 1, Ms...> {};
}  // namespace detail

template <class... Ms>
struct protocol {
  static_assert((std::is_same_v<Ms, std::remove_cvref_t<Ms>> && ...),
                "troupe::protocol: list message types without const, volatile or references");
  static_assert((std::is_move_constructible_v<Ms> && ...),
                "troupe::protocol: every message type must be move-constructible");
  static_assert(detail::all_distinct<Ms...>(), "troupe::protocol: a message type is listed twice");

  static constexpr std::size_t size = sizeof...(Ms);
  template <class M>
  static constexpr bool contains = detail::index_in<M, Ms...>() != UINT32_MAX;
  template <class M>
  static constexpr std::uint32_t index_of = detail::index_in<M, Ms...>();
  template <std::size_t I>
  using message = typename detail::nth<I, Ms...>::type;
};

template <class T>
struct is_protocol : std::false_type {};
template <class... Ms>
struct is_protocol<protocol<Ms...>> : std::true_type {};
template <class T>
concept a_protocol = is_protocol<T>::value;

// A message type that expects a reply names it: `using reply = R;`.
template <class M>
concept request = requires {
  typename M::reply;
};

template <class M>
struct reply_of {
  using type = void;
};
template <request M>
struct reply_of<M> {
  using type = typename M::reply;
};
template <class M>
using reply_t = typename reply_of<M>::type;

// True when a ref<P> accepts M. For metaprogramming; tell()/ask() themselves
// static_assert so that the error message is readable.
template <class P, class M>
concept accepts = a_protocol<P> && P::template contains<std::remove_cvref_t<M>>;

}  // namespace troupe
