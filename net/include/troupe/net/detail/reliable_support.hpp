// The type-independent helpers of the reliable channels' controllers
// (net/delivery/reliable_support.cpp). Not user-facing; reliable.hpp is.
//
// Thread safety: every function from any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace troupe::detail {

// A fresh channel id: unique in this process, and with overwhelming
// probability among all processes (a random per-process base). Never 0.
std::uint64_t new_channel_id() noexcept;

// The key that names the consuming actor with this local id in this process
// (the same for the same actor across its restarts in place; another process
// has another random base).
std::uint64_t consumer_key_of(std::uint64_t actor_id) noexcept;

// One line on stderr: "troupe: reliable channel: <what>".
void report_channel_event(std::string_view what);

}  // namespace troupe::detail
