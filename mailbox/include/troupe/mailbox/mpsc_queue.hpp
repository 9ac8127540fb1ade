// mpsc_queue: the actor mailbox. Lock-free, intrusive, unbounded, many producers
// and one consumer, with the two states an actor runtime needs on top of a queue:
// "blocked" (the consumer is idle; the producer whose push ends it must schedule
// the consumer) and "closed" (the consumer is gone; pushes are refused).
//
//   struct msg : troupe::mpsc_node { int value; };
//   troupe::mpsc_queue<msg> q;                       // starts open and not blocked
//   if (q.push(new msg{...}) == troupe::push_result::became_nonempty) schedule();
//   while (msg* m = q.pop()) handle(m);              // consumer
//   if (q.try_block()) { /* idle: the next push reports became_nonempty */ }
//
// Design (the references are CAF's lifo_inbox and Pony's messageq). Producers
// push onto a Treiber stack with one CAS on `head_`; the consumer takes the whole
// stack with one exchange and reverses it into a private FIFO `cache_`. Two
// sentinel values of `head_` encode the states, so the state change and the
// push are a single atomic step and exactly one producer observes "blocked":
//
//   head_ == nullptr          open, empty, consumer running or about to run
//   head_ == blocked_tag()    open, empty, consumer idle  -> next push schedules it
//   head_ == closed_tag()     closed: push() refuses and hands the node back
//   otherwise                 a stack of nodes, newest first
//
// Order: the CASes on head_ totally order all pushes; each batch is reversed, so
// the consumer sees messages in that total order — FIFO per producer and overall.
//
// Thread safety: push(), push_chain() and claim_chain() from any thread. pop(),
// empty(), try_block(), unblock(), close() and the destructor from the single
// consumer only (at most one thread at a time, with a happens-before edge between
// successive consumer threads, which the actor scheduler provides). A node pushed
// happens-before the consumer's pop() of it. A successful claim_chain() makes
// the caller that consumer, as a push that reports became_nonempty lets the
// caller schedule it.
//
// The consumer role, as builds with TROUPE_ASSERTIONS check it (assert.hpp): a
// thread takes the role with its first consumer-only call (or a successful
// claim_chain()) and keeps it until it gives it up: a try_block() that returns
// true, close(), or release_consumer() (a consumer that stops without blocking
// and may go on on another thread, e.g. an actor at its throughput limit). A
// consumer-only call from any other thread while one holds the role aborts.
// Without TROUPE_ASSERTIONS none of this costs anything.
//
// Layout: an idle actor is mostly its mailbox, so the queue is two words (three
// with TROUPE_ASSERTIONS) and is not padded to a cache line (a million idle
// actors would pay 2x memory). The consumer touches head_ only when its private
// cache runs dry, so producer CASes and consumer pops share a line only at batch
// boundaries.
#pragma once

#include <atomic>
#include <cstddef>
#include <type_traits>

#include "troupe/mailbox/assert.hpp"

#if TROUPE_ASSERTIONS
#include <thread>
#endif

namespace troupe {

// Intrusive link. A type T stored in mpsc_queue<T> derives from it.
struct mpsc_node {
  // Written by the producer before its releasing CAS, read by the consumer after
  // its acquiring exchange: a plain field, never accessed concurrently.
  mpsc_node* next = nullptr;
};

enum class push_result : unsigned char {
  ok,               // enqueued; the consumer is already running or scheduled
  became_nonempty,  // enqueued and the consumer was blocked: the caller must schedule it
  closed,           // refused: the queue is closed, the caller still owns the node
};

template <class T>
class mpsc_queue {
  static_assert(std::is_base_of_v<mpsc_node, T>, "mpsc_queue<T>: T must derive from mpsc_node");

 public:
  mpsc_queue() noexcept = default;
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;

  // The consumer must drain (close() and delete the nodes) before destruction;
  // the queue does not own nodes.
  ~mpsc_queue() = default;

  // Any thread. Never blocks; retries only when another producer won the CAS.
  push_result push(T* node) noexcept { return push_chain(node, node); }

