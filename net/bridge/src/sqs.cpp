// The SQS source's and sink's threads (troupe/bridge/sqs.hpp has the contract).
//
// Source: two threads, each with its own connection (sqs_client). The fetch
// thread waits for a slot in source_core, long-polls ReceiveMessage for as
// many messages as there are free slots (at most 10), checks the answer's
// shape and hands the messages to source_core. The settle thread sends what
// the handlers settled: deletes (ten per DeleteMessageBatch when several
// wait) and dead letters (SendMessage to the dead-letter queue, then delete).
// acknowledge() and dead_letter() come from any thread (the actors' workers
// completing asks, the timer thread) and only queue work under mutex_.
//
// Sink: one connection thread takes publishes from a queue and answers each
// one's reply_promise after SendMessage's answer.
#include <boost/json/array.hpp>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "sqs_client.hpp"
#include "troupe/bridge/sqs.hpp"

namespace troupe::bridge::sqs::detail {

using bridge::detail::core_port;

namespace json = boost::json;
using clock = std::chrono::steady_clock;

namespace {

// SQS's own limits.
constexpr std::size_t max_receive = 10;  // MaxNumberOfMessages, and entries per batch call
constexpr std::chrono::seconds max_wait_time{20};
constexpr std::chrono::seconds max_visibility{12 * 60 * 60};

connection_settings resolved(connection_settings c, const std::string& queue_url) {
  if (c.endpoint.empty()) {
    const endpoint_address a = address_of(queue_url);
    c.endpoint = std::string(a.tls ? "https://" : "http://") + a.host + ':' + a.port;
  }
  (void)address_of(c.endpoint);  // throws naming a bad one now, not on the first call
  return c;
}

// The relaxed counters behind http_stats, plus the last error under a mutex.
struct link_counters {
  std::atomic<std::uint64_t> failures{0}, receives{0}, deletes{0}, deleted{0}, delete_refused{0}, sent{0};
  std::atomic<bool> answered{false};  // the latest call was answered (relaxed: a flag on its own)
  std::mutex error_mutex;
  std::string last_error;  // guarded by error_mutex

  void failed(const std::string& why) {
    failures.fetch_add(1, std::memory_order_relaxed);
    answered.store(false, std::memory_order_relaxed);
    std::lock_guard lock(error_mutex);
    last_error = why;
  }
  http_stats read(std::uint64_t connects) {
    http_stats s;
    s.connects = connects;
    s.failures = failures.load(std::memory_order_relaxed);
    s.receives = receives.load(std::memory_order_relaxed);
    s.connected = answered.load(std::memory_order_relaxed);
    s.deletes = deletes.load(std::memory_order_relaxed);
    s.deleted = deleted.load(std::memory_order_relaxed);
    s.delete_refused = delete_refused.load(std::memory_order_relaxed);
    s.sent = sent.load(std::memory_order_relaxed);
    std::lock_guard lock(error_mutex);
    s.last_error = last_error;
    return s;
  }
};

// Backoff between failed calls: doubles up to the maximum, resets on success.
class backoff {
 public:
  explicit backoff(const connection_settings& c) : first_(c.reconnect_backoff), most_(c.max_reconnect_backoff) {}
  std::chrono::milliseconds next() {
    current_ = current_ == std::chrono::milliseconds::zero() ? first_ : std::min(most_, current_ * 2);
    return current_;
  }
  void reset() { current_ = std::chrono::milliseconds::zero(); }

