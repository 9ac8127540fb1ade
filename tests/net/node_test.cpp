// Nodes within one test process: two troupe::node objects talk over the same
// shared-memory transport as two processes would (rings, reader threads, the
// control socket), which lets ThreadSanitizer see both sides. Also the
// node's own checks: names, the runtime directory, hostile handshakes.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "support/node_fixture.hpp"
#include "support/watchdog.hpp"
#include "troupe/troupe.hpp"

using namespace std::chrono_literals;

namespace {

struct greet {
  std::string who;
  using reply = std::string;
};
struct tally {
  std::int64_t n = 0;
};
struct total {
  using reply = std::int64_t;
};
using greeter_protocol = troupe::protocol<greet, tally, total>;

struct greeter : troupe::actor<greeter_protocol> {
  std::string on(const greet& g) { return "hello " + g.who; }
  void on(const tally& t) {
    if (t.n != next) out_of_order = true;
    next = t.n + 1;
    sum += t.n;
  }
  std::int64_t on(total) { return out_of_order ? -1 : sum; }
  std::int64_t next = 0;
  std::int64_t sum = 0;
  bool out_of_order = false;
};

struct stop_now {};
using stopper_protocol = troupe::protocol<stop_now>;
struct stopper : troupe::actor<stopper_protocol> {
  void on(stop_now) { stop(); }
};

struct watch_it {
  troupe::actor_addr who;
};
using watcher_protocol = troupe::protocol<watch_it>;
struct watcher : troupe::actor<watcher_protocol> {
  explicit watcher(std::promise<troupe::exit_reason>* p) : done(p) {}
  void on(const watch_it& w) { (void)monitor(w.who); }
  void on(const troupe::down& d) { done->set_value(d.reason); }
  std::promise<troupe::exit_reason>* done;
};

// Each test: its own runtime directory (tests/support/node_fixture.hpp).
class node_test : public troupe::test_support::node_fixture {};

TEST_F(node_test, two_nodes_in_one_process_exchange_asks_and_ordered_tells) {
  troupe::test_support::watchdog guard;
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  b.publish("greeter", b.spawn<greeter>());
  auto g = a.lookup<greeter_protocol>("troupe://b/greeter");
  ASSERT_TRUE(g) << g.error();
  EXPECT_EQ(g->ask(greet{"a"}, 10s).get(), "hello a");
  std::int64_t expected = 0;
  for (std::int64_t i = 0; i < 5000; ++i) {
    ASSERT_FALSE(g->tell(tally{i}));
    expected += i;
  }
  EXPECT_EQ(g->ask(total{}, 30s).get(), expected);  // also checks the order
  EXPECT_EQ(g->address().rfind("troupe://b/", 0), 0u);
}

TEST_F(node_test, a_remote_actor_that_stops_is_reported_down_with_its_reason) {
  troupe::test_support::watchdog guard;
  std::promise<troupe::exit_reason> down;  // outlives the nodes (an actor sets it)
  troupe::node a(config("a"));
  troupe::node b(config("b"));
  b.publish("stopper", b.spawn<stopper>());
  auto s = a.lookup<stopper_protocol>("b/stopper");  // the scheme is optional
  ASSERT_TRUE(s) << s.error();
  auto w = a.spawn<watcher>(&down);
  ASSERT_FALSE(w.tell(watch_it{*s}));
  ASSERT_FALSE(s->tell(stop_now{}));
  auto f = down.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get().what(), troupe::exit_reason::kind::normal);
  // Its name went with it.
  auto again = a.lookup<stopper_protocol>("troupe://b/stopper");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), troupe::errc::no_such_name);
}

