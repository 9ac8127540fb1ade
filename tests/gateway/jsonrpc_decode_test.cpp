// The JSON-RPC decoder and encoders as pure functions: every kind of bad
// message gets the specification's error, ids come back exactly as sent.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <limits>
#include <string>

#include "troupe/gateway/jsonrpc.hpp"

namespace {

namespace rpc = troupe::gateway::jsonrpc;
namespace json = boost::json;

rpc::error_reply whole_error(std::string_view text, const rpc::settings& limits = {}) {
  rpc::decoded d = rpc::decode(text, limits);
  const auto* e = std::get_if<rpc::error_reply>(&d);
  EXPECT_NE(e, nullptr) << text;
  return e != nullptr ? *e : rpc::error_reply{};
}

rpc::message decoded_message(std::string_view text) {
  rpc::decoded d = rpc::decode(text, {});
  const auto* m = std::get_if<rpc::message>(&d);
  EXPECT_NE(m, nullptr) << text;
  return m != nullptr ? *m : rpc::message{};
}

TEST(jsonrpc_decode, a_request_gives_its_method_params_and_id) {
  rpc::message m = decoded_message(R"({"jsonrpc":"2.0","id":7,"method":"bank.balance","params":["alice"]})");
  ASSERT_FALSE(m.batch);
  ASSERT_EQ(m.entries.size(), 1U);
  const auto& c = std::get<rpc::call>(m.entries[0]);
  EXPECT_EQ(c.method, "bank.balance");
  EXPECT_EQ(json::serialize(c.params), R"(["alice"])");
  ASSERT_TRUE(c.id.has_value());
  EXPECT_EQ(c.id->as_int64(), 7);
}

TEST(jsonrpc_decode, a_request_without_id_is_a_notification_and_a_null_id_is_not) {
  rpc::message n = decoded_message(R"({"jsonrpc":"2.0","method":"bank.deposit","params":{"account":"a","cents":1}})");
  EXPECT_FALSE(std::get<rpc::call>(n.entries[0]).id.has_value());
  rpc::message r = decoded_message(R"({"jsonrpc":"2.0","method":"bank.release","id":null})");
  ASSERT_TRUE(std::get<rpc::call>(r.entries[0]).id.has_value());
  EXPECT_TRUE(std::get<rpc::call>(r.entries[0]).params.is_null());
}

TEST(jsonrpc_decode, bytes_that_are_not_json_are_a_parse_error_with_a_null_id) {
  for (std::string_view bad :
       {R"({"jsonrpc":"2.0","method":"foobar,"params":"bar","baz])", "", "\xff\xfe", "[1,2", R"({"a":1} trailing)"}) {
    rpc::error_reply e = whole_error(bad);
    EXPECT_EQ(e.code, rpc::code::parse_error) << bad;
    EXPECT_TRUE(e.id.is_null());
  }
}

TEST(jsonrpc_decode, messages_beyond_the_size_or_depth_limit_are_parse_errors) {
  rpc::settings small;
  small.max_message_bytes = 10;
  EXPECT_EQ(whole_error(R"({"jsonrpc":"2.0","method":"x"})", small).code, rpc::code::parse_error);
  EXPECT_EQ(whole_error(std::string(100, '[') + std::string(100, ']')).code, rpc::code::parse_error);
}

TEST(jsonrpc_decode, an_empty_batch_is_one_invalid_request_and_an_oversized_batch_too) {
  EXPECT_EQ(whole_error("[]").code, rpc::code::invalid_request);
  rpc::settings two;
  two.max_batch = 2;
  const std::string call = R"({"jsonrpc":"2.0","method":"x","id":1})";
  EXPECT_EQ(whole_error("[" + call + "," + call + "," + call + "]", two).code, rpc::code::invalid_request);
}

TEST(jsonrpc_decode, each_invalid_member_of_a_batch_is_its_own_invalid_request) {
  rpc::message m = decoded_message(
      R"([1, {"jsonrpc":"2.0","method":"ok","id":"a"}, {"jsonrpc":"1.0","method":"x","id":2},
          {"jsonrpc":"2.0","id":3}, {"jsonrpc":"2.0","method":"x","params":"scalar","id":4},
          {"jsonrpc":"2.0","method":"x","id":[5]}, {"jsonrpc":"2.0","method":5,"id":6}])");
  ASSERT_TRUE(m.batch);
  ASSERT_EQ(m.entries.size(), 7U);
  EXPECT_TRUE(std::holds_alternative<rpc::call>(m.entries[1]));
  const std::vector<std::string> ids{"null", "", "2", "3", "4", "null", "6"};
  for (std::size_t i : {0, 2, 3, 4, 5, 6}) {
    const auto* e = std::get_if<rpc::error_reply>(&m.entries[i]);
    ASSERT_NE(e, nullptr) << i;
    EXPECT_EQ(e->code, rpc::code::invalid_request) << i;
    // The id is echoed when it could be read, else null.
    EXPECT_EQ(json::serialize(e->id), ids[i]) << i;
  }
}

TEST(jsonrpc_encode, ids_of_every_allowed_type_are_written_back_as_sent) {
  for (std::string_view id :
       {R"("abc")", R"("")", "0", "-12", "1.5", "0.1", "18446744073709551615", "null", "1e+300"}) {
    const std::string out = rpc::encode_result(json::parse(id), json::value(true));
    EXPECT_EQ(out, R"({"jsonrpc":"2.0","id":)" + std::string(id) + R"(,"result":true})");
  }
}

TEST(jsonrpc_encode, an_error_has_code_message_and_data_and_parses_back) {
  const std::string out =
      rpc::encode_error(rpc::error_of(json::value("x"), {troupe::gateway::failure::actor_down, "boom \"quoted\""}));
  json::value back = json::parse(out);
  EXPECT_EQ(back.at("error").at("code").as_int64(), rpc::code::internal_error);
  EXPECT_EQ(back.at("error").at("message").as_string(), "Internal error");
  EXPECT_EQ(back.at("error").at("data").as_string(), "actor down: boom \"quoted\"");
  EXPECT_EQ(back.at("id").as_string(), "x");
}

TEST(jsonrpc_encode, every_failure_has_its_code) {
  using troupe::gateway::failure;
  EXPECT_EQ(rpc::code_of(failure::method_not_found), -32601);
  EXPECT_EQ(rpc::code_of(failure::invalid_params), -32602);
  EXPECT_EQ(rpc::code_of(failure::internal), -32603);
  EXPECT_EQ(rpc::code_of(failure::actor_down), -32603);
  EXPECT_EQ(rpc::code_of(failure::timeout), -32000);
  EXPECT_EQ(rpc::code_of(failure::overloaded), -32001);
}

}  // namespace

namespace {

TEST(jsonrpc_decode, a_numeric_id_beyond_a_doubles_range_is_an_invalid_request) {
  rpc::message m = decoded_message(R"({"jsonrpc":"2.0","method":"m","id":1e400})");
  const auto* e = std::get_if<rpc::error_reply>(&m.entries[0]);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->code, rpc::code::invalid_request);
  EXPECT_TRUE(e->id.is_null());
}

TEST(jsonrpc_encode, a_result_holding_infinity_becomes_an_internal_error_that_is_still_json) {
  json::array result{1.0, std::numeric_limits<double>::infinity()};
  json::value back = json::parse(rpc::encode_result(json::value(1), result));
  EXPECT_EQ(back.at("error").at("code").as_int64(), rpc::code::internal_error);
  EXPECT_EQ(back.at("id").as_int64(), 1);
}

}  // namespace
