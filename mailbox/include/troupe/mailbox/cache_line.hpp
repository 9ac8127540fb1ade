// cache_line: the unit of false sharing on the machines troupe targets.
//
// Concurrent types separate fields written by different threads onto different
// cache lines with alignas(troupe::cache_line), and static_assert the layout.
//
//   struct counters { alignas(troupe::cache_line) std::atomic<int> produced;
//                     alignas(troupe::cache_line) std::atomic<int> consumed; };
#pragma once

#include <cstddef>

namespace troupe {

// 64 bytes on x86-64 and most AArch64 parts. std::hardware_destructive_interference_size
// is not used because GCC warns that its value may differ between compilations.
inline constexpr std::size_t cache_line = 64;

// One iteration of a spin-wait: tells the core we are spinning (x86 PAUSE), which
// saves power and yields pipeline resources to a sibling hyperthread.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace troupe
