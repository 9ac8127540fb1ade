// The message types fuzz_messages decodes, one or more per kind that
// troupe/runtime/serialization.hpp supports, and the protocol whose codec table
// it drives. Shared with make_seeds.cpp, which writes a valid encoding of each.
//
//   using T = std::tuple_element_t<i, troupe::fuzz::message_cases>::type;
//   auto value = troupe::from_bytes<T>(bytes);
//   troupe::detail::protocol_table_of<troupe::fuzz::fuzz_protocol>().messages[j].decode(...);
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

// Before serialization.hpp is asked about ref<P>: its wire_traits live here.
#include <troupe/net/detail/remote.hpp>
#include <troupe/runtime/protocol.hpp>
#include <troupe/runtime/ref.hpp>
#include <troupe/runtime/serialization.hpp>

namespace troupe::fuzz {

enum class color : std::uint8_t { red, green, blue };
enum class level : std::int64_t { low = -1, high = 1 };  // any i64 is a level: no range check

// Padding-free and trivially copyable: one memcpy (the bulk fast path).
struct point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  friend bool operator==(const point&, const point&) = default;
};
static_assert(troupe::detail::serialization::codec_of<point>::bulk);

// Bulk with floats. Equal means bitwise equal: a NaN survives a round trip,
// though NaN != NaN.
struct sample {
  double value = 0;
  float weight = 0;
  std::uint32_t tag = 0;
  friend bool operator==(const sample& a, const sample& b) noexcept {
    using object_bytes = std::array<std::byte, sizeof(sample)>;
    return std::bit_cast<object_bytes>(a) == std::bit_cast<object_bytes>(b);
  }
};
static_assert(troupe::detail::serialization::codec_of<sample>::bulk);

// Padding: field by field, never one memcpy.
struct padded {
  char tag = 0;
  std::int32_t value = 0;
  friend bool operator==(const padded&, const padded&) = default;
};
static_assert(!troupe::detail::serialization::codec_of<padded>::bulk);

// A class with an invariant (cents in 0..99), serialized by wire_traits.
class money {
 public:
  money() = default;
  money(std::int64_t units, std::int32_t cents) noexcept : units_(units), cents_(cents) {}
  [[nodiscard]] std::int64_t units() const noexcept { return units_; }
  [[nodiscard]] std::int32_t cents() const noexcept { return cents_; }
  friend bool operator==(const money&, const money&) = default;

 private:
  std::int64_t units_ = 0;
  std::int32_t cents_ = 0;
};

}  // namespace troupe::fuzz

template <>
struct troupe::wire_traits<troupe::fuzz::money> {
  static constexpr std::string_view schema = "money{i64,i32}";
  static void encode(troupe::wire_writer& out, const troupe::fuzz::money& m) {
    out.write_scalar(m.units());
    out.write_scalar(m.cents());
  }
  static bool decode(troupe::wire_reader& in, troupe::fuzz::money& m) {
    std::int64_t units = 0;
    std::int32_t cents = 0;
    if (!in.read_scalar(units) || !in.read_scalar(cents)) return false;
    if (cents < 0 || cents > 99) return false;  // the codec records a failure for us
    m = troupe::fuzz::money(units, cents);
    return true;
  }
};

