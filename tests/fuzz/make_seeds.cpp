// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
// a few valid inputs made with the real encoders, so the fuzzers start past the
// magic numbers and length fields, and a few near misses. The corpus is exactly
// this program's output; `--check` (a ctest) fails when it is stale, e.g. after
// a wire format change, so that the fuzzers never start from dead seeds.
//
//   build/test/tests/fuzz/make_seeds tests/fuzz/corpus           # rewrite
//   build/test/tests/fuzz/make_seeds --check tests/fuzz/corpus   # compare
//
// Findings do not go here but to tests/fuzz/regressions/<target>/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "fuzz_message_types.hpp"
#if TROUPE_FUZZ_GATEWAY
#include <boost/json/parse.hpp>

#include "troupe/gateway/xmlrpc.hpp"
#endif
#if TROUPE_FUZZ_GATEWAY_GRPC
#include <boost/json/parse.hpp>

#include "fuzz_grpc_cases.hpp"
#endif
#if TROUPE_FUZZ_BRIDGE_STOMP
#include "troupe/bridge/stomp_codec.hpp"
#endif
#if TROUPE_FUZZ_SQS
#include "sqs_model.hpp"
#endif
#include "topics/topic_records.hpp"
#include "wire/wire.hpp"

namespace {

namespace fs = std::filesystem;
namespace wire = troupe::detail;
using namespace std::chrono_literals;
using bytes = std::vector<std::byte>;

// target -> file name -> content
using corpus = std::map<std::string, std::map<std::string, bytes>>;

bytes text(std::string_view s) {
  bytes out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

bytes concat(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

template <class T>
bytes scalar(T value) {
  bytes out;
  troupe::wire_writer(out).write_scalar(value);
  return out;
}

bytes frame(std::uint32_t kind, const bytes& body) {
  bytes out;
  wire::append_frame(out, kind, body);
  return out;
}

// A frame head alone, declaring `length` body bytes.
bytes head(std::uint32_t length, std::uint32_t kind) { return concat(scalar(length), scalar(kind)); }

wire::nonce counting_nonce(std::uint8_t first) {
  wire::nonce n{};
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = static_cast<std::byte>(first + i);
  return n;
}

using schema_list = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

wire::hello_info sample_hello(std::string endpoint, std::uint64_t ring_bytes) {
  wire::hello_info h;
  h.name = "alpha";
  h.incarnation = 7;
  h.anchor_id = 3;
  h.ring_bytes = ring_bytes;
  h.host = 0x0123456789abcdefull;
  h.endpoint = std::move(endpoint);
  return h;
}

const schema_list three_types{{1, 0x1111}, {2, 0x2222}, {0xfedcba9876543210ull, 0x3333}};

void frame_seeds(corpus& out) {
  auto& seeds = out["fuzz_frames"];
  const auto kind = [](wire::tcp_kind k) { return static_cast<std::uint32_t>(k); };
  const bytes challenge = frame(kind(wire::tcp_kind::challenge), wire::encode_challenge(counting_nonce(0)));
  const bytes hello = wire::encode_hello(sample_hello("tcp://10.0.0.2:4000", 0), three_types);
  const wire::auth_mac mac =
      wire::compute_mac("0123456789abcdef0123456789abcdef", wire::dialer_role, counting_nonce(0), counting_nonce(32));
  const bytes proof = frame(kind(wire::tcp_kind::proof), concat(bytes(mac.begin(), mac.end()), hello));

  seeds["challenge"] = challenge;
  seeds["dialer_handshake"] = concat(challenge, proof);
  seeds["refusal"] = frame(kind(wire::tcp_kind::refusal), text("name taken"));
  seeds["records"] = concat(concat(frame(1, text("abc")), frame(2, {})), frame(3, bytes(40, std::byte{7})));
  seeds["empty_body"] = frame(9, {});
  // The first byte is the tiny limit: 4 here, so the 8-byte body is a defect there.
  seeds["tiny_limit"] = concat(frame(5, text("1234")), frame(6, text("12345678")));
  seeds["truncated_body"] = concat(head(40, 1), bytes(10, std::byte{1}));
  bytes partial = head(16, 2);
  partial.resize(5);
  seeds["partial_head"] = partial;
  seeds["oversized"] = concat(head(32u << 20, 1), text("and a little"));
  seeds["frame_then_partial"] = concat(frame(4, text("ok")), bytes(3, std::byte{0}));
}

void handshake_seeds(corpus& out) {
  auto& seeds = out["fuzz_handshake"];
  const bytes challenge = wire::encode_challenge(counting_nonce(1));
  seeds["challenge"] = challenge;
  seeds["challenge_trailing_byte"] = concat(challenge, bytes{std::byte{0}});
  seeds["challenge_old_version"] = concat(concat(scalar(wire::hello_magic), scalar(std::uint16_t{1})),
                                          bytes(challenge.begin() + 6, challenge.end()));

  const bytes hello_tcp = wire::encode_hello(sample_hello("tcp://10.0.0.2:4000", 0), three_types);
  seeds["hello_tcp"] = hello_tcp;
  seeds["hello_shm"] = wire::encode_hello(sample_hello("", 1u << 20), {});
  seeds["hello_ipv6"] = wire::encode_hello(sample_hello("tcp://[fe80::1%eth0]:4000", 0), three_types);
  const schema_list unsorted{{9, 1}, {3, 2}, {5, 3}};
  seeds["hello_unsorted_schema"] = wire::encode_hello(sample_hello("", 0), unsorted);
  const schema_list twice{{4, 1}, {4, 2}};
  seeds["hello_schema_twice"] = wire::encode_hello(sample_hello("", 0), twice);
  wire::hello_info bad_name = sample_hello("", 0);
  bad_name.name = "a/b";
  seeds["hello_bad_name"] = wire::encode_hello(bad_name, {});
  wire::hello_info zero = sample_hello("", 0);
  zero.incarnation = 0;
  seeds["hello_incarnation_0"] = wire::encode_hello(zero, {});
  seeds["hello_bad_endpoint"] = wire::encode_hello(sample_hello("tcp://host:0", 0), {});
  seeds["hello_trailing_byte"] = concat(hello_tcp, bytes{std::byte{0}});

  const wire::auth_mac mac =
      wire::compute_mac("0123456789abcdef0123456789abcdef", wire::acceptor_role, counting_nonce(0), counting_nonce(32));
  seeds["welcome_body"] = concat(bytes(mac.begin(), mac.end()), hello_tcp);

  seeds["endpoint_v4"] = text("tcp://10.0.0.2:4000");
  seeds["endpoint_v6"] = text("tcp://[::1]:65535");
  seeds["endpoint_name"] = text("tcp://node-1.example.com:80");
  seeds["endpoint_any_port"] = text("tcp://0.0.0.0:0");
  seeds["endpoint_bad_port"] = text("tcp://host:99999");
  seeds["endpoint_unclosed"] = text("tcp://[::1:4000");
  seeds["cookie"] = text("3f1c9a0b6d2e48f7a5c1e9b2d4f60817");
}

template <class T, std::size_t I = 0>
constexpr std::size_t case_index() {
  static_assert(I < troupe::fuzz::case_count, "not in troupe::fuzz::message_cases");
  if constexpr (std::is_same_v<typename std::tuple_element_t<I, troupe::fuzz::message_cases>::type, T>) {
    return I;
  } else {
    return case_index<T, I + 1>();
  }
}

template <class T>
bytes selected(const bytes& payload) {
  return concat(bytes{static_cast<std::byte>(case_index<T>())}, payload);
}
template <class T>
bytes selected_value(const T& value) {
  return selected<T>(troupe::to_bytes(value));
}

bytes protocol_message(std::size_t index, const bytes& payload) {
  return concat(bytes{static_cast<std::byte>(troupe::fuzz::case_count + index)}, payload);
}

troupe::fuzz::order sample_order() {
  troupe::fuzz::order o;
  o.id = 42;
  o.urgent = true;
  o.tint = troupe::fuzz::color::blue;
  o.customer = "alice";
  o.route = {{1, 2}, {3, -4}};
  o.note = "fragile";
  o.lines = {{"apples", 3}, {"pears", -1}};
  o.tags = {1, 7};
  o.extra = std::string("gift");
  o.window = {-3, 99};
  o.meta = {true, "m", {1, 2, 3, 4}};
  o.timeout = 1500ms;
  o.placed = std::chrono::system_clock::time_point(1700000000s);
  o.total = troupe::fuzz::money(12, 34);
  return o;
}

void message_seeds(corpus& out) {
  using namespace troupe::fuzz;
  auto& seeds = out["fuzz_messages"];
  seeds["i64"] = selected_value(std::int64_t{-123456789});
  seeds["bool_2"] = selected<bool>({std::byte{2}});
  seeds["enum_u8"] = selected_value(color::green);
  seeds["string"] = selected_value(std::string("hello"));
  seeds["string_overlong_length"] = selected<std::string>({std::byte{0x81}, std::byte{0x00}, std::byte{'a'}});
  seeds["string_huge_length"] = selected<std::string>(
      {std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}, std::byte{0x0f}, std::byte{'a'}});
  seeds["vector_i32"] = selected_value(std::vector<std::int32_t>{1, -2, 3});
  seeds["vector_bool"] = selected_value(std::vector<bool>{true, false, true});
  seeds["vector_string"] = selected_value(std::vector<std::string>{"a", "", "bc"});
  std::array<std::uint8_t, 16> raw{};
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::uint8_t>(i * 17);
  seeds["array_u8"] = selected_value(raw);
  seeds["map"] = selected_value(std::map<std::string, std::int64_t>{{"a", 1}, {"b", -2}});
  // Keys out of order: accepted, re-encoded sorted.
  seeds["map_unsorted"] = selected<std::map<std::string, std::int64_t>>(
      concat(concat(bytes{std::byte{2}}, troupe::to_bytes(std::pair<std::string, std::int64_t>{"b", 2})),
             troupe::to_bytes(std::pair<std::string, std::int64_t>{"a", 1})));
  seeds["map_key_twice"] = selected<std::map<std::string, std::int64_t>>(
      concat(concat(bytes{std::byte{2}}, troupe::to_bytes(std::pair<std::string, std::int64_t>{"a", 2})),
             troupe::to_bytes(std::pair<std::string, std::int64_t>{"a", 1})));
  // One element each: the unordered containers' byte order is then fixed.
  seeds["unordered_map"] = selected_value(std::unordered_map<std::uint32_t, std::string>{{5, "five"}});
  seeds["set"] = selected_value(std::set<std::int32_t>{-1, 0, 1});
  seeds["unordered_set"] = selected_value(std::unordered_set<std::string>{"only"});
  seeds["optional"] = selected_value(std::optional<std::string>("here"));
  seeds["optional_flag_2"] = selected<std::optional<std::string>>({std::byte{2}});
  using choice = std::variant<std::monostate, std::int32_t, std::string, point>;
  seeds["variant"] = selected_value(choice(point{5, 6}));
  seeds["variant_index_9"] = selected<choice>({std::byte{9}});
  seeds["tuple"] = selected_value(std::tuple<std::int8_t, std::string, bool>{-1, "t", false});
  seeds["pair"] = selected_value(std::pair<std::uint32_t, std::vector<std::uint8_t>>{7, {1, 2}});
  seeds["duration"] = selected_value(std::chrono::milliseconds(250));
  seeds["point"] = selected_value(point{-1, 1});
  seeds["vector_point"] = selected_value(std::vector<point>{{1, 2}, {3, 4}});
  seeds["vector_sample"] = selected_value(std::vector<sample>{{0.5, 2.0F, 1}, {-1.0, 0.25F, 2}});
  seeds["padded"] = selected_value(padded{'p', 77});
  seeds["money"] = selected_value(money(10, 99));
  seeds["money_bad_cents"] = selected<money>(concat(scalar(std::int64_t{1}), scalar(std::int32_t{150})));
  seeds["order"] = selected_value(sample_order());
  seeds["with_null_ref"] = selected_value(with_ref{"nobody", {}});
  // A ref to actor 5 on node "peer" (encode_address in net/node/remote.cpp:
  // node, incarnation, id, host, endpoint); only a node can resolve it.
  const bytes named_ref =
      concat(concat(concat(troupe::to_bytes(std::string("peer")), scalar(std::uint64_t{1})), scalar(std::uint64_t{5})),
             concat(scalar(std::uint64_t{0x77}), troupe::to_bytes(std::string("tcp://10.0.0.3:4000"))));
  seeds["with_named_ref"] = selected<with_ref>(concat(troupe::to_bytes(std::string("to peer")), named_ref));
  using nested = std::optional<std::map<std::int16_t, std::vector<std::optional<bool>>>>;
  seeds["nested"] = selected_value(
      nested(std::map<std::int16_t, std::vector<std::optional<bool>>>{{-2, {true, std::nullopt}}, {3, {}}}));

  using slots = std::vector<std::optional<std::array<std::uint8_t, 256>>>;
  seeds["optional_slots"] = selected_value(slots{std::nullopt, std::array<std::uint8_t, 256>{9}, std::nullopt});

  seeds["protocol_point"] = protocol_message(0, troupe::to_bytes(point{8, 9}));
  seeds["protocol_order"] = protocol_message(1, troupe::to_bytes(sample_order()));
  seeds["protocol_with_named_ref"] = protocol_message(2, concat(troupe::to_bytes(std::string("x")), named_ref));
  seeds["protocol_lookup"] = protocol_message(3, troupe::to_bytes(lookup{"key"}));
  seeds["protocol_lookup_trailing_byte"] =
      protocol_message(3, concat(troupe::to_bytes(lookup{"key"}), bytes{std::byte{1}}));
}

bool read_file(const fs::path& path, bytes& content) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  content.resize(chars.size());
  if (!chars.empty()) std::memcpy(content.data(), chars.data(), chars.size());
  return true;
}

bool write_file(const fs::path& path, const bytes& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(content.data()), static_cast<std::streamsize>(content.size()));
  return static_cast<bool>(out);
}

