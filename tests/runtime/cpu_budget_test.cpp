// How many workers a system starts when config::worker_threads is 0
// (runtime/src/cpu_budget.cpp): one per CPU the process may use, which the
// affinity mask and the cgroup CPU quota can make fewer than the host's CPUs.
// The cgroup test puts a real child process in a real cgroup with a quota; it
// needs root and a writable cgroup "cpu" controller, and skips without them
// (TROUPE_REQUIRE_CGROUP=1, which CI sets, makes that a failure).
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "cpu_budget.hpp"
#include "support/watchdog.hpp"

namespace {

std::size_t default_worker_count() {
  troupe::system sys;
  return sys.worker_count();
}

TEST(cpu_budget, the_default_worker_count_follows_the_affinity_mask) {
  troupe::test_support::watchdog guard;
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one CPU: a mask of one proves nothing";
  std::size_t seen = 0;
  // A thread of its own, pinned to one CPU: the system made there (and its
  // workers, which inherit the mask) may use one CPU.
  std::thread pinned([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
    EXPECT_EQ(troupe::detail::affinity_cpus(), std::optional<std::size_t>(1));
    seen = default_worker_count();
  });
  pinned.join();
  EXPECT_EQ(seen, 1u);
  EXPECT_EQ(default_worker_count(), troupe::detail::cpu_budget());
}

// The mount point of the cgroup v1 "cpu" controller, if there is one.
std::optional<std::string> cgroup_v1_cpu_mount() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    std::istringstream in(line);
    std::string id, parent, device, root, point;
    in >> id >> parent >> device >> root >> point;
    const auto dash = line.find(" - cgroup ");
    if (dash == std::string::npos) continue;
    const std::string super_options = line.substr(line.rfind(' ') + 1);
    if (("," + super_options + ",").find(",cpu,") != std::string::npos && root == "/") return point;
  }
  return std::nullopt;
}

// Set in the child of the cgroup test.
constexpr const char* child_variable = "TROUPE_CPU_BUDGET_CHILD";

// The cgroup test's child: exits with the default worker count. Outside that
// child there is nothing to do.
TEST(cpu_budget, the_child_reports_its_default_worker_count) {
  if (std::getenv(child_variable) == nullptr) return;
  std::fflush(nullptr);
  ::_exit(static_cast<int>(default_worker_count()));
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  return static_cast<bool>(out);
}

TEST(cpu_budget, the_default_worker_count_follows_the_cgroup_cpu_quota) {
  troupe::test_support::watchdog guard;
  const bool required = std::getenv("TROUPE_REQUIRE_CGROUP") != nullptr;
  auto mount = cgroup_v1_cpu_mount();
  const std::string group = mount ? *mount + "/troupe-test-" + std::to_string(::getpid()) : "";
  if (!mount || ::mkdir(group.c_str(), 0755) != 0) {
    if (required) FAIL() << "no writable cgroup v1 cpu controller (TROUPE_REQUIRE_CGROUP is set)";
    GTEST_SKIP() << "no writable cgroup v1 cpu controller (not root, or cgroup v2 only)";
  }
  if (std::thread::hardware_concurrency() < 2) {
    ::rmdir(group.c_str());
    GTEST_SKIP() << "one CPU: a quota of one proves nothing";
  }
  // One CPU's worth: 100 ms of CPU time every 100 ms.
  ASSERT_TRUE(write_file(group + "/cpu.cfs_period_us", "100000"));
  ASSERT_TRUE(write_file(group + "/cpu.cfs_quota_us", "100000"));
  // The child joins the cgroup, then runs this test program again (a fresh
  // process: a forked copy of this multi-threaded one may not start threads
  // under ThreadSanitizer), which starts a system with the default worker
  // count and reports it as its exit status (the_child_reports... below).
  const std::string procs = group + "/cgroup.procs";
  std::string marker = std::string(child_variable) + "=1";
  std::vector<char*> environment{marker.data()};
  for (char** e = environ; *e != nullptr; ++e) environment.push_back(*e);
  environment.push_back(nullptr);
  char filter[] = "--gtest_filter=cpu_budget.the_child_reports_its_default_worker_count";
  char program[] = "runtime_tests";
  char* argv[] = {program, filter, nullptr};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Only async-signal-safe calls between fork and exec.
    const int fd = ::open(procs.c_str(), O_WRONLY);
    if (fd < 0 || ::write(fd, "0", 1) != 1) ::_exit(100);  // "0": the writing process itself
    ::close(fd);
    ::execve("/proc/self/exe", argv, environment.data());
    ::_exit(101);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ::rmdir(group.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_NE(WEXITSTATUS(status), 100) << "the child could not join the cgroup";
  ASSERT_NE(WEXITSTATUS(status), 101) << "the child could not run this test program again";
  EXPECT_EQ(WEXITSTATUS(status), 1) << "a system in a cgroup with one CPU of quota started more workers";
}

}  // namespace
