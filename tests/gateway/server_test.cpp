// The gateway's HTTP server: routing, its limits against clients that send
// too much or too slowly, keep-alive and pipelining, the connection bound,
// and a slow actor that holds up nobody but its own caller.
#include <gtest/gtest.h>

#include <future>
#include <stdexcept>
#include <string>

#include "gateway_support.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace gateway_test;

const std::string balance_call = R"({"jsonrpc":"2.0","method":"bank.balance","params":["a"],"id":1})";

TEST(gateway_server, listens_on_loopback_on_the_port_it_reports) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  EXPECT_NE(bank.srv.port(), 0);
  EXPECT_EQ(bank.srv.config().address, "127.0.0.1");
  EXPECT_EQ(curl(bank.url(), balance_call).status, 200);
}

TEST(gateway_server, an_unknown_path_is_404_and_a_method_other_than_post_is_405) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  EXPECT_EQ(curl(bank.url("/nowhere"), balance_call).status, 404);
  EXPECT_EQ(curl(bank.url(), "", {"-X", "GET"}).status, 405);
  EXPECT_EQ(curl(bank.url(), "", {"-X", "PUT", "--data-binary", "@-"}).status, 405);
  // The query string is not part of the path.
  EXPECT_EQ(curl(bank.url("/jsonrpc?x=1"), balance_call).status, 200);
  EXPECT_EQ(bank.seen->balances, 1);
}

TEST(gateway_server, a_body_over_the_limit_is_413_and_reaches_no_actor) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.max_request_bytes = 1024});
  const std::string big =
      R"({"jsonrpc":"2.0","method":"bank.balance","params":[")" + std::string(4096, 'x') + R"("],"id":1})";
  EXPECT_EQ(curl(bank.url(), big).status, 413);
  // The server goes on serving.
  EXPECT_EQ(curl(bank.url(), balance_call).status, 200);
  EXPECT_EQ(bank.seen->balances, 1);
}

TEST(gateway_server, a_header_over_the_limit_is_431) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.max_header_bytes = 2048});
  raw_client client(bank.srv.port());
  client.send("POST /jsonrpc HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(4096, 'p') + "\r\n\r\n");
  const std::optional<std::string> response = client.read_response(10s);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->rfind("HTTP/1.1 431", 0), 0U) << *response;
  EXPECT_TRUE(client.wait_closed(10s));
}

TEST(gateway_server, keeps_the_connection_alive_and_answers_pipelined_requests_in_order) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  raw_client client(bank.srv.port());
  const std::string deposit = R"({"jsonrpc":"2.0","method":"bank.deposit","params":["p",3],"id":"d"})";
  client.send(post("/jsonrpc", deposit) + post("/jsonrpc", balance_call) + post("/jsonrpc", deposit));
  for (const std::string want : {R"("id":"d","result":null)", R"("id":1,"result":0)", R"("id":"d","result":null)"}) {
    const std::optional<std::string> response = client.read_response(10s);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->rfind("HTTP/1.1 200", 0), 0U) << *response;
    EXPECT_NE(response->find(want), std::string::npos) << *response;
  }
  EXPECT_EQ(bank.srv.connections(), 1U);
}

TEST(gateway_server, a_client_that_dribbles_a_request_is_cut_off_at_the_deadline_while_others_are_served) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.threads = 1, .request_deadline = 500ms});
  raw_client slow(bank.srv.port());
  slow.send("POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le");
  // Served while the slow one hangs on.
  EXPECT_EQ(curl(bank.url(), balance_call).status, 200);
  // A safety net, not a timing assertion: the server closes it after 500 ms.
  EXPECT_TRUE(slow.wait_closed(20s));
  EXPECT_EQ(bank.seen->total(), 1);
}

TEST(gateway_server, a_connection_that_sends_nothing_is_closed_after_the_idle_timeout) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.idle_timeout = 300ms});
  raw_client idle(bank.srv.port());
  EXPECT_TRUE(idle.wait_closed(20s));
}

TEST(gateway_server, connections_beyond_the_bound_are_answered_503) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.max_connections = 2});
  raw_client first(bank.srv.port());
  raw_client second(bank.srv.port());
  // Each answered: both are counted by the server now.
  for (raw_client* c : {&first, &second}) {
    c->send(post("/jsonrpc", balance_call));
    ASSERT_TRUE(c->read_response(10s).has_value());
  }
  raw_client third(bank.srv.port());
  third.send(post("/jsonrpc", balance_call));
  const std::optional<std::string> refused = third.read_response(10s);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->rfind("HTTP/1.1 503", 0), 0U) << *refused;
  EXPECT_EQ(bank.seen->balances, 2);
}

