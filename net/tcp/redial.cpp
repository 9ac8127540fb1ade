// Re-dialing a TCP peer whose connection was lost without a goodbye, with
// exponential backoff and jitter (see tcp_transport.hpp).
#include <algorithm>
#include <random>

#include "node/node_core.hpp"
#include "tcp/tcp_transport.hpp"
#include "tcp/transport_impl.hpp"

namespace troupe::detail {

std::chrono::milliseconds tcp_transport::impl::backoff(int attempts) {
  const auto& r = config.reconnect;
  double wait = static_cast<double>(r.initial_backoff.count());
  for (int i = 1; i < attempts && wait < static_cast<double>(r.max_backoff.count()); ++i) wait *= 2;
  wait = std::min(wait, static_cast<double>(r.max_backoff.count()));
  std::uniform_real_distribution<double> spread(1.0 - r.jitter, 1.0 + r.jitter);
  return std::chrono::milliseconds(static_cast<std::int64_t>(wait * spread(jitter_random)));
}

void tcp_transport::connection_lost(const std::string& name, const std::string& endpoint, bool said_goodbye) {
  impl& s = *impl_;
  if (said_goodbye || endpoint.empty() || s.config.reconnect.give_up_after.count() == 0) return;
  troupe::mutex_lock lock(s.mutex);
  if (s.stopping) return;
  const auto now = clock_type::now();
  auto& r = s.redials[name];
  r.endpoint = endpoint;
  r.attempts = 0;
  r.since = now;
  r.next = now + s.backoff(1);
  r.last_error = "the connection was lost";
  s.changed.notify_all();
}

void tcp_transport::connection_up(const std::string& name) {
  troupe::mutex_lock lock(impl_->mutex);
  impl_->redials.erase(name);
}

std::optional<error> tcp_transport::unreachable(const std::string& name) const {
  troupe::mutex_lock lock(impl_->mutex);
  auto it = impl_->redials.find(name);
  if (it == impl_->redials.end()) return std::nullopt;
  const auto now = clock_type::now();
  const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.since).count();
  const auto next =
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(it->second.next - now).count());
  return error(errc::connection_lost, "node '" + name + "' is unreachable (connection lost " + std::to_string(since) +
                                          " ms ago; re-dialing " + it->second.endpoint + ", next attempt in " +
                                          std::to_string(next) + " ms; last: " + it->second.last_error + ")");
}

void tcp_transport::impl::redial_loop() noexcept {
  troupe::mutex_lock lock(mutex);
  while (!stopping) {
    // The earliest due attempt.
    auto due = redials.end();
    for (auto it = redials.begin(); it != redials.end(); ++it) {
      if (due == redials.end() || it->second.next < due->second.next) due = it;
    }
    if (due == redials.end()) {
      changed.wait(lock);
      continue;
    }
    if (clock_type::now() < due->second.next) {
      // A copy: while this waits, a connection coming up erases the entry (make_connection),
      // and wait_until reads its deadline again when it wakes.
      const clock_type::time_point when = due->second.next;
      changed.wait_until(lock, when);
      continue;
    }
    if (clock_type::now() - due->second.since > config.reconnect.give_up_after) {
      node.log("gave up re-dialing node '" + due->first + "' at " + due->second.endpoint);
      redials.erase(due);
      continue;
    }
    const std::string name = due->first, where = due->second.endpoint;
    due->second.next = clock_type::time_point::max();  // not again until this attempt ends
    lock.unlock();
    std::optional<error> failed;
    if (!node.has_connection(name)) {
      auto c = dial(where, name, clock_type::now() + config.connect_timeout);
      if (!c) failed = c.error();
    }
    lock.lock();
    auto it = redials.find(name);
    if (it == redials.end()) continue;  // connected meanwhile
    if (!failed) {
      redials.erase(it);
      continue;
    }
    ++it->second.attempts;
    it->second.last_error = failed->text();
    it->second.next = clock_type::now() + backoff(it->second.attempts + 1);
  }
}

}  // namespace troupe::detail
