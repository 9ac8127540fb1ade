// queue_actor: see troupe/durable/queue.hpp. The engine below turns the SQL
// operations of queue_store into an actor's behaviour:
//
// Group commit. A request that writes opens a transaction if none is open and,
// the first time, tells the queue itself queue_flush. The mailbox is FIFO, so
// that flush arrives after every request already waiting: all of them write
// into the one transaction, and the flush commits it and only then answers
// them (their reply_promises wait in `after_commit_`). A burst of N requests
// costs one commit; a lone request costs one mailbox round trip more than an
// immediate commit. max_batch bounds a transaction (and the replies held).
//
// Long polls. A receive that finds nothing and may wait is parked (at most
// max_waiters); parked receives are retried after a commit that may have made
// something visible (a send, a visibility change) and when a queue_tick timer
// fires: at the earliest of their deadlines and the next visible_at in the file.
//
// Dead letters. A picked message that was already received max_receives times
// is leased for dead_letter_lease instead of delivered, sent to the dead-letter
// queue with a de-duplication id naming this file and message, and deleted here
// when that queue acknowledged it; if it does not, the lease runs out and the
// move is tried again at a later receive.
#include <algorithm>
#include <deque>
#include <limits>
#include <memory>
#include <utility>

#include "queue_store.hpp"
#include "troupe/durable/queue.hpp"
#include "troupe/runtime/response.hpp"

namespace troupe::durable {

namespace detail {

namespace {

constexpr std::chrono::milliseconds max_delay{std::chrono::minutes(15)};
constexpr std::chrono::milliseconds max_visibility{std::chrono::hours(12)};
constexpr std::chrono::milliseconds max_wait{std::chrono::seconds(20)};
constexpr std::chrono::milliseconds dead_letter_lease{std::chrono::seconds(30)};
constexpr std::uint64_t purge_every = 4096;  // sends between purges of expired de-duplication ids

queue_status status_of(const error& e) { return queue_status{e.code(), e.text()}; }

// A reply that waits for the commit of its transaction.
struct pending_reply {
  pending_reply() = default;
  pending_reply(const pending_reply&) = delete;
  pending_reply& operator=(const pending_reply&) = delete;
  virtual ~pending_reply() = default;
  virtual void complete(const expected<void>& committed) = 0;
};

void set_failed(sent& r, const error& e) { r = sent{status_of(e), 0, false}; }
void set_failed(received& r, const error& e) { r = received{status_of(e), {}}; }
void set_failed(queue_status& r, const error& e) { r = status_of(e); }
void set_failed(std::vector<queue_status>& r, const error& e) {
  for (queue_status& s : r) {
    if (s.ok()) s = status_of(e);
  }
}

template <class R>
struct pending_value final : pending_reply {
  pending_value(reply_promise<R> p, R v) : promise(std::move(p)), value(std::move(v)) {}
  void complete(const expected<void>& committed) override {
    if (!committed) set_failed(value, committed.error());
    promise.deliver(std::move(value));
  }
  reply_promise<R> promise;
  R value;
};

}  // namespace

class queue_engine {
 public:
  queue_engine(queue_actor& self, queue_config config, std::unique_ptr<queue_store> store)
      : self_(self),
        config_(std::move(config)),
        store_(std::move(store)),
        wall_base_ms_(
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count()),
        clock_base_(troupe::detail::system_now(self.system())) {}

  queue_engine(const queue_engine&) = delete;
  queue_engine& operator=(const queue_engine&) = delete;

  ~queue_engine() {
    // What is still uncommitted was never acknowledged: committing it now is
    // harmless and saves the senders a retry; failing that, it is rolled back.
    // Dead letters are not sent while stopping: their leases run out instead.
    dead_letters_.clear();
    waiters_.clear();  // each reply_promise answers request_dropped
  }

  void send(const send_message& m, reply_promise<sent> reply) {
    if (auto bad = check_send(m); !bad.ok()) return reply.deliver(sent{std::move(bad), 0, false});
    if (store_->messages() >= config_.max_messages || store_->bytes() + m.body.size() > config_.max_bytes) {
      return reply.deliver(
          sent{queue_status{errc::queue_full, "the queue holds " + std::to_string(store_->messages()) + " messages, " +
                                                  std::to_string(store_->bytes()) + " bytes: at its limit"},
               0, false});
    }
    const std::int64_t now = now_ms();
    expected<queue_store::send_outcome> outcome = store_->send(m, now, config_.dedup_window.count());
    if (!outcome) return fail_batch(outcome.error(), reply, sent{});
    if (outcome->duplicate) {
      ++stats_.duplicates;
    } else {
      ++stats_.sent;
      may_have_visible_ = true;
    }
    if (++sends_since_purge_ >= purge_every) {
      sends_since_purge_ = 0;
      if (auto r = store_->purge_dedup(now); !r) return fail_batch(r.error(), reply, sent{});
    }
    hold(std::move(reply), sent{{}, outcome->message_id, outcome->duplicate});
  }

