// The codecs behind troupe::encode/decode: one per kind of type, picked at
// compile time. Not user-facing; included by troupe/runtime/serialization.hpp
// after wire_writer, wire_reader and wire_traits are declared (it needs them
// complete), so include that header, not this one.
//
// Every codec (codec_of<T>) answers these questions:
//   valid     is T serializable at all (the serializable concept is just this)
//   bulk      are T's wire bytes exactly its object bytes, with every bit pattern
//             a valid T — then a T, an array of T or a vector of T is one memcpy
//   min_size  the fewest bytes an encoded T can take; a decoded count is checked
//             against it so that a hostile count cannot cause a huge allocation
//   append_schema, encode, decode (decode is only called on a reader that has
//             not failed; it returns false after recording a failure)
// Invalid types get invalid_codec, which has no functions: nothing can be
// instantiated for them, so asking the concept never causes a hard error.
#pragma once

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <boost/pfr/core.hpp>

namespace troupe::detail::serialization {

template <class T>
struct codec_choice;
template <class T>
using codec_of = typename codec_choice<T>::type;

template <class T>
void encode_value(wire_writer& out, const T& value) {
  if constexpr (codec_of<T>::bulk) {
    out.write_bytes(std::addressof(value), sizeof(T));
  } else {
    codec_of<T>::encode(out, value);
  }
}

template <class T>
bool decode_value(wire_reader& in, T& value) {
  if (in.failed()) return false;
  if constexpr (codec_of<T>::bulk) {
    // Safe for bulk types only: every bit pattern is a valid value.
    return in.read_bytes(std::addressof(value), sizeof(T));
  } else {
    return codec_of<T>::decode(in, value);
  }
}

template <class T>
void append_schema(std::string& out) {
  codec_of<T>::append_schema(out);
}

// A varint count of elements, each at least min_element_size bytes on the wire.
inline bool read_count(wire_reader& in, std::size_t& out, std::size_t min_element_size, std::string_view what) {
  std::uint64_t count = 0;
  if (!in.read_varint(count)) return false;
  const std::size_t unit = min_element_size == 0 ? 1 : min_element_size;
  if (count > in.remaining() / unit) {
    std::string text(what);
    text += ' ';
    text += std::to_string(count);
    if (unit > 1) text += " (at least " + std::to_string(unit) + " bytes each)";
    text += " exceeds the " + std::to_string(in.remaining()) + " bytes left";
    in.fail(text);
    return false;
  }
  out = static_cast<std::size_t>(count);
  return true;
}

template <class T>
void encode_elements(wire_writer& out, const T* first, std::size_t count) {
  if constexpr (codec_of<T>::bulk) {
    if (count != 0) out.write_bytes(first, count * sizeof(T));
  } else {
    for (std::size_t i = 0; i < count; ++i) encode_value(out, first[i]);
  }
}

template <class T>
bool decode_elements(wire_reader& in, T* first, std::size_t count) {
  if constexpr (codec_of<T>::bulk) {
    return count == 0 || in.read_bytes(first, count * sizeof(T));
  } else {
    for (std::size_t i = 0; i < count; ++i)
      if (!decode_value(in, first[i])) return false;
    return !in.failed();
  }
}

template <class T>
constexpr void require_default_constructible() noexcept {
  static_assert(std::is_default_constructible_v<T>,
                "troupe::decode: the elements of vectors, maps, sets, optionals and variants must be "
                "default-constructible (decoding fills a default-constructed value)");
}

// ---------------------------------------------------------------- leaves

struct invalid_codec {
  static constexpr bool valid = false;
  static constexpr bool bulk = false;
  static constexpr std::size_t min_size = 0;
};

template <class T>
concept has_wire_traits = requires(wire_writer& out, wire_reader& in, const T& value, T& target) {
  { wire_traits<T>::schema } -> std::convertible_to<std::string_view>;
  wire_traits<T>::encode(out, value);
  { wire_traits<T>::decode(in, target) } -> std::convertible_to<bool>;
};

template <class T>
struct traits_codec {
  static constexpr bool valid = true;
  static constexpr bool bulk = false;
  static constexpr std::size_t min_size = 0;  // unknown; 0 never rejects valid input
  static void append_schema(std::string& out) { out += std::string_view(wire_traits<T>::schema); }
  static void encode(wire_writer& out, const T& value) { wire_traits<T>::encode(out, value); }
  static bool decode(wire_reader& in, T& value) {
    const bool ok = static_cast<bool>(wire_traits<T>::decode(in, value));
    if (!ok && !in.failed()) in.fail("wire_traits<" + std::string(type_name_of<T>()) + ">::decode rejected the input");
    return ok && !in.failed();
  }
};

struct bool_codec {
  static constexpr bool valid = true;
  static constexpr bool bulk = false;  // only 0 and 1 are bools: never memcpy into one
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) { out += "bool"; }
  static void encode(wire_writer& out, bool value) { out.write_scalar(value); }
  static bool decode(wire_reader& in, bool& value) { return in.read_scalar(value); }
};

