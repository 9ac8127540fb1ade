// System V message queue ports against mq_peer, a program using msgsnd/msgrcv.
#include <sys/ipc.h>
#include <sys/msg.h>
#include <unistd.h>

#include "ports_support.hpp"
#include "support/watchdog.hpp"

namespace ports_test {
namespace {

using sysv_owner_protocol = troupe::protocol<ports::typed_message, ports::port_error>;

struct sysv_recorder : troupe::actor<sysv_owner_protocol> {
  explicit sysv_recorder(event_log* log) : log_(log) {}
  void on(ports::typed_message m) { log_->add("typed " + std::to_string(m.type) + " " + std::string(m.text())); }
  void on(const ports::port_error& e) { log_->add("error " + e.what); }
  void on(const troupe::exit& e) { log_->add("exit " + e.reason.to_string()); }

 private:
  event_log* log_;
};

struct sysv_rig {
  // A key of this test process's own; removed before and after.
  key_t key = static_cast<key_t>(0x7e000000 | (::getpid() & 0xffffff));
  ports::reactor io;
  event_log peer_log;
  event_log log;
  troupe::system sys{two_workers()};
  troupe::ref<recorder_protocol> peer_owner = sys.spawn<recorder>(&peer_log);
  troupe::ref<sysv_owner_protocol> owner = sys.spawn<sysv_recorder>(&log);

  sysv_rig() { remove(); }
  ~sysv_rig() {
    sys.shutdown();
    remove();
  }
  void remove() const {
    const int id = ::msgget(key, 0);
    if (id >= 0) ::msgctl(id, IPC_RMID, nullptr);
  }
  ports::sysv_queue_spec spec(ports::fifo_side side) const {
    ports::sysv_queue_spec s;
    s.key = key;
    s.side = side;
    return s;
  }
  void peer(std::vector<std::string> args) { start_mq_peer(io, sys, peer_owner, std::move(args)); }
};

TEST(sysv_queue_port, messages_from_a_c_program_arrive_with_their_types_and_replies_go_back_by_type) {
  troupe::test_support::watchdog guard;
  sysv_rig r;
  auto reader = ports::spawn(r.io, r.sys, r.owner, ports::sysv_queue(r.spec(ports::fifo_side::read)));
  ASSERT_TRUE(reader) << reader.error().text();
  r.peer({"msgsnd", std::to_string(r.key), "2", "hello", "5", "world"});
  ASSERT_TRUE(r.log.wait_for("typed 2 hello"));
  ASSERT_TRUE(r.log.wait_for("typed 5 world"));
  // The other way: a write side on the same queue, a message of type 7 for the peer.
  auto writer = ports::spawn(r.io, r.sys, r.owner, ports::sysv_queue(r.spec(ports::fifo_side::write)));
  ASSERT_TRUE(writer) << writer.error().text();
  reader->tell(ports::close{});  // so the reader does not take the peer's message
  ASSERT_TRUE(r.log.wait_for("exit normal")) << "the reader's blocked thread was woken and stopped";
  writer->tell(ports::send_typed{7, ports::bytes_of("for you")});
  r.peer({"msgrcv", std::to_string(r.key), "7", "1"});
  ASSERT_TRUE(r.peer_log.wait_for("data 7 for you"));
}

TEST(sysv_queue_port, a_queue_with_another_mode_is_an_error_at_open_and_a_created_one_is_removed_on_request) {
  sysv_rig r;
  const int id = ::msgget(r.key, IPC_CREAT | 0640);
  ASSERT_GE(id, 0);
  auto wrong = ports::spawn(r.io, r.sys, r.owner, ports::sysv_queue(r.spec(ports::fifo_side::read)));
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().text().find("exists with mode 0640, not the 0600 asked for"), std::string::npos)
      << wrong.error().text();
  r.remove();
  auto spec = r.spec(ports::fifo_side::read);
  spec.remove_if_created = true;
  auto created = ports::spawn(r.io, r.sys, r.owner, ports::sysv_queue(spec));
  ASSERT_TRUE(created) << created.error().text();
  created->tell(ports::close{});
  ASSERT_TRUE(r.log.wait_for("exit normal"));
  EXPECT_LT(::msgget(r.key, 0), 0) << "created by the port and asked to remove: gone";
}

}  // namespace
}  // namespace ports_test
