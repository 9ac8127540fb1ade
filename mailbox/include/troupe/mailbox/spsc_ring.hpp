// spsc_ring: a single-producer single-consumer ring of variable-length records
// in memory shared between two processes (the building block of the same-host
// transport). The memory holds offsets only, never pointers; its header is a
// standard-layout struct with a magic number and a version.
//
//   troupe::spsc_ring ring = troupe::spsc_ring::create(memory, bytes);    // creator
//   auto peer = troupe::spsc_ring::attach(memory, bytes);                 // the other side
//   ring.try_write(7, payload);                                           // producer
//   peer->read([](std::uint32_t type, std::span<const std::byte> p) {...}); // consumer
//
// Records: a 16-byte header {seal, length, type} followed by `length` payload
// bytes, padded to 16. A record never wraps around the end of the buffer: when
// it does not fit, the producer writes a skip marker and starts at offset 0.
//
// Sealed records, no tail index: the producer writes a record's bytes, then its
// seal (the ring's secret key XOR the record's position) with a release store;
// the consumer polls the seal of the next record itself. The record's first
// cache line is all the consumer waits for (with a tail index it first missed
// on the index's line, then on the record's: one more cross-core transfer per
// message, the largest part of a round trip). Bytes left from an earlier lap
// carry an earlier position's seal, and payload bytes that happen to lie where
// the next header goes would have to guess the 64-bit key: stale memory never
// reads as a record (see docs/wire.md).
//
// The consumer does not trust the producer: the other process may be buggy or
// hostile. Every position and length read from the shared memory is checked
// before use, and a violation is reported as read_result::corrupt (the caller
// then drops that peer), never as an out-of-bounds access.
//
// Waking up: the consumer spins briefly, then announces that it sleeps
// (consumer_sleeping) and parks on a process-shared futex on the producer's
// wake-up counter (published); the producer, after sealing a record, checks the
// flag and wakes it. An idle pair uses no CPU. The fences of that handshake are asymmetric
// (futex.hpp's heavy_fence, Linux membarrier): the producer, which writes on
// every record, needs none; the consumer pays a system call when it parks.
//
// Cache traffic: the producer caches the consumer's index and re-reads it only
// when the ring looks full; the consumer hands space back in chunks of an eighth
// of the ring and when it starts to wait for more. docs/wire.md has the
// layout and the full argument.
//
// Thread safety: one producer thread at a time (in one process) calls try_write/
// write_wait (callers that share the producer role serialise themselves, which
// also orders the producer-side cache); one consumer thread (in the other, or the
// same, process) calls read/wait_readable/release_space. The producer's writes to
// a record happen-before the consumer's read of it (release store of the seal /
// acquire load). interrupt_consumer, consumer_position and wait_for_room from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include <sys/random.h>

#include "troupe/mailbox/cache_line.hpp"
#include "troupe/mailbox/futex.hpp"

namespace troupe {

// The shared layout. Positions count bytes written/consumed since creation
// (64-bit, below 2^63: they never wrap in practice); offset = position &
// (capacity - 1).
struct spsc_ring_header {
  static constexpr std::uint32_t magic_value = 0x54525052;  // "TRPR" as a number ("RPRT" in memory on x86)
  static constexpr std::uint32_t current_version = 3;

