// Topics (troupe/net/topic.hpp) within one process: publish, subscribe and
// unsubscribe on one node, the removal of stopped subscribers, the order of
// each publisher's messages, the shared payload, and two nodes over the real
// shared-memory transport (one copy per node, a node that stops, a peer that
// sends malformed topic records), which ThreadSanitizer sees from both sides.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gate.hpp"
#include "support/node_fixture.hpp"
#include "support/watchdog.hpp"
#include "troupe/net/testing.hpp"
#include "troupe/troupe.hpp"

using namespace std::chrono_literals;

namespace {

// Trivially copyable and small: each subscriber gets a copy in its envelope.
struct tick {
  std::int64_t publisher = 0;
  std::int64_t seq = 0;
};
// Holds a string: one payload shared by a publication's local subscribers.
struct headline {
  std::string text;
  std::int64_t seq = 0;
};
struct sentinel {};
struct quit {};
using tick_protocol = troupe::protocol<tick, headline, sentinel, quit>;

// What the subscribers received, in the order each received it.
class delivery_log {
 public:
  struct entry {
    int subscriber;
    std::int64_t publisher;  // -1: a sentinel; -2: a headline
    std::int64_t seq;
  };
  void add(entry e) {
    std::lock_guard lock(mutex_);  // notifies under the lock: a waiter that sees the count may destroy the log
    entries_.push_back(e);
    changed_.notify_all();
  }
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout = 30s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return entries_.size() >= count; });
  }
  std::vector<entry> of(int subscriber) {
    std::lock_guard lock(mutex_);
    std::vector<entry> mine;
    for (const entry& e : entries_) {
      if (e.subscriber == subscriber) mine.push_back(e);
    }
    return mine;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<entry> entries_;
};

struct subscriber : troupe::actor<tick_protocol> {
  subscriber(delivery_log* log, int id, std::shared_ptr<troupe_test::gate> hold = nullptr)
      : log_(log), id_(id), hold_(std::move(hold)) {}
  void on(const tick& t) {
    if (hold_) hold_->wait();
    log_->add({id_, t.publisher, t.seq});
  }
  void on(const headline& h) { log_->add({id_, -2, h.seq}); }
  void on(sentinel) { log_->add({id_, -1, -1}); }
  void on(quit) { stop(); }
  delivery_log* log_;
  int id_;
  std::shared_ptr<troupe_test::gate> hold_;
};

// The sequence numbers a subscriber got from one publisher, in arrival order.
std::vector<std::int64_t> seqs_from(const std::vector<delivery_log::entry>& entries, std::int64_t publisher) {
  std::vector<std::int64_t> seqs;
  for (const auto& e : entries) {
    if (e.publisher == publisher) seqs.push_back(e.seq);
  }
  return seqs;
}

std::vector<std::int64_t> zero_to(std::int64_t n) {
  std::vector<std::int64_t> all(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) all[static_cast<std::size_t>(i)] = i;
  return all;
}

class topic_test : public troupe::test_support::node_fixture {};

TEST_F(topic_test, a_publication_reaches_every_local_subscriber_once) {
  troupe::test_support::watchdog guard;
  delivery_log log;  // outlives the node (its actors write here)
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("ticks");
  EXPECT_EQ(ticks.name(), "ticks");
  std::vector<troupe::ref<tick_protocol>> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(n.spawn<subscriber>(&log, i));
    ASSERT_TRUE(ticks.subscribe(subs.back()));
  }
  ASSERT_TRUE(ticks.subscribe(subs[0]));  // again: still one copy per publication
  EXPECT_EQ(ticks.stats().local_subscribers, 3u);
  EXPECT_TRUE(n.topic<tick>("ticks") == ticks);  // the same topic

  for (std::int64_t i = 0; i < 10; ++i) ASSERT_FALSE(ticks.publish(tick{0, i}));
  ASSERT_TRUE(log.wait_for(30));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(seqs_from(log.of(i), 0), zero_to(10)) << "subscriber " << i;
  const troupe::topic_stats s = ticks.stats();
  EXPECT_EQ(s.published, 10u);
  EXPECT_EQ(s.delivered, 30u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(log.size(), 30u);  // nothing more came
}

