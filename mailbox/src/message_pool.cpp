// message_pool: the allocator behind every envelope (see envelope::operator new).
//
// Actor messaging allocates on one thread and frees on another at a very high
// rate, the pattern general-purpose allocators handle worst (glibc sends the
// block back to its arena under a lock). This pool keeps, per thread and size
// class, two magazines (arrays of free blocks); a thread that frees more than it
// allocates (a consumer) hands full magazines to a shared depot, from which
// allocating threads (the producers) take them: one mutex operation per
// `magazine_size` blocks (Bonwick's magazine allocator). Blocks come from malloc
// one at a time and the depot is capped, so surplus goes back to malloc instead
// of being hoarded.
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
#include <utility>
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
constexpr std::size_t classes = 16;         // blocks of 16..256 bytes
constexpr std::size_t magazine_size = 256;  // block pointers per magazine
constexpr std::size_t depot_limit = 1024;   // full magazines kept per class (256k blocks)
constexpr std::size_t spare_limit = 64;     // empty magazines kept per class

// An array of free blocks. The free blocks are not linked through their own
// memory: a block freed on the consumer's core is not read again until it is
// handed out, and then only by the message written into it, so allocating
// touches the magazine's array (a few lines, already in this core's cache)
// instead of pulling each block's line across from the core that freed it.
struct magazine {
  std::size_t count = 0;
  void* blocks[magazine_size];
  [[nodiscard]] bool empty() const noexcept { return count == 0; }
  [[nodiscard]] bool full() const noexcept { return count == magazine_size; }
};

// Size 0 shares the smallest class.
constexpr std::size_t class_of(std::size_t size) noexcept { return size == 0 ? 0 : (size + granule - 1) / granule - 1; }

void release_blocks(magazine* m) noexcept {
  for (std::size_t i = 0; i < m->count; ++i) std::free(m->blocks[i]);
  m->count = 0;
}

class depot {
 public:
  // A magazine with blocks for an empty one (which the depot keeps, or frees);
  // null (and `empty` untouched) if the depot has none.
  magazine* exchange_empty(std::size_t cls, magazine* empty) TROUPE_EXCLUDES(mutex_) {
    // relaxed: a hint that spares an allocating thread the mutex when the depot
    // is empty (the common case while a queue is growing); the mutex below is
    // what orders the hand-over of the blocks themselves.
    if (available_[cls].load(std::memory_order_relaxed) == 0) return nullptr;
    magazine* discard = nullptr;
    magazine* got = nullptr;
    {
      troupe::mutex_lock lock(mutex_);
      auto& stack = full_[cls];
      if (stack.empty()) return nullptr;
      got = stack.back();
      stack.pop_back();
      // relaxed: the hint only; see above.
      available_[cls].store(stack.size(), std::memory_order_relaxed);
      if (empty != nullptr) discard = keep_spare(cls, empty);
    }
    delete discard;
    return got;
  }
  // Takes a magazine with blocks; returns an empty one for the caller to fill
  // (a spare, or a new one; null only if none could be allocated).
  magazine* exchange_full(std::size_t cls, magazine* full) noexcept TROUPE_EXCLUDES(mutex_) {
    magazine* spare = nullptr;
    magazine* surplus = nullptr;
    {
      troupe::mutex_lock lock(mutex_);
      auto& stack = full_[cls];
      if (stack.size() < depot_limit && push(stack, full)) {
        // relaxed: the hint only; see exchange_empty().
        available_[cls].store(stack.size(), std::memory_order_relaxed);
      } else {
        surplus = full;  // the depot is at its cap: the blocks go back to malloc
      }
      auto& spares = spares_[cls];
      if (!spares.empty()) {
        spare = spares.back();
        spares.pop_back();
      }
    }
    if (surplus != nullptr) {
      release_blocks(surplus);
      if (spare == nullptr) return surplus;
      delete surplus;
    }
    if (spare == nullptr) spare = new (std::nothrow) magazine;
    return spare;
  }
  // One block, from a thread whose cache is gone (thread exit): into a
  // magazine of the depot with room, or a new one.
  void give_block(std::size_t cls, void* block) noexcept TROUPE_EXCLUDES(mutex_) {
    auto* fresh = new (std::nothrow) magazine;
    {
      troupe::mutex_lock lock(mutex_);
      auto& stack = full_[cls];
      if (!stack.empty() && !stack.back()->full()) {
        magazine* top = stack.back();
        top->blocks[top->count++] = block;
        block = nullptr;
      } else if (fresh != nullptr && stack.size() < depot_limit) {
        fresh->blocks[fresh->count++] = block;
        if (push(stack, fresh)) {
          fresh = nullptr;
          block = nullptr;
          // relaxed: the hint only; see exchange_empty().
          available_[cls].store(stack.size(), std::memory_order_relaxed);
        } else {
          fresh->count = 0;
        }
      }
    }
    delete fresh;
    std::free(block);  // null if it went to the depot
  }