  std::uint32_t magic;
  std::uint32_t version;
  std::uint64_t capacity;  // bytes of record space after the header, a power of two
  std::uint64_t key;       // random, top bit set: a record at position p is sealed with key ^ p (never 0)
  // Producer-owned line: the wake-up counter.
  alignas(cache_line) std::atomic<std::uint32_t> published;  // bumped to wake a parked consumer: its futex word
  // Consumer-owned line: where the consumer has handed space back to (written
  // once per eighth of the ring, see read()).
  alignas(cache_line) std::atomic<std::uint64_t> head;
  std::atomic<std::uint32_t> freed;  // bumped when the consumer frees space: the producer's futex word
  // The sleep flags, each on a line of its own: written rarely (around a park),
  // read on every publish / every hand-back. Sharing a line with head or the
  // wake-up counter would make every such read a cache miss.
  alignas(cache_line) std::atomic<std::uint32_t> consumer_sleeping;
  alignas(cache_line) std::atomic<std::uint32_t> producer_sleeping;
};

static_assert(std::is_standard_layout_v<spsc_ring_header>, "spsc_ring_header lives in shared memory");
static_assert(std::atomic<std::uint64_t>::is_always_lock_free && std::atomic<std::uint32_t>::is_always_lock_free,
              "shared-memory atomics must be lock-free (address-free)");
static_assert(offsetof(spsc_ring_header, published) % cache_line == 0 &&
                  offsetof(spsc_ring_header, head) % cache_line == 0 &&
                  offsetof(spsc_ring_header, consumer_sleeping) % cache_line == 0 &&
                  offsetof(spsc_ring_header, producer_sleeping) % cache_line == 0,
              "the producer's and the consumer's words and the sleep flags on separate cache lines");
static_assert(sizeof(spsc_ring_header) == 5 * cache_line, "records start 320 bytes in (docs/wire.md)");

enum class read_result : std::uint8_t { record, empty, corrupt };
enum class write_result : std::uint8_t { written, full, too_large };

class spsc_ring {
 public:
  // {u64 seal, u32 length, u32 type}; records are padded to a multiple of it,
  // so a header never straddles a cache line or the end of the buffer.
  static constexpr std::size_t record_header = 16;
  static constexpr std::uint32_t skip_marker = 0xFFFFFFFFu;

  // Bytes of shared memory needed for `capacity` bytes of records (a power of two).
  static constexpr std::size_t bytes_for(std::size_t capacity) noexcept { return sizeof(spsc_ring_header) + capacity; }

  // Initialises a ring in `memory` (`bytes` long, page-aligned memory is fine).
  // The record capacity is the largest power of two that fits.
  static spsc_ring create(void* memory, std::size_t bytes) noexcept {
    auto* h = static_cast<spsc_ring_header*>(memory);
    std::size_t capacity = 64;
    while (sizeof(spsc_ring_header) + capacity * 2 <= bytes) capacity *= 2;
    h->magic = spsc_ring_header::magic_value;
    h->version = spsc_ring_header::current_version;
    h->capacity = capacity;
    // The record space need not be cleared: fresh memory reads as empty (no
    // seal is 0), and an earlier ring's records were sealed with another key.
    h->key = random_key();
    h->published.store(0, std::memory_order_relaxed);
    h->head.store(0, std::memory_order_relaxed);
    h->consumer_sleeping.store(0, std::memory_order_relaxed);
    h->freed.store(0, std::memory_order_relaxed);
    // release: the initialised header is visible to whoever attaches after
    // receiving the memory (the hand-over itself, e.g. SCM_RIGHTS, also orders it).
    h->producer_sleeping.store(0, std::memory_order_release);
    return spsc_ring(h, capacity);
  }

  // Attaches to a ring another process created; nullopt if the memory does not
  // hold a ring of this version that fits in `bytes`.
  static std::optional<spsc_ring> attach(void* memory, std::size_t bytes) noexcept {
    if (bytes < sizeof(spsc_ring_header)) return std::nullopt;
    auto* h = static_cast<spsc_ring_header*>(memory);
    const std::uint64_t capacity = h->capacity;
    if (h->magic != spsc_ring_header::magic_value || h->version != spsc_ring_header::current_version || capacity < 64 ||
        (capacity & (capacity - 1)) != 0 || capacity > bytes - sizeof(spsc_ring_header) || (h->key >> 63) == 0) {
      return std::nullopt;
    }
    return spsc_ring(h, capacity);
  }

  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  // The shared header, for diagnostics and for tests that play a hostile peer.
  [[nodiscard]] spsc_ring_header* header() const noexcept { return header_; }
  // The largest payload a record can carry.
  [[nodiscard]] std::size_t max_payload() const noexcept { return capacity_ / 2 - record_header; }

