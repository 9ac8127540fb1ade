// assert: TROUPE_ASSERT(condition, "message"), the checks of contracts that no
// type can express — "consumer only", "owner only" — in builds made to find
// bugs. As CAF's CAF_ASSERT: on failure it prints file:line, the condition and
// the message to stderr and aborts; when off, the condition is not evaluated.
//
//   TROUPE_ASSERT(owner == this_thread, "work_stealing_deque::push(): owner only");
//
// On when TROUPE_ASSERTIONS is 1; TROUPE_ASSERTIONS defaults to 1 where NDEBUG
// is not defined. The CMake build fixes it for the whole build (-DTROUPE_ASSERTIONS=
// ON/OFF; by default on in Debug and in the sanitizer and fuzz builds, off in
// Release and RelWithDebInfo) and passes it on with troupe::mailbox, to troupe's
// libraries and to every program that links them: some checks need a field
// (mpsc_queue's consumer, work_stealing_deque's owner), so every translation
// unit must agree on it. Do not define it differently in your own code.
//
// It lives in mailbox/, the lowest layer, so every library can use it.
//
// A condition must be free of side effects (clang-tidy's
// bugprone-assert-side-effect checks it) and cheap: it runs on hot paths of
// Debug and sanitizer builds.
#pragma once

#if !defined(TROUPE_ASSERTIONS)
#if defined(NDEBUG)
#define TROUPE_ASSERTIONS 0
#else
#define TROUPE_ASSERTIONS 1
#endif
#endif

#if TROUPE_ASSERTIONS
#include <cstdio>
#include <cstdlib>

namespace troupe::detail {

// Out of line and cold: the check on the hot path stays one compare and branch.
[[noreturn, gnu::cold, gnu::noinline]] inline void assertion_failed(const char* file, int line, const char* condition,
                                                                    const char* message) noexcept {
  std::fprintf(stderr, "%s:%d: troupe: assertion failed: %s: %s\n", file, line, condition, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace troupe::detail

#define TROUPE_ASSERT(condition, message) \
  ((condition) ? static_cast<void>(0) : ::troupe::detail::assertion_failed(__FILE__, __LINE__, #condition, message))
#else
// sizeof keeps the names in the condition "used" (no unused-variable warnings)
// without evaluating it.
#define TROUPE_ASSERT(condition, message) static_cast<void>(sizeof(static_cast<bool>(condition)))
#endif
