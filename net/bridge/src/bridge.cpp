// The non-template helpers of the bridge model (troupe/bridge/bridge.hpp).
#include "troupe/bridge/bridge.hpp"

namespace troupe::bridge {

std::chrono::nanoseconds retry_pause(const source_settings& s, std::uint32_t tries) noexcept {
  std::chrono::nanoseconds pause = s.retry_backoff;
  // Doubling stops at max_backoff, so a large `tries` cannot overflow.
  for (std::uint32_t i = 1; i < tries && pause < s.max_backoff; ++i) pause *= 2;
  return std::min(pause, s.max_backoff);
}

}  // namespace troupe::bridge