  // --- producer ---------------------------------------------------------------
  // The payload is `payload` followed by `more` (a gather write: a record header
  // of the caller's and its body need not be contiguous).
  write_result try_write(std::uint32_t type, std::span<const std::byte> payload,
                         std::span<const std::byte> more = {}) noexcept {
    const std::size_t length = payload.size() + more.size();
    if (length > max_payload()) return write_result::too_large;
    const std::uint64_t size = padded(record_header + length);
    std::uint64_t tail = tail_;
    const std::uint64_t offset = tail & (capacity_ - 1);
    const std::uint64_t to_end = capacity_ - offset;
    const std::uint64_t needed = size <= to_end ? size : to_end + size;  // skip to the start if it does not fit
    if (tail - cached_head_ + needed > capacity_) {
      // seq_cst (a plain load on x86): acquire pairs with the store of head in
      // read() — the consumer is done with the bytes we overwrite — and seq_cst
      // keeps write_wait()'s re-check after its producer_sleeping store (Dekker);
      // that re-check always lands here, as the cached view said full.
      cached_head_ = header_->head.load(std::memory_order_seq_cst);
      if (tail - cached_head_ + needed > capacity_) return write_result::full;
    }
    if (size > to_end) {
      write_u32(offset + 8, skip_marker);
      write_u32(offset + 12, 0);
      seal(tail);
      tail += to_end;
    }
    const std::uint64_t at = tail & (capacity_ - 1);
    write_u32(at + 8, static_cast<std::uint32_t>(length));
    write_u32(at + 12, type);
    if (!payload.empty()) std::memcpy(data() + at + record_header, payload.data(), payload.size());
    if (!more.empty()) std::memcpy(data() + at + record_header + payload.size(), more.data(), more.size());
    seal(tail);
    tail_ = tail + size;
    wake_consumer();
    return write_result::written;
  }

  // As try_write, but waits (spin, then park) for room until `deadline`.
  write_result write_wait(std::uint32_t type, std::span<const std::byte> payload,
                          std::chrono::steady_clock::time_point deadline,
                          std::span<const std::byte> more = {}) noexcept {
    for (int spin = 0;; ++spin) {
      // acquire: pairs with the release increment in read(); the futex value snapshot.
      const std::uint32_t seen = header_->freed.load(std::memory_order_acquire);
      const write_result r = try_write(type, payload, more);
      if (r != write_result::full) return r;
      if (spin < spin_limit) {
        cpu_relax();
        continue;
      }
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return write_result::full;
      // seq_cst: Dekker with the consumer's seq_cst head store + flag load in read().
      header_->producer_sleeping.store(1, std::memory_order_seq_cst);
      if (try_write(type, payload, more) == write_result::written) {
        header_->producer_sleeping.store(0, std::memory_order_relaxed);
        return write_result::written;
      }
      futex_wait_for(header_->freed, seen, left, futex_scope::process_shared);
      header_->producer_sleeping.store(0, std::memory_order_relaxed);
    }
  }

