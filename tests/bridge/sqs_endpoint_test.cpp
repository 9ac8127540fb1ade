// The SQS endpoint (net/bridge/include/troupe/bridge/sqs_endpoint.hpp):
// (1) raw HTTP requests in both wire formats (the JSON protocol and the query
// protocol) for every operation, their errors and bad input; (2) the real
// clients of Debian 12, awscli (/usr/bin/aws) and boto3
// (tests/bridge/sqs_boto3_check.py under /usr/bin/python3), as child
// processes; (3) an endpoint restarted on the same directory. The clients'
// tests skip without the packages unless TROUPE_REQUIRE_BROKERS=1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <troupe/bridge/sqs_endpoint.hpp>
#include <troupe/troupe.hpp>
#include <vector>

#include "sqs_model.hpp"
#include "support/child_process.hpp"
#include "support/scratch_dir.hpp"
#include "support/watchdog.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace sqs = troupe::bridge::sqs;
using namespace std::chrono_literals;
using namespace troupe::test_support;  // NOLINT(google-build-using-namespace): scratch_dir, watchdog, run_command

struct answer {
  unsigned status = 0;
  std::string content_type;
  std::string body;
  std::string query_error;  // the x-amzn-query-error header
};

// One request on a connection of its own.
answer post(std::uint16_t port, const std::string& content_type, const std::string& body,
            const std::string& amz_target = {}, const std::string& target = "/") {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> request(http::verb::post, target, 11);
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  request.set(http::field::content_type, content_type);
  if (!amz_target.empty()) request.set("X-Amz-Target", amz_target);
  request.keep_alive(false);
  request.body() = body;
  request.prepare_payload();
  http::write(socket, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return answer{response.result_int(), std::string(response[http::field::content_type]), response.body(),
                std::string(response["x-amzn-query-error"])};
}

std::string form_escape(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      static constexpr std::string_view hex = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 15]);
    }
  }
  return out;
}

