// sqs_wire: the SQS endpoint's two wire formats (see sqs_model.hpp): the JSON
// protocol's and the query protocol's parsers into one `request`, the checks
// both share, and the JSON and XML serializers of `response` and `failure`.
// May use: Boost.JSON, OpenSSL's libcrypto.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <set>

#include "sqs_model.hpp"

namespace troupe::bridge::sqs::detail {

namespace json = boost::json;

namespace {

constexpr std::int64_t max_delay_seconds = 900;
constexpr std::int64_t max_visibility_seconds = 43'200;
constexpr std::int64_t max_wait_seconds = 20;

struct op_name {
  operation op;
  std::string_view name;
};
constexpr std::array<op_name, 13> operations{{
    {operation::create_queue, "CreateQueue"},
    {operation::get_queue_url, "GetQueueUrl"},
    {operation::list_queues, "ListQueues"},
    {operation::delete_queue, "DeleteQueue"},
    {operation::get_queue_attributes, "GetQueueAttributes"},
    {operation::purge_queue, "PurgeQueue"},
    {operation::send_message, "SendMessage"},
    {operation::send_message_batch, "SendMessageBatch"},
    {operation::receive_message, "ReceiveMessage"},
    {operation::delete_message, "DeleteMessage"},
    {operation::delete_message_batch, "DeleteMessageBatch"},
    {operation::change_message_visibility, "ChangeMessageVisibility"},
    {operation::change_message_visibility_batch, "ChangeMessageVisibilityBatch"},
}};

std::optional<operation> operation_named(std::string_view name) {
  for (const op_name& o : operations) {
    if (o.name == name) return o.op;
  }
  return std::nullopt;
}

failure make_failure(std::string code, std::string json_type, std::string message, unsigned status = 400) {
  return failure{std::move(code), std::move(json_type), std::move(message), status, true};
}

// A failure thrown out of the nested readers, caught at parse()'s boundary.
struct rejected {
  failure why;
};
[[noreturn]] void reject(failure f) { throw rejected{std::move(f)}; }
[[noreturn]] void reject_value(std::string message) { reject(invalid_parameter(std::move(message))); }

// What both parsers fill, whatever the wire: the fields of one operation.
// The parsers hand over a `fields` view; the builder turns it into a request.

bool batch_operation(operation op) {
  return op == operation::send_message_batch || op == operation::delete_message_batch ||
         op == operation::change_message_visibility_batch;
}

bool queue_operation(operation op) {
  return op != operation::create_queue && op != operation::get_queue_url && op != operation::list_queues;
}

std::int64_t to_integer(std::string_view text, std::string_view name) {
  std::int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || ptr != end) {
    reject_value("Value " + std::string(text.substr(0, 64)) + " for parameter " + std::string(name) +
                 " is invalid. Reason: not an integer.");
  }
  return v;
}

void check_range(std::int64_t v, std::int64_t low, std::int64_t high, std::string_view name) {
  if (v < low || v > high) {
    reject_value("Value " + std::to_string(v) + " for parameter " + std::string(name) +
                 " is invalid. Reason: must be between " + std::to_string(low) + " and " + std::to_string(high) + ".");
  }
}

bool valid_entry_id(std::string_view id) {
  if (id.empty() || id.size() > 80) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool valid_attribute_name(std::string_view name) {
  if (name.empty() || name.size() > 256 || name.front() == '.' || name.back() == '.') return false;
  if (name.find("..") != std::string_view::npos) return false;
  std::string lower(name.substr(0, 7));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  if (lower.starts_with("aws.") || lower.starts_with("amazon.")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

bool valid_data_type(std::string_view type) {
  if (type.size() > 256) return false;
  std::string_view base = type.substr(0, type.find('.'));
  if (base != "String" && base != "Number" && base != "Binary") return false;
  if (base.size() == type.size()) return true;
  const std::string_view label = type.substr(base.size() + 1);
  return !label.empty() && valid_message_text(label) && label.find_first_of("\t\r\n") == std::string_view::npos;
}

// Printable tokens: receipt handles, dedup and group ids (SQS: alphanumerics and punctuation).
bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 127; });
}

const std::set<std::string_view>& queue_attribute_names() {
  static const std::set<std::string_view> names{"All",
                                                "Policy",
                                                "VisibilityTimeout",
                                                "MaximumMessageSize",
                                                "MessageRetentionPeriod",
                                                "ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible",
                                                "CreatedTimestamp",
                                                "LastModifiedTimestamp",
                                                "QueueArn",
                                                "ApproximateNumberOfMessagesDelayed",
                                                "DelaySeconds",
                                                "ReceiveMessageWaitTimeSeconds",
                                                "RedrivePolicy",
                                                "FifoQueue",
                                                "ContentBasedDeduplication",
                                                "KmsMasterKeyId",
                                                "KmsDataKeyReusePeriodSeconds",
                                                "DeduplicationScope",
                                                "FifoThroughputLimit",
                                                "RedriveAllowPolicy",
                                                "SqsManagedSseEnabled"};
  return names;
}

const std::set<std::string_view>& message_system_attribute_names() {
  static const std::set<std::string_view> names{"All",
                                                "SenderId",
                                                "SentTimestamp",
                                                "ApproximateReceiveCount",
                                                "ApproximateFirstReceiveTimestamp",
                                                "SequenceNumber",
                                                "MessageDeduplicationId",
                                                "MessageGroupId",
                                                "AWSTraceHeader",
                                                "DeadLetterQueueSourceArn"};
  return names;
}

// The checks every request gets, whichever wire it came on.
void check_request(request& r, const limits& lim) {
  if (queue_operation(r.op)) {
    if (r.queue_url.empty()) reject(missing_parameter("QueueUrl"));
    if (r.queue_url.size() > 2048) reject_value("QueueUrl is longer than 2048 characters.");
  }
  if (r.op == operation::create_queue || r.op == operation::get_queue_url) {
    if (r.queue_name.empty()) reject(missing_parameter("QueueName"));
    if (!valid_queue_name(r.queue_name)) {
      reject_value(
          "Value for parameter QueueName is invalid. Reason: Can only include alphanumeric characters, "
          "hyphens, or underscores. 1 to 80 in length (a FIFO queue's ends in .fifo).");
    }
  }
  if (r.op == operation::list_queues) {
    if (r.name_prefix.size() > 80) reject_value("QueueNamePrefix is longer than 80 characters.");
    if (r.max_results) check_range(*r.max_results, 1, 1000, "MaxResults");
    if (r.next_token.size() > 256) reject_value("NextToken is invalid.");
  }
  if (r.op == operation::create_queue) {
    if (r.attributes.size() > 32) reject_value("Too many queue attributes.");
    for (const auto& [name, value] : r.attributes) {
      if (!queue_attribute_names().contains(name) || name == "All") {
        reject(make_failure("InvalidAttributeName", "InvalidAttributeName",
                            "Unknown Attribute " + name.substr(0, 64) + "."));
      }
      if (value.size() > 8192) reject_value("Value for attribute " + name + " is too long.");
    }
  }
  if (r.op == operation::get_queue_attributes) {
    if (r.attribute_names.size() > 32) reject_value("Too many AttributeNames.");
    for (const std::string& name : r.attribute_names) {
      if (!queue_attribute_names().contains(name)) {
        reject(make_failure("InvalidAttributeName", "InvalidAttributeName",
                            "Unknown Attribute " + name.substr(0, 64) + "."));
      }
    }
  }
  if (r.op == operation::receive_message) {
    if (r.max_messages) check_range(*r.max_messages, 1, 10, "MaxNumberOfMessages");
    if (r.visibility_timeout) check_range(*r.visibility_timeout, 0, max_visibility_seconds, "VisibilityTimeout");
    if (r.wait_seconds) check_range(*r.wait_seconds, 0, max_wait_seconds, "WaitTimeSeconds");
    if (r.attribute_names.size() > 32 || r.message_attribute_names.size() > 32)
      reject_value("Too many attribute names.");
    for (const std::string& name : r.attribute_names) {
      if (!message_system_attribute_names().contains(name)) {
        reject(make_failure("InvalidAttributeName", "InvalidAttributeName",
                            "Unknown Attribute " + name.substr(0, 64) + "."));
      }
    }
    for (const std::string& name : r.message_attribute_names) {
      if (name == "All" || name == ".*") continue;
      const std::string_view stem = name.ends_with(".*") ? std::string_view(name).substr(0, name.size() - 2) : name;
      if (!valid_attribute_name(stem)) reject_value("Message attribute name " + name.substr(0, 64) + " is invalid.");
    }
  }
  if (batch_operation(r.op)) {
    const std::size_t n = r.op == operation::send_message_batch ? r.sends.size() : r.receipts.size();
    if (n == 0) {
      reject(make_failure(
          "AWS.SimpleQueueService.EmptyBatchRequest", "EmptyBatchRequest",
          "There should be at least one " + std::string(action_name(r.op)) + "RequestEntry in the request."));
    }
    if (n > lim.max_batch_entries) {
      reject(make_failure("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest",
                          "Maximum number of entries per request are " + std::to_string(lim.max_batch_entries) +
                              ". You have sent " + std::to_string(n) + "."));
    }
    std::set<std::string_view> ids;
    const auto check_id = [&ids](const std::string& id) {
      if (!valid_entry_id(id)) {
        reject(make_failure("AWS.SimpleQueueService.InvalidBatchEntryId", "InvalidBatchEntryId",
                            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
                            "It can be at most 80 letters long."));
      }
      if (!ids.insert(id).second) {
        reject(make_failure("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct",
                            "Id " + id + " repeated."));
      }
    };
    for (const send_entry& e : r.sends) check_id(e.id);
    for (const receipt_entry& e : r.receipts) check_id(e.id);
  }
  if (r.op == operation::send_message || r.op == operation::send_message_batch) {
    if (r.op == operation::send_message && r.sends.size() != 1) reject(missing_parameter("MessageBody"));
    std::size_t total = 0;
    for (const send_entry& e : r.sends) {
      if (e.body.empty()) reject(missing_parameter("MessageBody"));
      if (!valid_message_text(e.body)) {
        reject(make_failure("InvalidMessageContents", "InvalidMessageContents",
                            "Invalid binary character in the message body: only UTF-8 of #x9, #xA, #xD, "
                            "#x20-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF are allowed."));
      }
      if (e.delay_seconds) check_range(*e.delay_seconds, 0, max_delay_seconds, "DelaySeconds");
      if (e.attributes.size() > lim.max_message_attributes) {
        reject_value("Number of message attributes [" + std::to_string(e.attributes.size()) +
                     "] exceeds the allowed maximum [" + std::to_string(lim.max_message_attributes) + "].");
      }
      std::size_t bytes = e.body.size();
      for (const auto& [name, a] : e.attributes) {
        if (!valid_attribute_name(name)) reject_value("Message attribute name " + name.substr(0, 64) + " is invalid.");
        if (a.data_type.empty())
          reject_value("The message attribute '" + name + "' must contain a non-empty DataType.");
        if (!valid_data_type(a.data_type)) {
          reject_value("The type of message attribute '" + name +
                       "' is invalid: String, Number or Binary, optionally with a .label.");
        }
        if (a.value.empty()) reject_value("The message attribute '" + name + "' must contain a non-empty value.");
        if (!a.binary() && !valid_message_text(a.value)) {
          reject(make_failure("InvalidMessageContents", "InvalidMessageContents",
                              "Invalid character in the value of message attribute '" + name + "'."));
        }
        if (a.data_type.starts_with("Number")) {
          const std::string& v = a.value;
          const bool numeric =
              v.size() <= 40 && std::all_of(v.begin(), v.end(), [](char c) {
                return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
              });
          if (!numeric) reject_value("Can't cast the value of message attribute '" + name + "' to a number.");
        }
        bytes += name.size() + a.data_type.size() + a.value.size();
      }
      if (bytes > lim.max_message_bytes) {
        reject_value("One or more parameters are invalid. Reason: Message must be shorter than " +
                     std::to_string(lim.max_message_bytes) + " bytes.");
      }
      total += bytes;
      if (e.group_id.size() > 128 || !printable(e.group_id))
        reject_value("MessageGroupId is invalid (1 to 128 printable characters).");
      if (e.dedup_id.size() > 128 || !printable(e.dedup_id)) {
        reject_value("MessageDeduplicationId is invalid (1 to 128 printable characters).");
      }
    }
    if (r.op == operation::send_message_batch && total > lim.max_message_bytes) {
      reject(make_failure("AWS.SimpleQueueService.BatchRequestTooLong", "BatchRequestTooLong",
                          "Batch requests cannot be longer than " + std::to_string(lim.max_message_bytes) +
                              " bytes. You have sent " + std::to_string(total) + " bytes."));
    }
  }
  if (r.op == operation::delete_message || r.op == operation::change_message_visibility ||
      r.op == operation::delete_message_batch || r.op == operation::change_message_visibility_batch) {
    if ((r.op == operation::delete_message || r.op == operation::change_message_visibility) && r.receipts.size() != 1) {
      reject(missing_parameter("ReceiptHandle"));
    }
    for (const receipt_entry& e : r.receipts) {
      if (e.receipt.empty()) reject(missing_parameter("ReceiptHandle"));
      if (e.receipt.size() > 1024 || !printable(e.receipt)) {
        reject(make_failure(
            "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
            "The input receipt handle \"" + e.receipt.substr(0, 64) + "\" is not a valid receipt handle."));
      }
      if (r.op == operation::change_message_visibility || r.op == operation::change_message_visibility_batch) {
        check_range(e.visibility_timeout, 0, max_visibility_seconds, "VisibilityTimeout");
      }
    }
  }
}

// --- the JSON protocol ---------------------------------------------------------

const json::value* member(const json::object& o, std::string_view name) {
  const auto it = o.find(name);
  if (it == o.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

std::string json_string(const json::object& o, std::string_view name) {
  const json::value* v = member(o, name);
  if (v == nullptr) return {};
  if (!v->is_string()) reject_value("The value of " + std::string(name) + " must be a string.");
  return std::string(v->get_string());
}

std::optional<std::int64_t> json_integer(const json::object& o, std::string_view name) {
  const json::value* v = member(o, name);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) reject_value("The value of " + std::string(name) + " is out of range.");
  if (v->is_string()) return to_integer(v->get_string(), name);  // some SDKs quote numbers
  reject_value("The value of " + std::string(name) + " must be an integer.");
}

const json::object* json_object(const json::object& o, std::string_view name) {
  const json::value* v = member(o, name);
  if (v == nullptr) return nullptr;
  if (!v->is_object()) reject_value("The value of " + std::string(name) + " must be an object.");
  return &v->get_object();
}

const json::array* json_array(const json::object& o, std::string_view name, std::size_t max) {
  const json::value* v = member(o, name);
  if (v == nullptr) return nullptr;
  if (!v->is_array()) reject_value("The value of " + std::string(name) + " must be a list.");
  if (v->get_array().size() > max) {
    if (name == "Entries") {
      reject(make_failure("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest",
                          "Maximum number of entries per request are " + std::to_string(max) + ". You have sent " +
                              std::to_string(v->get_array().size()) + "."));
    }
    reject_value("Too many values in " + std::string(name) + ".");
  }
  return &v->get_array();
}

std::vector<std::string> json_strings(const json::object& o, std::string_view name) {
  std::vector<std::string> out;
  if (const json::array* a = json_array(o, name, 64)) {
    for (const json::value& v : *a) {
      if (!v.is_string()) reject_value("The values of " + std::string(name) + " must be strings.");
      out.emplace_back(v.get_string());
    }
  }
  return out;
}

message_attributes json_message_attributes(const json::object& o, const limits& lim) {
  message_attributes out;
  const json::object* m = json_object(o, "MessageAttributes");
  if (m == nullptr) return out;
  if (m->size() > lim.max_message_attributes) {
    reject_value("Number of message attributes [" + std::to_string(m->size()) + "] exceeds the allowed maximum [" +
                 std::to_string(lim.max_message_attributes) + "].");
  }
  for (const auto& kv : *m) {
    const std::string name(kv.key());
    if (!kv.value().is_object()) reject_value("The message attribute '" + name.substr(0, 64) + "' must be an object.");
    const json::object& a = kv.value().get_object();
    attribute_value v;
    v.data_type = json_string(a, "DataType");
    if (v.binary()) {
      const std::string text = json_string(a, "BinaryValue");
      std::optional<std::string> bytes = base64_decode(text);
      if (!bytes) reject_value("The BinaryValue of message attribute '" + name.substr(0, 64) + "' is not base64.");
      v.value = std::move(*bytes);
    } else {
      v.value = json_string(a, "StringValue");
    }
    out.emplace(name, std::move(v));
  }
  return out;
}

send_entry json_send_entry(const json::object& o, const limits& lim) {
  send_entry e;
  e.id = json_string(o, "Id");
  e.body = json_string(o, "MessageBody");
  e.delay_seconds = json_integer(o, "DelaySeconds");
  e.attributes = json_message_attributes(o, lim);
  e.group_id = json_string(o, "MessageGroupId");
  e.dedup_id = json_string(o, "MessageDeduplicationId");
  return e;
}

receipt_entry json_receipt_entry(const json::object& o) {
  receipt_entry e;
  e.id = json_string(o, "Id");
  e.receipt = json_string(o, "ReceiptHandle");
  e.visibility_timeout = json_integer(o, "VisibilityTimeout").value_or(-1);
  return e;
}

request parse_json_request(std::string_view target, std::string_view body, const limits& lim) {
  constexpr std::string_view prefix = "AmazonSQS.";
  if (target.empty()) reject(missing_parameter("X-Amz-Target"));
  const std::optional<operation> op =
      target.starts_with(prefix) ? operation_named(target.substr(prefix.size())) : std::nullopt;
  if (!op) {
    reject(make_failure("InvalidAction", "InvalidAction",
                        "The action " + std::string(target.substr(0, 80)) + " is not valid for this endpoint."));
  }
  json::parse_options options;
  options.max_depth = lim.max_json_depth;
  boost::system::error_code ec;
  json::monotonic_resource resource;
  const json::value doc = json::parse(body.empty() ? std::string_view("{}") : body, ec, &resource, options);
  if (ec)
    reject(make_failure("SerializationException", "SerializationException",
                        "The request body is not JSON: " + ec.message() + "."));
  if (!doc.is_object())
    reject(make_failure("SerializationException", "SerializationException", "The request body must be a JSON object."));
  const json::object& o = doc.get_object();
  request r;
  r.op = *op;
  r.queue_url = json_string(o, "QueueUrl");
  r.queue_name = json_string(o, "QueueName");
  r.name_prefix = json_string(o, "QueueNamePrefix");
  r.next_token = json_string(o, "NextToken");
  r.max_results = json_integer(o, "MaxResults");
  if (const json::object* a = json_object(o, "Attributes")) {
    if (a->size() > 32) reject_value("Too many queue attributes.");
    for (const auto& kv : *a) {
      if (!kv.value().is_string()) reject_value("Queue attribute values must be strings.");
      r.attributes.emplace(std::string(kv.key()), std::string(kv.value().get_string()));
    }
  }
  r.attribute_names = json_strings(o, "AttributeNames");
  for (std::string& name : json_strings(o, "MessageSystemAttributeNames")) r.attribute_names.push_back(std::move(name));
  r.message_attribute_names = json_strings(o, "MessageAttributeNames");
  r.max_messages = json_integer(o, "MaxNumberOfMessages");
  r.visibility_timeout = json_integer(o, "VisibilityTimeout");
  r.wait_seconds = json_integer(o, "WaitTimeSeconds");
  switch (r.op) {
    case operation::send_message:
      if (member(o, "MessageBody") != nullptr) r.sends.push_back(json_send_entry(o, lim));
      break;
    case operation::delete_message:
    case operation::change_message_visibility:
      if (member(o, "ReceiptHandle") != nullptr) {
        receipt_entry e = json_receipt_entry(o);
        if (r.op == operation::change_message_visibility) {
          if (!r.visibility_timeout) reject(missing_parameter("VisibilityTimeout"));
          e.visibility_timeout = *r.visibility_timeout;
        }
        r.receipts.push_back(std::move(e));
      }
      break;
    case operation::send_message_batch:
    case operation::delete_message_batch:
    case operation::change_message_visibility_batch:
      if (const json::array* entries = json_array(o, "Entries", lim.max_batch_entries)) {
        for (const json::value& v : *entries) {
          if (!v.is_object()) reject_value("Batch entries must be objects.");
          if (r.op == operation::send_message_batch) {
            r.sends.push_back(json_send_entry(v.get_object(), lim));
          } else {
            receipt_entry e = json_receipt_entry(v.get_object());
            if (r.op == operation::change_message_visibility_batch && e.visibility_timeout < 0) {
              reject(missing_parameter("VisibilityTimeout"));
            }
            r.receipts.push_back(std::move(e));
          }
        }
      }
      break;
    default:
      break;
  }
  return r;
}

// --- the query protocol --------------------------------------------------------

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      const int hi = i + 2 < s.size() ? hex_digit(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) reject_value("Malformed percent-encoding in the request body.");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

using form = std::map<std::string, std::string, std::less<>>;

form parse_form(std::string_view body, const limits& lim) {
  form out;
  std::size_t count = 0;
  while (!body.empty()) {
    const std::size_t amp = body.find('&');
    const std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty()) continue;
    if (++count > lim.max_parameters)
      reject_value("Too many parameters (more than " + std::to_string(lim.max_parameters) + ").");
    const std::size_t eq = pair.find('=');
    std::string key = url_decode(pair.substr(0, eq));
    std::string value = eq == std::string_view::npos ? std::string{} : url_decode(pair.substr(eq + 1));
    if (key.empty() || key.size() > 256) reject_value("A parameter name is empty or too long.");
    if (!out.emplace(std::move(key), std::move(value)).second) reject_value("A parameter is given twice.");
  }
  return out;
}

std::string form_string(const form& f, std::string_view key) {
  const auto it = f.find(key);
  return it == f.end() ? std::string{} : it->second;
}

std::optional<std::int64_t> form_integer(const form& f, std::string_view key) {
  const auto it = f.find(key);
  if (it == f.end()) return std::nullopt;
  return to_integer(it->second, key);
}

// "Prefix.N.Rest" -> {N: {Rest: value}} for N in 1..max (decimal, no leading
// zero); "Prefix.N" -> {N: {"": value}}.
std::map<std::size_t, form> indexed(const form& f, std::string_view prefix, std::size_t max) {
  std::map<std::size_t, form> out;
  const std::string start = std::string(prefix) + ".";
  for (auto it = f.lower_bound(start); it != f.end() && it->first.starts_with(start); ++it) {
    const std::string_view rest = std::string_view(it->first).substr(start.size());
    const std::size_t dot = rest.find('.');
    const std::string_view digits = rest.substr(0, dot);
    std::size_t n = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || digits.front() == '0' || ec != std::errc{} || ptr != digits.data() + digits.size() ||
        n == 0) {
      reject_value("Malformed list parameter " + it->first.substr(0, 80) + ".");
    }
    if (n > max) {
      if (prefix.ends_with("RequestEntry")) {
        reject(
            make_failure("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest",
                         "Maximum number of entries per request are " + std::to_string(max) + ". You have sent more."));
      }
      reject_value("Too many values in " + std::string(prefix) + ".");
    }
    out[n].emplace(dot == std::string_view::npos ? std::string{} : std::string(rest.substr(dot + 1)), it->second);
  }
  // Numbered from 1 without gaps, as SDKs send them.
  std::size_t expected = 1;
  for (const auto& entry : out) {
    if (entry.first != expected++)
      reject_value("The entries of " + std::string(prefix) + " are not numbered 1, 2, 3...");
  }
  return out;
}