// Rewrites each target's directory to hold exactly the seeds.
int write_corpus(const corpus& seeds, const fs::path& root) {
  for (const auto& [target, files] : seeds) {
    const fs::path dir = root / target;
    std::error_code error;
    fs::remove_all(dir, error);
    fs::create_directories(dir, error);
    if (error) {
      std::fprintf(stderr, "make_seeds: cannot create %s: %s\n", dir.c_str(), error.message().c_str());
      return 1;
    }
    for (const auto& [name, content] : files) {
      if (!write_file(dir / name, content)) {
        std::fprintf(stderr, "make_seeds: cannot write %s\n", (dir / name).c_str());
        return 1;
      }
    }
    std::printf("%s: %zu seeds\n", dir.c_str(), files.size());
  }
  return 0;
}

// fuzz_topics: a first byte that picks the record (0: topic_interest, 1: publication), then its body.
void topic_seeds(corpus& out) {
  auto& seeds = out["fuzz_topics"];
  const bytes interest_pick{std::byte{0}};
  const bytes publication_pick{std::byte{1}};
  const auto interest = [&](std::uint64_t count, std::string name) {
    return concat(interest_pick,
                  wire::encode_interest(wire::topic_interest{0x0123456789abcdefull, count, std::move(name)}));
  };
  seeds["interest"] = interest(3, "prices/eu");
  seeds["interest_withdrawn"] = interest(0, "prices/eu");
  seeds["interest_trailing_byte"] = concat(interest(1, "t"), bytes{std::byte{0}});
  seeds["interest_bad_name"] = interest(1, "tab\there");
  seeds["interest_name_257"] = interest(1, std::string(257, 'x'));
  const bytes head = wire::encode_publication_head(0x0123456789abcdefull, "news");
  seeds["publication"] = concat(concat(publication_pick, head), text("payload bytes"));
  seeds["publication_empty_payload"] = concat(publication_pick, head);
  seeds["publication_truncated_head"] = concat(publication_pick, bytes(head.begin(), head.begin() + 5));
  bytes past_end = concat(publication_pick, scalar(std::uint64_t{7}));
  troupe::wire_writer(past_end).write_varint(4'000'000'000ull);
  seeds["publication_name_past_end"] = concat(past_end, text("abc"));
}

// fuzz_jsonrpc: a JSON-RPC message as a client sent it (valid ones of each
// shape, and the specification's examples of invalid ones).
void jsonrpc_seeds(corpus& out) {
  auto& seeds = out["fuzz_jsonrpc"];
  seeds["request_by_position"] = text(R"({"jsonrpc":"2.0","method":"bank.balance","params":["alice"],"id":1})");
  seeds["request_by_name"] =
      text(R"({"jsonrpc":"2.0","method":"bank.deposit","params":{"account":"a","cents":5},"id":"x"})");
  seeds["request_fractional_id"] = text(R"({"jsonrpc":"2.0","method":"m","id":1.5E0})");
  seeds["request_null_id"] = text(R"({"jsonrpc":"2.0","method":"m","id":null})");
  seeds["notification"] = text(R"({"jsonrpc":"2.0","method":"bank.deposit","params":["a",1]})");
  seeds["batch_mixed"] =
      text(R"([{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"},{"foo":"boo"},1])");
  seeds["batch_empty"] = text("[]");
  seeds["batch_too_large"] = text("[1,2,3,4,5,6,7,8,9]");
  seeds["invalid_params_type"] = text(R"({"jsonrpc":"2.0","method":"m","params":"bar","id":2})");
  seeds["invalid_id_type"] = text(R"({"jsonrpc":"2.0","method":"m","id":{"a":1}})");
  seeds["invalid_version"] = text(R"({"jsonrpc":"1.0","method":"m","id":3})");
  seeds["parse_error"] = text(R"({"jsonrpc":"2.0","method":"foobar,"params":"bar","baz])");
  seeds["too_deep"] = text(std::string(20, '[') + std::string(20, ']'));
}
#if TROUPE_FUZZ_GATEWAY
// fuzz_xmlrpc: methodCall and methodResponse documents (the input goes to both
// decoders), written by the gateway's encoder, and near misses.
void xmlrpc_seeds(corpus& out) {
  namespace xr = troupe::gateway::xmlrpc;
  auto& seeds = out["fuzz_xmlrpc"];
  const auto call = [](std::string_view method, std::string_view params) {
    return std::get<std::string>(xr::encode_call(method, boost::json::parse(params)));
  };
  const std::string every_type =
      call("kinds.echo", R"([-7, true, "caf\u00e9 <&>", 1.5, "\u0000\u00ffbytes", [1, [2, []]],)"
                         R"( {"name": "n", "values": [4294967296, null]}])");
  seeds["call_every_type"] = text(every_type);
  seeds["call_no_params"] = text(call("system.listMethods", "null"));
  seeds["call_one_struct"] = text(call("bank.deposit", R"({"account": "alice", "cents": 250})"));
  seeds["call_truncated"] = text(every_type.substr(0, every_type.size() / 2));
  seeds["call_untagged_and_spec_tags"] = text(
      "<?xml version=\"1.0\"?><methodCall><methodName>a.b</methodName><params>"
      "<param><value>untagged</value></param><param><value><i4>4</i4></value></param>"
      "<param><value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value></param>"
      "<param><value><base64>aGk=</base64></value></param><param><value><double>-0.25</double></value></param>"
      "<param><value><struct><member><name>k</name><value><boolean>0</boolean></value></member></struct></value>"
      "</param></params></methodCall>");
  seeds["call_doctype"] = text(
      "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"ha\"><!ENTITY b \"&a;&a;\">]>"
      "<methodCall><methodName>a</methodName><params><param><value>&b;</value></param></params></methodCall>");
  std::string deep = "<?xml version=\"1.0\"?><methodCall><methodName>a</methodName><params><param>";
  for (int i = 0; i < 40; ++i) deep += "<value><array><data>";
  for (int i = 0; i < 40; ++i) deep += "</data></array></value>";
  seeds["call_deep"] = text(deep + "</param></params></methodCall>");
  seeds["response_value"] = text(xr::encode_response(boost::json::parse(R"({"n": [1, "two", 2.5, null]})")));
  seeds["response_fault"] = text(xr::encode_fault({xr::method_not_found, "no such method"}));
}
#endif

