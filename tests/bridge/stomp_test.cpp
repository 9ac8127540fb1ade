// The STOMP bridge (net/bridge/include/troupe/bridge/stomp.hpp) against a real
// ActiveMQ 5.17 started by this binary (tests/support/activemq_server.hpp):
// exact accounting through a sink and a source, retries and dead letters,
// undecodable messages, the prefetch as backpressure, a consumer that goes
// away mid-stream, the broker killed and restarted under load, and peers that
// are no broker (garbage, a frame cut off, silence). Each test uses queues of
// its own; the broker restart runs last.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/describe/class.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <troupe/bridge/stomp.hpp>
#include <troupe/troupe.hpp>
#include <vector>

#include "bridge/source_control.hpp"
#include "runtime/countdown.hpp"
#include "support/activemq_server.hpp"
#include "support/fake_peer.hpp"
#include "support/watchdog.hpp"

namespace shop {
struct order {
  std::int64_t id;
  std::string item;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, item))
}  // namespace shop

namespace {

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;
namespace stomp = troupe::bridge::stomp;
using troupe::test_support::stop_source;

bridge::source_stats stats_of(const troupe::ref<bridge::source_protocol>& source) {
  return source.ask(bridge::stats_query{}, std::chrono::seconds(5)).get();
}
using shop::order;
using troupe::test_support::activemq_server;

// What the consuming actors saw, shared with the test thread.
struct journal {
  std::mutex mutex;
  std::multiset<std::int64_t> handled;  // every successful handling, duplicates kept
  std::map<std::int64_t, int> attempts;
  std::uint32_t max_delivery_count = 0;
  std::size_t redelivered = 0;
  // True the first time this order is handled.
  bool record(const bridge::received<order>& m) {
    std::lock_guard lock(mutex);
    const bool first = handled.count(m.body.id) == 0;
    handled.insert(m.body.id);
    max_delivery_count = std::max(max_delivery_count, m.from.delivery_count);
    if (m.from.delivery_count > 1) ++redelivered;
    return first;
  }
  std::set<std::int64_t> distinct() {
    std::lock_guard lock(mutex);
    return {handled.begin(), handled.end()};
  }
  std::size_t count() {
    std::lock_guard lock(mutex);
    return handled.size();
  }
};

using consumer_protocol = troupe::protocol<bridge::received<order>>;

// Handles every order; ids in `fail_always` throw every time, ids in
// `fail_twice` throw on their first two tries. Counts down once per distinct order.
struct consumer : troupe::actor<consumer_protocol> {
  consumer(journal* j, troupe_test::countdown* d, std::set<std::int64_t> always, std::set<std::int64_t> twice,
           troupe_test::countdown* also = nullptr)
      : log(j), done(d), also_done(also), fail_always(std::move(always)), fail_twice(std::move(twice)) {}
  void on(const bridge::received<order>& m) {
    int tries = 0;
    {
      std::lock_guard lock(log->mutex);
      tries = ++log->attempts[m.body.id];
    }
    if (fail_always.count(m.body.id) != 0) throw std::runtime_error("order " + std::to_string(m.body.id) + " refused");
    if (fail_twice.count(m.body.id) != 0 && tries <= 2) throw std::runtime_error("not yet");
    if (!log->record(m)) return;  // a redelivery of an order already handled: counted, not counted down
    done->count_down();
    if (also_done != nullptr) also_done->count_down();
  }
  journal* log;
  troupe_test::countdown* done;
  troupe_test::countdown* also_done;
  std::set<std::int64_t> fail_always;
  std::set<std::int64_t> fail_twice;
};

// Dead letters as they arrive, with their reason.
struct dead_letter_reader : troupe::actor<troupe::protocol<bridge::received<std::string>>> {
  dead_letter_reader(std::vector<std::pair<std::string, std::string>>* o, std::mutex* m, troupe_test::countdown* d)
      : out(o), mutex(m), done(d) {}
  void on(const bridge::received<std::string>& m) {
    std::string reason;
    for (const auto& [name, value] : m.from.headers) {
      if (name == "troupe-dead-letter-reason") reason = value;
    }
    {
      std::lock_guard lock(*mutex);
      out->emplace_back(m.body, reason);
    }
    done->count_down();
  }
  std::vector<std::pair<std::string, std::string>>* out;
  std::mutex* mutex;
  troupe_test::countdown* done;
};

std::string unique_queue(const std::string& name) {
  static std::atomic<int> next{0};
  // relaxed: only uniqueness matters
  return "/queue/troupe." + name + "." + std::to_string(::getpid()) + "." +
         std::to_string(next.fetch_add(1, std::memory_order_relaxed));
}

stomp::endpoint endpoint_of(const activemq_server& broker) {
  stomp::endpoint e;
  e.port = std::to_string(broker.stomp_port());
  e.heart_beat = 1000ms;
  e.reconnect_backoff = 50ms;
  e.max_reconnect_backoff = 500ms;
  return e;
}

// Publishes orders [first, first + n) through a sink, each confirmed by the broker.
void publish_orders(troupe::system& sys, const stomp::endpoint& e, const std::string& queue, std::int64_t first,
                    std::int64_t n) {
  auto sink = sys.spawn<stomp::sink<order>>(stomp::sink_config{e, queue});
  std::vector<troupe::response<bridge::published>> confirms;
  confirms.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = first; i < first + n; ++i) {
    confirms.push_back(sink.ask(bridge::publish<order>{order{i, "item" + std::to_string(i)}, {}}, 30s));
  }
  for (auto& c : confirms) {
    troupe::expected<bridge::published> p = c.try_get();
    ASSERT_TRUE(p) << p.error().to_string();
    EXPECT_EQ(p->destination, queue);
  }
}

