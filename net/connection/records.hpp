// The records two nodes exchange over a connection, whatever the transport:
// their kinds, and which of them carry user messages. Owns: the record kinds. May use: std only.
//
// On shared memory a record is one spsc_ring record whose type is the kind; on
// TCP it is one frame (wire/wire.hpp). Bodies are little-endian; docs/wire.md
// has every body's layout. A record bigger than the ring's largest payload
// travels as `fragment` records followed by the final piece.
#pragma once

#include <cstdint>

namespace troupe::detail {

enum class record_kind : std::uint32_t {
  message = 1,          // u64 target, u64 type id, u64 request id (0: none), payload
  reply = 2,            // u64 request id, u8 status (0 ok: value | 1 error: errc, text)
  fragment = 3,         // a piece of the next non-fragment record
  watch = 4,            // u64 actor id: tell me when it stops
  gone = 5,             // u64 actor id, exit reason
  exit = 6,             // u64 target, address from, exit reason
  lookup = 7,           // u64 request id, string name
  lookup_result = 8,    // u64 request id, u8 status (0: u64 id, u64 protocol fingerprint, string protocol | 1: error)
  spawn = 9,            // u64 request id, string key, argument bytes
  spawn_result = 10,    // u64 request id, u8 status (0: u64 id | 1: error)
  stop = 11,            // the parent asks this node to shut down
  heartbeat = 12,       // TCP only: empty; sent every heartbeat interval (failure detector)
  goodbye = 13,         // TCP only: string why; the sender shuts the connection down on purpose
  gossip = 14,          // cluster (seeds): the sender's identity, the members it is connected to, its global names
  load = 15,            // u64 request id, string actor key: how loaded is the node, can it spawn that type
  load_result = 16,     // u64 request id, u8 status (0: u8 registered, u64 live actors | 1: error)
  tell = 17,            // u64 target, u64 type id, payload: a message that asks for no reply
  topic_interest = 18,  // u64 type id, u64 subscriber count, string topic: the sender's subscribers (topics/)
  publication = 19,     // u64 type id, string topic, payload: one copy for every subscriber on the receiver
};

// The records that carry user messages (they count against max_queued_bytes).
constexpr bool carries_user_message(record_kind kind) noexcept {
  return kind == record_kind::message || kind == record_kind::tell || kind == record_kind::publication;
}

}  // namespace troupe::detail