TEST_F(topic_test, an_unsubscribed_actor_gets_no_later_publication) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("ticks");
  auto stays = n.spawn<subscriber>(&log, 0);
  auto leaves = n.spawn<subscriber>(&log, 1);
  ASSERT_TRUE(ticks.subscribe(stays));
  ASSERT_TRUE(ticks.subscribe(leaves));
  ASSERT_FALSE(ticks.publish(tick{0, 0}));
  ticks.unsubscribe(leaves);
  EXPECT_EQ(ticks.stats().local_subscribers, 1u);
  ASSERT_FALSE(ticks.publish(tick{0, 1}));
  // Had the second publication reached `leaves`, this thread would have queued
  // it before the sentinel.
  ASSERT_FALSE(leaves.tell(sentinel{}));
  ASSERT_TRUE(log.wait_for(4));
  EXPECT_EQ(seqs_from(log.of(0), 0), zero_to(2));
  const auto left = log.of(1);
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].seq, 0);
  EXPECT_EQ(left[1].publisher, -1);  // the sentinel, and no second tick
}

TEST_F(topic_test, a_subscriber_that_stops_is_removed_from_the_topic) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("ticks");
  auto stays = n.spawn<subscriber>(&log, 0);
  auto stops = n.spawn<subscriber>(&log, 1);
  ASSERT_TRUE(ticks.subscribe(stays));
  ASSERT_TRUE(ticks.subscribe(stops));
  ASSERT_FALSE(stops.tell(quit{}));
  ASSERT_TRUE(ticks.await_stats([](const troupe::topic_stats& s) { return s.local_subscribers == 1; }, 10s));
  const std::uint64_t dropped_before = ticks.stats().dropped;
  ASSERT_FALSE(ticks.publish(tick{0, 0}));
  ASSERT_TRUE(log.wait_for(1));
  EXPECT_EQ(ticks.stats().delivered, 1u);
  EXPECT_EQ(ticks.stats().dropped, dropped_before);  // nobody gone is still listed
  // An actor that is already gone is removed the same way.
  ASSERT_TRUE(ticks.subscribe(stops));
  ASSERT_TRUE(ticks.await_stats([](const troupe::topic_stats& s) { return s.local_subscribers == 1; }, 10s));
}

TEST_F(topic_test, publications_of_each_publisher_arrive_in_publish_order) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("ticks");
  constexpr int subscribers = 4;
  constexpr int publishers = 3;
  constexpr std::int64_t each = 3000;
  for (int i = 0; i < subscribers; ++i) ASSERT_TRUE(ticks.subscribe(n.spawn<subscriber>(&log, i)));
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([ticks, p] {
      for (std::int64_t i = 0; i < each; ++i) (void)ticks.publish(tick{p, i});
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(log.wait_for(static_cast<std::size_t>(std::int64_t{subscribers} * publishers * each), 60s)) << log.size();
  for (int i = 0; i < subscribers; ++i) {
    const auto mine = log.of(i);
    for (int p = 0; p < publishers; ++p) {
      EXPECT_EQ(seqs_from(mine, p), zero_to(each)) << "subscriber " << i << ", publisher " << p;
    }
  }
  EXPECT_EQ(ticks.stats().dropped, 0u);
}

// A message that counts its copies (the serialization of a class with a
// constructor of its own is spelled out).
struct counted {
  counted() = default;
  explicit counted(std::string t) : text(std::move(t)) {}
  counted(const counted& other) : text(other.text) { copies.fetch_add(1); }
  counted(counted&&) noexcept = default;
  counted& operator=(const counted& other) {
    text = other.text;
    copies.fetch_add(1);
    return *this;
  }
  counted& operator=(counted&&) noexcept = default;
  ~counted() = default;
  std::string text;
  static inline std::atomic<int> copies{0};
};

}  // namespace

template <>
struct troupe::wire_traits<counted> {
  static constexpr std::string_view schema = "topic_test::counted{string}";
  static void encode(troupe::wire_writer& out, const counted& c) { troupe::encode(out, c.text); }
  static bool decode(troupe::wire_reader& in, counted& c) { return troupe::decode(in, c.text); }
};