class stomp_bridge : public ::testing::Test {
 protected:
  void SetUp() override { TROUPE_REQUIRE_ACTIVEMQ(); }
};

TEST_F(stomp_bridge, every_published_order_is_handled_once_and_acknowledged) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("exact");
  constexpr std::int64_t n = 300;
  publish_orders(sys, e, queue, 0, n);
  journal log;
  troupe_test::countdown done(n);
  auto actor = sys.spawn<consumer>(&log, &done, std::set<std::int64_t>{}, std::set<std::int64_t>{});
  {
    auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, {}}, actor);
    ASSERT_TRUE(done.wait_for(60s)) << done.left() << " orders never arrived";
    const bridge::source_stats st = stats_of(source);
    EXPECT_EQ(st.delivered, static_cast<std::uint64_t>(n));
    EXPECT_EQ(st.dead_lettered, 0u);
    // A graceful stop drains: every acknowledgement has gone out.
    auto ending = stop_source(sys, source, 60s);
    ASSERT_TRUE(ending);
    EXPECT_EQ(ending->reason.what(), troupe::exit_reason::kind::shutdown);
  }
  EXPECT_EQ(log.count(), static_cast<std::size_t>(n)) << "an order was handled twice";
  EXPECT_EQ(log.distinct().size(), static_cast<std::size_t>(n));
  // Nothing is left on the queue: the next consumer's first message is a marker sent now.
  publish_orders(sys, e, queue, 1000, 1);
  journal after;
  troupe_test::countdown marker(1);
  auto second = sys.spawn<consumer>(&after, &marker, std::set<std::int64_t>{}, std::set<std::int64_t>{});
  auto again = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, {}}, second);
  ASSERT_TRUE(marker.wait_for(60s));
  EXPECT_EQ(after.distinct(), std::set<std::int64_t>{1000}) << "an acknowledged order came back";
}

