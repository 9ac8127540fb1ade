// system: spawning, live_actors(), and shutdown (the destructor): live actors are
// stopped with exit_reason::shutdown, pending asks fail instead of hanging, refs
// that outlive the system stay safe, and no actor is spawned afterwards.
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "countdown.hpp"
#include "gate.hpp"
#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct add {
  int n;
};
struct total {
  using reply = int;
};
struct quit {};
// A request its actor only answers after an hour (it asks itself and waits).
struct stuck {
  using reply = int;
};
struct nap {
  using reply = int;
};
using probe_protocol = troupe::protocol<add, total, quit, stuck, nap>;

// Shared between actors on worker threads and the test: guarded.
struct stop_record {
  std::mutex mutex;
  std::vector<troupe::exit_reason> reasons;
  std::vector<int> sums;
};

struct probe : troupe::actor<probe_protocol> {
  explicit probe(stop_record* r = nullptr) : record(r) {}
  stop_record* record;
  int sum = 0;
  void on_stop(const troupe::exit_reason& why) {
    if (!record) return;
    std::lock_guard lock(record->mutex);
    record->reasons.push_back(why);
    record->sums.push_back(sum);
  }
  void on(add a) { sum += a.n; }
  int on(total) { return sum; }
  void on(quit) { stop(); }
  troupe::task<int> on(stuck) {
    (void)co_await self().ask(nap{}, 1h).as_expected();
    co_return 1;
  }
  int on(nap) { return 0; }
};

TEST(system, destroying_the_system_stops_live_actors_with_exit_reason_shutdown) {
  troupe::test_support::watchdog guard;
  stop_record record;
  {
    troupe::system sys;
    for (int i = 0; i < 3; ++i) (void)sys.spawn<probe>(&record);
  }
  std::lock_guard lock(record.mutex);
  ASSERT_EQ(record.reasons.size(), 3u);
  for (const auto& r : record.reasons) EXPECT_EQ(r.what(), troupe::exit_reason::kind::shutdown) << r;
}

TEST(system, shutdown_lets_actors_finish_the_messages_already_queued) {
  troupe::test_support::watchdog guard;
  stop_record record;
  {
    troupe::system sys;
    auto p = sys.spawn<probe>(&record);
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(p.tell(add{1}));
  }
  std::lock_guard lock(record.mutex);
  ASSERT_EQ(record.sums.size(), 1u);
  EXPECT_EQ(record.sums[0], 1000);
}

TEST(system, shutdown_stops_detached_actors_too) {
  troupe::test_support::watchdog guard;
  stop_record record;
  {
    troupe::system sys;
    auto p = sys.spawn_detached<probe>(&record);
    EXPECT_EQ(p.ask(total{}, 30s).get(), 0);
  }
  std::lock_guard lock(record.mutex);
  ASSERT_EQ(record.reasons.size(), 1u);
  EXPECT_EQ(record.reasons[0].what(), troupe::exit_reason::kind::shutdown);
}

TEST(system, an_outside_ask_pending_at_shutdown_fails_with_actor_down_instead_of_hanging) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto p = sys.spawn<probe>();
  auto pending = p.ask(stuck{}, 1h);
  sys.shutdown();
  troupe::expected<int> r = pending.try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::actor_down) << r.error();
  EXPECT_NE(r.error().text().find("shutdown"), std::string::npos) << r.error();
}

TEST(system, a_thread_blocked_in_get_is_released_by_shutdown) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto p = sys.spawn<probe>();
  auto first = p.ask(stuck{}, 1h);
  auto queued = p.ask(total{}, 1h);  // waits behind `stuck` (sequential await policy)
  std::promise<troupe::errc> outcome;
  auto outcome_future = outcome.get_future();
  std::thread blocked([&] {
    troupe::expected<int> r = p.ask(total{}, 1h).try_get();
    outcome.set_value(r ? troupe::errc::ok : r.error().code());
  });
  // The blocked thread may not have sent its ask yet; shutdown must release it
  // either way (its ask is refused or abandoned).
  sys.shutdown();
  const bool released = outcome_future.wait_for(30s) == std::future_status::ready;
  if (!released) {
    blocked.detach();  // the watchdog reports the hang; do not join a stuck thread
    FAIL() << "get() still blocked after shutdown";
  }
  blocked.join();
  EXPECT_EQ(outcome_future.get(), troupe::errc::actor_down);
  for (const troupe::expected<int>& r : {first.try_get(), queued.try_get()}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), troupe::errc::actor_down) << r.error();
  }
}

