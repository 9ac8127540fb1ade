// config: how a troupe::system runs.
//
//   troupe::config cfg;
//   cfg.worker_threads = 2;
//   troupe::system sys{cfg};
//   troupe::system test_sys{troupe::config::deterministic()};   // single-threaded, stepped by the test
#pragma once

#include <chrono>
#include <cstddef>

namespace troupe {

struct config {
  // Scheduler worker threads; 0 means one per CPU this process may use: the
  // host's CPUs, fewer if its affinity mask or its cgroup's CPU quota (a
  // container's CPU limit) allows fewer.
  std::size_t worker_threads = 0;
  // Messages an actor may handle per activation before yielding its worker to
  // other actors (fairness). The deterministic mode always uses 1.
  std::size_t max_throughput = 256;
  // Deterministic mode: no worker threads; the test drives the system one
  // message at a time (system::step, run_until_idle) on a virtual clock
  // (advance_time). Detached actors are not available in this mode.
  bool deterministic_mode = false;
  // Shutdown waits up to this long for actors to run out of work before it
  // stops them with exit_reason::shutdown.
  std::chrono::milliseconds shutdown_grace{2000};
  // Spin iterations an idle worker makes before it parks (bounded; 0 parks at once).
  std::size_t idle_spins = 64;

  static config deterministic() {
    config c;
    c.deterministic_mode = true;
    c.worker_threads = 0;
    c.max_throughput = 1;
    return c;
  }
};

}  // namespace troupe
