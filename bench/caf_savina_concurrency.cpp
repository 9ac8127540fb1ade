// caf_savina_concurrency.cpp — Savina's concurrency workloads of
// bench/WORKLOADS.md (bank, concdict, barber, philosophers, logmap) on CAF 0.17,
// linked into caf_workloads; see caf_savina.cpp for how they are written and
// measured, and troupe_savina_concurrency.cpp for troupe's side.
//
// Where Savina's actor asks and waits for the answer, the CAF actor sends a
// request and continues in `.then(...)`. In bank and logmap the actor must
// handle nothing else until the answer is in (Savina's blocking Await.result;
// troupe's sequential co_await): there the messages that arrive meanwhile wait
// in a stash in the actor's state, in order (Savina's "ManualStash" variant).
// CAF's own `.await(...)` has those semantics but leaves the waiting messages
// in the mailbox and tries each of them again on every response, which is
// quadratic in the queue: logmap ran at ~6k terms/s with it at T = 25,000,
// against ~190k with the stash. Every request carries bench::ask_deadline, and
// a failed one fails the program.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "caf/all.hpp"

#include "bench_common.hpp"
#include "caf_harness.hpp"
#include "savina_common.hpp"

namespace troupe::bench {

namespace {

using caf_side::await_done;
using caf_side::default_constructed_state;
using caf_side::done_atom;
using caf_side::start_atom;
using caf_side::stop_atom;
using caf_side::watchdog;
using caf_side::with_system;
using std::int32_t;
using std::int64_t;

using credit_atom = caf::atom_constant<caf::atom("credit")>;
using debit_atom = caf::atom_constant<caf::atom("debit")>;
using balance_atom = caf::atom_constant<caf::atom("balance")>;
using transfer_atom = caf::atom_constant<caf::atom("transfer")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using enter_atom = caf::atom_constant<caf::atom("enter")>;
using next_atom = caf::atom_constant<caf::atom("next")>;
using haircut_atom = caf::atom_constant<caf::atom("haircut")>;
using sleep_atom = caf::atom_constant<caf::atom("sleep")>;
using full_atom = caf::atom_constant<caf::atom("full")>;
using wait_atom = caf::atom_constant<caf::atom("wait")>;
using begin_atom = caf::atom_constant<caf::atom("begin")>;
using served_atom = caf::atom_constant<caf::atom("served")>;
using returned_atom = caf::atom_constant<caf::atom("returned")>;
using hungry_atom = caf::atom_constant<caf::atom("hungry")>;
using denied_atom = caf::atom_constant<caf::atom("denied")>;
using eat_atom = caf::atom_constant<caf::atom("eat")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using retire_atom = caf::atom_constant<caf::atom("retire")>;
using workers_atom = caf::atom_constant<caf::atom("workers")>;
using compute_atom = caf::atom_constant<caf::atom("compute")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using result_atom = caf::atom_constant<caf::atom("result")>;
using terms_atom = caf::atom_constant<caf::atom("terms")>;

// The error handler of every request: a failed request fails the run.
auto fail_on_error(std::string what) {
  return [what = std::move(what)](caf::error& err) { bench::fail(what + ": " + caf::to_string(err)); };
}

}  // namespace

// --- bank (Savina "banking") -------------------------------------------------------------

namespace {

// While its debit request is out, an account handles no other credit or debit
// (Savina's blocking Await.result, troupe's sequential co_await): they wait in
// this stash, in arrival order. Not CAF's `await`, which leaves them in the
// mailbox and rescans all of them for every response (see the file comment).
struct stashed_credit {
  double amount;
  caf::actor destination;
  caf::actor teller;
};
struct stashed_debit {
  double amount;
  caf::response_promise promise;
};

struct account_state {
  double balance = 0;
  bool awaiting = false;
  std::deque<std::variant<stashed_credit, stashed_debit>> stash;
};

using account_actor = caf::stateful_actor<account_state>;

// Savina's credit: take the amount off, request the destination to add it, and
// answer the teller once it has. Destinations are always higher-numbered
// accounts, so the waits never form a cycle.
void handle_credit(account_actor* self, stashed_credit c) {
  self->state.balance -= c.amount;
  self->state.awaiting = true;
  self->request(c.destination, bench::ask_deadline, debit_atom::value, c.amount)
      .then(
          [=]() {
            self->send(c.teller, transfer_atom::value);
            auto& state = self->state;
            state.awaiting = false;
            while (!state.awaiting && !state.stash.empty()) {
              auto next = std::move(state.stash.front());
              state.stash.pop_front();
              if (auto* credit = std::get_if<stashed_credit>(&next)) {
                handle_credit(self, std::move(*credit));
              } else {
                auto& debit = std::get<stashed_debit>(next);
                state.balance += debit.amount;
                debit.promise.deliver(caf::unit);
              }
            }
          },
          fail_on_error("bank: debit"));
}

caf::behavior account(account_actor* self) {
  return {
      [=](credit_atom, double amount, caf::actor& destination) {
        stashed_credit c{amount, std::move(destination), caf::actor_cast<caf::actor>(self->current_sender())};
        if (self->state.awaiting) {
          self->state.stash.emplace_back(std::move(c));
        } else {
          handle_credit(self, std::move(c));
        }
      },
      // Answered with an empty message, like troupe's void reply.
      [=](debit_atom, double amount) {
        if (self->state.awaiting) {
          self->state.stash.emplace_back(stashed_debit{amount, self->make_response_promise()});
        } else {
          self->state.balance += amount;
        }
      },
      [=](balance_atom) { return self->state.balance; },
  };
}

struct teller_state {
  int64_t completed = 0;
};

caf::behavior teller(caf::stateful_actor<teller_state>* self, std::vector<caf::actor> accounts, int64_t transfers,
                     caf::actor report_to) {
  return {
      [=](start_atom) {
        bench::bank_transfer_source source{static_cast<int64_t>(accounts.size())};
        for (int64_t i = 0; i < transfers; ++i) {
          const bench::bank_transfer t = source.next();
          self->send(accounts[static_cast<size_t>(t.source)], credit_atom::value, t.amount,
                     accounts[static_cast<size_t>(t.destination)]);
        }
      },
      [=](transfer_atom) {
        if (++self->state.completed == transfers) {
          self->send(report_to, done_atom::value, self->state.completed);
          self->quit();
        }
      },
  };
}

}  // namespace

double run_bank(unsigned threads, const savina_params& s) {
  const std::vector<double> expected = bank_expected_balances(s);
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    std::vector<caf::actor> accounts;
    for (int64_t i = 0; i < s.bank_accounts; ++i) accounts.push_back(system.spawn(account));
    auto the_teller = system.spawn(teller, accounts, s.bank_transfers, caf::actor_cast<caf::actor>(self));
    bench::stopwatch clock;
    self->send(the_teller, start_atom::value);
    const int64_t completed = await_done(self, "bank");
    const double seconds = clock.seconds();
    bench::require(completed == s.bank_transfers, "bank: wrong number of transfers");
    for (size_t i = 0; i < accounts.size(); ++i) {
      self->request(accounts[i], bench::ask_deadline, balance_atom::value)
          .receive(
              [&](double balance) {
                bench::require(std::fabs(balance - expected[i]) < bench::bank_tolerance,
                               "bank: account " + std::to_string(i) + " holds " + std::to_string(balance) +
                                   ", expected " + std::to_string(expected[i]));
              },
              fail_on_error("bank: balance"));
      caf::anon_send_exit(accounts[i], caf::exit_reason::user_shutdown);
    }
    return static_cast<double>(completed) / seconds;
  });
}

