// A gateway in front of an actor on another machine: the netns rig
// (tests/support/netns_rig.hpp) gives each "host" its own network stack. Host 1
// runs node b with its echo actor (main.cpp's "--host-node"); this thread is
// host 0, node a, with a JSON-RPC gateway exposing b's echo through a remote
// ref; curl runs on host 2, a third machine. The client must see what an ask
// from node a sees, and a clear error once host 1's node is gone.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

#include "hosts_fixture.hpp"
#include "support/watchdog.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/gateway/server.hpp"

using namespace std::chrono_literals;
namespace ts = troupe::test_support;
namespace json = boost::json;

namespace it {

class gateway_hosts : public hosts {
 protected:
  // curl on host 2: POSTs one JSON-RPC request to the gateway on host 0.
  json::value call_from_host_2(const std::string& url, const std::string& request) {
    const ts::command_result r = ts::run_command({"ip", "netns", "exec", rig_->ns_name(2), "curl", "-sS", "--max-time",
                                                  "20", "-H", "Content-Type: application/json", "-d", request, url});
    if (!r.succeeded()) {
      ADD_FAILURE() << "curl on host 2 failed: " << ts::describe_wait_status(r.status) << ": " << r.err;
      return nullptr;
    }
    return json::parse(r.out);
  }
};

TEST_F(gateway_hosts, curl_on_one_host_calls_an_actor_on_another_through_a_gateway_on_a_third) {
  TROUPE_REQUIRE_NETNS_RIG();
  ts::watchdog guard(120s);
  start();
  troupe::node a(host_config("a"));
  auto echo_b = a.lookup<echo_protocol>(endpoint(1) + "/echo");
  ASSERT_TRUE(echo_b) << echo_b.error();
  troupe::gateway::methods table(a);
  table.expose("echo", *echo_b);
  troupe::gateway::server srv({.address = rig_->address(0), .port = 7200});
  srv.serve_jsonrpc(table);
  srv.start();
  const std::string url = "http://" + rig_->address(0) + ":7200/jsonrpc";

  // The same answer an ask from node a gets: b's echo, with b's pid.
  const std::string direct = echo_b->ask(echo{"over the wire"}, 10s).get();
  EXPECT_EQ(direct, "echo:over the wire@" + std::to_string(pids_[1]));
  const json::value got =
      call_from_host_2(url, R"({"jsonrpc":"2.0","method":"echo.echo","params":["over the wire"],"id":7})");
  EXPECT_EQ(got, json::parse(R"({"jsonrpc":"2.0","result":")" + direct + R"(","id":7})")) << got;

  // Host 1's node dies: the call fails with the protocol's internal error and
  // says why, and the gateway keeps serving.
  ::kill(pids_[1], SIGKILL);
  // Node a's own ask fails once it knows (a reply, or the connection's loss);
  // then the gateway's call cannot race the news.
  ASSERT_FALSE(echo_b->ask(echo{"still there?"}, 10s).try_get());
  const json::value down =
      call_from_host_2(url, R"({"jsonrpc":"2.0","method":"echo.echo","params":["anyone?"],"id":8})");
  ASSERT_TRUE(down.is_object()) << down;
  ASSERT_TRUE(down.as_object().contains("error")) << down;
  EXPECT_EQ(down.at("error").at("code"), json::value(-32603)) << down;
  EXPECT_EQ(down.at("id"), json::value(8)) << down;
  const json::value unknown = call_from_host_2(url, R"({"jsonrpc":"2.0","method":"echo.nothing","id":9})");
  EXPECT_EQ(unknown.at("error").at("code"), json::value(-32601)) << unknown;
}

}  // namespace it
