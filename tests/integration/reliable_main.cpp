// The reliable-channel process tests' executable is also their child program:
// started by spawn_node(), troupe::run() makes it a node that serves remote
// spawns of the actors registered here.
#include <gtest/gtest.h>

#include "reliable_fixture.hpp"

TROUPE_REGISTER_ACTOR(it::reliable_worker, it::work_producer, troupe::ref<it::item_report_protocol>, std::uint64_t);

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
  });
}
