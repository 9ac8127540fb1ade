// Serialization: turns a message into bytes for another process or machine and
// back, with no per-type boilerplate for plain structs. The cross-process and
// cross-machine transports (net/) carry every message through it.
//
//   struct deposit { std::string account; std::int64_t cents; };
//   std::vector<std::byte> bytes = troupe::to_bytes(deposit{"alice", 500});
//   troupe::expected<deposit> d = troupe::from_bytes<deposit>(bytes);  // an error, never UB, on bad bytes
//
// What is serializable (the troupe::serializable concept): bool; char types;
// integers and floats of 1, 2, 4 or 8 bytes (not long double); enums with a fixed
// underlying type (every enum class); std::string, vector, array, C arrays, map,
// unordered_map, set, unordered_set, optional, variant, pair, tuple, monostate,
// chrono::duration and chrono::time_point of serializable types; aggregates
// (plain structs: public fields, no base classes, no bit-fields, no C array
// fields — use std::array) whose fields all are; and any type with a
// wire_traits<T> specialization (which wins over the rules above). Decoding also
// needs the type (and container elements) default-constructible. Recursive types
// (a struct holding a vector of itself) need wire_traits.
//
// Wire format (not self-describing: both sides know the type, and check that its
// schema fingerprint matches):
//   bool                    1 byte, 0 or 1 (anything else is rejected)
//   integers, chars, floats fixed width, little endian
//   enums                   the underlying type; not range-checked
//   string                  varint byte count, bytes
//   vector, map, set        varint element count, elements (map: key, value)
//   array<T,N>, T[N]        N elements, no count
//   optional                u8 flag 0/1, then the value if 1
//   variant                 varint index (checked < alternative count), the alternative
//   pair, tuple, aggregate  the elements/fields in order, nothing between them
//   duration, time_point    the count (time since epoch) as its Rep
//   monostate, empty struct nothing
//   varint                  unsigned LEB128, at most 10 bytes; overlong encodings rejected
// Bytes are canonical except for unordered containers (iteration order).
//
// Design rationale:
// - Fixed-width little-endian integers, not varints: encoding is a memcpy, and a
//   struct of such fields with no padding (an int pair, a vector<float>, a
//   std::array<std::uint8_t, 16>) is one memcpy for the whole struct or vector.
//   That fast path requires every bit pattern to be a valid value, so it never
//   covers bool or structs holding one, and requires the fields' sizes to add up
//   to the struct's, so padding (uninitialised bytes) never reaches the wire.
// - Decoding trusts nothing: every read is bounds-checked, the first failure
//   sticks in the reader with a text for the log line, and a count is checked
//   against the bytes left (count x the element's smallest encoding) and the
//   memory it will take against a budget (32 x the input + 1 MiB) before
//   anything is allocated, so a forged length cannot cause a huge allocation.
//   Malformed input never throws; it makes decode() return false.
// - Schemas are canonical text built from the wire format ("vector<i32>", not a
//   compiler's spelling), so nodes built by GCC and Clang agree; aggregates add
//   their qualified name and field schemas ("bank::deposit{string,i64}"). Their
//   FNV-1a hash, fingerprint_of<T>(), is compared at handshake: a field changed
//   on one side only is caught there, not by misreading bytes.
// - Aggregates are reflected with Boost.PFR's structured bindings, but their
//   fields are counted and screened by probes of our own first (see
//   detail/serialization_codecs.hpp), so asking serializable<T> of any type is
//   never a hard error, and GCC 12 does not crash on PFR's own count.
//
// Thread safety: everything here is stateless and may be called from any
// thread. A wire_writer or wire_reader belongs to one thread at a time. The
// schema, fingerprint and name caches are initialised thread-safely.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe {

static_assert(std::endian::native == std::endian::little,
              "troupe's wire format is little endian; a big-endian port needs byte swaps in wire_writer/wire_reader");

namespace detail {
struct wire_context;  // what the transport passes to codecs (e.g. to turn refs into proxies); defined by net/
}  // namespace detail

