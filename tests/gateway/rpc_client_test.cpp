// The RPC client: an actor calls real outside services started here
// (rpc_servers.py: Python's SimpleXMLRPCServer, a JSON-RPC 2.0 server on
// http.server, a server that never answers) and every way a call ends comes
// back exactly once, as a reply or as a troupe::error with a clear text.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "support/child_process.hpp"
#include "troupe/gateway/rpc_client.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/system.hpp"
#include "troupe/runtime/task.hpp"

namespace {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;
namespace json = boost::json;
namespace ts = troupe::test_support;

// One of rpc_servers.py's services, killed with the test.
class python_server {
 public:
  explicit python_server(const std::string& kind) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    ts::unique_fd out_read(fds[0]), out_write(fds[1]);
    ts::child_options options;
    options.stdout_fd = out_write.get();
    options.close_inherited_fds = true;
    pid_ = ts::start_child({"python3", std::string(TROUPE_GATEWAY_TEST_DIR) + "/rpc_servers.py", kind},
                           ts::environment_with({}), options);
    out_write.reset();
    out_ = std::move(out_read);
    const std::string line = next_line(20s);
    if (line.rfind("port ", 0) != 0) throw std::runtime_error("rpc_servers.py " + kind + " did not start: " + line);
    port_ = line.substr(5);
  }
  // The next line it prints, or "" when none comes within `timeout`.
  std::string next_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pending_.find('\n') == std::string::npos) {
      pollfd readable{out_.get(), POLLIN, 0};
      if (::poll(&readable, 1, ts::poll_timeout_until(deadline)) <= 0) return "";
      char buffer[256];
      const ssize_t n = ::read(out_.get(), buffer, sizeof buffer);
      if (n <= 0) return "";
      pending_.append(buffer, static_cast<std::size_t>(n));
    }
    const std::size_t end = pending_.find('\n');
    std::string line = pending_.substr(0, end);
    pending_.erase(0, end + 1);
    return line;
  }
  python_server(const python_server&) = delete;
  python_server& operator=(const python_server&) = delete;
  ~python_server() {
    try {
      ts::kill_child(pid_);
    } catch (...) {  // a destructor: the server dies with the test anyway (PR_SET_PDEATHSIG)
    }
  }
  [[nodiscard]] const std::string& port() const { return port_; }

 private:
  pid_t pid_ = -1;
  ts::unique_fd out_;
  std::string pending_;
  std::string port_;
};

// A port nothing listens on: bound by the kernel's choice, then closed.
std::string closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return std::to_string(a.local_endpoint().port());
}

struct add {
  std::int64_t a;
  std::int64_t b;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(add, (), (a, b))
// Any call; the reply is "ok: <result>" or "<errc>: <text>".
struct any_call {
  std::string method;
  json::value params;
  std::chrono::milliseconds timeout;
  using reply = std::string;
};
// echo's result, converted to an integer: "ok: <n>" or "<errc>: <text>".
struct echo_as_int {
  std::string text;
  using reply = std::string;
};
using caller_protocol = troupe::protocol<add, any_call, echo_as_int>;

std::string said(const troupe::error& e) { return std::string(troupe::to_string(e.code())) + ": " + e.text(); }

// An actor that calls the outside service from its task<> handlers.
struct caller : troupe::actor<caller_protocol> {
  explicit caller(troupe::ref<gw::rpc_protocol> service) : service_(std::move(service)) {}
  troupe::task<std::int64_t> on(add a) {
    // The braced list outside the co_await expression: g++ 12 cannot keep an
    // initializer_list's array in a coroutine frame ("array used as initializer").
    json::value params = json::array{a.a, a.b};
    co_return co_await gw::rpc_client::call_on<std::int64_t>(service_, "add", std::move(params), 5s);
  }
  troupe::task<std::string> on(echo_as_int e) {
    json::value params = json::array{e.text};
    troupe::expected<std::int64_t> n =
        co_await gw::rpc_client::try_call_on<std::int64_t>(service_, "echo", std::move(params), 5s);
    co_return n ? "ok: " + std::to_string(*n) : said(n.error());
  }
  troupe::task<std::string> on(any_call c) {
    troupe::expected<json::value> v = co_await gw::rpc_client::try_call_on(service_, c.method, c.params, c.timeout);
    co_return v ? "ok: " + json::serialize(*v) : said(v.error());
  }