// The text of the first <name>...</name> in `xml` (no nesting), empty if none.
std::string xml_text(const std::string& xml, const std::string& name, std::size_t nth = 0) {
  std::size_t at = 0;
  for (std::size_t i = 0;; ++i) {
    at = xml.find("<" + name + ">", at);
    if (at == std::string::npos) return {};
    at += name.size() + 2;
    if (i == nth) break;
  }
  const std::size_t end = xml.find("</" + name + ">", at);
  std::string text = xml.substr(at, end - at);
  for (const auto& [entity, c] : std::vector<std::pair<std::string, std::string>>{
           {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&#xD;", "\r"}, {"&amp;", "&"}}) {
    for (std::size_t p = text.find(entity); p != std::string::npos; p = text.find(entity, p + c.size())) {
      text.replace(p, entity.size(), c);
    }
  }
  return text;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

class sqs_endpoint_test : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start() {
    sqs::endpoint_config cfg;
    cfg.data_dir = (dir_.path() / "sqs").string();
    endpoint_ = sqs::endpoint::start(sys_, cfg).value();
  }

  // The JSON protocol: {status, parsed body}.
  std::pair<unsigned, json::object> call(const std::string& action, const json::object& body) {
    const answer a =
        post(endpoint_->port(), "application/x-amz-json-1.0", json::serialize(body), "AmazonSQS." + action);
    EXPECT_EQ(a.content_type, "application/x-amz-json-1.0");
    json::value v = json::parse(a.body);
    return {a.status, v.as_object()};
  }
  json::object ok(const std::string& action, const json::object& body) {
    auto [status, o] = call(action, body);
    EXPECT_EQ(status, 200U) << action << ": " << json::serialize(o);
    return o;
  }
  std::string error_type(const std::string& action, const json::object& body) {
    auto [status, o] = call(action, body);
    EXPECT_EQ(status, 400U) << json::serialize(o);
    EXPECT_TRUE(o.contains("message")) << json::serialize(o);
    const std::string type(o["__type"].as_string());
    return type.substr(type.find('#') + 1);
  }

  // The query protocol: {status, XML}.
  answer query(const std::string& params) {
    return post(endpoint_->port(), "application/x-www-form-urlencoded; charset=utf-8", "Version=2012-11-05&" + params);
  }

  troupe::system sys_;
  scratch_dir dir_{"troupe-sqs"};
  std::unique_ptr<sqs::endpoint> endpoint_;
};

TEST_F(sqs_endpoint_test, json_protocol_create_send_receive_delete) {
  const watchdog guard(60s);
  const json::object created = ok("CreateQueue", {{"QueueName", "jobs"}});
  const std::string url(created.at("QueueUrl").as_string());
  EXPECT_EQ(url, endpoint_->queue_url("jobs"));
  EXPECT_EQ(url, endpoint_->url() + "/000000000000/jobs");
  EXPECT_EQ(ok("GetQueueUrl", {{"QueueName", "jobs"}}).at("QueueUrl").as_string(), url);
  EXPECT_EQ(ok("CreateQueue", {{"QueueName", "jobs"}}).at("QueueUrl").as_string(), url) << "idempotent";

  const json::object sent = ok("SendMessage", {{"QueueUrl", url},
                                               {"MessageBody", "hello <world> & \"you\""},
                                               {"MessageAttributes",
                                                {{"kind", {{"DataType", "String"}, {"StringValue", "greeting"}}},
                                                 {"n", {{"DataType", "Number"}, {"StringValue", "42"}}},
                                                 {"raw", {{"DataType", "Binary"}, {"BinaryValue", "AAEC"}}}}}});
  EXPECT_EQ(sent.at("MD5OfMessageBody").as_string(), sqs::detail::md5_hex("hello <world> & \"you\""));
  ASSERT_TRUE(sent.contains("MD5OfMessageAttributes"));
  // Worked out independently (Python, AWS's algorithm) for these three attributes.
  EXPECT_EQ(sent.at("MD5OfMessageAttributes").as_string(), "a899cefb5d169f90989d87f7deef8f25");
  const std::string message_id(sent.at("MessageId").as_string());
  EXPECT_EQ(message_id.size(), 36U);

  const json::object got = ok("ReceiveMessage", {{"QueueUrl", url},
                                                 {"MaxNumberOfMessages", 10},
                                                 {"AttributeNames", {"All"}},
                                                 {"MessageAttributeNames", {"All"}}});
  ASSERT_EQ(got.at("Messages").as_array().size(), 1U);
  const json::object& m = got.at("Messages").as_array()[0].as_object();
  EXPECT_EQ(m.at("Body").as_string(), "hello <world> & \"you\"");
  EXPECT_EQ(m.at("MessageId").as_string(), message_id);
  EXPECT_EQ(m.at("MD5OfBody").as_string(), sent.at("MD5OfMessageBody").as_string());
  EXPECT_EQ(m.at("MD5OfMessageAttributes").as_string(), sent.at("MD5OfMessageAttributes").as_string());
  EXPECT_EQ(m.at("Attributes").as_object().at("ApproximateReceiveCount").as_string(), "1");
  EXPECT_TRUE(m.at("Attributes").as_object().contains("SentTimestamp"));
  EXPECT_EQ(m.at("MessageAttributes").as_object().at("raw").as_object().at("BinaryValue").as_string(), "AAEC");
  EXPECT_EQ(m.at("MessageAttributes").as_object().at("n").as_object().at("StringValue").as_string(), "42");

  json::object attributes =
      ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"All"}}}).at("Attributes").as_object();
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessages").as_string(), "0");
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessagesNotVisible").as_string(), "1");
  EXPECT_EQ(attributes.at("QueueArn").as_string(), "arn:aws:sqs:us-east-1:000000000000:jobs");

  ok("DeleteMessage", {{"QueueUrl", url}, {"ReceiptHandle", m.at("ReceiptHandle")}});
  EXPECT_EQ(error_type("DeleteMessage", {{"QueueUrl", url}, {"ReceiptHandle", m.at("ReceiptHandle")}}),
            "ReceiptHandleIsInvalid");
  EXPECT_FALSE(ok("ReceiveMessage", {{"QueueUrl", url}}).contains("Messages"));
  attributes = ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"ApproximateNumberOfMessages"}}})
                   .at("Attributes")
                   .as_object();
  EXPECT_EQ(attributes.size(), 1U);
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessages").as_string(), "0");

  // In process: the same queue's actor.
  auto q = endpoint_->queue("jobs").value();
  q.ask(troupe::durable::send_message{.body = "from inside"}, 5s).get();
  const json::object inside = ok("ReceiveMessage", {{"QueueUrl", url}});
  EXPECT_EQ(inside.at("Messages").as_array()[0].as_object().at("Body").as_string(), "from inside");
  EXPECT_FALSE(endpoint_->queue("nope"));
}

