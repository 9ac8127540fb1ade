// Uses an installed troupe the way the README tells a user to: one actor, one request.
// Exits 0 only on the right answer.
#include <troupe/troupe.hpp>

#include <chrono>

struct add {
  int a, b;
  using reply = int;
};
using adder = troupe::protocol<add>;

struct adder_actor : troupe::actor<adder> {
  int on(const add& m) { return m.a + m.b; }
};

int main() {
  troupe::system sys;
  auto ref = sys.spawn<adder_actor>();
  return ref.ask(add{2, 3}, std::chrono::seconds(5)).get() == 5 ? 0 : 1;
}
