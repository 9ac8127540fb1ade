#include "troupe/mailbox/futex.hpp"

#include <linux/membarrier.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

namespace troupe {
namespace {

// std::atomic<uint32_t> is layout-compatible with uint32_t on every platform we
// build for; the kernel only needs the word's address.
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

std::uint32_t* address(const std::atomic<std::uint32_t>& word) noexcept {
  return const_cast<std::uint32_t*>(reinterpret_cast<const std::uint32_t*>(&word));
}

int op(int base, futex_scope scope) noexcept {
  return scope == futex_scope::process_private ? (base | FUTEX_PRIVATE_FLAG) : base;
}

}  // namespace

void futex_wait(const std::atomic<std::uint32_t>& word, std::uint32_t expected, futex_scope scope) noexcept {
  ::syscall(SYS_futex, address(word), op(FUTEX_WAIT, scope), expected, nullptr, nullptr, 0);
}

bool futex_wait_for(const std::atomic<std::uint32_t>& word, std::uint32_t expected, std::chrono::nanoseconds timeout,
                    futex_scope scope) noexcept {
  if (timeout.count() <= 0) return false;
  timespec relative{};
  relative.tv_sec = static_cast<time_t>(timeout.count() / 1'000'000'000);
  relative.tv_nsec = static_cast<long>(timeout.count() % 1'000'000'000);
  long rc = ::syscall(SYS_futex, address(word), op(FUTEX_WAIT, scope), expected, &relative, nullptr, 0);
  return !(rc == -1 && errno == ETIMEDOUT);
}

int futex_wake(const std::atomic<std::uint32_t>& word, int count, futex_scope scope) noexcept {
  long rc = ::syscall(SYS_futex, address(word), op(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
  return rc < 0 ? 0 : static_cast<int>(rc);
}

namespace {
bool register_light_fences() noexcept {
  // GLOBAL_EXPEDITED: the barrier reaches other processes that registered too
  // (both ends of a shared-memory ring run this code).
  const long supported = ::syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return false;
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}
}  // namespace

bool light_fences_available() noexcept {
  static const bool available = register_light_fences();
  return available;
}

void heavy_fence() noexcept {
  if (!light_fences_available() || ::syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) != 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

}  // namespace troupe
