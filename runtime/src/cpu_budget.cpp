// cpu_budget: see cpu_budget.hpp.
#include "cpu_budget.hpp"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace troupe::detail {
namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> split(const std::string& text, char by) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, by)) parts.push_back(part);
  return parts;
}

// Where a cgroup hierarchy is mounted: the mount point and the hierarchy path
// mounted there ("/" on a host, the container's own cgroup inside some).
struct mount {
  std::string point;
  std::string root;
};

// The mount of cgroup v2 (controller empty), or of the v1 hierarchy holding `controller`.
std::optional<mount> find_mount(const std::string& mountinfo, const std::string& controller) {
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // "36 35 0:30 <root> <mount point> <options> [optional fields] - <fs type> <source> <super options>"
    const auto dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    const std::vector<std::string> before = split(line.substr(0, dash), ' ');
    const std::vector<std::string> after = split(line.substr(dash + 3), ' ');
    if (before.size() < 5 || after.size() < 3) continue;
    const std::string& type = after[0];
    if (controller.empty() ? type == "cgroup2" : type == "cgroup") {
      if (!controller.empty()) {
        const std::vector<std::string> options = split(after[2], ',');
        if (std::find(options.begin(), options.end(), controller) == options.end()) continue;
      }
      return mount{before[4], before[3]};
    }
  }
  return std::nullopt;
}

// The directories of `cgroup_path` and of each ancestor up to the mount, deepest first.
std::vector<std::string> directories(const mount& m, const std::string& cgroup_path) {
  std::string relative = cgroup_path;
  if (m.root != "/" && relative.rfind(m.root, 0) == 0) relative = relative.substr(m.root.size());
  std::vector<std::string> out;
  for (;;) {
    while (!relative.empty() && relative.back() == '/') relative.pop_back();
    out.push_back(m.point + relative);
    if (relative.empty()) break;
    relative = relative.substr(0, relative.rfind('/'));
  }
  return out;
}

// cgroup v2: "max 100000" (no limit) or "<quota> <period>" in cpu.max.
std::optional<double> v2_limit(const std::string& dir) {
  auto text = read_file(dir + "/cpu.max");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string quota;
  double period = 0;
  if (!(in >> quota >> period) || quota == "max" || period <= 0) return std::nullopt;
  try {
    const double q = std::stod(quota);
    if (q <= 0) return std::nullopt;
    return q / period;
  } catch (...) {
    return std::nullopt;
  }
}

// cgroup v1: cpu.cfs_quota_us (-1: no limit) over cpu.cfs_period_us.
std::optional<double> v1_limit(const std::string& dir) {
  auto quota_text = read_file(dir + "/cpu.cfs_quota_us");
  auto period_text = read_file(dir + "/cpu.cfs_period_us");
  if (!quota_text || !period_text) return std::nullopt;
  try {
    const double quota = std::stod(*quota_text);
    const double period = std::stod(*period_text);
    if (quota <= 0 || period <= 0) return std::nullopt;
    return quota / period;
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::size_t> affinity_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return std::nullopt;
  const int n = CPU_COUNT(&set);
  if (n <= 0) return std::nullopt;
  return static_cast<std::size_t>(n);
}

std::optional<double> cgroup_cpu_quota() noexcept {
  try {
    auto cgroups = read_file("/proc/self/cgroup");
    auto mountinfo = read_file("/proc/self/mountinfo");
    if (!cgroups || !mountinfo) return std::nullopt;
    std::optional<double> tightest;
    auto consider = [&](std::optional<double> limit) {
      if (limit && (!tightest || *limit < *tightest)) tightest = limit;
    };
    std::istringstream lines(*cgroups);
    std::string line;
    while (std::getline(lines, line)) {
      // "<id>:<controllers>:<path>"; cgroup v2 is "0::<path>".
      const auto first = line.find(':');
      const auto second = first == std::string::npos ? std::string::npos : line.find(':', first + 1);
      if (second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      const std::string path = line.substr(second + 1);
      if (controllers.empty()) {
        if (auto m = find_mount(*mountinfo, "")) {
          for (const std::string& dir : directories(*m, path)) consider(v2_limit(dir));
        }
        continue;
      }
      const std::vector<std::string> names = split(controllers, ',');
      if (std::find(names.begin(), names.end(), "cpu") == names.end()) continue;
      if (auto m = find_mount(*mountinfo, "cpu")) {
        for (const std::string& dir : directories(*m, path)) consider(v1_limit(dir));
      }
    }
    return tightest;
  } catch (...) {
    return std::nullopt;
  }
}

std::size_t cpu_budget() noexcept {
  std::size_t cpus = std::max(1u, std::thread::hardware_concurrency());
  if (auto mask = affinity_cpus()) cpus = std::min(cpus, *mask);
  if (auto quota = cgroup_cpu_quota()) {
    cpus = std::min(cpus, static_cast<std::size_t>(std::max(1.0, std::ceil(*quota))));
  }
  return std::max<std::size_t>(cpus, 1);
}

}  // namespace troupe::detail
