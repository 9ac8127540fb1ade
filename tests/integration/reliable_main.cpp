// The reliable-channel process tests' executable is also their child program:
// started by spawn_node(), troupe::run() makes it a node that serves remote
// spawns of the actors registered here.
#include <gtest/gtest.h>

#include "reliable_fixture.hpp"

TROUPE_REGISTER_ACTOR(it::reliable_worker, it::work_producer, troupe::ref<it::item_report_protocol>, std::uint64_t);

#if defined(TROUPE_TEST_DURABLE)
TROUPE_REGISTER_ACTOR(it::durable_producer_host, std::string, it::work_consumer, std::int64_t, std::uint64_t);
#endif

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
  });
}
