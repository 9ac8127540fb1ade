// Tests for troupe/runtime/serialization.hpp: round trips of every supported
// kind, the exact wire bytes and schema strings, and decoding of hostile input
// (bad values, huge declared lengths, truncation, and a deterministic fuzz loop).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <troupe/runtime/serialization.hpp>

// Named (not anonymous) namespaces: the tests check qualified names.
namespace wire_test {

struct deposit {
  std::string account;
  std::int64_t cents = 0;
  friend bool operator==(const deposit&, const deposit&) = default;
};

struct balance {
  std::string account;
  using reply = std::int64_t;
  friend bool operator==(const balance&, const balance&) = default;
};

enum class color : std::uint8_t { red, green, blue };
enum sized_plain : std::int16_t { low = -5, high = 5 };
enum unsized_plain { first, second };

struct point {
  std::int32_t x = 0;
  std::int32_t y = 0;
  friend bool operator==(const point&, const point&) = default;
};

struct padded {
  char tag = 0;
  std::int32_t value = 0;  // 3 padding bytes before it
  friend bool operator==(const padded&, const padded&) = default;
};

struct sample {
  std::chrono::nanoseconds at{};
  float value = 0;
  color tint = color::red;
  std::array<std::uint8_t, 3> spare{};
  friend bool operator==(const sample&, const sample&) = default;
};

struct empty {
  friend bool operator==(const empty&, const empty&) = default;
};

struct everything {
  bool flag = false;
  char letter = 0;
  signed char tiny = 0;
  unsigned char utiny = 0;
  char8_t u8 = 0;
  char16_t u16 = 0;
  char32_t u32 = 0;
  wchar_t wide = 0;
  std::int8_t i8 = 0;
  std::int16_t i16 = 0;
  std::int32_t i32 = 0;
  std::int64_t i64 = 0;
  std::uint8_t u8i = 0;
  std::uint16_t u16i = 0;
  std::uint32_t u32i = 0;
  std::uint64_t u64i = 0;
  long l = 0;
  unsigned long long ull = 0;
  float f = 0;
  double d = 0;
  color c = color::red;
  sized_plain sp = low;
  std::byte b{};
  std::string text;
  std::vector<std::int32_t> ints;
  std::vector<std::string> words;
  std::vector<bool> bits;
  std::vector<point> points;
  std::array<std::uint8_t, 4> quad{};
  std::array<std::string, 2> names;
  std::int16_t one[1] = {};
  std::map<std::string, std::int64_t> accounts;
  std::unordered_map<std::int32_t, std::vector<std::int32_t>> buckets;
  std::set<std::string> tags;
  std::unordered_set<std::uint64_t> ids;
  std::optional<std::string> maybe;
  std::optional<point> maybe_point;
  std::variant<std::monostate, std::int32_t, std::string, deposit> choice;
  std::pair<std::int32_t, std::string> pair;
  std::tuple<bool, double, std::string> tuple;
  std::chrono::milliseconds timeout{};
  std::chrono::duration<double> seconds{};
  std::chrono::system_clock::time_point when{};
  std::monostate nothing;
  empty none;
  deposit nested;
  std::vector<deposit> history;
  padded pad;
  sample reading;
  friend bool operator==(const everything&, const everything&) = default;
};

// A class with an invariant and private data: serializable through wire_traits.
class money {
 public:
  money() = default;
  money(std::int64_t cents, std::string currency) : cents_(cents), currency_(std::move(currency)) {}
  [[nodiscard]] std::int64_t cents() const { return cents_; }
  [[nodiscard]] const std::string& currency() const { return currency_; }
  friend bool operator==(const money&, const money&) = default;

 private:
  std::int64_t cents_ = 0;
  std::string currency_ = "EUR";
};

struct invoice {
  std::string customer;
  money total;
  std::vector<money> lines;
  friend bool operator==(const invoice&, const invoice&) = default;
};

struct renamed {
  static constexpr std::string_view wire_name = "bank.renamed.v2";
  std::int32_t value = 0;
};

namespace v1 {
struct account {
  static constexpr std::string_view wire_name = "account";
  std::int32_t id = 0;
};
}  // namespace v1
namespace v2 {
struct account {
  static constexpr std::string_view wire_name = "account";
  long id = 0;
};
}  // namespace v2

// The fuzz target: nesting, every failure path (bool, optional flag, variant
// index, counts, strings, duplicate keys), and a bulk-copied vector.
struct order_line {
  std::string sku;
  std::uint32_t quantity = 0;
  std::optional<double> discount;
  friend bool operator==(const order_line&, const order_line&) = default;
};
struct order {
  std::uint64_t id = 0;
  bool express = false;
  std::vector<order_line> lines;
  std::map<std::string, std::vector<point>> routes;
  std::variant<std::monostate, std::string, std::int64_t, point> note;
  std::array<std::optional<color>, 2> colors;
  std::set<std::int32_t> flags;
  std::chrono::milliseconds deadline{};
  friend bool operator==(const order&, const order&) = default;
};

}  // namespace wire_test