template <class T>
constexpr bool is_wire_scalar() noexcept {
  if constexpr (!std::is_arithmetic_v<T> || std::is_same_v<T, bool> || std::is_same_v<T, long double>) {
    return false;  // bool has its own codec; long double is the x87 format with padding
  } else {
    return sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8;
  }
}

// Integers, characters and IEEE floats: fixed width, little endian, every bit
// pattern valid, so always bulk (encode_value/decode_value copy them).
template <class T>
struct scalar_codec {
  static constexpr bool valid = true;
  static constexpr bool bulk = true;
  static constexpr std::size_t min_size = sizeof(T);
  static void append_schema(std::string& out) {
    if constexpr (std::is_same_v<T, char>)
      out += "char";
    else if constexpr (std::is_same_v<T, wchar_t>)
      out += "wchar";
    else if constexpr (std::is_same_v<T, char8_t>)
      out += "char8";
    else if constexpr (std::is_same_v<T, char16_t>)
      out += "char16";
    else if constexpr (std::is_same_v<T, char32_t>)
      out += "char32";
    else {
      out += std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
      out += std::to_string(sizeof(T) * 8);
    }
  }
};

// An enum travels as its underlying type, with no range check. Only enums with a
// fixed underlying type qualify: for those every value of the underlying type
// is a valid enum value, so no wire value can be undefined behaviour.
template <class E>
concept fixed_enum = std::is_enum_v<E> && requires {
  E{std::underlying_type_t<E>{}};
};

template <class E>
struct enum_codec {
  using underlying = std::underlying_type_t<E>;
  static constexpr bool valid = codec_of<underlying>::valid;
  static constexpr bool bulk = codec_of<underlying>::bulk;
  static constexpr std::size_t min_size = sizeof(underlying);
  static void append_schema(std::string& out) {
    out += "enum ";
    out += type_name_of<E>();
    out += ':';
    serialization::append_schema<underlying>(out);
  }
  static void encode(wire_writer& out, E value) { encode_value(out, static_cast<underlying>(value)); }
  static bool decode(wire_reader& in, E& value) {
    underlying raw{};
    if (!decode_value(in, raw)) return false;
    value = static_cast<E>(raw);
    return true;
  }
};

// ---------------------------------------------------------------- standard library types

// Specialized below for each supported standard template.
template <class T>
struct std_codec {
  static constexpr bool is_std = false;
};

struct std_codec_base {
  static constexpr bool is_std = true;
  static constexpr bool bulk = false;
};

template <class... Ts>
void append_schema_list(std::string& out) {
  bool first = true;
  ((out += first ? "" : ",", first = false, serialization::append_schema<Ts>(out)), ...);
}

template <class Alloc>
struct std_codec<std::basic_string<char, std::char_traits<char>, Alloc>> : std_codec_base {
  using type = std::basic_string<char, std::char_traits<char>, Alloc>;
  static constexpr bool valid = true;
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) { out += "string"; }
  static void encode(wire_writer& out, const type& value) {
    out.write_varint(value.size());
    out.write_bytes(value.data(), value.size());
  }
  static bool decode(wire_reader& in, type& value) {
    std::size_t size = 0;
    if (!read_count(in, size, 1, "string length") || !in.charge(size, 1)) return false;  // before allocating
    value.resize(size);
    return size == 0 || in.read_bytes(value.data(), size);
  }
};

