// The gateway's gRPC client: actors calling an outside gRPC service (Python's
// grpcio serving greeter.proto) and troupe's own gRPC gateway, with
// co_await client.call<R>(...): replies, records with lists, a status other
// than OK, a deadline, a server that is not there, bad parameters and methods.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/scratch_dir.hpp"
#include "troupe/gateway/grpc.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/system.hpp"
#include "troupe/runtime/task.hpp"

namespace {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;
namespace fs = std::filesystem;
namespace json = boost::json;
namespace tsup = troupe::test_support;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// grpc_greeter.py on a free port, ended (stdin closed, then killed) with the test.
class python_greeter {
 public:
  explicit python_greeter(const fs::path& stubs) {
    const tsup::command_result made = tsup::run_command(
        {"protoc", std::string("-I") + TROUPE_GATEWAY_TEST_DIR, "--python_out=" + stubs.string(),
         "--grpc_out=" + stubs.string(), "--plugin=protoc-gen-grpc=" + tsup::find_program("grpc_python_plugin"),
         std::string(TROUPE_GATEWAY_TEST_DIR) + "/greeter.proto"});
    if (!made.succeeded()) throw std::runtime_error("protoc failed: " + made.err);
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    tsup::child_options o;
    o.stdin_fd = in[0];
    o.stdout_fd = out[1];
    // Debian's interpreter: its python3-grpcio (a python3 earlier in PATH may lack it).
    pid_ = tsup::start_child(
        {"/usr/bin/python3", std::string(TROUPE_GATEWAY_TEST_DIR) + "/grpc_greeter.py", stubs.string()},
        tsup::environment_with({}), o);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    out_ = out[0];
    port_ = read_port();
  }
  python_greeter(const python_greeter&) = delete;
  python_greeter& operator=(const python_greeter&) = delete;
  ~python_greeter() {
    ::close(stdin_);
    ::close(out_);
    try {
      if (!tsup::wait_for_exit(pid_, 5s)) tsup::kill_child(pid_);
    } catch (const std::exception& e) {  // a destructor must not throw; the test reports it
      ADD_FAILURE() << "the greeter did not go away: " << e.what();
    }
  }
  [[nodiscard]] std::string target() const { return "127.0.0.1:" + port_; }

 private:
  // Its first line, with a deadline.
  std::string read_port() {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, tsup::poll_timeout_until(deadline)) != 1) throw std::runtime_error("the greeter never started");
      char buf[64];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) throw std::runtime_error("the greeter exited before printing its port");
      line.append(buf, static_cast<std::size_t>(n));
    }
    return line.substr(0, line.find('\n'));
  }
  pid_t pid_ = -1;
  int stdin_ = -1;
  int out_ = -1;
  std::string port_;
};

// The reply types the actor converts to.
struct greet_reply {
  std::string message;
  std::vector<std::string> lines;
};
BOOST_DESCRIBE_STRUCT(greet_reply, (), (message, lines))

// An actor that calls the greeter from a coroutine handler, as a user would.
struct call_greeter {
  std::string method;
  std::string params;  // JSON text
  std::int64_t timeout_ms;
  using reply = std::string;  // the result, or "error <errc>: <text>"
};
struct call_count {
  std::string text;
  using reply = std::int64_t;
};
using caller_protocol = troupe::protocol<call_greeter, call_count>;

struct caller : troupe::actor<caller_protocol> {
  explicit caller(const gw::grpc_client& client) : client_(client) {}
  troupe::task<std::string> on(call_greeter c) {
    try {
      if (c.method == "greeter.greet") {
        greet_reply r = co_await client_.call<greet_reply>(c.method, json::parse(c.params),
                                                           std::chrono::milliseconds(c.timeout_ms));
        std::string all = r.message;
        for (const std::string& l : r.lines) all += "|" + l;
        co_return all;
      }
      json::value r = co_await client_.call(c.method, json::parse(c.params), std::chrono::milliseconds(c.timeout_ms));
      co_return json::serialize(r);
    } catch (const troupe::troupe_error& e) {
      co_return "error " + std::to_string(static_cast<int>(e.error().code())) + ": " + e.error().text();
    }
  }
  troupe::task<std::int64_t> on(call_count c) {
    // Built before the co_await: g++ 12 cannot keep an initializer list's array in a coroutine frame.
    json::array params;
    params.emplace_back(c.text);
    co_return co_await client_.call<std::int64_t>("greeter.count", std::move(params), std::chrono::seconds(10));
  }

 private:
  const gw::grpc_client& client_;
};

std::string ask(const troupe::ref<caller_protocol>& a, std::string method, std::string params,
                std::int64_t timeout_ms = 10'000) {
  return a.ask(call_greeter{std::move(method), std::move(params), timeout_ms}, 30s).get();
}

