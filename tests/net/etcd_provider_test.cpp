// The etcd membership provider (net/cluster/etcd/etcd_provider.cpp) against a real
// etcd that the test starts (tests/support/etcd_server.hpp): members that
// join, leave, are killed -9 (a child process: its lease expires) or come
// back as a new incarnation; cluster-wide names; a lost lease; invalid
// records; an etcd restart.
//
// Every wait is on an event with a deadline; the deadlines are safety nets
// for a loaded machine, never timing assertions. Leases are 2 s (etcd's
// minimum) where a test waits for one to expire.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "cluster/etcd/etcd_client.hpp"
#include "cluster/membership.hpp"
#include "support/child_process.hpp"
#include "support/etcd_server.hpp"
#include "support/unique_fd.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;
namespace td = troupe::detail;
namespace ts = troupe::test_support;
using troupe::errc;
using troupe::member;

namespace {

// What a provider reported, and waits on it with deadlines.
class recorder final : public td::membership_events {
 public:
  struct event {
    bool gone = false;  // else seen
    member who;
    std::string why;
  };

  void member_seen(const member& m) override { add({false, m, {}}); }
  void member_gone(const member& m, const std::string& why) override { add({true, m, why}); }
  void provider_log(const std::string& line) override {
    std::lock_guard lock(mutex_);
    logs_.push_back(line);
    changed_.notify_all();
  }

  // True once `done(events, logs)` holds; false if it does not by the deadline.
  template <class Done>
  bool wait_for(Done done, std::chrono::milliseconds timeout = 15s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(events_, logs_); });
  }
  bool wait_seen(const member& m, std::size_t times = 1) {
    return wait_for([&](const auto& events, const auto&) { return count(events, false, m) >= times; });
  }
  bool wait_gone(const member& m) {
    return wait_for([&](const auto& events, const auto&) { return count(events, true, m) >= 1; });
  }
  bool wait_log(const std::string& part) {
    return wait_for([&](const auto&, const auto& logs) {
      for (const std::string& line : logs) {
        if (line.find(part) != std::string::npos) return true;
      }
      return false;
    });
  }
  std::vector<event> events() const {
    std::lock_guard lock(mutex_);
    return events_;
  }
  std::string all_logs() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const std::string& line : logs_) text += line + "\n";
    return text;
  }
  static std::size_t count(const std::vector<event>& events, bool gone, const member& m) {
    std::size_t n = 0;
    for (const event& e : events) n += e.gone == gone && e.who == m ? 1 : 0;
    return n;
  }

 private:
  void add(event e) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(e));
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<event> events_;
  std::vector<std::string> logs_;
};

member fake_member(const std::string& name, std::uint64_t incarnation = 1) {
  // A large incarnation: it must survive the trip through JSON exactly.
  return member{name, 0xfedcba9876543210ULL + incarnation, "tcp://127.0.0.1:" + std::to_string(4000 + incarnation)};
}

troupe::cluster_config etcd_config(const std::string& url, const std::string& cluster, std::chrono::seconds ttl = 2s) {
  troupe::cluster_config config;
  config.provider = troupe::membership_provider_kind::etcd;
  config.etcd = url;
  config.cluster_name = cluster;
  config.lease_ttl = ttl;
  config.request_timeout = 3s;
  return config;
}

td::etcd_client client_for(const std::string& url) { return td::etcd_client::create(url, 3s).value(); }

class etcd_provider : public ::testing::Test {
 protected:
  void SetUp() override {
    TROUPE_REQUIRE_ETCD();
    url_ = ts::etcd_server::shared().url();
    cluster_ = ts::unique_etcd_name();
  }
  std::unique_ptr<td::membership_provider> provider(std::chrono::seconds ttl = 2s) const {
    return td::make_etcd_provider(etcd_config(url_, cluster_, ttl));
  }
  std::string members_prefix() const { return "/troupe/" + cluster_ + "/members/"; }

  ts::watchdog watchdog_;
  std::string url_;
  std::string cluster_;
};

}  // namespace

// ---- the provider ------------------------------------------------------------------

TEST_F(etcd_provider, two_members_see_each_other_and_never_themselves) {
  recorder seen_by_a, seen_by_b;
  const member a = fake_member("a", 1), b = fake_member("b", 2);
  auto pa = provider(), pb = provider();
  ASSERT_TRUE(pa->start(a, seen_by_a));
  ASSERT_TRUE(pb->start(b, seen_by_b));
  EXPECT_TRUE(seen_by_a.wait_seen(b)) << seen_by_a.all_logs();
  EXPECT_TRUE(seen_by_b.wait_seen(a)) << seen_by_b.all_logs();
  pa->stop();
  EXPECT_TRUE(seen_by_b.wait_gone(a));
  pb->stop();
  pb->stop();  // idempotent
  for (const auto& e : seen_by_a.events()) EXPECT_NE(e.who.name, "a");
  for (const auto& e : seen_by_b.events()) EXPECT_NE(e.who.name, "b");
}