 private:
  troupe::ref<gw::rpc_protocol> service_;
};

std::string call(const troupe::ref<caller_protocol>& c, const std::string& method, std::string_view params,
                 std::chrono::milliseconds timeout = 5s) {
  return c.ask(any_call{method, params.empty() ? json::value(nullptr) : json::parse(params), timeout}, 30s).get();
}

bool starts_with(const std::string& text, std::string_view prefix) { return text.rfind(prefix, 0) == 0; }

gw::rpc_endpoint on_port(gw::rpc_endpoint endpoint, const std::string& port) {
  endpoint.host = "127.0.0.1";
  endpoint.port = port;
  return endpoint;
}

// A service rpc_servers.py runs, a client for it, and an actor calling through it.
struct calling {
  calling(const std::string& kind, gw::rpc_endpoint endpoint)
      : server(kind),
        service(sys, on_port(std::move(endpoint), server.port())),
        c(sys.spawn<caller>(service.actor())) {}
  python_server server;
  troupe::system sys;
  gw::rpc_client service;
  troupe::ref<caller_protocol> c;
};

const gw::rpc_endpoint jsonrpc_at_rpc{
    .host = "127.0.0.1", .port = "0", .target = "/rpc", .encoding = gw::rpc_encoding::jsonrpc};

TEST(rpc_client, an_actor_calls_python_simple_xmlrpc_server_and_gets_typed_replies_and_faults) {
  calling xmlrpc("xmlrpc", {.host = "127.0.0.1", .port = "0", .target = "/RPC2"});
  const auto& c = xmlrpc.c;
  const python_server& server = xmlrpc.server;
  EXPECT_EQ(c.ask(add{2, 40}, 30s).get(), 42);
  EXPECT_EQ(call(c, "echo", R"([{"name": "café", "list": [1, 2.5, true, null]}])"),
            R"(ok: {"name":"café","list":[1,2.5E0,true,null]})");
  // Bytes that are not text travel as base64 and come back as the same bytes.
  EXPECT_EQ(call(c, "echo", R"(["\u0001\u0002"])"), R"(ok: "\u0001\u0002")");
  const std::string fault = call(c, "fail", "[]");
  EXPECT_EQ(fault, "remote_fault: XML-RPC at http://127.0.0.1:" + server.port() +
                       "/RPC2: fail: XML-RPC fault 42: no such luck");
  const std::string unknown = call(c, "nope", "[]");
  EXPECT_TRUE(starts_with(unknown, "remote_fault: ")) << unknown;
  EXPECT_NE(unknown.find("nope"), std::string::npos) << unknown;
  // A result that does not convert to the handler's type.
  EXPECT_EQ(c.ask(echo_as_int{"x"}, 30s).get(),
            R"(malformed_message: the result of echo does not convert (not a number): "x")");
}

TEST(rpc_client, an_actor_calls_a_python_jsonrpc_server_by_position_and_by_name_over_one_kept_connection) {
  calling jsonrpc("jsonrpc", jsonrpc_at_rpc);
  const auto& c = jsonrpc.c;
  EXPECT_EQ(c.ask(add{2, 40}, 30s).get(), 42);
  EXPECT_EQ(call(c, "add", R"({"a": 1, "b": 2})"), "ok: 3");
  EXPECT_EQ(call(c, "echo", R"([{"x": [1, "two", null]}])"), R"(ok: {"x":[1,"two",null]})");
  // One after another, the calls reused the first connection.
  EXPECT_EQ(call(c, "connections", "[]"), "ok: 1");
}

TEST(rpc_client, a_kept_connection_the_server_closed_meanwhile_is_replaced_and_the_call_goes_through) {
  calling jsonrpc("jsonrpc", jsonrpc_at_rpc);
  const auto& c = jsonrpc.c;
  EXPECT_EQ(call(c, "close_after", "[]"), R"(ok: "closing")");
  EXPECT_EQ(call(c, "add", "[1, 2]"), "ok: 3");  // sent on the dead connection, then once more on a new one
  EXPECT_EQ(call(c, "connections", "[]"), "ok: 2");
}

TEST(rpc_client, jsonrpc_error_objects_foreign_ids_and_http_errors_are_failures_that_say_what_came_back) {
  calling jsonrpc("jsonrpc", jsonrpc_at_rpc);
  const auto& c = jsonrpc.c;
  const std::string where = "JSON-RPC at http://127.0.0.1:" + jsonrpc.server.port() + "/rpc: ";
  EXPECT_EQ(call(c, "fail", "[]"),
            "remote_fault: " + where + R"(fail: JSON-RPC error -32001: no such luck (data: {"why":"testing"}))");
  EXPECT_EQ(call(c, "missing", "[]"), "remote_fault: " + where + "missing: JSON-RPC error -32601: method not found");
  EXPECT_EQ(call(c, "wrong_id", "[]"), "malformed_message: " + where + "wrong_id: the answer's id is not the call's");
  EXPECT_EQ(call(c, "not_jsonrpc", "[]"),
            "malformed_message: " + where + R"(not_jsonrpc: the answer is not JSON-RPC 2.0 (no "jsonrpc": "2.0"))");
  EXPECT_EQ(call(c, "http_error", "[]"),
            "remote_fault: " + where + R"(http_error: HTTP 500 Internal Server Error: {"oops": true})");
  // The service still answers after all of them.
  EXPECT_EQ(call(c, "add", "[1, 1]"), "ok: 2");
}

TEST(rpc_client, a_service_that_is_down_is_connection_lost_and_one_that_never_answers_times_out) {
  troupe::system sys;
  gw::rpc_client down(sys, {.host = "127.0.0.1", .port = closed_port()});
  auto to_down = sys.spawn<caller>(down.actor());
  const std::string refused = call(to_down, "add", "[1, 2]");
  EXPECT_TRUE(starts_with(refused, "connection_lost: XML-RPC at http://127.0.0.1:")) << refused;
  EXPECT_NE(refused.find("connecting failed: Connection refused"), std::string::npos) << refused;

  python_server silent("silent");
  for (gw::rpc_encoding encoding : {gw::rpc_encoding::xmlrpc, gw::rpc_encoding::jsonrpc}) {
    gw::rpc_client mute(sys, {.host = "127.0.0.1", .port = silent.port(), .encoding = encoding});
    auto to_mute = sys.spawn<caller>(mute.actor());
    const auto started = std::chrono::steady_clock::now();
    const std::string timed_out = call(to_mute, "add", "[1, 2]", 300ms);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 300ms);
    EXPECT_TRUE(starts_with(timed_out, "timeout: ")) << timed_out;
    EXPECT_NE(timed_out.find("no answer to add within 300 ms"), std::string::npos) << timed_out;
  }
}

TEST(rpc_client, a_call_in_flight_when_the_client_goes_ends_as_request_dropped) {
  python_server silent("silent");
  troupe::system sys;
  auto service = std::make_unique<gw::rpc_client>(sys, gw::rpc_endpoint{.host = "127.0.0.1", .port = silent.port()});
  troupe::ref<gw::rpc_protocol> actor = service->actor();
  auto pending = actor.ask(gw::rpc_request{"add", json::array{1, 2}, 30s}, 60s);
  // Once the call reached the server (which never answers), the client goes.
  ASSERT_EQ(silent.next_line(20s), "received");
  service.reset();
  troupe::expected<json::value> dropped = pending.try_get();
  ASSERT_FALSE(dropped.has_value());
  EXPECT_EQ(dropped.error().code(), troupe::errc::request_dropped) << dropped.error().to_string();
}

}  // namespace