// FNV-1a, 64 bit: the hash behind fingerprint_of and type_id_of.
constexpr std::uint64_t fnv1a64(std::string_view text) noexcept {
  std::uint64_t hash = 14695981039346656037ull;
  for (char c : text) {
    hash ^= static_cast<std::uint64_t>(static_cast<unsigned char>(c));
    hash *= 1099511628211ull;
  }
  return hash;
}

namespace detail::serialization {
// The compiler's spelling of T, cut out of __PRETTY_FUNCTION__:
//   GCC:   "... compiler_type_name() [with T = bank::deposit; std::string_view = ...]"
//   Clang: "... compiler_type_name() [T = bank::deposit]"
template <class T>
constexpr std::string_view compiler_type_name() noexcept {
  const std::string_view function = __PRETTY_FUNCTION__;
  const std::size_t start = function.find("T = ") + 4;
  std::size_t end = function.find(';', start);
  if (end == std::string_view::npos) end = function.rfind(']');
  return function.substr(start, end - start);
}
template <class T>
inline constexpr std::string_view compiler_type_name_v = compiler_type_name<T>();
}  // namespace detail::serialization

// The name a type goes by on the wire: T::wire_name (a static constexpr
// std::string_view member) if it has one, else its qualified C++ name as the
// compiler spells it ("bank::deposit"). Spellings of template arguments can
// differ between compilers; give templates a wire_name when nodes mix compilers.
template <class T>
constexpr std::string_view type_name_of() noexcept {
  if constexpr (requires {
                  { T::wire_name } -> std::convertible_to<std::string_view>;
                }) {
    return std::string_view(T::wire_name);
  } else {
    return detail::serialization::compiler_type_name_v<T>;
  }
}

// Appends to a byte vector; scalars fixed-width little endian.
class wire_writer {
 public:
  explicit wire_writer(std::vector<std::byte>& out, detail::wire_context* context = nullptr) noexcept
      : out_(&out), context_(context) {}

  void write_bytes(const void* data, std::size_t size) {
    if (size == 0) return;
    // resize + memcpy, not insert: g++ 12 at -O2 reports a false
    // -Wstringop-overflow for range-insert into a vector that starts empty.
    const std::size_t at = out_->size();
    out_->resize(at + size);
    std::memcpy(out_->data() + at, data, size);
  }

  template <class T>
  void write_scalar(T value) {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>,
                  "wire_writer::write_scalar: an arithmetic type (not long double)");
    write_bytes(&value, sizeof value);
  }

  // Unsigned LEB128: 7 bits a byte, low group first, high bit = more follow.
  void write_varint(std::uint64_t value) {
    std::byte bytes[10];
    std::size_t size = 0;
    while (value >= 0x80) {
      bytes[size++] = static_cast<std::byte>((value & 0x7f) | 0x80);
      value >>= 7;
    }
    bytes[size++] = static_cast<std::byte>(value);
    write_bytes(bytes, size);
  }

  [[nodiscard]] detail::wire_context* context() const noexcept { return context_; }
  [[nodiscard]] std::vector<std::byte>& buffer() noexcept { return *out_; }

 private:
  std::vector<std::byte>* out_;
  detail::wire_context* context_;
};

// Reads from untrusted bytes. Never reads out of bounds. The first failure
// sticks: every later read returns false, and failure() keeps the first text.
class wire_reader {
 public:
  explicit wire_reader(std::span<const std::byte> in, detail::wire_context* context = nullptr) noexcept
      : data_(in.data()), size_(in.size()), budget_(memory_budget_for(in.size())), context_(context) {}
  // The reader does not own the bytes: reading a temporary vector would dangle.
  wire_reader(std::vector<std::byte>&&, detail::wire_context* = nullptr) = delete;