template <>
struct troupe::wire_traits<wire_test::money> {
  static constexpr std::string_view schema = "money{i64,string}";
  static void encode(wire_writer& out, const wire_test::money& value) {
    out.write_scalar(value.cents());
    troupe::encode(out, value.currency());
  }
  static bool decode(wire_reader& in, wire_test::money& value) {
    std::int64_t cents = 0;
    std::string currency;
    if (!in.read_scalar(cents) || !troupe::decode(in, currency)) return false;
    if (currency.size() != 3) {
      in.fail("currency must have 3 letters");
      return false;
    }
    value = wire_test::money(cents, std::move(currency));
    return true;
  }
};

namespace {

// ---------------------------------------------------------------- what is serializable

struct holds_mutex {
  std::mutex m;
  int value;
};
class private_members {
  int value_ = 0;

 public:
  [[nodiscard]] int value() const { return value_; }
};
class with_constructor {
 public:
  explicit with_constructor(int v) : value(v) {}
  int value;
};
union number {
  int i;
  float f;
};
struct holds_pointer {
  int* p;
};
struct holds_unique_ptr {
  std::unique_ptr<int> p;
};
struct holds_const {
  const int value;
};
struct holds_reference {
  int& value;
};
struct base_fields {
  int a;
};
struct derived_fields : base_fields {
  int b;
};
struct holds_c_array {
  int values[3];
  std::string name;
};
struct holds_function {
  std::function<void()> f;
};
struct holds_unsized_enum {
  wire_test::unsized_plain e;
};

static_assert(!troupe::serializable<int*>);
static_assert(!troupe::serializable<const char*>);
static_assert(!troupe::serializable<int&>);
static_assert(!troupe::serializable<void>);
static_assert(!troupe::serializable<std::unique_ptr<int>>);
static_assert(!troupe::serializable<std::shared_ptr<int>>);
static_assert(!troupe::serializable<std::function<void()>>);
static_assert(!troupe::serializable<std::string_view>);
static_assert(!troupe::serializable<long double>);
static_assert(!troupe::serializable<holds_mutex>);
static_assert(!troupe::serializable<private_members>);
static_assert(!troupe::serializable<with_constructor>);
static_assert(!troupe::serializable<number>);
static_assert(!troupe::serializable<holds_pointer>);
static_assert(!troupe::serializable<holds_unique_ptr>);
static_assert(!troupe::serializable<holds_const>);
static_assert(!troupe::serializable<holds_reference>);
static_assert(!troupe::serializable<derived_fields>);
static_assert(!troupe::serializable<holds_c_array>);
static_assert(!troupe::serializable<holds_function>);
static_assert(!troupe::serializable<wire_test::unsized_plain>);
static_assert(!troupe::serializable<holds_unsized_enum>);
static_assert(!troupe::serializable<std::vector<int*>>);
static_assert(!troupe::serializable<std::optional<holds_pointer>>);
static_assert(!troupe::serializable<std::variant<int, int*>>);
static_assert(!troupe::serializable<std::map<std::string, std::unique_ptr<int>>>);
static_assert(!troupe::serializable<std::tuple<int, const int>>);
static_assert(!troupe::serializable<int* [2]>);

static_assert(troupe::serializable<bool>);
static_assert(troupe::serializable<const std::int64_t>);
static_assert(troupe::serializable<std::byte>);
static_assert(troupe::serializable<wire_test::deposit>);
static_assert(troupe::serializable<wire_test::balance>);  // `using reply` is fine
static_assert(troupe::serializable<wire_test::everything>);
static_assert(troupe::serializable<wire_test::money>);
static_assert(troupe::serializable<wire_test::invoice>);
static_assert(troupe::serializable<wire_test::empty>);
static_assert(troupe::serializable<int[4]>);
static_assert(troupe::serializable<std::chrono::steady_clock::time_point>);

// The fast path: object bytes are wire bytes (no padding, every bit pattern valid).
static_assert(troupe::detail::serialization::codec_of<wire_test::point>::bulk);
static_assert(troupe::detail::serialization::codec_of<wire_test::sample>::bulk);
static_assert(troupe::detail::serialization::codec_of<std::array<float, 3>>::bulk);
static_assert(!troupe::detail::serialization::codec_of<wire_test::padded>::bulk);
static_assert(!troupe::detail::serialization::codec_of<bool>::bulk);
static_assert(!troupe::detail::serialization::codec_of<wire_test::empty>::bulk);

// ---------------------------------------------------------------- helpers

template <class T>
T round_trip(const T& value) {
  const std::vector<std::byte> bytes = troupe::to_bytes(value);
  troupe::expected<T> decoded = troupe::from_bytes<T>(bytes);
  EXPECT_TRUE(decoded.has_value()) << decoded.error();
  return decoded ? std::move(*decoded) : T{};
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values) {
  std::vector<std::byte> bytes;
  for (unsigned v : values) bytes.push_back(static_cast<std::byte>(v));
  return bytes;
}

std::vector<std::byte> varint(std::uint64_t value) {
  std::vector<std::byte> bytes;
  troupe::wire_writer out(bytes);
  out.write_varint(value);
  return bytes;
}

template <class T>
std::string failure_of(const std::vector<std::byte>& bytes) {
  troupe::expected<T> decoded = troupe::from_bytes<T>(bytes);
  EXPECT_FALSE(decoded.has_value());
  if (decoded) return {};
  EXPECT_EQ(decoded.error().code(), troupe::errc::malformed_message);
  return decoded.error().text();
}

wire_test::everything full_everything() {
  wire_test::everything e;
  e.flag = true;
  e.letter = 'x';
  e.tiny = -7;
  e.utiny = 250;
  e.u8 = u8'a';
  e.u16 = u'\u00e9';
  e.u32 = U'\U0001F600';
  e.wide = L'w';
  e.i8 = std::numeric_limits<std::int8_t>::min();
  e.i16 = -12345;
  e.i32 = std::numeric_limits<std::int32_t>::max();
  e.i64 = std::numeric_limits<std::int64_t>::min();
  e.u8i = 255;
  e.u16i = 65535;
  e.u32i = 4000000000u;
  e.u64i = std::numeric_limits<std::uint64_t>::max();
  e.l = -42;
  e.ull = 1ull << 63;
  e.f = 1.5f;
  e.d = -0.0;
  e.c = wire_test::color::blue;
  e.sp = wire_test::high;
  e.b = std::byte{0xab};
  e.text = std::string("with\0nul and \xff bytes", 20);  // 20: the text, an embedded NUL included
  e.ints = {1, -2, 3, std::numeric_limits<std::int32_t>::min()};
  e.words = {"", "alpha", std::string(300, 'z')};
  e.bits = {true, false, true, true};
  e.points = {{1, 2}, {-3, 4}};
  e.quad = {1, 2, 3, 4};
  e.names = {"left", "right"};
  e.one[0] = -1;
  e.accounts = {{"alice", 500}, {"bob", -20}};
  e.buckets = {{1, {1, 2}}, {7, {}}};
  e.tags = {"b", "a"};
  e.ids = {9, 99, 999};
  e.maybe = "present";
  e.maybe_point = wire_test::point{5, 6};
  e.choice = wire_test::deposit{"carol", 7};
  e.pair = {3, "three"};
  e.tuple = {true, 2.25, "tuple"};
  e.timeout = std::chrono::milliseconds(1500);
  e.seconds = std::chrono::duration<double>(0.125);
  e.when = std::chrono::system_clock::time_point(std::chrono::microseconds(1234567890123));
  e.nested = {"dave", 11};
  e.history = {{"x", 1}, {"y", 2}};
  e.pad = {'p', 77};
  e.reading = {std::chrono::nanoseconds(99), 2.5f, wire_test::color::green, {1, 2, 3}};
  return e;
}

// ---------------------------------------------------------------- round trips

TEST(serialization, round_trips_an_aggregate_of_standard_types_without_boilerplate) {
  const wire_test::deposit d{"alice", 500};
  EXPECT_EQ(round_trip(d), d);
  const wire_test::balance b{"bob"};
  EXPECT_EQ(round_trip(b), b);
}

TEST(serialization, round_trips_every_supported_kind_in_one_nested_message) {
  const wire_test::everything e = full_everything();
  EXPECT_EQ(round_trip(e), e);
  EXPECT_EQ(round_trip(wire_test::everything{}), wire_test::everything{});
}

TEST(serialization, round_trips_each_variant_alternative_and_an_empty_optional) {
  using choice = std::variant<std::monostate, std::int32_t, std::string, wire_test::deposit>;
  for (const choice& c : {choice{}, choice{-9}, choice{std::string("s")}, choice{wire_test::deposit{"d", 1}}}) {
    EXPECT_EQ(round_trip(c), c);
  }
  EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
  EXPECT_EQ(round_trip(std::optional<std::string>{""}), std::optional<std::string>{""});
}

TEST(serialization, round_trips_top_level_scalars_containers_and_c_arrays) {
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip(std::uint16_t{0xbeef}), 0xbeef);
  EXPECT_EQ(round_trip(std::string(100000, 'q')), std::string(100000, 'q'));
  const std::vector<wire_test::point> many(1000, wire_test::point{7, -7});
  EXPECT_EQ(round_trip(many), many);
  EXPECT_TRUE(std::isnan(round_trip(std::numeric_limits<double>::quiet_NaN())));