 private:
  static bool push(std::vector<magazine*>& stack, magazine* m) noexcept {
    try {
      stack.push_back(m);
      return true;
    } catch (...) {
      return false;
    }
  }
  // Keeps `empty` as a spare if there is room; returns it otherwise, to be freed.
  magazine* keep_spare(std::size_t cls, magazine* empty) TROUPE_REQUIRES(mutex_) {
    auto& spares = spares_[cls];
    if (spares.size() < spare_limit && push(spares, empty)) return nullptr;
    return empty;
  }

  troupe::mutex mutex_;
  std::vector<magazine*> full_[classes] TROUPE_GUARDED_BY(mutex_);
  std::vector<magazine*> spares_[classes] TROUPE_GUARDED_BY(mutex_);
  // A hint of full_[cls].size(), read without the lock (see exchange_empty()).
  std::atomic<std::size_t> available_[classes] = {};
};

// Never destroyed: thread caches flush into it at thread exit, which may come
// after static destructors have run.
depot& shared_depot() {
  static depot* instance = new depot;
  return *instance;
}

// Per class, two magazines (Bonwick's "loaded" and "previous"): a thread that
// allocates and frees about as often as it does the other swaps between them
// and never goes to the depot; a pure producer or consumer goes there once per
// magazine_size blocks. At most 2 * magazine_size blocks are cached per class.
struct thread_cache {
  magazine* loaded[classes] = {};
  magazine* previous[classes] = {};
  // Set once the destructor has run: frees later in this thread's exit (from
  // other thread_local destructors) go straight to the depot.
  bool flushed = false;
  ~thread_cache() {
    flushed = true;
    for (std::size_t cls = 0; cls < classes; ++cls) {
      for (magazine* m : {loaded[cls], previous[cls]}) {
        if (m == nullptr) continue;
        if (m->empty()) {
          delete m;
        } else {
          delete shared_depot().exchange_full(cls, m);
        }
      }
      loaded[cls] = previous[cls] = nullptr;
    }
  }
};

thread_local thread_cache cache;

void* allocate_from_malloc(std::size_t bytes) {
  void* p = std::malloc(bytes);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* allocate_message(std::size_t size) {
  if (size > granule * classes) return allocate_from_malloc(size);
  const std::size_t cls = class_of(size);
  if (cache.flushed) return allocate_from_malloc((cls + 1) * granule);
  magazine*& loaded = cache.loaded[cls];
  magazine*& previous = cache.previous[cls];
  if (loaded == nullptr || loaded->empty()) {
    if (previous != nullptr && !previous->empty()) {
      std::swap(loaded, previous);
    } else if (magazine* full = shared_depot().exchange_empty(cls, previous)) {
      // The empty previous went to the depot; the empty loaded becomes previous.
      previous = loaded;
      loaded = full;
    } else {
      return allocate_from_malloc((cls + 1) * granule);
    }
  }
  return loaded->blocks[--loaded->count];
}

void deallocate_message(void* p, std::size_t size) noexcept {
  if (p == nullptr) return;
  if (size > granule * classes) {
    std::free(p);
    return;
  }
  const std::size_t cls = class_of(size);
  if (cache.flushed) {  // this thread is exiting and its cache is gone
    shared_depot().give_block(cls, p);
    return;
  }
  magazine*& loaded = cache.loaded[cls];
  magazine*& previous = cache.previous[cls];
  if (loaded == nullptr) {
    loaded = new (std::nothrow) magazine;
    if (loaded == nullptr) {
      std::free(p);
      return;
    }
  }
  if (loaded->full()) {
    if (previous != nullptr && !previous->full()) {
      std::swap(loaded, previous);
    } else {
      // Both full: the previous goes to the depot for an empty one, and the
      // full loaded becomes previous.
      magazine* empty = previous == nullptr ? new (std::nothrow) magazine : shared_depot().exchange_full(cls, previous);
      if (empty == nullptr) {  // out of memory for a magazine: the block goes back to malloc
        previous = nullptr;
        std::free(p);
        return;
      }
      previous = loaded;
      loaded = empty;
    }
  }
  loaded->blocks[loaded->count++] = p;
}

#endif

}  // namespace troupe