TEST_F(etcd_provider, a_member_that_leaves_is_gone_at_once_not_a_ttl_later) {
  recorder watcher_events, leaver_events;
  const member watcher = fake_member("watcher", 1), leaver = fake_member("leaver", 2);
  // A 60 s lease: seeing the leaver gone within the wait can only be the revoke.
  auto pw = provider(60s), pl = provider(60s);
  ASSERT_TRUE(pw->start(watcher, watcher_events));
  ASSERT_TRUE(pl->start(leaver, leaver_events));
  ASSERT_TRUE(watcher_events.wait_seen(leaver));
  pl->stop();
  ASSERT_TRUE(watcher_events.wait_gone(leaver));
  for (const auto& e : watcher_events.events()) {
    if (e.gone) {
      EXPECT_NE(e.why.find("lease expired or it left"), std::string::npos) << e.why;
    }
  }
  pw->stop();
}

// Not a test of its own: the member that the next test starts as a child
// process and kills with SIGKILL, so that its lease is never revoked.
TEST(etcd_provider_child, is_the_member_killed_by_another_test) {
  const char* role = std::getenv("TROUPE_ETCD_TEST_CHILD");
  if (role == nullptr) GTEST_SKIP() << "runs only as the child of etcd_provider.a_killed_member_*";
  std::istringstream words(role);
  std::string url, cluster, name;
  words >> url >> cluster >> name;
  recorder events;
  auto p = td::make_etcd_provider(etcd_config(url, cluster));
  ASSERT_TRUE(p->start(fake_member(name, 9), events));
  ASSERT_TRUE(p->claim_name("held-by-the-child"));
  std::printf("\nTROUPE-CHILD-READY\n");
  std::fflush(stdout);
  // Blocks until the parent kills us (or closes our stdin if it failed).
  char byte = 0;
  [[maybe_unused]] const ssize_t ignored = ::read(STDIN_FILENO, &byte, 1);
  p->stop();
}

TEST_F(etcd_provider, a_killed_member_is_gone_with_its_names_when_its_lease_expires) {
  recorder events;
  auto observer = provider();
  ASSERT_TRUE(observer->start(fake_member("observer", 1), events));

  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from_child, O_CLOEXEC), 0);
  ts::unique_fd child_stdin(to_child[0]), keep_child_waiting(to_child[1]);
  ts::unique_fd child_output(from_child[0]), child_stdout(from_child[1]);
  ts::child_options options;
  options.stdin_fd = child_stdin.get();
  options.stdout_fd = child_stdout.get();
  options.close_inherited_fds = true;
  const pid_t pid =
      ts::start_child({ts::current_executable(), "--gtest_filter=etcd_provider_child.*"},
                      ts::environment_with({"TROUPE_ETCD_TEST_CHILD=" + url_ + " " + cluster_ + " doomed"}), options);
  struct reaper {
    pid_t pid;
    ~reaper() {
      try {
        if (pid > 0) ts::kill_child(pid);
      } catch (...) {  // a destructor must not throw; the watchdog catches a child left behind
      }
    }
  } reap{pid};
  child_stdin.reset();
  child_stdout.reset();

  // The child says when it is registered; its output is read with a deadline.
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (output.find("TROUPE-CHILD-READY") == std::string::npos) {
    pollfd readable{child_output.get(), POLLIN, 0};
    ASSERT_GT(::poll(&readable, 1, ts::poll_timeout_until(deadline)), 0) << "the child never got ready:\n" << output;
    char buffer[4096];
    const ssize_t n = ::read(child_output.get(), buffer, sizeof buffer);
    ASSERT_GT(n, 0) << "the child ended before it got ready:\n" << output;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  const member doomed = fake_member("doomed", 9);
  ASSERT_TRUE(events.wait_seen(doomed)) << events.all_logs();
  EXPECT_EQ(observer->name_owner("held-by-the-child").value(), doomed);

  ts::kill_child(pid);
  reap.pid = -1;
  // The lease (2 s) expires; etcd deletes the member key and the name together.
  ASSERT_TRUE(events.wait_gone(doomed)) << events.all_logs();
  const auto owner = observer->name_owner("held-by-the-child");
  ASSERT_FALSE(owner);
  EXPECT_EQ(owner.error().code(), errc::no_such_name) << owner.error();
  observer->stop();
}

