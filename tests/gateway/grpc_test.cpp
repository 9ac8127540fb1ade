// The gateway's gRPC server against a real gRPC client: Python's grpcio with
// stubs that protoc and grpc_python_plugin generate from the .proto the server
// itself reports. Unary calls, tells, nested records and lists, proto3
// optionals, deadlines, an actor that fails, bytes that are not a request, an
// unknown method — each with its status code, and no actor sees a bad message.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/scratch_dir.hpp"
#include "troupe/gateway/grpc.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;
namespace fs = std::filesystem;

namespace bank {
struct deposit {
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
struct balance {
  std::string account;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(balance, (), (account))
struct entry {
  std::string what;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(entry, (), (what, cents))
struct statement {
  std::string account;
  std::int64_t cents;
  std::vector<entry> history;
};
BOOST_DESCRIBE_STRUCT(statement, (), (account, cents, history))
struct get_statement {
  std::string account;
  using reply = statement;
};
BOOST_DESCRIBE_STRUCT(get_statement, (), (account))
struct lookup {
  std::string account;
  using reply = std::optional<std::int64_t>;
};
BOOST_DESCRIBE_STRUCT(lookup, (), (account))
struct crash {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(crash, (), ())
struct stall {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(stall, (), ())
// Streams: the account's entries one by one; a countdown of plain numbers;
// one that never ends; one whose actor stops after one item.
struct history {
  std::string account;
  troupe::gateway::stream_sink<entry> sink;
  using stream = entry;
};
BOOST_DESCRIBE_STRUCT(history, (), (account))
struct countdown {
  std::int32_t from;
  troupe::gateway::stream_sink<std::int64_t> sink;
  using stream = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(countdown, (), (from))
struct forever {
  troupe::gateway::stream_sink<entry> sink;
  using stream = entry;
};
BOOST_DESCRIBE_STRUCT(forever, (), ())
struct one_then_crash {
  troupe::gateway::stream_sink<entry> sink;
  using stream = entry;
};
BOOST_DESCRIBE_STRUCT(one_then_crash, (), ())
using protocol = troupe::protocol<deposit, balance, get_statement, lookup, crash, stall, history, countdown, forever,
                                  one_then_crash>;
}  // namespace bank

struct bank_actor : troupe::actor<bank::protocol> {
  explicit bank_actor(std::shared_ptr<std::atomic<int>> deposits) : deposits_(std::move(deposits)) {}
  void on(const bank::deposit& d) {
    deposits_->fetch_add(1);
    accounts_[d.account] += d.cents;
    history_[d.account].push_back({"deposit", d.cents});
  }
  std::int64_t on(const bank::balance& b) { return accounts_[b.account]; }
  bank::statement on(const bank::get_statement& s) { return {s.account, accounts_[s.account], history_[s.account]}; }
  std::optional<std::int64_t> on(const bank::lookup& l) {
    const auto found = accounts_.find(l.account);
    if (found == accounts_.end()) return std::nullopt;
    return found->second;
  }
  bool on(bank::crash /*unused*/) { throw std::runtime_error("the vault is on fire"); }
  void on(bank::stall /*unused*/, troupe::reply_promise<bool> later) { stalled_.push_back(std::move(later)); }
  void on(const bank::history& h) {
    for (const bank::entry& e : history_[h.account]) {
      if (!h.sink.send(e)) return;
    }
    h.sink.end();
  }
  void on(const bank::countdown& c) {
    for (std::int64_t i = c.from; i > 0; --i) (void)c.sink.send(i);
    c.sink.end();
  }
  void on(bank::forever f) { forever_.push_back(std::move(f.sink)); }
  void on(const bank::one_then_crash& o) {
    (void)o.sink.send({"first", 1});
    throw std::runtime_error("crashed mid-stream");
  }