#if TROUPE_FUZZ_GATEWAY_GRPC
// fuzz_grpc: the case's index (fuzz_grpc_cases.hpp), then a message of that
// case's type written from JSON by the gateway's own codec; and .proto texts.
void grpc_seeds(corpus& out) {
  auto& seeds = out["fuzz_grpc"];
  troupe::fuzz::grpc_world& world = troupe::fuzz::grpc_world::instance();
  const auto message = [&](std::string_view name, std::string_view json) {
    const std::size_t index = world.index_of(name);
    const std::unique_ptr<google::protobuf::Message> m(world.cases[index].message->New());
    const std::string err = troupe::gateway::grpc_codec::json_to_message(boost::json::parse(json), m.get());
    if (!err.empty()) throw std::logic_error("make_seeds: " + std::string(name) + ": " + err);
    return concat(bytes{static_cast<std::byte>(index)}, text(m->SerializeAsString()));
  };
  const std::string_view full_order =
      R"({"id": -42, "serial": 18446744073709551615, "urgent": true, "total": 12.5, "customer": "caf\u00e9",)"
      R"( "coupon": 7, "gift": false, "discount": 0.25, "points": 9007199254740993,)"
      R"( "lines": [{"item": "apples", "quantity": 3, "price": 0.5, "tags": ["fruit", ""]},)"
      R"( {"item": "pears", "quantity": -1, "price": -1e300, "tags": []}],)"
      R"( "codes": [-9223372036854775808, 0, 1], "serials": [1, 4294967296], "weights": [0.1, -0.0],)"
      R"( "flags": [true, false, true], "ship": {"street": "Main St", "note": "back door", "zip": 4294967295},)"
      R"( "bill": {"street": "", "zip": 1}})";
  seeds["request_order"] = message("shop.order", full_order);
  seeds["request_order_empty"] = message("shop.order", "{}");
  seeds["request_total"] =
      message("shop.total", R"({"lines": [{"item": "a", "quantity": 2, "price": 1.5, "tags": ["x"]}]})");
  seeds["request_lookup"] = message("shop.lookup", R"({"key": "alice", "shard": 3})");
  seeds["request_lookup_no_shard"] = message("shop.lookup", R"({"key": ""})");
  seeds["request_tally"] = message("shop.tally", R"({"values": [1, 18446744073709551615, 0]})");
  seeds["request_note"] = message("shop.note", R"({"text": "hello", "level": -32768})");
  seeds["request_note_too_wide"] = message("shop.note", R"({"text": "", "level": 40000})");
  seeds["request_ping"] = message("shop.ping", "{}");
  seeds["request_listing"] = message(
      "shop.listing", R"({"first": {"item": "plums", "quantity": 4, "price": 0.75, "tags": ["ripe"]}, "count": 3})");
  seeds["request_countdown"] = message("shop.countdown", R"({"from": -9223372036854775806})");
  seeds["reply_order"] = message("troupe.shop.order", full_order);
  seeds["reply_lookup"] = message("troupe.shop.lookup", R"({"value": -5})");
  seeds["reply_total"] = message("troupe.shop.total", R"({"value": 2.5})");
  // An outside service's replies; fields json_to_message cannot write
  // (floats, enums, maps) are left out here and found by the fuzzer.
  const std::string_view tree = R"({"label": "root", "children": [{"label": "leaf", "children": []}]})";
  seeds["reply_outside_tree"] = message("outside.outside.climb", tree);
  seeds["reply_outside_every"] =
      message("outside.outside.get", R"({"i32": -1, "s32": -2, "sf32": 3, "i64": -4, "s64": -5, "f64": 6, "sf64": -7,)"
                                     R"( "u32": 8, "f32": 9, "u64": 10, "dbl": 1.5, "flag": true, "text": "t",)"
                                     R"( "blob": "b", "packed": [-1, 1], "number": 12, "maybe": "m",)"
                                     R"( "root": {"label": "r", "children": []}})");
  seeds["reply_outside_wrapped"] = message("outside.outside.wrap", R"({"value": {"name": "n"}})");
  const bytes proto_pick{static_cast<std::byte>(world.index_of("proto_text"))};
  seeds["proto_gateway"] = concat(proto_pick, text(troupe::gateway::proto_of(world.table, "troupe")));
  seeds["proto_outside"] = concat(proto_pick, text(troupe::fuzz::outside_proto));
  seeds["proto_import"] = concat(proto_pick, text("syntax = \"proto3\";\nimport \"other.proto\";\n"));
}
#endif