TEST_F(sqs_endpoint_test, json_protocol_batches_and_visibility) {
  const watchdog guard(60s);
  const std::string url(ok("CreateQueue", {{"QueueName", "batches"}}).at("QueueUrl").as_string());
  const json::object sent = ok("SendMessageBatch", {{"QueueUrl", url},
                                                    {"Entries",
                                                     {{{"Id", "a"}, {"MessageBody", "one"}},
                                                      {{"Id", "b"}, {"MessageBody", "two"}, {"DelaySeconds", 0}},
                                                      {{"Id", "c"}, {"MessageBody", "three"}}}}});
  EXPECT_EQ(sent.at("Successful").as_array().size(), 3U) << json::serialize(sent);
  EXPECT_TRUE(sent.at("Failed").as_array().empty());
  for (const json::value& e : sent.at("Successful").as_array()) {
    const std::string id(e.at("Id").as_string());
    const std::string body = id == "a" ? "one" : id == "b" ? "two" : "three";
    EXPECT_EQ(e.at("MD5OfMessageBody").as_string(), sqs::detail::md5_hex(body));
  }
  const json::object got =
      ok("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}, {"VisibilityTimeout", 60}});
  const json::array& messages = got.at("Messages").as_array();
  ASSERT_EQ(messages.size(), 3U);
  std::vector<std::string> receipts;
  for (const json::value& m : messages) receipts.emplace_back(m.at("ReceiptHandle").as_string());
  EXPECT_FALSE(ok("ReceiveMessage", {{"QueueUrl", url}}).contains("Messages")) << "all three leased";

  // The first back at once; the second back at once through the batch, with a bad entry beside it.
  ok("ChangeMessageVisibility", {{"QueueUrl", url}, {"ReceiptHandle", receipts[0]}, {"VisibilityTimeout", 0}});
  const json::object changed =
      ok("ChangeMessageVisibilityBatch", {{"QueueUrl", url},
                                          {"Entries",
                                           {{{"Id", "x"}, {"ReceiptHandle", receipts[1]}, {"VisibilityTimeout", 0}},
                                            {{"Id", "y"}, {"ReceiptHandle", "9999-1"}, {"VisibilityTimeout", 0}}}}});
  ASSERT_EQ(changed.at("Successful").as_array().size(), 1U) << json::serialize(changed);
  EXPECT_EQ(changed.at("Successful").as_array()[0].at("Id").as_string(), "x");
  ASSERT_EQ(changed.at("Failed").as_array().size(), 1U);
  EXPECT_EQ(changed.at("Failed").as_array()[0].at("Id").as_string(), "y");
  EXPECT_EQ(changed.at("Failed").as_array()[0].at("SenderFault").as_bool(), true);
  const json::object again =
      ok("ReceiveMessage",
         {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}, {"AttributeNames", {"ApproximateReceiveCount"}}});
  ASSERT_EQ(again.at("Messages").as_array().size(), 2U);
  json::array entries;
  for (const json::value& m : again.at("Messages").as_array()) {
    EXPECT_EQ(m.at("Attributes").at("ApproximateReceiveCount").as_string(), "2");
    entries.push_back(
        json::object{{"Id", "d" + std::to_string(entries.size())}, {"ReceiptHandle", m.at("ReceiptHandle")}});
  }
  entries.push_back(json::object{{"Id", "old"}, {"ReceiptHandle", receipts[0]}});  // an earlier lease's
  entries.push_back(json::object{{"Id", "third"}, {"ReceiptHandle", receipts[2]}});
  const json::object deleted = ok("DeleteMessageBatch", {{"QueueUrl", url}, {"Entries", entries}});
  EXPECT_EQ(deleted.at("Successful").as_array().size(), 3U) << json::serialize(deleted);
  ASSERT_EQ(deleted.at("Failed").as_array().size(), 1U);
  EXPECT_EQ(deleted.at("Failed").as_array()[0].at("Id").as_string(), "old");
  EXPECT_EQ(deleted.at("Failed").as_array()[0].at("Code").as_string(), "ReceiptHandleIsInvalid");
  const json::object attributes =
      ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"All"}}}).at("Attributes").as_object();
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessages").as_string(), "0");
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessagesNotVisible").as_string(), "0");
  EXPECT_EQ(error_type("ChangeMessageVisibility",
                       {{"QueueUrl", url}, {"ReceiptHandle", receipts[2]}, {"VisibilityTimeout", 5}}),
            "MessageNotInflight");
  // PurgeQueue: leased and visible alike.
  ok("SendMessageBatch",
     {{"QueueUrl", url}, {"Entries", {{{"Id", "p"}, {"MessageBody", "p"}}, {{"Id", "q"}, {"MessageBody", "q"}}}}});
  ASSERT_TRUE(ok("ReceiveMessage", {{"QueueUrl", url}}).contains("Messages"));
  ok("PurgeQueue", {{"QueueUrl", url}});
  const json::object purged =
      ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"All"}}}).at("Attributes").as_object();
  EXPECT_EQ(purged.at("ApproximateNumberOfMessages").as_string(), "0");
  EXPECT_EQ(purged.at("ApproximateNumberOfMessagesNotVisible").as_string(), "0");
  ok("DeleteQueue", {{"QueueUrl", url}});
  EXPECT_EQ(error_type("GetQueueAttributes", {{"QueueUrl", url}}), "QueueDoesNotExist");
}