template <class T, class Alloc>
struct std_codec<std::vector<T, Alloc>> : std_codec_base {
  using type = std::vector<T, Alloc>;
  static constexpr bool valid = codec_of<T>::valid;
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) {
    out += "vector<";
    serialization::append_schema<T>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const type& value) {
    out.write_varint(value.size());
    if constexpr (std::is_same_v<T, bool>) {
      for (bool element : value) out.write_scalar(element);
    } else {
      encode_elements(out, value.data(), value.size());
    }
  }
  static bool decode(wire_reader& in, type& value) {
    require_default_constructible<T>();
    std::size_t size = 0;
    if (!read_count(in, size, codec_of<T>::min_size, "vector size")) return false;
    if (!in.charge(size, std::is_same_v<T, bool> ? 1 : sizeof(T))) return false;
    if constexpr (std::is_same_v<T, bool>) {
      value.clear();
      value.reserve(size);
      for (std::size_t i = 0; i < size; ++i) {
        bool element = false;
        if (!in.read_scalar(element)) return false;
        value.push_back(element);
      }
      return true;
    } else if constexpr (codec_of<T>::bulk) {
      value.resize(size);  // size * sizeof(T) <= remaining(): justified by the input
      return decode_elements(in, value.data(), size);
    } else {
      value.clear();
      value.reserve(size);
      for (std::size_t i = 0; i < size; ++i)
        if (!decode_value(in, value.emplace_back())) return false;
      return true;
    }
  }
};

template <class T, std::size_t N>
struct array_codec {
  static constexpr bool valid = codec_of<T>::valid;
  static constexpr std::size_t min_size = N * codec_of<T>::min_size;
  static void append_schema(std::string& out) {
    out += "array<";
    serialization::append_schema<T>(out);
    out += ',';
    out += std::to_string(N);
    out += '>';
  }
};

template <class T, std::size_t N>
struct std_codec<std::array<T, N>> : std_codec_base, array_codec<T, N> {
  static constexpr bool bulk = N != 0 && codec_of<T>::bulk && sizeof(std::array<T, N>) == N * sizeof(T);
  static void encode(wire_writer& out, const std::array<T, N>& value) { encode_elements(out, value.data(), N); }
  static bool decode(wire_reader& in, std::array<T, N>& value) { return decode_elements(in, value.data(), N); }
};

// C arrays: the same wire form and schema as std::array.
template <class T, std::size_t N>
struct c_array_codec : array_codec<T, N> {
  static constexpr bool bulk = codec_of<T>::bulk;
  static void encode(wire_writer& out, const T (&value)[N]) { encode_elements(out, &value[0], N); }
  static bool decode(wire_reader& in, T (&value)[N]) { return decode_elements(in, &value[0], N); }
};

// Maps and sets: a count, then the elements. std::map and std::unordered_map
// share a wire form, so they share a schema ("map<K,V>"); likewise for sets.
// A repeated key is rejected, so a decoded container holds every element sent.
template <class Map, class Key, class Value>
struct map_codec : std_codec_base {
  static constexpr bool valid = codec_of<Key>::valid && codec_of<Value>::valid;
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) {
    out += "map<";
    append_schema_list<Key, Value>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const Map& value) {
    out.write_varint(value.size());
    for (const auto& [key, mapped] : value) {
      encode_value(out, key);
      encode_value(out, mapped);
    }
  }
  static bool decode(wire_reader& in, Map& value) {
    require_default_constructible<Key>();
    require_default_constructible<Value>();
    std::size_t size = 0;
    if (!read_count(in, size, codec_of<Key>::min_size + codec_of<Value>::min_size, "map size")) return false;
    // A node or bucket entry per element, besides the key and value themselves.
    if (!in.charge(size, sizeof(Key) + sizeof(Value) + 4 * sizeof(void*))) return false;
    value.clear();
    if constexpr (requires { value.reserve(size); }) value.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      Key key{};
      Value mapped{};
      if (!decode_value(in, key) || !decode_value(in, mapped)) return false;
      const std::size_t before = value.size();
      value.emplace_hint(value.end(), std::move(key), std::move(mapped));  // O(1) for sorted input
      if (value.size() == before) {
        in.fail("map holds a key twice");
        return false;
      }
    }
    return true;
  }
};

