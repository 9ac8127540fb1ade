// shape: what a C++ message type looks like to a protocol that needs a schema
// (gRPC's .proto), derived from the same reflection as the JSON conversion
// (Boost.Describe). Owns the mapping of C++ types to a small set of kinds; knows
// no protocol.
//
//   shape s = shape_of<balance>();   // record "balance" { account: text }
//
// Kinds: bool; signed and unsigned integers of 32 and 64 bits (smaller ones
// widen to 32); floating point (double); std::string (text); std::vector<T>
// (list of T); a described struct
// (record, its public members in declaration order); std::optional<T> (T,
// marked optional); void (none). Anything else is `opaque` (a protocol with a
// schema refuses such a method, naming it).
//
// Thread safety: values; shape_of is a pure function.
#pragma once

#include <boost/describe/members.hpp>
#include <boost/mp11/algorithm.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace troupe::gateway {

template <class M>
constexpr std::string_view type_name() noexcept;

struct shape_field;

struct shape {
  enum class kind { none, boolean, int32, int64, uint32, uint64, floating, text, list, record, opaque };
  kind type = kind::opaque;
  bool optional = false;            // std::optional<T>: may be absent (JSON null)
  std::string name;                 // record: the type's name; opaque: the C++ type as the compiler spells it
  std::vector<shape_field> fields;  // record: the members, in declaration order
  std::vector<shape> element;       // list: exactly one, the element's shape
};

struct shape_field {
  std::string name;
  shape type;
};

namespace detail {
template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_std_optional : std::false_type {};
template <class T>
struct is_std_optional<std::optional<T>> : std::true_type {};

// A record that contains itself (directly or not) would recurse forever; past
// this depth the shape is opaque.
inline constexpr int max_shape_depth = 16;
}  // namespace detail

template <class T>
shape shape_of(int depth = 0) {
  using U = std::remove_cvref_t<T>;
  shape s;
  if (depth > detail::max_shape_depth) {
    s.type = shape::kind::opaque;
    s.name = std::string(type_name<U>());
  } else if constexpr (std::is_void_v<U>) {
    s.type = shape::kind::none;
  } else if constexpr (std::is_same_v<U, bool>) {
    s.type = shape::kind::boolean;
  } else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>) {
    s.type = sizeof(U) <= 4 ? shape::kind::int32 : shape::kind::int64;
  } else if constexpr (std::is_integral_v<U>) {
    s.type = sizeof(U) <= 4 ? shape::kind::uint32 : shape::kind::uint64;
  } else if constexpr (std::is_floating_point_v<U>) {
    s.type = shape::kind::floating;
  } else if constexpr (std::is_same_v<U, std::string>) {
    s.type = shape::kind::text;
  } else if constexpr (detail::is_std_vector<U>::value) {
    s.type = shape::kind::list;
    s.element.push_back(shape_of<typename U::value_type>(depth + 1));
  } else if constexpr (detail::is_std_optional<U>::value) {
    s = shape_of<typename U::value_type>(depth + 1);
    s.optional = true;
  } else if constexpr (boost::describe::has_describe_members<U>::value) {
    s.type = shape::kind::record;
    s.name = std::string(type_name<U>());
    boost::mp11::mp_for_each<boost::describe::describe_members<U, boost::describe::mod_public>>([&](auto d) {
      using member = std::remove_cvref_t<decltype(std::declval<U&>().*d.pointer)>;
      s.fields.push_back(shape_field{d.name, shape_of<member>(depth + 1)});
    });
  } else {
    s.type = shape::kind::opaque;
    s.name = std::string(type_name<U>());
  }
  return s;
}

}  // namespace troupe::gateway
