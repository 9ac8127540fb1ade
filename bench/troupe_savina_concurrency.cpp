// troupe_savina_concurrency.cpp — Savina's concurrency workloads of
// bench/WORKLOADS.md (bank, concdict, barber, philosophers, logmap) on troupe,
// linked into troupe_workloads; see troupe_savina.cpp for how they are written
// and measured, and caf_savina_concurrency.cpp for CAF's side.
//
// Where Savina's actor blocks on an answer (bank's credit, concdict's workers,
// logmap's next term), the troupe actor co_awaits an ask in a task<> handler.
// The default await_policy::sequential is what Savina's blocking Await.result
// means: the actor handles nothing else until the answer is in. Every ask
// carries bench::ask_deadline; a failed one fails the program.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <troupe/troupe.hpp>

#include "bench_common.hpp"
#include "savina_common.hpp"
#include "troupe_harness.hpp"

namespace troupe::bench {

namespace {

using std::int64_t;

// Fails the run with the error of an ask that did not complete.
template <class T>
void require_reply(const troupe::expected<T>& reply, const char* what) {
  if (!reply) bench::fail(std::string(what) + ": " + reply.error().to_string());
}

}  // namespace

// --- bank (Savina "banking") -------------------------------------------------------------

namespace {

struct debit {
  double amount;
  using reply = void;
};
struct balance_query {
  using reply = double;
};
using account_protocol = troupe::protocol<struct credit, debit, balance_query>;
struct start_transfers {};
struct transfer_done {};
using teller_protocol = troupe::protocol<start_transfers, transfer_done>;
struct credit {
  double amount;
  troupe::ref<account_protocol> destination;
  troupe::ref<teller_protocol> teller;
};

struct account_actor : troupe::actor<account_protocol> {
  double balance = 0;
  // Savina's credit: take the amount off, ask the destination to add it, and
  // answer the teller once it has. Sequential awaiting keeps this account's
  // other messages waiting meanwhile (destinations are always higher-numbered
  // accounts, so the waits never form a cycle).
  troupe::task<void> on(credit c) {
    balance -= c.amount;
    auto debited = co_await c.destination.ask(debit{c.amount}, bench::ask_deadline).as_expected();
    require_reply(debited, "bank: debit");
    c.teller.tell(transfer_done{});
  }
  void on(debit d) { balance += d.amount; }
  double on(const balance_query&) { return balance; }
};

struct teller_actor : troupe::actor<teller_protocol> {
  teller_actor(std::vector<troupe::ref<account_protocol>> a, int64_t n, troupe::ref<report> r)
      : accounts(std::move(a)), transfers(n), report_to(std::move(r)) {}
  std::vector<troupe::ref<account_protocol>> accounts;
  int64_t transfers;
  troupe::ref<report> report_to;
  int64_t completed = 0;
  void on(start_transfers) {
    bench::bank_transfer_source source{static_cast<int64_t>(accounts.size())};
    for (int64_t i = 0; i < transfers; ++i) {
      const bench::bank_transfer t = source.next();
      accounts[static_cast<size_t>(t.source)].tell(
          credit{t.amount, accounts[static_cast<size_t>(t.destination)], self()});
    }
  }
  void on(transfer_done) {
    if (++completed == transfers) {
      report_to.tell(done{completed});
      stop();
    }
  }
};

}  // namespace

double run_bank(unsigned threads, const savina_params& s) {
  const std::vector<double> expected = bank_expected_balances(s);
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    std::vector<troupe::ref<account_protocol>> accounts;
    for (int64_t i = 0; i < s.bank_accounts; ++i) accounts.push_back(sys.spawn<account_actor>());
    auto teller = sys.spawn<teller_actor>(accounts, s.bank_transfers, in.self());
    bench::stopwatch clock;
    teller.tell(start_transfers{});
    const int64_t completed = await_done(in, "bank");
    const double seconds = clock.seconds();
    bench::require(completed == s.bank_transfers, "bank: wrong number of transfers");
    for (size_t i = 0; i < accounts.size(); ++i) {
      auto balance = accounts[i].ask(balance_query{}, bench::ask_deadline).try_get();
      require_reply(balance, "bank: balance");
      bench::require(std::fabs(*balance - expected[i]) < bench::bank_tolerance,
                     "bank: account " + std::to_string(i) + " holds " + std::to_string(*balance) + ", expected " +
                         std::to_string(expected[i]));
    }
    return static_cast<double>(completed) / seconds;
  });
}

