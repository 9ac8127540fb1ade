// thread_annotations: lock rules the compiler checks. Clang's thread-safety
// analysis (-Wthread-safety, an error in every clang build of troupe: see
// cmake/TroupeHelpers.cmake) reads these attributes and rejects code that
// touches a guarded field without its lock, calls a function without the lock it
// requires, or forgets to release one. Elsewhere (GCC) they expand to nothing.
// Modelled on abseil's thread_annotations.h; the names follow clang's
// "capability" terms (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html).
//
//   troupe::mutex mutex_;
//   std::vector<int> items_ TROUPE_GUARDED_BY(mutex_);
//   void add(int i) TROUPE_EXCLUDES(mutex_) { troupe::mutex_lock lock(mutex_); items_.push_back(i); }
//
// It lives in mailbox/, the layer every other library depends on, so that
// runtime/ and net/ (and their tests) can all use it without a new dependency.
//
// How to annotate (troupe::mutex and troupe::mutex_lock are in mutex.hpp):
//
// - A field a mutex protects: declare the mutex first, then the field with
//   TROUPE_GUARDED_BY(mutex_). Reads need the lock held (shared or exclusive),
//   writes exclusive. A pointer whose pointee the mutex protects (not the
//   pointer itself): TROUPE_PT_GUARDED_BY(mutex_).
// - A function that must be called with a lock held ("call under links_mutex_"):
//   TROUPE_REQUIRES(mutex_) on its declaration; one that takes the lock itself
//   and so must not be called with it held: TROUPE_EXCLUDES(mutex_).
// - A lambda that runs under the caller's lock (a condition variable's
//   predicate): `[&]() TROUPE_REQUIRES(mutex_) { return ready_; }`.
// - A class that is itself a lock (a spin lock, e.g. a test-and-set lock with
//   lock()/unlock()): mark the class TROUPE_CAPABILITY("mutex"), lock()
//   TROUPE_ACQUIRE() and unlock() TROUPE_RELEASE(). The analysis trusts the
//   bodies of those two (an annotation without arguments hides the lock's
//   implementation), and troupe::mutex_lock<your_lock> then works as its scoped
//   lock, so fields can be TROUPE_GUARDED_BY(your_lock_member):
//
//     class TROUPE_CAPABILITY("mutex") write_lock {
//      public:
//       void lock() noexcept TROUPE_ACQUIRE();
//       void unlock() noexcept TROUPE_RELEASE();
//     };
//     write_lock write_mutex_;
//     std::deque<frame> queued_ TROUPE_GUARDED_BY(write_mutex_);
//     troupe::mutex_lock lock(write_mutex_);   // CTAD: mutex_lock<write_lock>
//
// - A scoped lock type of your own: TROUPE_SCOPED_CAPABILITY on the class, its
//   constructor TROUPE_ACQUIRE(m), its destructor TROUPE_RELEASE().
// - Code the analysis cannot follow (a lock taken in one function and released
//   in another, a lock chosen at run time): TROUPE_NO_THREAD_SAFETY_ANALYSIS on
//   that function, with a comment saying why the rule still holds.
//
// std::mutex and std::lock_guard carry no annotations in libstdc++: a field
// guarded by a troupe::mutex but locked through std::lock_guard is reported as
// unlocked. Use troupe::mutex_lock.
#pragma once

#if defined(__clang__)
#define TROUPE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define TROUPE_THREAD_ANNOTATION(x)
#endif

// A class whose objects are locks (capabilities); `name` appears in warnings.
#define TROUPE_CAPABILITY(name) TROUPE_THREAD_ANNOTATION(capability(name))
// A class that holds a lock for its lifetime (a scoped lock, RAII).
#define TROUPE_SCOPED_CAPABILITY TROUPE_THREAD_ANNOTATION(scoped_lockable)

// The field may be accessed only with `lock` held.
#define TROUPE_GUARDED_BY(lock) TROUPE_THREAD_ANNOTATION(guarded_by(lock))
// The object the field points at may be accessed only with `lock` held.
#define TROUPE_PT_GUARDED_BY(lock) TROUPE_THREAD_ANNOTATION(pt_guarded_by(lock))

// The function must be called with the locks held (exclusively).
#define TROUPE_REQUIRES(...) TROUPE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// The function must be called without the locks held (it takes them itself).
#define TROUPE_EXCLUDES(...) TROUPE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

// The function acquires / releases the locks (no arguments: `this`).
#define TROUPE_ACQUIRE(...) TROUPE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define TROUPE_RELEASE(...) TROUPE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))

// The analysis skips this function's body.
#define TROUPE_NO_THREAD_SAFETY_ANALYSIS TROUPE_THREAD_ANNOTATION(no_thread_safety_analysis)