TEST_F(stomp_bridge, a_failing_handler_is_retried_then_its_message_is_dead_lettered_with_the_reason) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("retry");
  publish_orders(sys, e, queue, 0, 20);
  journal log;
  troupe_test::countdown done(18);  // 20 orders, 2 of which always fail
  // A throwing handler fails its actor: a supervisor restarts it in place
  // (same ref, mailbox kept), as a user's would.
  troupe::supervisor_spec spec;
  spec.max_restarts = 100;
  spec.within = 60s;
  spec.children.push_back(troupe::child<consumer>("consumer", &log, &done, std::set<std::int64_t>{3, 7},
                                                  std::set<std::int64_t>{5}, nullptr));
  troupe::supervisor_ref sup = troupe::spawn_supervisor(sys, std::move(spec));
  auto actor = sup.child<consumer_protocol>("consumer");
  std::vector<std::pair<std::string, std::string>> dead;
  std::mutex dead_mutex;
  troupe_test::countdown dead_done(2);
  auto reader = sys.spawn<dead_letter_reader>(&dead, &dead_mutex, &dead_done);
  bridge::source_settings settings;
  settings.max_deliveries = 3;
  settings.retry_backoff = 10ms;
  auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, settings}, actor);
  auto dlq = sys.spawn<stomp::source<std::string>>(stomp::source_config{e, queue + ".DLQ", {}, {}}, reader);
  ASSERT_TRUE(done.wait_for(60s)) << done.left() << " orders not handled";
  ASSERT_TRUE(dead_done.wait_for(60s)) << "the dead letters did not arrive";
  {
    std::lock_guard lock(log.mutex);
    EXPECT_EQ(log.attempts[5], 3) << "order 5 fails twice, then succeeds";
    EXPECT_EQ(log.attempts[3], 3) << "max_deliveries tries, no more";
    EXPECT_EQ(log.attempts[7], 3);
  }
  EXPECT_EQ(log.distinct().count(5), 1u);
  std::lock_guard lock(dead_mutex);
  ASSERT_EQ(dead.size(), 2u);
  for (const auto& [body, reason] : dead) {
    EXPECT_TRUE(body.find("\"id\":3") != std::string::npos || body.find("\"id\":7") != std::string::npos) << body;
    EXPECT_NE(reason.find("failed 3 times"), std::string::npos) << reason;
    EXPECT_NE(reason.find("refused"), std::string::npos) << "the handler's exception: " << reason;
  }
  const bridge::source_stats st = stats_of(source);
  EXPECT_EQ(st.dead_lettered, 2u);
  EXPECT_EQ(st.retried, 2u + 2u + 2u);  // order 5: 2 retries; orders 3 and 7: 2 each
}

TEST_F(stomp_bridge, a_message_that_does_not_decode_is_dead_lettered_and_the_source_goes_on) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("undecodable");
  {
    auto raw = sys.spawn<stomp::sink<std::string>>(stomp::sink_config{e, queue});
    ASSERT_TRUE(raw.ask(bridge::publish<std::string>{"{not json", {}}, 30s).try_get());
    ASSERT_TRUE(raw.ask(bridge::publish<std::string>{R"({"id":1,"item":"x","extra":2})", {}}, 30s).try_get());
  }
  publish_orders(sys, e, queue, 2, 1);
  journal log;
  troupe_test::countdown done(1);
  auto actor = sys.spawn<consumer>(&log, &done, std::set<std::int64_t>{}, std::set<std::int64_t>{});
  std::vector<std::pair<std::string, std::string>> dead;
  std::mutex dead_mutex;
  troupe_test::countdown dead_done(2);
  auto reader = sys.spawn<dead_letter_reader>(&dead, &dead_mutex, &dead_done);
  auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, {}}, actor);
  auto dlq = sys.spawn<stomp::source<std::string>>(stomp::source_config{e, queue + ".DLQ", {}, {}}, reader);
  ASSERT_TRUE(done.wait_for(60s)) << "the good order after the bad ones was not handled";
  ASSERT_TRUE(dead_done.wait_for(60s));
  EXPECT_EQ(log.distinct(), std::set<std::int64_t>{2});
  std::lock_guard lock(dead_mutex);
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_EQ(dead[0].first, "{not json");
  EXPECT_NE(dead[0].second.find("not JSON"), std::string::npos) << dead[0].second;
  EXPECT_NE(dead[1].second.find("wrong shape"), std::string::npos) << dead[1].second;
  EXPECT_EQ(stats_of(source).decode_errors, 2u);
}

