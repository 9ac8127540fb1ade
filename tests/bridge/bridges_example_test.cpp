// examples/bridges as a test: against a private RabbitMQ (rabbitmq_broker.hpp),
// the example publishes orders, has them priced in a second process, and must
// invoice every order to Kafka and SQS; with awscli installed it reads the SQS
// queue back with `aws sqs receive-message`. With --kill-pricer: the pricing
// process is killed a third of the way in (a regression test for asks in
// flight to a lost node, whose asker used to stop running: connection::lost).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "bridge/rabbitmq_broker.hpp"
#include "support/child_process.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::test_support::rabbitmq_broker;

TEST(bridges_example, every_order_from_rabbitmq_is_invoiced_to_kafka_and_sqs_across_a_killed_pricing_process) {
  if (auto why = rabbitmq_broker::unavailable_reason()) {
    if (rabbitmq_broker::required()) FAIL() << *why << " (and TROUPE_REQUIRE_BROKERS=1)";
    GTEST_SKIP() << *why;
  }
  rabbitmq_broker broker;
  const troupe::test_support::command_result run = troupe::test_support::run_command(
      {TROUPE_BRIDGES_EXAMPLE, "--amqp-port", std::to_string(broker.port()), "--kill-pricer"}, {}, -1, 120s);
  std::printf("%s", run.out.c_str());  // the example's account, in the test log
  ASSERT_TRUE(run.succeeded()) << troupe::test_support::describe_wait_status(run.status) << "\n"
                               << run.out << "\n"
                               << run.err;
  EXPECT_NE(run.out.find("invoiced all 60 orders"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("killing the pricing process"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("pricing processes: 2"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("for 60 orders"), std::string::npos) << "Kafka has every invoice: " << run.out;
  if (run.out.find("awscli is not installed") == std::string::npos) {
    EXPECT_NE(run.out.find("\"order_id\":"), std::string::npos)
        << "aws sqs receive-message printed invoices: " << run.out;
  }
}

}  // namespace
