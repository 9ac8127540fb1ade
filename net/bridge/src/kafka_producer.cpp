// The Kafka producer under the sink and the source's dead-letter topic: a
// librdkafka producer and one poll thread that serves its delivery reports.
// Each produced message carries its completion (a heap `delivered`) as the
// message's opaque; the delivery report runs and frees it, exactly once.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kafka_config.hpp"
#include "troupe/bridge/kafka.hpp"

namespace troupe::bridge::kafka::detail {

void set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char why[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), why, sizeof why) != RD_KAFKA_CONF_OK) {
    throw std::runtime_error("kafka: setting " + name + "=" + value + " refused: " + why);
  }
}

conf_ptr make_conf(const std::string& brokers, const config_list& extra) {
  if (brokers.empty()) throw std::runtime_error("kafka: no brokers given (bootstrap.servers)");
  conf_ptr conf(rd_kafka_conf_new());
  set(conf.get(), "bootstrap.servers", brokers);
  for (const auto& [name, value] : extra) set(conf.get(), name, value);
  return conf;
}

std::string describe(rd_kafka_resp_err_t err) {
  return std::string(rd_kafka_err2str(err)) + " (" + rd_kafka_err2name(err) + ")";
}

class producer {
 public:
  explicit producer(rd_kafka_t* handle) : handle_(handle) {
    poller_ = std::thread([this] {
      // pairs with the release in close(): after it, the thread leaves; the
      // 100 ms poll bounds how long that takes.
      while (!stopping_.load(std::memory_order_acquire)) rd_kafka_poll(handle_, 100);
    });
  }
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;
  ~producer() { close(std::chrono::milliseconds::zero()); }

  void produce(const std::string& topic, const std::string& key, const std::string& value, const config_list& headers,
               delivered done) {
    // Shared: produces run side by side; close() takes it alone to refuse
    // new messages before flushing (they would have no report to answer them).
    std::shared_lock lock(closing_mutex_);
    if (closing_) {
      done(error(errc::broker_failed, "kafka: the producer is closing; nothing more is sent to " + topic));
      return;
    }
    rd_kafka_headers_t* h = nullptr;
    if (!headers.empty()) {
      h = rd_kafka_headers_new(headers.size());
      for (const auto& [name, text] : headers) {
        rd_kafka_header_add(h, name.data(), static_cast<ssize_t>(name.size()), text.data(),
                            static_cast<ssize_t>(text.size()));
      }
    }
    auto* completion = new delivered(std::move(done));
    // rd_kafka_produceva, not producev: the RD_KAFKA_V_* macros are C casts.
    // The payload and key are copied (F_COPY); librdkafka never writes them.
    std::vector<rd_kafka_vu_t> fields(6);
    fields[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    fields[0].u.cstr = topic.c_str();
    fields[1].vtype = RD_KAFKA_VTYPE_VALUE;
    fields[1].u.mem = {const_cast<char*>(value.data()), value.size()};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    fields[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    fields[2].u.i = RD_KAFKA_MSG_F_COPY;
    fields[3].vtype = RD_KAFKA_VTYPE_OPAQUE;
    fields[3].u.ptr = completion;
    fields[4].vtype = RD_KAFKA_VTYPE_HEADERS;
    fields[4].u.headers = h;
    fields.resize(h != nullptr ? 5 : 4);
    if (!key.empty()) {  // no key: the partitioner spreads the messages
      rd_kafka_vu_t k{};
      k.vtype = RD_KAFKA_VTYPE_KEY;
      k.u.mem = {const_cast<char*>(key.data()), key.size()};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
      fields.push_back(k);
    }
    if (rd_kafka_error_t* e = rd_kafka_produceva(handle_, fields.data(), fields.size())) {
      // Not queued: the headers are still ours, and no report will come.
      const std::string why = rd_kafka_error_string(e);
      rd_kafka_error_destroy(e);
      if (h != nullptr) rd_kafka_headers_destroy(h);
      (*completion)(error(errc::broker_failed, "kafka: cannot queue a message for " + topic + ": " + why));
      delete completion;
    }
  }

  void close(std::chrono::milliseconds flush_timeout) {
    {
      std::unique_lock lock(closing_mutex_);
      if (closing_) return;
      closing_ = true;
    }
    (void)rd_kafka_flush(handle_, static_cast<int>(flush_timeout.count()));
    // What did not make it fails now rather than never: the purged messages'
    // reports (RD_KAFKA_RESP_ERR__PURGE_*) are served by the flush below.
    (void)rd_kafka_purge(handle_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    (void)rd_kafka_flush(handle_, 1000);
    // pairs with the acquire in the poll thread's loop
    stopping_.store(true, std::memory_order_release);
    poller_.join();
    // Reports left after the last poll (none unless the broker hung past both flushes).
    rd_kafka_poll(handle_, 0);
    rd_kafka_destroy(handle_);
    handle_ = nullptr;
  }

 private:
  rd_kafka_t* handle_;
  std::shared_mutex closing_mutex_;
  bool closing_ = false;  // guarded by closing_mutex_
  std::atomic<bool> stopping_{false};
  std::thread poller_;
};

namespace {
// librdkafka's delivery report callback, on the poll thread.
void on_delivery(rd_kafka_t* /*handle*/, const rd_kafka_message_t* m, void* /*opaque*/) {
  auto* done = static_cast<delivered*>(m->_private);
  if (done == nullptr) return;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    (*done)(error(errc::broker_failed,
                  "kafka: delivery to " + std::string(rd_kafka_topic_name(m->rkt)) + " failed: " + describe(m->err)));
  } else {
    (*done)(published{rd_kafka_topic_name(m->rkt), m->partition, m->offset});
  }
  delete done;
}
}  // namespace

std::shared_ptr<producer> open_producer(const std::string& brokers, const config_list& config) {
  conf_ptr conf = make_conf(brokers, config);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
  char why[512];
  rd_kafka_t* handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), why, sizeof why);
  if (handle == nullptr) throw std::runtime_error(std::string("kafka: cannot create a producer: ") + why);
  (void)conf.release();  // rd_kafka_new took it
  return std::make_shared<producer>(handle);
}

void produce(producer& p, const std::string& topic, const std::string& key, const std::string& value,
             const config_list& headers, delivered done) {
  p.produce(topic, key, value, headers, std::move(done));
}

void close(producer& p, std::chrono::milliseconds flush_timeout) { p.close(flush_timeout); }

}  // namespace troupe::bridge::kafka::detail