std::vector<std::string> form_strings(const form& f, std::string_view prefix) {
  std::vector<std::string> out;
  for (auto& [n, values] : indexed(f, prefix, 64)) {
    const auto it = values.find("");
    if (it == values.end() || values.size() != 1) reject_value("Malformed list parameter " + std::string(prefix) + ".");
    out.push_back(it->second);
  }
  return out;
}

message_attributes form_message_attributes(const form& f, const limits& lim) {
  message_attributes out;
  for (auto& [n, fields] : indexed(f, "MessageAttribute", lim.max_message_attributes)) {
    attribute_value v;
    const std::string name = form_string(fields, "Name");
    if (name.empty()) reject(missing_parameter("MessageAttribute." + std::to_string(n) + ".Name"));
    v.data_type = form_string(fields, "Value.DataType");
    if (v.binary()) {
      std::optional<std::string> bytes = base64_decode(form_string(fields, "Value.BinaryValue"));
      if (!bytes) reject_value("The BinaryValue of message attribute '" + name.substr(0, 64) + "' is not base64.");
      v.value = std::move(*bytes);
    } else {
      v.value = form_string(fields, "Value.StringValue");
    }
    if (!out.emplace(name, std::move(v)).second)
      reject_value("Message attribute name '" + name.substr(0, 64) + "' is repeated.");
  }
  return out;
}

