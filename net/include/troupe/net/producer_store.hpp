// producer_store: where a producer controller keeps the messages it accepted
// until a consumer confirms them, so that they outlive its process. The
// controller works without one (messages then live only in its memory); with
// one, a controller started again on the same store sends the unconfirmed
// messages again and numbers new ones after the last it ever accepted.
//
//   auto store = std::make_shared<troupe::memory_producer_store>();   // tests; nothing survives a crash
//   // troupe::durable::open_producer_store(path, "orders")          // SQLite (troupe::durable)
//   troupe::producer_options opts;  opts.store = store;
//
// The contract an implementation keeps:
// - load() returns what was appended and not confirmed, in id order, and the
//   highest id ever appended (0 if none) — also when everything was confirmed.
// - append() may be asynchronous; it reports durability by calling the
//   callback given to on_durable() with an id up to which (and including which)
//   every appended message is durable. Calls come in increasing order, from any
//   thread. The controller sends a message only once it is durable, so a
//   message a consumer ever saw is never lost to a crash of the producer.
// - confirm(up_to) may forget every message with an id <= up_to (the
//   controller calls it with the highest id below which all are confirmed),
//   and reports through the callback given to on_forgotten() once that is
//   durable too. Until then the controller counts those messages against the
//   window: a restart sends again at most one window of messages a consumer
//   had already handled.
//
// Thread safety: load/append/confirm are called by the controller's actor
// only (one thread at a time); the durability callback may run on any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "troupe/mailbox/mutex.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe {

struct stored_message {
  std::uint64_t id = 0;
  std::vector<std::byte> bytes;
};

struct stored_messages {
  std::vector<stored_message> unconfirmed;  // in id order
  std::uint64_t last_id = 0;                // the highest id ever appended
};

class producer_store {
 public:
  virtual ~producer_store() = default;
  [[nodiscard]] virtual expected<stored_messages> load() = 0;
  virtual void on_durable(std::function<void(std::uint64_t up_to)> callback) = 0;
  virtual void append(std::uint64_t id, std::span<const std::byte> bytes) = 0;
  virtual void confirm(std::uint64_t up_to) = 0;
  virtual void on_forgotten(std::function<void(std::uint64_t up_to)> callback) = 0;

 protected:
  producer_store() = default;
  producer_store(const producer_store&) = default;
  producer_store& operator=(const producer_store&) = default;
};

// In memory: durable at once (the callbacks run inside append() and confirm()). For tests,
// and to share one store between controllers started one after another in a
// process. Nothing survives the process.
class memory_producer_store final : public producer_store {
 public:
  memory_producer_store() = default;
  [[nodiscard]] expected<stored_messages> load() override;
  void on_durable(std::function<void(std::uint64_t up_to)> callback) override;
  void append(std::uint64_t id, std::span<const std::byte> bytes) override;
  void confirm(std::uint64_t up_to) override;
  void on_forgotten(std::function<void(std::uint64_t up_to)> callback) override;
  // Messages held now (appended, not confirmed).
  [[nodiscard]] std::size_t size() const;

 private:
  mutable troupe::mutex mutex_;
  std::vector<stored_message> messages_ TROUPE_GUARDED_BY(mutex_);
  std::uint64_t last_id_ TROUPE_GUARDED_BY(mutex_) = 0;
  std::function<void(std::uint64_t)> durable_ TROUPE_GUARDED_BY(mutex_);
  std::function<void(std::uint64_t)> forgotten_ TROUPE_GUARDED_BY(mutex_);
};

}  // namespace troupe