TEST_F(node_test, a_node_that_shuts_down_is_reported_down_to_its_peers) {
  troupe::test_support::watchdog guard;
  std::promise<troupe::exit_reason> down;  // outlives the nodes (an actor sets it)
  troupe::node a(config("a"));
  auto w = a.spawn<watcher>(&down);
  {
    troupe::node b(config("b"));
    b.publish("greeter", b.spawn<greeter>());
    auto g = a.lookup<greeter_protocol>("troupe://b/greeter");
    ASSERT_TRUE(g) << g.error();
    ASSERT_FALSE(w.tell(watch_it{*g}));
    EXPECT_EQ(g->ask(greet{"x"}, 10s).get(), "hello x");
  }
  auto f = down.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  const auto reason = f.get();
  // Either the actor's own shutdown or the link's end reaches us first.
  EXPECT_TRUE(reason.what() == troupe::exit_reason::kind::shutdown ||
              reason.what() == troupe::exit_reason::kind::process_down)
      << reason;
}

TEST_F(node_test, a_second_node_with_a_name_in_use_is_refused) {
  troupe::node a(config("a"));
  try {
    troupe::node again(config("a"));
    FAIL() << "two live nodes named 'a'";
  } catch (const troupe::troupe_error& e) {
    EXPECT_EQ(e.error().code(), troupe::errc::name_in_use) << e.what();
  }
}

TEST_F(node_test, a_stale_socket_left_by_a_dead_node_is_taken_over) {
  // A socket file nobody listens on, as a killed node leaves behind.
  const std::string path = dir_ + "/a.sock";
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ::close(s);
  ASSERT_TRUE(std::filesystem::exists(path));
  troupe::node a(config("a"));
  EXPECT_EQ(a.name(), "a");
}

TEST_F(node_test, invalid_names_and_an_unsafe_runtime_directory_are_refused) {
  EXPECT_THROW(troupe::node(config("../escape")), troupe::troupe_error);
  EXPECT_THROW(troupe::node(config(std::string(65, 'x'))), troupe::troupe_error);
  EXPECT_EQ(troupe::node(config("")).name(), "node-" + std::to_string(::getpid()));  // the default
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);                                         // readable by others: refused
  try {
    troupe::node a(config("a"));
    FAIL() << "a runtime directory with mode 0755 was accepted";
  } catch (const troupe::troupe_error& e) {
    EXPECT_NE(std::string(e.what()).find("0700"), std::string::npos) << e.what();
  }
}

// Connects to a node's socket as a raw client.
int raw_connect(const std::string& path) {
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(s, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(s);
    return -1;
  }
  return s;
}

TEST_F(node_test, a_hostile_handshake_is_refused_and_the_node_keeps_accepting_peers) {
  troupe::test_support::watchdog guard;
  troupe::node a(config("a"));
  a.publish("greeter", a.spawn<greeter>());
  const std::string path = dir_ + "/a.sock";
  {
    // Not a hello at all.
    int s = raw_connect(path);
    ASSERT_GE(s, 0);
    const char garbage[] = "\x10\x00\x00\x00GET / HTTP/1.1\r\n";
    ASSERT_GT(::write(s, garbage, sizeof garbage - 1), 0);
    char answer[256];
    const ssize_t n = ::read(s, answer, sizeof answer);  // the refusal, then EOF
    EXPECT_GT(n, 0);
    ::close(s);
  }
  {
    // A frame that claims to be 4 GiB long.
    int s = raw_connect(path);
    ASSERT_GE(s, 0);
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
    ASSERT_GT(::write(s, huge, sizeof huge), 0);
    char answer[256];
    EXPECT_GE(::read(s, answer, sizeof answer), 0);
    ::close(s);
  }
  {
    // Connects and says nothing, then goes away.
    int s = raw_connect(path);
    ASSERT_GE(s, 0);
    ::close(s);
  }
  troupe::node b(config("b"));
  auto g = b.lookup<greeter_protocol>("troupe://a/greeter");
  ASSERT_TRUE(g) << g.error();
  EXPECT_EQ(g->ask(greet{"b"}, 10s).get(), "hello b");
}