// --- concdict (Savina's concurrent dictionary) --------------------------------------------

namespace {

struct dictionary_state {
  std::unordered_map<int32_t, int32_t> map;
  int64_t writes = 0;
};

caf::behavior dictionary(caf::stateful_actor<dictionary_state>* self, int64_t keys) {
  // Keys 0..keys-1 map to themselves. CAF runs this on the actor's first
  // activation; run_concdict waits for it (a stats request) before the clock.
  auto& map = self->state.map;
  map.reserve(static_cast<size_t>(keys));
  for (int32_t k = 0; k < keys; ++k) map.emplace(k, k);
  return {
      [=](write_atom, int32_t key, int32_t value) -> int64_t {
        self->state.map[key] = value;
        ++self->state.writes;
        return value;
      },
      [=](read_atom, int32_t key) -> int64_t {
        auto it = self->state.map.find(key);
        return it == self->state.map.end() ? bench::concdict_absent : it->second;
      },
      [=](stats_atom) { return caf::make_message(static_cast<int64_t>(self->state.map.size()), self->state.writes); },
  };
}

struct dictionary_worker_state {
  std::optional<bench::concdict_request_source> source;
  int64_t sent = 0;
};

// Sends the next request, or reports when all M are answered.
void send_next_request(caf::stateful_actor<dictionary_worker_state>* self, caf::actor dictionary, int64_t requests,
                       caf::actor report_to) {
  auto& state = self->state;
  if (state.sent == requests) {
    self->send(report_to, done_atom::value, requests);
    self->quit();
    return;
  }
  ++state.sent;
  const bench::concdict_request r = state.source->next();
  auto next = [=] { send_next_request(self, dictionary, requests, report_to); };
  if (r.write) {
    self->request(dictionary, bench::ask_deadline, write_atom::value, r.key, r.value)
        .then(
            [=](int64_t written) {
              bench::require(written == r.value, "concdict: a write answered the wrong value");
              next();
            },
            fail_on_error("concdict: write"));
  } else {
    self->request(dictionary, bench::ask_deadline, read_atom::value, r.key)
        .then(
            [=](int64_t value) {
              bench::require(value != bench::concdict_absent, "concdict: a key went missing");
              next();
            },
            fail_on_error("concdict: read"));
  }
}

caf::behavior dictionary_worker(caf::stateful_actor<dictionary_worker_state>* self, int64_t id, savina_params s,
                                caf::actor dictionary, caf::actor report_to) {
  self->state.source.emplace(id, s);
  return {
      [=](start_atom) { send_next_request(self, dictionary, s.concdict_requests, report_to); },
  };
}

}  // namespace

