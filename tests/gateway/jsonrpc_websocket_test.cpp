// JSON-RPC 2.0 over WebSocket against a real client (Python's websockets):
// several calls in flight, replies as they complete, bad frames answered and
// the connection kept, an oversized message closing it with 1009.
#include <gtest/gtest.h>

#include <string>

#include "gateway_support.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace gateway_test;

TEST(jsonrpc_websocket, a_python_client_gets_replies_as_they_complete_and_bad_frames_get_parse_errors) {
  troupe::test_support::watchdog guard;
  served_bank bank(gw::server_settings{.max_websocket_message_bytes = 4096});
  const std::string url = "ws://127.0.0.1:" + std::to_string(bank.srv.port()) + "/jsonrpc";
  const troupe::test_support::command_result r =
      troupe::test_support::run_command({python, TROUPE_GATEWAY_TEST_DIR "/jsonrpc_websocket_client.py", url, "4096"});
  EXPECT_TRUE(r.succeeded()) << r.out << r.err;
  EXPECT_EQ(r.out.rfind("ok ", 0), 0U) << r.out;
  // Exactly the well-formed calls reached the bank; the bad frames and the
  // oversized message reached nothing.
  EXPECT_EQ(bank.seen->holds, 1);
  EXPECT_EQ(bank.seen->releases, 1);
  EXPECT_EQ(bank.seen->deposits, 2);
  EXPECT_EQ(bank.seen->balances, 14);
}

TEST(jsonrpc_websocket, an_upgrade_from_a_browser_page_is_refused) {
  troupe::test_support::watchdog guard;
  served_bank bank;
  const http_answer a =
      curl(bank.url(), "",
           {"-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13", "-H",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", "Origin: http://elsewhere.example"});
  EXPECT_EQ(a.status, 403);
}

}  // namespace
