// sqs_endpoint: troupe's durable queues served through the Amazon SQS API over
// HTTP (Boost.Beast, through troupe::gateway's server), so that AWS's own
// clients and SDKs work against it with --endpoint-url (docs/bridges.md, "SQS
// endpoint"). Owns: the queues' directory, one durable queue actor per SQS
// queue, and the HTTP listener. May use: troupe::durable, troupe::gateway.
//
//   troupe::bridge::sqs::endpoint_config cfg;
//   cfg.data_dir = "/var/lib/app/sqs";
//   auto ep = troupe::bridge::sqs::endpoint::start(sys, cfg).value();
//   // aws --endpoint-url http://127.0.0.1:<ep->port()> sqs create-queue --queue-name jobs
//   troupe::ref<troupe::durable::queue_protocol> jobs = ep->queue("jobs").value();   // the same queue, in process
//
// Both of SQS's wire formats on one port: the JSON protocol (POST
// application/x-amz-json-1.0 with X-Amz-Target: AmazonSQS.<Action>; today's
// SDKs) and the query protocol (POST application/x-www-form-urlencoded,
// Action=<Action>, XML answers; Debian 12's awscli 2.9 and boto3 1.26).
// Operations: CreateQueue, GetQueueUrl, ListQueues, DeleteQueue,
// GetQueueAttributes, PurgeQueue, SendMessage(Batch), ReceiveMessage (long
// polls held by the queue actor, no thread per request), DeleteMessage(Batch),
// ChangeMessageVisibility(Batch).
//
// Queues: queue URLs are http://<address>:<port>/<account>/<name>. Each queue
// is a durable queue (troupe/durable/queue.hpp) in <data_dir>/<name>.sqlite,
// with its SQS attributes in <name>.json beside it; an endpoint started on the
// same directory finds its queues again, with every message not deleted.
//
// Security: no authentication. Requests' SigV4 signatures are not checked
// (any access key works): this is a local or development endpoint, and it
// listens on 127.0.0.1 unless told otherwise. Every request is untrusted
// input: sizes, counts and values are checked as SQS checks them, and a bad
// request gets SQS's error for it without disturbing anyone else.
//
// Thread safety: start(), stop() and the destructor from one thread; port(),
// url(), queue_url() and queue() from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "troupe/durable/queue.hpp"
#include "troupe/runtime/error.hpp"
#include "troupe/runtime/ref.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::bridge::sqs {

struct endpoint_config {
  std::string address = "127.0.0.1";                     // loopback by default: there is no authentication
  std::uint16_t port = 0;                                // 0: a free port (see endpoint::port())
  std::string data_dir;                                  // required; created if missing
  std::string region = "us-east-1";                      // in QueueArn
  std::string account = "000000000000";                  // in queue URLs and QueueArn
  std::size_t max_request_bytes = std::size_t{1} << 20;  // a larger body is answered 413
  std::size_t max_connections = 256;
  std::size_t threads = 2;  // HTTP threads (handlers never block: long polls wait in the queue actors)
  std::size_t max_queues = 1000;
  // Defaults of a new queue, each overridden by CreateQueue's attributes.
  std::chrono::seconds visibility_timeout{30};
  std::uint32_t max_message_bytes = 256 * 1024;  // SQS's MaximumMessageSize (and its ceiling)
  bool full_sync = false;                        // durable::queue_config::full_sync for every queue
};

class endpoint {
 public:
  // Opens (or creates) data_dir, opens every queue found there, and listens.
  static expected<std::unique_ptr<endpoint>> start(troupe::system& sys, endpoint_config cfg);
  ~endpoint();  // stop()
  endpoint(const endpoint&) = delete;
  endpoint& operator=(const endpoint&) = delete;

  [[nodiscard]] std::uint16_t port() const;
  // "http://127.0.0.1:PORT": what a client's --endpoint-url takes.
  [[nodiscard]] std::string url() const;
  // "http://127.0.0.1:PORT/000000000000/<name>".
  [[nodiscard]] std::string queue_url(std::string_view name) const;
  // CreateQueue, in process: the queue's URL (an existing queue's if its
  // attributes are the same). Attributes as SQS names them (VisibilityTimeout,
  // RedrivePolicy, ...); errc::invalid_request with SQS's error otherwise.
  expected<std::string> create_queue(std::string_view name, const std::map<std::string, std::string>& attributes = {});
  // The actor behind the queue `name`, for in-process users; errc::no_such_actor if there is none.
  expected<ref<durable::queue_protocol>> queue(std::string_view name);
  // Closes the listener and the connections, then stops the queue actors
  // (their files stay). Idempotent.
  void stop();

  struct state;

 private:
  explicit endpoint(std::shared_ptr<state> s);
  std::shared_ptr<state> state_;
};

}  // namespace troupe::bridge::sqs