  void receive(receive_messages m, reply_promise<received> reply) {
    if (auto bad = check_receive(m); !bad.ok()) return reply.deliver(received{std::move(bad), {}});
    const std::int64_t now = now_ms();
    std::optional<received> got = try_receive(m, now, reply);
    if (!got) return;  // failed: already answered
    if (!got->messages.empty() || m.wait <= std::chrono::milliseconds::zero() ||
        waiters_.size() >= config_.max_waiters) {
      return finish_receive(std::move(*got), std::move(reply));
    }
    waiters_.push_back(waiter{m, std::move(reply), now + m.wait.count()});
    arm_tick(now);
  }

  void remove(const delete_message& m, reply_promise<queue_status> reply) {
    if (auto r = store_->remove(m.receipt); !r) {
      if (r.error().code() == errc::invalid_receipt) return reply.deliver(status_of(r.error()));
      return fail_batch(r.error(), reply, queue_status{});
    }
    ++stats_.deleted;
    hold(std::move(reply), queue_status{});
  }

  void remove_all(const delete_messages& m, reply_promise<std::vector<queue_status>> reply) {
    std::vector<queue_status> results(m.receipts.size());
    for (std::size_t i = 0; i < m.receipts.size(); ++i) {
      if (auto r = store_->remove(m.receipts[i]); !r) {
        if (r.error().code() != errc::invalid_receipt) return fail_batch(r.error(), reply, std::move(results));
        results[i] = status_of(r.error());
      } else {
        ++stats_.deleted;
      }
    }
    hold(std::move(reply), std::move(results));
  }

  void change(const change_visibility& m, reply_promise<queue_status> reply) {
    if (m.timeout < std::chrono::milliseconds::zero() || m.timeout > max_visibility) {
      return reply.deliver(queue_status{errc::invalid_request, "visibility timeout out of range (0 to 12 hours)"});
    }
    const std::int64_t now = now_ms();
    if (auto r = store_->change_visibility(m.receipt, now + m.timeout.count(), now); !r) {
      if (r.error().code() == errc::invalid_receipt) return reply.deliver(status_of(r.error()));
      return fail_batch(r.error(), reply, queue_status{});
    }
    may_have_visible_ = true;
    hold(std::move(reply), queue_status{});
  }

  void purge(reply_promise<queue_status> reply) {
    expected<std::uint64_t> purged = store_->purge();
    if (!purged) return fail_batch(purged.error(), reply, queue_status{});
    stats_.deleted += *purged;
    hold(std::move(reply), queue_status{});
  }

  queue_stats stats() {
    queue_stats s = stats_;
    s.messages = store_->messages();
    s.bytes = store_->bytes();
    if (expected<std::uint64_t> v = store_->visible(now_ms())) s.visible = *v;
    return s;
  }

  void flush() {
    flush_scheduled_ = false;
    commit();
  }

  void tick() {
    tick_at_ = std::numeric_limits<std::int64_t>::max();
    serve_waiters();
  }

 private:
  struct waiter {
    receive_messages request;
    reply_promise<received> reply;
    std::int64_t deadline = 0;
  };

  std::int64_t now_ms() const {
    return wall_base_ms_ + std::chrono::duration_cast<std::chrono::milliseconds>(
                               troupe::detail::system_now(self_.system()) - clock_base_)
                               .count();
  }

  queue_status check_send(const send_message& m) const {
    if (m.body.size() > config_.max_body_bytes) {
      return {errc::invalid_request, "body of " + std::to_string(m.body.size()) + " bytes exceeds max_body_bytes (" +
                                         std::to_string(config_.max_body_bytes) + ")"};
    }
    if (m.delay < std::chrono::milliseconds::zero() || m.delay > max_delay) {
      return {errc::invalid_request, "delay out of range (0 to 15 minutes)"};
    }
    if (config_.fifo && m.group_id.empty()) return {errc::invalid_request, "a FIFO queue needs a group_id"};
    return {};
  }

