// work_stealing_deque: a scheduler worker's run queue. The owning worker pushes
// and pops at the bottom (LIFO, cache-warm); idle workers steal from the top
// (FIFO, oldest first). Bounded: push() fails when full and the caller spills to
// the shared injection queue, so there is no buffer growth and no reclamation.
//
//   troupe::work_stealing_deque<task, 256> q;
//   if (!q.push(t)) injector.push(t);     // owner
//   task* mine = q.pop();                 // owner
//   task* theirs = other.steal();         // any other thread
//
// Algorithm: Chase & Lev, "Dynamic circular work-stealing deque" (SPAA 2005), in
// the formulation of Lê, Pop, Cohen & Zappa Nardelli, "Correct and efficient
// work-stealing for weak memory models" (PPoPP 2013). That paper's two seq_cst
// fences are expressed here as seq_cst operations on `top_` and `bottom_`
// instead, because ThreadSanitizer does not model standalone fences (and GCC
// warns about them under -fsanitize=thread); on x86-64 the cost is the same
// (one locked instruction where the fence was).
//
// Thread safety: push() and pop() by the owning thread only; steal(), size_hint()
// by any thread, the owner included (an owner that takes with steal() instead of
// pop() gets FIFO order, which is how troupe's scheduler uses it). An element
// pushed happens-before its pop() or steal() returns it, so whatever the pusher
// wrote before push() is visible to the taker. The owner is the thread of the
// first push() or pop(), for the deque's lifetime; builds with TROUPE_ASSERTIONS
// (assert.hpp) abort when another thread calls either.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "troupe/mailbox/assert.hpp"
#include "troupe/mailbox/cache_line.hpp"

#if TROUPE_ASSERTIONS
#include <thread>
#endif

namespace troupe {

template <class T, std::size_t Capacity = 256>
class work_stealing_deque {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "work_stealing_deque: Capacity must be a power of two");

 public:
  work_stealing_deque() noexcept {
    static_assert(alignof(work_stealing_deque) == cache_line,
                  "work_stealing_deque: top_, bottom_ and the slots must start on separate cache lines");
    for (auto& slot : slots_) slot.store(nullptr, std::memory_order_relaxed);
  }
  work_stealing_deque(const work_stealing_deque&) = delete;
  work_stealing_deque& operator=(const work_stealing_deque&) = delete;

  // Owner only. False if full (the element was not taken).
  [[nodiscard]] bool push(T* item) noexcept {
    check_owner();
    // relaxed: only the owner writes bottom_.
    const std::int64_t bottom = bottom_.load(std::memory_order_relaxed);
    // acquire: pairs with the seq_cst CAS on top_ in steal()/pop(); a slot freed
    // by a thief is not reused before the thief has read it.
    const std::int64_t top = top_.load(std::memory_order_acquire);
    if (bottom - top >= static_cast<std::int64_t>(Capacity)) return false;
    // release: pairs with the acquire load of the slot in steal(); the item's
    // contents are visible to a thief that takes it.
    slots_[index(bottom)].store(item, std::memory_order_release);
    // release: pairs with the loads of bottom_ in steal(); a thief that sees the
    // new bottom also sees the slot written above.
    bottom_.store(bottom + 1, std::memory_order_release);
    return true;
  }

  // Owner only. The most recently pushed element, or nullptr.
  T* pop() noexcept {
    check_owner();
    // relaxed: only the owner writes bottom_.
    const std::int64_t bottom = bottom_.load(std::memory_order_relaxed) - 1;
    // seq_cst (store) then seq_cst (load of top_): the Dekker pair with steal(),
    // which reads top_ then bottom_. Either the thief sees the decremented bottom
    // and backs off, or we see its incremented top; never both take the element.
    bottom_.store(bottom, std::memory_order_seq_cst);
    std::int64_t top = top_.load(std::memory_order_seq_cst);
    if (top > bottom) {  // empty: undo the reservation
      bottom_.store(bottom + 1, std::memory_order_relaxed);
      return nullptr;
    }
    // relaxed: the owner wrote this slot itself.
    T* item = slots_[index(bottom)].load(std::memory_order_relaxed);
    if (top == bottom) {
      // The last element: race the thieves for it on top_.
      // seq_cst: totally ordered with the thieves' CAS; relaxed on failure.
      if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        item = nullptr;  // a thief won
      }
      // relaxed: owner-only bookkeeping; top_ == bottom + 1 either way.
      bottom_.store(bottom + 1, std::memory_order_relaxed);
    }
    return item;
  }

  // Any thread, the owner included. The oldest element, or nullptr if empty or if the
  // race for it was lost (the caller may try again or try elsewhere).
  T* steal() noexcept {
    // seq_cst: see pop(); read top_ before bottom_.
    std::int64_t top = top_.load(std::memory_order_seq_cst);
    // seq_cst: pairs with pop()'s seq_cst store, and (as an acquire) with push()'s
    // release store of bottom_.
    const std::int64_t bottom = bottom_.load(std::memory_order_seq_cst);
    if (top >= bottom) return nullptr;
    // acquire: pairs with the release store of the slot in push().
    T* item = slots_[index(top)].load(std::memory_order_acquire);
    // seq_cst: claims the element against the owner and other thieves; relaxed on
    // failure (someone else took it; the read item is discarded).
    if (!top_.compare_exchange_strong(top, top + 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
      return nullptr;
    }
    return item;
  }

  // Any thread. Approximate number of elements (exact for the owner when no
  // thief is active).
  [[nodiscard]] std::size_t size_hint() const noexcept {
    // relaxed: a heuristic for load balancing, not for synchronisation.
    const std::int64_t bottom = bottom_.load(std::memory_order_relaxed);
    const std::int64_t top = top_.load(std::memory_order_relaxed);
    return bottom > top ? static_cast<std::size_t>(bottom - top) : 0;
  }

  static constexpr std::size_t capacity() noexcept { return Capacity; }

 private:
  static constexpr std::size_t index(std::int64_t position) noexcept {
    return static_cast<std::size_t>(position) & (Capacity - 1);
  }

  // push() and pop(): the first caller becomes the owner; any other thread
  // aborts. Checked builds only.
  void check_owner() noexcept {
#if TROUPE_ASSERTIONS
    const std::thread::id self = std::this_thread::get_id();
    // relaxed: bookkeeping for the check, never synchronisation (ThreadSanitizer
    // must see only the ordering the deque itself provides).
    std::thread::id owner = owner_.load(std::memory_order_relaxed);
    if (owner == std::thread::id{}) {
      if (owner_.compare_exchange_strong(owner, self, std::memory_order_relaxed, std::memory_order_relaxed)) return;
    }
    TROUPE_ASSERT(owner == self, "work_stealing_deque: push() or pop() from a thread that is not the deque's owner");
#endif
  }

  // top_ is written by thieves, bottom_ by the owner: separate lines so that the
  // owner's push/pop does not bounce the line thieves CAS on.
  alignas(cache_line) std::atomic<std::int64_t> top_{0};
  alignas(cache_line) std::atomic<std::int64_t> bottom_{0};
#if TROUPE_ASSERTIONS
  // The owning thread (none until the first push or pop), on the owner's line.
  std::atomic<std::thread::id> owner_{};
#endif
  alignas(cache_line) std::array<std::atomic<T*>, Capacity> slots_;
};

}  // namespace troupe