  // False (and failed()) if fewer than size bytes remain; then nothing is read.
  bool read_bytes(void* out, std::size_t size) noexcept {
    if (failed_) return false;
    if (size > remaining()) {
      fail("truncated: " + std::to_string(size) + " bytes needed, " + std::to_string(remaining()) + " left");
      return false;
    }
    if (size != 0) std::memcpy(out, data_ + position_, size);
    position_ += size;
    return true;
  }

  // A bool must be 0 or 1; anything else fails (a bool holding 2 is UB).
  template <class T>
  bool read_scalar(T& out) noexcept {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>,
                  "wire_reader::read_scalar: an arithmetic type (not long double)");
    if constexpr (std::is_same_v<T, bool>) {
      std::uint8_t byte = 0;
      if (!read_bytes(&byte, 1)) return false;
      if (byte > 1) {
        fail("bool byte " + std::to_string(byte) + " is neither 0 nor 1");
        return false;
      }
      out = byte == 1;
      return true;
    } else {
      return read_bytes(&out, sizeof out);
    }
  }

  // Rejects encodings longer than 10 bytes, beyond 64 bits, or overlong (a
  // trailing zero group), so each value has exactly one encoding.
  bool read_varint(std::uint64_t& out) noexcept {
    if (failed_) return false;
    std::uint64_t value = 0;
    for (unsigned group = 0;; ++group) {
      if (position_ == size_) {
        fail("truncated varint");
        return false;
      }
      const auto byte = std::to_integer<std::uint8_t>(data_[position_++]);
      if (group == 9 && byte > 1) {
        fail("varint does not fit in 64 bits");
        return false;
      }
      value |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * group);
      if ((byte & 0x80) == 0) {
        if (byte == 0 && group != 0) {
          fail("overlong varint");
          return false;
        }
        out = value;
        return true;
      }
    }
  }

  // A varint count of elements that each take at least min_element_size bytes
  // (at least 1 is assumed): fails unless count x that fits in remaining().
  // Zero-size elements (std::monostate, empty structs) are limited to one per
  // remaining byte all the same, so a container of them may not round-trip.
  bool read_length(std::size_t& out, std::size_t min_element_size = 1) noexcept;

  [[nodiscard]] std::size_t remaining() const noexcept { return size_ - position_; }
  [[nodiscard]] bool failed() const noexcept { return failed_; }

  // The memory a decoded value may take: containers charge count x the
  // element's size before they allocate. Counts are already checked against
  // the bytes left, but an element can be far bigger in memory than on the
  // wire (an empty optional<array<char, 4096>> is one byte), so that check
  // alone would let a small message demand gigabytes. 32 x the input plus
  // 1 MiB covers every ordinary message (strings, vectors of numbers, structs).
  static constexpr std::size_t memory_budget_for(std::size_t input_bytes) noexcept {
    constexpr std::size_t factor = 32;
    constexpr std::size_t base = std::size_t{1} << 20;
    return input_bytes > (SIZE_MAX - base) / factor ? SIZE_MAX : input_bytes * factor + base;
  }
  // Charges count elements of element_size bytes; false (and failed()) past the budget.
  bool charge(std::size_t count, std::size_t element_size) noexcept {
    if (failed_) return false;
    if (element_size != 0 && count > budget_ / element_size) {
      fail("the message would take more than " + std::to_string(memory_budget_for(size_)) + " bytes of memory (" +
           std::to_string(count) + " elements of " + std::to_string(element_size) + " bytes in a " +
           std::to_string(size_) + "-byte message)");
      return false;
    }
    budget_ -= count * element_size;
    return true;
  }

  // Records why decoding failed (only the first call counts), for the log line
  // that closes the link, e.g. "string length 4000000000 exceeds the 12 bytes left".
  void fail(std::string_view why) {
    if (failed_) return;
    failed_ = true;
    failure_.assign(why.empty() ? std::string_view("malformed input") : why);
  }
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
  [[nodiscard]] detail::wire_context* context() const noexcept { return context_; }

 private:
  const std::byte* data_;
  std::size_t size_;
  std::size_t budget_;  // bytes of memory decoding may still take (charge())
  std::size_t position_ = 0;
  bool failed_ = false;
  std::string failure_;
  detail::wire_context* context_;
};

