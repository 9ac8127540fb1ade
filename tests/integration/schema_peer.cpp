// A second program for the schema tests: it defines it::quote with different
// fields than the test executable does (as a newer version of a program
// would), under the same wire name. Started by the tests with spawn_node().
#include <string>

#include "process_fixture.hpp"

namespace it {
struct quote {
  static constexpr std::string_view wire_name = "it::quote";
  std::string symbol;
  double price = 0;  // the test executable's quote has std::int64_t cents here
};
using quote_protocol = troupe::protocol<quote>;
struct quote_actor : troupe::actor<quote_protocol> {
  void on(const quote&) {}
};
}  // namespace it

TROUPE_REGISTER_ACTOR(it::echo_actor);

int main(int argc, char** argv) {
  return troupe::run(
      argc, argv, [] { return 2; },  // only meant to run as a child node
      [](troupe::node& n) {
        n.publish("quotes", n.spawn<it::quote_actor>());
        n.publish("echo", n.spawn<it::echo_actor>());
      });
}
