// FIFO ports: named pipes written and read by the shell.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ports_support.hpp"
#include "support/watchdog.hpp"

namespace ports_test {
namespace {

ports::fifo_spec fifo_at(std::string path, ports::fifo_side side = ports::fifo_side::read, bool create = true) {
  ports::fifo_spec spec;
  spec.path = std::move(path);
  spec.side = side;
  spec.create = create;
  return spec;
}

struct fifo_rig {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("troupe-fifo-" + std::to_string(::getpid()) + "-" +
                                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  ports::reactor io;
  event_log shell_log;
  event_log log;
  troupe::system sys{two_workers()};
  troupe::ref<recorder_protocol> shell_owner = sys.spawn<recorder>(&shell_log);
  troupe::ref<recorder_protocol> owner = sys.spawn<recorder>(&log);

  fifo_rig() { std::filesystem::create_directories(dir); }
  ~fifo_rig() {
    sys.shutdown();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string path(const char* name) const { return (dir / name).string(); }
  void shell(const std::string& command) {
    auto p = ports::spawn(io, sys, shell_owner, ports::program({"/bin/sh", "-c", command}), lines());
    ASSERT_TRUE(p) << p.error().text();
  }
};

TEST(fifo_port, the_read_side_survives_its_writer_closing_and_reopening) {
  troupe::test_support::watchdog guard;
  fifo_rig r;
  const std::string path = r.path("in");
  ports::fifo_spec spec = fifo_at(path);
  spec.unlink_if_created = true;
  auto p = ports::spawn(r.io, r.sys, r.owner, ports::fifo(spec), lines());
  ASSERT_TRUE(p) << p.error().text();
  r.shell("echo one > " + path);
  ASSERT_TRUE(r.log.wait_for("data one"));
  r.shell("echo two > " + path);  // a second writer, after the first closed
  ASSERT_TRUE(r.log.wait_for("data two"));
  p->tell(ports::close{});
  ASSERT_TRUE(r.log.wait_for("exit normal"));
  EXPECT_FALSE(std::filesystem::exists(path)) << "created by the port and asked to unlink: gone";
}

TEST(fifo_port, the_write_side_reaches_a_reader_that_opens_later) {
  troupe::test_support::watchdog guard;
  fifo_rig r;
  const std::string path = r.path("out");
  auto p = ports::spawn(r.io, r.sys, r.owner, ports::fifo(fifo_at(path, ports::fifo_side::write)), lines());
  ASSERT_TRUE(p) << p.error().text();
  p->tell(ports::write{ports::bytes_of("hello reader")});
  r.shell("head -n 1 " + path);
  ASSERT_TRUE(r.shell_log.wait_for("data hello reader"));
  EXPECT_TRUE(std::filesystem::exists(path)) << "not asked to unlink: it stays";
}

TEST(fifo_port, a_path_that_is_not_a_fifo_or_has_another_mode_is_an_error_at_open) {
  fifo_rig r;
  const std::string file = r.path("plain");
  std::ofstream(file) << "x";
  auto not_fifo = ports::spawn(r.io, r.sys, r.owner, ports::fifo(fifo_at(file)), lines());
  ASSERT_FALSE(not_fifo);
  EXPECT_NE(not_fifo.error().text().find("is not a FIFO"), std::string::npos) << not_fifo.error().text();

  const std::string shared = r.path("shared");
  ASSERT_EQ(::mkfifo(shared.c_str(), 0644), 0);
  ::chmod(shared.c_str(), 0644);
  auto wrong_mode = ports::spawn(r.io, r.sys, r.owner, ports::fifo(fifo_at(shared)), lines());  // asks for 0600
  ASSERT_FALSE(wrong_mode);
  EXPECT_NE(wrong_mode.error().text().find("exists with mode 0644, not the 0600 asked for"), std::string::npos)
      << wrong_mode.error().text();

  auto missing =
      ports::spawn(r.io, r.sys, r.owner, ports::fifo(fifo_at(r.path("none"), ports::fifo_side::read, false)), lines());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().text().find("No such file or directory"), std::string::npos);
}

}  // namespace
}  // namespace ports_test
