#include "dispatcher.hpp"

#include <algorithm>

namespace cluster_demo {

namespace {
std::size_t index_of(transport t) { return static_cast<std::size_t>(t); }
}  // namespace

void dispatcher::on(const worker_joined& j) {
  const auto known = roster_.find(j.label);
  if (known == roster_.end() || !j.worker) {
    out_->event("dispatcher: ignoring a join from unknown worker '" + j.label + "'");
    return;
  }
  // A restarted worker can announce itself before the old one's down arrives.
  auto old = std::find_if(live_.begin(), live_.end(), [&](const assignment& w) { return w.label == j.label; });
  if (old != live_.end()) retire(old, "replaced by its restarted successor");

  (void)monitor(troupe::actor_addr(j.worker));
  live_.push_back({j.label, known->second, j.worker, {}, false});
  if (joined_once_.insert(j.label).second) {
    ++stats_[index_of(known->second)].workers;
  } else {
    ++rejoins_;
    out_->event("worker " + j.label + " rejoined: " + j.worker.address());
  }
  board_->update([&](milestones::record& r) {
    r.joined.insert(j.label);
    r.joins[j.label].push_back(milestones::clock_type::now());
  });
  dispatch();
}

void dispatcher::on(const results& r) {
  const auto known = roster_.find(r.worker);
  if (known == roster_.end()) {
    out_->event("dispatcher: ignoring results from unknown worker '" + r.worker + "'");
    return;
  }
  transport_stats& stats = stats_[index_of(known->second)];
  ++stats.results;
  for (const job_result& one : r.batch) {
    if (one.id < 1 || one.id > issued_) {
      out_->event("dispatcher: ignoring a result for job " + std::to_string(one.id) + " from " + r.worker);
      continue;
    }
    // Wherever the job was (a re-sent job may be held by a second worker), it is answered.
    for (assignment& w : live_) w.in_flight.erase(one.id);
    if (done(one.id)) {
      ++duplicates_;
      continue;
    }
    done_[static_cast<std::size_t>(one.id)] = true;
    ++done_count_;
    ++stats.jobs_done;
    for (const auto& [word, n] : one.counts) counts_[word] += n;
  }
  dispatch();
  check_finished();
}

void dispatcher::on(start_producing) {
  producing_ = true;
  dispatch();
}

void dispatcher::on(stop_producing) {
  producing_ = false;
  check_finished();
}

report dispatcher::on(get_report) const {
  report r;
  r.totals = current();
  r.per_transport = stats_;
  r.counts = counts_;
  return r;
}

void dispatcher::on(const troupe::down& d) {
  auto w = std::find_if(live_.begin(), live_.end(), [&](const assignment& a) { return d.who == a.worker; });
  if (w == live_.end()) return;  // already replaced by its successor
  retire(w, "down{" + std::string(troupe::to_string(d.reason.what())) + "}");
  dispatch();
}

void dispatcher::dispatch() {
  for (;;) {
    // The least loaded worker with room: faster ones come back sooner and get more.
    assignment* best = nullptr;
    for (assignment& w : live_) {
      if (w.broken || w.in_flight.size() >= window_) continue;
      if (best == nullptr || w.in_flight.size() < best->in_flight.size()) best = &w;
    }
    if (best == nullptr) return;
    std::int64_t id = 0;
    if (!resend_.empty()) {
      id = resend_.front();
      resend_.pop_front();
      if (done(id)) continue;  // its first result arrived after all
    } else if (producing_) {
      id = ++issued_;
      done_.push_back(false);
    } else {
      return;
    }
    if (auto failed = best->worker.tell(job{id, job_text(id)})) {
      // Its node is gone: keep the job for the next worker; the down follows.
      best->broken = true;
      resend_.push_front(id);
      out_->event("dispatcher: cannot reach " + best->label + " (" + failed.message() + "); job " + std::to_string(id) +
                  " waits for another worker");
      continue;
    }
    best->in_flight.insert(id);
    ++stats_[index_of(best->via)].jobs_sent;
  }
}

void dispatcher::retire(std::vector<assignment>::iterator w, const std::string& why) {
  std::string ids;
  std::size_t count = 0;
  for (std::int64_t id : w->in_flight) {
    if (done(id)) continue;
    resend_.push_back(id);
    ++resent_;
    if (++count <= 5) ids += (count == 1 ? "" : ", ") + std::to_string(id);
  }
  if (count > 5) ids += ", ...";
  out_->event("worker " + w->label + " " + why + ": its " + std::to_string(count) +
              " unanswered job(s) go to the others" + (count > 0 ? " (" + ids + ")" : std::string()));
  live_.erase(w);
}

void dispatcher::check_finished() {
  if (finished_ || producing_ || issued_ == 0 || done_count_ != issued_) return;
  finished_ = true;
  board_->update([](milestones::record& r) { r.finished = true; });
}

progress dispatcher::current() const {
  progress p;
  p.issued = issued_;
  p.done = done_count_;
  for (const assignment& w : live_) p.in_flight += static_cast<std::int64_t>(w.in_flight.size());
  p.resent = resent_;
  p.duplicates = duplicates_;
  p.live_workers = static_cast<std::int32_t>(live_.size());
  p.rejoins = rejoins_;
  p.finished = finished_;
  return p;
}

}  // namespace cluster_demo