 private:
  std::shared_ptr<std::atomic<int>> deposits_;
  std::map<std::string, std::int64_t> accounts_;
  std::map<std::string, std::vector<bank::entry>> history_;
  std::vector<troupe::reply_promise<bool>> stalled_;
  std::vector<troupe::gateway::stream_sink<bank::entry>> forever_;
};

// Debian's interpreter, whose python3-grpcio and python3-protobuf scripts/deps
// installs (a python3 earlier in PATH, e.g. pyenv's, does not see them).
// The client's lines, by call name: "OK <reply>" or "<STATUS> <details>".
std::map<std::string, std::string> run_python_client(const gw::grpc_gateway& server, const fs::path& dir) {
  {
    std::ofstream proto(dir / "troupe_gateway.proto");
    proto << server.proto();
  }
  const troupe::test_support::command_result stubs = troupe::test_support::run_command(
      {"protoc", "-I" + dir.string(), "--python_out=" + dir.string(), "--grpc_out=" + dir.string(),
       "--plugin=protoc-gen-grpc=" + troupe::test_support::find_program("grpc_python_plugin"),
       (dir / "troupe_gateway.proto").string()});
  if (!stubs.succeeded()) throw std::runtime_error("protoc failed: " + stubs.err + "\n" + server.proto());
  const troupe::test_support::command_result run =
      troupe::test_support::run_command({"/usr/bin/python3", std::string(TROUPE_GATEWAY_TEST_DIR) + "/grpc_client.py",
                                         std::to_string(server.port()), dir.string()},
                                        {}, -1, 60s);
  if (!run.succeeded()) throw std::runtime_error("the Python client failed: " + run.err);
  std::map<std::string, std::string> lines;
  std::istringstream in(run.out);
  for (std::string line; std::getline(in, line);) {
    const std::size_t space = line.find(' ');
    lines[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  return lines;
}

TEST(gateway_grpc, the_proto_names_every_method_with_its_request_and_reply_messages) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("bank", sys.spawn<bank_actor>(std::make_shared<std::atomic<int>>()));
  const std::string proto = gw::proto_of(m);
  for (const char* expected : {"syntax = \"proto3\";", "package troupe;", "service bank {",
                               "rpc balance(.troupe.balance) returns (.troupe.balance_reply);",
                               "rpc deposit(.troupe.deposit) returns (.troupe.empty);",
                               "repeated .troupe.entry history = 3;", "optional int64 value = 1;"}) {
    EXPECT_NE(proto.find(expected), std::string::npos) << expected << "\nin:\n" << proto;
  }
}

TEST(gateway_grpc, a_python_grpcio_client_calls_the_actor_through_stubs_generated_from_the_served_proto) {
  troupe::test_support::scratch_dir dir("troupe-grpc");
  troupe::system sys;
  auto deposits = std::make_shared<std::atomic<int>>(0);
  gw::methods m(sys, gw::settings{.ask_timeout = 30s});
  m.expose("bank", sys.spawn<bank_actor>(deposits));
  // A second service on an actor of its own, for the stream that kills its actor.
  m.expose("doomed", sys.spawn<bank_actor>(std::make_shared<std::atomic<int>>()));
  gw::grpc_gateway server(m);
  ASSERT_GT(server.port(), 0);
  std::map<std::string, std::string> got = run_python_client(server, dir.path());

  EXPECT_EQ(got["deposit"], "OK");
  EXPECT_EQ(got["deposit2"], "OK");
  EXPECT_EQ(got["balance"], "OK value: 350");
  EXPECT_EQ(got["statement"],
            "OK account: \"alice\" cents: 350 history {   what: \"deposit\"   cents: 250 } history {   what: "
            "\"deposit\"   cents: 100 }");
  EXPECT_EQ(got["lookup_missing"], "OK");  // the optional left out
  EXPECT_EQ(got["lookup_found"], "OK value: 350");
  // The client's deadline (0.3 s) is the ask's timeout, not the table's 30 s.
  EXPECT_EQ(got["stall"].substr(0, 17), "DEADLINE_EXCEEDED") << got["stall"];
  EXPECT_EQ(got["garbage"].substr(0, 16), "INVALID_ARGUMENT") << got["garbage"];
  EXPECT_EQ(got["unknown"].substr(0, 13), "UNIMPLEMENTED") << got["unknown"];
  EXPECT_EQ(got["crash"].substr(0, 11), "UNAVAILABLE") << got["crash"];
  EXPECT_NE(got["crash"].find("the vault is on fire"), std::string::npos) << got["crash"];
  EXPECT_EQ(got["after_crash"].substr(0, 11), "UNAVAILABLE") << got["after_crash"];
  // Server streaming, item by item.
  EXPECT_EQ(got["history"], "OK deposit:250 deposit:100") << got["history"];
  EXPECT_EQ(got["countdown"], "OK 3 2 1") << got["countdown"];
  EXPECT_EQ(got["forever"].substr(0, 17), "DEADLINE_EXCEEDED") << got["forever"];
  EXPECT_EQ(got["one_then_crash"].substr(0, 11), "UNAVAILABLE") << got["one_then_crash"];
  EXPECT_NE(got["one_then_crash"].find("after first:1"), std::string::npos) << got["one_then_crash"];
  // Only the two real deposits reached the actor.
  EXPECT_EQ(deposits->load(), 2);
  EXPECT_EQ(m.in_flight(), 0U);
}

namespace odd {
struct grid {
  std::vector<std::vector<int>> cells;
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(grid, (), (cells))
using protocol = troupe::protocol<grid>;
}  // namespace odd

TEST(gateway_grpc, a_method_protobuf_cannot_express_is_refused_by_name) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("odd", sys.spawn<odd::protocol>([](const odd::grid&) { return true; }));
  try {
    gw::grpc_gateway server(m);
    FAIL() << "a list of lists was accepted";
  } catch (const troupe::troupe_error& e) {
    EXPECT_NE(std::string(e.what()).find("odd.grid: member 'cells'"), std::string::npos) << e.what();
  }
}

}  // namespace

namespace {

namespace shop {
struct price {
  std::string item;
  std::int32_t quantity;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(price, (), (item, quantity))
struct restock {
  std::string item;
  std::int32_t quantity;
};
BOOST_DESCRIBE_STRUCT(restock, (), (item, quantity))
using protocol = troupe::protocol<price, restock>;
}  // namespace shop

// The shop as a user's existing .proto would have it: its own package and
// message names, fields numbered otherwise than declaration order.
constexpr const char* shop_proto = R"(
syntax = "proto3";
package acme.shop.v1;
message PriceRequest { int32 quantity = 7; string item = 3; }
message PriceReply { int64 value = 2; }
message RestockRequest { string item = 1; int32 quantity = 2; }
message Nothing {}
service shop {
  rpc price(PriceRequest) returns (PriceReply);
  rpc restock(RestockRequest) returns (Nothing);
}
)";

std::string refusal(const gw::methods& m, const std::string& proto) {
  try {
    gw::grpc_gateway server(m, {.proto = proto});
  } catch (const troupe::troupe_error& e) {
    return e.what();
  }
  return "accepted";
}

TEST(gateway_grpc, a_users_proto_is_served_with_its_own_numbers_and_names_once_it_matches_the_protocol) {
  troupe::system sys;
  gw::methods m(sys);
  std::map<std::string, std::int64_t> stock;
  m.expose("shop", sys.spawn<shop::protocol>([&](const shop::price& p) { return std::int64_t{p.quantity} * 150; },
                                             [&](const shop::restock& r) { stock[r.item] += r.quantity; }));
  gw::grpc_gateway server(m, {.proto = shop_proto});
  EXPECT_NE(server.proto().find("package acme.shop.v1;"), std::string::npos) << server.proto();
  // A client that encodes with the user's numbering gets the right answers.
  gw::grpc_client client(sys, {.target = "127.0.0.1:" + std::to_string(server.port()), .proto = shop_proto});
  EXPECT_EQ(client.actor()
                .ask(gw::rpc_request{"shop.price", boost::json::parse(R"({"item":"nail","quantity":4})"), 5000ms}, 10s)
                .get(),
            boost::json::value(600));
}

TEST(gateway_grpc, a_users_proto_that_differs_from_the_protocol_is_refused_naming_the_method_and_field) {
  troupe::system sys;
  gw::methods m(sys);
  m.expose("shop",
           sys.spawn<shop::protocol>([](const shop::price&) { return std::int64_t{0}; }, [](const shop::restock&) {}));
  const std::string base = shop_proto;
  auto with = [&](const std::string& from, const std::string& to) {
    std::string p = base;
    p.replace(p.find(from), from.size(), to);
    return p;
  };
  EXPECT_NE(refusal(m, with("int32 quantity = 7; ", ""))
                .find("shop.price: the .proto's acme.shop.v1.PriceRequest has "
                      "no field 'quantity'"),
            std::string::npos);
  EXPECT_NE(refusal(m, with("int32 quantity = 7;", "string quantity = 7;")).find("PriceRequest.quantity is string"),
            std::string::npos);
  EXPECT_NE(refusal(m, with("int32 quantity = 7;", "int32 quantity = 7; bool gift = 9;")).find("a field 'gift'"),
            std::string::npos);
  EXPECT_NE(refusal(m, with("  rpc restock(RestockRequest) returns (Nothing);\n", "")).find("has no rpc 'restock'"),
            std::string::npos);
  EXPECT_NE(refusal(m, with("returns (PriceReply)", "returns (stream PriceReply)")).find("shop.price"),
            std::string::npos);
  EXPECT_NE(refusal(m, with("int64 value = 2;", "repeated int64 value = 2;")).find("repeated"), std::string::npos);
  EXPECT_NE(refusal(m, "syntax = \"proto3\"; message {").find("does not parse"), std::string::npos);
}

}  // namespace
