// hello: the smallest troupe program — spawn an actor, tell it something, ask it something.
#include <chrono>
#include <iostream>
#include <string>

#include <troupe/troupe.hpp>

struct greet {
  std::string name;
};
struct count {
  using reply = int;
};  // a request: ask() yields an int

using greeter_protocol = troupe::protocol<greet, count>;

struct greeter : troupe::actor<greeter_protocol> {
  int greeted = 0;
  void on(const greet& g) {
    ++greeted;
    std::cout << "hello, " << g.name << " (from " << address() << ")\n";
  }
  int on(count) { return greeted; }
};

int main() {
  using namespace std::chrono_literals;
  troupe::system sys;
  troupe::ref<greeter_protocol> g = sys.spawn<greeter>();
  g.tell(greet{"world"});
  g.tell(greet{"troupe"});
  const int n = g.ask(count{}, 1s).get();  // messages from one sender arrive in order
  std::cout << "greeted " << n << " times\n";
}
