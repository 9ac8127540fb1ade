// The Kafka source's broker half (troupe/bridge/kafka.hpp has the contract):
// a librdkafka high-level consumer driven by one fetch thread, the offset
// bookkeeping that commits only what is settled and in order, and the
// dead-letter producer.
//
// Threads: every call on the consumer handle except rd_kafka_commit (which
// librdkafka allows from any thread, but we make from the fetch thread too)
// is made by the fetch thread: polls, pause/resume, the rebalance callback
// (served inside rd_kafka_consumer_poll), and the final close. acknowledge()
// and dead_letter() come from any thread (the actors' workers completing
// asks, the timer thread, the dead-letter producer's poll thread) and only
// touch the bookkeeping under mutex_.
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "kafka_config.hpp"
#include "troupe/bridge/kafka.hpp"

namespace troupe::bridge::kafka::detail {

namespace {

struct message_deleter {
  void operator()(rd_kafka_message_t* m) const noexcept { rd_kafka_message_destroy(m); }
};
using message_ptr = std::unique_ptr<rd_kafka_message_t, message_deleter>;

struct list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const noexcept { rd_kafka_topic_partition_list_destroy(l); }
};
using list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;

std::vector<topic_partition> to_vector(const rd_kafka_topic_partition_list_t* list) {
  std::vector<topic_partition> out;
  if (list == nullptr) return out;
  out.reserve(static_cast<std::size_t>(list->cnt));
  for (int i = 0; i < list->cnt; ++i) out.push_back({list->elems[i].topic, list->elems[i].partition});
  return out;
}

using partition_key = std::pair<std::string, std::int32_t>;

// One assigned partition's messages between fetch and commit. A fresh one per
// assignment: a late settle for a partition given up (revoked) must never
// commit, even if the partition comes back to us.
struct partition_track {
  std::map<std::int64_t, bool> pending;  // offset -> settled, in offset order
  std::int64_t settled_below = -1;       // every offset below it is settled: the offset to commit
  std::int64_t committed = -1;           // what was last sent as a commit
  bool revoked = false;
};

}  // namespace