TEST_F(etcd_provider, a_new_incarnation_replaces_the_old_one_gone_then_seen) {
  recorder events, old_events, new_events, marker_events;
  auto observer = provider(), old_one = provider(), new_one = provider();
  const member before = fake_member("phoenix", 1), after = fake_member("phoenix", 2);
  ASSERT_TRUE(observer->start(fake_member("observer", 3), events));
  ASSERT_TRUE(old_one->start(before, old_events));
  ASSERT_TRUE(events.wait_seen(before));
  ASSERT_TRUE(new_one->start(after, new_events));
  ASSERT_TRUE(events.wait_seen(after));
  auto seen = events.events();
  ASSERT_GE(seen.size(), 3u);
  EXPECT_TRUE(seen[seen.size() - 2].gone && seen[seen.size() - 2].who == before);
  EXPECT_NE(seen[seen.size() - 2].why.find("new incarnation"), std::string::npos);
  EXPECT_FALSE(seen.back().gone);

  // The old incarnation's leave revokes its own lease, not the new one's key;
  // a later member's arrival proves the observer has seen everything before it.
  old_one->stop();
  auto marker = provider();
  const member later = fake_member("later", 4);
  ASSERT_TRUE(marker->start(later, marker_events));
  ASSERT_TRUE(events.wait_seen(later));
  EXPECT_EQ(recorder::count(events.events(), true, after), 0u);
  new_one->stop();
  marker->stop();
  observer->stop();
}

TEST_F(etcd_provider, a_global_name_has_one_holder_until_released) {
  recorder a_events, b_events;
  auto pa = provider(), pb = provider();
  const member a = fake_member("alpha", 1), b = fake_member("beta", 2);
  ASSERT_TRUE(pa->start(a, a_events));
  ASSERT_TRUE(pb->start(b, b_events));

  ASSERT_TRUE(pa->claim_name("ledger"));
  EXPECT_TRUE(pa->claim_name("ledger")) << "claiming a name this node holds again is fine";
  const auto taken = pb->claim_name("ledger");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), errc::name_taken);
  EXPECT_NE(taken.error().text().find("node 'alpha'"), std::string::npos) << taken.error();
  EXPECT_EQ(pb->name_owner("ledger").value(), a);

  pb->release_name("ledger");  // not beta's: nothing happens
  EXPECT_EQ(pb->name_owner("ledger").value(), a);
  pa->release_name("ledger");
  const auto none = pb->name_owner("ledger");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), errc::no_such_name);
  ASSERT_TRUE(pb->claim_name("ledger"));
  EXPECT_EQ(pa->name_owner("ledger").value(), b);

  // A leaving member's names go with it.
  pb->stop();
  EXPECT_EQ(pa->name_owner("ledger").error().code(), errc::no_such_name);
  EXPECT_EQ(pa->claim_name("").error().code(), errc::no_such_name);
  EXPECT_EQ(pb->claim_name("other").error().code(), errc::system_stopped);
  pa->stop();
}

TEST_F(etcd_provider, a_lost_lease_is_granted_again_with_the_names_reclaimed) {
  recorder events, lost_events;
  auto observer = provider(), unlucky = provider();
  const member u = fake_member("unlucky", 1);
  ASSERT_TRUE(observer->start(fake_member("observer", 2), events));
  ASSERT_TRUE(unlucky->start(u, lost_events));
  ASSERT_TRUE(unlucky->claim_name("kept"));
  ASSERT_TRUE(events.wait_seen(u));

  // As if etcd had expired the lease during an outage.
  const td::etcd_client c = client_for(url_);
  const std::int64_t lease = c.get(members_prefix() + "unlucky").value().kvs.at(0).lease;
  ASSERT_TRUE(c.revoke_lease(lease));
  ASSERT_TRUE(events.wait_gone(u));
  ASSERT_TRUE(lost_events.wait_log("registered again")) << lost_events.all_logs();
  EXPECT_TRUE(events.wait_seen(u, 2));
  EXPECT_EQ(observer->name_owner("kept").value(), u);
  unlucky->stop();
  observer->stop();
}