template <class Set, class Key>
struct set_codec : std_codec_base {
  static constexpr bool valid = codec_of<Key>::valid;
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) {
    out += "set<";
    serialization::append_schema<Key>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const Set& value) {
    out.write_varint(value.size());
    for (const auto& key : value) encode_value(out, key);
  }
  static bool decode(wire_reader& in, Set& value) {
    require_default_constructible<Key>();
    std::size_t size = 0;
    if (!read_count(in, size, codec_of<Key>::min_size, "set size")) return false;
    if (!in.charge(size, sizeof(Key) + 4 * sizeof(void*))) return false;
    value.clear();
    if constexpr (requires { value.reserve(size); }) value.reserve(size);
    for (std::size_t i = 0; i < size; ++i) {
      Key key{};
      if (!decode_value(in, key)) return false;
      const std::size_t before = value.size();
      value.emplace_hint(value.end(), std::move(key));
      if (value.size() == before) {
        in.fail("set holds a key twice");
        return false;
      }
    }
    return true;
  }
};

template <class K, class V, class C, class A>
struct std_codec<std::map<K, V, C, A>> : map_codec<std::map<K, V, C, A>, K, V> {};
template <class K, class V, class H, class E, class A>
struct std_codec<std::unordered_map<K, V, H, E, A>> : map_codec<std::unordered_map<K, V, H, E, A>, K, V> {};
template <class K, class C, class A>
struct std_codec<std::set<K, C, A>> : set_codec<std::set<K, C, A>, K> {};
template <class K, class H, class E, class A>
struct std_codec<std::unordered_set<K, H, E, A>> : set_codec<std::unordered_set<K, H, E, A>, K> {};

template <class T>
struct std_codec<std::optional<T>> : std_codec_base {
  static constexpr bool valid = codec_of<T>::valid;
  static constexpr std::size_t min_size = 1;
  static void append_schema(std::string& out) {
    out += "optional<";
    serialization::append_schema<T>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const std::optional<T>& value) {
    out.write_scalar(static_cast<std::uint8_t>(value.has_value() ? 1 : 0));
    if (value) encode_value(out, *value);
  }
  static bool decode(wire_reader& in, std::optional<T>& value) {
    require_default_constructible<T>();
    std::uint8_t flag = 0;
    if (!in.read_scalar(flag)) return false;
    if (flag == 0) {
      value.reset();
      return true;
    }
    if (flag != 1) {
      in.fail("optional flag " + std::to_string(flag) + " is neither 0 nor 1");
      return false;
    }
    return decode_value(in, value.emplace());
  }
};

template <class... Ts>
struct std_codec<std::variant<Ts...>> : std_codec_base {
  using type = std::variant<Ts...>;
  static constexpr bool valid = (codec_of<Ts>::valid && ...);
  static constexpr std::size_t min_size = [] {
    std::size_t smallest = SIZE_MAX;
    ((smallest = codec_of<Ts>::min_size < smallest ? codec_of<Ts>::min_size : smallest), ...);
    return 1 + smallest;  // the index is a varint: at least one byte
  }();
  static void append_schema(std::string& out) {
    out += "variant<";
    append_schema_list<Ts...>(out);
    out += '>';
  }
  // A valueless_by_exception variant cannot be sent: std::bad_variant_access.
  static void encode(wire_writer& out, const type& value) {
    if (value.valueless_by_exception()) throw std::bad_variant_access();
    out.write_varint(value.index());
    std::visit([&out](const auto& alternative) { encode_value(out, alternative); }, value);
  }
  template <std::size_t I>
  static bool decode_alternative(wire_reader& in, type& value) {
    using alternative = std::variant_alternative_t<I, type>;
    require_default_constructible<alternative>();
    return decode_value(in, value.template emplace<I>());
  }
  static bool decode(wire_reader& in, type& value) {
    using decoder = bool (*)(wire_reader&, type&);
    static constexpr auto decoders = []<std::size_t... I>(std::index_sequence<I...>) {
      return std::array<decoder, sizeof...(Ts)>{&decode_alternative<I>...};
    }
    (std::index_sequence_for<Ts...>{});
    std::uint64_t index = 0;
    if (!in.read_varint(index)) return false;
    if (index >= sizeof...(Ts)) {
      in.fail("variant index " + std::to_string(index) + " is out of range for " + std::to_string(sizeof...(Ts)) +
              " alternatives");
      return false;
    }
    return decoders[static_cast<std::size_t>(index)](in, value);
  }
};