 private:
  std::chrono::milliseconds first_, most_;
  std::chrono::milliseconds current_{0};
};

const json::string* string_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? &v->get_string() : nullptr;
}

// One message of a ReceiveMessage answer, checked.
struct incoming {
  std::string id;
  std::string receipt;
  std::string body;
  std::uint32_t receive_count = 1;
  std::vector<std::pair<std::string, std::string>> attributes;
};

// The whole answer or an error naming what is wrong: a message without its
// receipt handle could never be deleted, so none is delivered.
expected<std::vector<incoming>> messages_of(const json::object& answer) {
  std::vector<incoming> out;
  const json::value* list = answer.if_contains("Messages");
  if (list == nullptr || list->is_null()) return out;  // an empty long poll
  if (!list->is_array()) return error(errc::malformed_message, "sqs ReceiveMessage: Messages is not an array");
  if (list->get_array().size() > max_receive) {
    return error(errc::malformed_message, "sqs ReceiveMessage: " + std::to_string(list->get_array().size()) +
                                              " messages, more than the 10 asked at most");
  }
  for (const json::value& m : list->get_array()) {
    if (!m.is_object()) return error(errc::malformed_message, "sqs ReceiveMessage: a message is not an object");
    const json::object& o = m.get_object();
    const json::string* id = string_at(o, "MessageId");
    const json::string* receipt = string_at(o, "ReceiptHandle");
    const json::string* body = string_at(o, "Body");
    if (id == nullptr || receipt == nullptr || body == nullptr || receipt->empty()) {
      return error(errc::malformed_message,
                   "sqs ReceiveMessage: a message without a string MessageId, ReceiptHandle or Body");
    }
    incoming in{std::string(*id), std::string(*receipt), std::string(*body), 1, {}};
    if (const json::value* attrs = o.if_contains("Attributes"); attrs != nullptr && attrs->is_object()) {
      if (const json::string* count = string_at(attrs->get_object(), "ApproximateReceiveCount")) {
        std::uint32_t n = 0;
        const auto [end, ec] = std::from_chars(count->data(), count->data() + count->size(), n);
        if (ec != std::errc() || end != count->data() + count->size() || n == 0) {
          return error(errc::malformed_message, "sqs ReceiveMessage: ApproximateReceiveCount '" +
                                                    std::string(count->subview().substr(0, 20)) +
                                                    "' is not a positive number");
        }
        in.receive_count = n;
      }
    }
    if (const json::value* attrs = o.if_contains("MessageAttributes"); attrs != nullptr && attrs->is_object()) {
      for (const auto& [name, value] : attrs->get_object()) {
        if (!value.is_object()) continue;
        if (const json::string* text = string_at(value.get_object(), "StringValue")) {
          in.attributes.emplace_back(std::string(name), std::string(*text));
        }
      }
    }
    out.push_back(std::move(in));
  }
  return out;
}

json::object string_attribute(std::string_view value) { return {{"DataType", "String"}, {"StringValue", value}}; }

}  // namespace

// --- the source ------------------------------------------------------------------

class consumer_engine final : public consumer, public std::enable_shared_from_this<consumer_engine> {
 public:
  consumer_engine(const source_config& s, std::function<void(std::string)> fail)
      : settings_(s), fail_(std::move(fail)) {
    if (settings_.queue_url.empty()) throw std::invalid_argument("sqs source: no queue_url");
    settings_.connection = resolved(settings_.connection, settings_.queue_url);
    if (settings_.wait_time < std::chrono::seconds::zero() || settings_.wait_time > max_wait_time) {
      throw std::invalid_argument("sqs source: wait_time must be 0..20 s (SQS's WaitTimeSeconds)");
    }
    if (settings_.visibility_timeout > max_visibility ||
        settings_.visibility_timeout <= settings_.flow.handler_timeout) {
      throw std::invalid_argument(
          "sqs source: visibility_timeout (" + std::to_string(settings_.visibility_timeout.count()) +
          " s) must exceed flow.handler_timeout and be at most 12 h: a message whose visibility ends while its "
          "handler runs is delivered again");
    }
    if (settings_.flow.max_in_flight == 0) throw std::invalid_argument("sqs source: flow.max_in_flight is 0");
    fetch_link_ = std::make_unique<sqs_client>(settings_.connection);
    settle_link_ = std::make_unique<sqs_client>(settings_.connection);
  }
  consumer_engine(const consumer_engine&) = delete;
  consumer_engine& operator=(const consumer_engine&) = delete;
  ~consumer_engine() override { close(false, {}); }