namespace troupe::fuzz {

// A nested aggregate touching most kinds at once.
struct order {
  std::uint64_t id = 0;
  bool urgent = false;
  color tint = color::red;
  std::string customer;
  std::vector<point> route;
  std::optional<std::string> note;
  std::map<std::string, std::int64_t> lines;
  std::set<std::uint16_t> tags;
  std::variant<std::monostate, std::int32_t, std::string, point> extra;
  std::pair<std::int8_t, std::uint64_t> window;
  std::tuple<bool, std::string, std::array<std::uint8_t, 4>> meta;
  std::chrono::milliseconds timeout{0};
  std::chrono::system_clock::time_point placed{};
  money total;
  friend bool operator==(const order&, const order&) = default;
};

// A ref inside a message: outside a node only the null ref decodes ("a ref can
// only be deserialized by a troupe::node").
struct ping {
  std::uint64_t sequence = 0;
  friend bool operator==(const ping&, const ping&) = default;
};
using pinger = troupe::protocol<ping>;
struct with_ref {
  std::string label;
  troupe::ref<pinger> target;
  friend bool operator==(const with_ref&, const with_ref&) = default;
};

// A request: its envelope carries a reply slot (empty here: request id 0).
struct lookup {
  std::string key;
  using reply = std::optional<std::int64_t>;
  friend bool operator==(const lookup&, const lookup&) = default;
};

using fuzz_protocol = troupe::protocol<point, order, with_ref, lookup>;

// How much of the input a successful decode pins down:
//   exact      every value has one encoding: re-encoding gives the input back
//   normalized map and set keys may come in any order, and a null ref ignores
//              its other address fields: the re-encoding is the normal form
//              (it decodes to an equal value and re-encodes to itself)
//   unordered  unordered containers: the same size, and an equal value
enum class bytes_check { exact, normalized, unordered };

template <class T, bytes_check Check = bytes_check::exact>
struct message_case {
  using type = T;
  static constexpr bytes_check check = Check;
};

// The first input byte picks one of these (or, past the end, a protocol message).
// A change here renumbers seeds: rerun make_seeds (fuzz_seeds_current fails until then).
using message_cases =
    std::tuple<message_case<std::int64_t>,                                                            // 0
               message_case<std::uint16_t>,                                                           // 1
               message_case<bool>,                                                                    // 2
               message_case<color>,                                                                   // 3
               message_case<level>,                                                                   // 4
               message_case<char>,                                                                    // 5
               message_case<std::string>,                                                             // 6
               message_case<std::vector<std::int32_t>>,                                               // 7
               message_case<std::vector<bool>>,                                                       // 8
               message_case<std::vector<std::string>>,                                                // 9
               message_case<std::array<std::uint8_t, 16>>,                                            // 10
               message_case<std::array<std::string, 2>>,                                              // 11
               message_case<std::map<std::string, std::int64_t>, bytes_check::normalized>,            // 12
               message_case<std::unordered_map<std::uint32_t, std::string>, bytes_check::unordered>,  // 13
               message_case<std::set<std::int32_t>, bytes_check::normalized>,                         // 14
               message_case<std::unordered_set<std::string>, bytes_check::unordered>,                 // 15
               message_case<std::optional<std::string>>,                                              // 16
               message_case<std::variant<std::monostate, std::int32_t, std::string, point>>,          // 17
               message_case<std::tuple<std::int8_t, std::string, bool>>,                              // 18
               message_case<std::pair<std::uint32_t, std::vector<std::uint8_t>>>,                     // 19
               message_case<std::chrono::milliseconds>,                                               // 20
               message_case<std::chrono::system_clock::time_point>,                                   // 21
               message_case<point>,                                                                   // 22
               message_case<std::vector<point>>,                                                      // 23
               message_case<sample>,                                                                  // 24
               message_case<std::vector<sample>>,                                                     // 25
               message_case<padded>,                                                                  // 26
               message_case<money>,                                                                   // 27
               message_case<order, bytes_check::normalized>,                                          // 28
               message_case<with_ref, bytes_check::normalized>,                                       // 29
               message_case<std::optional<std::map<std::int16_t, std::vector<std::optional<bool>>>>,
                            bytes_check::normalized>,  // 30
               // A 1-byte encoding (nullopt) of a 257-byte element.
               message_case<std::vector<std::optional<std::array<std::uint8_t, 256>>>>>;  // 31

inline constexpr std::size_t case_count = std::tuple_size_v<message_cases>;
inline constexpr std::size_t selector_count = case_count + fuzz_protocol::size;

}  // namespace troupe::fuzz
