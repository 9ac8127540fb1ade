// What the Kafka source and sink share and never install: building a
// librdkafka configuration with errors in librdkafka's words.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>

#include "troupe/bridge/kafka.hpp"

namespace troupe::bridge::kafka::detail {

struct conf_deleter {
  void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;

// A configuration with bootstrap.servers and `extra` set; throws
// std::runtime_error naming the property librdkafka refused, and why.
conf_ptr make_conf(const std::string& brokers, const config_list& extra);
void set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value);

// librdkafka's name and text for an error code: "Local: Broker transport failure (_TRANSPORT)".
std::string describe(rd_kafka_resp_err_t err);

}  // namespace troupe::bridge::kafka::detail