// --- concdict (Savina's concurrent dictionary) --------------------------------------------

namespace {

struct dictionary_write {
  int32_t key;
  int32_t value;
  using reply = int64_t;  // the value written
};
struct dictionary_read {
  int32_t key;
  using reply = int64_t;  // the value, or bench::concdict_absent
};
struct dictionary_stats {
  int64_t size;
  int64_t writes;
};
struct stats_query {
  using reply = dictionary_stats;
};
using dictionary_protocol = troupe::protocol<dictionary_write, dictionary_read, stats_query>;

struct dictionary_actor : troupe::actor<dictionary_protocol> {
  // Built by spawn(), before the clock starts: keys 0..keys-1 map to themselves.
  explicit dictionary_actor(int64_t keys) {
    map.reserve(static_cast<size_t>(keys));
    for (int32_t k = 0; k < keys; ++k) map.emplace(k, k);
  }
  std::unordered_map<int32_t, int32_t> map;
  int64_t writes = 0;
  int64_t on(const dictionary_write& w) {
    map[w.key] = w.value;
    ++writes;
    return w.value;
  }
  int64_t on(const dictionary_read& r) {
    auto it = map.find(r.key);
    return it == map.end() ? bench::concdict_absent : it->second;
  }
  dictionary_stats on(const stats_query&) { return {static_cast<int64_t>(map.size()), writes}; }
};

struct do_work {};
using dictionary_worker_protocol = troupe::protocol<do_work>;

// Sends its M requests one at a time, each after the previous reply.
struct dictionary_worker : troupe::actor<dictionary_worker_protocol> {
  dictionary_worker(int64_t id, const savina_params& s, troupe::ref<dictionary_protocol> d, troupe::ref<report> r)
      : source(id, s), requests(s.concdict_requests), dictionary(std::move(d)), report_to(std::move(r)) {}
  bench::concdict_request_source source;
  int64_t requests;
  troupe::ref<dictionary_protocol> dictionary;
  troupe::ref<report> report_to;
  troupe::task<void> on(do_work) {
    for (int64_t i = 0; i < requests; ++i) {
      const bench::concdict_request r = source.next();
      if (r.write) {
        auto written = co_await dictionary.ask(dictionary_write{r.key, r.value}, bench::ask_deadline).as_expected();
        require_reply(written, "concdict: write");
        bench::require(*written == r.value, "concdict: a write answered the wrong value");
      } else {
        auto value = co_await dictionary.ask(dictionary_read{r.key}, bench::ask_deadline).as_expected();
        require_reply(value, "concdict: read");
        bench::require(*value != bench::concdict_absent, "concdict: a key went missing");
      }
    }
    report_to.tell(done{requests});
    stop();
  }
};

}  // namespace

double run_concdict(unsigned threads, const savina_params& s) {
  const int64_t expected_writes = concdict_expected_writes(s);
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto dictionary = sys.spawn<dictionary_actor>(s.concdict_keys);
    std::vector<troupe::ref<dictionary_worker_protocol>> workers;
    for (int64_t i = 0; i < s.concdict_workers; ++i) {
      workers.push_back(sys.spawn<dictionary_worker>(i, s, dictionary, in.self()));
    }
    bench::stopwatch clock;
    for (const auto& w : workers) w.tell(do_work{});
    int64_t requests = 0;
    for (int64_t i = 0; i < s.concdict_workers; ++i) requests += await_done(in, "concdict");
    const double seconds = clock.seconds();
    bench::require(requests == s.concdict_workers * s.concdict_requests, "concdict: wrong number of requests");
    auto stats = dictionary.ask(stats_query{}, bench::ask_deadline).try_get();
    require_reply(stats, "concdict: stats");
    bench::require(stats->writes == expected_writes && stats->size == s.concdict_keys,
                   "concdict: the dictionary saw " + std::to_string(stats->writes) + " writes (expected " +
                       std::to_string(expected_writes) + ") and holds " + std::to_string(stats->size) + " keys");
    return static_cast<double>(requests) / seconds;
  });
}

// --- barber (sleeping barber) ---------------------------------------------------------