  queue_status check_receive(receive_messages& m) const {
    if (m.max_messages == 0 || m.max_messages > config_.max_receive_batch) {
      return {errc::invalid_request,
              "max_messages out of range (1 to " + std::to_string(config_.max_receive_batch) + ")"};
    }
    if (m.visibility_timeout < std::chrono::milliseconds::zero()) m.visibility_timeout = config_.visibility_timeout;
    if (m.visibility_timeout > max_visibility) {
      return {errc::invalid_request, "visibility timeout out of range (0 to 12 hours)"};
    }
    if (m.wait < std::chrono::milliseconds::zero() || m.wait > max_wait) {
      return {errc::invalid_request, "wait out of range (0 to 20 seconds)"};
    }
    return {};
  }

  // Picks and leases what is receivable now. nullopt: a storage failure, of
  // which `reply` has been told.
  std::optional<received> try_receive(const receive_messages& m, std::int64_t now, reply_promise<received>& reply) {
    expected<std::vector<picked_message>> picked = store_->pick(m.max_messages, now, config_.fifo);
    if (!picked) {
      fail_batch(picked.error(), reply, received{});
      return std::nullopt;
    }
    received got;
    const bool redrive = config_.redrive.max_receives > 0 && config_.redrive.dead_letter;
    // Two leases at most, each one UPDATE per chunk: the messages to deliver,
    // and those received max_receives times already (to the dead-letter queue).
    std::vector<queue_message*> deliver;
    std::vector<queue_message*> dead;
    deliver.reserve(picked->size());
    for (picked_message& p : *picked) {
      const bool to_dead_letter = redrive && p.receive_count_before >= config_.redrive.max_receives;
      (to_dead_letter ? dead : deliver).push_back(&p.message);
    }
    expected<void> leased = store_->lease(deliver, now + m.visibility_timeout.count());
    if (leased) leased = store_->lease(dead, now + dead_letter_lease.count());
    if (!leased) {
      fail_batch(leased.error(), reply, received{});
      return std::nullopt;
    }
    got.messages.reserve(deliver.size());
    for (queue_message* message : deliver) got.messages.push_back(std::move(*message));
    for (queue_message* message : dead) dead_letters_.push_back(std::move(*message));
    if (!dead.empty()) schedule_flush();  // they are sent after the commit of their lease
    stats_.received += got.messages.size();
    return got;
  }

  void finish_receive(received got, reply_promise<received> reply) {
    if (got.messages.empty()) return reply.deliver(std::move(got));  // nothing of it to commit
    hold(std::move(reply), std::move(got));
  }

  // Answers `reply` with `value` once the open transaction commits.
  template <class R>
  void hold(reply_promise<R> reply, R value) {
    after_commit_.push_back(std::make_unique<pending_value<R>>(std::move(reply), std::move(value)));
    if (after_commit_.size() >= config_.max_batch) return commit();
    schedule_flush();
  }

  // A queue_flush behind every request already in the mailbox (see the top).
  void schedule_flush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    (void)self_.self().tell(queue_flush{});
  }

  // A write failed inside the batch: SQLite may have ended the transaction, so
  // the batch as a whole is rolled back and every reply in it fails.
  template <class R>
  void fail_batch(const error& e, reply_promise<R>& reply, R value) {
    store_->rollback();
    dead_letters_.clear();  // their leases were rolled back too
    complete_all(e);
    set_failed(value, e);
    reply.deliver(std::move(value));
  }

  void commit() {
    expected<void> r = store_->commit();
    if (!r) {
      store_->rollback();
      dead_letters_.clear();  // their leases were rolled back too
    } else if (!after_commit_.empty()) {
      ++stats_.commits;
    }
    complete_all(r);
    send_dead_letters();
    if (!waiters_.empty() && std::exchange(may_have_visible_, false)) serve_waiters();
  }

  void complete_all(const expected<void>& committed) {
    std::vector<std::unique_ptr<pending_reply>> replies;
    replies.swap(after_commit_);
    for (auto& p : replies) p->complete(committed);
  }

  void serve_waiters() {
    const std::int64_t now = now_ms();
    std::deque<waiter> still;
    while (!waiters_.empty()) {
      waiter w = std::move(waiters_.front());
      waiters_.pop_front();
      std::optional<received> got = try_receive(w.request, now, w.reply);
      if (!got) continue;
      if (!got->messages.empty() || w.deadline <= now) {
        finish_receive(std::move(*got), std::move(w.reply));
      } else {
        still.push_back(std::move(w));
      }
    }
    waiters_.swap(still);
    if (!waiters_.empty()) arm_tick(now);
  }