TEST(system, a_tell_through_a_ref_that_outlives_its_system_reports_no_such_actor) {
  troupe::test_support::watchdog guard;
  troupe::ref<probe_protocol> survivor;
  {
    troupe::system sys;
    survivor = sys.spawn<probe>();
  }
  EXPECT_EQ(survivor.tell(add{1}), troupe::errc::no_such_actor);
}

TEST(system, an_ask_through_a_ref_that_outlives_its_system_fails_without_touching_the_system) {
  troupe::test_support::watchdog guard;
  troupe::ref<probe_protocol> survivor;
  {
    troupe::system sys;
    survivor = sys.spawn<probe>();
  }
  troupe::expected<int> r = survivor.ask(total{}, 1s).try_get();
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().code() == troupe::errc::no_such_actor || r.error().code() == troupe::errc::actor_down)
      << r.error();
}

TEST(system, spawn_after_shutdown_throws_system_stopped) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  sys.shutdown();
  auto expect_system_stopped = [](auto&& spawn) {
    try {
      spawn();
      ADD_FAILURE() << "spawn after shutdown must throw";
    } catch (const troupe::troupe_error& e) {
      EXPECT_EQ(e.error().code(), troupe::errc::system_stopped) << e.what();
    }
  };
  expect_system_stopped([&] { (void)sys.spawn<probe>(); });
  expect_system_stopped([&] { (void)sys.spawn_detached<probe>(); });
  expect_system_stopped([&] { (void)sys.spawn<troupe::protocol<add>>([](add) {}); });
  EXPECT_EQ(sys.live_actors(), 0u);
}

// A spawn racing with shutdown: the actor's constructor blocks on a gate.
struct are_you_there {
  using reply = int;
};
using slow_protocol = troupe::protocol<are_you_there>;
struct slow_to_construct : troupe::actor<slow_protocol> {
  explicit slow_to_construct(troupe_test::gate* g) { g->wait(); }
  int on(are_you_there) { return 1; }
};

TEST(system, a_spawn_in_flight_when_shutdown_completes_throws_system_stopped_or_yields_a_stopped_actor) {
  troupe::test_support::watchdog guard;
  troupe_test::open_on_exit constructor;
  troupe::config cfg;
  cfg.worker_threads = 2;
  troupe::system sys{cfg};
  troupe::ref<slow_protocol> spawned;
  std::optional<troupe::errc> refused;
  std::thread spawner([&] {
    try {
      spawned = sys.spawn<slow_to_construct>(constructor.g.get());
    } catch (const troupe::troupe_error& e) {
      refused = e.error().code();
    }
  });
  // The spawn passed its "system running?" check and is inside the constructor.
  ASSERT_EQ(constructor.g->entered.get_future().wait_for(30s), std::future_status::ready);
  sys.shutdown();  // knows nothing of the actor under construction, so it returns
  constructor.g->open();
  spawner.join();

  EXPECT_EQ(sys.live_actors(), 0u) << "an actor came alive after shutdown() returned";
  if (refused) {
    EXPECT_EQ(*refused, troupe::errc::system_stopped);
  } else {
    EXPECT_EQ(spawned.tell(are_you_there{}), troupe::make_error_code(troupe::errc::no_such_actor));
  }
}