// Pairs and tuples: the elements in order. A pair is a tuple of two, on the
// wire and in the schema.
template <class Tuple, class... Ts>
struct tuple_codec : std_codec_base {
  static constexpr bool valid = (codec_of<Ts>::valid && ...);
  static constexpr std::size_t min_size = (std::size_t{0} + ... + codec_of<Ts>::min_size);
  static void append_schema(std::string& out) {
    out += "tuple<";
    append_schema_list<Ts...>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const Tuple& value) {
    std::apply([&](const auto&... element) { (encode_value(out, element), ...); }, value);
  }
  static bool decode(wire_reader& in, Tuple& value) {
    return std::apply([&](auto&... element) { return (decode_value(in, element) && ...); }, value);
  }
};

template <class A, class B>
struct std_codec<std::pair<A, B>> : tuple_codec<std::pair<A, B>, A, B> {};
template <class... Ts>
struct std_codec<std::tuple<Ts...>> : tuple_codec<std::tuple<Ts...>, Ts...> {};

template <class Rep, class Period>
struct std_codec<std::chrono::duration<Rep, Period>> : std_codec_base {
  using type = std::chrono::duration<Rep, Period>;
  static constexpr bool valid = codec_of<Rep>::valid;
  static constexpr bool bulk = codec_of<Rep>::bulk && sizeof(type) == sizeof(Rep) && std::is_trivially_copyable_v<type>;
  static constexpr std::size_t min_size = codec_of<Rep>::min_size;
  static void append_schema(std::string& out) {
    out += "duration<";
    serialization::append_schema<Rep>(out);
    out += ',' + std::to_string(Period::num) + '/' + std::to_string(Period::den) + '>';
  }
  static void encode(wire_writer& out, const type& value) { encode_value(out, value.count()); }
  static bool decode(wire_reader& in, type& value) {
    Rep count{};
    if (!decode_value(in, count)) return false;
    value = type(count);
    return true;
  }
};

template <class Clock, class Duration>
struct std_codec<std::chrono::time_point<Clock, Duration>> : std_codec_base {
  using type = std::chrono::time_point<Clock, Duration>;
  static constexpr bool valid = codec_of<Duration>::valid;
  static constexpr bool bulk =
      codec_of<Duration>::bulk && sizeof(type) == sizeof(Duration) && std::is_trivially_copyable_v<type>;
  static constexpr std::size_t min_size = codec_of<Duration>::min_size;
  static void append_schema(std::string& out) {
    out += "time_point<";
    // Spelled out: the compilers' names for these carry an inline namespace.
    if constexpr (std::is_same_v<Clock, std::chrono::system_clock>)
      out += "system_clock";
    else if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>)
      out += "steady_clock";
    else
      out += type_name_of<Clock>();
    out += ',';
    serialization::append_schema<Duration>(out);
    out += '>';
  }
  static void encode(wire_writer& out, const type& value) { encode_value(out, value.time_since_epoch()); }
  static bool decode(wire_reader& in, type& value) {
    Duration since_epoch{};
    if (!decode_value(in, since_epoch)) return false;
    value = type(since_epoch);
    return true;
  }
};

template <>
struct std_codec<std::monostate> : std_codec_base {
  static constexpr bool valid = true;
  static constexpr std::size_t min_size = 0;
  static void append_schema(std::string& out) { out += "monostate"; }
  static void encode(wire_writer&, std::monostate) {}
  static bool decode(wire_reader&, std::monostate&) { return true; }
};