TEST_F(sqs_endpoint_test, query_protocol_every_operation) {
  const watchdog guard(60s);
  answer a = query("Action=CreateQueue&QueueName=q1&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=60");
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_EQ(a.content_type, "text/xml");
  const std::string url = xml_text(a.body, "QueueUrl");
  EXPECT_EQ(url, endpoint_->queue_url("q1"));
  EXPECT_NE(a.body.find("<CreateQueueResponse"), std::string::npos);
  EXPECT_NE(a.body.find("<RequestId>"), std::string::npos);
  EXPECT_EQ(xml_text(query("Action=GetQueueUrl&QueueName=q1").body, "QueueUrl"), url);
  ASSERT_EQ(query("Action=CreateQueue&QueueName=q2").status, 200U);
  a = query("Action=ListQueues");
  EXPECT_EQ(count_of(a.body, "<QueueUrl>"), 2U) << a.body;
  a = query("Action=ListQueues&QueueNamePrefix=q2");
  EXPECT_EQ(count_of(a.body, "<QueueUrl>"), 1U) << a.body;
  a = query("Action=ListQueues&MaxResults=1");
  EXPECT_EQ(count_of(a.body, "<QueueUrl>"), 1U) << a.body;
  EXPECT_EQ(xml_text(a.body, "NextToken"), "q1");
  a = query("Action=ListQueues&MaxResults=1&NextToken=q1");
  EXPECT_EQ(xml_text(a.body, "QueueUrl"), endpoint_->queue_url("q2"));

  const std::string u = "QueueUrl=" + form_escape(url);
  a = query("Action=SendMessage&" + u + "&MessageBody=" + form_escape("one & <two>") +
            "&MessageAttribute.1.Name=kind&MessageAttribute.1.Value.DataType=String"
            "&MessageAttribute.1.Value.StringValue=greeting");
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_EQ(xml_text(a.body, "MD5OfMessageBody"), sqs::detail::md5_hex("one & <two>"));
  EXPECT_EQ(xml_text(a.body, "MD5OfMessageAttributes").size(), 32U);

  a = query("Action=SendMessageBatch&" + u +
            "&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=b1"
            "&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=b2"
            "&SendMessageBatchRequestEntry.2.DelaySeconds=0");
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_EQ(count_of(a.body, "<SendMessageBatchResultEntry>"), 2U) << a.body;

  a = query("Action=ReceiveMessage&" + u +
            "&MaxNumberOfMessages=10&AttributeName.1=ApproximateReceiveCount&MessageAttributeName.1=kind");
  ASSERT_EQ(a.status, 200U) << a.body;
  ASSERT_EQ(count_of(a.body, "<Message>"), 3U) << a.body;
  EXPECT_EQ(xml_text(a.body, "Body"), "one & <two>");
  EXPECT_EQ(xml_text(a.body, "MD5OfMessageAttributes"), xml_text(a.body, "MD5OfMessageAttributes"));
  EXPECT_NE(a.body.find("<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>"),
            std::string::npos);
  EXPECT_NE(a.body.find("<MessageAttribute><Name>kind</Name><Value><StringValue>greeting</StringValue>"
                        "<DataType>String</DataType></Value></MessageAttribute>"),
            std::string::npos)
      << a.body;
  const std::string r1 = xml_text(a.body, "ReceiptHandle", 0);
  const std::string r2 = xml_text(a.body, "ReceiptHandle", 1);
  const std::string r3 = xml_text(a.body, "ReceiptHandle", 2);

  // One back to visible at once, one extended; one entry of a batch fails alone.
  a = query(
      "Action=ChangeMessageVisibilityBatch&" + u + "&ChangeMessageVisibilityBatchRequestEntry.1.Id=x" +
      "&ChangeMessageVisibilityBatchRequestEntry.1.ReceiptHandle=" + form_escape(r1) +
      "&ChangeMessageVisibilityBatchRequestEntry.1.VisibilityTimeout=0" +
      "&ChangeMessageVisibilityBatchRequestEntry.2.Id=y&ChangeMessageVisibilityBatchRequestEntry.2.ReceiptHandle=" +
      form_escape(r2) + "&ChangeMessageVisibilityBatchRequestEntry.2.VisibilityTimeout=600" +
      "&ChangeMessageVisibilityBatchRequestEntry.3.Id=z&ChangeMessageVisibilityBatchRequestEntry.3.ReceiptHandle="
      "bogus" +
      "&ChangeMessageVisibilityBatchRequestEntry.3.VisibilityTimeout=5");
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_EQ(count_of(a.body, "<ChangeMessageVisibilityBatchResultEntry>"), 2U) << a.body;
  EXPECT_EQ(count_of(a.body, "<BatchResultErrorEntry>"), 1U) << a.body;
  EXPECT_EQ(xml_text(a.body, "Code"), "ReceiptHandleIsInvalid");

  a = query("Action=ReceiveMessage&" + u + "&AttributeName.1=ApproximateReceiveCount");
  ASSERT_EQ(count_of(a.body, "<Message>"), 1U) << a.body;
  EXPECT_NE(a.body.find("<Name>ApproximateReceiveCount</Name><Value>2</Value>"), std::string::npos) << a.body;
  const std::string r1again = xml_text(a.body, "ReceiptHandle");

  a = query("Action=ChangeMessageVisibility&" + u + "&ReceiptHandle=" + form_escape(r1) + "&VisibilityTimeout=10");
  EXPECT_EQ(a.status, 400U) << "an earlier lease's receipt";
  a = query("Action=DeleteMessage&" + u + "&ReceiptHandle=" + form_escape(r1again));
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_NE(a.body.find("<DeleteMessageResponse"), std::string::npos);
  a = query("Action=DeleteMessageBatch&" + u + "&DeleteMessageBatchRequestEntry.1.Id=a" +
            "&DeleteMessageBatchRequestEntry.1.ReceiptHandle=" + form_escape(r2) +
            "&DeleteMessageBatchRequestEntry.2.Id=b&DeleteMessageBatchRequestEntry.2.ReceiptHandle=" + form_escape(r3) +
            "&DeleteMessageBatchRequestEntry.3.Id=c&DeleteMessageBatchRequestEntry.3.ReceiptHandle=1-1");
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_EQ(count_of(a.body, "<DeleteMessageBatchResultEntry>"), 2U) << a.body;
  EXPECT_EQ(count_of(a.body, "<BatchResultErrorEntry>"), 1U) << a.body;

  a = query("Action=GetQueueAttributes&" + u + "&AttributeName.1=All");
  EXPECT_NE(a.body.find("<Attribute><Name>ApproximateNumberOfMessages</Name><Value>0</Value></Attribute>"),
            std::string::npos)
      << a.body;
  EXPECT_NE(a.body.find("<Name>VisibilityTimeout</Name><Value>60</Value>"), std::string::npos) << a.body;

  ASSERT_EQ(query("Action=SendMessage&" + u + "&MessageBody=purged").status, 200U);
  a = query("Action=PurgeQueue&" + u);
  ASSERT_EQ(a.status, 200U) << a.body;
  EXPECT_NE(a.body.find("<PurgeQueueResponse"), std::string::npos);
  a = query("Action=GetQueueAttributes&" + u + "&AttributeName.1=ApproximateNumberOfMessages");
  EXPECT_NE(a.body.find("<Value>0</Value>"), std::string::npos) << a.body;
  a = query("Action=DeleteQueue&" + u);
  ASSERT_EQ(a.status, 200U) << a.body;
  a = query("Action=GetQueueUrl&QueueName=q1");
  EXPECT_EQ(a.status, 400U);
  EXPECT_EQ(xml_text(a.body, "Code"), "AWS.SimpleQueueService.NonExistentQueue");
  EXPECT_EQ(xml_text(a.body, "Type"), "Sender");
  a = query("Action=SendMessage&" + u + "&MessageBody=x");
  EXPECT_EQ(xml_text(a.body, "Code"), "AWS.SimpleQueueService.NonExistentQueue");
  // The name is free again, as a new, empty queue.
  ASSERT_EQ(query("Action=CreateQueue&QueueName=q1").status, 200U);
  a = query("Action=GetQueueAttributes&" + u + "&AttributeName.1=ApproximateNumberOfMessagesNotVisible");
  EXPECT_NE(a.body.find("<Value>0</Value>"), std::string::npos) << a.body;
}

