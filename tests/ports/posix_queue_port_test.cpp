// POSIX message queue ports against mq_peer, a program using the C API.
#include <mqueue.h>
#include <unistd.h>

#include "ports_support.hpp"
#include "support/watchdog.hpp"

namespace ports_test {
namespace {

using queue_owner_protocol = troupe::protocol<ports::queue_message, ports::port_error>;

struct queue_recorder : troupe::actor<queue_owner_protocol> {
  explicit queue_recorder(event_log* log) : log_(log) {}
  void on(ports::queue_message m) { log_->add("queue " + std::to_string(m.priority) + " " + std::string(m.text())); }
  void on(const ports::port_error& e) { log_->add("error " + e.what); }
  void on(const troupe::exit& e) { log_->add("exit " + e.reason.to_string()); }

 private:
  event_log* log_;
};

ports::posix_queue_spec queue_named(const std::string& name, ports::fifo_side side) {
  ports::posix_queue_spec spec;
  spec.name = name;
  spec.side = side;
  spec.unlink_if_created = true;
  return spec;
}

struct queue_rig {
  std::string name = "/troupe-ports-" + std::to_string(::getpid()) + "-" +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name();
  ports::reactor io;
  event_log peer_log;
  event_log log;
  troupe::system sys{two_workers()};
  troupe::ref<recorder_protocol> peer_owner = sys.spawn<recorder>(&peer_log);
  troupe::ref<queue_owner_protocol> owner = sys.spawn<queue_recorder>(&log);

  queue_rig() { ::mq_unlink(name.c_str()); }
  ~queue_rig() {
    sys.shutdown();
    ::mq_unlink(name.c_str());
  }
  void peer(std::vector<std::string> args) { start_mq_peer(io, sys, peer_owner, std::move(args)); }
};

TEST(posix_queue_port, messages_from_a_c_program_arrive_highest_priority_first) {
  troupe::test_support::watchdog guard;
  queue_rig r;
  // The write side creates the queue; the peer fills it; the read side opens it after.
  auto writer = ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(queue_named(r.name, ports::fifo_side::write)));
  ASSERT_TRUE(writer) << writer.error().text();
  r.peer({"send", r.name, "1", "low", "9", "high", "5", "middle"});
  ASSERT_TRUE(r.peer_log.wait_for("exited exit_status 0"));
  auto reader = ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(queue_named(r.name, ports::fifo_side::read)));
  ASSERT_TRUE(reader) << reader.error().text();
  ASSERT_TRUE(r.log.wait_for("queue 1 low"));
  std::vector<std::string> got;
  for (const auto& l : r.log.lines())
    if (l.starts_with("queue ")) got.push_back(l);
  EXPECT_EQ(got, (std::vector<std::string>{"queue 9 high", "queue 5 middle", "queue 1 low"}));
  // More, while the port waits on the reactor.
  r.peer({"send", r.name, "0", "later"});
  ASSERT_TRUE(r.log.wait_for("queue 0 later"));
}

TEST(posix_queue_port, the_owner_sends_with_priorities_to_a_c_program) {
  troupe::test_support::watchdog guard;
  queue_rig r;
  auto writer = ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(queue_named(r.name, ports::fifo_side::write)));
  ASSERT_TRUE(writer) << writer.error().text();
  writer->tell(ports::send_with_priority{ports::bytes_of("urgent"), 7});
  writer->tell(ports::write{ports::bytes_of("plain")});
  r.peer({"receive", r.name, "2"});
  ASSERT_TRUE(r.peer_log.wait_for("data 7 urgent"));
  ASSERT_TRUE(r.peer_log.wait_for("data 0 plain"));
  ASSERT_TRUE(r.peer_log.wait_for("exited exit_status 0"));
  // Too big for the queue's message size: a port_error, and the port closes.
  writer->tell(ports::write{std::vector<std::byte>(8193)});
  ASSERT_TRUE(r.log.wait_for("error a message of 8193 bytes, over the queue's message size of 8192"));
}

TEST(posix_queue_port, a_queue_that_exists_with_other_attributes_is_an_error_at_open) {
  queue_rig r;
  auto first = ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(queue_named(r.name, ports::fifo_side::read)));
  ASSERT_TRUE(first) << first.error().text();
  auto spec = queue_named(r.name, ports::fifo_side::read);
  spec.max_messages = 5;
  auto second = ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(spec));
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().text().find("exists with 10 messages of 8192 bytes, not the 5 of 8192 asked for"),
            std::string::npos)
      << second.error().text();
  spec.name = "no-slash";
  EXPECT_FALSE(ports::spawn(r.io, r.sys, r.owner, ports::posix_queue(spec)));
}

}  // namespace
}  // namespace ports_test