  const std::int32_t source[3] = {1, 2, 3};
  std::vector<std::byte> bytes = troupe::to_bytes(source);
  EXPECT_EQ(bytes.size(), 12u);
  std::int32_t target[3] = {};
  troupe::wire_reader in(bytes);
  ASSERT_TRUE(troupe::decode(in, target));
  EXPECT_EQ(target[0], 1);
  EXPECT_EQ(target[2], 3);
}

TEST(serialization, uses_wire_traits_for_a_class_with_private_data_also_inside_aggregates) {
  const wire_test::invoice i{"erin", {1999, "USD"}, {{1000, "USD"}, {999, "USD"}}};
  EXPECT_EQ(round_trip(i), i);
  EXPECT_EQ(troupe::schema_of<wire_test::invoice>(),
            "wire_test::invoice{string,money{i64,string},vector<money{i64,string}>}");

  // The traits' own validation is a decode failure like any other.
  std::vector<std::byte> bytes;
  troupe::wire_writer out(bytes);
  out.write_scalar(std::int64_t{5});
  troupe::encode(out, std::string("EURO"));
  EXPECT_EQ(failure_of<wire_test::money>(bytes), "cannot decode wire_test::money: currency must have 3 letters");
}

TEST(serialization, writes_fixed_width_little_endian_scalars_and_leb128_counts) {
  EXPECT_EQ(troupe::to_bytes(std::uint32_t{0x01020304}), bytes_of({0x04, 0x03, 0x02, 0x01}));
  EXPECT_EQ(troupe::to_bytes(std::int16_t{-2}), bytes_of({0xfe, 0xff}));
  EXPECT_EQ(troupe::to_bytes(true), bytes_of({0x01}));
  EXPECT_EQ(troupe::to_bytes(std::string("hi")), bytes_of({0x02, 'h', 'i'}));
  EXPECT_EQ(varint(0), bytes_of({0x00}));
  EXPECT_EQ(varint(300), bytes_of({0xac, 0x02}));
  EXPECT_EQ(varint(std::numeric_limits<std::uint64_t>::max()),
            bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
  EXPECT_EQ(troupe::to_bytes(std::optional<std::uint8_t>{9}), bytes_of({0x01, 0x09}));
  EXPECT_EQ(troupe::to_bytes(std::variant<std::int8_t, std::uint8_t>{std::uint8_t{3}}), bytes_of({0x01, 0x03}));
}

TEST(serialization, copies_padding_free_structs_in_bulk_and_never_copies_padding) {
  // A vector of points: the count, then the points' object bytes.
  const std::vector<wire_test::point> points{{1, 2}, {3, 4}};
  EXPECT_EQ(troupe::to_bytes(points), bytes_of({2, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0}));
  // A struct with padding goes field by field: 5 bytes, not sizeof(padded) == 8.
  EXPECT_EQ(troupe::to_bytes(wire_test::padded{'a', 1}), bytes_of({'a', 1, 0, 0, 0}));
  EXPECT_EQ(troupe::to_bytes(wire_test::sample{}).size(), sizeof(wire_test::sample));
}

// ---------------------------------------------------------------- schemas and names

TEST(serialization, describes_types_with_canonical_schema_strings) {
  EXPECT_EQ(troupe::schema_of<bool>(), "bool");
  EXPECT_EQ(troupe::schema_of<std::int8_t>(), "i8");
  EXPECT_EQ(troupe::schema_of<std::uint64_t>(), "u64");
  EXPECT_EQ(troupe::schema_of<long long>(), "i64");
  EXPECT_EQ(troupe::schema_of<double>(), "f64");
  EXPECT_EQ(troupe::schema_of<char>(), "char");
  EXPECT_EQ(troupe::schema_of<std::string>(), "string");
  EXPECT_EQ(troupe::schema_of<std::vector<std::int32_t>>(), "vector<i32>");
  EXPECT_EQ((troupe::schema_of<std::array<std::uint8_t, 4>>()), "array<u8,4>");
  EXPECT_EQ(troupe::schema_of<float[2]>(), "array<f32,2>");
  EXPECT_EQ((troupe::schema_of<std::map<std::string, std::int64_t>>()), "map<string,i64>");
  EXPECT_EQ((troupe::schema_of<std::unordered_map<std::string, std::int64_t>>()), "map<string,i64>");
  EXPECT_EQ(troupe::schema_of<std::set<std::int16_t>>(), "set<i16>");
  EXPECT_EQ(troupe::schema_of<std::optional<std::string>>(), "optional<string>");
  EXPECT_EQ((troupe::schema_of<std::variant<std::monostate, std::int32_t, std::string>>()),
            "variant<monostate,i32,string>");
  EXPECT_EQ((troupe::schema_of<std::pair<std::int32_t, bool>>()), "tuple<i32,bool>");
  EXPECT_EQ(troupe::schema_of<std::chrono::nanoseconds>(), "duration<i64,1/1000000000>");
  EXPECT_EQ(troupe::schema_of<std::chrono::system_clock::time_point>(),
            "time_point<system_clock,duration<i64,1/1000000000>>");
  EXPECT_EQ(troupe::schema_of<wire_test::color>(), "enum wire_test::color:u8");
  EXPECT_EQ(troupe::schema_of<std::byte>(), "enum std::byte:u8");
  EXPECT_EQ(troupe::schema_of<wire_test::deposit>(), "wire_test::deposit{string,i64}");
  EXPECT_EQ(troupe::schema_of<wire_test::empty>(), "wire_test::empty{}");
  EXPECT_EQ(troupe::schema_of<wire_test::order_line>(), "wire_test::order_line{string,u32,optional<f64>}");
  EXPECT_EQ(troupe::schema_of<wire_test::renamed>(), "bank.renamed.v2{i32}");
}

TEST(serialization, names_types_by_their_qualified_name_or_their_wire_name) {
  EXPECT_EQ(troupe::type_name_of<wire_test::deposit>(), "wire_test::deposit");
  EXPECT_EQ(troupe::type_name_of<wire_test::v1::account>(), "account");
  EXPECT_EQ(troupe::type_name_of<wire_test::renamed>(), "bank.renamed.v2");
  EXPECT_EQ(troupe::type_name_of<wire_test::color>(), "wire_test::color");
  EXPECT_EQ(troupe::type_name_of<int>(), "int");
  static_assert(troupe::type_name_of<wire_test::deposit>() == "wire_test::deposit");
  static_assert(troupe::type_id_of<wire_test::deposit>() == troupe::fnv1a64("wire_test::deposit"));
}

TEST(serialization, fingerprints_differ_when_a_field_type_changes_under_the_same_name) {
  EXPECT_EQ(troupe::type_id_of<wire_test::v1::account>(), troupe::type_id_of<wire_test::v2::account>());
  EXPECT_EQ(troupe::schema_of<wire_test::v1::account>(), "account{i32}");
  EXPECT_EQ(troupe::schema_of<wire_test::v2::account>(), "account{i64}");
  EXPECT_NE(troupe::fingerprint_of<wire_test::v1::account>(), troupe::fingerprint_of<wire_test::v2::account>());
  EXPECT_EQ(troupe::fingerprint_of<wire_test::deposit>(), troupe::fnv1a64("wire_test::deposit{string,i64}"));
  // Known FNV-1a 64 values.
  static_assert(troupe::fnv1a64("") == 0xcbf29ce484222325ull);
  static_assert(troupe::fnv1a64("a") == 0xaf63dc4c8601ec8cull);
}

// ---------------------------------------------------------------- hostile input

TEST(serialization, rejects_a_bool_that_is_neither_zero_nor_one) {
  EXPECT_EQ(failure_of<bool>(bytes_of({2})), "cannot decode bool: bool byte 2 is neither 0 nor 1");
  EXPECT_FALSE(troupe::from_bytes<std::vector<bool>>(bytes_of({2, 1, 7})).has_value());
}

TEST(serialization, rejects_a_variant_index_out_of_range_and_a_bad_optional_flag) {
  using choice = std::variant<std::int8_t, std::string>;
  EXPECT_EQ(failure_of<choice>(bytes_of({2, 0})), "cannot decode " + std::string(troupe::type_name_of<choice>()) +
                                                      ": variant index 2 is out of range for 2 alternatives");
  EXPECT_NE(failure_of<std::optional<std::int8_t>>(bytes_of({2, 0})).find("optional flag 2 is neither 0 nor 1"),
            std::string::npos);
}

TEST(serialization, rejects_a_huge_declared_string_length_before_allocating) {
  std::vector<std::byte> bytes = varint(4000000000u);
  bytes.resize(bytes.size() + 12, std::byte{'x'});
  EXPECT_EQ(failure_of<std::string>(bytes), "cannot decode " + std::string(troupe::type_name_of<std::string>()) +
                                                ": string length 4000000000 exceeds the 12 bytes left");
  EXPECT_FALSE(troupe::from_bytes<std::string>(varint(std::numeric_limits<std::uint64_t>::max())).has_value());
}

TEST(serialization, rejects_a_huge_declared_element_count_before_allocating) {
  std::vector<std::byte> bytes = varint(std::uint64_t{1} << 60);
  bytes.resize(bytes.size() + 16);
  EXPECT_NE(failure_of<std::vector<std::uint64_t>>(bytes).find(
                "vector size 1152921504606846976 (at least 8 bytes each) exceeds the 16 bytes left"),
            std::string::npos);
  EXPECT_NE(failure_of<std::vector<std::string>>(bytes).find("exceeds the 16 bytes left"), std::string::npos);
  EXPECT_NE((failure_of<std::map<std::int32_t, std::int32_t>>(bytes).find("map size")), std::string::npos);
  // 3 deposits need at least 3 x 9 bytes.
  EXPECT_FALSE(
      troupe::from_bytes<std::vector<wire_test::deposit>>(bytes_of({3, 0, 0, 0, 0, 0, 0, 0, 0, 0})).has_value());

  const std::vector<std::byte> in_bytes = bytes_of({10, 1, 2, 3});
  troupe::wire_reader in(in_bytes);
  std::size_t length = 0;
  EXPECT_FALSE(in.read_length(length, 1));
  EXPECT_EQ(in.failure(), "length 10 exceeds the 3 bytes left");
}

// Counts what containers under test allocate (stateless, so they stay default-constructible).
std::size_t largest_allocation = 0;
template <class T>
struct counting_allocator {
  using value_type = T;
  counting_allocator() = default;
  template <class U>
  counting_allocator(const counting_allocator<U>&) noexcept {}  // NOLINT: rebinding is implicit
  T* allocate(std::size_t n) {
    largest_allocation = std::max(largest_allocation, n * sizeof(T));
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  friend bool operator==(const counting_allocator&, const counting_allocator&) noexcept { return true; }
};

TEST(serialization, allocates_no_more_than_the_input_justifies) {
  using counted_string = std::basic_string<char, std::char_traits<char>, counting_allocator<char>>;
  using counted_words = std::vector<std::string, counting_allocator<std::string>>;
  using counted_numbers = std::vector<std::uint64_t, counting_allocator<std::uint64_t>>;
  std::vector<std::byte> bytes = varint(std::uint64_t{1} << 40);
  bytes.resize(bytes.size() + 64);

  largest_allocation = 0;
  counted_string text;
  troupe::wire_reader text_in(bytes);
  EXPECT_FALSE(troupe::decode(text_in, text));
  counted_numbers numbers;
  troupe::wire_reader numbers_in(bytes);
  EXPECT_FALSE(troupe::decode(numbers_in, numbers));
  EXPECT_EQ(largest_allocation, 0u);

  // A plausible count (one empty string per byte left) may reserve, but only
  // in proportion to the input.
  std::vector<std::byte> words_bytes = varint(64);
  words_bytes.resize(words_bytes.size() + 64);
  counted_words words;
  troupe::wire_reader words_in(words_bytes);
  EXPECT_TRUE(troupe::decode(words_in, words));
  EXPECT_EQ(words.size(), 64u);
  EXPECT_LE(largest_allocation, 64 * sizeof(std::string));
}

TEST(serialization, rejects_overlong_and_overflowing_varints) {
  std::uint64_t value = 0;
  const std::vector<std::byte> overlong_bytes = bytes_of({0x80, 0x00});
  troupe::wire_reader overlong(overlong_bytes);
  EXPECT_FALSE(overlong.read_varint(value));
  EXPECT_EQ(overlong.failure(), "overlong varint");
  const std::vector<std::byte> too_big_bytes = bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02});
  troupe::wire_reader too_big(too_big_bytes);
  EXPECT_FALSE(too_big.read_varint(value));
  const std::vector<std::byte> too_long_bytes =
      bytes_of({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01});
  troupe::wire_reader too_long(too_long_bytes);
  EXPECT_FALSE(too_long.read_varint(value));
  const std::vector<std::byte> unterminated_bytes = bytes_of({0x80});
  troupe::wire_reader unterminated(unterminated_bytes);
  EXPECT_FALSE(unterminated.read_varint(value));
}

