// The supervised actors and helpers of the deterministic supervisor tests
// (supervisor_test.cpp, supervisor_children_test.cpp, supervisor_shutdown_test.cpp):
// a worker that logs its life to a vector, an observer that logs the downs it
// sees, and a three-child tree a, b, c.
//
//   std::vector<std::string> log;
//   auto spec = troupe_test::three_children(troupe::supervision_strategy::one_for_one, &log);
//   auto sup = troupe::spawn_supervisor(sys, std::move(spec));
//   sup.child<troupe_test::worker_protocol>("b").tell(troupe_test::fail_now{});
//
// Thread safety: none; deterministic mode only (the logs are plain vectors
// written from the test's thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <troupe/troupe.hpp>

namespace troupe_test {

struct work {
  int n;
};
struct fail_now {};
struct quit {};
struct count {
  using reply = int;
};
struct explode {
  using reply = int;
};  // a request whose handler throws
using worker_protocol = troupe::protocol<work, fail_now, quit, count, explode>;

// Logs "<name>:start", "<name>:work n", "<name>:stop <reason>". If `self_slot`
// is given, every instance writes its self() there on start.
struct worker : troupe::actor<worker_protocol> {
  worker(std::string name, std::vector<std::string>* log, troupe::ref<worker_protocol>* self_slot = nullptr)
      : name_(std::move(name)), log_(log), self_slot_(self_slot) {}
  void on_start() {
    log_->push_back(name_ + ":start");
    if (self_slot_ != nullptr) *self_slot_ = self();
  }
  void on(work w) {
    ++handled_;
    log_->push_back(name_ + ":work " + std::to_string(w.n));
  }
  void on(fail_now) { throw std::runtime_error(name_ + " failed"); }
  void on(quit) { stop(); }
  int on(count) { return handled_; }
  int on(explode) { throw std::runtime_error(name_ + " exploded"); }
  void on_stop(const troupe::exit_reason& r) { log_->push_back(name_ + ":stop " + r.to_string()); }

 private:
  std::string name_;
  std::vector<std::string>* log_;
  troupe::ref<worker_protocol>* self_slot_;
  int handled_ = 0;
};

// Monitors whatever it is told to and logs "down <name> <reason>" in arrival order.
struct observe {
  troupe::actor_addr who;
  std::string name;
};
using observer_protocol = troupe::protocol<observe>;
struct observer : troupe::actor<observer_protocol> {
  explicit observer(std::vector<std::string>* log) : log_(log) {}
  void on(const observe& o) { names_[monitor(o.who)] = o.name; }
  void on(const troupe::down& d) { log_->push_back("down " + names_[d.monitor] + " " + d.reason.to_string()); }

 private:
  std::vector<std::string>* log_;
  std::map<std::uint64_t, std::string> names_;
};

inline std::vector<std::string> matching(const std::vector<std::string>& log, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& line : log)
    if (line.find(part) != std::string::npos) out.push_back(line);
  return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

inline troupe::supervisor_spec three_children(troupe::supervision_strategy strategy, std::vector<std::string>* log,
                                              troupe::restart_type b_restart = troupe::restart_type::permanent) {
  troupe::supervisor_spec spec;
  spec.strategy = strategy;
  spec.log_events = false;
  spec.children.push_back(troupe::child<worker>("a", std::string("a"), log));
  spec.children.push_back(troupe::child<worker>("b", std::string("b"), log).with_restart(b_restart));
  spec.children.push_back(troupe::child<worker>("c", std::string("c"), log));
  return spec;
}

}  // namespace troupe_test