send_entry form_send_entry(const form& f, const limits& lim) {
  send_entry e;
  e.id = form_string(f, "Id");
  e.body = form_string(f, "MessageBody");
  e.delay_seconds = form_integer(f, "DelaySeconds");
  e.attributes = form_message_attributes(f, lim);
  e.group_id = form_string(f, "MessageGroupId");
  e.dedup_id = form_string(f, "MessageDeduplicationId");
  return e;
}

receipt_entry form_receipt_entry(const form& f) {
  receipt_entry e;
  e.id = form_string(f, "Id");
  e.receipt = form_string(f, "ReceiptHandle");
  e.visibility_timeout = form_integer(f, "VisibilityTimeout").value_or(-1);
  return e;
}

request parse_query_request(std::string_view body, const limits& lim) {
  const form f = parse_form(body, lim);
  const std::string action = form_string(f, "Action");
  if (action.empty()) reject(missing_parameter("Action"));
  const std::optional<operation> op = operation_named(action);
  if (!op) {
    reject(make_failure("InvalidAction", "InvalidAction",
                        "The action " + action.substr(0, 80) + " is not valid for this endpoint."));
  }
  if (const auto v = f.find("Version"); v != f.end() && v->second != "2012-11-05") {
    reject(make_failure("NoSuchVersion", "NoSuchVersion",
                        "An invalid or out-of-range value was supplied for the Version parameter."));
  }
  request r;
  r.op = *op;
  r.queue_url = form_string(f, "QueueUrl");
  r.queue_name = form_string(f, "QueueName");
  r.name_prefix = form_string(f, "QueueNamePrefix");
  r.next_token = form_string(f, "NextToken");
  r.max_results = form_integer(f, "MaxResults");
  for (auto& [n, fields] : indexed(f, "Attribute", 32)) {
    const std::string name = form_string(fields, "Name");
    if (name.empty()) reject(missing_parameter("Attribute." + std::to_string(n) + ".Name"));
    if (!r.attributes.emplace(name, form_string(fields, "Value")).second)
      reject_value("Attribute " + name.substr(0, 64) + " is repeated.");
  }
  r.attribute_names = form_strings(f, "AttributeName");
  for (std::string& name : form_strings(f, "MessageSystemAttributeName")) r.attribute_names.push_back(std::move(name));
  r.message_attribute_names = form_strings(f, "MessageAttributeName");
  r.max_messages = form_integer(f, "MaxNumberOfMessages");
  r.visibility_timeout = form_integer(f, "VisibilityTimeout");
  r.wait_seconds = form_integer(f, "WaitTimeSeconds");
  switch (r.op) {
    case operation::send_message:
      if (f.contains("MessageBody")) r.sends.push_back(form_send_entry(f, lim));
      break;
    case operation::delete_message:
    case operation::change_message_visibility:
      if (f.contains("ReceiptHandle")) {
        receipt_entry e = form_receipt_entry(f);
        if (r.op == operation::change_message_visibility) {
          if (!r.visibility_timeout) reject(missing_parameter("VisibilityTimeout"));
          e.visibility_timeout = *r.visibility_timeout;
        }
        r.receipts.push_back(std::move(e));
      }
      break;
    case operation::send_message_batch:
      for (auto& [n, fields] : indexed(f, "SendMessageBatchRequestEntry", lim.max_batch_entries)) {
        r.sends.push_back(form_send_entry(fields, lim));
      }
      break;
    case operation::delete_message_batch:
    case operation::change_message_visibility_batch: {
      const std::string prefix = std::string(action_name(r.op)) + "RequestEntry";
      for (auto& [n, fields] : indexed(f, prefix, lim.max_batch_entries)) {
        receipt_entry e = form_receipt_entry(fields);
        if (r.op == operation::change_message_visibility_batch && e.visibility_timeout < 0) {
          reject(missing_parameter(prefix + "." + std::to_string(n) + ".VisibilityTimeout"));
        }
        r.receipts.push_back(std::move(e));
      }
      break;
    }
    default:
      break;
  }
  return r;
}

