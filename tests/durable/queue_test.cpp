// queue.hpp: the queue actor's SQS semantics on a real SQLite file, driven
// one message at a time on the deterministic system's virtual clock (so
// visibility timeouts and delays are exact, with no sleeps), plus the open
// errors on a threaded system.
#include "troupe/durable/queue.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "durable/durable_support.hpp"
#include "support/watchdog.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace durable = troupe::durable;
using queue_ref = troupe::ref<durable::queue_protocol>;

class queue_test : public ::testing::Test {
 protected:
  durable::queue_config config(const std::string& file = "q.db") {
    durable::queue_config c;
    c.file = dir.file(file).string();
    c.visibility_timeout = 30s;
    return c;
  }
  queue_ref spawn(const durable::queue_config& c) { return sys.spawn<durable::queue_actor>(c); }

  durable::sent send(const queue_ref& q, std::string body, durable::send_message m = {}) {
    m.body = std::move(body);
    return q.ask(std::move(m), 5s).get();
  }
  std::uint64_t send_ok(const queue_ref& q, std::string body, durable::send_message m = {}) {
    durable::sent s = send(q, std::move(body), std::move(m));
    EXPECT_TRUE(s.status.ok()) << s.status.text;
    return s.message_id;
  }
  std::vector<durable::queue_message> receive(const queue_ref& q, std::uint32_t max = 10,
                                              std::chrono::milliseconds visibility = -1ms) {
    durable::received r = q.ask(durable::receive_messages{max, visibility, 0ms}, 5s).get();
    EXPECT_TRUE(r.status.ok()) << r.status.text;
    return r.messages;
  }
  durable::queue_status remove(const queue_ref& q, const std::string& receipt) {
    return q.ask(durable::delete_message{receipt}, 5s).get();
  }
  static std::vector<std::string> bodies(const std::vector<durable::queue_message>& messages) {
    std::vector<std::string> out;
    for (const auto& m : messages) out.push_back(m.body);
    return out;
  }

  durable_test::scratch_dir dir;
  troupe::system sys{troupe::config::deterministic()};
};

TEST_F(queue_test, a_sent_message_is_received_with_its_body_attributes_id_and_a_receive_count_of_one) {
  auto q = spawn(config());
  durable::send_message m;
  m.attributes = {{"kind", "invoice"}, {"priority", "high"}};
  const std::uint64_t id = send_ok(q, "hello", m);
  EXPECT_NE(id, 0u);
  auto got = receive(q);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message_id, id);
  EXPECT_EQ(got[0].body, "hello");
  EXPECT_EQ(got[0].attributes, m.attributes);
  EXPECT_EQ(got[0].receive_count, 1u);
  EXPECT_FALSE(got[0].receipt.empty());
}

TEST_F(queue_test, a_received_message_stays_invisible_for_its_visibility_timeout_then_comes_back) {
  auto q = spawn(config());
  send_ok(q, "job");
  auto first = receive(q, 10, 10s);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_TRUE(receive(q).empty()) << "leased: invisible to other receivers";
  sys.advance_time(9999ms);
  EXPECT_TRUE(receive(q).empty()) << "1 ms before the lease ends";
  sys.advance_time(1ms);
  auto again = receive(q);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message_id, first[0].message_id);
  EXPECT_EQ(again[0].receive_count, 2u);
  EXPECT_NE(again[0].receipt, first[0].receipt) << "each lease has its own receipt";
}

TEST_F(queue_test, a_deleted_message_never_comes_back) {
  auto q = spawn(config());
  send_ok(q, "job");
  auto got = receive(q, 10, 1s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(remove(q, got[0].receipt).ok());
  sys.advance_time(1h);
  EXPECT_TRUE(receive(q).empty());
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 0u);
}

TEST_F(queue_test, a_stale_receipt_does_not_delete_a_message_that_was_received_again) {
  auto q = spawn(config());
  send_ok(q, "job");
  auto first = receive(q, 10, 1s);
  ASSERT_EQ(first.size(), 1u);
  sys.advance_time(1s);
  auto second = receive(q, 10, 1s);
  ASSERT_EQ(second.size(), 1u);
  const durable::queue_status stale = remove(q, first[0].receipt);
  EXPECT_EQ(stale.code, troupe::errc::invalid_receipt) << stale.text;
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 1u) << "the new lease's message is still there";
  EXPECT_TRUE(remove(q, second[0].receipt).ok());
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 0u);
}

