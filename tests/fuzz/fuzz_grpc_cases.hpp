// What fuzz_grpc drives, shared with make_seeds.cpp (which writes a valid
// request or reply for each case): a method table over a "shop" protocol whose
// messages use every kind the gateway maps to protobuf (nested records,
// repeated fields, proto3 optionals, int32/int64/uint32/uint64/double/bool/
// string, a narrower integer, a reply wrapped in `<type>_reply`, a tell,
// streams of records and of numbers), its
// schema as the gateway serves it (proto_of, parsed back with parse_proto), and
// an outside service's .proto with every protobuf type and a message that
// contains itself, as a grpc_client user may give one.
//
//   troupe::fuzz::grpc_world& w = troupe::fuzz::grpc_world::instance();
//   const troupe::fuzz::grpc_case& c = w.cases[input[0] % w.cases.size()];
//   std::unique_ptr<google::protobuf::Message> m(c.message->New());   // then ParseFromString(rest)
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include <boost/describe/class.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "grpc_codec.hpp"
#include "troupe/gateway/grpc.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/gateway/stream.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::fuzz::shop {

struct address {
  std::string street;
  std::optional<std::string> note;
  std::uint32_t zip = 0;
};
BOOST_DESCRIBE_STRUCT(address, (), (street, note, zip))
struct line {
  std::string item;
  std::int32_t quantity = 0;
  double price = 0;
  std::vector<std::string> tags;
};
BOOST_DESCRIBE_STRUCT(line, (), (item, quantity, price, tags))
// Echoed back: every kind on the way in and on the way out.
struct order {
  std::int64_t id = 0;
  std::uint64_t serial = 0;
  bool urgent = false;
  double total = 0;
  std::string customer;
  std::optional<std::int64_t> coupon;
  std::optional<bool> gift;
  std::optional<double> discount;
  std::optional<std::uint64_t> points;
  std::vector<line> lines;
  std::vector<std::int64_t> codes;
  std::vector<std::uint64_t> serials;
  std::vector<double> weights;
  std::vector<bool> flags;
  address ship;
  std::optional<address> bill;
  using reply = order;
};
BOOST_DESCRIBE_STRUCT(order, (),
                      (id, serial, urgent, total, customer, coupon, gift, discount, points, lines, codes, serials,
                       weights, flags, ship, bill))
struct total {
  std::vector<line> lines;
  using reply = double;  // total_reply { double value = 1; }
};
BOOST_DESCRIBE_STRUCT(total, (), (lines))
struct lookup {
  std::string key;
  std::optional<std::uint32_t> shard;
  using reply = std::optional<std::int64_t>;  // lookup_reply { optional int64 value = 1; }
};
BOOST_DESCRIBE_STRUCT(lookup, (), (key, shard))
struct tally {
  std::vector<std::uint64_t> values;
  using reply = std::uint64_t;
};
BOOST_DESCRIBE_STRUCT(tally, (), (values))
// A tell (the reply is `empty`); `level` is an int32 in the .proto, so a peer
// can send one that does not fit: refused as invalid parameters.
struct note {
  std::string text;
  std::int16_t level = 0;
};
BOOST_DESCRIBE_STRUCT(note, (), (text, level))
struct ping {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(ping, (), ())

// Server streaming: records (the item is `line`), and numbers (the item is
// `countdown_item { int64 value = 1; }`).
struct listing {
  line first;
  std::int32_t count = 0;
  troupe::gateway::stream_sink<line> sink;  // filled by the table, not described
  using stream = line;
};
BOOST_DESCRIBE_STRUCT(listing, (), (first, count))
struct countdown {
  std::int64_t from = 0;
  troupe::gateway::stream_sink<std::int64_t> sink;
  using stream = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(countdown, (), (from))

using protocol = troupe::protocol<order, total, lookup, tally, note, ping, listing, countdown>;

struct shop_actor final : troupe::actor<protocol> {
  order on(order o) { return o; }
  double on(const total& t) {
    double sum = 0;
    for (const line& l : t.lines) sum += l.price * l.quantity;
    return sum;
  }
  std::optional<std::int64_t> on(const lookup& l) {
    if (l.key.empty()) return std::nullopt;
    return static_cast<std::int64_t>(l.key.size()) + (l.shard ? static_cast<std::int64_t>(*l.shard) : 0);
  }
  std::uint64_t on(const tally& t) {
    std::uint64_t most = 0;
    for (const std::uint64_t v : t.values) most = v > most ? v : most;
    return most;
  }
  void on(const note& /*unused*/) { ++notes; }
  bool on(ping /*unused*/) { return true; }
  // A few items made from the request (at most 4: the input, not the count, is what is fuzzed).
  void on(const listing& l) {
    line item = l.first;
    for (std::int32_t i = 0; i < l.count && i < 4; ++i) {
      if (!l.sink.send(item)) return;
      item.tags.push_back(item.item);
    }
    l.sink.end();
  }
  void on(const countdown& c) {
    for (std::int64_t i = 1; i <= 4; ++i) {
      if (!c.sink.send(c.from / i)) return;  // from, from/2, ...: no overflow at either end
    }
    c.sink.end();
  }
  std::size_t notes = 0;
};

}  // namespace troupe::fuzz::shop

namespace troupe::fuzz {

// An outside service's .proto (a grpc_client's): every protobuf type, maps, a
// oneof, and `tree`, which contains itself.
inline constexpr std::string_view outside_proto = R"(syntax = "proto3";
package outside;
enum color { COLOR_UNSET = 0; RED = 1; GREEN = 2; }
message tree { string label = 1; repeated tree children = 2; tree parent = 3; }
message every {
  int32 i32 = 1; sint32 s32 = 2; sfixed32 sf32 = 3; int64 i64 = 4; sint64 s64 = 5; fixed64 f64 = 6;
  sfixed64 sf64 = 7; uint32 u32 = 8; fixed32 f32 = 9; uint64 u64 = 10; float flt = 11; double dbl = 12;
  bool flag = 13; string text = 14; bytes blob = 15; color tint = 16; repeated color tints = 17;
  repeated sint64 packed = 18; repeated float floats = 19; map<string, int64> counts = 20;
  map<int32, tree> forest = 21;
  oneof choice { string name = 22; int64 number = 23; tree node = 24; }
  optional string maybe = 25; tree root = 26;
}
message wrapped { every value = 1; }
service outside { rpc get(tree) returns (every); rpc wrap(tree) returns (wrapped); rpc climb(every) returns (tree); }
)";

// One way the input's bytes are read (the first byte picks it: the cases in
// the order the constructor adds them, so a new message type renumbers them;
// make_seeds rewrites the corpus, regressions/fuzz_grpc/ is by hand).
struct grpc_case {
  enum class side {
    server_request,  // a client's request to the gateway: parsed, to JSON, through the table, the reply back
    client_reply,    // a server's reply to grpc_client: parsed, to JSON (unwrapped when it is `value` alone)
    proto_text,      // .proto text given to grpc_client or grpc_settings::proto
  };
  side kind = side::server_request;
  std::string name;                                    // "shop.order"; a client_reply: "<package>.<service>.<rpc>"
  const google::protobuf::Message* message = nullptr;  // what the bytes parse as (a prototype)
  const google::protobuf::Message* reply = nullptr;    // server_request: the reply message
  bool stream = false;                                 // server_request: answered by a stream of reply messages
  bool wrapped_reply = false;  // server_request: the reply (item) is `{ value = 1; }` around the actor's answer
  bool empty_reply = false;    // server_request: the reply is `empty` (a tell)
  bool unwrap = false;         // client_reply: the reply has one field, `value`
};

// The table, the schemas and the cases; built once per process.
class grpc_world {
 public:
  static grpc_world& instance() {
    // Never destroyed: libFuzzer may exit from any thread at any time.
    static grpc_world* world = new grpc_world;  // NOLINT(cppcoreguidelines-owning-memory): reachable, not a leak
    return *world;
  }

