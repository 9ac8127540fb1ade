// JSON-RPC 2.0 over HTTP POST against real clients: curl and Python's
// urllib. Every bad request gets its error, and the bank never sees a message
// it cannot handle (its counters say exactly what reached it).
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

#include "gateway_support.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace gateway_test;
namespace json = boost::json;

TEST(jsonrpc_http, curl_calls_a_method_and_gets_the_actors_reply) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  EXPECT_EQ(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.deposit","params":["alice",100],"id":1})").body,
            R"({"jsonrpc":"2.0","id":1,"result":null})");
  const http_answer a =
      curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.balance","params":{"account":"alice"},"id":"q"})");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, R"({"jsonrpc":"2.0","id":"q","result":100})");
  EXPECT_EQ(bank.seen->deposits, 1);
  EXPECT_EQ(bank.seen->balances, 1);
}

TEST(jsonrpc_http, a_notification_is_run_and_answered_204_without_a_body) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  const http_answer a = curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.deposit","params":["bob",5]})");
  EXPECT_EQ(a.status, 204);
  EXPECT_EQ(a.body, "");
  // A request-type method called as a notification is still asked; its reply is dropped.
  EXPECT_EQ(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.balance","params":["bob"]})").status, 204);
  EXPECT_EQ(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.balance","params":["bob"],"id":2})").body,
            R"({"jsonrpc":"2.0","id":2,"result":5})");
  EXPECT_EQ(bank.seen->deposits, 1);
  EXPECT_EQ(bank.seen->balances, 2);
}

TEST(jsonrpc_http, a_batch_answers_only_its_requests_and_one_of_only_notifications_gets_204) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  const http_answer mixed = curl(bank.url(), R"([
      {"jsonrpc":"2.0","method":"bank.deposit","params":["carol",7]},
      {"jsonrpc":"2.0","method":"bank.balance","params":["zed"],"id":1.5},
      {"jsonrpc":"2.0","method":"bank.nothing","id":"x"}])");
  EXPECT_EQ(mixed.status, 200);
  json::value replies = json::parse(mixed.body);
  ASSERT_TRUE(replies.is_array());
  EXPECT_EQ(replies.as_array().size(), 2U);
  EXPECT_NE(mixed.body.find(R"({"jsonrpc":"2.0","id":1.5,"result":0})"), std::string::npos) << mixed.body;
  EXPECT_NE(mixed.body.find(R"("id":"x","error":{"code":-32601)"), std::string::npos) << mixed.body;

  const http_answer quiet = curl(bank.url(), R"([{"jsonrpc":"2.0","method":"bank.deposit","params":["carol",1]},
                                                  {"jsonrpc":"2.0","method":"bank.deposit","params":["carol",1]}])");
  EXPECT_EQ(quiet.status, 204);
  EXPECT_EQ(quiet.body, "");
  // A tell is answered once sent; an ask behind it in the bank's mailbox is
  // answered once it has been handled too.
  EXPECT_EQ(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.balance","params":["carol"],"id":2})").body,
            R"({"jsonrpc":"2.0","id":2,"result":9})");
  EXPECT_EQ(bank.seen->deposits, 3);
  EXPECT_EQ(bank.seen->balances, 2);
}

TEST(jsonrpc_http, each_bad_request_gets_its_error_and_reaches_no_actor) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  const auto code_of = [&](const std::string& body) {
    const http_answer a = curl(bank.url(), body);
    EXPECT_EQ(a.status, 200) << body;
    json::value v = json::parse(a.body);
    return v.at("error").at("code").as_int64();
  };
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.balance","params":["x"],"id":1)"), -32700);  // cut short
  EXPECT_EQ(code_of("[]"), -32600);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.balance","params":"x","id":1})"), -32600);
  EXPECT_EQ(code_of(R"({"method":"bank.balance","params":["x"],"id":1})"), -32600);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.vault","id":1})"), -32601);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.deposit","params":["x","not cents"],"id":1})"), -32602);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.deposit","params":{"account":"x"},"id":1})"), -32602);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.balance","params":["x", 1],"id":1})"), -32602);
  EXPECT_EQ(code_of(R"({"jsonrpc":"2.0","method":"bank.balance","id":1})"), -32602);  // params absent
  const http_answer batch = curl(bank.url(), "[1,2,3]");
  EXPECT_EQ(json::parse(batch.body).as_array().size(), 3U);
  // Not JSON by its own account: 415.
  EXPECT_EQ(curl(bank.url(), "{}", {"-H", "Content-Type: text/plain", "--data-binary", "@-"}).status, 415);
  EXPECT_EQ(bank.seen->total(), 0);
}

TEST(jsonrpc_http, an_actor_that_fails_reports_its_exit_reason_as_an_internal_error) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  json::value v = json::parse(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.crash","id":"c"})").body);
  EXPECT_EQ(v.at("error").at("code").as_int64(), -32603);
  EXPECT_NE(json::serialize(v.at("error").at("data")).find("the vault is on fire"), std::string::npos) << v;
  v = json::parse(curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.balance","params":["a"],"id":2})").body);
  EXPECT_EQ(v.at("error").at("code").as_int64(), -32603);
  EXPECT_EQ(bank.seen->crashes, 1);
}

TEST(jsonrpc_http, a_call_past_its_deadline_is_the_server_defined_timeout_error) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto seen = std::make_shared<counters>();
  gw::methods table(sys, gw::settings{.ask_timeout = 200ms});
  table.expose("bank", sys.spawn<bank_actor>(seen));
  gw::server srv;
  srv.serve_jsonrpc(table);
  srv.start();
  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/jsonrpc";
  json::value v = json::parse(curl(url, R"({"jsonrpc":"2.0","method":"bank.hold","params":["t"],"id":1})").body);
  EXPECT_EQ(v.at("error").at("code").as_int64(), gw::jsonrpc::code::timeout) << v;
}

TEST(jsonrpc_http, a_call_beyond_the_in_flight_bound_is_the_server_defined_overloaded_error) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto seen = std::make_shared<counters>();
  gw::methods table(sys, gw::settings{.ask_timeout = 20s, .max_in_flight = 1});
  table.expose("bank", sys.spawn<bank_actor>(seen));
  gw::server srv;
  srv.serve_jsonrpc(table);
  srv.start();
  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/jsonrpc";
  raw_client holder(srv.port());
  holder.send(post("/jsonrpc", R"({"jsonrpc":"2.0","method":"bank.hold","params":["h"],"id":1})"));
  ASSERT_TRUE(seen->wait_for_holds(1, 10s));
  json::value v = json::parse(curl(url, R"({"jsonrpc":"2.0","method":"bank.balance","params":["a"],"id":2})").body);
  EXPECT_EQ(v.at("error").at("code").as_int64(), gw::jsonrpc::code::overloaded) << v;
  EXPECT_EQ(seen->balances, 0);
}

TEST(jsonrpc_http, a_python_urllib_client_gets_every_answer_the_specification_asks_for) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  const troupe::test_support::command_result r =
      troupe::test_support::run_command({python, TROUPE_GATEWAY_TEST_DIR "/jsonrpc_client.py", bank.url()});
  EXPECT_TRUE(r.succeeded()) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("ok ", 0), 0U) << r.out;
  // Deposits: the notification and the one in the batch; one failed call per invalid input reached nothing.
  EXPECT_EQ(bank.seen->deposits, 2);
  EXPECT_EQ(bank.seen->crashes, 1);
  EXPECT_EQ(bank.seen->balances, 6);
}

}  // namespace
