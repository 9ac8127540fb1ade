// AWS Signature V4 (troupe/bridge/sqs_signature.hpp) against values AWS
// publishes: the "get-vanilla" case of AWS's SigV4 test suite
// (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, service "service",
// us-east-1, 20150830T123600Z), step by step; and an SQS JSON-protocol request
// whose signature was computed by botocore (1.43.11, SigV4Auth), AWS's own
// Python SDK core, so the headers SQS needs are canonicalized as AWS does.
#include "troupe/bridge/sqs_signature.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace sqs = troupe::bridge::sqs;

namespace {
const sqs::credentials example{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
}  // namespace

TEST(sqs_signature, matches_aws_get_vanilla_test_vector_step_by_step) {
  sqs::signing_input in;
  in.method = "GET";
  in.path = "/";
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  in.payload = "";
  in.region = "us-east-1";
  in.service = "service";
  const sqs::signature s = sqs::sign_v4(in, example);
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(
      s.authorization,
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
      "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(sqs_signature, signs_an_sqs_json_request_as_botocore_does) {
  sqs::signing_input in;
  in.method = "POST";
  // Out of order and in mixed case: canonicalization sorts and lower-cases them.
  in.headers = {{"X-Amz-Target", "AmazonSQS.SendMessage"},
                {"Host", "127.0.0.1:9324"},
                {"Content-Type", "application/x-amz-json-1.0"},
                {"X-Amz-Date", "20240101T000000Z"}};
  in.payload = R"({"QueueUrl":"q"})";
  in.region = "us-east-1";
  in.service = "sqs";
  const sqs::signature s = sqs::sign_v4(in, example);
  EXPECT_EQ(s.signed_headers, "content-type;host;x-amz-date;x-amz-target");
  EXPECT_EQ(s.signature, "39f0d6e67e042ab39934830264ba2485afe0084ebb2ddf6c47e01dff7287e625");
}

TEST(sqs_signature, trims_header_values_and_collapses_inner_spaces) {
  sqs::signing_input in;
  in.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}, {"My-Header1", "  a   b   c  "}};
  in.region = "us-east-1";
  in.service = "service";
  const sqs::signature s = sqs::sign_v4(in, example);
  EXPECT_NE(s.canonical_request.find("\nmy-header1:a b c\n"), std::string::npos) << s.canonical_request;
}

TEST(sqs_signature, refuses_an_input_without_x_amz_date) {
  sqs::signing_input in;
  in.headers = {{"Host", "example.amazonaws.com"}};
  EXPECT_THROW((void)sqs::sign_v4(in, example), std::invalid_argument);
}

TEST(sqs_signature, formats_amz_date_in_utc) {
  // 2015-08-30 12:36:00 UTC.
  const auto when = std::chrono::system_clock::time_point(std::chrono::seconds(1440938160));
  EXPECT_EQ(sqs::amz_date(when), "20150830T123600Z");
}

TEST(sqs_signature, hashes_the_empty_payload_as_aws_does) {
  EXPECT_EQ(sqs::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