// Holds every order's acknowledgement until the test releases them, counting
// how many it holds at most: the prefetch bounds it. The n-th order counts
// down rounds[n / 4] (the last round's countdown takes any beyond).
struct release_all {};
using holder_protocol = troupe::protocol<bridge::received<order>, release_all>;
struct holder : troupe::actor<holder_protocol> {
  holder(std::size_t* m, std::deque<troupe_test::countdown>* r) : most(m), rounds(r) {}
  void on(const bridge::received<order>& /*m*/, troupe::reply_promise<void> ack) {
    held.push_back(std::move(ack));
    *most = std::max(*most, held.size());  // the test reads it after the last countdown
    const std::size_t round = std::min(received++ / 4, rounds->size() - 1);
    (*rounds)[round].count_down();
  }
  void on(release_all /*unused*/) {
    for (auto& a : held) a.deliver();
    held.clear();
  }
  std::vector<troupe::reply_promise<void>> held;
  std::size_t received = 0;
  std::size_t* most;
  std::deque<troupe_test::countdown>* rounds;
};

TEST_F(stomp_bridge, the_in_flight_bound_is_the_prefetch_and_holds_the_broker_back) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("prefetch");
  publish_orders(sys, e, queue, 0, 20);
  std::size_t most = 0;
  std::deque<troupe_test::countdown> rounds;
  for (int i = 0; i < 5; ++i) rounds.emplace_back(4);
  auto actor = sys.spawn<holder>(&most, &rounds);
  bridge::source_settings settings;
  settings.max_in_flight = 4;
  auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, settings}, actor);
  // Five rounds: the broker sends 4 and waits; the actor holds them; the test lets them go.
  for (std::size_t round = 0; round < rounds.size(); ++round) {
    ASSERT_TRUE(rounds[round].wait_for(60s)) << "round " << round << " got " << 4 - rounds[round].left();
    EXPECT_LE(stats_of(source).in_flight, 4u) << "round " << round;
    ASSERT_FALSE(actor.tell(release_all{}));
  }
  EXPECT_EQ(stats_of(source).delivered, 20u);
  EXPECT_EQ(most, 4u) << "the actor held more (or fewer) than the prefetch at once";
}

TEST_F(stomp_bridge, a_consumer_gone_mid_stream_loses_nothing_it_acknowledged_and_the_rest_is_redelivered) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("handover");
  constexpr std::int64_t n = 40;
  publish_orders(sys, e, queue, 0, n);
  std::size_t most = 0;
  std::deque<troupe_test::countdown> rounds;
  rounds.emplace_back(4);
  auto first = sys.spawn<holder>(&most, &rounds);
  bridge::source_settings settings;
  settings.max_in_flight = 4;
  settings.drain_timeout = 100ms;
  {
    auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, settings}, first);
    ASSERT_TRUE(rounds[0].wait_for(60s)) << "the first consumer did not get its four";
    // Gone with 4 messages unacknowledged (the drain gives up after 100 ms).
    ASSERT_TRUE(stop_source(sys, source, 60s));
  }
  journal log;
  troupe_test::countdown done(n);
  auto second = sys.spawn<consumer>(&log, &done, std::set<std::int64_t>{}, std::set<std::int64_t>{});
  auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, {}}, second);
  ASSERT_TRUE(done.wait_for(60s)) << done.left() << " orders lost";
  EXPECT_EQ(log.distinct().size(), static_cast<std::size_t>(n));
  EXPECT_GE(log.redelivered, 4u) << "the four held orders come again, marked redelivered";
  EXPECT_GE(stats_of(source).redelivered, 4u);
}

