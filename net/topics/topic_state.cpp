// topic_state_base: the half of a topic that does not depend on its message type
// (troupe/net/detail/topic_state.hpp).
#include "troupe/net/detail/topic_state.hpp"

#include "connection/connection.hpp"
#include "node/node_core.hpp"
#include "topics/topic_records.hpp"
#include "topics/topic_registry.hpp"

namespace troupe::detail {

topic_state_base::topic_state_base(std::shared_ptr<topic_registry> registry, node_core* node, std::string name,
                                   std::uint64_t type_id, std::uint64_t fingerprint, std::string_view type_name,
                                   const void* type_tag)
    : registry_(std::move(registry)),
      node_(node),
      name_(std::move(name)),
      type_id_(type_id),
      fingerprint_(fingerprint),
      type_name_(type_name),
      type_tag_(type_tag),
      head_(encode_publication_head(type_id, name_)) {}

topic_state_base::~topic_state_base() = default;

std::shared_ptr<const topic_fanout> topic_state_base::fanout() const {
  troupe::mutex_lock lock(fanout_mutex_);
  return fanout_;
}

void topic_state_base::set_fanout(std::shared_ptr<const topic_fanout> fanout) noexcept {
  std::shared_ptr<const topic_fanout> previous;  // released outside the lock
  {
    troupe::mutex_lock lock(fanout_mutex_);
    previous = std::exchange(fanout_, std::move(fanout));
  }
}

expected<void> topic_state_base::subscribe(cell* c, std::uint32_t index) {
  return registry_->subscribe(*this, c, index);
}

void topic_state_base::unsubscribe(cell* c) { registry_->unsubscribe(*this, c); }

expected<void> topic_state_base::await_counts(const std::function<bool(const topic_counts&)>& done,
                                              std::chrono::milliseconds timeout, std::string_view what) {
  return registry_->await_counts(*this, done, std::chrono::steady_clock::now() + timeout, what);
}

topic_counts topic_state_base::counts() const {
  topic_counts c;
  if (const std::shared_ptr<const topic_fanout> f = fanout()) {
    c.local_subscribers = f->local.size();
    c.remote_subscribers = f->remote_subscribers;
    c.subscribed_nodes = f->nodes.size();
  }
  // relaxed: statistics, each read on its own.
  c.published = published_.load(std::memory_order_relaxed);
  c.delivered = delivered_.load(std::memory_order_relaxed);
  c.sent = sent_.load(std::memory_order_relaxed);
  c.received = received_.load(std::memory_order_relaxed);
  c.dropped = dropped_.load(std::memory_order_relaxed);
  return c;
}

void topic_state_base::send_to_nodes(const topic_fanout& fanout, std::span<const std::byte> payload) noexcept {
  std::uint64_t sent = 0;
  for (const std::shared_ptr<connection>& c : fanout.nodes) {
    if (payload.size() > c->node().config().max_message_bytes) break;  // none of them takes it
    // The peer announced its schemas in the handshake: one whose T differs
    // cannot read this (it would close the connection); it does not get it.
    if (auto refused = c->schema_refusal(type_id_, fingerprint_, type_name_)) {
      // relaxed: only whether to log; one line per topic is enough.
      if (!refusal_logged_.exchange(true, std::memory_order_relaxed)) {
        try {
          c->node().log("topic '" + name_ + "': " + refused->text() + "; its subscribers there miss its messages");
        } catch (...) {
          // Out of memory for the log line: the drop is still counted.
        }
      }
      continue;
    }
    if (!c->write(record_kind::publication, head_, payload)) ++sent;
  }
  // relaxed: statistics.
  if (sent != 0) sent_.fetch_add(sent, std::memory_order_relaxed);
  if (sent != fanout.nodes.size()) dropped_.fetch_add(fanout.nodes.size() - sent, std::memory_order_relaxed);
}

}  // namespace troupe::detail
