// gateway: a bank actor served over JSON-RPC 2.0 (docs/gateways.md). The
// program serves the bank on a loopback port, then calls it as any outside
// client would — HTTP POSTs with Boost.Beast — prints what comes back, and
// exits 0 when every answer is the one expected.
//
//   build/examples/gateway      # or: curl -d '{"jsonrpc":"2.0","method":"bank.balance","params":["alice"],"id":1}' ...
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/describe/class.hpp>
#include <cstdint>
#include <iostream>
#include <map>
#include <string>
#include <troupe/gateway/methods.hpp>
#include <troupe/gateway/server.hpp>
#include <troupe/troupe.hpp>

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
using protocol = troupe::protocol<deposit, balance>;
}  // namespace bank

struct bank_actor : troupe::actor<bank::protocol> {
  void on(const bank::deposit& d) { accounts_[d.account] += d.cents; }
  std::int64_t on(const bank::balance& b) { return accounts_[b.account]; }

 private:
  std::map<std::string, std::int64_t> accounts_;
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

int main() {
  troupe::system sys;
  troupe::gateway::methods table(sys);
  table.expose("bank", sys.spawn<bank_actor>());  // methods bank.deposit and bank.balance
  troupe::gateway::server server;                 // 127.0.0.1, a free port
  server.serve_jsonrpc(table);                    // POST and WebSocket on /jsonrpc
  server.start();
  std::cout << "serving JSON-RPC on http://127.0.0.1:" << server.port() << "/jsonrpc\n";

  struct exchange {
    std::string request;
    std::string expected;
  };
  const exchange calls[] = {
      {R"({"jsonrpc":"2.0","method":"bank.deposit","params":{"account":"alice","cents":1500},"id":1})",
       R"(200 {"jsonrpc":"2.0","id":1,"result":null})"},
      {R"({"jsonrpc":"2.0","method":"bank.deposit","params":["alice",250]})", "204 "},  // a notification
      {R"({"jsonrpc":"2.0","method":"bank.balance","params":["alice"],"id":"b"})",
       R"(200 {"jsonrpc":"2.0","id":"b","result":1750})"},
      {R"({"jsonrpc":"2.0","method":"bank.vault","id":3})",
       R"(200 {"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found","data":"method not found: no method named 'bank.vault'"}})"},
  };
  int wrong = 0;
  for (const exchange& e : calls) {
    const std::string answer = post(server.port(), e.request);
    std::cout << "-> " << e.request << "\n<- " << answer << "\n";
    if (answer != e.expected) {
      std::cout << "   expected " << e.expected << "\n";
      ++wrong;
    }
  }
  server.stop();
  return wrong == 0 ? 0 : 1;
}
