// dispatcher: the coordinator's actor that hands out jobs and collects results.
//
// Jobs have ids 1, 2, 3, ...; each worker has at most `window` jobs in flight,
// so a faster worker (or transport) simply gets more. The dispatcher keeps the
// ids a worker has not answered yet; when the worker is gone (down: its
// process was killed, its node lost) or is replaced by a restarted one with the
// same label, those ids go to the front of the queue and are sent again. A
// result for a job that already has one is dropped, so each job is counted
// exactly once, whatever was re-sent.
//
//   auto d = n.spawn<dispatcher>(roster, 64, &out, &board);
//   d.tell(start_producing{});   ... d.tell(stop_producing{});   // board: finished
//   report r = d.ask(get_report{}, 5s).get();
//
// Thread safety: as any actor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "console.hpp"
#include "milestones.hpp"
#include "work.hpp"

namespace cluster_demo {

class dispatcher : public troupe::actor<dispatcher_protocol> {
 public:
  // roster: every worker label that may join, and how it is reached.
  dispatcher(std::map<std::string, transport> roster, std::size_t window, console* out, milestones* board)
      : roster_(std::move(roster)), window_(window), out_(out), board_(board) {}

  void on(const worker_joined& j);
  void on(const results& r);
  void on(start_producing);
  void on(stop_producing);
  progress on(get_progress) const { return current(); }
  report on(get_report) const;
  void on(const troupe::down& d);

 private:
  struct assignment {
    std::string label;
    transport via = transport::in_process;
    troupe::ref<worker_protocol> worker;
    std::set<std::int64_t> in_flight;
    bool broken = false;  // a send failed: its node is gone, the down is on its way
  };

  void dispatch();
  // Takes `w` out of service and queues its unanswered jobs again.
  void retire(std::vector<assignment>::iterator w, const std::string& why);
  void check_finished();
  [[nodiscard]] progress current() const;
  [[nodiscard]] bool done(std::int64_t id) const { return done_[static_cast<std::size_t>(id)]; }

  const std::map<std::string, transport> roster_;
  const std::size_t window_;
  console* out_;
  milestones* board_;

  std::vector<assignment> live_;
  std::set<std::string> joined_once_;
  std::deque<std::int64_t> resend_;  // ids to send again, before any new one
  std::vector<bool> done_{false};    // by job id (id 0 unused)
  std::int64_t issued_ = 0;          // the highest id handed out
  std::int64_t done_count_ = 0;
  std::int64_t resent_ = 0;
  std::int64_t duplicates_ = 0;
  std::int32_t rejoins_ = 0;
  bool producing_ = false;
  bool finished_ = false;
  std::array<transport_stats, transport_count> stats_{};
  word_counts counts_;
};

}  // namespace cluster_demo