TEST(serialization, rejects_a_map_or_set_that_repeats_a_key) {
  EXPECT_FALSE((troupe::from_bytes<std::map<std::int8_t, std::int8_t>>(bytes_of({2, 1, 10, 1, 11})).has_value()));
  EXPECT_FALSE(troupe::from_bytes<std::unordered_set<std::int8_t>>(bytes_of({2, 4, 4})).has_value());
  EXPECT_TRUE(troupe::from_bytes<std::set<std::int8_t>>(bytes_of({2, 5, 4})).has_value());  // order is free
}

TEST(serialization, rejects_every_truncation_of_a_valid_message) {
  const std::vector<std::byte> bytes = troupe::to_bytes(full_everything());
  for (std::size_t size = 0; size < bytes.size(); ++size) {
    troupe::expected<wire_test::everything> decoded =
        troupe::from_bytes<wire_test::everything>(std::span(bytes.data(), size));
    ASSERT_FALSE(decoded.has_value()) << "a prefix of " << size << " bytes decoded";
    EXPECT_FALSE(decoded.error().text().empty());
  }
}

TEST(serialization, rejects_bytes_left_over_after_the_value) {
  std::vector<std::byte> bytes = troupe::to_bytes(wire_test::deposit{"a", 1});
  bytes.push_back(std::byte{0});
  EXPECT_EQ(failure_of<wire_test::deposit>(bytes), "1 bytes left over after decoding wire_test::deposit");
}