  // Any thread. Pushes several nodes as one step (one CAS for the lot): a chain
  // linked newest first through `next`, from `newest` to `oldest`; they are
  // popped oldest first, together, in the total order of pushes. Results as
  // push(); on closed the chain is untouched (`oldest->next` is null again).
  push_result push_chain(T* newest, T* oldest) noexcept {
    mpsc_node* top = static_cast<mpsc_node*>(newest);
    mpsc_node* bottom = static_cast<mpsc_node*>(oldest);
    // relaxed: only a first guess for the CAS below, which re-reads on failure.
    mpsc_node* head = head_.load(std::memory_order_relaxed);
    for (;;) {
      if (head == closed_tag()) {
        bottom->next = nullptr;  // a failed CAS may have linked it to the stack
        return push_result::closed;
      }
      bottom->next = head == blocked_tag() ? nullptr : head;
      // release: publishes the nodes' payloads and `next` links to the
      // consumer's acquiring exchange in take_all(). acquire (on success): when
      // we replace blocked_tag(), we pair with the release in try_block() so
      // everything the consumer did before going idle happens-before our
      // scheduling of it. relaxed on failure: we only retry with the fresh value.
      if (head_.compare_exchange_weak(head, top, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return head == blocked_tag() ? push_result::became_nonempty : push_result::ok;
      }
    }
  }

  // Consumer only. The oldest node, or nullptr if there is none right now.
  T* pop() noexcept {
    take_consumer_role();
    if (cache_ == nullptr && !take_all()) return nullptr;
    mpsc_node* first = cache_;
    cache_ = first->next;
    first->next = nullptr;
    return static_cast<T*>(first);
  }

  // Consumer only. True if nothing is queued (neither cached nor pushed).
  [[nodiscard]] bool empty() const noexcept {
    take_consumer_role();
    if (cache_ != nullptr) return false;
    // acquire: pairs with the release CAS in push(); a caller that sees a node
    // will pop() it and must see its payload (pop re-reads with acquire anyway).
    mpsc_node* head = head_.load(std::memory_order_acquire);
    return head == nullptr || head == blocked_tag() || head == closed_tag();
  }

  // Consumer only, when empty(). Marks the consumer idle: returns true if the
  // queue is now blocked (the next push will report became_nonempty; also when it
  // was blocked already), false if a push raced in (the consumer must keep going:
  // there is work) or the queue is closed.
  [[nodiscard]] bool try_block() noexcept {
    take_consumer_role();
    if (cache_ != nullptr) return false;
    // Given up before the CAS: once it succeeds, the thread that schedules the
    // consumer next may take the role at once.
    release_consumer();
    mpsc_node* expected = nullptr;
    // release: pairs with the acquire in push() that observes blocked_tag(); the
    // consumer's work so far happens-before whoever schedules it next.
    // relaxed on failure: a push arrived, the caller just pops it (pop acquires).
    if (head_.compare_exchange_strong(expected, blocked_tag(), std::memory_order_release, std::memory_order_relaxed)) {
      return true;
    }
    if (expected == blocked_tag()) return true;
    take_consumer_role();  // not blocked (a push raced in, or closed): still the consumer
    return false;
  }

  // Consumer only. Leaves the blocked state without a push (used when the owner
  // schedules the consumer for a reason other than a message, e.g. a restart).
  // Returns true if the queue was blocked. Like a push that reports
  // became_nonempty, it takes no consumer role: whoever runs the consumer next does.
  bool unblock() noexcept {
    mpsc_node* expected = blocked_tag();
    // acquire: as in push() when replacing blocked_tag(), pairs with try_block().
    return head_.compare_exchange_strong(expected, nullptr, std::memory_order_acquire, std::memory_order_relaxed);
  }

  // Any thread. If the queue is blocked, makes this thread its consumer with
  // the chain `newest` (linked newest first through `next`, the oldest's
  // `next` null, as push_chain() takes it; a single node with a null `next` is
  // a chain of one) as the only messages, without the stack: a producer that
  // would schedule the consumer and then run it itself (a link's reader thread)
  // saves the push and the consumer's exchange, one locked instruction each.
  // Returns false, doing nothing, if the queue is not blocked: push instead.
  bool claim_chain(T* newest) noexcept {
    // relaxed: a pre-check that spares the CAS when the consumer is running
    // (the common case in a stream); the CAS below is the synchronising step.
    if (head_.load(std::memory_order_relaxed) != blocked_tag()) return false;
    mpsc_node* expected = blocked_tag();
    // acquire: as in push() when replacing blocked_tag(), pairs with the release
    // in try_block(): the previous consumer's work happens-before ours. Exactly
    // one thread replaces blocked_tag() (this CAS or a push's), so exactly one
    // becomes the consumer. relaxed on failure: the caller pushes instead.
    if (!head_.compare_exchange_strong(expected, nullptr, std::memory_order_acquire, std::memory_order_relaxed)) {
      return false;
    }
    take_consumer_role();
    // try_block() succeeds only with an empty cache, and nothing fills it while
    // blocked: the cache is empty, and ours now.
    append_reversed(static_cast<mpsc_node*>(newest));
    return true;
  }

  // Any thread, as a hint; exact for the consumer.
  [[nodiscard]] bool closed() const noexcept {
    // acquire: pairs with the acq_rel exchange in close().
    return head_.load(std::memory_order_acquire) == closed_tag();
  }

  [[nodiscard]] bool blocked() const noexcept {
    // relaxed: a hint for diagnostics and tests, never used for synchronisation.
    return head_.load(std::memory_order_relaxed) == blocked_tag();
  }

  // Consumer only. Closes the queue and returns every node still queued, oldest
  // first, as a list linked through `next` (the caller owns them). After close()
  // every push() returns push_result::closed. Idempotent.
  T* close() noexcept {
    take_consumer_role();
    // acq_rel: acquire pairs with the release CAS of every push that made it in
    // (their payloads are visible to the drain); release pairs with the acquire
    // in closed().
    mpsc_node* head = head_.exchange(closed_tag(), std::memory_order_acq_rel);
    mpsc_node* pushed = (head == closed_tag() || head == blocked_tag()) ? nullptr : head;
    append_reversed(pushed);
    mpsc_node* all = cache_;
    cache_ = nullptr;
    release_consumer();  // nothing left to consume: any thread may drain, destroy
    return static_cast<T*>(all);
  }

  // Consumer only. Hands the consumer role over without blocking: the next
  // consumer-only call may come from another thread (an executor that runs the
  // consumer again, wherever). The hand-over's happens-before edge is the
  // caller's to provide, as ever. Checked builds only; a no-op otherwise.
  void release_consumer() noexcept {
#if TROUPE_ASSERTIONS
    std::thread::id self = std::this_thread::get_id();
    // relaxed: bookkeeping for the check, never synchronisation (it must not
    // hide from ThreadSanitizer an ordering the queue itself fails to provide).
    // A compare-exchange: a thread that no longer holds the role changes nothing.
    consumer_.compare_exchange_strong(self, std::thread::id{}, std::memory_order_relaxed, std::memory_order_relaxed);
#endif
  }

 private:
  static mpsc_node* blocked_tag() noexcept { return &blocked_sentinel_; }
  static mpsc_node* closed_tag() noexcept { return &closed_sentinel_; }

  // Every consumer-only call: the calling thread takes the consumer role if no
  // thread holds it, and must hold it otherwise. Checked builds only.
  void take_consumer_role() const noexcept {
#if TROUPE_ASSERTIONS
    const std::thread::id self = std::this_thread::get_id();
    // relaxed: see release_consumer().
    std::thread::id holder = consumer_.load(std::memory_order_relaxed);
    if (holder == self) return;
    if (holder == std::thread::id{}) {
      if (consumer_.compare_exchange_strong(holder, self, std::memory_order_relaxed, std::memory_order_relaxed)) return;
    }
    TROUPE_ASSERT(holder == self,
                  "mpsc_queue: a consumer-only call from a thread that is not the consumer (another thread holds the "
                  "role and has not given it up with try_block(), close() or release_consumer())");
#endif
  }

  // Consumer only: moves the producers' stack into the FIFO cache. Returns false
  // if there was nothing to take (also when blocked or closed).
  bool take_all() noexcept {
    // relaxed: a cheap pre-check to avoid a write on an empty queue; the
    // exchange below is the synchronising read.
    mpsc_node* head = head_.load(std::memory_order_relaxed);
    if (head == nullptr || head == blocked_tag() || head == closed_tag()) return false;
    // acquire: pairs with the release CAS in push(); all taken nodes' payloads
    // and links are visible. Only producers modify head_ concurrently and they
    // never install a sentinel, so swapping in nullptr keeps the state "open".
    head = head_.exchange(nullptr, std::memory_order_acquire);
    append_reversed(head);
    return cache_ != nullptr;
  }

  // Reverses a newest-first stack and appends it to the cache. The cache is empty
  // whenever this runs from take_all(); close() may append to a non-empty one.
  void append_reversed(mpsc_node* stack) noexcept {
    mpsc_node* reversed = nullptr;
    while (stack != nullptr) {
      mpsc_node* next = stack->next;
      stack->next = reversed;
      reversed = stack;
      stack = next;
    }
    if (cache_ == nullptr) {
      cache_ = reversed;
      return;
    }
    mpsc_node* tail = cache_;
    while (tail->next != nullptr) tail = tail->next;
    tail->next = reversed;
  }

  // Addresses only; never dereferenced.
  static inline mpsc_node blocked_sentinel_{};
  static inline mpsc_node closed_sentinel_{};

  std::atomic<mpsc_node*> head_{nullptr};  // producers' stack or a sentinel
  mpsc_node* cache_ = nullptr;             // consumer-private FIFO, oldest first
#if TROUPE_ASSERTIONS
  // The thread that holds the consumer role, or none (a default id). Checked
  // builds only: a word more per mailbox is paid only where bugs are hunted.
  mutable std::atomic<std::thread::id> consumer_{};
#endif
};

static_assert(std::atomic<mpsc_node*>::is_always_lock_free);

}  // namespace troupe