double run_concdict(unsigned threads, const savina_params& s) {
  const int64_t expected_writes = concdict_expected_writes(s);
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto dict = system.spawn(dictionary, s.concdict_keys);
    auto stats = [&] {
      std::pair<int64_t, int64_t> result;
      self->request(dict, bench::ask_deadline, stats_atom::value)
          .receive(
              [&](int64_t size, int64_t writes) {
                result = {size, writes};
              },
              fail_on_error("concdict: stats"));
      return result;
    };
    (void)stats();  // the dictionary is built
    std::vector<caf::actor> workers;
    for (int64_t i = 0; i < s.concdict_workers; ++i) {
      workers.push_back(system.spawn(dictionary_worker, i, s, dict, caf::actor_cast<caf::actor>(self)));
    }
    bench::stopwatch clock;
    for (const auto& w : workers) self->send(w, start_atom::value);
    int64_t requests = 0;
    for (int64_t i = 0; i < s.concdict_workers; ++i) requests += await_done(self, "concdict");
    const double seconds = clock.seconds();
    bench::require(requests == s.concdict_workers * s.concdict_requests, "concdict: wrong number of requests");
    const auto [size, writes] = stats();
    bench::require(writes == expected_writes && size == s.concdict_keys,
                   "concdict: the dictionary saw " + std::to_string(writes) + " writes (expected " +
                       std::to_string(expected_writes) + ") and holds " + std::to_string(size) + " keys");
    caf::anon_send_exit(dict, caf::exit_reason::user_shutdown);
    return static_cast<double>(requests) / seconds;
  });
}

// --- barber (sleeping barber) ---------------------------------------------------------

