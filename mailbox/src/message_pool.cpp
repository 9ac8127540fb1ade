// message_pool: the allocator behind every envelope (see envelope::operator new).
//
// Actor messaging allocates on one thread and frees on another at a very high
// rate, the pattern general-purpose allocators handle worst (glibc sends the
// block back to its arena under a lock). This pool keeps a per-thread free list
// per size class; a thread that frees more than it allocates (a consumer) hands
// full magazines of blocks to a shared depot, from which allocating threads (the
// producers) take them — one mutex operation per `magazine` blocks (Bonwick's
// magazine allocator). Blocks come from malloc one at a time and the depot is
// capped, so surplus goes back to malloc instead of being hoarded.
//
// Thread safety: allocate/deallocate from any thread. A thread's cache is
// flushed to the depot when the thread exits.
//
// Built without the pool (straight malloc/free) under AddressSanitizer, so that
// use-after-free of a message is still caught.
#include "troupe/mailbox/message_pool.hpp"

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#include "troupe/mailbox/mutex.hpp"

namespace troupe {

#if defined(TROUPE_NO_MESSAGE_POOL)

void* allocate_message(std::size_t size) {
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void deallocate_message(void* p, std::size_t) noexcept { std::free(p); }

#else

namespace {

constexpr std::size_t granule = 16;
constexpr std::size_t classes = 16;  // blocks of 16..256 bytes
constexpr std::size_t magazine = 256;
constexpr std::size_t depot_limit = 1024;  // magazines kept per class (256k blocks)

struct free_block {
  free_block* next;
};

struct chain {
  free_block* head = nullptr;
  std::size_t count = 0;
};

// Size 0 shares the smallest class (a block still holds the free-list link).
constexpr std::size_t class_of(std::size_t size) noexcept { return size == 0 ? 0 : (size + granule - 1) / granule - 1; }

class depot {
 public:
  bool take(std::size_t cls, chain& out) TROUPE_EXCLUDES(mutex_) {
    // relaxed: a hint that spares an allocating thread the mutex when the depot
    // is empty (the common case while a queue is growing); the mutex below is
    // what orders the hand-over of the blocks themselves.
    if (available_[cls].load(std::memory_order_relaxed) == 0) return false;
    troupe::mutex_lock lock(mutex_);
    auto& stack = full_[cls];
    if (stack.empty()) return false;
    out = stack.back();
    stack.pop_back();
    // relaxed: the hint only; see above.
    available_[cls].store(stack.size(), std::memory_order_relaxed);
    return true;
  }
  void give(std::size_t cls, chain c) TROUPE_EXCLUDES(mutex_) {
    {
      troupe::mutex_lock lock(mutex_);
      auto& stack = full_[cls];
      if (stack.size() < depot_limit) {
        stack.push_back(c);
        // relaxed: the hint only; see take().
        available_[cls].store(stack.size(), std::memory_order_relaxed);
        return;
      }
    }
    release(c);
  }
  static void release(chain c) noexcept {
    while (c.head != nullptr) {
      free_block* next = c.head->next;
      std::free(c.head);
      c.head = next;
    }
  }

 private:
  troupe::mutex mutex_;
  std::vector<chain> full_[classes] TROUPE_GUARDED_BY(mutex_);
  // A hint of full_[cls].size(), read without the lock (see take()).
  std::atomic<std::size_t> available_[classes] = {};
};

// Never destroyed: thread caches flush into it at thread exit, which may come
// after static destructors have run.
depot& shared_depot() {
  static depot* instance = new depot;
  return *instance;
}

struct thread_cache {
  chain lists[classes];
  // Set once the destructor has run: frees later in this thread's exit (from
  // other thread_local destructors) go straight to the depot.
  bool flushed = false;
  ~thread_cache() {
    flushed = true;
    for (std::size_t cls = 0; cls < classes; ++cls) {
      if (lists[cls].count != 0) give_or_release(cls, lists[cls]);
      lists[cls] = {};
    }
  }
  static void give_or_release(std::size_t cls, chain c) noexcept {
    try {
      shared_depot().give(cls, c);
    } catch (...) {
      depot::release(c);  // the depot could not grow: give the blocks back to malloc
    }
  }
};

thread_local thread_cache cache;

}  // namespace

void* allocate_message(std::size_t size) {
  if (size > granule * classes) {
    void* p = std::malloc(size);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  const std::size_t cls = class_of(size);
  chain& list = cache.lists[cls];
  if (list.head == nullptr && !cache.flushed) shared_depot().take(cls, list);
  if (free_block* b = list.head) {
    list.head = b->next;
    --list.count;
    return b;
  }
  void* p = std::malloc((cls + 1) * granule);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void deallocate_message(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  if (size > granule * classes) {
    std::free(p);
    return;
  }
  const std::size_t cls = class_of(size);
  auto* b = static_cast<free_block*>(p);
  if (cache.flushed) {  // this thread is exiting and its cache is gone
    b->next = nullptr;
    thread_cache::give_or_release(cls, chain{b, 1});
    return;
  }
  chain& list = cache.lists[cls];
  b->next = list.head;
  list.head = b;
  if (++list.count < 2 * magazine) return;
  // Too many cached: hand one magazine to the depot, keep the rest.
  chain full;
  full.head = list.head;
  free_block* last = list.head;
  for (std::size_t i = 1; i < magazine; ++i) last = last->next;
  list.head = last->next;
  last->next = nullptr;
  full.count = magazine;
  list.count -= magazine;
  thread_cache::give_or_release(cls, full);
}

#endif

}  // namespace troupe