// --- serializers ------------------------------------------------------------------

// An error's message may quote the request (a name, a value): printable ASCII
// only, so that it is valid UTF-8 in JSON and a valid character in XML.
std::string printable_message(std::string_view text) {
  std::string out(text.substr(0, 1024));
  for (char& c : out) {
    if (c < ' ' || c > '~') c = '?';
  }
  return out;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':
        out += "&#xD;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

void element(std::string& out, std::string_view name, std::string_view text) {
  out += '<';
  out += name;
  out += '>';
  out += xml_escape(text);
  out += "</";
  out += name;
  out += '>';
}

json::object json_message_attribute_map(const message_attributes& attributes) {
  json::object out;
  for (const auto& [name, a] : attributes) {
    json::object v;
    v["DataType"] = a.data_type;
    if (a.binary()) {
      v["BinaryValue"] = base64_encode(a.value);
    } else {
      v["StringValue"] = a.value;
    }
    out[name] = std::move(v);
  }
  return out;
}

json::array json_failed(const std::vector<entry_failed>& failed) {
  json::array out;
  for (const entry_failed& f : failed) {
    out.push_back(json::object{{"Id", f.id},
                               {"SenderFault", f.why.sender},
                               {"Code", f.why.json_type},
                               {"Message", printable_message(f.why.message)}});
  }
  return out;
}

std::string to_json(const response& r) {
  json::object o;
  switch (r.op) {
    case operation::create_queue:
    case operation::get_queue_url:
      o["QueueUrl"] = r.queue_url;
      break;
    case operation::list_queues: {
      json::array urls;
      for (const std::string& u : r.queue_urls) urls.emplace_back(u);
      o["QueueUrls"] = std::move(urls);
      if (!r.next_token.empty()) o["NextToken"] = r.next_token;
      break;
    }
    case operation::get_queue_attributes: {
      json::object a;
      for (const auto& [k, v] : r.attributes) a[k] = v;
      o["Attributes"] = std::move(a);
      break;
    }
    case operation::send_message:
      if (!r.ok.empty()) {
        o["MessageId"] = r.ok.front().message_id;
        o["MD5OfMessageBody"] = r.ok.front().md5_of_body;
        if (!r.ok.front().md5_of_attributes.empty()) o["MD5OfMessageAttributes"] = r.ok.front().md5_of_attributes;
      }
      break;
    case operation::send_message_batch:
    case operation::delete_message_batch:
    case operation::change_message_visibility_batch: {
      json::array ok;
      for (const entry_ok& e : r.ok) {
        json::object entry{{"Id", e.id}};
        if (r.op == operation::send_message_batch) {
          entry["MessageId"] = e.message_id;
          entry["MD5OfMessageBody"] = e.md5_of_body;
          if (!e.md5_of_attributes.empty()) entry["MD5OfMessageAttributes"] = e.md5_of_attributes;
        }
        ok.push_back(std::move(entry));
      }
      o["Successful"] = std::move(ok);
      o["Failed"] = json_failed(r.failed);
      break;
    }
    case operation::receive_message: {
      json::array messages;
      for (const out_message& m : r.messages) {
        json::object jm{{"MessageId", m.message_id},
                        {"ReceiptHandle", m.receipt},
                        {"MD5OfBody", md5_hex(m.body)},
                        {"Body", m.body}};
        if (!m.attributes.empty()) {
          json::object a;
          for (const auto& [k, v] : m.attributes) a[k] = v;
          jm["Attributes"] = std::move(a);
        }
        if (!m.user_attributes.empty()) {
          jm["MD5OfMessageAttributes"] = md5_of_attributes(m.user_attributes);
          jm["MessageAttributes"] = json_message_attribute_map(m.user_attributes);
        }
        messages.push_back(std::move(jm));
      }
      if (!messages.empty()) o["Messages"] = std::move(messages);
      break;
    }
    default:
      break;
  }
  return json::serialize(o);
}

void xml_failed(std::string& out, const std::vector<entry_failed>& failed) {
  for (const entry_failed& f : failed) {
    out += "<BatchResultErrorEntry>";
    element(out, "Id", f.id);
    element(out, "SenderFault", f.why.sender ? "true" : "false");
    element(out, "Code", f.why.code);
    element(out, "Message", printable_message(f.why.message));
    out += "</BatchResultErrorEntry>";
  }
}

std::string to_xml(const response& r, std::string_view request_id) {
  const std::string action(action_name(r.op));
  std::string out =
      "<?xml version=\"1.0\"?><" + action + "Response xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">";
  std::string result;
  bool has_result = true;
  switch (r.op) {
    case operation::create_queue:
    case operation::get_queue_url:
      element(result, "QueueUrl", r.queue_url);
      break;
    case operation::list_queues:
      for (const std::string& u : r.queue_urls) element(result, "QueueUrl", u);
      if (!r.next_token.empty()) element(result, "NextToken", r.next_token);
      break;
    case operation::get_queue_attributes:
      for (const auto& [k, v] : r.attributes) {
        result += "<Attribute>";
        element(result, "Name", k);
        element(result, "Value", v);
        result += "</Attribute>";
      }
      break;
    case operation::send_message:
      if (!r.ok.empty()) {
        element(result, "MessageId", r.ok.front().message_id);
        element(result, "MD5OfMessageBody", r.ok.front().md5_of_body);
        if (!r.ok.front().md5_of_attributes.empty())
          element(result, "MD5OfMessageAttributes", r.ok.front().md5_of_attributes);
      }
      break;
    case operation::send_message_batch:
    case operation::delete_message_batch:
    case operation::change_message_visibility_batch:
      for (const entry_ok& e : r.ok) {
        result += "<" + action + "ResultEntry>";
        element(result, "Id", e.id);
        if (r.op == operation::send_message_batch) {
          element(result, "MessageId", e.message_id);
          element(result, "MD5OfMessageBody", e.md5_of_body);
          if (!e.md5_of_attributes.empty()) element(result, "MD5OfMessageAttributes", e.md5_of_attributes);
        }
        result += "</" + action + "ResultEntry>";
      }
      xml_failed(result, r.failed);
      break;
    case operation::receive_message:
      for (const out_message& m : r.messages) {
        result += "<Message>";
        element(result, "MessageId", m.message_id);
        element(result, "ReceiptHandle", m.receipt);
        element(result, "MD5OfBody", md5_hex(m.body));
        element(result, "Body", m.body);
        for (const auto& [k, v] : m.attributes) {
          result += "<Attribute>";
          element(result, "Name", k);
          element(result, "Value", v);
          result += "</Attribute>";
        }
        if (!m.user_attributes.empty()) {
          element(result, "MD5OfMessageAttributes", md5_of_attributes(m.user_attributes));
          for (const auto& [name, a] : m.user_attributes) {
            result += "<MessageAttribute>";
            element(result, "Name", name);
            result += "<Value>";
            element(result, a.binary() ? "BinaryValue" : "StringValue", a.binary() ? base64_encode(a.value) : a.value);
            element(result, "DataType", a.data_type);
            result += "</Value></MessageAttribute>";
          }
        }
        result += "</Message>";
      }
      break;
    default:
      has_result = false;
      break;
  }
  if (has_result) out += "<" + action + "Result>" + result + "</" + action + "Result>";
  out += "<ResponseMetadata>";
  element(out, "RequestId", request_id);
  out += "</ResponseMetadata></" + action + "Response>";
  return out;
}

}  // namespace