// ---------------------------------------------------------------- aggregates (Boost.PFR)

// Aggregates are taken apart with Boost.PFR's structured-binding layer
// (boost::pfr::detail::tie_as_tuple with an explicit field count), not its
// public API, because the public API counts fields itself: that count stops
// compilation with a static_assert on types it cannot reflect, and crashes GCC 12
// (an internal compiler error) on a struct holding a std::array of strings. So
// we count fields with probes of our own, which also screen out what PFR cannot
// reflect, and hand PFR the count. Boost is pinned at 1.81 (DESIGN.md); the two
// names used have been stable since PFR 1.0.

// Converts to any field type: a stand-in for "some value" in aggregate
// initialisation. Declared only (used in unevaluated contexts); by value, so
// that move-only fields accept it too.
struct any_field {
  template <class U>
  operator U() const noexcept;  // NOLINT: implicit on purpose
};
template <std::size_t>
using any_field_at = any_field;

// Converts only to a base class of T: T{base_probe<T>{}} compiles exactly when
// T's first element is a base class (C++17 aggregates may have bases).
template <class T>
struct base_probe {
  // (clang-format 14 would join the requires-clause to the declaration)
  // clang-format off
  template <class U>
    requires(std::is_base_of_v<U, T> && !std::is_same_v<U, T>)
  // clang-format on
  operator U() const noexcept;  // NOLINT: implicit on purpose
};

template <class T, std::size_t... I>
constexpr bool initializable_with(std::index_sequence<I...>) noexcept {
  return requires { T{any_field_at<I>{}...}; };
}
// The most initialisers T{x, x, ...} accepts: the field count, except that brace
// elision counts a C array field of length K as K.
template <class T, std::size_t N = 0>
constexpr std::size_t flat_field_count() noexcept {
  if constexpr (N > sizeof(T) * 8 || !initializable_with<T>(std::make_index_sequence<N + 1>{})) {
    return N;
  } else {
    return flat_field_count<T, N + 1>();
  }
}

// Structured bindings cannot take a C array field of length K > 1 as K fields.
// A `{}` at the position where such an array starts initialises the whole
// array, so with N = flat_field_count<T>() the initialiser T{x, ..., {}, ..., x}
// (N in all) stops compiling there.
template <class T, std::size_t... Before, std::size_t... After>
constexpr bool braces_fit_at(std::index_sequence<Before...>, std::index_sequence<After...>) noexcept {
  return requires { T{any_field_at<Before>{}..., {}, any_field_at<After>{}...}; };
}
template <class T, std::size_t N, std::size_t... P>
constexpr bool no_multi_element_c_array(std::index_sequence<P...>) noexcept {
  return (braces_fit_at<T>(std::make_index_sequence<P>{}, std::make_index_sequence<N - P - 1>{}) && ...);
}

inline constexpr std::size_t max_fields = 100;  // what boost/pfr/detail/core17_generated.hpp handles

template <class T>
constexpr bool reflectable_aggregate() noexcept {
  // Move-assignable rules out const and reference members; movable rules out
  // mutexes and atomics.
  if constexpr (!std::is_class_v<T> || !std::is_aggregate_v<T> || std::is_polymorphic_v<T> ||
                !std::is_move_constructible_v<T> || !std::is_move_assignable_v<T>) {
    return false;
  } else if constexpr (requires { T{base_probe<T>{}}; }) {
    return false;
  } else {
    constexpr std::size_t fields = flat_field_count<T>();
    if constexpr (fields > max_fields) {
      return false;
    } else {
      return no_multi_element_c_array<T, fields>(std::make_index_sequence<fields>{});
    }
  }
}

// References to the fields of an aggregate, in declaration order.
template <class T>
constexpr auto tie_fields(T& value) noexcept {
  return boost::pfr::detail::tie_as_tuple(
      value, std::integral_constant<std::size_t, flat_field_count<std::remove_const_t<T>>()>{});
}
template <std::size_t I, class Tied>
constexpr decltype(auto) get_field(Tied& tied) noexcept {
  return boost::pfr::detail::sequence_tuple::get<I>(tied);
}

