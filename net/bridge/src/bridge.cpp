// troupe::bridge's one source: the model's one function that is not a
// template (retry_pause), and source_core instantiated for a plain payload, so
// that bridge.hpp compiles on its own and a defect in the template shows when
// the library builds, not first in a user's program.
#include "troupe/bridge/bridge.hpp"

namespace troupe::bridge {

std::chrono::nanoseconds retry_pause(const source_settings& s, std::uint32_t failed_tries) noexcept {
  std::chrono::nanoseconds pause = s.retry_backoff;
  // Doubling stops at max_backoff, so a large count cannot overflow.
  for (std::uint32_t i = 1; i < failed_tries && pause < s.max_backoff; ++i) pause *= 2;
  return std::min(pause, s.max_backoff);
}

template class source_core<std::string, text_codec>;

}  // namespace troupe::bridge