TEST_F(queue_test, a_receipt_whose_lease_ran_out_unnoticed_still_deletes) {
  auto q = spawn(config());
  send_ok(q, "job");
  auto got = receive(q, 10, 1s);
  ASSERT_EQ(got.size(), 1u);
  sys.advance_time(5s);
  EXPECT_TRUE(remove(q, got[0].receipt).ok());
  EXPECT_TRUE(receive(q).empty());
}

TEST_F(queue_test, malformed_receipts_are_rejected_and_the_queue_keeps_serving) {
  auto q = spawn(config());
  const std::vector<std::string> malformed{"",
                                           "-",
                                           "zz-1",
                                           "1-",
                                           "-1",
                                           "1-0",
                                           "0-1",
                                           "1-2-3",
                                           "ffffffffffffffffff-1",
                                           std::string(100, '1') + "-1",
                                           std::string("1\0-1", 4)};
  for (const std::string& bad : malformed) {
    EXPECT_EQ(remove(q, bad).code, troupe::errc::invalid_receipt) << "'" << bad << "'";
    EXPECT_EQ(q.ask(durable::change_visibility{bad, 1s}, 5s).get().code, troupe::errc::invalid_receipt);
  }
  send_ok(q, "still working");
  EXPECT_EQ(receive(q).size(), 1u);
}

TEST_F(queue_test, change_visibility_moves_the_end_of_the_lease_and_zero_makes_it_visible_at_once) {
  auto q = spawn(config());
  send_ok(q, "job");
  auto got = receive(q, 10, 10s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(q.ask(durable::change_visibility{got[0].receipt, 60s}, 5s).get().ok());
  sys.advance_time(59s);
  EXPECT_TRUE(receive(q).empty()) << "extended to 60 s";
  EXPECT_TRUE(q.ask(durable::change_visibility{got[0].receipt, 0ms}, 5s).get().ok());
  auto again = receive(q, 10, 10s);
  ASSERT_EQ(again.size(), 1u);
  // The first lease has ended (the message was received again): its receipt is stale.
  EXPECT_EQ(q.ask(durable::change_visibility{got[0].receipt, 1s}, 5s).get().code, troupe::errc::invalid_receipt);
  sys.advance_time(10s);
  EXPECT_EQ(q.ask(durable::change_visibility{again[0].receipt, 1s}, 5s).get().code, troupe::errc::invalid_receipt)
      << "a lease that has ended cannot be changed";
}

TEST_F(queue_test, a_delayed_message_is_invisible_until_its_delay_ends) {
  auto q = spawn(config());
  durable::send_message m;
  m.delay = 5s;
  send_ok(q, "later", m);
  send_ok(q, "now");
  EXPECT_EQ(bodies(receive(q)), std::vector<std::string>{"now"});
  sys.advance_time(5s);
  EXPECT_EQ(bodies(receive(q)), std::vector<std::string>{"later"});
}

TEST_F(queue_test, bad_parameters_get_invalid_request_and_nothing_is_stored) {
  auto c = config();
  c.max_body_bytes = 8;
  auto q = spawn(c);
  EXPECT_EQ(send(q, "123456789").status.code, troupe::errc::invalid_request);
  durable::send_message late;
  late.delay = 16min;
  EXPECT_EQ(send(q, "x", late).status.code, troupe::errc::invalid_request);
  EXPECT_EQ(q.ask(durable::receive_messages{0, -1ms, 0ms}, 5s).get().status.code, troupe::errc::invalid_request);
  EXPECT_EQ(q.ask(durable::receive_messages{1, 13h, 0ms}, 5s).get().status.code, troupe::errc::invalid_request);
  EXPECT_EQ(q.ask(durable::receive_messages{1, -1ms, 21s}, 5s).get().status.code, troupe::errc::invalid_request);
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 0u);
}

TEST_F(queue_test, a_full_queue_refuses_sends_with_queue_full_until_a_delete_makes_room) {
  auto c = config();
  c.max_messages = 2;
  auto q = spawn(c);
  send_ok(q, "a");
  send_ok(q, "b");
  EXPECT_EQ(send(q, "c").status.code, troupe::errc::queue_full);
  auto got = receive(q, 1);
  ASSERT_EQ(got.size(), 1u);
  ASSERT_TRUE(remove(q, got[0].receipt).ok());
  send_ok(q, "c");
}