TEST_F(etcd_provider, invalid_member_records_are_skipped_and_logged) {
  const td::etcd_client c = client_for(url_);
  const std::string p = members_prefix();
  // Before the provider starts (its list) and after (its watch).
  ASSERT_TRUE(c.put(p + "garbage", "{not json"));
  ASSERT_TRUE(c.put(p + "bad name!", R"({"name":"bad name!","incarnation":"1","endpoint":"tcp://h:1"})"));
  recorder events;
  auto observer = provider();
  ASSERT_TRUE(observer->start(fake_member("observer", 1), events));
  ASSERT_TRUE(c.put(p + "liar", R"({"name":"someone-else","incarnation":"1","endpoint":"tcp://h:1"})"));
  ASSERT_TRUE(c.put(p + "udp", R"({"name":"udp","incarnation":"1","endpoint":"udp://h:1"})"));
  ASSERT_TRUE(c.put(p + "number", R"({"name":"number","incarnation":1,"endpoint":"tcp://h:1"})"));
  ASSERT_TRUE(
      c.put(p + "overflow", R"({"name":"overflow","incarnation":"18446744073709551616","endpoint":"tcp://h:1"})"));
  ASSERT_TRUE(c.put(p + "huge", std::string(100000, '{')));
  // A good record written by hand (no lease) is a member like any other.
  const member good{"good", 18446744073709551615ULL, "tcp://[::1]:7"};
  ASSERT_TRUE(c.put(p + "good", R"({"name":"good","incarnation":"18446744073709551615","endpoint":"tcp://[::1]:7"})"));
  ASSERT_TRUE(events.wait_seen(good)) << events.all_logs();
  ASSERT_TRUE(c.erase(p + "good"));
  ASSERT_TRUE(events.wait_gone(good));
  for (const auto& e : events.events()) EXPECT_EQ(e.who.name, "good");
  const std::string logs = events.all_logs();
  for (const char* skipped : {"garbage", "bad name!", "liar", "udp", "number", "overflow", "huge"}) {
    EXPECT_NE(logs.find(std::string("members/") + skipped + "'"), std::string::npos) << skipped << "\n" << logs;
  }
  observer->stop();
}

TEST(etcd_provider_failures, start_reports_an_unreachable_etcd_and_bad_settings_clearly) {
  ts::watchdog guard;
  const ts::refused_url port;
  recorder events;
  auto p = td::make_etcd_provider(etcd_config(port.url(), "c"));
  const auto started = p->start(fake_member("a"), events);
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code(), errc::connection_lost) << started.error();
  EXPECT_NE(started.error().text().find("unreachable"), std::string::npos) << started.error();
  p->stop();

  const auto bad_cluster = td::make_etcd_provider(etcd_config(port.url(), "a/b"))->start(fake_member("a"), events);
  ASSERT_FALSE(bad_cluster);
  EXPECT_NE(bad_cluster.error().text().find("cluster name"), std::string::npos) << bad_cluster.error();
  const auto bad_url = td::make_etcd_provider(etcd_config("etcd:2379", "c"))->start(fake_member("a"), events);
  ASSERT_FALSE(bad_url);
  EXPECT_NE(bad_url.error().text().find("bad etcd URL"), std::string::npos) << bad_url.error();
  EXPECT_TRUE(events.events().empty());
}

TEST(etcd_provider_outage, members_stay_up_across_an_etcd_restart_and_the_watch_resumes) {
  TROUPE_REQUIRE_ETCD();
  ts::watchdog guard(90s);
  ts::etcd_server etcd;  // its own: this test kills it
  const std::string cluster = ts::unique_etcd_name();
  recorder a_events, b_events, c_events;
  auto pa = td::make_etcd_provider(etcd_config(etcd.url(), cluster));
  auto pb = td::make_etcd_provider(etcd_config(etcd.url(), cluster));
  const member a = fake_member("a", 1), b = fake_member("b", 2), c = fake_member("c", 3);
  ASSERT_TRUE(pa->start(a, a_events));
  ASSERT_TRUE(pb->start(b, b_events));
  ASSERT_TRUE(a_events.wait_seen(b));
  ASSERT_TRUE(b_events.wait_seen(a));

  etcd.kill();
  ASSERT_TRUE(a_events.wait_log("cannot renew")) << a_events.all_logs();
  etcd.start();
  // etcd restores its leases on restart, so nobody is gone; both catch up.
  ASSERT_TRUE(a_events.wait_log("reachable again")) << a_events.all_logs();
  auto pc = td::make_etcd_provider(etcd_config(etcd.url(), cluster));
  ASSERT_TRUE(pc->start(c, c_events));
  EXPECT_TRUE(a_events.wait_seen(c)) << a_events.all_logs();
  EXPECT_TRUE(b_events.wait_seen(c)) << b_events.all_logs();
  EXPECT_EQ(recorder::count(a_events.events(), true, b), 0u);
  EXPECT_EQ(recorder::count(b_events.events(), true, a), 0u);
  pa->stop();
  EXPECT_TRUE(b_events.wait_gone(a));
  pb->stop();
  pc->stop();
}