namespace {

struct customer_full {};
struct customer_wait {};
struct customer_start {};
struct customer_done {};
using customer_protocol = troupe::protocol<customer_full, customer_wait, customer_start, customer_done>;
struct enter_room {
  troupe::ref<customer_protocol> customer;
};
struct next_customer {};
struct close_shop {};
using room_protocol = troupe::protocol<enter_room, next_customer, close_shop>;
struct haircut {
  troupe::ref<customer_protocol> customer;
  troupe::ref<room_protocol> room;
};
struct barber_sleep {};
using barber_protocol = troupe::protocol<haircut, barber_sleep, close_shop>;
struct open_shop {};
struct customer_returned {
  troupe::ref<customer_protocol> customer;
};
struct customer_served {};
using factory_protocol = troupe::protocol<open_shop, customer_returned, customer_served>;

// Turned away from a full room, a customer goes back to the factory, which
// sends it to the room again.
struct customer_actor : troupe::actor<customer_protocol> {
  explicit customer_actor(troupe::ref<factory_protocol> f) : factory(std::move(f)) {}
  troupe::ref<factory_protocol> factory;
  void on(customer_full) { factory.tell(customer_returned{self()}); }
  void on(customer_wait) {}
  void on(customer_start) {}
  void on(customer_done) {
    factory.tell(customer_served{});
    stop();
  }
};

struct waiting_room : troupe::actor<room_protocol> {
  waiting_room(int64_t c, troupe::ref<barber_protocol> b) : capacity(c), barber(std::move(b)) {}
  int64_t capacity;
  troupe::ref<barber_protocol> barber;
  std::deque<troupe::ref<customer_protocol>> waiting;
  bool barber_asleep = true;
  void on(const enter_room& e) {
    if (static_cast<int64_t>(waiting.size()) == capacity) {
      e.customer.tell(customer_full{});
      return;
    }
    waiting.push_back(e.customer);
    if (barber_asleep) {
      barber_asleep = false;
      self().tell(next_customer{});
    } else {
      e.customer.tell(customer_wait{});
    }
  }
  void on(next_customer) {
    if (waiting.empty()) {
      barber.tell(barber_sleep{});
      barber_asleep = true;
      return;
    }
    barber.tell(haircut{std::move(waiting.front()), self()});
    waiting.pop_front();
  }
  void on(close_shop) {
    barber.tell(close_shop{});
    stop();
  }
};

struct barber_actor : troupe::actor<barber_protocol> {
  explicit barber_actor(int64_t rate) : haircut_rate(static_cast<int>(rate)) {}
  int haircut_rate;
  bench::savina_random random;
  void on(const haircut& h) {
    h.customer.tell(customer_start{});
    bench::busy_work(random.next_int(haircut_rate) + 10);
    h.customer.tell(customer_done{});
    h.room.tell(next_customer{});
  }
  void on(barber_sleep) {}
  void on(close_shop) { stop(); }
};

// Spawns the N customers in one activation, with busy work between them.
struct customer_factory : troupe::actor<factory_protocol> {
  customer_factory(const savina_params& s, troupe::ref<room_protocol> r, troupe::ref<report> to)
      : haircuts(s.barber_haircuts),
        production_rate(static_cast<int>(s.barber_production)),
        room(std::move(r)),
        report_to(std::move(to)) {}
  int64_t haircuts;
  int production_rate;
  troupe::ref<room_protocol> room;
  troupe::ref<report> report_to;
  bench::savina_random random;
  int64_t served = 0;
  int64_t attempts = 0;
  void on(open_shop) {
    for (int64_t i = 0; i < haircuts; ++i) {
      ++attempts;
      room.tell(enter_room{system().spawn<customer_actor>(self())});
      bench::busy_work(random.next_int(production_rate) + 10);
    }
  }
  void on(customer_returned r) {
    ++attempts;
    room.tell(enter_room{std::move(r.customer)});
  }
  void on(customer_served) {
    if (++served < haircuts) return;
    bench::require(attempts >= served, "barber: fewer attempts than haircuts");
    // How often customers were turned away depends on timing: it explains a
    // repetition's figure (Savina tracks it too).
    std::fprintf(stderr, "barber: %lld visits to the room for %lld haircuts\n", static_cast<long long>(attempts),
                 static_cast<long long>(served));
    room.tell(close_shop{});
    report_to.tell(done{served});
    stop();
  }
};

}  // namespace

