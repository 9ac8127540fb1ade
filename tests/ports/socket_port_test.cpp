// Socket ports against socat, itself run through a program port: the test
// writes to socat's stdin and reads its stdout, socat speaks TCP, UNIX or UDP
// to the socket port under test.
#include <unistd.h>

#include <filesystem>

#include "ports_support.hpp"
#include "support/watchdog.hpp"

namespace ports_test {
namespace {

ports::port_options with(ports::framing f) {
  ports::port_options o;
  o.frames = f;
  return o;
}

// The program port's events go to one log, the socket's to another.
struct rig {
  ports::reactor io;
  event_log socat_log;
  event_log log;
  troupe::system sys{two_workers()};
  troupe::ref<recorder_protocol> socat_owner = sys.spawn<recorder>(&socat_log);
  troupe::ref<recorder_protocol> owner = sys.spawn<recorder>(&log);

  ports::port socat(std::vector<std::string> argv) {
    auto p = ports::spawn(io, sys, socat_owner, ports::program(std::move(argv)), with(ports::framing::lines()));
    EXPECT_TRUE(p) << p.error().text();
    return p ? *p : ports::port{};
  }
};

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string();
}

TEST(socket_port, a_tcp_listener_accepts_socat_and_each_connection_is_a_port_both_ways) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log socat_log;
  event_log log;
  ports::port connection;  // declared before the system: its recorder writes it
  troupe::system sys{two_workers()};
  auto socat_owner = sys.spawn<recorder>(&socat_log);
  auto owner = sys.spawn<recorder>(&log, &connection);
  auto listener = ports::spawn(io, sys, owner, ports::tcp_listen("127.0.0.1", 0), with(ports::framing::lines()));
  ASSERT_TRUE(listener) << listener.error().text();
  const std::string where = listener->ask(ports::local_address{}, 10s).get();
  ASSERT_TRUE(where.starts_with("127.0.0.1:")) << where;
  auto client = ports::spawn(io, sys, socat_owner, ports::program({"/usr/bin/socat", "-", "TCP:" + where}),
                             with(ports::framing::lines()));
  ASSERT_TRUE(client) << client.error().text();
  client->tell(ports::write{ports::bytes_of("hello port")});
  ASSERT_TRUE(log.wait_for("data hello port"));
  ASSERT_FALSE(wait_for_prefix(log, "connection ").empty());
  // The reply goes out through the accepted connection's own port.
  connection.tell(ports::write{ports::bytes_of("hello socat")});
  ASSERT_TRUE(socat_log.wait_for("data hello socat"));
  client->tell(ports::close_output{});  // socat half-closes after its stdin's EOF
  ASSERT_TRUE(log.wait_for("closed end of stream"));
  ASSERT_TRUE(log.wait_for("exit normal")) << "the connection's port stopped normally";
  connection.tell(ports::close{});
}

TEST(socket_port, a_tcp_connection_to_socat_carries_length_prefixed_frames_both_ways) {
  troupe::test_support::watchdog guard;
  rig r;
  // socat listens on a free port, says which on stderr (-d -d), and runs `cat`
  // on the connection: frames come back as they went.
  auto server = r.socat({"/usr/bin/socat", "-d", "-d", "TCP-LISTEN:0,bind=127.0.0.1", "EXEC:/bin/cat"});
  const std::string said = wait_for_prefix(r.socat_log, "stderr ", 20s);
  std::string port_text;
  (void)r.socat_log.wait_until([&](const std::vector<std::string>& lines) {
    for (const auto& l : lines) {
      const std::string marker = "listening on AF=2 127.0.0.1:";
      const auto at = l.find(marker);
      if (at != std::string::npos) {
        port_text = l.substr(at + marker.size());
        return true;
      }
    }
    return false;
  });
  ASSERT_FALSE(port_text.empty()) << "socat did not say where it listens; first stderr line: " << said;
  auto p = ports::spawn(r.io, r.sys, r.owner,
                        ports::tcp_connect("127.0.0.1", static_cast<std::uint16_t>(std::stoi(port_text))),
                        with(ports::framing::u16_length(1024)));
  ASSERT_TRUE(p) << p.error().text();
  p->tell(ports::write{ports::bytes_of("one")});
  p->tell(ports::write{ports::bytes_of(std::string(1000, 'x'))});
  ASSERT_TRUE(r.log.wait_for("data one"));
  ASSERT_TRUE(r.log.wait_for("data " + std::string(1000, 'x')));
  // socat is killed mid-stream: the port sees the connection end.
  server.tell(ports::close{});
  ASSERT_TRUE(r.log.wait_until([](const std::vector<std::string>& lines) {
    return std::find(lines.begin(), lines.end(), "closed end of stream") != lines.end() ||
           std::find(lines.begin(), lines.end(), "closed connection reset by peer") != lines.end();
  }));
}