TEST_F(sqs_endpoint_test, bad_requests_get_sqs_errors_and_the_endpoint_keeps_serving) {
  const watchdog guard(60s);
  const std::string url(ok("CreateQueue", {{"QueueName", "errs"}}).at("QueueUrl").as_string());
  const std::string other = endpoint_->url() + "/000000000000/missing";
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", other}, {"MessageBody", "x"}}), "QueueDoesNotExist");
  EXPECT_EQ(error_type("GetQueueUrl", {{"QueueName", "missing"}}), "QueueDoesNotExist");
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url}}), "MissingParameter");
  EXPECT_EQ(error_type("SendMessage", {{"MessageBody", "x"}}), "MissingParameter");
  EXPECT_EQ(error_type("Explode", {{"QueueUrl", url}}), "InvalidAction");
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", "bad name!"}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", std::string(81, 'a')}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", "errs"}, {"Attributes", {{"VisibilityTimeout", "5"}}}}),
            "QueueNameExists");
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", "x"}, {"Attributes", {{"Bogus", "5"}}}}), "InvalidAttributeName");
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", "x"}, {"Attributes", {{"DelaySeconds", "901"}}}}),
            "InvalidParameterValue");
  EXPECT_EQ(error_type("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 11}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("ReceiveMessage", {{"QueueUrl", url}, {"WaitTimeSeconds", 21}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("ReceiveMessage", {{"QueueUrl", url}, {"VisibilityTimeout", -1}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", "ten"}}), "InvalidParameterValue");
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url}, {"MessageBody", std::string(256 * 1024 + 1, 'x')}}),
            "InvalidParameterValue");
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url}, {"MessageBody", std::string("a\x01z")}}),
            "InvalidMessageContents");
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url}, {"MessageBody", "x"}, {"DelaySeconds", 901}}),
            "InvalidParameterValue");
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url},
                                       {"MessageBody", "x"},
                                       {"MessageAttributes", {{"a", {{"DataType", "Blob"}, {"StringValue", "1"}}}}}}),
            "InvalidParameterValue");
  EXPECT_EQ(
      error_type("SendMessage", {{"QueueUrl", url},
                                 {"MessageBody", "x"},
                                 {"MessageAttributes", {{"AWS.x", {{"DataType", "String"}, {"StringValue", "1"}}}}}}),
      "InvalidParameterValue");
  json::array eleven;
  for (int i = 0; i < 11; ++i) eleven.push_back(json::object{{"Id", "e" + std::to_string(i)}, {"MessageBody", "x"}});
  EXPECT_EQ(error_type("SendMessageBatch", {{"QueueUrl", url}, {"Entries", eleven}}), "TooManyEntriesInBatchRequest");
  EXPECT_EQ(error_type("SendMessageBatch", {{"QueueUrl", url}, {"Entries", json::array{}}}), "EmptyBatchRequest");
  EXPECT_EQ(error_type("SendMessageBatch",
                       {{"QueueUrl", url},
                        {"Entries", {{{"Id", "a"}, {"MessageBody", "x"}}, {{"Id", "a"}, {"MessageBody", "y"}}}}}),
            "BatchEntryIdsNotDistinct");
  EXPECT_EQ(error_type("SendMessageBatch", {{"QueueUrl", url}, {"Entries", {{{"Id", "a b"}, {"MessageBody", "x"}}}}}),
            "InvalidBatchEntryId");
  json::array big;
  for (int i = 0; i < 3; ++i)
    big.push_back(json::object{{"Id", "b" + std::to_string(i)}, {"MessageBody", std::string(100'000, 'x')}});
  EXPECT_EQ(error_type("SendMessageBatch", {{"QueueUrl", url}, {"Entries", big}}), "BatchRequestTooLong");
  EXPECT_EQ(error_type("DeleteMessage", {{"QueueUrl", url}, {"ReceiptHandle", "no such receipt"}}),
            "ReceiptHandleIsInvalid");
  EXPECT_EQ(error_type("ChangeMessageVisibility", {{"QueueUrl", url}, {"ReceiptHandle", "1-1"}}), "MissingParameter");
  EXPECT_EQ(error_type("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"Nonsense"}}}),
            "InvalidAttributeName");

  // Garbage bodies: a clear 400 in the format asked for, and the next client is served.
  answer a =
      post(endpoint_->port(), "application/x-amz-json-1.0", "{\"QueueUrl\": [[[[[[[[[[[[[[", "AmazonSQS.SendMessage");
  EXPECT_EQ(a.status, 400U);
  EXPECT_NE(a.body.find("SerializationException"), std::string::npos) << a.body;
  a = post(endpoint_->port(), "application/x-amz-json-1.0", json::serialize(json::object{{"QueueName", "missing"}}),
           "AmazonSQS.GetQueueUrl");
  EXPECT_EQ(a.query_error, "AWS.SimpleQueueService.NonExistentQueue;Sender");
  a = post(endpoint_->port(), "application/x-amz-json-1.0", std::string("\xff\xfe\x00garbage", 10),
           "AmazonSQS.SendMessage");
  EXPECT_EQ(a.status, 400U);
  a = query("Action=SendMessage&QueueUrl=%zz");
  EXPECT_EQ(a.status, 400U);
  EXPECT_EQ(xml_text(a.body, "Code"), "InvalidParameterValue") << a.body;
  a = query("Action=SendMessageBatch&QueueUrl=x&SendMessageBatchRequestEntry.01.Id=a");
  EXPECT_EQ(a.status, 400U) << a.body;
  a = query("Action=SendMessageBatch&QueueUrl=x&SendMessageBatchRequestEntry.11.Id=a");
  EXPECT_EQ(xml_text(a.body, "Code"), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest") << a.body;
  a = query("Action=ReceiveMessage&QueueUrl=x&QueueUrl=y");
  EXPECT_EQ(a.status, 400U) << "a parameter twice";
  a = post(endpoint_->port(), "text/plain", "\x01\x02\x03 not a form");
  EXPECT_EQ(a.status, 400U);
  EXPECT_EQ(xml_text(a.body, "Code"), "MissingParameter") << a.body;
  a = post(endpoint_->port(), "application/x-www-form-urlencoded", std::string(2 << 20, 'a'));
  EXPECT_EQ(a.status, 413U) << "over max_request_bytes";
  ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "still serving"}});
  EXPECT_EQ(ok("ReceiveMessage", {{"QueueUrl", url}}).at("Messages").as_array().size(), 1U);
}

TEST_F(sqs_endpoint_test, long_polls_wait_in_the_queue_not_in_a_thread) {
  const watchdog guard(60s);
  const std::string url(ok("CreateQueue", {{"QueueName", "polls"}}).at("QueueUrl").as_string());
  // More long polls at once than the endpoint has HTTP threads (2).
  constexpr int pollers = 6;
  std::vector<std::future<json::object>> polls;
  for (int i = 0; i < pollers; ++i) {
    polls.push_back(std::async(std::launch::async, [&] {
      return ok("ReceiveMessage", {{"QueueUrl", url}, {"WaitTimeSeconds", 20}, {"MaxNumberOfMessages", 1}});
    }));
  }
  // Each poll takes at most one message, so each send below ends exactly one
  // poll, whether it arrived before the send (held by the queue) or after
  // (the message waits for it). Were a held poll to hold an HTTP thread too,
  // the sends queued behind two of them would wait out their 20 s.
  const auto began = std::chrono::steady_clock::now();
  for (int i = 0; i < pollers; ++i) {
    ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "m" + std::to_string(i)}});
  }
  std::set<std::string> bodies;
  for (auto& p : polls) {
    const json::object o = p.get();
    if (o.contains("Messages")) bodies.emplace(o.at("Messages").as_array()[0].as_object().at("Body").as_string());
  }
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_LT(took, 15s) << "the polls were answered by the sends, not by their 20 s wait";
  // A poll that started after its message was received by another poll may
  // have got nothing yet; whatever was not delivered is still in the queue.
  json::object rest = ok("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}});
  if (rest.contains("Messages")) {
    for (const json::value& m : rest.at("Messages").as_array()) bodies.emplace(m.as_object().at("Body").as_string());
  }
  EXPECT_EQ(bodies.size(), static_cast<std::size_t>(pollers));
  // An empty queue's long poll ends at its wait with an empty answer.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ok("ReceiveMessage", {{"QueueUrl", url}, {"WaitTimeSeconds", 1}}).contains("Messages"));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
}