  // For a producer that found the ring full and let go of it (other threads of
  // its process may produce meanwhile, under their own mutual exclusion): waits
  // (spin, then park) until the consumer has moved past `seen_head` (see
  // consumer_position()), or until `deadline`. The caller retries its write.
  void wait_for_room(std::uint64_t seen_head, std::chrono::steady_clock::time_point deadline) noexcept {
    for (int spin = 0;; ++spin) {
      // seq_cst: as in write_wait() — Dekker with read()'s head store and flag load.
      if (header_->head.load(std::memory_order_seq_cst) != seen_head) return;
      if (spin < spin_limit) {
        cpu_relax();
        continue;
      }
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return;
      // acquire: pairs with the release increment in read(); the futex value snapshot.
      const std::uint32_t seen = header_->freed.load(std::memory_order_acquire);
      header_->producer_sleeping.store(1, std::memory_order_seq_cst);
      if (header_->head.load(std::memory_order_seq_cst) == seen_head) {
        futex_wait_for(header_->freed, seen, left, futex_scope::process_shared);
      }
      header_->producer_sleeping.store(0, std::memory_order_relaxed);
      return;
    }
  }
  // Where the consumer is (for wait_for_room).
  [[nodiscard]] std::uint64_t consumer_position() const noexcept {
    // acquire: pairs with the head store in read().
    return header_->head.load(std::memory_order_acquire);
  }
  // Producer: where the next record goes (bytes written so far, skips included).
  [[nodiscard]] std::uint64_t producer_position() const noexcept { return tail_; }

  // Tests that play a hostile producer: seals a header at `position` (a
  // multiple of 16) with any length and type, the payload being whatever the
  // buffer holds, and wakes the consumer. The producer's own position is left
  // alone. False if the position is not a header's.
  bool write_header_for_tests(std::uint64_t position, std::uint32_t length, std::uint32_t type) noexcept {
    if (position % record_header != 0) return false;
    const std::uint64_t offset = position & (capacity_ - 1);
    write_u32(offset + 8, length);
    write_u32(offset + 12, type);
    seal(position);
    interrupt_consumer();
    return true;
  }

  // --- consumer ---------------------------------------------------------------
  // Hands the next record to f(type, payload) (valid only during the call) and
  // frees its space. empty: nothing to read; corrupt: the producer broke the
  // format (the ring must not be used any more).
  //
  // The space of records read is handed back to the producer in chunks (an
  // eighth of the ring) and when the consumer starts to wait (wait_readable),
  // not record by record: every store to head pulls its cache line away from a
  // producer that is polling it.
  template <class F>
  read_result read(F&& f) {
    std::uint64_t head = consumer_head_;
    std::uint64_t offset = head & (capacity_ - 1);
    if (!sealed(offset, head)) return read_result::empty;
    std::uint32_t length = read_u32(offset + 8);
    if (length == skip_marker) {
      // The rest of the buffer is skipped; the record itself is sealed on its
      // own and may not be there yet.
      head += capacity_ - offset;
      consumer_head_ = head;
      offset = 0;
      if (!sealed(offset, head)) return read_result::empty;
      length = read_u32(offset + 8);
      if (length == skip_marker) return read_result::corrupt;  // a skip must be followed by a record
    }
    const std::uint64_t size = padded(record_header + static_cast<std::uint64_t>(length));
    if (length > max_payload() || size > capacity_ - offset) return read_result::corrupt;
    const std::uint32_t type = read_u32(offset + 12);
    f(type, std::span<const std::byte>(data() + offset + record_header, length));
    consumer_head_ = head + size;
    if (consumer_head_ - released_head_ >= capacity_ / 8) release_space();
    return read_result::record;
  }

  // Consumer: hands the space of every record read so far back to the producer
  // (read() does this by itself; call it before a long pause in reading).
  void release_space() noexcept {
    if (consumer_head_ == released_head_) return;
    released_head_ = consumer_head_;
    // seq_cst: publishes the freed space (release for the producer's acquire of
    // head) and orders this store before the producer_sleeping check below (Dekker).
    header_->head.store(consumer_head_, std::memory_order_seq_cst);
    if (header_->producer_sleeping.load(std::memory_order_seq_cst) != 0) {
      header_->freed.fetch_add(1, std::memory_order_release);
      futex_wake(header_->freed, 1, futex_scope::process_shared);
    }
  }