TEST(serialization, keeps_the_first_failure_and_fails_every_later_read) {
  const std::vector<std::byte> in_bytes = bytes_of({1, 2, 3});
  troupe::wire_reader in(in_bytes);
  std::uint32_t wide = 0;
  EXPECT_FALSE(in.read_scalar(wide));
  EXPECT_EQ(in.failure(), "truncated: 4 bytes needed, 3 left");
  std::uint8_t narrow = 0;
  EXPECT_FALSE(in.read_scalar(narrow));  // would fit, but the reader has failed
  in.fail("second");
  EXPECT_TRUE(in.failed());
  EXPECT_EQ(in.failure(), "truncated: 4 bytes needed, 3 left");
  EXPECT_EQ(in.context(), nullptr);
}

// Random bytes, truncations and bit flips of valid encodings: decoding either
// succeeds or fails with a reason; it never crashes, reads out of bounds or
// allocates absurdly (ASan and UBSan builds check those). A success decodes to
// a value whose encoding decodes back to the same encoding.
TEST(serialization, decodes_random_truncated_and_bit_flipped_input_safely) {
  std::mt19937_64 random(20240607);
  auto pick = [&random](std::size_t bound) { return static_cast<std::size_t>(random() % bound); };

  std::vector<std::vector<std::byte>> seeds;
  for (int i = 0; i < 8; ++i) {
    wire_test::order o;
    o.id = random();
    o.express = i % 2 == 0;
    for (int line = 0; line < i; ++line)
      o.lines.push_back({"sku-" + std::to_string(line), static_cast<std::uint32_t>(line * 3),
                         line % 2 == 0 ? std::optional<double>(0.5 * line) : std::nullopt});
    o.routes["r" + std::to_string(i)] = {{i, -i}, {2 * i, 0}};
    if (i % 4 == 1) o.note = std::string("note");
    if (i % 4 == 2) o.note = std::int64_t{-i};
    if (i % 4 == 3) o.note = wire_test::point{i, i};
    o.colors[static_cast<std::size_t>(i % 2)] = wire_test::color::green;
    o.flags = {i, i + 1, -i - 2};
    o.deadline = std::chrono::milliseconds(i * 1000);
    seeds.push_back(troupe::to_bytes(o));
    EXPECT_EQ(round_trip(o), o);
  }

  int decoded_count = 0;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    std::vector<std::byte> input;
    const std::vector<std::byte>& seed = seeds[pick(seeds.size())];
    switch (iteration % 4) {
      case 0:  // random bytes
        input.resize(pick(64));
        for (std::byte& b : input) b = static_cast<std::byte>(random());
        break;
      case 1:  // a truncated valid encoding
        input.assign(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(pick(seed.size() + 1)));
        break;
      case 2:  // bit flips
        input = seed;
        for (std::size_t flips = 1 + pick(3); flips > 0; --flips)
          input[pick(input.size())] ^= static_cast<std::byte>(1u << pick(8));
        break;
      default:  // a run of random bytes spliced in
        input = seed;
        for (std::size_t at = pick(input.size()), n = 1 + pick(8); n > 0 && at < input.size(); --n, ++at)
          input[at] = static_cast<std::byte>(random());
        break;
    }
    troupe::expected<wire_test::order> decoded = troupe::from_bytes<wire_test::order>(input);
    if (!decoded) {
      ASSERT_EQ(decoded.error().code(), troupe::errc::malformed_message);
      ASSERT_FALSE(decoded.error().text().empty());
      continue;
    }
    ++decoded_count;
    const std::vector<std::byte> again = troupe::to_bytes(*decoded);
    troupe::expected<wire_test::order> redecoded = troupe::from_bytes<wire_test::order>(again);
    ASSERT_TRUE(redecoded.has_value()) << redecoded.error();
    ASSERT_EQ(troupe::to_bytes(*redecoded), again);
  }
  EXPECT_GT(decoded_count, 0);  // some bit flips land in payload bytes and still decode
}

}  // namespace