std::string_view action_name(operation op) noexcept {
  for (const op_name& o : operations) {
    if (o.op == op) return o.name;
  }
  return "Unknown";
}

failure invalid_parameter(std::string message) {
  return make_failure("InvalidParameterValue", "InvalidParameterValue", std::move(message));
}
failure missing_parameter(std::string_view name) {
  return make_failure("MissingParameter", "MissingParameter",
                      "The request must contain the parameter " + std::string(name) + ".");
}
failure non_existent_queue(std::string_view url_or_name) {
  return make_failure("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                      "The specified queue does not exist: " + std::string(url_or_name.substr(0, 256)) + ".");
}
failure internal_error(std::string message) {
  failure f = make_failure("InternalError", "InternalError", std::move(message), 500);
  f.sender = false;
  return f;
}

std::variant<request, failure> parse(wire format, std::string_view target, std::string_view body, const limits& lim) {
  try {
    request r = format == wire::json ? parse_json_request(target, body, lim) : parse_query_request(body, lim);
    check_request(r, lim);
    return r;
  } catch (rejected& r) {
    return std::move(r.why);
  } catch (const std::exception& e) {  // bad_alloc, length_error: still the request's fault only
    return invalid_parameter(std::string("The request could not be read: ") + e.what());
  }
}

encoded serialize(wire format, const response& r, std::string_view request_id) {
  if (format == wire::json) return {"application/x-amz-json-1.0", to_json(r)};
  return {"text/xml", to_xml(r, request_id)};
}

encoded error_body(wire format, const failure& f, std::string_view request_id) {
  if (format == wire::json) {
    json::object o{{"__type", "com.amazonaws.sqs#" + f.json_type}, {"message", printable_message(f.message)}};
    return {"application/x-amz-json-1.0", json::serialize(o)};
  }
  std::string out =
      "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><Error>";
  element(out, "Type", f.sender ? "Sender" : "Receiver");
  element(out, "Code", f.code);
  element(out, "Message", printable_message(f.message));
  out += "<Detail/></Error>";
  element(out, "RequestId", request_id);
  out += "</ErrorResponse>";
  return {"text/xml", std::move(out)};
}

// --- digests, names, base64 -------------------------------------------------------

namespace {
std::string digest_hex(const EVP_MD* md, std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &size, md, nullptr) != 1) return {};
  static constexpr std::string_view hex = "0123456789abcdef";
  std::string text;
  text.reserve(std::size_t{size} * 2);
  for (unsigned int i = 0; i < size; ++i) {
    text.push_back(hex[out[i] >> 4]);
    text.push_back(hex[out[i] & 15]);
  }
  return text;
}