TEST_F(sqs_endpoint_test, redrive_moves_a_message_received_too_often_to_the_dead_letter_queue) {
  const watchdog guard(60s);
  const std::string dlq(ok("CreateQueue", {{"QueueName", "dead"}}).at("QueueUrl").as_string());
  const std::string policy =
      R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dead","maxReceiveCount":"2"})";
  EXPECT_EQ(
      error_type("CreateQueue",
                 {{"QueueName", "work"},
                  {"Attributes",
                   {{"RedrivePolicy",
                     R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:nope","maxReceiveCount":2})"}}}}),
      "InvalidParameterValue");
  const std::string url(ok("CreateQueue", {{"QueueName", "work"}, {"Attributes", {{"RedrivePolicy", policy}}}})
                            .at("QueueUrl")
                            .as_string());
  ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "poison"}});
  for (int i = 0; i < 2; ++i) {
    const json::object got = ok("ReceiveMessage", {{"QueueUrl", url}, {"VisibilityTimeout", 0}});
    ASSERT_TRUE(got.contains("Messages")) << i;
  }
  EXPECT_FALSE(ok("ReceiveMessage", {{"QueueUrl", url}, {"WaitTimeSeconds", 1}}).contains("Messages"));
  const json::object dead = ok("ReceiveMessage", {{"QueueUrl", dlq}, {"WaitTimeSeconds", 10}});
  ASSERT_TRUE(dead.contains("Messages"));
  EXPECT_EQ(dead.at("Messages").as_array()[0].as_object().at("Body").as_string(), "poison");
  const json::object attributes =
      ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"RedrivePolicy"}}}).at("Attributes").as_object();
  EXPECT_EQ(json::parse(attributes.at("RedrivePolicy").as_string()).at("maxReceiveCount").as_int64(), 2);
}

