#include "timer_service.hpp"

#include <utility>

#include "troupe/runtime/detail/cell.hpp"

namespace troupe::detail {

timer_service::timer_service(bool virtual_clock) : virtual_(virtual_clock) {
  if (!virtual_) {
    thread_ = std::thread([this] {
      // Timer callbacks send messages; one must never wait for room in a full
      // bounded mailbox, or every timer (ask timeouts included) would stall.
      forbid_blocking_sends_on_this_thread();
      run();
    });
  }
}

timer_service::~timer_service() { stop(); }

void timer_service::stop() {
  std::map<key, entry> dropped;
  {
    troupe::mutex_lock lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    dropped.swap(by_deadline_);
    deadline_of_.clear();
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  // `dropped` (and what its callbacks captured) is destroyed outside the lock.
}

timer_service::clock::time_point timer_service::now() const {
  if (!virtual_) return clock::now();
  troupe::mutex_lock lock(mutex_);
  return virtual_now_;
}

std::uint64_t timer_service::schedule(std::chrono::nanoseconds delay, std::chrono::nanoseconds period,
                                      std::function<bool()> fire) {
  troupe::mutex_lock lock(mutex_);
  if (stopped_) return 0;
  const std::uint64_t id = next_id_++;
  const clock::time_point base = virtual_ ? virtual_now_ : clock::now();
  const clock::time_point deadline = base + std::max(delay, std::chrono::nanoseconds::zero());
  const bool earliest = by_deadline_.empty() || deadline < by_deadline_.begin()->first.first;
  by_deadline_.emplace(key{deadline, id}, entry{period, std::move(fire)});
  deadline_of_.emplace(id, deadline);
  lock.unlock();
  if (earliest) changed_.notify_one();
  return id;
}

bool timer_service::cancel(std::uint64_t id) {
  std::optional<entry> removed;
  bool was_pending = false;
  {
    troupe::mutex_lock lock(mutex_);
    auto it = deadline_of_.find(id);
    if (it != deadline_of_.end()) {
      auto node = by_deadline_.extract(key{it->second, id});
      removed.emplace(std::move(node.mapped()));
      deadline_of_.erase(it);
      was_pending = true;
    }
    if (firing_ == id) {
      // Its callback runs right now: a periodic one must not be re-armed, and the
      // caller must not return before the callback is over (unless it is the callback).
      was_pending = was_pending || !firing_cancelled_;
      firing_cancelled_ = true;
      if (firing_thread_ != std::this_thread::get_id()) {
        fired_.wait(lock, [&]() TROUPE_REQUIRES(mutex_) { return firing_ != id; });
      }
    }
  }
  return was_pending;  // `removed` is destroyed outside the lock
}

std::optional<std::pair<timer_service::key, timer_service::entry>> timer_service::pop_due(clock::time_point limit) {
  if (by_deadline_.empty() || by_deadline_.begin()->first.first > limit) return std::nullopt;
  auto node = by_deadline_.extract(by_deadline_.begin());
  deadline_of_.erase(node.key().second);
  firing_ = node.key().second;
  firing_cancelled_ = false;
  firing_thread_ = std::this_thread::get_id();
  return std::make_pair(node.key(), std::move(node.mapped()));
}

bool timer_service::run_callback(entry& e) noexcept {
  try {
    return e.fire();
  } catch (...) {
    return false;
  }
}

void timer_service::finish_firing(const key& k, entry e, bool keep) {
  troupe::mutex_lock lock(mutex_);
  const bool rearm = keep && e.period > std::chrono::nanoseconds::zero() && !firing_cancelled_ && !stopped_;
  firing_ = 0;
  firing_thread_ = {};
  if (rearm) {
    const clock::time_point next = k.first + e.period;
    by_deadline_.emplace(key{next, k.second}, std::move(e));
    deadline_of_.emplace(k.second, next);
  }
  lock.unlock();
  fired_.notify_all();
  // A non-rearmed entry (and its captures) is destroyed here, outside the lock.
}

void timer_service::run() {
  troupe::mutex_lock lock(mutex_);
  while (!stopped_) {
    if (by_deadline_.empty()) {
      changed_.wait(lock);
      continue;
    }
    const clock::time_point earliest = by_deadline_.begin()->first.first;
    if (clock::now() < earliest) {
      changed_.wait_until(lock, earliest);
      continue;
    }
    auto due = pop_due(earliest);
    lock.unlock();
    const bool keep = run_callback(due->second);
    finish_firing(due->first, std::move(due->second), keep);
    lock.lock();
  }
}

std::optional<timer_service::clock::time_point> timer_service::next_deadline() const {
  troupe::mutex_lock lock(mutex_);
  if (by_deadline_.empty()) return std::nullopt;
  return by_deadline_.begin()->first.first;
}

void timer_service::advance_to(clock::time_point to) {
  for (;;) {
    troupe::mutex_lock lock(mutex_);
    auto due = pop_due(to);
    if (!due) {
      if (to > virtual_now_) virtual_now_ = to;
      firing_ = 0;
      return;
    }
    if (due->first.first > virtual_now_) virtual_now_ = due->first.first;
    lock.unlock();
    const bool keep = run_callback(due->second);
    finish_firing(due->first, std::move(due->second), keep);
  }
}

std::size_t timer_service::pending() const {
  troupe::mutex_lock lock(mutex_);
  return by_deadline_.size();
}

}  // namespace troupe::detail
