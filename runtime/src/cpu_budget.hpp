// cpu_budget: how many CPUs this process may use — what config::worker_threads = 0
// means. Owns: reading the CPU affinity mask and the cgroup CPU quota. May use: std, the C library.
//
// std::thread::hardware_concurrency() counts the host's online CPUs. A process
// in a container limited by a cgroup CPU quota (docker --cpus=1, a Kubernetes
// CPU limit) or pinned to some CPUs (taskset) gets less: one worker per host
// CPU would then be oversubscribed, each worker preempted in turn. The budget
// is the smallest of
//   - the CPUs in this thread's affinity mask (sched_getaffinity),
//   - the cgroup CPU quota rounded up: cgroup v2 "cpu.max" (quota period), or
//     cgroup v1 "cpu.cfs_quota_us" / "cpu.cfs_period_us", of this process's
//     cgroup and of every ancestor (the tightest limit applies),
// and at least 1.
//
//   std::size_t workers = troupe::detail::cpu_budget();
//
// Thread safety: stateless; any thread (it reads /proc and /sys each call).
#pragma once

#include <cstddef>
#include <optional>

namespace troupe::detail {

// The CPUs this process may use (see above).
std::size_t cpu_budget() noexcept;

// The parts, for tests and diagnostics.
// CPUs in this thread's affinity mask; nothing if it cannot be read.
std::optional<std::size_t> affinity_cpus() noexcept;
// The cgroup CPU quota of this process in CPUs (fractional), the tightest along
// its cgroup path; nothing if there is no limit or no cgroup file to read.
std::optional<double> cgroup_cpu_quota() noexcept;

}  // namespace troupe::detail