double run_barber(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto barber = sys.spawn<barber_actor>(s.barber_haircut);
    auto room = sys.spawn<waiting_room>(s.barber_room, barber);
    auto factory = sys.spawn<customer_factory>(s, room, in.self());
    bench::stopwatch clock;
    factory.tell(open_shop{});
    const int64_t served = await_done(in, "barber");
    const double seconds = clock.seconds();
    bench::require(served == s.barber_haircuts, "barber: wrong number of haircuts");
    return static_cast<double>(served) / seconds;
  });
}

// --- philosophers (dining philosophers) -------------------------------------------------

namespace {

struct philosopher_start {};
struct philosopher_denied {};
struct philosopher_eat {};
using philosopher_protocol = troupe::protocol<philosopher_start, philosopher_denied, philosopher_eat>;
struct hungry {
  troupe::ref<philosopher_protocol> philosopher;
  int id;
};
struct done_eating {
  int id;
};
struct philosopher_exit {
  int64_t meals;
};
using arbitrator_protocol = troupe::protocol<hungry, done_eating, philosopher_exit>;

struct philosopher_actor : troupe::actor<philosopher_protocol> {
  philosopher_actor(int i, int64_t r, troupe::ref<arbitrator_protocol> a)
      : id(i), rounds(r), arbitrator(std::move(a)) {}
  int id;
  int64_t rounds;
  troupe::ref<arbitrator_protocol> arbitrator;
  int64_t meals = 0;
  void on(philosopher_start) { arbitrator.tell(hungry{self(), id}); }
  void on(philosopher_denied) { arbitrator.tell(hungry{self(), id}); }
  void on(philosopher_eat) {
    ++meals;
    arbitrator.tell(done_eating{id});
    if (meals < rounds) {
      self().tell(philosopher_start{});
    } else {
      arbitrator.tell(philosopher_exit{meals});
      stop();
    }
  }
};

// Grants both forks of a hungry philosopher at once, or denies.
struct arbitrator_actor : troupe::actor<arbitrator_protocol> {
  arbitrator_actor(int64_t p, troupe::ref<report> r)
      : forks(static_cast<size_t>(p), false), philosophers(p), report_to(std::move(r)) {}
  std::vector<bool> forks;
  int64_t philosophers;
  troupe::ref<report> report_to;
  int64_t granted = 0;
  int64_t meals = 0;
  int64_t exited = 0;
  size_t left(int id) const { return static_cast<size_t>(id); }
  size_t right(int id) const { return static_cast<size_t>((id + 1) % philosophers); }
  void on(const hungry& h) {
    if (forks[left(h.id)] || forks[right(h.id)]) {
      h.philosopher.tell(philosopher_denied{});
      return;
    }
    forks[left(h.id)] = forks[right(h.id)] = true;
    ++granted;
    h.philosopher.tell(philosopher_eat{});
  }
  void on(done_eating d) {
    bench::require(forks[left(d.id)] && forks[right(d.id)], "philosophers: done eating without both forks");
    forks[left(d.id)] = forks[right(d.id)] = false;
  }
  void on(philosopher_exit e) {
    meals += e.meals;
    if (++exited < philosophers) return;
    bench::require(meals == granted, "philosophers: meals eaten and forks granted differ");
    report_to.tell(done{meals});
    stop();
  }
};

}  // namespace

double run_philosophers(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](troupe::system& sys) {
    inbox in{sys};
    auto arbitrator = sys.spawn<arbitrator_actor>(s.philosophers, in.self());
    std::vector<troupe::ref<philosopher_protocol>> philosophers;
    for (int i = 0; i < s.philosophers; ++i) {
      philosophers.push_back(sys.spawn<philosopher_actor>(i, s.philosopher_rounds, arbitrator));
    }
    bench::stopwatch clock;
    for (const auto& p : philosophers) p.tell(philosopher_start{});
    const int64_t meals = await_done(in, "philosophers");
    const double seconds = clock.seconds();
    bench::require(meals == s.philosophers * s.philosopher_rounds, "philosophers: wrong number of meals");
    return static_cast<double>(meals) / seconds;
  });
}

// --- logmap (logistic map series) ------------------------------------------------------

