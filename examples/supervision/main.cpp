// supervision: a tree of actors where some crash on bad input, and the work goes on.
//
//   root (one_for_one, at most 5 restarts in 1 s; logs its events to stderr)
//   ├── parser-1, parser-2, parser-3   parse "key=value" lines; a malformed line throws
//   ├── storage                        a nested supervisor that gives up at its first failure
//   │   └── writer
//   └── one-off                        a parser added at run time, temporary: not restarted
//
// A crashed parser is restarted in place: its ref stays valid, the lines waiting in
// its mailbox survive, and only the line that threw is lost (an asker is told why).
#include <atomic>
#include <chrono>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

using namespace std::chrono_literals;

struct line {
  std::string text;
};
struct parse_now {
  std::string text;
  using reply = bool;
};
struct tally {
  int since_start;
  int in_all;
};
struct count {
  using reply = tally;
};
using parser_protocol = troupe::protocol<line, parse_now, count>;

struct parser : troupe::actor<parser_protocol> {
  // The child spec hands the same ledger to every incarnation: it outlives restarts.
  explicit parser(std::shared_ptr<int> ledger) : ledger_(std::move(ledger)) {}
  void on(const line& l) { parse(l.text); }
  bool on(const parse_now& p) {
    parse(p.text);
    return true;
  }
  tally on(count) const { return {since_start_, *ledger_}; }

 private:
  void parse(const std::string& text) {
    if (text.find('=') == std::string::npos) throw std::invalid_argument("malformed line '" + text + "'");
    ++since_start_;
    ++*ledger_;
  }
  std::shared_ptr<int> ledger_;
  int since_start_ = 0;  // each restart builds a fresh instance: back to 0
};

struct writer : troupe::actor<troupe::protocol<line>> {
  void on(const line&) {}
};

// What main() waits for, in its scoped inbox.
struct restarted {
  std::string child_id;
};
struct saw_down {};
using main_protocol = troupe::protocol<restarted, saw_down>;

// Monitors whatever it is asked to watch and prints the down.
struct watch {
  troupe::actor_addr who;
  using reply = bool;
};
struct observer : troupe::actor<troupe::protocol<watch>> {
  explicit observer(troupe::ref<main_protocol> main) : main_inbox(std::move(main)) {}
  bool on(const watch& w) { return monitor(w.who) != 0; }
  void on(const troupe::down& d) {  // not in the protocol: only the runtime sends downs
    std::cout << "observer: " << d.who << " is down: " << d.reason << '\n';
    main_inbox.tell(saw_down{});
  }
  troupe::ref<main_protocol> main_inbox;
};

int main() {
  std::atomic<int> restarts{0};  // counted by root's on_event; outlives the system
  troupe::system sys;
  troupe::scoped<main_protocol> inbox{sys};

  troupe::supervisor_spec storage;
  storage.max_restarts = 0;  // its first failure escalates: root restarts the subtree in place
  storage.log_events = false;
  storage.children.push_back(troupe::child<writer>("writer"));

  troupe::supervisor_spec spec;
  spec.strategy = troupe::supervision_strategy::one_for_one;
  spec.max_restarts = 5;
  spec.within = 1s;
  spec.log_events = true;  // one line per event on stderr
  spec.on_event = [&restarts, main = inbox.self()](const troupe::supervisor_event& e) {
    if (e.what != troupe::supervisor_event::kind::restarted) return;
    ++restarts;
    main.tell(restarted{e.child_id});
  };
  const std::vector<std::string> ids = {"parser-1", "parser-2", "parser-3"};
  for (const auto& id : ids) spec.children.push_back(troupe::child<parser>(id, std::make_shared<int>(0)));
  spec.children.push_back(troupe::supervisor_child("storage", std::move(storage)));
  troupe::supervisor_ref root = troupe::spawn_supervisor(sys, std::move(spec));

  // A batch, round-robin; the refs stay valid across the restarts the bad lines cause.
  std::vector<troupe::ref<parser_protocol>> parsers;
  for (const auto& id : ids) parsers.push_back(root.child<parser_protocol>(id));
  const std::vector<std::string> batch = {"temp=21", "hum=40", "wind=3", "rain=0", "oops",    "temp=22",
                                          "hum=41",  "wind=5", "%%%",    "rain=1", "temp=20", "hum=39"};
  for (std::size_t i = 0; i < batch.size(); ++i) parsers[i % parsers.size()].tell(line{batch[i]});
  std::cout << "sent " << batch.size() << " lines round-robin to 3 parsers (2 malformed)\n";
  auto answer = parsers[0].ask(parse_now{"no equals sign"}, 1s).try_get();
  std::cout << "asked parser-1 to parse a malformed line: " << (answer ? "ok" : answer.error().to_string()) << '\n';

  int parsed = 0;
  for (std::size_t i = 0; i < parsers.size(); ++i) {
    const tally t = parsers[i].ask(count{}, 1s).get();  // answered after the lines before it
    std::cout << "  " << ids[i] << ": " << t.in_all << " parsed, " << t.since_start << " since its last (re)start\n";
    parsed += t.in_all;
  }

  // The nested subtree: the writer fails, storage gives up, root restarts storage,
  // which restarts the writer in place.
  auto storage_ref = root.child<troupe::supervisor_protocol>("storage");
  const troupe::actor_addr writer_addr = storage_ref.ask(troupe::which_children{}, 1s).get().at(0).address;
  sys.send_exit(writer_addr, troupe::exit_reason::error("disk full"));  // as if a linked actor failed
  while (inbox.receive<restarted>(1s).value().child_id != "storage") {
  }  // skips the parsers' restarts
  std::cout << "writer " << writer_addr << " failed; storage gave up; root restarted storage and its writer in place\n";

  // A temporary child is not restarted: it ends for good, and a monitor sees it.
  auto watcher = sys.spawn<observer>(inbox.self());
  auto one_off = root.start_child<parser>(
      troupe::child<parser>("one-off", std::make_shared<int>(0)).with_restart(troupe::restart_type::temporary));
  (void)watcher.ask(watch{one_off}, 1s).get();
  one_off.tell(line{"bad"});
  (void)inbox.receive<saw_down>(1s).value();

  const int sent = static_cast<int>(batch.size()) + 1;
  std::cout << "totals: sent " << sent << ", parsed " << parsed << ", dropped " << sent - parsed
            << " (each the message that threw), restarts " << restarts.load() << '\n';
  for (const troupe::child_info& c : root.self().ask(troupe::which_children{}, 1s).get())
    std::cout << "  " << c.id << " " << c.address << (c.running ? " running" : " gone") << ", restarts " << c.restarts
              << '\n';

  // Orderly shutdown: children in reverse start order, then root itself.
  (void)watcher.ask(watch{root.self()}, 1s).get();
  root.self().tell(troupe::shutdown_supervisor{});
  (void)inbox.receive<saw_down>(1s).value();
}
