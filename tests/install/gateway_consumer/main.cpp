// Uses an installed troupe::gateway: an actor's described message type as a
// JSON-RPC method, called through jsonrpc::execute, with a server started on
// a free loopback port. Exits 0 only if the reply is the expected one.
#include <troupe/gateway/jsonrpc.hpp>
#include <troupe/gateway/methods.hpp>
#include <troupe/gateway/server.hpp>
#include <troupe/runtime/actor.hpp>
#include <troupe/runtime/system.hpp>

#include <boost/describe/class.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <optional>
#include <string>

struct twice {
  int n;
  using reply = int;
};
BOOST_DESCRIBE_STRUCT(twice, (), (n))

struct doubler : troupe::actor<troupe::protocol<twice>> {
  int on(const twice& t) { return 2 * t.n; }
};

int main() {
  troupe::system sys;
  troupe::gateway::methods table(sys);
  table.expose("math", sys.spawn<doubler>());
  troupe::gateway::server server;
  server.serve_jsonrpc(table);
  server.start();
  std::promise<std::optional<std::string>> answered;
  troupe::gateway::jsonrpc::execute(table, R"({"jsonrpc":"2.0","method":"math.twice","params":[21],"id":1})", {},
                                    [&](std::optional<std::string> r) { answered.set_value(std::move(r)); });
  auto reply = answered.get_future();
  if (reply.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return 1;
  const std::optional<std::string> text = reply.get();
  const std::string want = R"({"jsonrpc":"2.0","id":1,"result":42})";
  std::printf("port %u: %s\n", static_cast<unsigned>(server.port()), text ? text->c_str() : "(none)");
  return server.port() != 0 && text == want ? 0 : 1;
}