namespace {

using counted_protocol = troupe::protocol<counted>;

// Records where the payload it was handed lives.
struct reads_in_place : troupe::actor<counted_protocol> {
  reads_in_place(std::promise<const void*>* where) : where_(where) {}
  void on(const counted& c) { where_->set_value(&c); }
  std::promise<const void*>* where_;
};
struct takes_a_copy : troupe::actor<counted_protocol> {
  takes_a_copy(std::promise<const void*>* where) : where_(where) {}
  void on(counted c) { where_->set_value(&c); }
  std::promise<const void*>* where_;
};

TEST_F(topic_test, local_subscribers_share_one_payload_and_only_by_value_handlers_copy_it) {
  troupe::test_support::watchdog guard;
  constexpr int readers = 5;
  std::vector<std::promise<const void*>> seen(readers + 1);  // outlive the node
  troupe::node n(config("n"));
  auto news = n.topic<counted>("news");
  for (int i = 0; i < readers; ++i) ASSERT_TRUE(news.subscribe(n.spawn<reads_in_place>(&seen[i])));
  ASSERT_TRUE(news.subscribe(n.spawn<takes_a_copy>(&seen[readers])));
  counted::copies.store(0);
  ASSERT_FALSE(news.publish(counted("extra, extra")));  // moved into the shared payload
  std::vector<const void*> where;
  for (auto& p : seen) {
    auto f = p.get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    where.push_back(f.get());
  }
  for (int i = 1; i < readers; ++i) EXPECT_EQ(where[i], where[0]) << "reader " << i << " got a copy";
  EXPECT_NE(where[readers], where[0]);  // the by-value handler has its own
  EXPECT_EQ(counted::copies.load(), 1);
}

TEST_F(topic_test, the_same_name_with_another_type_is_another_topic) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("updates");
  auto headlines = n.topic<headline>("updates");
  auto s = n.spawn<subscriber>(&log, 0);
  ASSERT_TRUE(ticks.subscribe(s));
  EXPECT_EQ(headlines.stats().local_subscribers, 0u);
  ASSERT_FALSE(headlines.publish(headline{"not for ticks", 7}));
  ASSERT_FALSE(ticks.publish(tick{0, 1}));
  ASSERT_TRUE(log.wait_for(1));
  ASSERT_FALSE(s.tell(sentinel{}));
  ASSERT_TRUE(log.wait_for(2));
  const auto got = log.of(0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].publisher, 0);  // the tick, and no headline
  EXPECT_EQ(headlines.stats().delivered, 0u);
}

TEST_F(topic_test, an_invalid_name_or_an_empty_handle_is_refused) {
  troupe::node n(config("n"));
  EXPECT_THROW((void)n.topic<tick>(""), troupe::troupe_error);
  EXPECT_THROW((void)n.topic<tick>("line\nbreak"), troupe::troupe_error);
  EXPECT_THROW((void)n.topic<tick>(std::string(257, 'x')), troupe::troupe_error);
  EXPECT_NO_THROW((void)n.topic<tick>(std::string(256, 'x')));
  troupe::topic<tick> empty;
  EXPECT_FALSE(empty);
  EXPECT_EQ(empty.publish(tick{}), troupe::make_error_code(troupe::errc::no_such_name));
  EXPECT_FALSE(empty.subscribe(troupe::ref<tick_protocol>()));
  EXPECT_FALSE(n.topic<tick>("t").subscribe(troupe::ref<tick_protocol>()));  // an empty ref
}

TEST_F(topic_test, a_full_bounded_mailbox_is_counted_as_a_drop) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe_test::open_on_exit handler;
  troupe::node n(config("n"));
  auto ticks = n.topic<tick>("ticks");
  auto slow = n.spawn<subscriber>(troupe::bounded{1, troupe::overflow_policy::reject}, &log, 0, handler.g);
  ASSERT_TRUE(ticks.subscribe(slow));
  ASSERT_FALSE(ticks.publish(tick{0, 0}));  // being handled: the handler waits at the gate
  ASSERT_EQ(handler.g->entered.get_future().wait_for(30s), std::future_status::ready);
  ASSERT_FALSE(ticks.publish(tick{0, 1}));  // fills the mailbox
  ASSERT_FALSE(ticks.publish(tick{0, 2}));  // no room: dropped
  EXPECT_EQ(ticks.stats().dropped, 1u);
  EXPECT_EQ(ticks.stats().delivered, 2u);
  handler.g->open();
  ASSERT_TRUE(log.wait_for(2));
  EXPECT_EQ(seqs_from(log.of(0), 0), zero_to(2));
}

TEST_F(topic_test, after_the_node_stops_a_publication_reports_system_stopped) {
  std::optional<troupe::topic<tick>> ticks;
  {
    troupe::node n(config("n"));
    ticks = n.topic<tick>("ticks");
  }
  EXPECT_EQ(ticks->publish(tick{}), troupe::make_error_code(troupe::errc::system_stopped));
  EXPECT_EQ(ticks->stats().local_subscribers, 0u);
}

// --- two nodes ---------------------------------------------------------------------