TEST_F(sqs_endpoint_test, fifo_queues_keep_group_order_and_deduplicate) {
  const watchdog guard(60s);
  EXPECT_EQ(error_type("CreateQueue", {{"QueueName", "f.fifo"}}), "InvalidParameterValue");
  const std::string url(
      ok("CreateQueue",
         {{"QueueName", "f.fifo"}, {"Attributes", {{"FifoQueue", "true"}, {"ContentBasedDeduplication", "true"}}}})
          .at("QueueUrl")
          .as_string());
  EXPECT_EQ(error_type("SendMessage", {{"QueueUrl", url}, {"MessageBody", "x"}}), "MissingParameter");
  const json::object first = ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "a"}, {"MessageGroupId", "g"}});
  const json::object again = ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "a"}, {"MessageGroupId", "g"}});
  EXPECT_EQ(first.at("MessageId"), again.at("MessageId")) << "content-based de-duplication";
  ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "b"}, {"MessageGroupId", "g"}});
  const json::object got = ok("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}});
  ASSERT_EQ(got.at("Messages").as_array().size(), 1U) << "one of a group at a time";
  EXPECT_EQ(got.at("Messages").as_array()[0].as_object().at("Body").as_string(), "a");
}

TEST_F(sqs_endpoint_test, a_restarted_endpoint_finds_its_queues_and_their_messages) {
  const watchdog guard(60s);
  const std::string dlq(ok("CreateQueue", {{"QueueName", "keep-dlq"}}).at("QueueUrl").as_string());
  const std::string policy =
      R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:keep-dlq","maxReceiveCount":1})";
  ok("CreateQueue", {{"QueueName", "keep"}, {"Attributes", {{"RedrivePolicy", policy}, {"VisibilityTimeout", "120"}}}});
  std::string url = endpoint_->queue_url("keep");
  for (int i = 0; i < 5; ++i) ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "m" + std::to_string(i)}});
  const json::object got = ok("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 2}});
  ASSERT_EQ(got.at("Messages").as_array().size(), 2U);
  ok("DeleteMessage",
     {{"QueueUrl", url}, {"ReceiptHandle", got.at("Messages").as_array()[0].as_object().at("ReceiptHandle")}});
  ok("CreateQueue", {{"QueueName", "gone"}});
  ok("DeleteQueue", {{"QueueUrl", endpoint_->queue_url("gone")}});

  endpoint_->stop();
  endpoint_.reset();
  start();
  url = endpoint_->queue_url("keep");
  const json::object list = ok("ListQueues", {});
  EXPECT_EQ(list.at("QueueUrls").as_array().size(), 2U) << json::serialize(list);
  const json::object attributes =
      ok("GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"All"}}}).at("Attributes").as_object();
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessages").as_string(), "3");
  EXPECT_EQ(attributes.at("ApproximateNumberOfMessagesNotVisible").as_string(), "1") << "the lease survived";
  EXPECT_EQ(attributes.at("VisibilityTimeout").as_string(), "120");
  EXPECT_TRUE(attributes.contains("RedrivePolicy"));
  const json::object rest = ok("ReceiveMessage", {{"QueueUrl", url}, {"MaxNumberOfMessages", 10}});
  EXPECT_EQ(rest.at("Messages").as_array().size(), 3U);
  // Only the two live queues' files are left.
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.path() / "sqs")) {
    if (e.path().extension() == ".sqlite") ++files;
  }
  EXPECT_EQ(files, 2U);
}

// --- the real clients ---------------------------------------------------------

bool have(const char* program) { return ::access(program, X_OK) == 0; }

bool clients_required() {
  const char* v = std::getenv("TROUPE_REQUIRE_BROKERS");
  return v != nullptr && std::string(v) == "1";
}

#define TROUPE_NEED(program)                                                                   \
  do {                                                                                         \
    if (!have(program)) {                                                                      \
      if (clients_required()) FAIL() << (program) << " is missing (TROUPE_REQUIRE_BROKERS=1)"; \
      GTEST_SKIP() << (program) << " is missing (Debian: scripts/deps)";                       \
    }                                                                                          \
  } while (false)