  void start(core_port& core) override {
    core_ = &core;
    fetcher_ = std::thread([this] { fetch_loop(); });
    settler_ = std::thread([this] { settle_loop(); });
  }

  void close(bool graceful, std::chrono::nanoseconds drain_timeout) override {
    {
      std::lock_guard lock(mutex_);
      if (fetch_stop_) return;
      fetch_stop_ = true;
    }
    changed_.notify_all();
    fetch_link_->cancel();  // a long poll in progress ends now
    if (fetcher_.joinable()) fetcher_.join();
    if (graceful && core_ != nullptr) (void)core_->drain(drain_timeout);
    {
      std::lock_guard lock(mutex_);
      settle_stop_ = true;
      abandoned_ = !graceful;
      settle_deadline_ = clock::now() + settings_.connection.request_timeout;
    }
    changed_.notify_all();
    if (!graceful) settle_link_->cancel();
    if (settler_.joinable()) settler_.join();
  }

  void acknowledge(std::uint64_t token) override { settle(token, {}); }

  void dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                   const std::string& reason) override {
    settle(token, dead{std::string(bytes), from.key, reason});
  }

  http_stats stats() const { return tally_.read(fetch_link_->connects() + settle_link_->connects()); }
  [[nodiscard]] bridge::link_stats link() const override {
    const http_stats h = stats();
    bridge::link_stats l;
    l.connected = h.connected;
    l.connects = h.connects;
    l.connection_losses = h.failures;
    l.settles_sent = h.deleted;
    l.stale_settles = h.delete_refused;
    l.fetch_calls = h.receives;
    l.settle_calls = h.deletes;
    l.last_error = h.last_error;
    return l;
  }

 private:
  struct dead {
    std::string bytes;
    std::string message_id;
    std::string reason;
    bool sent = false;  // in the dead-letter queue already: a retry only deletes
  };
  struct job {
    std::string receipt;
    std::optional<dead> letter;
  };

  void settle(std::uint64_t token, std::optional<dead> letter) {
    {
      std::lock_guard lock(mutex_);
      const auto it = outstanding_.find(token);
      if (it == outstanding_.end() || settle_stop_) return;  // after close: it comes back after its visibility
      jobs_.push_back({std::move(it->second), std::move(letter)});
      outstanding_.erase(it);
    }
    changed_.notify_all();
  }

  bool wait_backoff(backoff& b, bool settle_side) {
    std::unique_lock lock(mutex_);
    return !changed_.wait_for(lock, b.next(), [&] { return settle_side ? abandoned_ : fetch_stop_; });
  }

  void fetch_loop() {
    backoff pause(settings_.connection);
    const auto poll = std::chrono::milliseconds(100);
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (fetch_stop_) return;
      }
      if (!core_->wait_for_slot(poll)) continue;
      std::size_t want = 0;
      {
        std::lock_guard lock(mutex_);
        if (fetch_stop_) return;
        const std::size_t held = outstanding_.size();
        want = held >= settings_.flow.max_in_flight ? 0 : settings_.flow.max_in_flight - held;
      }
      if (want == 0) {
        // source_core released a slot whose delete is still being sent; the
        // next wait sees it freed once the settle thread took it.
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, poll,
                          [&] { return fetch_stop_ || outstanding_.size() < settings_.flow.max_in_flight; });
        continue;
      }
      want = std::min(want, max_receive);
      json::object request{{"QueueUrl", settings_.queue_url},
                           {"MaxNumberOfMessages", want},
                           {"WaitTimeSeconds", settings_.wait_time.count()},
                           {"VisibilityTimeout", settings_.visibility_timeout.count()},
                           {"AttributeNames", json::array{"ApproximateReceiveCount"}},
                           {"MessageSystemAttributeNames", json::array{"ApproximateReceiveCount"}},
                           {"MessageAttributeNames", json::array{"All"}}};
      expected<json::object> answer = fetch_link_->call("ReceiveMessage", request, settings_.wait_time);
      expected<std::vector<incoming>> got =
          answer ? messages_of(*answer) : expected<std::vector<incoming>>(answer.error());
      if (!got) {
        if (is_fetch_stopping()) return;
        fetch_link_->drop_connection();  // whatever sent that is not trusted with the next call
        report(got.error().to_string());
        if (!wait_backoff(pause, false)) return;
        continue;
      }
      pause.reset();
      tally_.receives.fetch_add(1, std::memory_order_relaxed);
      tally_.answered.store(true, std::memory_order_relaxed);
      for (incoming& m : *got) {
        std::uint64_t token = 0;
        {
          std::lock_guard lock(mutex_);
          token = next_token_++;
          outstanding_.emplace(token, std::move(m.receipt));
        }
        origin from;
        from.broker = "sqs";
        from.destination = settings_.queue_url;
        from.key = std::move(m.id);
        from.delivery_count = m.receive_count;
        from.headers = std::move(m.attributes);
        core_->deliver(token, std::move(m.body), std::move(from));
      }
    }
  }

  bool is_fetch_stopping() {
    std::lock_guard lock(mutex_);
    return fetch_stop_;
  }

  void report(const std::string& why) {
    tally_.failed(why);
    std::fprintf(stderr, "troupe: %s (retrying)\n", why.c_str());  // NOLINT: a log line
  }

  void settle_loop() {
    backoff pause(settings_.connection);
    std::deque<job> batch;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        if (batch.empty()) {
          changed_.wait(lock, [&] { return settle_stop_ || !jobs_.empty(); });
          if (abandoned_ || (settle_stop_ && jobs_.empty())) return;
          // Dead letters one at a time; deletes up to ten at once.
          if (jobs_.front().letter) {
            batch.push_back(std::move(jobs_.front()));
            jobs_.pop_front();
          } else {
            const std::size_t most = settings_.batch_deletes ? max_receive : 1;
            while (!jobs_.empty() && !jobs_.front().letter && batch.size() < most) {
              batch.push_back(std::move(jobs_.front()));
              jobs_.pop_front();
            }
          }
        }
        if (abandoned_) return;
        if (settle_stop_ && clock::now() > settle_deadline_) {
          std::fprintf(stderr, "troupe: sqs source: %zu deletes not sent before the stop's deadline\n",  // NOLINT
                       batch.size() + jobs_.size());
          return;
        }
      }
      expected<void> done = batch.front().letter ? send_dead_letter(batch.front()) : delete_all(batch);
      if (done) {
        pause.reset();
        batch.clear();
        continue;
      }
      if (done.error().code() == errc::broker_failed && batch.front().letter) {
        // The dead-letter queue refused it (not a lost connection): stop the
        // source for its supervisor rather than drop the letter.
        fail_("the dead-letter queue " + settings_.dead_letter_queue_url +
              " refused a message: " + done.error().text());
        std::lock_guard lock(mutex_);
        abandoned_ = true;
        return;
      }
      report(done.error().to_string());
      if (!wait_backoff(pause, true)) return;
    }
  }

  expected<void> send_dead_letter(job& j) {
    if (settings_.dead_letter_queue_url.empty()) {
      std::fprintf(stderr,
                   "troupe: sqs source: dead letter %s from %s dropped (no dead_letter_queue_url): %s\n",  // NOLINT
                   j.letter->message_id.c_str(), settings_.queue_url.c_str(), j.letter->reason.c_str());
    } else if (!j.letter->sent) {
      json::object request{{"QueueUrl", settings_.dead_letter_queue_url},
                           {"MessageBody", j.letter->bytes},
                           {"MessageAttributes",
                            json::object{{"troupe.dead_letter.reason", string_attribute(j.letter->reason)},
                                         {"troupe.dead_letter.queue", string_attribute(settings_.queue_url)},
                                         {"troupe.dead_letter.message_id", string_attribute(j.letter->message_id)}}}};
      expected<json::object> sent = settle_link_->call("SendMessage", request);
      if (!sent) return sent.error();
      tally_.sent.fetch_add(1, std::memory_order_relaxed);
      j.letter->sent = true;
    }
    std::deque<job> one;
    one.push_back(std::move(j));
    expected<void> d = delete_all(one);
    j = std::move(one.front());
    return d;
  }

  expected<void> delete_all(std::deque<job>& batch) {
    if (batch.size() == 1) {
      expected<json::object> r = settle_link_->call(
          "DeleteMessage", json::object{{"QueueUrl", settings_.queue_url}, {"ReceiptHandle", batch.front().receipt}});
      if (!r) {
        // A refused receipt handle (expired, or the message gone) is not retried:
        // the message comes back after its visibility timeout.
        if (r.error().code() == errc::broker_failed && r.error().text().find("HTTP 4") != std::string::npos) {
          tally_.delete_refused.fetch_add(1, std::memory_order_relaxed);
          report(r.error().to_string());
          return {};
        }
        return r.error();
      }
      tally_.deletes.fetch_add(1, std::memory_order_relaxed);
      tally_.deleted.fetch_add(1, std::memory_order_relaxed);
      return {};
    }
    json::array entries;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      entries.push_back(json::object{{"Id", std::to_string(i)}, {"ReceiptHandle", batch[i].receipt}});
    }
    expected<json::object> r = settle_link_->call(
        "DeleteMessageBatch", json::object{{"QueueUrl", settings_.queue_url}, {"Entries", std::move(entries)}});
    if (!r) return r.error();
    const json::value* ok = r->if_contains("Successful");
    const json::value* failed = r->if_contains("Failed");
    if ((ok != nullptr && !ok->is_array()) || (failed != nullptr && !failed->is_array())) {
      settle_link_->drop_connection();
      return error(errc::malformed_message, "sqs DeleteMessageBatch: Successful or Failed is not an array");
    }
    const std::size_t good = ok != nullptr ? ok->get_array().size() : 0;
    const std::size_t bad = failed != nullptr ? failed->get_array().size() : 0;
    if (good + bad != batch.size()) {
      settle_link_->drop_connection();
      return error(errc::malformed_message, "sqs DeleteMessageBatch: " + std::to_string(good + bad) +
                                                " entries answered for " + std::to_string(batch.size()) + " sent");
    }
    tally_.deletes.fetch_add(1, std::memory_order_relaxed);
    tally_.deleted.fetch_add(good, std::memory_order_relaxed);
    if (bad > 0) {
      tally_.delete_refused.fetch_add(bad, std::memory_order_relaxed);
      report("sqs DeleteMessageBatch: " + std::to_string(bad) +
             " entries refused (they come back after their "
             "visibility timeout): " +
             json::serialize(failed->get_array().front()).substr(0, 200));
    }
    return {};
  }

  source_config settings_;
  std::function<void(std::string)> fail_;
  std::unique_ptr<sqs_client> fetch_link_;   // the fetch thread's
  std::unique_ptr<sqs_client> settle_link_;  // the settle thread's
  core_port* core_ = nullptr;
  std::thread fetcher_;
  std::thread settler_;
  mutable link_counters tally_;  // mutable: stats() reads the last error under its mutex

  std::mutex mutex_;
  std::condition_variable changed_;  // work queued, a slot freed, a stop
  std::unordered_map<std::uint64_t, std::string>
      outstanding_;                      // guarded: token -> receipt handle, delivered and not settled
  std::uint64_t next_token_ = 1;         // guarded by mutex_
  std::deque<job> jobs_;                 // guarded: settled, not yet sent
  bool fetch_stop_ = false;              // guarded by mutex_
  bool settle_stop_ = false;             // guarded by mutex_
  bool abandoned_ = false;               // guarded by mutex_: settle nothing more
  clock::time_point settle_deadline_{};  // guarded by mutex_
};

