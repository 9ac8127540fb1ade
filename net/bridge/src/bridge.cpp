// The broker-independent parts of the bridge model that are not templates (see bridge.hpp).
#include "troupe/bridge/bridge.hpp"

namespace troupe::bridge {

std::chrono::nanoseconds retry_pause(const source_settings& s, std::uint32_t failed_tries) noexcept {
  std::chrono::nanoseconds pause = s.retry_backoff;
  for (std::uint32_t i = 1; i < failed_tries && pause < s.max_backoff; ++i) pause *= 2;
  return std::min(pause, s.max_backoff);
}

}  // namespace troupe::bridge