TEST_F(node_test, a_plain_thread_sending_faster_than_the_peer_reads_is_held_back_not_queued) {
  troupe::test_support::watchdog guard;
  auto cfg = config("a");
  cfg.ring_bytes = 4096;        // a few dozen records
  cfg.max_queued_bytes = 1024;  // a plain thread must never need the queue
  troupe::node a(cfg);
  troupe::node b(config("b"));
  b.publish("greeter", b.spawn<greeter>());
  auto g = a.lookup<greeter_protocol>("troupe://b/greeter").value();
  std::int64_t expected = 0;
  for (std::int64_t i = 0; i < 50000; ++i) {
    ASSERT_FALSE(g.tell(tally{i})) << "tell " << i << " failed";  // blocks while the ring is full
    expected += i;
  }
  EXPECT_EQ(g.ask(total{}, 60s).get(), expected);
}

// --- many senders on one link ------------------------------------------------------
struct numbered {
  std::int64_t sender = 0;
  std::int64_t n = 0;
};
struct report {
  using reply = std::vector<std::int64_t>;  // per sender: messages received, or -1 after a gap
};
using checker_protocol = troupe::protocol<numbered, report>;

struct order_checker : troupe::actor<checker_protocol> {
  void on(const numbered& m) {
    auto s = static_cast<std::size_t>(m.sender);
    if (counts.size() <= s) counts.resize(s + 1, 0);
    if (counts[s] < 0) return;
    counts[s] = (m.n == counts[s]) ? counts[s] + 1 : -1;
  }
  std::vector<std::int64_t> on(report) { return counts; }
  std::vector<std::int64_t> counts;
};

struct burst {
  troupe::ref<checker_protocol> to;
  std::int64_t sender = 0;
  std::int64_t count = 0;
};
using burster_protocol = troupe::protocol<burst>;
struct burster : troupe::actor<burster_protocol> {
  explicit burster(std::atomic<std::int64_t>* refused) : refused_(refused) {}
  void on(const burst& b) {
    for (std::int64_t i = 0; i < b.count; ++i) {
      if (b.to.tell(numbered{b.sender, i})) refused_->fetch_add(1);
    }
  }
  std::atomic<std::int64_t>* refused_;
};

TEST_F(node_test, many_threads_and_actors_sending_on_one_connection_keep_each_senders_order) {
  troupe::test_support::watchdog guard;
  std::atomic<std::int64_t> refused{0};
  auto cfg = config("a");
  cfg.ring_bytes = 4096;  // small: actors' records overflow into the flusher's queue
  troupe::node a(cfg);
  troupe::node b(config("b"));
  b.publish("checker", b.spawn<order_checker>());
  auto checker = a.lookup<checker_protocol>("troupe://b/checker").value();
  constexpr std::int64_t per_sender = 4000;
  constexpr int threads = 3;
  constexpr int actors = 3;
  std::vector<troupe::ref<burster_protocol>> bursters;
  for (int i = 0; i < actors; ++i) bursters.push_back(a.spawn<burster>(&refused));
  for (int i = 0; i < actors; ++i)
    ASSERT_FALSE(bursters[static_cast<std::size_t>(i)].tell(burst{checker, threads + i, per_sender}));
  std::vector<std::thread> senders;
  for (int t = 0; t < threads; ++t) {
    senders.emplace_back([&, t] {
      for (std::int64_t i = 0; i < per_sender; ++i) {
        if (checker.tell(numbered{t, i})) refused.fetch_add(1);
      }
    });
  }
  for (auto& t : senders) t.join();
  // The asks queue behind everything each sender sent; poll until all arrived.
  std::vector<std::int64_t> counts;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    counts = checker.ask(report{}, 30s).get();
  } while ((counts.size() < threads + actors ||
            std::any_of(counts.begin(), counts.end(), [&](std::int64_t c) { return c >= 0 && c < per_sender; })) &&
           std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(refused.load(), 0);
  ASSERT_EQ(counts.size(), static_cast<std::size_t>(threads + actors));
  for (std::size_t s = 0; s < counts.size(); ++s) EXPECT_EQ(counts[s], per_sender) << "sender " << s;
}

}  // namespace