TEST(system, shutdown_is_idempotent) {
  troupe::test_support::watchdog guard;
  stop_record record;
  troupe::system sys;
  (void)sys.spawn<probe>(&record);
  sys.shutdown();
  sys.shutdown();
  std::lock_guard lock(record.mutex);
  EXPECT_EQ(record.reasons.size(), 1u);
}

TEST(system, live_actors_counts_actors_spawned_and_not_yet_stopped) {
  troupe::test_support::watchdog guard;
  troupe::system sys{troupe::config::deterministic()};
  EXPECT_EQ(sys.live_actors(), 0u);
  auto a = sys.spawn<probe>();
  auto b = sys.spawn<probe>();
  auto c = sys.spawn<probe>();
  EXPECT_EQ(sys.live_actors(), 3u);
  ASSERT_FALSE(b.tell(quit{}));
  sys.run_until_idle();
  EXPECT_EQ(sys.live_actors(), 2u);
  sys.shutdown();
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(system, live_actors_counts_on_worker_threads) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  std::vector<troupe::ref<probe_protocol>> refs;
  for (int i = 0; i < 5; ++i) refs.push_back(sys.spawn<probe>());
  EXPECT_EQ(sys.live_actors(), 5u);
  // A stopped actor stops counting; refs to it do not keep it alive.
  auto quitting = refs.back();
  ASSERT_FALSE(quitting.tell(quit{}));
  sys.shutdown();
  EXPECT_EQ(sys.live_actors(), 0u);
}

TEST(system, worker_threads_in_the_config_sets_the_worker_count) {
  troupe::test_support::watchdog guard;
  troupe::config cfg;
  cfg.worker_threads = 3;
  troupe::system sys{cfg};
  EXPECT_EQ(sys.worker_count(), 3u);
  EXPECT_EQ(sys.config().worker_threads, 3u);
  troupe::system det{troupe::config::deterministic()};
  EXPECT_EQ(det.worker_count(), 0u);
}

TEST(system, timers_requested_after_shutdown_never_fire_and_cancel_safely) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto p = sys.spawn<probe>();
  sys.shutdown();
  troupe::timer t = sys.send_after(p, 1ms, add{1});
  EXPECT_FALSE(t.cancel());
}

// Spawning takes no global lock: the registry of live actors is sharded and ids
// come from per-thread blocks. Spawns from many threads at once (plain threads
// and actors) must still give every actor its own id, count every one, and let
// shutdown stop them all.
struct spawn_many {
  int count;
  using reply = std::vector<std::uint64_t>;
};
struct spawner : troupe::actor<troupe::protocol<spawn_many>> {
  std::vector<std::uint64_t> on(const spawn_many& m) {
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < m.count; ++i) ids.push_back(system().spawn<probe>().id());
    return ids;
  }
};

TEST(system, actors_spawned_from_many_threads_at_once_get_distinct_ids_and_are_all_counted) {
  troupe::test_support::watchdog guard;
  constexpr int per_thread = 1500;
  troupe::config cfg;
  cfg.worker_threads = 2;
  auto sys = std::make_unique<troupe::system>(cfg);
  std::vector<std::vector<std::uint64_t>> ids(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) ids[t].push_back(sys->spawn<probe>().id());
    });
  }
  auto a = sys->spawn<spawner>();
  auto b = sys->spawn<spawner>();
  auto from_a = a.ask(spawn_many{per_thread}, 60s);
  auto from_b = b.ask(spawn_many{per_thread}, 60s);
  ids[2] = from_a.get();
  ids[3] = from_b.get();
  for (auto& t : threads) t.join();
  std::set<std::uint64_t> distinct{a.id(), b.id()};
  for (const auto& list : ids) distinct.insert(list.begin(), list.end());
  EXPECT_EQ(distinct.size(), 4u * per_thread + 2) << "two actors got the same id";
  EXPECT_EQ(distinct.count(0), 0u);
  EXPECT_EQ(sys->live_actors(), 4u * per_thread + 2);
  sys->shutdown();
  EXPECT_EQ(sys->live_actors(), 0u);
}

}  // namespace
