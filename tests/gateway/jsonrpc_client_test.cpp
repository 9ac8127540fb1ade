// The outbound JSON-RPC client against a real service (Python's http.server,
// jsonrpc_service.py): an actor co_awaits calls; results convert, the
// service's errors and bad answers fail the call with the right troupe error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "gateway_support.hpp"
#include "support/watchdog.hpp"
#include "troupe/gateway/jsonrpc_client.hpp"
#include "troupe/runtime/task.hpp"

namespace {

using namespace gateway_test;
namespace json = boost::json;
namespace ts = troupe::test_support;

// The Python service, started for one test and killed after it.
class python_service {
 public:
  python_service() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) ts::throw_errno("pipe2");
    ts::unique_fd out_read(fds[0]);
    ts::unique_fd out_write(fds[1]);
    ts::child_options options;
    options.stdout_fd = out_write.get();
    options.close_inherited_fds = true;
    pid_ = ts::start_child({python, TROUPE_GATEWAY_TEST_DIR "/jsonrpc_service.py"}, ts::environment_with({}), options);
    out_write.reset();
    // Its first line is its port: wait for it with a deadline.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd readable{out_read.get(), POLLIN, 0};
      if (::poll(&readable, 1, ts::poll_timeout_until(deadline)) <= 0)
        throw std::runtime_error("the service never said its port");
      char chunk[64];
      const ssize_t n = ::read(out_read.get(), chunk, sizeof chunk);
      if (n <= 0) throw std::runtime_error("the service exited before saying its port");
      line.append(chunk, static_cast<std::size_t>(n));
    }
    port_ = line.substr(0, line.find('\n'));
  }
  ~python_service() {
    try {
      ts::kill_child(pid_);
    } catch (const std::exception& e) {  // a destructor must not throw: say so and go on
      ADD_FAILURE() << "the Python service did not die: " << e.what();
    }
  }
  python_service(const python_service&) = delete;
  python_service& operator=(const python_service&) = delete;
  const std::string& port() const { return port_; }

 private:
  pid_t pid_ = -1;
  std::string port_;
};

struct add {
  std::int64_t a;
  std::int64_t b;
  using reply = std::int64_t;
};
struct greet {
  std::string name;
  using reply = std::string;
};
// Calls `method` and replies with the error's text ("" if it succeeded).
struct failing {
  std::string method;
  std::chrono::milliseconds timeout;
  using reply = std::string;
};

struct caller : troupe::actor<troupe::protocol<add, greet, failing>> {
  explicit caller(const gw::jsonrpc_client* c) : client_(c) {}
  troupe::task<std::int64_t> on(add a) {
    // Named arguments, not temporaries in the co_await: g++ 12 cannot compile
    // a braced initializer list there ("array used as initializer").
    json::value params = json::array{a.a, a.b};
    co_return co_await client_->call<std::int64_t>("add", std::move(params), 10s);
  }
  troupe::task<std::string> on(greet g) {
    json::value params = json::object{{"name", g.name}};
    co_return co_await client_->call<std::string>("greet", std::move(params), 10s);
  }
  troupe::task<std::string> on(failing f) {
    try {
      co_await client_->call<json::value>(f.method, nullptr, f.timeout);
      co_return "";
    } catch (const troupe::troupe_error& e) {
      co_return std::string(e.what());
    }
  }

 private:
  const gw::jsonrpc_client* client_;
};

TEST(jsonrpc_client, an_actor_awaits_calls_to_a_python_service_and_gets_converted_results) {
  ts::watchdog guard;
  python_service service;
  troupe::system sys;
  gw::jsonrpc_client client(sys, {.host = "127.0.0.1", .port = service.port(), .target = "/"});
  auto me = sys.spawn<caller>(&client);
  EXPECT_EQ(me.ask(add{2, 40}, 20s).try_get().value(), 42);
  EXPECT_EQ(me.ask(greet{"troupe"}, 20s).try_get().value(), "hello troupe");
  // Straight from a plain thread too.
  EXPECT_EQ(client.call_json("add", json::array{1, 1}, 10s).try_get().value(), json::value(2));
}

TEST(jsonrpc_client, the_services_errors_and_bad_answers_fail_the_call_with_what_went_wrong) {
  ts::watchdog guard;
  python_service service;
  troupe::system sys;
  gw::jsonrpc_client client(sys, {.host = "127.0.0.1", .port = service.port(), .target = "/"});
  auto me = sys.spawn<caller>(&client);
  const auto failure = [&](const std::string& method, std::chrono::milliseconds timeout = 10s) {
    return me.ask(failing{method, timeout}, 20s).try_get().value();
  };
  const std::string refused = failure("fail");
  EXPECT_NE(refused.find("error -32000 nope"), std::string::npos) << refused;
  EXPECT_NE(refused.find("as asked"), std::string::npos) << refused;
  EXPECT_NE(failure("no_such").find("-32601"), std::string::npos);
  EXPECT_NE(failure("wrong_id").find("another call"), std::string::npos);
  EXPECT_NE(failure("garbage").find("not JSON"), std::string::npos);
  const std::string late = failure("hang", 300ms);
  EXPECT_NE(late.find("timeout"), std::string::npos) << late;
}

TEST(jsonrpc_client, a_service_that_is_not_there_is_a_lost_connection) {
  ts::watchdog guard;
  troupe::system sys;
  // A port nothing listens on: bound, then closed.
  std::string port;
  {
    gw::server probe;
    probe.start();
    port = std::to_string(probe.port());
  }
  gw::jsonrpc_client client(sys, {.host = "127.0.0.1", .port = port, .target = "/"});
  const troupe::expected<json::value> r = client.call_json("add", json::array{1, 1}, 10s).try_get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), troupe::errc::connection_lost) << r.error().to_string();
}

TEST(jsonrpc_client, a_call_in_flight_when_the_client_goes_is_dropped_not_left_hanging) {
  ts::watchdog guard;
  python_service service;
  troupe::system sys;
  std::optional<gw::jsonrpc_client> client(std::in_place, sys,
                                           gw::client_settings{.host = "127.0.0.1", .port = service.port()});
  troupe::response<json::value> pending = client->call_json("hang", nullptr, 60s);
  client.reset();
  const troupe::expected<json::value> r = pending.try_get();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), troupe::errc::request_dropped) << r.error().to_string();
}

}  // namespace