template <class T>
struct aggregate_codec {
  static constexpr std::size_t field_count = flat_field_count<T>();
  template <std::size_t I>
  using field =
      std::remove_reference_t<decltype(get_field<I>(std::declval<decltype(tie_fields(std::declval<T&>()))&>()))>;

  template <std::size_t... I>
  static constexpr bool all_valid(std::index_sequence<I...>) noexcept {
    return (codec_of<field<I>>::valid && ...);
  }
  template <std::size_t... I>
  static constexpr bool tightly_packed_bulk(std::index_sequence<I...>) noexcept {
    return (codec_of<field<I>>::bulk && ...) && (std::size_t{0} + ... + sizeof(field<I>)) == sizeof(T);
  }
  template <std::size_t... I>
  static constexpr std::size_t sum_min_size(std::index_sequence<I...>) noexcept {
    return (std::size_t{0} + ... + codec_of<field<I>>::min_size);
  }
  template <std::size_t... I>
  static void append_field_schemas(std::string& out, std::index_sequence<I...>) {
    append_schema_list<field<I>...>(out);
  }
  template <std::size_t... I>
  static void encode_fields(wire_writer& out, const T& value, std::index_sequence<I...>) {
    [[maybe_unused]] const auto tied = tie_fields(value);
    (encode_value(out, get_field<I>(tied)), ...);
  }
  template <std::size_t... I>
  static bool decode_fields(wire_reader& in, T& value, std::index_sequence<I...>) {
    [[maybe_unused]] auto tied = tie_fields(value);
    return (decode_value(in, get_field<I>(tied)) && ...);
  }

  static constexpr bool valid = all_valid(std::make_index_sequence<field_count>{});
  // No padding (the field sizes add up to the struct's) and bulk fields: the
  // object bytes are the fields' wire bytes in declaration order, so one memcpy
  // does it and never copies uninitialised padding.
  static constexpr bool bulk = field_count != 0 && valid && std::is_trivially_copyable_v<T> &&
                               tightly_packed_bulk(std::make_index_sequence<field_count>{});
  static constexpr std::size_t min_size = sum_min_size(std::make_index_sequence<field_count>{});

  static void append_schema(std::string& out) {
    out += type_name_of<T>();
    out += '{';
    append_field_schemas(out, std::make_index_sequence<field_count>{});
    out += '}';
  }
  static void encode(wire_writer& out, const T& value) {
    encode_fields(out, value, std::make_index_sequence<field_count>{});
  }
  static bool decode(wire_reader& in, T& value) {
    return decode_fields(in, value, std::make_index_sequence<field_count>{});
  }
};

// ---------------------------------------------------------------- choosing a codec

template <class T>
constexpr auto choose_codec() noexcept {
  if constexpr (!std::is_same_v<T, std::remove_cvref_t<T>>) {
    return std::type_identity<invalid_codec>{};  // const fields cannot be decoded into; references are not values
  } else if constexpr (has_wire_traits<T>) {
    return std::type_identity<traits_codec<T>>{};
  } else if constexpr (std::is_same_v<T, bool>) {
    return std::type_identity<bool_codec>{};
  } else if constexpr (is_wire_scalar<T>()) {
    return std::type_identity<scalar_codec<T>>{};
  } else if constexpr (std::is_enum_v<T>) {
    if constexpr (fixed_enum<T>)
      return std::type_identity<enum_codec<T>>{};
    else
      return std::type_identity<invalid_codec>{};
  } else if constexpr (std_codec<T>::is_std) {
    return std::type_identity<std_codec<T>>{};
  } else if constexpr (std::is_bounded_array_v<T>) {
    return std::type_identity<c_array_codec<std::remove_extent_t<T>, std::extent_v<T>>>{};
  } else if constexpr (reflectable_aggregate<T>()) {
    return std::type_identity<aggregate_codec<T>>{};
  } else {
    return std::type_identity<invalid_codec>{};
  }
}

template <class T>
struct codec_choice {
  using type = typename decltype(choose_codec<T>())::type;
};

}  // namespace troupe::detail::serialization
