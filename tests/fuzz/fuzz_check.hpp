// What the fuzz targets share: the libFuzzer entry point's declaration and the
// invariant check. A failed check aborts, which libFuzzer (and the replay
// runner, through the sanitizers or the plain abort) reports as a crash with
// the input that caused it.
//
//   extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
//     TROUPE_FUZZ_CHECK(parse(bytes_of(data, size)).has_value() || size < 4);
//     return 0;
//   }
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

// One input per call; 0 means "processed" (libFuzzer reserves other values).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace troupe::fuzz {

[[noreturn]] inline void invariant_violated(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", file, line, condition);
  std::fflush(stderr);
  std::abort();
}

// libFuzzer may pass a null pointer with size 0; a span of (nullptr, 0) is fine.
inline std::span<const std::byte> bytes_of(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const std::byte*>(data), size};
}

}  // namespace troupe::fuzz

// A macro, not a function: the message names the condition and the line.
#define TROUPE_FUZZ_CHECK(condition) \
  ((condition) ? static_cast<void>(0) : ::troupe::fuzz::invariant_violated(#condition, __FILE__, __LINE__))