#if TROUPE_FUZZ_BRIDGE_STOMP
// fuzz_stomp: the first byte is the piece size; then STOMP frames as a broker
// sends them, written by the codec's encoder, and near misses.
void stomp_seeds(corpus& out) {
  namespace stomp = troupe::bridge::stomp;
  auto& seeds = out["fuzz_stomp"];
  const auto with_piece = [](char piece, const std::string& stream) { return text(std::string(1, piece) + stream); };
  seeds["connected_message_receipt"] = with_piece(
      '\x07', stomp::encode({"CONNECTED", {{"version", "1.2"}, {"heart-beat", "1000,1000"}}, {}}) + "\n" +
                  stomp::encode({"MESSAGE",
                                 {{"destination", "/queue/orders"}, {"ack", "ID:a:1"}, {"redelivered", "true"}},
                                 R"({"id":1,"item":"x"})"}) +
                  "\r\n" + stomp::encode({"RECEIPT", {{"receipt-id", "s1"}}, {}}));
  std::string no_length = "MESSAGE\nack:1\n\nno length";
  no_length.push_back('\0');
  seeds["body_without_content_length"] = with_piece('\x01', no_length);
  seeds["error_frame"] = with_piece('\x20', stomp::encode({"ERROR", {{"message", "bad\ncredentials"}}, "details"}));
  seeds["bad_escape"] = with_piece('\x03', "MESSAGE\na:b\\x\n\n" + std::string(1, '\0'));
  seeds["lying_length"] = with_piece('\x05', "MESSAGE\ncontent-length:3\n\nabcdef" + std::string(1, '\0'));
}
#endif