namespace {

// Turned away from a full room, a customer goes back to the factory, which
// sends it to the room again.
caf::behavior customer(caf::event_based_actor* self, caf::actor factory) {
  return {
      [=](full_atom) { self->send(factory, returned_atom::value, caf::actor_cast<caf::actor>(self)); },
      [=](wait_atom) {},
      [=](begin_atom) {},
      [=](served_atom) {
        self->send(factory, served_atom::value);
        self->quit();
      },
  };
}

struct waiting_room_state {
  std::deque<caf::actor> waiting;
  bool barber_asleep = true;
};
static_assert(default_constructed_state<waiting_room_state>);

caf::behavior waiting_room(caf::stateful_actor<waiting_room_state>* self, int64_t capacity, caf::actor barber) {
  return {
      [=](enter_atom, const caf::actor& visitor) {
        auto& state = self->state;
        if (static_cast<int64_t>(state.waiting.size()) == capacity) {
          self->send(visitor, full_atom::value);
          return;
        }
        state.waiting.push_back(visitor);
        if (state.barber_asleep) {
          state.barber_asleep = false;
          self->send(self, next_atom::value);
        } else {
          self->send(visitor, wait_atom::value);
        }
      },
      [=](next_atom) {
        auto& state = self->state;
        if (state.waiting.empty()) {
          self->send(barber, sleep_atom::value);
          state.barber_asleep = true;
          return;
        }
        self->send(barber, haircut_atom::value, std::move(state.waiting.front()), caf::actor_cast<caf::actor>(self));
        state.waiting.pop_front();
      },
      [=](stop_atom) {
        self->send(barber, stop_atom::value);
        self->quit();
      },
  };
}

struct barber_state {
  bench::savina_random random;
};

caf::behavior barber(caf::stateful_actor<barber_state>* self, int64_t haircut_rate) {
  return {
      [=](haircut_atom, const caf::actor& visitor, const caf::actor& room) {
        self->send(visitor, begin_atom::value);
        bench::busy_work(self->state.random.next_int(static_cast<int>(haircut_rate)) + 10);
        self->send(visitor, served_atom::value);
        self->send(room, next_atom::value);
      },
      [=](sleep_atom) {},
      [=](stop_atom) { self->quit(); },
  };
}

struct customer_factory_state {
  bench::savina_random random;
  int64_t served = 0;
  int64_t attempts = 0;
};

// Spawns the N customers in one activation, with busy work between them.
caf::behavior customer_factory(caf::stateful_actor<customer_factory_state>* self, int64_t haircuts,
                               int64_t production_rate, caf::actor room, caf::actor report_to) {
  return {
      [=](start_atom) {
        auto me = caf::actor_cast<caf::actor>(self);
        for (int64_t i = 0; i < haircuts; ++i) {
          ++self->state.attempts;
          self->send(room, enter_atom::value, self->spawn(customer, me));
          bench::busy_work(self->state.random.next_int(static_cast<int>(production_rate)) + 10);
        }
      },
      [=](returned_atom, caf::actor& visitor) {
        ++self->state.attempts;
        self->send(room, enter_atom::value, std::move(visitor));
      },
      [=](served_atom) {
        auto& state = self->state;
        if (++state.served < haircuts) return;
        bench::require(state.attempts >= state.served, "barber: fewer attempts than haircuts");
        // How often customers were turned away depends on timing: it explains a
        // repetition's figure (Savina tracks it too).
        std::fprintf(stderr, "barber: %lld visits to the room for %lld haircuts\n",
                     static_cast<long long>(state.attempts), static_cast<long long>(state.served));
        self->send(room, stop_atom::value);
        self->send(report_to, done_atom::value, state.served);
        self->quit();
      },
  };
}

}  // namespace

double run_barber(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto the_barber = system.spawn(barber, s.barber_haircut);
    auto room = system.spawn(waiting_room, s.barber_room, the_barber);
    auto factory =
        system.spawn(customer_factory, s.barber_haircuts, s.barber_production, room, caf::actor_cast<caf::actor>(self));
    bench::stopwatch clock;
    self->send(factory, start_atom::value);
    const int64_t served = await_done(self, "barber");
    const double seconds = clock.seconds();
    bench::require(served == s.barber_haircuts, "barber: wrong number of haircuts");
    return static_cast<double>(served) / seconds;
  });
}

