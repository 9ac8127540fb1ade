// Message schemas across processes: a type whose fields differ between two
// programs is refused with an error naming it, never misread.
#include <gtest/gtest.h>

#include "process_fixture.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;

namespace it {
struct quote {
  static constexpr std::string_view wire_name = "it::quote";
  std::string symbol;
  std::int64_t cents = 0;  // schema_peer.cpp has `double price` here
};
using quote_protocol = troupe::protocol<quote>;

namespace {

TEST_F(processes, a_message_type_whose_schema_differs_between_programs_is_refused_by_name) {
  troupe::test_support::watchdog guard;
  troupe::node parent(config("parent"));
  troupe::node_spawn_options options;
  options.name = "newer";
  options.program = TROUPE_SCHEMA_PEER;
  auto peer = parent.spawn_node(options);
  ASSERT_TRUE(peer) << peer.error();
  auto quotes = parent.lookup<quote_protocol>("troupe://newer/quotes");
  ASSERT_FALSE(quotes);
  EXPECT_EQ(quotes.error().code(), troupe::errc::protocol_mismatch) << quotes.error();
  EXPECT_NE(quotes.error().text().find("it::quote"), std::string::npos) << quotes.error();
  EXPECT_NE(quotes.error().text().find("different schema"), std::string::npos) << quotes.error();
  // The types both programs agree on still work over the same link.
  auto echo_ref = parent.lookup<echo_protocol>("troupe://newer/echo");
  ASSERT_TRUE(echo_ref) << echo_ref.error();
  EXPECT_EQ(echo_ref->ask(echo{"v"}, 10s).get(), "echo:v@" + std::to_string(peer->pid()));
}

}  // namespace
}  // namespace it