TEST_F(queue_test, a_queue_at_its_byte_limit_refuses_sends_with_queue_full) {
  auto c = config();
  c.max_bytes = 10;
  auto q = spawn(c);
  send_ok(q, "12345");
  send_ok(q, "12345");
  EXPECT_EQ(send(q, "1").status.code, troupe::errc::queue_full);
}

TEST_F(queue_test, the_byte_count_follows_each_delete_and_not_a_delete_with_a_stale_receipt) {
  auto c = config();
  c.max_bytes = 12;
  auto q = spawn(c);
  for (std::string body : {"12345", "1234567"}) send_ok(q, std::move(body));
  auto first = receive(q, 10, 1s);
  ASSERT_EQ(first.size(), 2u);
  sys.advance_time(1s);
  auto second = receive(q, 10, 1s);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(remove(q, first[1].receipt).code, troupe::errc::invalid_receipt);
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().bytes, 12u) << "a stale receipt deletes nothing";
  ASSERT_TRUE(remove(q, second[1].receipt).ok());
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().bytes, 5u);
  send_ok(q, "abcdefg");  // the 7 bytes freed fit again
  EXPECT_EQ(send(q, "x").status.code, troupe::errc::queue_full);
  ASSERT_TRUE(remove(q, second[0].receipt).ok());
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().bytes, 7u);
}

TEST_F(queue_test, a_receive_of_more_messages_than_one_lease_statement_covers_leases_each_of_them_once) {
  auto q = spawn(config());
  constexpr std::size_t count = 150;  // more than two of the store's lease statements
  for (std::size_t i = 0; i < count; ++i) send_ok(q, "m" + std::to_string(i));
  auto first = receive(q, 1000, 10s);
  ASSERT_EQ(first.size(), count);
  std::set<std::uint64_t> ids;
  std::set<std::string> receipts;
  for (const auto& m : first) {
    ids.insert(m.message_id);
    receipts.insert(m.receipt);
    EXPECT_EQ(m.receive_count, 1u);
  }
  EXPECT_EQ(ids.size(), count);
  EXPECT_EQ(receipts.size(), count);
  EXPECT_TRUE(receive(q).empty()) << "every one of them is leased";
  sys.advance_time(10s);
  auto again = receive(q, 1000, 10s);
  ASSERT_EQ(again.size(), count);
  for (const auto& m : again) {
    EXPECT_EQ(m.receive_count, 2u) << m.body;
    EXPECT_EQ(receipts.count(m.receipt), 0u) << "a new lease, a new receipt";
    EXPECT_TRUE(remove(q, m.receipt).ok());
  }
  const durable::queue_stats stats = q.ask(durable::get_queue_stats{}, 5s).get();
  EXPECT_EQ(stats.messages, 0u);
  EXPECT_EQ(stats.bytes, 0u);
}

TEST_F(queue_test, a_repeated_dedup_id_within_the_window_is_acknowledged_but_not_enqueued_again) {
  auto c = config();
  c.dedup_window = 1min;
  auto q = spawn(c);
  durable::send_message m;
  m.dedup_id = "order-17";
  const durable::sent first = send(q, "pay", m);
  const durable::sent repeat = send(q, "pay", m);
  ASSERT_TRUE(repeat.status.ok());
  EXPECT_TRUE(repeat.duplicate);
  EXPECT_FALSE(first.duplicate);
  EXPECT_EQ(repeat.message_id, first.message_id);
  EXPECT_EQ(receive(q).size(), 1u);
  sys.advance_time(1min);
  const durable::sent after = send(q, "pay", m);
  EXPECT_FALSE(after.duplicate) << "the window has passed";
  EXPECT_NE(after.message_id, first.message_id);
}

TEST_F(queue_test, a_message_received_max_receives_times_moves_to_the_dead_letter_queue) {
  auto dead = spawn(config("dead.db"));
  auto c = config();
  c.redrive = durable::redrive_policy{dead, 2};
  auto q = spawn(c);
  const std::uint64_t id = send_ok(q, "poison");
  ASSERT_EQ(receive(q, 10, 1s).size(), 1u);
  sys.advance_time(1s);
  auto second = receive(q, 10, 1s);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].receive_count, 2u);
  sys.advance_time(1s);
  EXPECT_TRUE(receive(q).empty()) << "the third delivery goes to the dead-letter queue instead";
  sys.run_until_idle();
  auto moved = receive(dead);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].body, "poison");
  EXPECT_EQ(moved[0].receive_count, 1u);
  const durable::queue_stats stats = q.ask(durable::get_queue_stats{}, 5s).get();
  EXPECT_EQ(stats.messages, 0u) << "deleted here once the dead-letter queue acknowledged it";
  EXPECT_EQ(stats.dead_lettered, 1u);
  (void)id;
}