std::string errc_prefix(troupe::errc e) { return "error " + std::to_string(static_cast<int>(e)) + ": "; }

TEST(gateway_grpc_client, an_actor_calls_an_outside_grpc_service_and_gets_each_ending_as_a_reply_or_an_error) {
  troupe::test_support::scratch_dir dir("troupe-grpc");
  python_greeter greeter(dir.path());
  troupe::system sys;
  gw::grpc_client client(sys,
                         {.target = greeter.target(), .proto = read_file(TROUPE_GATEWAY_TEST_DIR "/greeter.proto")});
  auto a = sys.spawn<caller>(client);

  EXPECT_EQ(ask(a, "greeter.greet", R"({"name":"ada","times":2})"), "hello ada|hello ada #1|hello ada #2");
  EXPECT_EQ(ask(a, "greeter.greet", R"(["bob", 1])"), "hello bob|hello bob #1");  // by position
  EXPECT_EQ(a.ask(call_count{"twelve chars"}, 30s).get(), 12);                    // `value` unwrapped
  EXPECT_EQ(ask(a, "greeter.count", R"({"text":"abc"})"), "3");

  const std::string refused = ask(a, "greeter.refuse", R"({"name":"eve"})");
  EXPECT_EQ(refused.rfind(errc_prefix(troupe::errc::remote_fault), 0), 0U) << refused;
  EXPECT_NE(refused.find("INVALID_ARGUMENT: no greeting for eve"), std::string::npos) << refused;

  const std::string hung = ask(a, "greeter.hang", R"({"name":"x"})", 300);
  EXPECT_EQ(hung.rfind(errc_prefix(troupe::errc::timeout), 0), 0U) << hung;

  const std::string unknown = ask(a, "greeter.wave", "{}");
  EXPECT_EQ(unknown.rfind(errc_prefix(troupe::errc::invalid_request), 0), 0U) << unknown;
  const std::string wrong = ask(a, "greeter.greet", R"({"name":"ada","times":"two"})");
  EXPECT_EQ(wrong.rfind(errc_prefix(troupe::errc::invalid_request), 0), 0U) << wrong;
  EXPECT_NE(wrong.find("times"), std::string::npos) << wrong;
  const std::string too_many = ask(a, "greeter.greet", R"(["a", 1, 2])");
  EXPECT_EQ(too_many.rfind(errc_prefix(troupe::errc::invalid_request), 0), 0U) << too_many;
}

TEST(gateway_grpc_client, a_service_that_is_not_there_is_connection_lost) {
  // A port nobody listens on: bound, then closed.
  troupe::system sys;
  gw::grpc_client client(sys, {.target = "127.0.0.1:1", .proto = read_file(TROUPE_GATEWAY_TEST_DIR "/greeter.proto")});
  auto a = sys.spawn<caller>(client);
  const std::string r = ask(a, "greeter.count", R"({"text":"abc"})", 5000);
  EXPECT_EQ(r.rfind(errc_prefix(troupe::errc::connection_lost), 0), 0U) << r;
}

TEST(gateway_grpc_client, a_proto_that_does_not_parse_is_refused_with_its_position) {
  troupe::system sys;
  try {
    gw::grpc_client client(sys, {.target = "127.0.0.1:1", .proto = "syntax = \"proto3\";\nmessage {"});
    FAIL() << "accepted";
  } catch (const troupe::troupe_error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

namespace bank {
struct balance {
  std::string account;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(balance, (), (account))
struct deposit {
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
using protocol = troupe::protocol<balance, deposit>;
}  // namespace bank

TEST(gateway_grpc_client, troupe_calls_troupe_through_the_gateway_with_the_proto_it_serves) {
  troupe::system sys;
  gw::methods m(sys);
  std::map<std::string, std::int64_t> cents;
  m.expose("bank", sys.spawn<bank::protocol>([&](const bank::balance& b) { return cents[b.account]; },
                                             [&](const bank::deposit& d) { cents[d.account] += d.cents; }));
  gw::grpc_gateway server(m);
  gw::grpc_client client(sys, {.target = "127.0.0.1:" + std::to_string(server.port()), .proto = server.proto()});
  const troupe::ref<troupe::gateway::rpc_protocol>& c = client.actor();
  // A tell: the empty message, as an empty object.
  EXPECT_EQ(c.ask(gw::rpc_request{"bank.deposit", json::parse(R"({"account":"a","cents":5})"), 5000ms}, 10s).get(),
            json::value(json::object{}));
  EXPECT_EQ(c.ask(gw::rpc_request{"bank.balance", json::parse(R"(["a"])"), 5000ms}, 10s).get(), json::value(5));
}

}  // namespace