// The customization point, for types that are neither supported standard types
// nor aggregates (classes with invariants, private members, handles):
//
//   template <> struct troupe::wire_traits<money> {
//     static constexpr std::string_view schema = "money{i64,string}";  // stable; goes into the fingerprint
//     static void encode(troupe::wire_writer& w, const money& m);
//     static bool decode(troupe::wire_reader& r, money& m);   // false on malformed input, after r.fail(...)
//   };
//
// Declare it right after the type, before anything asks whether the type is
// serializable. The primary template is empty: "has a specialization" means
// "has schema, encode and decode". Enable is for partial specializations
// constrained with std::enable_if_t.
template <class T, class Enable = void>
struct wire_traits {};

}  // namespace troupe

// The codecs need the declarations above to be complete.
#include "troupe/runtime/detail/serialization_codecs.hpp"  // IWYU pragma: export

namespace troupe {

inline bool wire_reader::read_length(std::size_t& out, std::size_t min_element_size) noexcept {
  return detail::serialization::read_count(*this, out, min_element_size, "length");
}

// True for the types listed at the top of this file; false (never a compile
// error) for the rest: pointers, references, unions, std::function, classes
// with private data or constructors, structs holding any of those, ...
template <class T>
concept serializable = detail::serialization::codec_of<std::remove_cv_t<T>>::valid;

template <serializable T>
void encode(wire_writer& out, const T& value) {
  detail::serialization::encode_value(out, value);
}

// False on malformed input, with in.failure() saying why; `value` is then valid
// but unspecified. Never throws on malformed input (std::bad_alloc aside).
template <serializable T>
bool decode(wire_reader& in, T& value) {
  static_assert(!std::is_const_v<T>, "troupe::decode: cannot decode into a const object");
  static_assert(std::is_default_constructible_v<T>,
                "troupe::decode: the type must be default-constructible (decoding fills a default-constructed value)");
  return detail::serialization::decode_value(in, value);
}

template <serializable T>
std::vector<std::byte> to_bytes(const T& value) {
  std::vector<std::byte> bytes;
  wire_writer out(bytes);
  encode(out, value);
  return bytes;
}

// errc::malformed_message if the bytes do not decode as a T or if bytes are left over.
template <serializable T>
[[nodiscard]] expected<T> from_bytes(std::span<const std::byte> bytes) {
  static_assert(!std::is_array_v<T>, "troupe::from_bytes: use std::array, not a C array, as the result type");
  static_assert(
      std::is_default_constructible_v<T>,
      "troupe::from_bytes: the type must be default-constructible (decoding fills a default-constructed value)");
  T value{};
  wire_reader in(bytes);
  if (!decode(in, value)) {
    return error(errc::malformed_message, "cannot decode " + std::string(type_name_of<T>()) + ": " + in.failure());
  }
  if (in.remaining() != 0) {
    return error(errc::malformed_message,
                 std::to_string(in.remaining()) + " bytes left over after decoding " + std::string(type_name_of<T>()));
  }
  return expected<T>(std::move(value));
}

// The canonical description of T's wire form; see the top of this file.
template <class T>
const std::string& schema_of() {
  static_assert(serializable<T>, "troupe::schema_of: the type is not serializable");
  static const std::string schema = [] {
    std::string text;
    detail::serialization::append_schema<std::remove_cv_t<T>>(text);
    return text;
  }();
  return schema;
}

// FNV-1a of schema_of<T>(): equal on two nodes when both read T's bytes alike.
template <class T>
std::uint64_t fingerprint_of() {
  static const std::uint64_t fingerprint = fnv1a64(schema_of<T>());
  return fingerprint;
}

// FNV-1a of type_name_of<T>(): which message type a frame carries.
template <class T>
constexpr std::uint64_t type_id_of() noexcept {
  constexpr std::uint64_t id = fnv1a64(type_name_of<T>());
  return id;
}

}  // namespace troupe
