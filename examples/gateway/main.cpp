// gateway: one bank actor served over JSON-RPC 2.0, XML-RPC and gRPC at once
// (docs/gateways.md), and called back through troupe's own RPC clients.
//
//   build/examples/gateway              # serves, calls itself over each protocol, exits 0 when every answer is right
//   build/examples/gateway --serve DIR  # serves until stdin closes; prints the addresses, writes DIR/bank.proto
//                                       # (examples/gateway/clients.py drives this with Python's own clients)
//
// JSON-RPC is called with a plain Beast HTTP POST (what any client sends),
// XML-RPC and gRPC with troupe's clients (rpc_client, grpc_client): the same
// request type, the same reply, whatever the protocol behind it.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <troupe/gateway/methods.hpp>
#include <troupe/gateway/rpc_client.hpp>
#include <troupe/gateway/server.hpp>
#include <troupe/gateway/stream.hpp>
#include <troupe/troupe.hpp>
#if TROUPE_EXAMPLE_GRPC
#include <troupe/gateway/grpc.hpp>
#endif

using namespace std::chrono_literals;
namespace json = boost::json;
namespace gw = troupe::gateway;

namespace bank {
// Described members become the method's parameters (by name or by position).
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
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(entry, (), (account, cents))
// A streamed answer: every deposit so far, one message each (gRPC streams it;
// JSON-RPC and XML-RPC get them as one array).
struct ledger {
  gw::stream_sink<entry> sink;
  using stream = entry;
};
BOOST_DESCRIBE_STRUCT(ledger, (), ())
using protocol = troupe::protocol<deposit, balance, ledger>;
}  // namespace bank

struct bank_actor : troupe::actor<bank::protocol> {
  void on(const bank::deposit& d) {
    accounts_[d.account] += d.cents;
    ledger_.push_back({d.account, d.cents});
  }
  std::int64_t on(const bank::balance& b) { return accounts_[b.account]; }
  void on(const bank::ledger& l) {
    for (const bank::entry& e : ledger_) {
      if (!l.sink.send(e)) return;
    }
    l.sink.end();
  }

 private:
  std::map<std::string, std::int64_t> accounts_;
  std::vector<bank::entry> ledger_;
};

// One JSON-RPC call over HTTP, the way any client would make it.
std::string post(std::uint16_t port, const std::string& body) {
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> request(http::verb::post, "/jsonrpc", 11);
  request.set(http::field::host, "127.0.0.1");
  request.set(http::field::content_type, "application/json");
  request.body() = body;
  request.prepare_payload();
  http::write(stream, request);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  return std::to_string(response.result_int()) + " " + response.body();
}

int wrong = 0;
void check(std::string_view what, const std::string& got, const std::string& expected) {
  std::cout << what << " -> " << got << "\n";
  if (got != expected) {
    std::cout << "   expected " << expected << "\n";
    ++wrong;
  }
}

// An ask through one of troupe's RPC clients, from this plain thread.
std::string ask(const troupe::ref<gw::rpc_protocol>& client, const std::string& method, std::string_view params) {
  troupe::expected<json::value> r = client.ask(gw::rpc_request{method, json::parse(params), 5000ms}, 10s).try_get();
  return r ? json::serialize(*r) : "error: " + r.error().text();
}

int main(int argc, char** argv) {
  std::cout << std::unitbuf;  // each line as it is written: a crash shows how far the run got
  const bool serve = argc >= 3 && std::string_view(argv[1]) == "--serve";
  troupe::system sys;
  gw::methods table(sys);
  table.expose("bank", sys.spawn<bank_actor>());  // bank.deposit, bank.balance, bank.ledger
  gw::server http;                                // 127.0.0.1, a free port
  http.serve_jsonrpc(table);                      // POST and WebSocket on /jsonrpc
  http.serve_xmlrpc(table);                       // POST on /RPC2
  http.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(http.port());
  std::cout << "jsonrpc " << base << "/jsonrpc\n";
  std::cout << "xmlrpc " << base << "/RPC2\n";
#if TROUPE_EXAMPLE_GRPC
  gw::grpc_gateway grpc(table);  // 127.0.0.1, a free port; the .proto is generated from the protocol
  std::cout << "grpc 127.0.0.1:" << grpc.port() << "\n";
#endif
  std::cout << std::flush;

  if (serve) {
#if TROUPE_EXAMPLE_GRPC
    std::ofstream(std::string(argv[2]) + "/bank.proto") << grpc.proto();
#endif
    std::cout << "ready" << std::endl;
    std::string ignored;
    while (std::getline(std::cin, ignored)) {
    }
    return 0;
  }

  // JSON-RPC, as an outside client sends it.
  check("JSON-RPC deposit",
        post(http.port(),
             R"({"jsonrpc":"2.0","method":"bank.deposit","params":{"account":"alice","cents":1500},"id":1})"),
        R"(200 {"jsonrpc":"2.0","id":1,"result":null})");
  check("JSON-RPC notification",
        post(http.port(), R"({"jsonrpc":"2.0","method":"bank.deposit","params":["alice",250]})"), "204 ");
  check("JSON-RPC balance",
        post(http.port(), R"({"jsonrpc":"2.0","method":"bank.balance","params":["alice"],"id":"b"})"),
        R"(200 {"jsonrpc":"2.0","id":"b","result":1750})");
  check(
      "JSON-RPC unknown method", post(http.port(), R"({"jsonrpc":"2.0","method":"bank.vault","id":3})"),
      R"(200 {"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found","data":"method not found: no method named 'bank.vault'"}})");

  // XML-RPC, through troupe's rpc_client.
  gw::rpc_client xml(sys, {.host = "127.0.0.1", .port = std::to_string(http.port()), .target = "/RPC2"});
  check("XML-RPC deposit", ask(xml.actor(), "bank.deposit", R"(["bob", 40])"), "null");
  check("XML-RPC balance", ask(xml.actor(), "bank.balance", R"(["bob"])"), "40");
  check("XML-RPC ledger", ask(xml.actor(), "bank.ledger", "[]"),
        R"([{"account":"alice","cents":1500},{"account":"alice","cents":250},{"account":"bob","cents":40}])");

#if TROUPE_EXAMPLE_GRPC
  // gRPC, through troupe's grpc_client and the .proto the server generated.
  gw::grpc_client g(sys, {.target = "127.0.0.1:" + std::to_string(grpc.port()), .proto = grpc.proto()});
  check("gRPC balance", ask(g.actor(), "bank.balance", R"({"account":"alice"})"), "1750");
  check("gRPC deposit", ask(g.actor(), "bank.deposit", R"({"account":"carol","cents":7})"), "{}");
  check("gRPC balance", ask(g.actor(), "bank.balance", R"(["carol"])"), "7");
#endif
  http.stop();
  std::cout << (wrong == 0 ? "every answer as expected\n" : "some answers were wrong\n");
  return wrong == 0 ? 0 : 1;
}