  // Waits until a record may be readable (spin, then park) or `deadline`
  // (time_point::max(): no deadline), or until `cancel` (if given) is set and
  // interrupt_consumer() called. Returns false on timeout or cancellation.
  // `spins`: checks before parking (spinning keeps latency low while the
  // producer is active; parking keeps an idle pair at zero CPU).
  bool wait_readable(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>* cancel = nullptr,
                     int spins = spin_limit) noexcept {
    // Idle: the producer gets everything back. Here rather than in read(): a
    // reader that drains a ring and then runs what it read (a reply to send,
    // say) would otherwise pay this store's fence before doing so.
    release_space();
    for (int spin = 0;; ++spin) {
      // acquire: pairs with the release increment in wake_consumer() (and in interrupt_consumer()).
      const std::uint32_t seen = header_->published.load(std::memory_order_acquire);
      if (readable()) return true;
      // seq_cst: pairs with the store in the canceller before its interrupt_consumer():
      // either we see the flag here, or its increment of `published` makes our futex_wait return.
      if (cancel != nullptr && cancel->load(std::memory_order_seq_cst)) return false;
      if (spin < spins) {
        cpu_relax();
        continue;
      }
      const bool forever = deadline == std::chrono::steady_clock::time_point::max();
      const auto left = forever ? std::chrono::nanoseconds::max() : deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return false;
      // seq_cst: Dekker with the producer's seal store + flag load (seal(), wake_consumer()).
      header_->consumer_sleeping.store(1, std::memory_order_seq_cst);
      // The producer's side of this Dekker handshake has no fence of its own
      // when light fences are on (see seal()).
      if (light_fences_) heavy_fence();
      if (readable()) {
        header_->consumer_sleeping.store(0, std::memory_order_relaxed);
        return true;
      }
      if (forever) {
        futex_wait(header_->published, seen, futex_scope::process_shared);
      } else {
        futex_wait_for(header_->published, seen, left, futex_scope::process_shared);
      }
      // relaxed: the flag is ours again (the producer may have cleared it already,
      // see wake_consumer(); a 0 over a 0 is harmless).
      header_->consumer_sleeping.store(0, std::memory_order_relaxed);
    }
  }

  // Any thread of the consumer's process: wakes a consumer parked in
  // wait_readable() so that it re-checks its cancel flag (set that first).
  void interrupt_consumer() noexcept {
    // release: a wake-up counter bump like publish()'s; the consumer's futex_wait
    // returns at once if it snapshotted the old value.
    header_->published.fetch_add(1, std::memory_order_release);
    futex_wake(header_->published, INT32_MAX, futex_scope::process_shared);
  }

  // Consumer only: the next record (or skip marker) is sealed.
  [[nodiscard]] bool readable() const noexcept { return sealed(consumer_head_ & (capacity_ - 1), consumer_head_); }

 private:
  static constexpr int spin_limit = 128;

  spsc_ring(spsc_ring_header* h, std::uint64_t capacity) noexcept
      : header_(h),
        capacity_(capacity),
        key_(h->key),
        // relaxed: a starting point only (rings are created empty and attached
        // before use); the producer re-reads head (seq_cst) before relying on it.
        cached_head_(h->head.load(std::memory_order_relaxed)),
        tail_(cached_head_),
        consumer_head_(cached_head_),
        released_head_(cached_head_),
        light_fences_(light_fences_available()) {}

  // 64 random bits with the top one set (positions stay below 2^63, so no seal
  // is 0, the value of fresh memory). getrandom() only fails before the kernel's
  // pool is initialised or without the system call; the fallback still differs
  // per ring and per run.
  static std::uint64_t random_key() noexcept {
    std::uint64_t k = 0;
    if (::getrandom(&k, sizeof k, 0) != static_cast<ssize_t>(sizeof k)) {
      k = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
              0x9E3779B97F4A7C15ull ^
          reinterpret_cast<std::uintptr_t>(&k);
    }
    return k | (std::uint64_t{1} << 63);
  }