TEST_F(topic_test, a_publication_crosses_to_another_node_once_for_all_its_subscribers) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  auto news_b = b.topic<headline>("news");
  // Two subscribers before the nodes connect, one after: both ways of hearing of them.
  ASSERT_TRUE(news_b.subscribe(b.spawn<subscriber>(&log, 0)));
  ASSERT_TRUE(news_b.subscribe(b.spawn<subscriber>(&log, 1)));
  ASSERT_TRUE(a.connect("b"));
  auto news_a = a.topic<headline>("news");
  ASSERT_TRUE(news_a.await_subscribers(2, 10s));
  ASSERT_TRUE(news_b.subscribe(b.spawn<subscriber>(&log, 2)));
  ASSERT_TRUE(news_a.subscribe(a.spawn<subscriber>(&log, 3)));  // and one on the publisher's node
  ASSERT_TRUE(news_a.await_subscribers(4, 10s));
  EXPECT_EQ(news_a.stats().subscribed_nodes, 1u);
  EXPECT_EQ(news_a.stats().remote_subscribers, 3u);
  ASSERT_TRUE(news_b.await_subscribers(4, 10s));  // b hears of a's subscriber too
  EXPECT_EQ(news_b.stats().remote_subscribers, 1u);

  constexpr std::int64_t count = 300;
  for (std::int64_t i = 0; i < count; ++i) ASSERT_FALSE(news_a.publish(headline{"n" + std::to_string(i), i}));
  ASSERT_TRUE(log.wait_for(4 * count)) << log.size();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(seqs_from(log.of(i), -2), zero_to(count)) << "subscriber " << i;
  const troupe::topic_stats at_a = a.topic<headline>("news").stats();
  EXPECT_EQ(at_a.published, static_cast<std::uint64_t>(count));
  EXPECT_EQ(at_a.sent, static_cast<std::uint64_t>(count));  // one record per publication for b's three
  EXPECT_EQ(at_a.delivered, static_cast<std::uint64_t>(count));
  EXPECT_EQ(at_a.dropped, 0u);
  const troupe::topic_stats at_b = news_b.stats();
  EXPECT_EQ(at_b.received, static_cast<std::uint64_t>(count));
  EXPECT_EQ(at_b.delivered, static_cast<std::uint64_t>(3 * count));
}

TEST_F(topic_test, the_subscribers_of_a_node_that_stops_leave_the_count) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node a(config("a"));
  auto ticks_a = a.topic<tick>("ticks");
  {
    troupe::node b(config("b"));
    auto ticks_b = b.topic<tick>("ticks");
    ASSERT_TRUE(ticks_b.subscribe(b.spawn<subscriber>(&log, 0)));
    ASSERT_TRUE(ticks_b.subscribe(b.spawn<subscriber>(&log, 1)));
    ASSERT_TRUE(a.connect("b"));
    ASSERT_TRUE(ticks_a.await_subscribers(2, 10s));
    ASSERT_FALSE(ticks_a.publish(tick{0, 0}));
    ASSERT_TRUE(log.wait_for(2));
  }
  ASSERT_TRUE(ticks_a.await_stats(
      [](const troupe::topic_stats& s) { return s.remote_subscribers == 0 && s.subscribed_nodes == 0; }, 10s));
  ASSERT_FALSE(ticks_a.publish(tick{0, 1}));
  EXPECT_EQ(ticks_a.stats().sent, 1u);  // the second went nowhere
}

TEST_F(topic_test, a_subscriber_that_leaves_on_another_node_is_no_longer_counted_there) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  auto ticks_a = a.topic<tick>("ticks");
  auto ticks_b = b.topic<tick>("ticks");
  auto one = b.spawn<subscriber>(&log, 0);
  auto two = b.spawn<subscriber>(&log, 1);
  ASSERT_TRUE(ticks_b.subscribe(one));
  ASSERT_TRUE(ticks_b.subscribe(two));
  ASSERT_TRUE(a.connect("b"));
  ASSERT_TRUE(ticks_a.await_subscribers(2, 10s));
  ticks_b.unsubscribe(one);
  ASSERT_FALSE(two.tell(quit{}));
  ASSERT_TRUE(ticks_a.await_stats([](const troupe::topic_stats& s) { return s.subscribed_nodes == 0; }, 10s));
  EXPECT_EQ(ticks_a.stats().remote_subscribers, 0u);
}

// A subscriber on another node, subscribed here through its ref: its copies go through its proxy.
TEST_F(topic_test, a_ref_to_an_actor_of_another_node_can_subscribe) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  b.publish("sub", b.spawn<subscriber>(&log, 0));
  auto remote = a.lookup<tick_protocol>("troupe://b/sub");
  ASSERT_TRUE(remote) << remote.error();
  auto news = a.topic<headline>("news");
  ASSERT_TRUE(news.subscribe(*remote));
  for (std::int64_t i = 0; i < 50; ++i) ASSERT_FALSE(news.publish(headline{"h", i}));
  ASSERT_TRUE(log.wait_for(50));
  EXPECT_EQ(seqs_from(log.of(0), -2), zero_to(50));
}