// Counts are checked against the bytes left, but an element may be far bigger
// in memory than on the wire: a budget (32 x the input + 1 MiB) stops a small
// message from demanding gigabytes (found by tests/fuzz).
TEST(serialization, refuses_a_small_message_that_would_expand_to_a_huge_value) {
  using big_optional = std::optional<std::array<std::uint8_t, 4096>>;
  // 64 Ki empty optionals: 64 KiB on the wire, 256 MiB in memory.
  std::vector<std::byte> bytes;
  troupe::wire_writer out(bytes);
  out.write_varint(65536);
  for (int i = 0; i < 65536; ++i) out.write_scalar<std::uint8_t>(0);
  auto decoded = troupe::from_bytes<std::vector<big_optional>>(bytes);
  ASSERT_FALSE(decoded);
  EXPECT_NE(decoded.error().text().find("bytes of memory"), std::string::npos) << decoded.error();
  // Ordinary messages, even of many small strings, stay well within it.
  std::vector<std::string> words(100000);
  for (std::size_t i = 0; i < words.size(); ++i) words[i] = i % 3 == 0 ? "" : "w" + std::to_string(i);
  auto round = troupe::from_bytes<std::vector<std::string>>(troupe::to_bytes(words));
  ASSERT_TRUE(round) << round.error();
  EXPECT_EQ(*round, words);
  std::vector<std::string> empties(200000);
  auto all_empty = troupe::from_bytes<std::vector<std::string>>(troupe::to_bytes(empties));
  ASSERT_TRUE(all_empty) << all_empty.error();
}