TEST_F(queue_test, a_fifo_queue_hands_out_one_message_per_group_at_a_time_in_send_order) {
  auto c = config();
  c.fifo = true;
  auto q = spawn(c);
  for (const auto& [group, body] : std::vector<std::pair<std::string, std::string>>{
           {"a", "a1"}, {"a", "a2"}, {"b", "b1"}, {"a", "a3"}, {"b", "b2"}}) {
    durable::send_message m;
    m.group_id = group;
    send_ok(q, body, m);
  }
  auto first = receive(q, 10, 10s);
  EXPECT_EQ(bodies(first), (std::vector<std::string>{"a1", "b1"}));
  EXPECT_TRUE(receive(q).empty()) << "both groups have a message in flight";
  ASSERT_TRUE(remove(q, first[0].receipt).ok());
  EXPECT_EQ(bodies(receive(q, 10, 10s)), std::vector<std::string>{"a2"}) << "b is still in flight";
  sys.advance_time(10s);
  // Both leases ran out: a2 and b1 come back first, in order, before a3 and b2.
  auto again = receive(q, 10, 10s);
  EXPECT_EQ(bodies(again), (std::vector<std::string>{"a2", "b1"}));
  for (const auto& m : again) EXPECT_EQ(m.receive_count, 2u);
}

TEST_F(queue_test, a_fifo_queue_refuses_a_message_without_a_group) {
  auto c = config();
  c.fifo = true;
  auto q = spawn(c);
  EXPECT_EQ(send(q, "x").status.code, troupe::errc::invalid_request);
}

TEST_F(queue_test, requests_waiting_in_the_mailbox_share_one_commit) {
  auto q = spawn(config());
  std::vector<troupe::response<durable::sent>> replies;
  for (int i = 0; i < 100; ++i) replies.push_back(q.ask(durable::send_message{.body = "m" + std::to_string(i)}, 5s));
  for (auto& r : replies) EXPECT_TRUE(r.get().status.ok());
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().commits, 1u);
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 100u);
}

TEST_F(queue_test, a_long_poll_on_an_empty_queue_returns_the_message_sent_while_it_waits) {
  auto q = spawn(config());
  auto waiting = q.ask(durable::receive_messages{1, 10s, 20s}, 30s);
  sys.run_until_idle();
  sys.advance_time(3s);
  send_ok(q, "arrived");
  durable::received got = waiting.get();
  ASSERT_TRUE(got.status.ok()) << got.status.text;
  EXPECT_EQ(bodies(got.messages), std::vector<std::string>{"arrived"});
}

TEST_F(queue_test, a_long_poll_returns_empty_at_its_deadline_and_takes_a_message_whose_lease_ends_before) {
  auto q = spawn(config());
  auto empty = q.ask(durable::receive_messages{1, 10s, 2s}, 30s);
  sys.run_until_idle();
  sys.advance_time(2s);
  durable::received nothing = empty.get();
  EXPECT_TRUE(nothing.status.ok());
  EXPECT_TRUE(nothing.messages.empty());

  send_ok(q, "job");
  ASSERT_EQ(receive(q, 1, 5s).size(), 1u);
  auto waiting = q.ask(durable::receive_messages{1, 10s, 20s}, 30s);
  sys.run_until_idle();
  sys.advance_time(5s);  // the lease ends: the parked receive gets it
  durable::received got = waiting.get();
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].receive_count, 2u);
}

TEST_F(queue_test, messages_leases_and_deletes_persist_across_a_restart_on_the_same_file) {
  std::string leased_receipt;
  {
    troupe::system first{troupe::config::deterministic()};
    auto q = first.spawn<durable::queue_actor>(config());
    for (std::string body : {"a", "b", "c"}) {
      ASSERT_TRUE(q.ask(durable::send_message{.body = body}, 5s).get().status.ok());
    }
    auto got = q.ask(durable::receive_messages{2, 1h, 0ms}, 5s).get().messages;
    ASSERT_EQ(bodies(got), (std::vector<std::string>{"a", "b"}));
    ASSERT_TRUE(q.ask(durable::delete_message{got[0].receipt}, 5s).get().ok());
    leased_receipt = got[1].receipt;
  }
  auto q = spawn(config());
  EXPECT_EQ(bodies(receive(q)), std::vector<std::string>{"c"}) << "a deleted, b still leased for an hour";
  EXPECT_TRUE(remove(q, leased_receipt).ok()) << "the lease survived the restart";
  EXPECT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 1u);
}