// --- philosophers (dining philosophers) -------------------------------------------------

namespace {

struct philosopher_state {
  int64_t meals = 0;
};

caf::behavior philosopher(caf::stateful_actor<philosopher_state>* self, int id, int64_t rounds, caf::actor arbitrator) {
  auto me = caf::actor_cast<caf::actor>(self);
  return {
      [=](start_atom) { self->send(arbitrator, hungry_atom::value, me, id); },
      [=](denied_atom) { self->send(arbitrator, hungry_atom::value, me, id); },
      [=](eat_atom) {
        ++self->state.meals;
        self->send(arbitrator, release_atom::value, id);
        if (self->state.meals < rounds) {
          self->send(self, start_atom::value);
        } else {
          self->send(arbitrator, retire_atom::value, self->state.meals);
          self->quit();
        }
      },
  };
}

struct arbitrator_state {
  std::vector<bool> forks;
  int64_t granted = 0;
  int64_t meals = 0;
  int64_t retired = 0;
};

// Grants both forks of a hungry philosopher at once, or denies.
caf::behavior arbitrator(caf::stateful_actor<arbitrator_state>* self, int64_t philosophers, caf::actor report_to) {
  self->state.forks.assign(static_cast<size_t>(philosophers), false);
  auto left = [](int id) { return static_cast<size_t>(id); };
  auto right = [=](int id) { return static_cast<size_t>((id + 1) % philosophers); };
  return {
      [=](hungry_atom, const caf::actor& who, int id) {
        auto& forks = self->state.forks;
        if (forks[left(id)] || forks[right(id)]) {
          self->send(who, denied_atom::value);
          return;
        }
        forks[left(id)] = forks[right(id)] = true;
        ++self->state.granted;
        self->send(who, eat_atom::value);
      },
      [=](release_atom, int id) {
        auto& forks = self->state.forks;
        bench::require(forks[left(id)] && forks[right(id)], "philosophers: done eating without both forks");
        forks[left(id)] = forks[right(id)] = false;
      },
      [=](retire_atom, int64_t meals) {
        auto& state = self->state;
        state.meals += meals;
        if (++state.retired < philosophers) return;
        bench::require(state.meals == state.granted, "philosophers: meals eaten and forks granted differ");
        self->send(report_to, done_atom::value, state.meals);
        self->quit();
      },
  };
}

}  // namespace

double run_philosophers(unsigned threads, const savina_params& s) {
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto the_arbitrator = system.spawn(arbitrator, s.philosophers, caf::actor_cast<caf::actor>(self));
    std::vector<caf::actor> philosophers;
    for (int i = 0; i < s.philosophers; ++i) {
      philosophers.push_back(system.spawn(philosopher, i, s.philosopher_rounds, the_arbitrator));
    }
    bench::stopwatch clock;
    for (const auto& p : philosophers) self->send(p, start_atom::value);
    const int64_t meals = await_done(self, "philosophers");
    const double seconds = clock.seconds();
    bench::require(meals == s.philosophers * s.philosopher_rounds, "philosophers: wrong number of meals");
    return static_cast<double>(meals) / seconds;
  });
}

// --- logmap (logistic map series) ------------------------------------------------------