  static constexpr std::uint64_t padded(std::uint64_t n) noexcept {
    return (n + record_header - 1) & ~std::uint64_t{record_header - 1};
  }
  std::byte* data() const noexcept { return reinterpret_cast<std::byte*>(header_ + 1); }
  void write_u32(std::uint64_t offset, std::uint32_t v) noexcept { std::memcpy(data() + offset, &v, 4); }
  std::uint32_t read_u32(std::uint64_t offset) const noexcept {
    std::uint32_t v;
    std::memcpy(&v, data() + offset, 4);
    return v;
  }
  // The seal word of the header at `offset` (16-aligned, so 8-aligned in memory).
  std::atomic_ref<std::uint64_t> seal_at(std::uint64_t offset) const noexcept {
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(data() + offset));
  }
  // Consumer: the header at `offset` is sealed for `position`.
  bool sealed(std::uint64_t offset, std::uint64_t position) const noexcept {
    // acquire: pairs with the release store in seal(); the record's bytes are visible.
    return seal_at(offset).load(std::memory_order_acquire) == (key_ ^ position);
  }

  // Producer: makes the record (or skip marker) at `position` readable, its
  // length, type and payload written before.
  void seal(std::uint64_t position) noexcept {
    const std::uint64_t offset = position & (capacity_ - 1);
    if (light_fences_) {
      // release: pairs with the consumer's acquire of the seal (the record's
      // bytes). No fence before wake_consumer()'s flag check (a seq_cst store is
      // a full fence, the dominant cost of a write): the consumer runs
      // heavy_fence() between raising its flag and re-checking the seal
      // (wait_readable), which orders this store and that load against it as a
      // fence here would.
      seal_at(offset).store(key_ ^ position, std::memory_order_release);
      std::atomic_signal_fence(std::memory_order_seq_cst);  // the compiler keeps the order
    } else {
      // seq_cst: release for the record's bytes, and ordered before the
      // consumer_sleeping check in wake_consumer() (Dekker with wait_readable).
      seal_at(offset).store(key_ ^ position, std::memory_order_seq_cst);
    }
  }

  // Producer, after seal(): wakes the consumer if it parked (or is parking).
  void wake_consumer() noexcept {
    // relaxed with light fences (see seal()); seq_cst otherwise (Dekker).
    if (header_->consumer_sleeping.load(light_fences_ ? std::memory_order_relaxed : std::memory_order_seq_cst) == 0) {
      return;
    }
    // The consumer is (about to be) parked. The producer takes the flag down
    // itself, so that the records it publishes until the consumer is back on a
    // core do not each pay a futex_wake system call (on a busy host that wake
    // storm was the larger part of a streaming producer's time).
    // acq_rel: acquire pairs with the consumer's seq_cst store of the flag, so
    // its snapshot of `published` (taken before that store) happens-before our
    // increment below and cannot have seen it: its futex_wait returns or is
    // woken. Only the exchange that takes a 1 wakes: one wake per park.
    if (header_->consumer_sleeping.exchange(0, std::memory_order_acq_rel) == 0) return;
    header_->published.fetch_add(1, std::memory_order_release);
    futex_wake(header_->published, 1, futex_scope::process_shared);
  }

  spsc_ring_header* header_;
  std::uint64_t capacity_;
  std::uint64_t key_;  // the header's, read once: the producer could change it
  // The producer's last view of the consumer's index (rigtorp's SPSCQueue): it
  // re-reads head only when its view says full, so that line is not pulled
  // across cores on every record. A stale view errs on the safe side (less free
  // space). Producer only.
  std::uint64_t cached_head_;
  // Producer: where the next record goes.
  std::uint64_t tail_;
  // Consumer: where it has read to, and what of that it has handed back (head).
  std::uint64_t consumer_head_;
  std::uint64_t released_head_;
  // Both ends run this code on one kernel: both have membarrier, or neither.
  bool light_fences_;
};

}  // namespace troupe