TEST_F(sqs_endpoint_test, the_aws_cli_creates_sends_receives_and_deletes) {
  TROUPE_NEED("/usr/bin/aws");
  const watchdog guard(120s);
  const std::filesystem::path home = dir_.path() / "home";
  std::filesystem::create_directories(home);
  const auto aws = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{"env",
                                  "HOME=" + home.string(),
                                  "AWS_ACCESS_KEY_ID=x",
                                  "AWS_SECRET_ACCESS_KEY=x",
                                  "AWS_DEFAULT_REGION=us-east-1",
                                  "AWS_EC2_METADATA_DISABLED=true",
                                  "/usr/bin/aws",
                                  "--endpoint-url",
                                  endpoint_->url(),
                                  "--no-cli-pager",
                                  "--output",
                                  "json",
                                  "sqs"};
    argv.insert(argv.end(), args.begin(), args.end());
    const command_result r = run_command(argv, {}, -1, 60s);
    EXPECT_TRUE(r.succeeded()) << quote_command(argv) << "\n" << r.err;
    return r.succeeded() && !r.out.empty() ? json::parse(r.out) : json::value();
  };
  const json::value created = aws({"create-queue", "--queue-name", "cli"});
  const std::string url(created.at("QueueUrl").as_string());
  EXPECT_EQ(url, endpoint_->queue_url("cli"));
  const json::value sent = aws({"send-message", "--queue-url", url, "--message-body", "from the cli",
                                "--message-attributes", R"({"k":{"DataType":"String","StringValue":"v"}})"});
  EXPECT_EQ(sent.at("MD5OfMessageBody").as_string(), troupe::bridge::sqs::detail::md5_hex("from the cli"));
  const json::value got = aws({"receive-message", "--queue-url", url, "--wait-time-seconds", "5", "--attribute-names",
                               "All", "--message-attribute-names", "All"});
  const json::object& m = got.at("Messages").as_array()[0].as_object();
  EXPECT_EQ(m.at("Body").as_string(), "from the cli");
  EXPECT_EQ(m.at("MessageAttributes").at("k").at("StringValue").as_string(), "v");
  EXPECT_EQ(m.at("Attributes").at("ApproximateReceiveCount").as_string(), "1");
  aws({"delete-message", "--queue-url", url, "--receipt-handle", std::string(m.at("ReceiptHandle").as_string())});
  const json::value attributes = aws({"get-queue-attributes", "--queue-url", url, "--attribute-names", "All"});
  EXPECT_EQ(attributes.at("Attributes").at("ApproximateNumberOfMessages").as_string(), "0");
  EXPECT_EQ(attributes.at("Attributes").at("ApproximateNumberOfMessagesNotVisible").as_string(), "0");
  // An error reaches the user as the CLI's error with SQS's code.
  std::vector<std::string> argv{"env",
                                "HOME=" + home.string(),
                                "AWS_ACCESS_KEY_ID=x",
                                "AWS_SECRET_ACCESS_KEY=x",
                                "AWS_DEFAULT_REGION=us-east-1",
                                "/usr/bin/aws",
                                "--endpoint-url",
                                endpoint_->url(),
                                "sqs",
                                "get-queue-url",
                                "--queue-name",
                                "missing"};
  const command_result r = run_command(argv, {}, -1, 60s);
  EXPECT_FALSE(r.succeeded());
  EXPECT_NE(r.err.find("NonExistentQueue"), std::string::npos) << r.err;
}

TEST_F(sqs_endpoint_test, boto3_sends_receives_with_long_polls_deletes_and_redrives) {
  TROUPE_NEED("/usr/bin/python3");
  const command_result probe = run_command({"/usr/bin/python3", "-c", "import boto3"});
  if (!probe.succeeded()) {
    if (clients_required()) FAIL() << "python3-boto3 is missing (TROUPE_REQUIRE_BROKERS=1)";
    GTEST_SKIP() << "python3-boto3 is missing (Debian: scripts/deps)";
  }
  const watchdog guard(120s);
  const std::filesystem::path home = dir_.path() / "home";
  std::filesystem::create_directories(home);
  const std::string script = std::string(TROUPE_SOURCE_DIR) + "/tests/bridge/sqs_boto3_check.py";
  const command_result r = run_command(
      {"env", "HOME=" + home.string(), "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY=x", "AWS_DEFAULT_REGION=us-east-1",
       "AWS_EC2_METADATA_DISABLED=true", "/usr/bin/python3", script, endpoint_->url(), "200"},
      {}, -1, 100s);
  EXPECT_TRUE(r.succeeded()) << r.out << "\n" << r.err;
  EXPECT_NE(r.out.find("ok: sent 200, received 200, deleted 200, dead-lettered 1"), std::string::npos)
      << r.out << r.err;
}

// Not a test: an endpoint for trying other clients by hand (a newer SDK that
// speaks the JSON protocol, say). Prints its URL, serves until stdin closes:
//   bridge_sqs_endpoint_tests --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_serve*'
TEST_F(sqs_endpoint_test, DISABLED_serve_until_stdin_closes) {
  std::printf("serving at %s\n", endpoint_->url().c_str());
  std::fflush(stdout);
  while (std::fgetc(stdin) != EOF) {
  }
}

}  // namespace