  // A queue_tick at the earliest deadline of a parked receive or next
  // visible_at (the timer armed already, if earlier, stays).
  void arm_tick(std::int64_t now) {
    std::int64_t at = std::numeric_limits<std::int64_t>::max();
    for (const waiter& w : waiters_) at = std::min(at, w.deadline);
    if (expected<std::optional<std::int64_t>> next = store_->next_visible_after(now); next && *next) {
      at = std::min(at, **next);
    }
    if (at >= tick_at_) return;
    tick_timer_.cancel();
    tick_at_ = at;
    tick_timer_ = self_.system().send_after(
        self_.self(), std::chrono::milliseconds(std::max<std::int64_t>(at - now, 0)), queue_tick{});
  }

  void send_dead_letters() {
    if (dead_letters_.empty()) return;
    std::vector<queue_message> moving;
    moving.swap(dead_letters_);
    for (queue_message& m : moving) {
      send_message copy{std::move(m.body), std::move(m.attributes), std::chrono::milliseconds(0), m.group_id,
                        "dead-letter:" + store_->path() + ":" + std::to_string(m.message_id)};
      std::string receipt = m.receipt;
      config_.redrive.dead_letter.ask(std::move(copy), dead_letter_lease)
          .then(
              // `alive`: a supervisor restarts a queue in place (same cell, new
              // engine); a reply for the engine before must not reach this one.
              [this, alive = std::weak_ptr<int>(alive_), receipt](const sent& s) {
                if (alive.expired() || !s.status.ok()) return;  // the lease runs out; a later receive retries
                if (auto r = store_->remove(receipt); !r) return;
                ++stats_.dead_lettered;
                schedule_flush();
              },
              [](const error&) {});
    }
  }

  queue_actor& self_;
  queue_config config_;
  std::unique_ptr<queue_store> store_;
  std::int64_t wall_base_ms_;
  std::chrono::steady_clock::time_point clock_base_;
  std::vector<std::unique_ptr<pending_reply>> after_commit_;
  bool flush_scheduled_ = false;
  bool may_have_visible_ = false;
  std::deque<waiter> waiters_;
  timer tick_timer_;
  std::int64_t tick_at_ = std::numeric_limits<std::int64_t>::max();
  std::vector<queue_message> dead_letters_;  // leased for the move, sent after the commit
  std::uint64_t sends_since_purge_ = 0;
  queue_stats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // see send_dead_letters()
};

}  // namespace detail

namespace {
std::unique_ptr<detail::queue_store> open_or_throw(const queue_config& config) {
  auto store = detail::queue_store::open(config);
  if (!store) throw troupe_error(store.error());
  return std::move(*store);
}
}  // namespace

queue_actor::queue_actor(const queue_config& config)
    : engine_(std::make_unique<detail::queue_engine>(*this, config, open_or_throw(config))) {}

queue_actor::~queue_actor() = default;

void queue_actor::on(const send_message& m, reply_promise<sent> reply) { engine_->send(m, std::move(reply)); }
void queue_actor::on(receive_messages m, reply_promise<received> reply) { engine_->receive(m, std::move(reply)); }
void queue_actor::on(const delete_message& m, reply_promise<queue_status> reply) {
  engine_->remove(m, std::move(reply));
}
void queue_actor::on(const delete_messages& m, reply_promise<std::vector<queue_status>> reply) {
  engine_->remove_all(m, std::move(reply));
}
void queue_actor::on(const change_visibility& m, reply_promise<queue_status> reply) {
  engine_->change(m, std::move(reply));
}
void queue_actor::on(const purge_messages& /*unused*/, reply_promise<queue_status> reply) {
  engine_->purge(std::move(reply));
}
queue_stats queue_actor::on(get_queue_stats /*unused*/) { return engine_->stats(); }
void queue_actor::on(queue_tick /*unused*/) { engine_->tick(); }
void queue_actor::on(queue_flush /*unused*/) { engine_->flush(); }
void queue_actor::on_stop() { engine_.reset(); }

expected<ref<queue_protocol>> spawn_queue(troupe::system& sys, const queue_config& config) {
  {
    // Opened and closed here so that a bad file is an error to return; the
    // actor opens it again (a process that grabs the file in between makes the
    // actor fail its start instead).
    auto store = detail::queue_store::open(config);
    if (!store) return store.error();
  }
  return sys.spawn_detached<queue_actor>(config);
}

}  // namespace troupe::durable