  troupe::system system{troupe::config::deterministic()};  // the test's thread drives it: no threads
  troupe::gateway::methods table{system};
  std::vector<grpc_case> cases;

  [[nodiscard]] std::size_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < cases.size(); ++i) {
      if (cases[i].name == name) return i;
    }
    throw std::logic_error("no fuzz_grpc case " + std::string(name));
  }

 private:
  grpc_world() {
    table.expose("shop", system.spawn<shop::shop_actor>());
    // The gateway's schema as a client sees it: the .proto it serves, parsed back.
    const google::protobuf::FileDescriptor* served = build(served_pool_, troupe::gateway::proto_of(table, "troupe"));
    for (int s = 0; s < served->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = served->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const google::protobuf::MethodDescriptor* rpc = service->method(m);
        const std::string method = service->name() + "." + rpc->name();
        grpc_case c;
        c.kind = grpc_case::side::server_request;
        c.name = method;
        c.message = served_factory_.GetPrototype(rpc->input_type());
        c.reply = served_factory_.GetPrototype(rpc->output_type());
        c.stream = rpc->server_streaming();
        c.wrapped_reply = rpc->output_type()->name() == rpc->name() + (c.stream ? "_item" : "_reply");
        c.empty_reply = rpc->output_type()->name() == "empty";
        cases.push_back(c);
        add_client_reply(rpc);
      }
    }
    const google::protobuf::FileDescriptor* outside = build(outside_pool_, std::string(outside_proto));
    for (int s = 0; s < outside->service_count(); ++s) {
      for (int m = 0; m < outside->service(s)->method_count(); ++m) add_client_reply(outside->service(s)->method(m));
    }
    grpc_case text;
    text.kind = grpc_case::side::proto_text;
    text.name = "proto_text";
    cases.push_back(text);
  }

  static const google::protobuf::FileDescriptor* build(google::protobuf::DescriptorPool& pool,
                                                       const std::string& proto) {
    google::protobuf::FileDescriptorProto file;
    if (std::string bad = troupe::gateway::grpc_codec::parse_proto(proto, file); !bad.empty()) {
      throw std::logic_error("fuzz_grpc: " + bad);
    }
    file.set_name("fuzz_grpc.proto");
    const google::protobuf::FileDescriptor* built = pool.BuildFile(file);
    if (built == nullptr) throw std::logic_error("fuzz_grpc: a .proto does not build");
    return built;
  }

  // As grpc_client's connect() reads a unary rpc of the .proto.
  void add_client_reply(const google::protobuf::MethodDescriptor* rpc) {
    grpc_case c;
    c.kind = grpc_case::side::client_reply;
    c.name = rpc->service()->full_name() + "." + rpc->name();
    c.message = rpc->file()->pool() == &served_pool_ ? served_factory_.GetPrototype(rpc->output_type())
                                                     : outside_factory_.GetPrototype(rpc->output_type());
    c.unwrap = rpc->output_type()->field_count() == 1 && rpc->output_type()->field(0)->name() == "value";
    cases.push_back(c);
  }

  // The cases' prototypes belong to these factories.
  google::protobuf::DescriptorPool served_pool_;
  google::protobuf::DynamicMessageFactory served_factory_{&served_pool_};
  google::protobuf::DescriptorPool outside_pool_;
  google::protobuf::DynamicMessageFactory outside_factory_{&outside_pool_};
};

}  // namespace troupe::fuzz
