// The multi-process test executable is also its own child program (see
// process_fixture.hpp): started by spawn_node(), troupe::run() makes it a node.
#include <gtest/gtest.h>

#include <cstring>

#include "process_fixture.hpp"

TROUPE_REGISTER_ACTOR(it::echo_actor);
TROUPE_REGISTER_ACTOR(it::relay_actor);

int main(int argc, char** argv) {
  return troupe::run(
      argc, argv,
      [&] {
        ::testing::InitGoogleTest(&argc, argv);
        return RUN_ALL_TESTS();
      },
      [&](troupe::node& n) {
        // Roles a test can ask for with node_spawn_options::args.
        for (int i = 1; i < argc; ++i) {
          if (std::strcmp(argv[i], "publish") == 0) n.publish("echo", n.spawn<it::echo_actor>());
        }
      });
}
