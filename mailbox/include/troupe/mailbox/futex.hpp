// futex: the Linux wait/wake primitive every parking spot in troupe rests on.
//
// A thread that has nothing to do sleeps in the kernel on a 32-bit word; another
// thread changes the word and wakes it. Process-private by default; shared
// memory transports use the process_shared flavour.
//
//   std::atomic<std::uint32_t> word{0};
//   troupe::futex_wait(word, 0);            // sleeps while word == 0
//   word.store(1); troupe::futex_wake(word, 1);
//
// Thread safety: every function may be called from any thread. futex_wait may
// return spuriously; callers re-check their condition in a loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace troupe {

enum class futex_scope : std::uint8_t { process_private, process_shared };

// Sleeps while `word` holds `expected`. Returns on a wake, on a signal, or
// spuriously; never blocks if the word already differs.
void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                futex_scope scope = futex_scope::process_private) noexcept;

// As futex_wait, but gives up after `timeout`. Returns false on timeout.
bool futex_wait_for(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout,
                    futex_scope scope = futex_scope::process_private) noexcept;

// Wakes up to `count` threads sleeping on `word`. Returns how many were woken.
int futex_wake(const std::atomic<std::uint32_t>& word, int count,
               futex_scope scope = futex_scope::process_private) noexcept;

// Asymmetric fences (Linux membarrier): a thread that rarely needs a full fence
// pays for it with a system call (heavy_fence) so that threads on the hot path,
// in any process that opted in, need none. heavy_fence() acts as if every
// running thread of every opted-in process had executed a full memory barrier.
// light_fences_available() opts this process in (once) and reports whether the
// kernel supports it; if not, hot paths must keep their own seq_cst fences.
bool light_fences_available() noexcept;
void heavy_fence() noexcept;

}  // namespace troupe