#if TROUPE_FUZZ_SQS
// fuzz_sqs: the first byte picks the wire format (low bit: 1 the query
// protocol) and the JSON protocol's action (byte >> 1 indexes fuzz_sqs.cpp's
// list: 0 CreateQueue, 6 SendMessage, 7 SendMessageBatch, 8 ReceiveMessage,
// 10 DeleteMessageBatch, 12 ChangeMessageVisibilityBatch); the rest is a
// request body as the AWS SDKs write it, and near misses.
void sqs_seeds(corpus& out) {
  auto& seeds = out["fuzz_sqs"];
  const auto json_request = [](int action, std::string_view body) {
    return text(std::string(1, static_cast<char>(action << 1)) + std::string(body));
  };
  const auto query_request = [](std::string_view body) { return text("\x01" + std::string(body)); };
  seeds["json_create_queue"] = json_request(
      0, R"({"QueueName":"jobs","Attributes":{"VisibilityTimeout":"60","RedrivePolicy":"{\"deadLetterTargetArn\":)"
         R"(\"arn:aws:sqs:us-east-1:000000000000:dead\",\"maxReceiveCount\":3}"}})");
  seeds["json_send_message"] =
      json_request(6, R"({"QueueUrl":"http://127.0.0.1:9324/000000000000/jobs","MessageBody":"hello \u00e9",)"
                      R"("DelaySeconds":0,"MessageAttributes":{"kind":{"DataType":"String","StringValue":"greeting"},)"
                      R"("raw":{"DataType":"Binary","BinaryValue":"AAEC"}}})");
  seeds["json_send_batch"] = json_request(
      7, R"({"QueueUrl":"http://127.0.0.1:9324/000000000000/jobs","Entries":[{"Id":"a","MessageBody":"one"},)"
         R"({"Id":"b","MessageBody":"two","MessageGroupId":"g","MessageDeduplicationId":"d"}]})");
  seeds["json_receive"] = json_request(
      8, R"({"QueueUrl":"http://127.0.0.1:9324/000000000000/jobs","MaxNumberOfMessages":10,"WaitTimeSeconds":20,)"
         R"("VisibilityTimeout":30,"AttributeNames":["All"],"MessageAttributeNames":["kind.*"]})");
  seeds["json_change_batch"] = json_request(
      12, R"({"QueueUrl":"http://127.0.0.1:9324/000000000000/jobs","Entries":[{"Id":"a","ReceiptHandle":"1-2",)"
          R"("VisibilityTimeout":0}]})");
  seeds["json_deep"] = json_request(10, R"({"Entries":[[[[[[[[[[[[{}]]]]]]]]]]]]})");
  seeds["query_send_message"] = query_request(
      "Action=SendMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2F127.0.0.1%3A9324%2F000000000000%2Fjobs"
      "&MessageBody=hello+%C3%A9&MessageAttribute.1.Name=kind&MessageAttribute.1.Value.DataType=String"
      "&MessageAttribute.1.Value.StringValue=greeting&MessageAttribute.2.Name=raw"
      "&MessageAttribute.2.Value.DataType=Binary&MessageAttribute.2.Value.BinaryValue=AAEC");
  seeds["query_send_batch"] = query_request(
      "Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq"
      "&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one"
      "&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two"
      "&SendMessageBatchRequestEntry.2.DelaySeconds=5");
  seeds["query_receive"] = query_request(
      "Action=ReceiveMessage&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq&MaxNumberOfMessages=10"
      "&WaitTimeSeconds=20&AttributeName.1=All&MessageAttributeName.1=All");
  seeds["query_delete_batch"] = query_request(
      "Action=DeleteMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F000000000000%2Fq"
      "&DeleteMessageBatchRequestEntry.1.Id=a&DeleteMessageBatchRequestEntry.1.ReceiptHandle=1-2");
  seeds["query_create_queue"] = query_request(
      "Action=CreateQueue&Version=2012-11-05&QueueName=jobs.fifo&Attribute.1.Name=FifoQueue&Attribute.1.Value=true");
  seeds["query_bad_escape"] = query_request("Action=SendMessage&QueueUrl=%zz&MessageBody=%");
  seeds["query_bad_index"] = query_request("Action=SendMessageBatch&QueueUrl=q&SendMessageBatchRequestEntry.01.Id=a");
}
#endif

