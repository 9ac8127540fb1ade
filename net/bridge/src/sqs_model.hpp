// sqs_model: the SQS endpoint's request model, private to troupe::sqs_endpoint
// (and its fuzz target). Owns: the typed request and response of every
// operation served, the errors with their codes in both wire formats, one
// parser per wire format (SQS's JSON protocol and its older query protocol)
// producing the same `request`, one serializer per format, and the MD5 digests
// SQS clients check. May use: Boost.JSON (compiled into troupe::net), OpenSSL's
// libcrypto (MD5, SHA-256).
//
//   std::variant<request, failure> r = parse(wire::query, "", body, limits{});
//   if (auto* bad = std::get_if<failure>(&r)) return error_body(wire::query, *bad, "req-1");
//   ... run it ...  serialize(wire::query, response, "req-1");
//
// Every input is untrusted: lengths, counts (batches of at most 10 entries,
// 10 message attributes), numbers (their SQS ranges), names (queue, batch
// entry, attribute) and text (the characters SQS allows in a body) are checked
// by the parsers, and a request they return needs no further checking of its
// shape; only the queue it names is left to the executor.
//
// Thread safety: stateless functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::bridge::sqs::detail {

enum class wire {
  json,   // POST application/x-amz-json-1.0, X-Amz-Target: AmazonSQS.<Action>, JSON bodies
  query,  // POST application/x-www-form-urlencoded, Action=<Action>&Version=2012-11-05&..., XML answers
};

enum class operation {
  create_queue,
  get_queue_url,
  list_queues,
  delete_queue,
  get_queue_attributes,
  purge_queue,
  send_message,
  send_message_batch,
  receive_message,
  delete_message,
  delete_message_batch,
  change_message_visibility,
  change_message_visibility_batch,
};

// "SendMessage".
std::string_view action_name(operation op) noexcept;

// An error as SQS reports it: `code` is the query protocol's
// (<Error><Code>, "AWS.SimpleQueueService.NonExistentQueue"), `json_type` the
// JSON protocol's __type suffix ("QueueDoesNotExist").
struct failure {
  std::string code;
  std::string json_type;
  std::string message;
  unsigned status = 400;
  bool sender = true;  // false: the endpoint's fault (<Type>Receiver</Type>)
};

failure invalid_parameter(std::string message);  // InvalidParameterValue
failure missing_parameter(std::string_view name);
failure non_existent_queue(std::string_view url_or_name);
failure internal_error(std::string message);  // 500

// A message attribute: DataType String, Number or Binary, optionally with a
// custom label ("Number.int").
struct attribute_value {
  std::string data_type;
  std::string value;  // StringValue, or BinaryValue's bytes (decoded from base64)
  [[nodiscard]] bool binary() const noexcept { return data_type.starts_with("Binary"); }
};
using message_attributes = std::map<std::string, attribute_value>;

struct send_entry {
  std::string id;  // batch entries; empty for SendMessage
  std::string body;
  std::optional<std::int64_t> delay_seconds;
  message_attributes attributes;
  std::string group_id;
  std::string dedup_id;
};

struct receipt_entry {
  std::string id;  // batch entries; empty otherwise
  std::string receipt;
  std::int64_t visibility_timeout = 0;  // ChangeMessageVisibility(Batch)
};

struct request {
  operation op{};
  std::string queue_url;                             // every operation on one queue
  std::string queue_name;                            // CreateQueue, GetQueueUrl
  std::string name_prefix;                           // ListQueues
  std::optional<std::int64_t> max_results;           // ListQueues
  std::string next_token;                            // ListQueues
  std::map<std::string, std::string> attributes;     // CreateQueue
  std::vector<std::string> attribute_names;          // GetQueueAttributes, ReceiveMessage
  std::vector<std::string> message_attribute_names;  // ReceiveMessage
  std::vector<send_entry> sends;                     // SendMessage: one; SendMessageBatch: 1..10
  std::vector<receipt_entry> receipts;               // DeleteMessage, ChangeMessageVisibility (+Batch)
  std::optional<std::int64_t> max_messages;          // ReceiveMessage
  std::optional<std::int64_t> visibility_timeout;    // ReceiveMessage
  std::optional<std::int64_t> wait_seconds;          // ReceiveMessage
};

struct limits {
  std::size_t max_message_bytes = std::size_t{256} * 1024;  // body plus attributes, one message or a whole batch
  std::size_t max_batch_entries = 10;
  std::size_t max_message_attributes = 10;
  std::size_t max_parameters = 1000;  // query protocol: key=value pairs
  std::size_t max_json_depth = 8;
};

// `target`: the X-Amz-Target header (JSON protocol), ignored for the query protocol.
std::variant<request, failure> parse(wire format, std::string_view target, std::string_view body, const limits& lim);

// --- answers ----------------------------------------------------------------

struct out_message {
  std::string message_id;
  std::string receipt;
  std::string body;
  std::vector<std::pair<std::string, std::string>> attributes;  // system attributes asked for
  message_attributes user_attributes;                           // the message attributes asked for
};

struct entry_ok {
  std::string id;
  std::string message_id;  // sends
  std::string md5_of_body;
  std::string md5_of_attributes;  // empty: the message had none
};

struct entry_failed {
  std::string id;
  failure why;
};

struct response {
  operation op{};
  std::string queue_url;                                        // CreateQueue, GetQueueUrl
  std::vector<std::string> queue_urls;                          // ListQueues
  std::string next_token;                                       // ListQueues
  std::vector<std::pair<std::string, std::string>> attributes;  // GetQueueAttributes
  std::vector<entry_ok> ok;           // SendMessage: one; the batch operations: their successes
  std::vector<entry_failed> failed;   // the batch operations
  std::vector<out_message> messages;  // ReceiveMessage
};

// The answer's body and its content type.
struct encoded {
  std::string content_type;
  std::string body;
};
encoded serialize(wire format, const response& r, std::string_view request_id);
encoded error_body(wire format, const failure& f, std::string_view request_id);

// --- digests and names -------------------------------------------------------

std::string md5_hex(std::string_view bytes);
// MD5OfMessageAttributes as AWS computes it: for each attribute in name order,
// the name, the data type (each as a 4-byte big-endian length and its bytes),
// a transport byte (1 string/number, 2 binary) and the value (length, bytes).
// Empty for no attributes.
std::string md5_of_attributes(const message_attributes& attributes);
std::string sha256_hex(std::string_view bytes);

// 1 to 80 of [A-Za-z0-9_-], and ".fifo" at the end of a FIFO queue's name.
bool valid_queue_name(std::string_view name) noexcept;
// Text SQS accepts in a body: UTF-8 of #x9 #xA #xD [#x20-#xD7FF] [#xE000-#xFFFD] [#x10000-#x10FFFF].
bool valid_message_text(std::string_view text) noexcept;

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace troupe::bridge::sqs::detail
