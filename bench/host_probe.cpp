// host_probe: how fast this machine moves a cache line between two cores right
// now. bench/compare runs it before each workload and prints the figure beside
// the workload's row.
//
//   host_probe [--round-trips N]
//
// Two threads, pinned to the first two CPUs this process may use, hand one
// atomic back and forth N times (default 100,000); prints the median of 5
// runs as `core_to_core_roundtrip_ns,<value>`. On a virtual machine the
// hypervisor decides where the two virtual CPUs sit, and with it how long a
// cache line takes to move between them (cores that share a cache are several
// times faster than cores on different chiplets or sockets). Workloads that hand messages from core to core (chameneos, fan_in,
// philosophers, counting) follow that figure on every runtime, so a row
// measured in a slow phase is recognisable as one instead of passing for a
// regression.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

// The first two CPUs of this process's affinity mask (-1 if there is only one).
std::pair<int, int> two_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return {-1, -1};
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.size() < 2; ++c) {
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  }
  if (cpus.size() < 2) return {-1, -1};
  return {cpus[0], cpus[1]};
}

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

struct alignas(64) line {
  std::atomic<long> value{0};
};

double round_trip_ns(long n, int cpu_a, int cpu_b) {
  line token;
  std::thread other([&] {
    pin(cpu_b);
    for (long i = 0; i < n; ++i) {
      // acquire/release: the hand-off itself; spinning is what is measured.
      while (token.value.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      token.value.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(cpu_a);
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    token.value.store(2 * i + 1, std::memory_order_release);  // release/acquire: as above
    while (token.value.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
  other.join();
  return elapsed.count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  long n = 100'000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--round-trips") == 0 && i + 1 < argc) {
      n = std::strtol(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: host_probe [--round-trips N]\n");
      return 2;
    }
  }
  if (n <= 0) {
    std::fprintf(stderr, "host_probe: --round-trips must be positive\n");
    return 2;
  }
  const auto [a, b] = two_cpus();
  if (a < 0) {
    std::fprintf(stderr, "host_probe: needs two CPUs\n");
    return 1;
  }
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) runs.push_back(round_trip_ns(n / 5 + 1, a, b));
  std::sort(runs.begin(), runs.end());
  std::printf("core_to_core_roundtrip_ns,%.0f\n", runs[2]);
  return 0;
}