class consumer_engine final : public consumer, public std::enable_shared_from_this<consumer_engine> {
 public:
  consumer_engine(const source_config& s, consumer_hooks hooks) : settings_(s), hooks_(std::move(hooks)) {
    if (settings_.topics.empty()) throw std::runtime_error("kafka: the source has no topics to consume");
    if (settings_.group.empty()) throw std::runtime_error("kafka: the source needs a consumer group (group.id)");
    for (const auto& [name, value] : settings_.config) {
      if (name == "enable.auto.commit" || name == "enable.auto.offset.store" || name == "group.id") {
        throw std::runtime_error("kafka: " + name + " is set by the source itself; remove it from the config");
      }
    }
    // A new group starts at the oldest message, not the newest: at least
    // once means the backlog is not skipped. settings.config may say otherwise.
    config_list extra{{"auto.offset.reset", "earliest"}};
    extra.insert(extra.end(), settings_.config.begin(), settings_.config.end());
    extra.emplace_back("group.id", settings_.group);
    extra.emplace_back("enable.auto.commit", "false");
    extra.emplace_back("enable.auto.offset.store", "false");
    // First: if it fails, no consumer was made yet to clean up.
    if (!settings_.dead_letter_topic.empty()) {
      // The dead-letter producer takes the same properties, minus the consumer's own.
      config_list producer_config;
      for (const auto& [name, value] : settings_.config) {
        if (name != "auto.offset.reset" && name.rfind("session.", 0) != 0 && name.rfind("max.poll", 0) != 0 &&
            name.rfind("heartbeat.", 0) != 0 && name.rfind("partition.assignment", 0) != 0) {
          producer_config.emplace_back(name, value);
        }
      }
      dead_letters_ = open_producer(settings_.brokers, producer_config);
    }
    conf_ptr conf = make_conf(settings_.brokers, extra);
    rd_kafka_conf_set_opaque(conf.get(), this);
    rd_kafka_conf_set_rebalance_cb(conf.get(), &consumer_engine::on_rebalance);
    rd_kafka_conf_set_error_cb(conf.get(), &consumer_engine::on_error);
    rd_kafka_conf_set_offset_commit_cb(conf.get(), &consumer_engine::on_commit);
    char why[512];
    handle_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), why, sizeof why);
    if (handle_ == nullptr) throw std::runtime_error(std::string("kafka: cannot create a consumer: ") + why);
    (void)conf.release();  // rd_kafka_new took it
    // Errors and the rebalance come out of rd_kafka_consumer_poll, on the fetch thread.
    (void)rd_kafka_poll_set_consumer(handle_);
    list_ptr topics(rd_kafka_topic_partition_list_new(static_cast<int>(settings_.topics.size())));
    for (const std::string& t : settings_.topics) {
      (void)rd_kafka_topic_partition_list_add(topics.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (const rd_kafka_resp_err_t err = rd_kafka_subscribe(handle_, topics.get())) {
      rd_kafka_destroy(handle_);
      handle_ = nullptr;
      throw std::runtime_error("kafka: cannot subscribe: " + describe(err));
    }
  }
  consumer_engine(const consumer_engine&) = delete;
  consumer_engine& operator=(const consumer_engine&) = delete;
  ~consumer_engine() override { close(false, std::chrono::nanoseconds::zero()); }

  void start(core_port& core) override {
    core_ = &core;
    fetcher_ = std::thread([this] { run(); });
  }

  void close(bool graceful, std::chrono::nanoseconds drain_timeout) override {
    {
      std::lock_guard lock(stop_mutex_);
      if (stop_requested_) return;
      stop_requested_ = true;
      graceful_ = graceful;
      drain_timeout_ = drain_timeout;
    }
    stop_changed_.notify_all();
    if (fetcher_.joinable()) {
      fetcher_.join();  // its last act was finish()
    } else if (handle_ != nullptr) {
      finish();
    }
    // After the consumer: the dead letters in flight either made it (and were
    // committed above, on a graceful stop) or fail now and are redelivered.
    if (dead_letters_)
      kafka::detail::close(*dead_letters_,
                           graceful ? std::chrono::milliseconds(2000) : std::chrono::milliseconds::zero());
    if (handle_ != nullptr) rd_kafka_destroy(handle_);
    handle_ = nullptr;
  }

  // --- settler: from any thread ------------------------------------------------
  void acknowledge(std::uint64_t token) override {
    std::lock_guard lock(mutex_);
    const auto it = tokens_.find(token);
    if (it == tokens_.end()) return;  // settled after the source let its partition go
    const auto [track, offset] = it->second;
    tokens_.erase(it);
    if (track->revoked) return;
    if (const auto p = track->pending.find(offset); p != track->pending.end()) p->second = true;
    // Out-of-order completions wait here until everything before them is settled.
    while (!track->pending.empty() && track->pending.begin()->second) {
      track->settled_below = track->pending.begin()->first + 1;
      track->pending.erase(track->pending.begin());
    }
    settled_.notify_all();
  }

  void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                   const std::string& reason) override {
    if (!dead_letters_) {
      std::fprintf(stderr, "troupe kafka: dropping a dead letter from %s/%d@%lld (no dead_letter_topic): %s\n",
                   from.destination.c_str(), static_cast<int>(from.partition), static_cast<long long>(from.offset),
                   reason.c_str());
      acknowledge(token);
      return;
    }
    config_list headers = from.headers;
    headers.emplace_back("troupe.dead_letter.reason", reason);
    headers.emplace_back("troupe.dead_letter.topic", from.destination);
    headers.emplace_back("troupe.dead_letter.partition", std::to_string(from.partition));
    headers.emplace_back("troupe.dead_letter.offset", std::to_string(from.offset));
    // Acknowledged only when the dead-letter topic has it: until then its
    // offset holds the partition's commit back.
    produce(*dead_letters_, settings_.dead_letter_topic, from.key, std::string(bytes), headers,
            [self = shared_from_this(), token](const expected<published>& r) {
              if (r) {
                self->acknowledge(token);
              } else {
                self->fail("the dead-letter topic " + self->settings_.dead_letter_topic +
                           " did not take a message: " + r.error().to_string());
              }
            });
  }

 private:
  // --- the fetch thread ---------------------------------------------------------
  void run() {
    auto last_commit = std::chrono::steady_clock::now();
    while (!stop_requested()) {
      if (failed_) {
        // A fatal error: nothing more is fetched; the source stops us.
        std::unique_lock lock(stop_mutex_);
        stop_changed_.wait_for(lock, settings_.poll_timeout, [this] { return stop_requested_; });
        continue;
      }
      while (!held_.empty() && core_->wait_for_slot(std::chrono::nanoseconds::zero())) {
        deliver(std::move(held_.front()));
        held_.pop_front();
      }
      // The in-flight bound: while full, the assigned partitions are paused
      // and the consumer keeps polling (for the group's liveness, rebalances
      // and errors), rather than not polling: max.poll.interval.ms would
      // throw a slow consumer out of its group.
      bool full = !core_->wait_for_slot(std::chrono::nanoseconds::zero());
      if (full && !paused_) {
        // Full for a moment (under load, the normal state: the fetch outruns
        // the handler) is waited out, at most poll_timeout, before pausing. A
        // pause makes librdkafka drop everything it had prefetched (its
        // version barrier; the resume fetches it again), and on Debian's
        // librdkafka 2.0.2 a pause and resume in quick succession can leave
        // the partitions unfetched for good (bench/bridge_kafka_bench.cpp
        // stalled that way, flipping on every free slot).
        full = !core_->wait_for_slot(settings_.poll_timeout);
      }
      if (full != paused_) set_paused(full);
      if (full) (void)core_->wait_for_slot(settings_.poll_timeout);  // a bounded wait for a slot
      const int wait_ms = full ? 0 : static_cast<int>(settings_.poll_timeout.count());
      if (message_ptr m{rd_kafka_consumer_poll(handle_, wait_ms)}) {
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          report(std::string("consumer: ") + rd_kafka_message_errstr(m.get()), false);
        } else {
          // Held, not delivered at once: a message fetched before the pause
          // took effect must still wait for a slot.
          held_.push_back(std::move(m));
        }
      }
      if (std::chrono::steady_clock::now() - last_commit >= settings_.commit_interval) {
        commit_settled(false, nullptr);
        last_commit = std::chrono::steady_clock::now();
      }
    }
    finish();
  }

  void deliver(message_ptr m) {
    origin from;
    from.broker = "kafka";
    from.destination = rd_kafka_topic_name(m->rkt);
    from.partition = m->partition;
    from.offset = m->offset;
    if (m->key != nullptr) from.key.assign(static_cast<const char*>(m->key), m->key_len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers != nullptr) {
      const char* name = nullptr;
      const void* value = nullptr;
      std::size_t size = 0;
      for (std::size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        from.headers.emplace_back(name, value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
      }
    }
    std::string bytes;
    if (m->payload != nullptr) bytes.assign(static_cast<const char*>(m->payload), m->len);
    std::uint64_t token = 0;
    {
      std::lock_guard lock(mutex_);
      std::shared_ptr<partition_track>& track = tracks_[{from.destination, from.partition}];
      if (!track) track = std::make_shared<partition_track>();
      token = ++next_token_;
      tokens_.emplace(token, std::pair{track, from.offset});
      track->pending[from.offset] = false;
    }
    core_->deliver(token, std::move(bytes), std::move(from));
  }

  void set_paused(bool pause) {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(handle_, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned != nullptr) {
      const list_ptr owned(assigned);
      if (assigned->cnt > 0) {
        (void)(pause ? rd_kafka_pause_partitions(handle_, assigned) : rd_kafka_resume_partitions(handle_, assigned));
      }
    }
    paused_ = pause;
  }

  // Commits each partition's settled prefix that moved since the last commit
  // (`only`: just these partitions). Synchronous on revocation and stop.
  void commit_settled(bool sync, const std::vector<topic_partition>* only) {
    list_ptr offsets(rd_kafka_topic_partition_list_new(4));
    {
      std::lock_guard lock(mutex_);
      for (auto& [key, track] : tracks_) {
        if (only != nullptr &&
            std::find(only->begin(), only->end(), topic_partition{key.first, key.second}) == only->end()) {
          continue;
        }
        if (track->revoked || track->settled_below <= track->committed) continue;
        rd_kafka_topic_partition_list_add(offsets.get(), key.first.c_str(), key.second)->offset = track->settled_below;
        track->committed = track->settled_below;
      }
    }
    if (offsets->cnt == 0) return;
    const rd_kafka_resp_err_t err = rd_kafka_commit(handle_, offsets.get(), sync ? 0 : 1);
    if (sync && err != RD_KAFKA_RESP_ERR_NO_ERROR) commit_failed(offsets.get(), err);
  }

  // The commit did not happen: its offsets are sent again with the next one.
  void commit_failed(const rd_kafka_topic_partition_list_t* offsets, rd_kafka_resp_err_t err) {
    report("commit failed (retried with the next commit): " + describe(err), false);
    std::lock_guard lock(mutex_);
    for (int i = 0; i < offsets->cnt; ++i) {
      const auto it = tracks_.find({offsets->elems[i].topic, offsets->elems[i].partition});
      if (it != tracks_.end() && it->second->committed == offsets->elems[i].offset) it->second->committed = -1;
    }
  }

  void assign(rd_kafka_topic_partition_list_t* partitions) {
    {
      std::lock_guard lock(mutex_);
      for (const topic_partition& p : to_vector(partitions)) {
        tracks_[{p.topic, p.partition}] = std::make_shared<partition_track>();
      }
    }
    if (cooperative()) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(handle_, partitions)) {
        report(std::string("assign: ") + rd_kafka_error_string(e), false);
        rd_kafka_error_destroy(e);
      }
    } else if (const rd_kafka_resp_err_t err = rd_kafka_assign(handle_, partitions)) {
      report("assign: " + describe(err), false);
    }
    // New partitions join a pause in force: the bound is for them too.
    if (paused_ && partitions->cnt > 0) (void)rd_kafka_pause_partitions(handle_, partitions);
    hooks_.notify(partitions_assigned{to_vector(partitions)});
  }

  void revoke(rd_kafka_topic_partition_list_t* partitions) {
    const std::vector<topic_partition> gone = to_vector(partitions);
    hooks_.notify(partitions_revoked{gone});
    // Fetched, never delivered: the partition's next owner gets them.
    std::erase_if(held_, [&](const message_ptr& m) {
      return std::find(gone.begin(), gone.end(), topic_partition{rd_kafka_topic_name(m->rkt), m->partition}) !=
             gone.end();
    });
    if (!closing_) {
      // Wait for what is in flight from these partitions, then commit what
      // settled: the next owner starts after it. A handler slower than
      // revoke_timeout is redelivered there.
      std::unique_lock lock(mutex_);
      const bool settled = settled_.wait_for(lock, settings_.revoke_timeout, [&] {
        for (const topic_partition& p : gone) {
          const auto it = tracks_.find({p.topic, p.partition});
          if (it != tracks_.end() && !it->second->pending.empty()) return false;
        }
        return true;
      });
      lock.unlock();
      if (!settled)
        report("revocation: messages still in flight after revoke_timeout; they will be redelivered", false);
      commit_settled(true, &gone);
    }
    {
      std::lock_guard lock(mutex_);
      for (const topic_partition& p : gone) {
        const auto it = tracks_.find({p.topic, p.partition});
        if (it == tracks_.end()) continue;
        it->second->revoked = true;
        tracks_.erase(it);
      }
    }
    if (cooperative()) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(handle_, partitions)) rd_kafka_error_destroy(e);
    } else {
      (void)rd_kafka_assign(handle_, nullptr);
    }
  }

  // The fetch thread's last act: drain (graceful) or let go, then leave the group.
  void finish() {
    held_.clear();  // fetched, never delivered: redelivered to the partition's next owner
    bool graceful = false;
    std::chrono::nanoseconds drain_timeout{};
    {
      std::lock_guard lock(stop_mutex_);
      graceful = graceful_ && !failed_;
      drain_timeout = drain_timeout_;
    }
    if (core_ != nullptr) (void)core_->drain(std::chrono::nanoseconds::zero());  // no more slots
    if (graceful) {
      set_paused(true);
      const auto deadline = std::chrono::steady_clock::now() + drain_timeout;
      for (;;) {
        std::unique_lock lock(mutex_);
        const bool drained = settled_.wait_for(lock, settings_.poll_timeout, [this] {
          for (const auto& [key, track] : tracks_) {
            if (!track->pending.empty()) return false;
          }
          return true;
        });
        lock.unlock();
        if (drained || std::chrono::steady_clock::now() >= deadline) break;
        // Keeps the group membership alive while draining (paused: no messages,
        // and any that comes anyway is redelivered later).
        message_ptr ignored{rd_kafka_consumer_poll(handle_, 0)};
      }
      commit_settled(true, nullptr);
    }
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
      for (auto& [key, track] : tracks_) track->revoked = true;
      tracks_.clear();
      tokens_.clear();
    }
    // Leaves the group; the revocation it triggers skips the wait (closing_).
    (void)rd_kafka_consumer_close(handle_);
  }

  [[nodiscard]] bool stop_requested() {
    std::lock_guard lock(stop_mutex_);
    return stop_requested_;
  }

  [[nodiscard]] bool cooperative() const {
    return std::string_view(rd_kafka_rebalance_protocol(handle_)) == "COOPERATIVE";
  }

  void report(const std::string& text, bool fatal) {
    std::fprintf(stderr, "troupe kafka source (group %s): %s%s\n", settings_.group.c_str(), fatal ? "fatal: " : "",
                 text.c_str());
    hooks_.notify(broker_error{text, fatal});
  }

  // A failure the source cannot go on from: the source actor stops with it.
  void fail(const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      // A stop in progress already lets go; a late failure (a purged dead
      // letter) must not reach the next incarnation of a restarted source.
      if (closing_) return;
    }
    report(why, true);
    hooks_.fail(why);
  }

  // --- librdkafka callbacks (on the fetch thread, inside consumer_poll or close) ---
  static void on_rebalance(rd_kafka_t* /*handle*/, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque) {
    auto* self = static_cast<consumer_engine*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      self->assign(partitions);
    } else {
      self->revoke(partitions);
    }
  }

  static void on_error(rd_kafka_t* handle, int err, const char* reason, void* opaque) {
    auto* self = static_cast<consumer_engine*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char why[512];
      const rd_kafka_resp_err_t original = rd_kafka_fatal_error(handle, why, sizeof why);
      self->failed_ = true;
      self->fail(std::string(why) + " (" + rd_kafka_err2name(original) + ")");
      return;
    }
    // librdkafka retries and reconnects by itself: reported, not acted on.
    self->report(std::string(reason) + " (" + rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)) + ")", false);
  }

  static void on_commit(rd_kafka_t* /*handle*/, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                        void* opaque) {
    // _NO_OFFSET: there was nothing to commit. Sync commits report here too;
    // commit_settled handles their failure itself (resetting twice is harmless).
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET || offsets == nullptr) return;
    static_cast<consumer_engine*>(opaque)->commit_failed(offsets, err);
  }

  source_config settings_;
  consumer_hooks hooks_;
  rd_kafka_t* handle_ = nullptr;
  std::shared_ptr<producer> dead_letters_;
  core_port* core_ = nullptr;
  std::thread fetcher_;

  // The fetch thread's own.
  std::deque<message_ptr> held_;  // fetched, waiting for a slot
  bool paused_ = false;
  bool failed_ = false;  // set by on_error, which runs on the fetch thread

  std::mutex stop_mutex_;
  std::condition_variable stop_changed_;
  bool stop_requested_ = false;                // guarded by stop_mutex_
  bool graceful_ = false;                      // guarded by stop_mutex_
  std::chrono::nanoseconds drain_timeout_{0};  // guarded by stop_mutex_

  std::mutex mutex_;
  std::condition_variable settled_;                                   // an offset settled
  std::map<partition_key, std::shared_ptr<partition_track>> tracks_;  // guarded by mutex_
  std::unordered_map<std::uint64_t, std::pair<std::shared_ptr<partition_track>, std::int64_t>>
      tokens_;                    // guarded by mutex_
  std::uint64_t next_token_ = 0;  // guarded by mutex_
  bool closing_ = false;          // guarded by mutex_; read bare by the fetch thread, its only writer
};

std::shared_ptr<consumer> open_consumer(const source_config& settings, consumer_hooks hooks) {
  return std::make_shared<consumer_engine>(settings, std::move(hooks));
}

}  // namespace troupe::bridge::kafka::detail