// Garbage in a topic record from a peer: that connection closes, the node keeps running.
struct bad_record {
  const char* name;
  std::uint32_t kind;
  std::vector<std::byte> (*body)();
};

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(static_cast<std::byte>(v));
  return out;
}

class topic_garbage : public topic_test, public ::testing::WithParamInterface<bad_record> {};

struct anchor_watch {
  troupe::actor_addr who;
};
using anchor_watch_protocol = troupe::protocol<anchor_watch>;
struct anchor_watcher : troupe::actor<anchor_watch_protocol> {
  explicit anchor_watcher(std::promise<troupe::exit_reason>* p) : done(p) {}
  void on(const anchor_watch& w) { (void)monitor(w.who); }
  void on(const troupe::down& d) { done->set_value(d.reason); }
  std::promise<troupe::exit_reason>* done;
};

TEST_P(topic_garbage, closes_only_that_connection) {
  troupe::test_support::watchdog guard;
  delivery_log log;
  std::promise<troupe::exit_reason> down;
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  auto news_b = b.topic<headline>("news");
  ASSERT_TRUE(news_b.subscribe(b.spawn<subscriber>(&log, 0)));
  auto handle = a.connect("b");
  ASSERT_TRUE(handle) << handle.error();
  auto news_a = a.topic<headline>("news");
  ASSERT_TRUE(news_a.await_subscribers(1, 10s));
  auto w = a.spawn<anchor_watcher>(&down);
  ASSERT_FALSE(w.tell(anchor_watch{handle->anchor()}));
  ASSERT_FALSE(news_a.publish(headline{"before", 0}));
  ASSERT_TRUE(log.wait_for(1));

  ASSERT_TRUE(troupe::testing::inject_record(a, "b", GetParam().kind, GetParam().body()));
  auto f = down.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "the connection was not closed";
  EXPECT_EQ(f.get().what(), troupe::exit_reason::kind::process_down);

  // b still runs, and a new connection carries the topic again.
  ASSERT_TRUE(news_a.await_stats([](const troupe::topic_stats& s) { return s.subscribed_nodes == 0; }, 10s));
  ASSERT_TRUE(a.connect("b"));
  ASSERT_TRUE(news_a.await_subscribers(1, 10s));
  ASSERT_FALSE(news_a.publish(headline{"after", 1}));
  ASSERT_TRUE(log.wait_for(2));
  EXPECT_EQ(seqs_from(log.of(0), -2), zero_to(2));
}

std::vector<std::byte> truncated_interest() { return bytes_of({1, 2, 3, 4, 5}); }
std::vector<std::byte> interest_with_a_bad_name() {
  std::vector<std::byte> body;
  troupe::wire_writer out(body);
  out.write_scalar(troupe::type_id_of<headline>());
  out.write_scalar(std::uint64_t{1});
  troupe::encode(out, std::string("tab\there"));
  return body;
}
std::vector<std::byte> interest_with_a_huge_count() {
  std::vector<std::byte> body;
  troupe::wire_writer out(body);
  out.write_scalar(troupe::type_id_of<headline>());
  out.write_scalar(~std::uint64_t{0});
  troupe::encode(out, std::string("news"));
  return body;
}
std::vector<std::byte> publication_with_a_long_name() {
  std::vector<std::byte> body;
  troupe::wire_writer out(body);
  out.write_scalar(troupe::type_id_of<headline>());
  out.write_varint(4'000'000'000ull);
  out.write_bytes("news", 4);
  return body;
}
std::vector<std::byte> publication_that_does_not_decode() {
  std::vector<std::byte> body;
  troupe::wire_writer out(body);
  out.write_scalar(troupe::type_id_of<headline>());
  troupe::encode(out, std::string("news"));
  out.write_varint(1000);  // the headline's text claims 1000 bytes
  out.write_bytes("abc", 3);
  return body;
}

INSTANTIATE_TEST_SUITE_P(
    topic_test, topic_garbage,
    ::testing::Values(bad_record{"truncated_interest", 18, &truncated_interest},
                      bad_record{"interest_with_a_bad_name", 18, &interest_with_a_bad_name},
                      bad_record{"interest_with_a_huge_count", 18, &interest_with_a_huge_count},
                      bad_record{"publication_with_a_long_name", 19, &publication_with_a_long_name},
                      bad_record{"publication_that_does_not_decode", 19, &publication_that_does_not_decode}),
    [](const ::testing::TestParamInfo<bad_record>& param_info) { return std::string(param_info.param.name); });

}  // namespace
