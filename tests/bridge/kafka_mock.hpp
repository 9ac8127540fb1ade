// kafka_mock: librdkafka's built-in mock cluster (no Kafka broker is packaged
// in Debian) on a librdkafka handle of its own, for the Kafka bridge's tests
// and benchmark. Its bootstrap servers are a real TCP address, so another
// process can use it too. May use: librdkafka (rdkafka_mock.h).
//
//   troupe::test_support::kafka_mock mock(1);
//   mock.create_topic("orders", 4);
//   use(mock.bootstraps());
//
// Thread safety: one owner; the cluster runs on librdkafka's own threads.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdexcept>
#include <string>

namespace troupe::test_support {

class kafka_mock {
 public:
  // Throws std::runtime_error when librdkafka cannot make it.
  explicit kafka_mock(int brokers) {
    char why[512];
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), why, sizeof why);
    if (handle_ == nullptr) throw std::runtime_error(std::string("rd_kafka_new for the mock cluster: ") + why);
    cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
    if (cluster_ == nullptr) {
      rd_kafka_destroy(handle_);
      throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    }
  }
  kafka_mock(const kafka_mock&) = delete;
  kafka_mock& operator=(const kafka_mock&) = delete;
  ~kafka_mock() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
  }

  [[nodiscard]] std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
  // Throws std::runtime_error when the mock refuses it.
  void create_topic(const std::string& name, int partitions) {
    if (const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1)) {
      throw std::runtime_error("creating topic " + name + " on the mock cluster: " + rd_kafka_err2str(err));
    }
  }
  // For the failures a test injects (rd_kafka_mock_broker_set_down, ...).
  [[nodiscard]] rd_kafka_mock_cluster_t* get() const { return cluster_; }

 private:
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace troupe::test_support
