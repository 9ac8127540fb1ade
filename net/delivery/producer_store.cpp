// memory_producer_store (troupe/net/producer_store.hpp).
#include "troupe/net/producer_store.hpp"

#include <algorithm>
#include <utility>

namespace troupe {

expected<stored_messages> memory_producer_store::load() {
  troupe::mutex_lock lock(mutex_);
  return stored_messages{messages_, last_id_};
}

void memory_producer_store::on_durable(std::function<void(std::uint64_t up_to)> callback) {
  troupe::mutex_lock lock(mutex_);
  durable_ = std::move(callback);
}

void memory_producer_store::append(std::uint64_t id, std::span<const std::byte> bytes) {
  std::function<void(std::uint64_t)> durable;
  {
    troupe::mutex_lock lock(mutex_);
    messages_.push_back(stored_message{id, std::vector<std::byte>(bytes.begin(), bytes.end())});
    last_id_ = std::max(last_id_, id);
    durable = durable_;
  }
  if (durable) durable(id);  // outside the lock: the callback sends a message
}

void memory_producer_store::confirm(std::uint64_t up_to) {
  std::function<void(std::uint64_t)> forgotten;
  {
    troupe::mutex_lock lock(mutex_);
    std::erase_if(messages_, [up_to](const stored_message& m) { return m.id <= up_to; });
    forgotten = forgotten_;
  }
  if (forgotten) forgotten(up_to);
}

void memory_producer_store::on_forgotten(std::function<void(std::uint64_t up_to)> callback) {
  troupe::mutex_lock lock(mutex_);
  forgotten_ = std::move(callback);
}

std::size_t memory_producer_store::size() const {
  troupe::mutex_lock lock(mutex_);
  return messages_.size();
}

}  // namespace troupe
