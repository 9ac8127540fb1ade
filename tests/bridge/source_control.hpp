// source_control: what the bridge tests do with a source actor from outside
// it: read its counters until they reach a state (stats_reach), and stop it and
// wait until it has stopped (stop_source). May use: troupe::runtime,
// troupe::bridge.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "troupe/bridge/bridge.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/exit_reason.hpp"
#include "troupe/runtime/signals.hpp"
#include "troupe/runtime/system.hpp"

namespace troupe::test_support {

// For state nothing signals (a source's counters, settled in the ask's
// completion just after the handler returns; a broker's offsets or queue
// depths): re-read until `done` or the deadline.
inline bool eventually(const std::function<bool()>& done, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a re-read interval, not a guess at when it happens
  }
  return false;
}

// Asks the source for its stats until `done` holds for them, at most `timeout`.
inline bool stats_reach(const ref<bridge::source_protocol>& source,
                        const std::function<bool(const bridge::source_stats&)>& done,
                        std::chrono::nanoseconds timeout) {
  return eventually(
      [&] {
        auto s = source.ask(bridge::stats_query{}, std::chrono::seconds(5)).try_get();
        return s && done(*s);
      },
      timeout);
}

// The last stats a source reported before it stopped, and its exit reason.
struct source_ending {
  bridge::source_stats last;
  exit_reason reason;
};

namespace detail {
struct exit_latch {
  std::mutex mutex;
  std::condition_variable changed;
  std::optional<exit_reason> reason;  // guarded by mutex
};
struct exit_watcher : actor<protocol<>> {
  exit_watcher(actor_addr w, std::shared_ptr<exit_latch> l) : who(std::move(w)), latch(std::move(l)) {}
  void on_start() { (void)monitor(who); }
  void on(const down& d) {
    {
      std::lock_guard lock(latch->mutex);
      latch->reason = d.reason;
    }
    latch->changed.notify_all();
    stop();
  }
  actor_addr who;
  std::shared_ptr<exit_latch> latch;
};
}  // namespace detail

// Stops `source` with `why` (shutdown: it drains its messages in flight) and
// waits until it has stopped, at most `timeout`. The stats are read just
// before the stop; nothing if the source did not stop in time.
inline std::optional<source_ending> stop_source(system& sys, const ref<bridge::source_protocol>& source,
                                                std::chrono::nanoseconds timeout,
                                                exit_reason why = exit_reason::shutdown()) {
  auto latch = std::make_shared<detail::exit_latch>();
  (void)sys.spawn<detail::exit_watcher>(actor_addr(source), latch);
  bridge::source_stats before;
  if (auto s = source.ask(bridge::stats_query{}, std::chrono::seconds(5)).try_get()) before = *s;
  sys.send_exit(actor_addr(source), std::move(why));
  std::unique_lock lock(latch->mutex);
  if (!latch->changed.wait_for(lock, timeout, [&] { return latch->reason.has_value(); })) return std::nullopt;
  return source_ending{before, *latch->reason};
}

}  // namespace troupe::test_support