std::shared_ptr<consumer> open_consumer(const source_config& settings, std::function<void(std::string)> fail) {
  return std::make_shared<consumer_engine>(settings, std::move(fail));
}

// --- the sink --------------------------------------------------------------------

class publisher {
 public:
  explicit publisher(const sink_config& s) : settings_(s) {
    if (settings_.queue_url.empty()) throw std::invalid_argument("sqs sink: no queue_url");
    settings_.connection = resolved(settings_.connection, settings_.queue_url);
    link_ = std::make_unique<sqs_client>(settings_.connection);
    thread_ = std::thread([this] { run(); });
  }
  publisher(const publisher&) = delete;
  publisher& operator=(const publisher&) = delete;
  ~publisher() { close(std::chrono::milliseconds::zero()); }

  void send(std::string body, reply_promise<published> reply) {
    {
      std::lock_guard lock(mutex_);
      if (closing_) {
        reply.fail(error(errc::connection_lost, "sqs sink: closing"));
        return;
      }
      if (waiting_.size() >= settings_.max_waiting) {
        reply.fail(error(errc::mailbox_full, "sqs sink: " + std::to_string(waiting_.size()) +
                                                 " publishes already wait for the connection"));
        return;
      }
      waiting_.push_back({std::move(body), std::move(reply)});
    }
    changed_.notify_all();
  }

