// Program ports: real programs (sort, cat, sh, python3, yes) over real pipes.
#include <signal.h>

#include "ports_support.hpp"
#include "support/watchdog.hpp"
#include "troupe/runtime/supervisor.hpp"

namespace ports_test {
namespace {

TEST(program_port, sort_sorts_the_lines_written_to_its_stdin_and_exits_normally) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  auto p = ports::spawn(io, sys, owner, ports::program({"/usr/bin/sort"}), lines(4096));
  ASSERT_TRUE(p) << p.error().text();
  for (const char* word : {"pear", "apple", "fig"}) p->tell(ports::write{ports::bytes_of(word)});
  p->tell(ports::close_output{});
  ASSERT_TRUE(log.wait_for("exited exit_status 0"));
  ASSERT_TRUE(log.wait_for("exit normal"));
  const auto lines_seen = log.lines();
  std::vector<std::string> data;
  for (const auto& l : lines_seen)
    if (l.starts_with("data ")) data.push_back(l);
  EXPECT_EQ(data, (std::vector<std::string>{"data apple", "data fig", "data pear"}));
}

TEST(program_port, a_python_script_answers_line_by_line_and_its_exit_status_is_the_exit_reason) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  const char* script =
      "import sys\n"
      "for line in sys.stdin:\n"
      "    print(line.strip().upper(), flush=True)\n"
      "sys.exit(3)\n";
  auto p = ports::spawn(io, sys, owner, ports::program({"/usr/bin/python3", "-c", script}), lines(4096));
  ASSERT_TRUE(p) << p.error().text();
  p->tell(ports::write{ports::bytes_of("hello")});
  ASSERT_TRUE(log.wait_for("data HELLO")) << "an answer before stdin closes: the port is interactive";
  p->tell(ports::write{ports::bytes_of("again")});
  ASSERT_TRUE(log.wait_for("data AGAIN"));
  p->tell(ports::close_output{});
  ASSERT_TRUE(log.wait_for("exited exit_status 3"));
  ASSERT_TRUE(log.wait_for("exit error: exit_status 3 (troupe::ports::exit_status)"));
}

TEST(program_port, stderr_arrives_apart_from_stdout) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  auto p = ports::spawn(io, sys, owner, ports::program({"/bin/sh", "-c", "echo out; echo oops >&2"}), lines(4096));
  ASSERT_TRUE(p) << p.error().text();
  ASSERT_TRUE(log.wait_for("data out"));
  ASSERT_TRUE(log.wait_for("stderr oops"));
  ASSERT_TRUE(log.wait_for("exited exit_status 0"));
}

TEST(program_port, a_missing_program_is_an_error_at_open) {
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  auto p = ports::spawn(io, sys, owner, ports::program({"/no/such/program"}), lines(4096));
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().text().find("exec /no/such/program: No such file or directory"), std::string::npos)
      << p.error().text();
}

TEST(program_port, a_program_killed_mid_stream_is_seen_by_the_owner_and_restarted_by_its_supervisor) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  troupe::supervisor_spec spec;
  spec.max_restarts = 5;
  spec.log_events = false;
  spec.on_event = [&log](const troupe::supervisor_event& e) {
    if (e.what == troupe::supervisor_event::kind::restarted) log.add("restarted " + e.reason.to_string());
  };
  spec.children.push_back(ports::supervised("cat", io, owner, ports::program({"/bin/cat"}), lines(4096)));
  auto sup = troupe::spawn_supervisor(sys, std::move(spec));
  auto cat = sup.child<ports::port_protocol>("cat");
  cat.tell(ports::write{ports::bytes_of("first")});
  ASSERT_TRUE(log.wait_for("data first"));
  const pid_t before = pid_of(cat);
  ASSERT_GT(before, 0);
  ASSERT_EQ(::kill(before, SIGKILL), 0);
  ASSERT_TRUE(log.wait_for("exited signal 9"));
  ASSERT_TRUE(log.wait_for("restarted error: signal 9 (troupe::ports::signal)"));
  cat.tell(ports::write{ports::bytes_of("second")});
  ASSERT_TRUE(log.wait_for("data second")) << "the restarted port runs a new cat behind the same ref";
  EXPECT_NE(pid_of(cat), before);
}

TEST(program_port, an_owner_that_stops_closes_its_port_and_the_program_is_killed) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  auto p = ports::spawn(io, sys, owner, ports::program({"/bin/cat"}), lines(4096));
  ASSERT_TRUE(p) << p.error().text();
  p->tell(ports::write{ports::bytes_of("ping")});
  ASSERT_TRUE(log.wait_for("data ping"));
  const pid_t pid = pid_of(*p);
  sys.send_exit(owner, troupe::exit_reason::killed());
  EXPECT_TRUE(wait_until_gone(pid, 20s)) << "cat still runs after its owner died";
}

TEST(program_port, a_producer_faster_than_its_owner_is_paused_at_high_water_and_nothing_is_lost) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<recorder>(&log);
  owner.tell(hold_data{});
  ports::port_options options = lines(4096);
  options.high_water = 32;
  options.low_water = 8;
  // seq writes 1..20000 (about 110 KiB, more than a pipe holds) as fast as the pipe takes them.
  auto p = ports::spawn(io, sys, owner, ports::program({"/usr/bin/seq", "20000"}), options);
  ASSERT_TRUE(p) << p.error().text();
  ASSERT_TRUE(log.wait_for("held 32"));
  // The owner holds 32 credits: the port must have stopped reading there.
  const ports::port_stats held = p->ask(ports::stats{}, 10s).get();
  EXPECT_EQ(held.delivered, 32U);
  EXPECT_EQ(held.max_outstanding, 32);
  EXPECT_GE(held.pauses, 1U);
  owner.tell(release_held{});
  owner.tell(hold_data{false});
  ASSERT_TRUE(log.wait_for("data 20000"));
  ASSERT_TRUE(log.wait_for("exited exit_status 0"));
  // Every line arrived, in order, none dropped.
  std::uint64_t expected = 1;
  for (const auto& l : log.lines()) {
    if (!l.starts_with("data ")) continue;
    ASSERT_EQ(l, "data " + std::to_string(expected)) << "a line lost or out of order";
    ++expected;
  }
  EXPECT_EQ(expected, 20001U);
}

}  // namespace
}  // namespace ports_test