namespace {

struct compute_term {
  double term;
  using reply = double;
};
using rate_computer_protocol = troupe::protocol<compute_term>;
struct next_term {};
struct get_term {};
using series_protocol = troupe::protocol<next_term, get_term>;
struct series_result {
  int64_t series;
  int64_t computed;  // terms this series computed
  double term;
};
struct start_series {};
using logmap_master_protocol = troupe::protocol<start_series, series_result, struct meet_series>;
struct meet_series {
  std::vector<troupe::ref<series_protocol>> workers;
};
struct final_terms {
  std::vector<double> terms;
};
using terms_report = troupe::protocol<final_terms>;

struct rate_computer : troupe::actor<rate_computer_protocol> {
  explicit rate_computer(double r) : rate(r) {}
  double rate;
  double on(const compute_term& c) { return bench::logmap_next(c.term, rate); }
};

// Asks its rate computer for each next term and waits for it (Savina's await
// version): the next next_term is handled only once this one's term is in.
struct series_worker : troupe::actor<series_protocol> {
  series_worker(int64_t i, troupe::ref<rate_computer_protocol> c, troupe::ref<logmap_master_protocol> m)
      : id(i), term(bench::logmap_start(i)), computer(std::move(c)), master(std::move(m)) {}
  int64_t id;
  double term;
  troupe::ref<rate_computer_protocol> computer;
  troupe::ref<logmap_master_protocol> master;
  int64_t computed = 0;
  troupe::task<void> on(next_term) {
    auto next = co_await computer.ask(compute_term{term}, bench::ask_deadline).as_expected();
    require_reply(next, "logmap: compute");
    term = *next;
    ++computed;
  }
  void on(get_term) { master.tell(series_result{id, computed, term}); }
};

struct logmap_master : troupe::actor<logmap_master_protocol> {
  logmap_master(int64_t t, troupe::ref<terms_report> r) : terms(t), report_to(std::move(r)) {}
  int64_t terms;
  troupe::ref<terms_report> report_to;
  std::vector<troupe::ref<series_protocol>> workers;
  std::vector<double> results;
  size_t received = 0;
  void on(meet_series m) {
    workers = std::move(m.workers);
    results.assign(workers.size(), 0.0);
  }
  // Savina's master: every next_term request up front, then one get_term each.
  void on(start_series) {
    for (int64_t t = 0; t < terms; ++t) {
      for (const auto& w : workers) w.tell(next_term{});
    }
    for (const auto& w : workers) w.tell(get_term{});
  }
  void on(series_result r) {
    bench::require(r.computed == terms, "logmap: a series computed the wrong number of terms");
    results[static_cast<size_t>(r.series)] = r.term;
    if (++received == workers.size()) {
      report_to.tell(final_terms{std::move(results)});
      stop();
    }
  }
};

}  // namespace

double run_logmap(unsigned threads, const savina_params& s) {
  std::vector<double> expected;
  for (int64_t i = 0; i < s.logmap_series; ++i) expected.push_back(logmap_expected(i, s.logmap_terms));
  return with_system(threads, [&](troupe::system& sys) {
    troupe::scoped<terms_report> in{sys};
    auto master = sys.spawn<logmap_master>(s.logmap_terms, in.self());
    std::vector<troupe::ref<series_protocol>> workers;
    for (int64_t i = 0; i < s.logmap_series; ++i) {
      auto computer = sys.spawn<rate_computer>(bench::logmap_rate(i));
      workers.push_back(sys.spawn<series_worker>(i, computer, master));
    }
    master.tell(meet_series{std::move(workers)});
    bench::stopwatch clock;
    master.tell(start_series{});
    auto terms = in.receive<final_terms>(watchdog);
    const double seconds = clock.seconds();
    if (!terms) bench::fail("logmap: " + terms.error().to_string());
    for (size_t i = 0; i < expected.size(); ++i) {
      bench::require(std::fabs(terms->terms[i] - expected[i]) <= 1e-12,
                     "logmap: series " + std::to_string(i) + " ended at " + std::to_string(terms->terms[i]) +
                         ", expected " + std::to_string(expected[i]));
    }
    return static_cast<double>(s.logmap_series * s.logmap_terms) / seconds;
  });
}

}  // namespace troupe::bench