  void close(std::chrono::milliseconds flush_timeout) {
    {
      std::lock_guard lock(mutex_);
      if (closing_) return;
      closing_ = true;
      deadline_ = clock::now() + flush_timeout;
    }
    changed_.notify_all();
    if (!thread_.joinable()) return;
    // The thread sends what is queued until the deadline; then it is cut short.
    {
      std::unique_lock lock(mutex_);
      changed_.wait_until(lock, deadline_, [&] { return finished_; });
    }
    link_->cancel();
    thread_.join();
  }

  http_stats stats() const { return tally_.read(link_->connects()); }

 private:
  struct job {
    std::string body;
    reply_promise<published> reply;
  };

  void run() {
    for (;;) {
      job next;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return closing_ || !waiting_.empty(); });
        if (waiting_.empty() || (closing_ && clock::now() >= deadline_)) break;
        next = std::move(waiting_.front());
        waiting_.pop_front();
      }
      expected<json::object> r =
          link_->call("SendMessage", json::object{{"QueueUrl", settings_.queue_url}, {"MessageBody", next.body}});
      if (r && string_at(*r, "MessageId") == nullptr) {
        r = error(errc::malformed_message, "sqs SendMessage: the answer has no MessageId");
        link_->drop_connection();
      }
      if (r) {
        tally_.sent.fetch_add(1, std::memory_order_relaxed);
        next.reply.deliver(published{settings_.queue_url, -1, -1});
        continue;
      }
      tally_.failed(r.error().to_string());
      // An SQS error answer: it refused the message. Anything else: we do
      // not know whether it took it.
      next.reply.fail(error(r.error().code() == errc::broker_failed ? errc::broker_failed : errc::connection_lost,
                            r.error().text()));
    }
    std::deque<job> left;
    {
      std::lock_guard lock(mutex_);
      finished_ = true;
      left.swap(waiting_);
    }
    changed_.notify_all();
    for (job& j : left) j.reply.fail(error(errc::connection_lost, "sqs sink: stopped before sending it"));
  }

  sink_config settings_;
  std::unique_ptr<sqs_client> link_;
  mutable link_counters tally_;  // mutable: stats() reads the last error under its mutex
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<job> waiting_;       // guarded by mutex_
  bool closing_ = false;          // guarded by mutex_
  bool finished_ = false;         // guarded by mutex_: the thread is done
  clock::time_point deadline_{};  // guarded by mutex_
};

std::shared_ptr<publisher> open_publisher(const sink_config& settings) { return std::make_shared<publisher>(settings); }
void send(publisher& p, std::string body, reply_promise<published> reply) { p.send(std::move(body), std::move(reply)); }
void close(publisher& p, std::chrono::milliseconds flush_timeout) { p.close(flush_timeout); }
http_stats stats(const publisher& p) { return p.stats(); }

}  // namespace troupe::bridge::sqs::detail