void append_length_prefixed(std::string& out, std::string_view bytes) {
  const auto n = static_cast<std::uint32_t>(bytes.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(bytes);
}
}  // namespace

std::string md5_hex(std::string_view bytes) { return digest_hex(EVP_md5(), bytes); }
std::string sha256_hex(std::string_view bytes) { return digest_hex(EVP_sha256(), bytes); }

std::string md5_of_attributes(const message_attributes& attributes) {
  if (attributes.empty()) return {};
  std::string buffer;
  for (const auto& [name, a] : attributes) {  // std::map: in name order
    append_length_prefixed(buffer, name);
    append_length_prefixed(buffer, a.data_type);
    buffer.push_back(a.binary() ? '\2' : '\1');
    append_length_prefixed(buffer, a.value);
  }
  return md5_hex(buffer);
}

bool valid_queue_name(std::string_view name) noexcept {
  if (name.size() > 80) return false;
  if (name.ends_with(".fifo")) name.remove_suffix(5);
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool valid_message_text(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());  // NOLINT: bytes of UTF-8
  const auto* end = p + text.size();
  while (p < end) {
    const unsigned char c = *p;
    std::uint32_t cp = 0;
    int more = 0;
    if (c < 0x80) {
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      cp = c & 0x1f;
      more = 1;
    } else if ((c & 0xf0) == 0xe0) {
      cp = c & 0x0f;
      more = 2;
    } else if ((c & 0xf8) == 0xf0) {
      cp = c & 0x07;
      more = 3;
    } else {
      return false;
    }
    if (end - p <= more) return false;
    for (int i = 1; i <= more; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    // Overlong forms, surrogates and the characters SQS refuses.
    if ((more == 1 && cp < 0x80) || (more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000)) return false;
    const bool allowed = cp == 0x9 || cp == 0xa || cp == 0xd || (cp >= 0x20 && cp <= 0xd7ff) ||
                         (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
    if (!allowed) return false;
    p += more + 1;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<std::uint8_t>(bytes[i]) << 16) |
                            (static_cast<std::uint8_t>(bytes[i + 1]) << 8) | static_cast<std::uint8_t>(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const std::uint32_t v = static_cast<std::uint8_t>(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const std::uint32_t v =
        (static_cast<std::uint8_t>(bytes[i]) << 16) | (static_cast<std::uint8_t>(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int pad = last ? (text[i + 3] == '=' ? (text[i + 2] == '=' ? 2 : 1) : 0) : 0;
    std::uint32_t v = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const int d = k >= 4 - static_cast<std::size_t>(pad) ? 0 : value(text[i + k]);
      if (d < 0) return std::nullopt;
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((v >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(v & 0xff));
  }
  return out;
}

}  // namespace troupe::bridge::sqs::detail