namespace {

caf::behavior rate_computer(caf::event_based_actor*, double rate) {
  return {
      [=](compute_atom, double term) { return bench::logmap_next(term, rate); },
  };
}

// While its compute request is out, a series handles no other message (Savina's
// blocking Await.result, troupe's sequential co_await): next-term messages that
// arrive meanwhile are counted (they carry nothing), and a get waits for them.
struct series_worker_state {
  double term = 0;
  int64_t computed = 0;
  bool awaiting = false;
  int64_t stashed_next = 0;
  bool stashed_get = false;
};

using series_actor = caf::stateful_actor<series_worker_state>;

void report_term(series_actor* self, int64_t id, const caf::actor& master) {
  self->send(master, result_atom::value, id, self->state.computed, self->state.term);
}

void request_next_term(series_actor* self, int64_t id, caf::actor computer, caf::actor master) {
  self->state.awaiting = true;
  self->request(computer, bench::ask_deadline, compute_atom::value, self->state.term)
      .then(
          [=](double next) {
            auto& state = self->state;
            state.term = next;
            ++state.computed;
            state.awaiting = false;
            if (state.stashed_next > 0) {
              --state.stashed_next;
              request_next_term(self, id, computer, master);
            } else if (state.stashed_get) {
              state.stashed_get = false;
              report_term(self, id, master);
            }
          },
          fail_on_error("logmap: compute"));
}

// Requests each next term from its rate computer, one at a time.
caf::behavior series_worker(series_actor* self, int64_t id, caf::actor computer, caf::actor master) {
  self->state.term = bench::logmap_start(id);
  return {
      [=](next_atom) {
        if (self->state.awaiting) {
          ++self->state.stashed_next;
        } else {
          request_next_term(self, id, computer, master);
        }
      },
      [=](get_atom) {
        if (self->state.awaiting) {
          self->state.stashed_get = true;
        } else {
          report_term(self, id, master);
        }
      },
  };
}

struct logmap_master_state {
  std::vector<caf::actor> workers;
  std::vector<double> results;
  size_t received = 0;
};
static_assert(default_constructed_state<logmap_master_state>);

caf::behavior logmap_master(caf::stateful_actor<logmap_master_state>* self, int64_t terms, caf::actor report_to) {
  return {
      [=](workers_atom, std::vector<caf::actor>& workers) {
        self->state.workers = std::move(workers);
        self->state.results.assign(self->state.workers.size(), 0.0);
      },
      // Savina's master: every next-term request up front, then one get each.
      [=](start_atom) {
        for (int64_t t = 0; t < terms; ++t) {
          for (const auto& w : self->state.workers) self->send(w, next_atom::value);
        }
        for (const auto& w : self->state.workers) self->send(w, get_atom::value);
      },
      [=](result_atom, int64_t series, int64_t computed, double term) {
        auto& state = self->state;
        bench::require(computed == terms, "logmap: a series computed the wrong number of terms");
        state.results[static_cast<size_t>(series)] = term;
        if (++state.received == state.workers.size()) {
          self->send(report_to, terms_atom::value, state.results);
          for (const auto& w : state.workers) caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
          self->quit();
        }
      },
  };
}

}  // namespace

double run_logmap(unsigned threads, const savina_params& s) {
  std::vector<double> expected;
  for (int64_t i = 0; i < s.logmap_series; ++i) expected.push_back(logmap_expected(i, s.logmap_terms));
  return with_system(threads, [&](caf::actor_system& system) {
    caf::scoped_actor self{system};
    auto master = system.spawn(logmap_master, s.logmap_terms, caf::actor_cast<caf::actor>(self));
    std::vector<caf::actor> workers;
    for (int64_t i = 0; i < s.logmap_series; ++i) {
      auto computer = system.spawn(rate_computer, bench::logmap_rate(i));
      workers.push_back(system.spawn(series_worker, i, computer, master));
    }
    self->send(master, workers_atom::value, std::move(workers));
    bench::stopwatch clock;
    self->send(master, start_atom::value);
    std::vector<double> terms;
    self->receive([&](terms_atom, std::vector<double>& t) { terms = std::move(t); },
                  caf::after(watchdog) >> [] { bench::fail("logmap: watchdog expired"); });
    const double seconds = clock.seconds();
    bench::require(terms.size() == expected.size(), "logmap: wrong number of series");
    for (size_t i = 0; i < expected.size(); ++i) {
      bench::require(std::fabs(terms[i] - expected[i]) <= 1e-12, "logmap: series " + std::to_string(i) + " ended at " +
                                                                     std::to_string(terms[i]) + ", expected " +
                                                                     std::to_string(expected[i]));
    }
    return static_cast<double>(s.logmap_series * s.logmap_terms) / seconds;
  });
}

}  // namespace troupe::bench
