// pubsub: a market publishes quotes on a topic; trading desks subscribe to it,
// one in this process and two in each of two child processes. Each process
// gets one copy of every quote however many desks it runs, the desks of a
// process share it, and every desk sees the quotes in the order they were
// published.
//
//   pubsub [quotes]
//
// The same executable is the market and the desks' processes: troupe::run()
// makes a process that spawn_node() started into a node, and runs the setup
// below in it (open the topic, spawn two desks, subscribe them).
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct quote {
  std::string symbol;
  std::int64_t cents = 0;
  std::int64_t seq = 0;
  bool closing = false;  // the last quote of the day
};
using desk_protocol = troupe::protocol<quote>;

struct tally {
  std::string desk;
  std::int64_t quotes = 0;
  bool in_order = true;
  std::int64_t last_acme = 0;
};
using tally_protocol = troupe::protocol<tally>;

// Keeps the latest price of each symbol; at the closing quote, reports.
struct desk : troupe::actor<desk_protocol> {
  desk(std::string name, troupe::ref<tally_protocol> report) : name_(std::move(name)), report_(std::move(report)) {}
  // const quote&: the desk reads its process's one copy of the quote in place.
  void on(const quote& q) {
    if (q.closing) {
      (void)report_.tell(tally{name_, count_, in_order_, latest_["ACME"]});
      return;
    }
    in_order_ = in_order_ && q.seq == count_;
    ++count_;
    latest_[q.symbol] = q.cents;
  }

 private:
  std::string name_;
  troupe::ref<tally_protocol> report_;
  std::map<std::string, std::int64_t> latest_;
  std::int64_t count_ = 0;
  bool in_order_ = true;
};

// In a child process ("desks <market node>"): two desks that report to the market.
void open_desks(troupe::node& n, const std::string& market) {
  auto report = n.lookup<tally_protocol>("troupe://" + market + "/tallies").value();
  auto quotes = n.topic<quote>("quotes");
  for (int i = 1; i <= 2; ++i) quotes.subscribe(n.spawn<desk>(n.name() + "/desk-" + std::to_string(i), report)).value();
}

int market(std::int64_t count) {
  troupe::node_config cfg;
  cfg.name = "market-" + std::to_string(::getpid());
  troupe::node n(cfg);
  troupe::scoped<tally_protocol> tallies{n};
  n.publish("tallies", tallies.self());
  auto quotes = n.topic<quote>("quotes");
  quotes.subscribe(n.spawn<desk>(n.name() + "/desk", tallies.self())).value();
  for (const char* suffix : {"-a", "-b"}) n.spawn_node(cfg.name + suffix, {"desks", cfg.name}).value();
  // The children's desks count once their nodes' announcements have arrived.
  quotes.await_subscribers(5, 10s).value();

  const std::array<const char*, 3> symbols = {"ACME", "INITECH", "GLOBEX"};
  std::int64_t last_acme = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t cents = 10'000 + (i * 7919) % 1000;
    const char* symbol = symbols[static_cast<std::size_t>(i) % symbols.size()];
    if (std::strcmp(symbol, "ACME") == 0) last_acme = cents;
    (void)quotes.publish(quote{symbol, cents, i, false});
  }
  (void)quotes.publish(quote{"", 0, count, true});

  bool all_exact = true;
  for (int i = 0; i < 5; ++i) {
    auto t = tallies.receive<tally>(30s);
    if (!t) {
      std::cerr << "pubsub: " << t.error() << '\n';
      return 1;
    }
    const bool exact = t->quotes == count && t->in_order && t->last_acme == last_acme;
    all_exact = all_exact && exact;
    std::cout << t->desk << ": " << t->quotes << " quotes" << (t->in_order ? ", in order" : ", OUT OF ORDER")
              << ", ACME last at " << t->last_acme << (exact ? "" : "  <- wrong") << '\n';
  }
  const troupe::topic_stats s = quotes.stats();
  std::cout << s.published << " quotes published to " << s.subscribers() << " desks (" << s.local_subscribers
            << " here, " << s.remote_subscribers << " on " << s.subscribed_nodes << " other nodes): " << s.sent
            << " copies sent to other processes, " << s.dropped << " dropped\n";
  return all_exact ? 0 : 1;
}

int main(int argc, char** argv) {
  return troupe::run(
      argc, argv, [&] { return market(argc > 1 ? std::atoll(argv[1]) : 20'000); },
      [&](troupe::node& n) {
        if (argc == 3 && std::strcmp(argv[1], "desks") == 0) open_desks(n, argv[2]);
      });
}
