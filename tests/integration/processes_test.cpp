// Actors in different processes on one host: messages, asks, refs inside
// messages (also to a third process), lookup by name, large messages.
#include <gtest/gtest.h>

#include "process_fixture.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;

namespace it {
namespace {

TEST_F(processes, ask_and_tell_reach_an_actor_spawned_in_a_child_process) {
  troupe::test_support::watchdog guard;
  troupe::node parent(config("parent"));
  auto child = parent.spawn_node("w1");
  ASSERT_TRUE(child) << child.error();
  EXPECT_GT(child->pid(), 0);
  auto echo_ref = parent.spawn<echo_actor>(troupe::on(*child));
  ASSERT_TRUE(echo_ref) << echo_ref.error();
  EXPECT_EQ(echo_ref->address().rfind("troupe://w1/", 0), 0u) << echo_ref->address();
  for (int i = 0; i < 200; ++i) {
    const std::string text = "m" + std::to_string(i);
    EXPECT_EQ(echo_ref->ask(echo{text}, 10s).get(), "echo:" + text + "@" + std::to_string(child->pid()));
  }
}

TEST_F(processes, messages_from_one_sender_arrive_in_send_order_across_processes) {
  troupe::test_support::watchdog guard;
  pong_log log;  // outlives the node (its actors write here)
  troupe::node parent(config("parent"));
  auto child = parent.spawn_node("w1");
  ASSERT_TRUE(child) << child.error();
  auto echo_ref = parent.spawn<echo_actor>(troupe::on(*child)).value();
  auto sink = parent.spawn<collector>(&log);
  constexpr int count = 20000;
  for (int i = 0; i < count; ++i) ASSERT_FALSE(echo_ref.tell(ping{i, sink}));
  ASSERT_TRUE(log.wait_for(count, 60s)) << log.snapshot().size() << " of " << count << " pongs";
  const auto pongs = log.snapshot();
  ASSERT_EQ(pongs.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(pongs[static_cast<std::size_t>(i)].n, i);
    ASSERT_EQ(pongs[static_cast<std::size_t>(i)].pid, child->pid());
  }
}

TEST_F(processes, a_ref_forwarded_to_a_third_process_still_reaches_its_actor) {
  troupe::test_support::watchdog guard;
  pong_log log;  // outlives the node (its actors write here)
  troupe::node parent(config("parent"));
  auto b = parent.spawn_node("b");
  auto c = parent.spawn_node("c");
  ASSERT_TRUE(b && c);
  auto echo_on_c = parent.spawn<echo_actor>(troupe::on(*c)).value();
  auto relay_on_b = parent.spawn<relay_actor>(troupe::on(*b)).value();
  auto sink = parent.spawn<collector>(&log);
  // b receives a ref to an actor on c and a ref to one here; it dials c itself.
  for (int i = 0; i < 10; ++i) ASSERT_FALSE(relay_on_b.tell(relay{echo_on_c, sink, i}));
  ASSERT_TRUE(log.wait_for(10, 30s));
  for (const pong& p : log.snapshot()) EXPECT_EQ(p.pid, c->pid());
}

TEST_F(processes, a_ref_to_a_local_actor_comes_home_as_the_local_actor) {
  troupe::test_support::watchdog guard;
  pong_log log;  // outlives the node (its actors write here)
  troupe::node parent(config("parent"));
  auto b = parent.spawn_node("b");
  ASSERT_TRUE(b);
  auto local_echo = parent.spawn<echo_actor>();
  auto relay_on_b = parent.spawn<relay_actor>(troupe::on(*b)).value();
  auto sink = parent.spawn<collector>(&log);
  ASSERT_FALSE(relay_on_b.tell(relay{local_echo, sink, 1}));
  ASSERT_TRUE(log.wait_for(1, 30s));
  EXPECT_EQ(log.snapshot().front().pid, ::getpid());  // the local actor answered, not a copy
}

TEST_F(processes, lookup_finds_a_published_actor_and_names_each_kind_of_failure) {
  troupe::test_support::watchdog guard;
  troupe::node parent(config("parent"));
  auto child = parent.spawn_node("pub", {"publish"});
  ASSERT_TRUE(child) << child.error();
  auto found = parent.lookup<echo_protocol>("troupe://pub/echo");
  ASSERT_TRUE(found) << found.error();
  EXPECT_EQ(found->ask(echo{"x"}, 10s).get(), "echo:x@" + std::to_string(child->pid()));

  auto no_name = parent.lookup<echo_protocol>("troupe://pub/nobody");
  ASSERT_FALSE(no_name);
  EXPECT_EQ(no_name.error().code(), troupe::errc::no_such_name) << no_name.error();

  auto no_node = parent.lookup<echo_protocol>("troupe://ghost/echo");
  ASSERT_FALSE(no_node);
  EXPECT_EQ(no_node.error().code(), troupe::errc::no_such_node) << no_node.error();

  auto wrong = parent.lookup<relay_protocol>("troupe://pub/echo");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), troupe::errc::protocol_mismatch) << wrong.error();
  EXPECT_NE(wrong.error().text().find("it::echo"), std::string::npos) << wrong.error();

  // Local names resolve too.
  parent.publish("mine", parent.spawn<echo_actor>());
  auto local = parent.lookup<echo_protocol>("troupe://parent/mine");
  ASSERT_TRUE(local) << local.error();
  EXPECT_EQ(local->ask(echo{"y"}, 10s).get(), "echo:y@" + std::to_string(::getpid()));
}

TEST_F(processes, a_message_larger_than_the_ring_arrives_intact) {
  troupe::test_support::watchdog guard;
  auto cfg = config("parent");
  cfg.ring_bytes = std::size_t{64} << 10;  // the parent's rings; the message is 50 times that
  troupe::node parent(cfg);
  auto child = parent.spawn_node("w1");
  ASSERT_TRUE(child);
  auto echo_ref = parent.spawn<echo_actor>(troupe::on(*child)).value();
  std::string data(3'200'000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  EXPECT_EQ(echo_ref.ask(big{data}, 30s).get(), digest(data));
  // And the link still carries ordinary messages afterwards.
  EXPECT_EQ(echo_ref.ask(echo{"after"}, 10s).get(), "echo:after@" + std::to_string(child->pid()));
}

TEST_F(processes, an_exception_in_a_remote_handler_fails_the_ask_with_its_text) {
  troupe::test_support::watchdog guard;
  troupe::node parent(config("parent"));
  auto child = parent.spawn_node("w1");
  ASSERT_TRUE(child);
  auto echo_ref = parent.spawn<echo_actor>(troupe::on(*child)).value();
  auto r = echo_ref.ask(boom{}, 10s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down) << r.error();
  EXPECT_NE(r.error().text().find("boom requested"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace it