TEST_F(stomp_bridge, zz_the_broker_killed_and_restarted_under_load_loses_no_order) {
  troupe::test_support::watchdog guard;
  activemq_server& broker = activemq_server::shared();
  troupe::system sys;
  const auto e = endpoint_of(broker);
  const std::string queue = unique_queue("restart");
  constexpr std::int64_t n = 400;
  publish_orders(sys, e, queue, 0, n);
  journal log;
  troupe_test::countdown done(n);
  troupe_test::countdown quarter(n / 4);
  auto actor = sys.spawn<consumer>(&log, &done, std::set<std::int64_t>{}, std::set<std::int64_t>{}, &quarter);
  bridge::source_settings settings;
  settings.max_in_flight = 8;
  auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, queue, {}, settings}, actor);
  // Wait for a quarter, then kill -9 the broker and bring it back.
  ASSERT_TRUE(quarter.wait_for(60s));
  broker.kill();
  broker.start();
  ASSERT_TRUE(done.wait_for(120s)) << done.left() << " orders never arrived after the restart; session: "
                                   << stats_of(source).link.last_error;
  EXPECT_EQ(log.distinct().size(), static_cast<std::size_t>(n)) << "an order was lost";
  EXPECT_GE(stats_of(source).link.connects, 2u) << "the session reconnected";
  EXPECT_GE(stats_of(source).link.connection_losses, 1u);
}

// Not a broker: garbage, a CONNECTED and then a MESSAGE cut off mid-frame, and
// silence. Each is a failed connection the session retries with backoff —
// never a crash, never a message — and the rest of the system keeps working.
TEST(stomp_bad_peer, garbage_a_frame_cut_off_and_silence_are_failed_connections_never_a_crash) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  struct probe_case {
    std::string reply;
    bool connects;  // the peer's CONNECTED frame is valid: the session gets that far
  };
  const std::vector<probe_case> cases = {
      {"HTTP/1.1 400 Bad Request\r\n\r\nnot STOMP at all", false},
      {std::string("CONNECTED\nversion:1.2\n\n\0", 24) + "MESSAGE\nsubscription:0\nmessage-id:1\nack:a1\n"
                                                         "content-length:100000\n\n{\"id\":1,",
       true},
      {std::string(), false},  // accepts, says nothing: the connect timeout ends it
  };
  for (const probe_case& c : cases) {
    troupe::test_support::fake_peer peer(c.reply);
    stomp::endpoint e;
    e.port = std::to_string(peer.port());
    e.connect_timeout = 300ms;
    e.reconnect_backoff = 10ms;
    e.max_reconnect_backoff = 50ms;
    journal log;
    troupe_test::countdown never(1);
    auto actor = sys.spawn<consumer>(&log, &never, std::set<std::int64_t>{}, std::set<std::int64_t>{});
    auto source = sys.spawn<stomp::source<order>>(stomp::source_config{e, "/queue/none", {}, {}}, actor);
    // Several attempts, each ended with a reason.
    ASSERT_TRUE(troupe::test_support::stats_reach(
        source,
        [&c](const bridge::source_stats& s) {
          return !s.link.last_error.empty() && (c.connects ? s.link.connection_losses >= 2 : true);
        },
        20s))
        << "peer replying " << c.reply.size() << " bytes";
    const bridge::source_stats st = stats_of(source);
    EXPECT_EQ(st.delivered, 0u) << "a message cut off is no message";
    EXPECT_FALSE(c.connects && st.link.connects == 0) << st.link.last_error;
    if (!c.connects) {
      EXPECT_EQ(st.link.connects, 0u) << st.link.last_error;
    }
    EXPECT_EQ(log.count(), 0u);
    // The system is unharmed: the source stops in order, the actor answers.
    auto ending = stop_source(sys, source, 20s);
    ASSERT_TRUE(ending);
    EXPECT_EQ(ending->reason.what(), troupe::exit_reason::kind::shutdown);
  }
}

}  // namespace