TEST(gateway_server, a_request_waiting_on_a_slow_actor_holds_no_server_thread) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.threads = 1});
  raw_client waiting(bank.srv.port());
  waiting.send(post("/jsonrpc", R"({"jsonrpc":"2.0","method":"bank.hold","params":["w"],"id":"held"})"));
  ASSERT_TRUE(bank.seen->wait_for_holds(1, 10s));
  // The one server thread is free: others are answered while the hold waits.
  EXPECT_EQ(curl(bank.url(), balance_call).status, 200);
  const http_answer released = curl(bank.url(), R"({"jsonrpc":"2.0","method":"bank.release","id":2})");
  EXPECT_EQ(released.status, 200);
  const std::optional<std::string> held = waiting.read_response(10s);
  ASSERT_TRUE(held.has_value());
  EXPECT_NE(held->find(R"({"jsonrpc":"2.0","id":"held","result":"released w"})"), std::string::npos) << *held;
}

TEST(gateway_server, stopping_with_a_call_in_flight_drops_its_reply_and_closes_the_connection) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  raw_client waiting(bank.srv.port());
  waiting.send(post("/jsonrpc", R"({"jsonrpc":"2.0","method":"bank.hold","params":["w"],"id":"held"})"));
  ASSERT_TRUE(bank.seen->wait_for_holds(1, 10s));
  bank.srv.stop();
  EXPECT_TRUE(waiting.wait_closed(10s));
  // The held call completes after the stop: its reply goes nowhere and harms nothing.
  std::promise<void> released;
  bank.table.call("bank.release", nullptr, std::nullopt, [&released](const gw::call_result&) { released.set_value(); });
  EXPECT_EQ(released.get_future().wait_for(10s), std::future_status::ready);
}

}  // namespace

namespace {

TEST(gateway_server, a_route_gets_the_request_and_a_handler_that_throws_or_answers_nonsense_gets_500) {
  troupe::test_support::watchdog guard;
  gw::server srv;
  srv.route("/echo", [](const gw::http_request& r, const gw::reply_sink& done) {
    done(gw::http_reply{200, "text/plain", r.target + " " + r.content_type + " " + r.body, true});
  });
  srv.route("/throws", [](const gw::http_request&, const gw::reply_sink&) { throw std::runtime_error("oops"); });
  srv.route("/nonsense", [](const gw::http_request&, const gw::reply_sink& done) {
    done(gw::http_reply{1000, "text/plain\r\nX-Injected: 1", "", true});
  });
  srv.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(srv.port());
  const http_answer echoed =
      curl(base + "/echo?q=1", "hello", {"-H", "Content-Type: text/x-test", "--data-binary", "@-"});
  EXPECT_EQ(echoed.status, 200);
  EXPECT_EQ(echoed.body, "/echo?q=1 text/x-test hello");
  EXPECT_EQ(curl(base + "/throws", "x").status, 500);
  EXPECT_EQ(curl(base + "/nonsense", "x").status, 500);
  // The server goes on.
  EXPECT_EQ(curl(base + "/echo", "again").status, 200);
}

TEST(gateway_server, route_others_gets_every_path_without_a_route_of_its_own_with_the_headers) {
  troupe::test_support::watchdog guard;
  gw::server srv;
  srv.route("/own", [](const gw::http_request&, const gw::reply_sink& done) {
    done(gw::http_reply{200, "text/plain", "own", true});
  });
  srv.route_others([](const gw::http_request& r, const gw::reply_sink& done) {
    done(gw::http_reply{200, "text/plain", "others " + r.target + " " + std::string(r.header("x-amz-target")), true});
  });
  srv.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(srv.port());
  EXPECT_EQ(curl(base + "/own", "x").body, "own");
  const http_answer other =
      curl(base + "/000000000000/jobs", "x", {"-H", "X-Amz-Target: AmazonSQS.SendMessage", "--data-binary", "@-"});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, "others /000000000000/jobs AmazonSQS.SendMessage");
  EXPECT_EQ(curl(base + "/", "x").body, "others / ");
  EXPECT_EQ(curl(base + "/any", "", {"-X", "GET"}).status, 405);
}

}  // namespace