int check_corpus(const corpus& seeds, const fs::path& root) {
  int stale = 0;
  for (const auto& [target, files] : seeds) {
    const fs::path dir = root / target;
    std::set<std::string> present;
    std::error_code error;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
      present.insert(it->path().filename().string());
    }
    for (const auto& [name, content] : files) {
      bytes stored;
      if (!read_file(dir / name, stored)) {
        std::fprintf(stderr, "make_seeds: %s is missing\n", (dir / name).c_str());
        ++stale;
      } else if (stored != content) {
        std::fprintf(stderr, "make_seeds: %s differs from what make_seeds writes now\n", (dir / name).c_str());
        ++stale;
      }
      present.erase(name);
    }
    for (const std::string& name : present) {
      std::fprintf(stderr, "make_seeds: %s is not a seed (findings go to tests/fuzz/regressions/)\n",
                   (dir / name).c_str());
      ++stale;
    }
  }
  if (stale != 0) {
    std::fprintf(stderr, "make_seeds: the seed corpus is stale; rewrite it with: make_seeds %s\n", root.c_str());
    return 1;
  }
  std::printf("make_seeds: the seed corpus in %s is current\n", root.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool check = argc == 3 && std::string_view(argv[1]) == "--check";
  if (argc != 2 && !check) {
    std::fprintf(stderr, "usage: make_seeds [--check] <tests/fuzz/corpus>\n");
    return 2;
  }
  corpus seeds;
  frame_seeds(seeds);
  handshake_seeds(seeds);
  message_seeds(seeds);
  topic_seeds(seeds);
  jsonrpc_seeds(seeds);
#if TROUPE_FUZZ_GATEWAY
  xmlrpc_seeds(seeds);
#endif
#if TROUPE_FUZZ_BRIDGE_STOMP
  stomp_seeds(seeds);
#endif
#if TROUPE_FUZZ_SQS
  sqs_seeds(seeds);
#endif
#if TROUPE_FUZZ_GATEWAY_GRPC
  try {
    grpc_seeds(seeds);
  } catch (const std::exception& e) {  // a seed that no longer converts: a stale make_seeds
    std::fprintf(stderr, "make_seeds: fuzz_grpc: %s\n", e.what());
    return 1;
  }
#endif
  const fs::path root = argv[argc - 1];
  return check ? check_corpus(seeds, root) : write_corpus(seeds, root);
}
