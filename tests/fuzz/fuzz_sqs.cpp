// Fuzz target: requests to the SQS endpoint (net/bridge/src/sqs_model.hpp), as
// any HTTP client may send them. The first byte picks the wire format (low
// bit: 0 the JSON protocol, 1 the query protocol) and, for the JSON protocol,
// the X-Amz-Target (the operation, or one that does not exist); the rest is
// the body.
//
// Invariants:
// - parse() returns a request or a failure, never throws or crashes;
// - a failure has both codes, a message and a 4xx status, and its error
//   bodies are valid JSON and printable XML, whatever the request quoted;
// - a request is within SQS's limits: at most 10 batch entries with distinct
//   ids, at most 10 message attributes, bodies non-empty UTF-8 of the
//   characters SQS allows and within the size limit, numbers in range;
// - a response made of the request's messages serializes in both formats,
//   and the JSON one parses back to the same bodies and attributes.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.hpp"
#include "sqs_model.hpp"

namespace {

namespace sqs = troupe::bridge::sqs::detail;

constexpr std::string_view actions[] = {"CreateQueue",
                                        "GetQueueUrl",
                                        "ListQueues",
                                        "DeleteQueue",
                                        "GetQueueAttributes",
                                        "PurgeQueue",
                                        "SendMessage",
                                        "SendMessageBatch",
                                        "ReceiveMessage",
                                        "DeleteMessage",
                                        "DeleteMessageBatch",
                                        "ChangeMessageVisibility",
                                        "ChangeMessageVisibilityBatch",
                                        "NoSuchAction"};

void check_request(const sqs::request& r, const sqs::limits& lim) {
  TROUPE_FUZZ_CHECK(r.sends.size() <= lim.max_batch_entries);
  TROUPE_FUZZ_CHECK(r.receipts.size() <= lim.max_batch_entries);
  std::size_t total = 0;
  for (const sqs::send_entry& e : r.sends) {
    TROUPE_FUZZ_CHECK(!e.body.empty() && sqs::valid_message_text(e.body));
    TROUPE_FUZZ_CHECK(e.attributes.size() <= lim.max_message_attributes);
    TROUPE_FUZZ_CHECK(!e.delay_seconds || (*e.delay_seconds >= 0 && *e.delay_seconds <= 900));
    total += e.body.size();
    for (const auto& [name, a] : e.attributes) {
      TROUPE_FUZZ_CHECK(!name.empty() && !a.value.empty() && !a.data_type.empty());
      total += name.size() + a.data_type.size() + a.value.size();
    }
  }
  TROUPE_FUZZ_CHECK(total <= lim.max_message_bytes);
  for (const sqs::receipt_entry& e : r.receipts) TROUPE_FUZZ_CHECK(!e.receipt.empty() && e.receipt.size() <= 1024);
  if (r.op == sqs::operation::send_message_batch) {
    for (std::size_t i = 0; i < r.sends.size(); ++i) {
      for (std::size_t k = i + 1; k < r.sends.size(); ++k) TROUPE_FUZZ_CHECK(r.sends[i].id != r.sends[k].id);
    }
  }
  if (r.op == sqs::operation::receive_message) {  // other operations ignore these
    TROUPE_FUZZ_CHECK(!r.max_messages || (*r.max_messages >= 1 && *r.max_messages <= 10));
    TROUPE_FUZZ_CHECK(!r.wait_seconds || (*r.wait_seconds >= 0 && *r.wait_seconds <= 20));
    TROUPE_FUZZ_CHECK(!r.visibility_timeout || (*r.visibility_timeout >= 0 && *r.visibility_timeout <= 43'200));
  }
  if (r.op == sqs::operation::create_queue || r.op == sqs::operation::get_queue_url) {
    TROUPE_FUZZ_CHECK(sqs::valid_queue_name(r.queue_name));
  }
}

// The request's messages, as ReceiveMessage would hand them back.
void check_answers(const sqs::request& r) {
  sqs::response out;
  out.op = sqs::operation::receive_message;
  for (const sqs::send_entry& e : r.sends) {
    out.messages.push_back(sqs::out_message{"id", "receipt", e.body, {{"SentTimestamp", "1"}}, e.attributes});
  }
  const sqs::encoded xml = sqs::serialize(sqs::wire::query, out, "request");
  TROUPE_FUZZ_CHECK(xml.body.starts_with("<?xml"));
  const sqs::encoded json = sqs::serialize(sqs::wire::json, out, "request");
  boost::system::error_code ec;
  const boost::json::value back = boost::json::parse(json.body, ec);
  TROUPE_FUZZ_CHECK(!ec && back.is_object());
  if (r.sends.empty()) return;
  const boost::json::array& messages = back.at("Messages").as_array();
  TROUPE_FUZZ_CHECK(messages.size() == r.sends.size());
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const boost::json::object& m = messages[i].as_object();
    TROUPE_FUZZ_CHECK(m.at("Body").as_string() == r.sends[i].body);
    TROUPE_FUZZ_CHECK(m.at("MD5OfBody").as_string() == sqs::md5_hex(r.sends[i].body));
    if (r.sends[i].attributes.empty()) continue;
    const boost::json::object& attributes = m.at("MessageAttributes").as_object();
    TROUPE_FUZZ_CHECK(attributes.size() == r.sends[i].attributes.size());
    for (const auto& [name, a] : r.sends[i].attributes) {
      const boost::json::object& v = attributes.at(name).as_object();
      TROUPE_FUZZ_CHECK(v.at("DataType").as_string() == a.data_type);
      if (a.binary()) {
        TROUPE_FUZZ_CHECK(sqs::base64_decode(v.at("BinaryValue").as_string()) == a.value);
      } else {
        TROUPE_FUZZ_CHECK(v.at("StringValue").as_string() == a.value);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const sqs::wire format = (data[0] & 1) != 0 ? sqs::wire::query : sqs::wire::json;
  const std::string target = "AmazonSQS." + std::string(actions[(data[0] >> 1) % std::size(actions)]);
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);  // NOLINT: bytes as chars
  sqs::limits lim;
  lim.max_message_bytes = 4096;
  const std::variant<sqs::request, sqs::failure> got = sqs::parse(format, target, body, lim);
  if (const auto* f = std::get_if<sqs::failure>(&got)) {
    TROUPE_FUZZ_CHECK(!f->code.empty() && !f->json_type.empty() && !f->message.empty());
    TROUPE_FUZZ_CHECK(f->status >= 400 && f->status < 500);
    boost::system::error_code ec;
    boost::json::parse(sqs::error_body(sqs::wire::json, *f, "r").body, ec);
    TROUPE_FUZZ_CHECK(!ec);
    // The XML error quotes the request only in printable ASCII.
    for (const char c : sqs::error_body(sqs::wire::query, *f, "r").body) TROUPE_FUZZ_CHECK(c >= ' ' && c <= '~');
    return 0;
  }
  const sqs::request& r = std::get<sqs::request>(got);
  check_request(r, lim);
  check_answers(r);
  return 0;
}