TEST_F(queue_test, purge_deletes_every_message_leased_visible_or_delayed_and_persists) {
  auto q = spawn(config());
  send_ok(q, "leased");
  const std::string receipt = receive(q, 1).at(0).receipt;
  send_ok(q, "visible");
  send_ok(q, "delayed", durable::send_message{.delay = 10min});
  send_ok(q, "deduplicated", durable::send_message{.dedup_id = "d"});
  ASSERT_EQ(q.ask(durable::get_queue_stats{}, 5s).get().messages, 4u);
  ASSERT_TRUE(q.ask(durable::purge_messages{}, 5s).get().ok());
  const durable::queue_stats after = q.ask(durable::get_queue_stats{}, 5s).get();
  EXPECT_EQ(after.messages, 0u);
  EXPECT_EQ(after.bytes, 0u);
  EXPECT_EQ(after.deleted, 4u);
  EXPECT_EQ(remove(q, receipt).code, troupe::errc::invalid_receipt) << "the lease went with its message";
  EXPECT_TRUE(receive(q).empty());
  EXPECT_TRUE(send(q, "deduplicated", durable::send_message{.dedup_id = "d"}).duplicate) << "dedup ids stay";
  send_ok(q, "after");
  sys.shutdown();
  troupe::system again{troupe::config::deterministic()};
  auto reopened = again.spawn<durable::queue_actor>(config());
  const auto got = reopened.ask(durable::receive_messages{10, -1ms, 0ms}, 5s).get().messages;
  EXPECT_EQ(bodies(got), std::vector<std::string>{"after"}) << "the purge was committed";
}

TEST(queue, spawn_queue_reports_a_corrupt_file_as_an_error_instead_of_spawning) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  const auto path = dir.file("bad.db");
  {
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 100; ++i) out << "definitely not sqlite ";
  }
  troupe::system sys;
  durable::queue_config c;
  c.file = path.string();
  auto q = durable::spawn_queue(sys, c);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code(), troupe::errc::storage_failed);
  EXPECT_NE(q.error().text().find("not an SQLite database"), std::string::npos) << q.error();
}

TEST(queue, spawn_queue_runs_a_working_queue_on_its_own_thread) {
  troupe::test_support::watchdog guard;
  durable_test::scratch_dir dir;
  troupe::system sys;
  durable::queue_config c;
  c.file = dir.file("q.db").string();
  auto q = durable::spawn_queue(sys, c).value();
  ASSERT_TRUE(q.ask(durable::send_message{.body = "threaded"}, 5s).get().status.ok());
  auto got = q.ask(durable::receive_messages{}, 5s).get();
  ASSERT_EQ(got.messages.size(), 1u);
  EXPECT_EQ(got.messages[0].body, "threaded");
}

}  // namespace

namespace {

TEST(queue, a_supervised_queue_restarted_after_a_failure_keeps_its_ref_and_its_messages) {
  durable_test::scratch_dir dir;
  troupe::system sys{troupe::config::deterministic()};
  durable::queue_config c;
  c.file = dir.file("q.db").string();
  std::vector<std::string> events;
  troupe::supervisor_spec spec;
  spec.log_events = false;
  spec.on_event = [&](const troupe::supervisor_event& e) { events.push_back(e.child_id); };
  spec.children.push_back(troupe::child<durable::queue_actor>("queue", c));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  sys.run_until_idle();
  auto q = sup.child<durable::queue_protocol>("queue");
  ASSERT_TRUE(q.ask(durable::send_message{.body = "kept"}, 5s).get().status.ok());

  auto children = sup.self().ask(troupe::which_children{}, 5s).get();
  ASSERT_EQ(children.size(), 1u);
  sys.send_exit(children[0].address, troupe::exit_reason::error("queue broke"));
  sys.run_until_idle();
  EXPECT_EQ(events, std::vector<std::string>{"queue"}) << "restarted once";

  auto got = q.ask(durable::receive_messages{}, 5s).get();
  ASSERT_EQ(got.messages.size(), 1u) << got.status.text;
  EXPECT_EQ(got.messages[0].body, "kept");
}

}  // namespace
