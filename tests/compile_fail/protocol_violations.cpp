// Programs that must NOT compile: each TROUPE_CASE_* below is built by a CTest
// (see CMakeLists.txt) that passes only if the compiler rejects it with troupe's
// readable message. Without a case macro the file compiles: the control build
// proves that the failures come from the violation, not from a typo.
#include <chrono>

#include <troupe/troupe.hpp>

struct deposit {
  long cents;
};
struct balance {
  using reply = long;
};
using bank = troupe::protocol<deposit, balance>;

struct bank_actor : troupe::actor<bank> {
  long total = 0;
  void on(deposit d) { total += d.cents; }
  long on(balance) { return total; }
};

// A message that cannot cross a process boundary (a raw pointer).
struct with_pointer {
  int* where;
};
using local_only = troupe::protocol<with_pointer>;

// A topic's message type that no protocol here lists.
struct price {
  long cents;
};

#if defined(TROUPE_CASE_MISSING_HANDLER)
struct half_bank : troupe::actor<bank> {
  void on(deposit) {}
  // no on(balance)
};
#endif

int main() {
  troupe::system sys;
  troupe::ref<bank> b = sys.spawn<bank_actor>();
  (void)b.tell(deposit{5});
#if defined(TROUPE_CASE_UNLISTED_TELL)
  (void)b.tell(42);  // an int is not in protocol<deposit, balance>
#elif defined(TROUPE_CASE_UNLISTED_ASK)
  struct audit {
    using reply = bool;
  };
  (void)b.ask(audit{}, std::chrono::seconds(1));
#elif defined(TROUPE_CASE_ASK_WITHOUT_REPLY)
  (void)b.ask(deposit{1}, std::chrono::seconds(1));  // deposit names no reply type
#elif defined(TROUPE_CASE_MISSING_HANDLER)
  (void)sys.spawn<half_bank>();
#elif defined(TROUPE_CASE_REMOTE_NOT_SERIALIZABLE)
  troupe::node n;
  (void)n.lookup<local_only>("troupe://elsewhere/x");  // with_pointer cannot cross
#elif defined(TROUPE_CASE_SUBSCRIBER_REJECTS_TOPIC)
  troupe::node n;
  (void)n.topic<price>("prices").subscribe(b);  // a bank does not take prices
#elif defined(TROUPE_CASE_CONSUMER_REJECTS_CHANNEL)
  // A bank does not take delivery<price>: it cannot consume a channel of prices.
  (void)troupe::spawn_consumer<price>(sys, b, troupe::ref<troupe::producer_controller_protocol<price> >{});
#elif defined(TROUPE_CASE_PRODUCER_REJECTS_DEMAND)
  (void)troupe::spawn_producer<price>(sys, b);  // a bank does not take demand<price>
#endif
  // Local actors may speak it: only crossing needs serialization.
  (void)sys.spawn<local_only>([](with_pointer) {});
  return 0;
}