TEST(socket_port, connecting_to_nobody_is_a_port_error) {
  troupe::test_support::watchdog guard;
  rig r;
  // Binds a port and closes it again: nobody listens there now.
  auto probe = ports::spawn(r.io, r.sys, r.owner, ports::tcp_listen("127.0.0.1", 0));
  ASSERT_TRUE(probe);
  const std::string where = probe->ask(ports::local_address{}, 10s).get();
  probe->tell(ports::close{});
  ASSERT_TRUE(r.log.wait_for("exit normal"));
  const auto port_number = static_cast<std::uint16_t>(std::stoi(where.substr(where.rfind(':') + 1)));
  auto p = ports::spawn(r.io, r.sys, r.owner, ports::tcp_connect("127.0.0.1", port_number));
  ASSERT_TRUE(p);
  EXPECT_FALSE(wait_for_prefix(r.log, "error connect to 127.0.0.1:").empty());
  EXPECT_FALSE(ports::spawn(r.io, r.sys, r.owner, ports::tcp_connect("not an address", 1)));
}

TEST(socket_port, a_unix_stream_listener_reports_a_lying_length_prefix_and_closes) {
  troupe::test_support::watchdog guard;
  rig r;
  const std::string path = temp_path("troupe-ports-unix");
  auto listener = ports::spawn(r.io, r.sys, r.owner, ports::unix_listen(path), with(ports::framing::u16_length(64)));
  ASSERT_TRUE(listener) << listener.error().text();
  // printf sends a prefix promising 16 bytes, then 3, then EOF.
  auto liar = r.socat({"/bin/sh", "-c", "printf '\\000\\020abc' | /usr/bin/socat - UNIX-CONNECT:" + path});
  ASSERT_TRUE(r.log.wait_for("accepted"));
  ASSERT_TRUE(r.log.wait_for("error the stream ended inside a frame (5 bytes of it, prefix included)"));
  ASSERT_TRUE(
      r.log.wait_for("exit error: the stream ended inside a frame (5 bytes of it, prefix included) "
                     "(troupe::ports::port_error)"));
  // An oversized prefix is refused as soon as it is read.
  auto big = r.socat({"/bin/sh", "-c", "printf '\\001\\000abc' | /usr/bin/socat - UNIX-CONNECT:" + path});
  ASSERT_TRUE(r.log.wait_for("error a frame of 256 bytes, over the maximum of 64"));
  listener->tell(ports::close{});
}

TEST(socket_port, udp_datagrams_from_socat_arrive_with_their_sender_and_replies_reach_it) {
  troupe::test_support::watchdog guard;
  rig r;
  auto p = ports::spawn(r.io, r.sys, r.owner, ports::udp_bind("127.0.0.1", 0));
  ASSERT_TRUE(p) << p.error().text();
  const std::string where = p->ask(ports::local_address{}, 10s).get();
  auto peer = r.socat({"/usr/bin/socat", "-", "UDP:" + where});
  peer.tell(ports::write{ports::bytes_of("ping")});
  ASSERT_TRUE(r.log.wait_for("datagram ping\n"));
  const std::string from = wait_for_prefix(r.log, "from ");
  ASSERT_TRUE(from.starts_with("127.0.0.1:")) << from;
  p->tell(ports::send_to{from, ports::bytes_of("pong\n")});
  ASSERT_TRUE(r.socat_log.wait_for("data pong"));
  // A bad destination is the port's error, not a crash.
  p->tell(ports::send_to{"nowhere", ports::bytes_of("x")});
  ASSERT_TRUE(r.log.wait_for("error 'nowhere' is not host:port"));
}

TEST(socket_port, a_udp_port_counts_the_datagrams_it_drops_while_its_owner_is_over_high_water) {
  troupe::test_support::watchdog guard;
  rig r;
  r.owner.tell(hold_data{});  // the owner keeps every datagram's credit: it is "slow"
  ports::port_options options;
  options.high_water = 4;
  options.low_water = 1;
  auto p = ports::spawn(r.io, r.sys, r.owner, ports::udp_bind("127.0.0.1", 0), options);
  ASSERT_TRUE(p);
  const std::string where = p->ask(ports::local_address{}, 10s).get();
  // 50 one-byte datagrams (socat -b1 sends each byte as one), then exit.
  auto burst =
      r.socat({"/bin/sh", "-c", "seq 1 50 | tr -d '\\n' | head -c 50 | /usr/bin/socat -b1 -u - UDP-SENDTO:" + where});
  ASSERT_TRUE(r.socat_log.wait_for("exited exit_status 0"));
  r.owner.tell(release_held{});
  ASSERT_TRUE(r.log.wait_for("released"));
  // A last datagram: the socket hands them over in order, so once it is in,
  // every earlier one was delivered or dropped.
  auto last = r.socat({"/bin/sh", "-c", "printf end | /usr/bin/socat -u - UDP-SENDTO:" + where});
  ASSERT_TRUE(r.log.wait_for("datagram end"));
  const auto s = p->ask(ports::stats{}, 10s).get();
  // Every datagram was delivered or counted as dropped. How many were dropped
  // depends on how many the port had read before the owner let go (the burst
  // may still be in the socket then), so only the sum is exact.
  EXPECT_EQ(s.delivered + s.datagrams_dropped, 51U) << "delivered " << s.delivered;
  EXPECT_GE(s.delivered, 5U) << "4 up to high water, then the last one";
  EXPECT_LE(s.max_outstanding, 4);
}

}  // namespace
}  // namespace ports_test
