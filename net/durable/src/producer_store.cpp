// open_producer_store (troupe/durable/producer_store.hpp): troupe::net's
// producer_store interface on two outboxes of one SQLite file.
#include "troupe/durable/producer_store.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "troupe/mailbox/mutex.hpp"

namespace troupe::durable {
namespace {

// The "#confirmed" outbox holds one entry, seq 1: the highest id confirmed, 8 bytes little endian.
constexpr std::uint64_t marker_seq = 1;

std::vector<std::byte> bytes_of(std::uint64_t value) {
  std::vector<std::byte> bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);  // the wire's byte order: little endian (serialization.hpp)
  return bytes;
}

// One of the controller's callbacks, shared with the outbox's pending commits
// (which may outlive the store object).
class durable_callback {
 public:
  void set(std::function<void(std::uint64_t)> callback) {
    troupe::mutex_lock lock(mutex_);
    callback_ = std::move(callback);
  }
  void call(std::uint64_t up_to) {
    std::function<void(std::uint64_t)> callback;
    {
      troupe::mutex_lock lock(mutex_);
      callback = callback_;
    }
    if (callback) callback(up_to);
  }

 private:
  troupe::mutex mutex_;
  std::function<void(std::uint64_t)> callback_ TROUPE_GUARDED_BY(mutex_);
};

class outbox_producer_store final : public producer_store {
 public:
  outbox_producer_store(outbox messages, outbox confirmed)
      : messages_(std::move(messages)), confirmed_(std::move(confirmed)) {}

  [[nodiscard]] expected<stored_messages> load() override {
    expected<std::vector<outbox_entry>> entries = messages_.load();
    if (!entries) return entries.error();
    expected<std::vector<outbox_entry>> marker = confirmed_.load();
    if (!marker) return marker.error();
    stored_messages result;
    for (const outbox_entry& m : *marker) {
      if (m.seq != marker_seq || m.bytes.size() != sizeof(std::uint64_t)) {
        return error(errc::storage_failed, "outbox '" + confirmed_.name() + "' holds an entry that is not a marker");
      }
      std::memcpy(&result.last_id, m.bytes.data(), sizeof result.last_id);
    }
    result.unconfirmed.reserve(entries->size());
    for (outbox_entry& e : *entries) {
      result.last_id = std::max(result.last_id, e.seq);
      result.unconfirmed.push_back(stored_message{e.seq, std::move(e.bytes)});
    }
    return result;
  }

  void on_durable(std::function<void(std::uint64_t up_to)> callback) override { callback_->set(std::move(callback)); }
  void on_forgotten(std::function<void(std::uint64_t up_to)> callback) override {
    forgotten_->set(std::move(callback));
  }

  void append(std::uint64_t id, std::span<const std::byte> bytes) override {
    messages_.append(id, bytes, [callback = callback_, id](const expected<void>& done) {
      if (done) {
        callback->call(id);
      } else {
        std::fprintf(stderr, "troupe: durable producer store: message %llu was not stored: %s\n",
                     static_cast<unsigned long long>(id), done.error().to_string().c_str());
      }
    });
  }

  void confirm(std::uint64_t up_to) override {
    // The marker first: committed in call order, so a crash between the two
    // leaves messages to send again (at least once), never a lower last id.
    confirmed_.append(marker_seq, bytes_of(up_to));
    messages_.confirm(up_to, [forgotten = forgotten_, up_to](const expected<void>& done) {
      if (done) forgotten->call(up_to);  // a failed confirm leaves them to be sent again: at least once
    });
  }

 private:
  outbox messages_;
  outbox confirmed_;
  std::shared_ptr<durable_callback> callback_ = std::make_shared<durable_callback>();
  std::shared_ptr<durable_callback> forgotten_ = std::make_shared<durable_callback>();
};

}  // namespace

expected<std::shared_ptr<producer_store>> open_producer_store(const std::filesystem::path& file,
                                                              const std::string& name, const outbox_options& options) {
  expected<outbox> messages = outbox::open(file, name, options);
  if (!messages) return messages.error();
  expected<outbox> confirmed = outbox::open(file, name + "#confirmed", options);
  if (!confirmed) return confirmed.error();
  return std::shared_ptr<producer_store>(
      std::make_shared<outbox_producer_store>(std::move(*messages), std::move(*confirmed)));
}

}  // namespace troupe::durable
