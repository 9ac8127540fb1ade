// Clusters within one process (the seeds provider): nodes join through a seed,
// agree on the member list, tell subscribers who comes and goes, hold
// cluster-wide names, and spawn on the least-loaded member. Nodes sharing a
// runtime directory link over shared memory; nodes with directories of their
// own link over TCP loopback: both are covered. The last tests run the same
// flows through a real etcd (tests/support/etcd_server.hpp); the etcd client
// and provider alone are in etcd_client_test.cpp and etcd_provider_test.cpp,
// clusters across network namespaces (a host killed, a cable cut) in
// tests/integration/cluster_hosts_test.cpp.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cluster/etcd/etcd_client.hpp"
#include "node/node_access.hpp"
#include "node/node_core.hpp"
#include "support/etcd_server.hpp"
#include "support/event_log.hpp"
#include "support/node_fixture.hpp"
#include "support/watchdog.hpp"
#include "troupe/net/testing.hpp"
#include "troupe/troupe.hpp"

using namespace std::chrono_literals;

namespace {

// What a member_up / member_down subscriber saw, in order.
using troupe::test_support::event_log;

using membership_protocol = troupe::protocol<troupe::member_up, troupe::member_down>;
struct membership_watcher : troupe::actor<membership_protocol> {
  explicit membership_watcher(event_log* into) : log(into) {}
  void on(const troupe::member_up& e) { log->add("up " + e.who.name); }
  void on(const troupe::member_down& e) { log->add("down " + e.who.name); }
  event_log* log;
};

struct get_value {
  using reply = std::string;
};
struct quit {};
using named_protocol = troupe::protocol<get_value, quit>;
struct named_actor : troupe::actor<named_protocol> {
  explicit named_actor(std::string v) : value(std::move(v)) {}
  std::string on(get_value) { return value; }
  void on(quit) { stop(); }
  std::string value;
};

struct where_are_you {
  using reply = std::string;
};
using placed_protocol = troupe::protocol<where_are_you>;
// Spawned with troupe::anywhere; its ref's address tells where it landed.
struct placed_here : troupe::actor<placed_protocol> {
  std::string on(where_are_you) { return address(); }
};

// Counts a stream_item stream and notices a gap or reordering.
struct stream_item {
  std::int64_t n = 0;
};
struct received {
  using reply = std::int64_t;  // how many arrived in order; -1 after a gap
};
using sink_protocol = troupe::protocol<stream_item, received>;
struct sink : troupe::actor<sink_protocol> {
  void on(const stream_item& m) {
    if (m.n != next) broken = true;
    next = m.n + 1;
  }
  std::int64_t on(received) { return broken ? -1 : next; }
  std::int64_t next = 0;
  bool broken = false;
};

struct watch_link {
  troupe::actor_addr who;
};
using watcher_protocol = troupe::protocol<watch_link>;
struct link_watcher : troupe::actor<watcher_protocol> {
  explicit link_watcher(event_log* into) : log(into) {}
  void on(const watch_link& w) { (void)monitor(w.who); }
  void on(const troupe::down&) { log->add("link down"); }
  event_log* log;
};

// For playing a lying peer: the real record, with chosen contents.
using fake_gossip = troupe::detail::gossip_record;
using fake_gossip_member = troupe::detail::gossip_member;
constexpr auto gossip_kind = static_cast<std::uint32_t>(troupe::detail::record_kind::gossip);

constexpr const char* cookie = "a-cluster-test-cookie";

class cluster_test : public troupe::test_support::node_fixture {
 protected:
  // A member that joins through `seeds`. `own_dir`: a runtime directory of its
  // own, so the others reach it over TCP, not shared memory.
  troupe::node_config member_config(const std::string& name, const std::string& seeds, bool own_dir = false) {
    troupe::node_config cfg = config(name);
    if (own_dir) {
      cfg.runtime_dir = dir_ + "/" + name;
      std::filesystem::create_directories(cfg.runtime_dir);
      std::filesystem::permissions(cfg.runtime_dir, std::filesystem::perms::owner_all);
    }
    cfg.listen = "tcp://127.0.0.1:0";
    cfg.cookie = cookie;
    cfg.cluster = troupe::parse_cluster("seeds=" + seeds + ";gossip_ms=100").value();
    cfg.failure_detector.heartbeat_interval = 50ms;
    cfg.failure_detector.acceptable_pause = 100ms;
    return cfg;
  }
  static std::vector<std::string> names(const std::vector<troupe::member>& ms) {
    std::vector<std::string> out;
    for (auto& m : ms) out.push_back(m.name);
    return out;
  }
};

// The first node seeds itself: its seed list names only itself (the usual
// "every node gets the same seed list" deployment).
TEST_F(cluster_test, nodes_join_through_one_seed_and_agree_on_the_members) {
  troupe::test_support::watchdog guard;
  for (bool own_dirs : {false, true}) {
    SCOPED_TRACE(own_dirs ? "over TCP" : "over shared memory");
    const std::string suffix = own_dirs ? "-tcp" : "-shm";
    auto a = std::make_unique<troupe::node>(member_config("a" + suffix, "127.0.0.1:1", own_dirs));
    // a's real endpoint is known only now (port 0): the others seed from it.
    const std::string seed = a->endpoint().substr(6);
    troupe::node b(member_config("b" + suffix, seed, own_dirs));
    troupe::node c(member_config("c" + suffix, seed, own_dirs));
    ASSERT_TRUE(a->await_members(3, 20s)) << "a";
    ASSERT_TRUE(b.await_members(3, 20s)) << "b";
    ASSERT_TRUE(c.await_members(3, 20s)) << "c";
    const std::vector<std::string> all{"a" + suffix, "b" + suffix, "c" + suffix};
    EXPECT_EQ(names(a->members()), all);
    EXPECT_EQ(names(b.members()), all);
    EXPECT_EQ(names(c.members()), all);
    // b and c learned of each other through a, and linked directly.
    EXPECT_TRUE(b.await_connection("c" + suffix, 1s));
    for (const auto& m : c.members()) {
      if (m.name == "a" + suffix) {
        EXPECT_EQ(m.incarnation, a->incarnation());
        EXPECT_EQ(m.endpoint, a->endpoint());
      }
    }
  }
}

TEST_F(cluster_test, subscribers_hear_members_come_and_go) {
  troupe::test_support::watchdog guard;
  event_log log;  // outlives the nodes: their watchers write to it until they stop
  auto a = std::make_unique<troupe::node>(member_config("a", "127.0.0.1:1"));
  const std::string seed = a->endpoint().substr(6);
  troupe::node b(member_config("b", seed));
  auto w = b.spawn<membership_watcher>(&log);
  ASSERT_TRUE(b.subscribe_members(w));
  // At once: every current member, this node first.
  ASSERT_TRUE(log.wait_for("up b"));
  ASSERT_TRUE(log.wait_for("up a"));
  {
    troupe::node c(member_config("c", seed));
    ASSERT_TRUE(log.wait_for("up c"));
  }  // c leaves (an orderly shutdown)
  ASSERT_TRUE(log.wait_for("down c"));
  EXPECT_TRUE(b.await_members(2, 5s));
  EXPECT_EQ(names(b.members()), (std::vector<std::string>{"a", "b"}));
  a.reset();  // the seed itself leaves: the rest stays a cluster
  ASSERT_TRUE(log.wait_for("down a"));
  EXPECT_EQ(names(b.members()), (std::vector<std::string>{"b"}));
  const auto lines = log.lines();
  // Each member's up came before its down.
  for (const std::string n : {"a", "c"}) {
    const auto up = std::find(lines.begin(), lines.end(), "up " + n);
    const auto down = std::find(lines.begin(), lines.end(), "down " + n);
    ASSERT_NE(up, lines.end());
    ASSERT_NE(down, lines.end());
    EXPECT_LT(up - lines.begin(), down - lines.begin()) << n;
  }
}

TEST_F(cluster_test, a_node_outside_the_cluster_is_told_so) {
  troupe::node lone(config("lone"));
  EXPECT_EQ(lone.members().size(), 1u);
  auto err = lone.await_members(1, 10ms);
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().text().find("in no cluster"), std::string::npos) << err.error();
  auto r = lone.spawn<named_actor>(std::string("x"));
  auto published = lone.publish_global("x", r);
  ASSERT_FALSE(published);
  auto found = lone.lookup<named_protocol>("x", 10ms);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code(), troupe::errc::no_such_name);
}

TEST_F(cluster_test, global_names_resolve_on_every_member_and_go_with_their_actor) {
  troupe::test_support::watchdog guard;
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  troupe::node b(member_config("b", seed, /*own_dir=*/true));
  troupe::node c(member_config("c", seed));
  ASSERT_TRUE(c.await_members(3, 20s));
  ASSERT_TRUE(b.await_members(3, 20s));

  auto ledger = b.spawn<named_actor>(std::string("ledger on b"));
  ASSERT_TRUE(b.publish_global("ledger", ledger));
  // Any member resolves the bare name (waiting for it to spread).
  for (troupe::node* n : {&a, &b, &c}) {
    auto found = n->lookup<named_protocol>("ledger", 10s);
    ASSERT_TRUE(found) << n->name() << ": " << found.error();
    EXPECT_EQ(found->ask(get_value{}, 5s).get(), "ledger on b") << n->name();
  }
  // The wrong protocol is refused, naming both.
  auto wrong = c.lookup<placed_protocol>("ledger", 5s);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), troupe::errc::protocol_mismatch) << wrong.error();

  // A second claim, once the first is known, is refused and names the holder.
  ASSERT_TRUE(a.lookup<named_protocol>("ledger", 10s));
  auto rival = a.spawn<named_actor>(std::string("ledger on a"));
  auto taken = a.publish_global("ledger", rival);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), troupe::errc::name_taken);
  EXPECT_NE(taken.error().text().find("'b'"), std::string::npos) << taken.error();

  // The actor stops: its name goes everywhere.
  ledger.tell(quit{});
  // The removal reaches a with b's next gossip.
  ASSERT_TRUE(troupe::detail::node_access::core(a).cluster()->await_name_gone("ledger",
                                                                              std::chrono::steady_clock::now() + 10s));
  auto gone = a.lookup<named_protocol>("ledger", 10ms);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), troupe::errc::no_such_name) << gone.error();
  // Now a may claim it.
  EXPECT_TRUE(a.publish_global("ledger", rival));
  auto found = c.lookup<named_protocol>("ledger", 10s);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->ask(get_value{}, 5s).get(), "ledger on a");
}

TEST_F(cluster_test, a_members_names_go_when_it_leaves) {
  troupe::test_support::watchdog guard;
  event_log log;  // outlives the node
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  ASSERT_TRUE(a.subscribe_members(a.spawn<membership_watcher>(&log)));
  {
    troupe::node b(member_config("b", seed));
    ASSERT_TRUE(b.publish_global("svc", b.spawn<named_actor>(std::string("b"))));
    ASSERT_TRUE(a.lookup<named_protocol>("svc", 10s));
  }
  ASSERT_TRUE(log.wait_for("down b"));
  auto gone = a.lookup<named_protocol>("svc", 10ms);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), troupe::errc::no_such_name) << gone.error();
}

TROUPE_REGISTER_ACTOR(placed_here);

TEST_F(cluster_test, spawn_anywhere_picks_the_least_loaded_member) {
  troupe::test_support::watchdog guard;
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  troupe::node b(member_config("b", seed, /*own_dir=*/true));
  ASSERT_TRUE(a.await_members(2, 20s));
  // Load a with idle actors: b is then the least loaded.
  std::vector<troupe::ref<named_protocol>> ballast;
  for (int i = 0; i < 50; ++i) ballast.push_back(a.spawn<named_actor>(std::string("x")));
  auto r = a.spawn<placed_here>(troupe::anywhere);
  ASSERT_TRUE(r) << r.error();
  EXPECT_TRUE(r->address().starts_with("troupe://b/")) << r->address() << ": expected b, the least-loaded member";
  // Load b more than a: the next one lands on a.
  std::vector<troupe::ref<named_protocol>> more;
  for (int i = 0; i < 100; ++i) more.push_back(b.spawn<named_actor>(std::string("y")));
  auto local = a.spawn<placed_here>(troupe::anywhere);
  ASSERT_TRUE(local) << local.error();
  EXPECT_FALSE(local->address().starts_with("troupe://b/")) << local->address() << ": expected a, now the least loaded";
}

// Members coming and going do not disturb a stream between two others.
TEST_F(cluster_test, a_node_joining_or_leaving_loses_no_message_between_others) {
  troupe::test_support::watchdog guard;
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  troupe::node b(member_config("b", seed, /*own_dir=*/true));
  auto d = std::make_unique<troupe::node>(member_config("d", seed));
  ASSERT_TRUE(a.await_members(3, 20s));
  auto target = b.spawn<sink>();
  ASSERT_TRUE(b.publish_global("sink", target));
  auto far = a.lookup<sink_protocol>("sink", 10s);
  ASSERT_TRUE(far) << far.error();
  constexpr std::int64_t total = 20000;
  std::thread sender([&] {
    for (std::int64_t i = 0; i < total; ++i) far->tell(stream_item{i});
  });
  {
    troupe::node c(member_config("c", seed));  // joins mid-stream
    EXPECT_TRUE(c.await_members(4, 20s));
    d.reset();  // leaves mid-stream
  }             // c leaves too
  sender.join();
  EXPECT_EQ(far->ask(received{}, 10s).get(), total);
  EXPECT_EQ(names(a.members()), (std::vector<std::string>{"a", "b"}));
}

// Gossip is input from another process: a malformed or forged record closes
// that one link, and the node stays a working member.
TEST_F(cluster_test, bad_gossip_closes_that_connection_only) {
  troupe::test_support::watchdog guard;
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  troupe::node b(member_config("b", seed));
  ASSERT_TRUE(a.await_members(2, 20s));
  auto svc = a.spawn<named_actor>(std::string("still here"));
  ASSERT_TRUE(a.publish_global("svc", svc));

  auto bytes_of = [](const fake_gossip& g) {
    std::vector<std::byte> bytes;
    troupe::wire_writer out(bytes);
    troupe::encode(out, g);
    return bytes;
  };
  fake_gossip forged;  // signed with another node's name
  forged.cluster = "troupe";
  forged.sender = fake_gossip_member{"someone-else", 1, "tcp://127.0.0.1:9", 0};
  fake_gossip bad_member;  // a member whose name is a path
  bad_member.cluster = "troupe";
  bad_member.members.push_back(fake_gossip_member{"../etc", 1, "tcp://127.0.0.1:9", 0});
  const std::vector<std::pair<std::string, std::vector<std::byte>>> cases{
      {"evil-garbage", std::vector<std::byte>(7, std::byte{0xff})},
      {"evil-forger", bytes_of(forged)},
      {"evil-member", bytes_of(bad_member)},
  };
  for (const auto& [evil_name, body] : cases) {
    SCOPED_TRACE(evil_name);
    event_log log;  // outlives the node
    troupe::node evil(config(evil_name));
    auto link = evil.connect(a.name());
    ASSERT_TRUE(link) << link.error();
    auto w = evil.spawn<link_watcher>(&log);
    w.tell(watch_link{link->anchor()});
    if (evil_name == "evil-member") {
      // Signed correctly, so only the member list is wrong.
      fake_gossip g = bad_member;
      g.sender = fake_gossip_member{evil.name(), evil.incarnation(), "", 0};
      ASSERT_TRUE(troupe::testing::inject_record(evil, a.name(), gossip_kind, bytes_of(g)));
    } else {
      ASSERT_TRUE(troupe::testing::inject_record(evil, a.name(), gossip_kind, body));
    }
    EXPECT_TRUE(log.wait_for("link down")) << "a kept the link of a peer that sent bad gossip";
  }
  // a still serves its members.
  auto found = b.lookup<named_protocol>("svc", 10s);
  ASSERT_TRUE(found) << found.error();
  EXPECT_EQ(found->ask(get_value{}, 5s).get(), "still here");
  EXPECT_EQ(names(a.members()), (std::vector<std::string>{"a", "b"}));
}

// A node of another cluster that links (for any reason) is not taken in.
TEST_F(cluster_test, a_node_of_another_cluster_is_not_a_member) {
  troupe::test_support::watchdog guard;
  troupe::node a(member_config("a", "127.0.0.1:1"));
  const std::string seed = a.endpoint().substr(6);
  troupe::node_config other = member_config("other", seed);
  other.cluster.cluster_name = "elsewhere";
  troupe::node o(other);
  troupe::node b(member_config("b", seed));
  ASSERT_TRUE(b.await_members(2, 20s));
  ASSERT_TRUE(o.await_connection("a", 20s));  // o dialed its seed, a
  // Gossip has gone both ways by the time a and b see each other twice over.
  ASSERT_TRUE(a.await_members(2, 20s));
  EXPECT_EQ(names(a.members()), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names(o.members()), (std::vector<std::string>{"other"}));
}

// --- through etcd ---------------------------------------------------------------------

class etcd_cluster_test : public cluster_test {
 protected:
  // A member of a cluster of this test's own (the etcd is shared by the tests).
  troupe::node_config etcd_member(const std::string& name, const troupe::test_support::etcd_server& etcd,
                                  bool own_dir = false) {
    troupe::node_config cfg = member_config(name, "127.0.0.1:1", own_dir);
    cfg.cluster = troupe::parse_cluster("etcd=" + etcd.url() + ";ttl=2;cluster=" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name())
                      .value();
    return cfg;
  }
};

TEST_F(etcd_cluster_test, nodes_join_through_etcd_and_hear_each_other_come_and_go) {
  TROUPE_REQUIRE_ETCD();
  troupe::test_support::watchdog guard;
  auto& etcd = troupe::test_support::etcd_server::shared();
  event_log log;
  troupe::node a(etcd_member("a", etcd));
  ASSERT_TRUE(a.subscribe_members(a.spawn<membership_watcher>(&log)));
  troupe::node b(etcd_member("b", etcd, /*own_dir=*/true));
  {
    troupe::node c(etcd_member("c", etcd));
    ASSERT_TRUE(a.await_members(3, 20s));
    ASSERT_TRUE(b.await_members(3, 20s));
    ASSERT_TRUE(c.await_members(3, 20s));
    EXPECT_EQ(names(b.members()), (std::vector<std::string>{"a", "b", "c"}));
    // member_up means linked: c can be messaged at once.
    EXPECT_TRUE(a.await_connection("c", 1ms));
  }  // c leaves: it revokes its lease, so the others hear of it now, not a TTL later
  ASSERT_TRUE(log.wait_for("down c", 1500ms)) << "member_down came no sooner than the lease would expire";
  EXPECT_EQ(names(a.members()), (std::vector<std::string>{"a", "b"}));
}

TEST_F(etcd_cluster_test, global_names_live_in_etcd) {
  TROUPE_REQUIRE_ETCD();
  troupe::test_support::watchdog guard;
  auto& etcd = troupe::test_support::etcd_server::shared();
  troupe::node a(etcd_member("a", etcd));
  auto b = std::make_unique<troupe::node>(etcd_member("b", etcd, /*own_dir=*/true));
  ASSERT_TRUE(a.await_members(2, 20s));
  ASSERT_TRUE(b->publish_global("ledger", b->spawn<named_actor>(std::string("ledger on b"))));
  // etcd is one store: the name is there for everyone as soon as the claim
  // returns (asked with no time to wait for it), and resolves.
  auto holder = troupe::detail::node_access::core(a).cluster()->name_owner("ledger", std::chrono::steady_clock::now());
  ASSERT_TRUE(holder) << holder.error();
  EXPECT_EQ(holder->name, "b");
  auto found = a.lookup<named_protocol>("ledger", 5s);
  ASSERT_TRUE(found) << found.error();
  EXPECT_EQ(found->ask(get_value{}, 5s).get(), "ledger on b");
  // The first claim wins.
  auto rival = a.spawn<named_actor>(std::string("ledger on a"));
  auto taken = a.publish_global("ledger", rival);
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code(), troupe::errc::name_taken) << taken.error();
  EXPECT_NE(taken.error().text().find("'b'"), std::string::npos) << taken.error();
  // Its holder leaves: the lease goes, and the name with it.
  b.reset();
  auto gone = a.lookup<named_protocol>("ledger", 1ms);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), troupe::errc::no_such_name) << gone.error();
  EXPECT_TRUE(a.publish_global("ledger", rival));
  a.unpublish_global("ledger");
  auto released =
      troupe::detail::node_access::core(a).cluster()->name_owner("ledger", std::chrono::steady_clock::now());
  ASSERT_FALSE(released);
  EXPECT_EQ(released.error().code(), troupe::errc::no_such_name) << released.error();
}

// A member whose lease expires is down for its actors too, even though its
// link still answers; it registers again and comes back up.
TEST_F(etcd_cluster_test, a_lost_lease_is_node_down_and_the_node_comes_back) {
  TROUPE_REQUIRE_ETCD();
  troupe::test_support::watchdog guard;
  auto& etcd = troupe::test_support::etcd_server::shared();
  event_log log;
  troupe::node a(etcd_member("a", etcd));
  troupe::node b(etcd_member("b", etcd, /*own_dir=*/true));
  ASSERT_TRUE(a.subscribe_members(a.spawn<membership_watcher>(&log)));
  ASSERT_TRUE(a.await_members(2, 20s));
  ASSERT_TRUE(b.publish_global("svc", b.spawn<named_actor>(std::string("b"))));
  auto svc = a.lookup<named_protocol>("svc", 5s);
  ASSERT_TRUE(svc) << svc.error();
  auto w = a.spawn<link_watcher>(&log);
  w.tell(watch_link{troupe::actor_addr(*svc)});

  // The lease goes behind b's back (as when b is cut off from etcd for a TTL).
  auto client = troupe::detail::etcd_client::create(etcd.url(), 3s).value();
  const std::string prefix = std::string("/troupe/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  auto record = client.get(prefix + "/members/b").value();
  ASSERT_EQ(record.kvs.size(), 1u);
  ASSERT_TRUE(client.revoke_lease(record.kvs[0].lease));

  ASSERT_TRUE(log.wait_for("down b"));
  EXPECT_TRUE(log.wait_for("link down")) << "a's monitor of b's actor did not fire when b's lease went";
  // b's keepalive finds its lease gone, registers again: up again (same incarnation).
  log.add("---");
  EXPECT_TRUE(log.wait_for_after("---", "up b")) << "b did not come back after registering again";
  EXPECT_EQ(names(a.members()), (std::vector<std::string>{"a", "b"}));
}

TEST_F(etcd_cluster_test, a_node_cannot_start_without_its_etcd) {
  troupe::test_support::refused_url nobody;
  troupe::node_config cfg = member_config("a", "127.0.0.1:1");
  cfg.cluster = troupe::parse_cluster("etcd=" + nobody.url()).value();
  try {
    troupe::node a(cfg);
    ADD_FAILURE() << "a node started without its etcd";
  } catch (const troupe::troupe_error& e) {
    EXPECT_NE(std::string(e.what()).find(nobody.url()), std::string::npos) << e.what();
  }
}

TEST(cluster_config, specs_parse_and_bad_ones_are_named) {
  auto seeds = troupe::parse_cluster("seeds=10.0.0.1:4000, tcp://h:5;cluster=prod;gossip_ms=200");
  ASSERT_TRUE(seeds) << seeds.error();
  EXPECT_EQ(seeds->provider, troupe::membership_provider_kind::seeds);
  EXPECT_EQ(seeds->seeds, (std::vector<std::string>{"tcp://10.0.0.1:4000", "tcp://h:5"}));
  EXPECT_EQ(seeds->cluster_name, "prod");
  EXPECT_EQ(seeds->gossip_interval, 200ms);
  auto etcd = troupe::parse_cluster("etcd=http://127.0.0.1:2379;ttl=3");
  ASSERT_TRUE(etcd) << etcd.error();
  EXPECT_EQ(etcd->provider, troupe::membership_provider_kind::etcd);
  EXPECT_EQ(etcd->etcd, "http://127.0.0.1:2379");
  EXPECT_EQ(etcd->lease_ttl, 3s);
  for (const char* bad :
       {"", "seeds=", "seeds=nohostport", "zookeeper=x", "etcd=ftp://x", "seeds=a:1;ttl=-1", "seeds=a:1;colour=blue"}) {
    auto e = troupe::parse_cluster(bad);
    EXPECT_FALSE(e) << bad;
    if (!e) {
      EXPECT_NE(e.error().text().find("expected seeds="), std::string::npos) << e.error();
    }
  }
}

TEST(cluster_config, the_command_line_wins_over_the_config_file) {
  char pattern[] = "/tmp/troupe-config-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string file = std::string(pattern) + "/node.conf";
  {
    std::ofstream out(file);
    out << "# a node\nname = from-file\nlisten = tcp://0.0.0.0:4000\ncluster = seeds=h1:4000\n";
  }
  const char* argv[] = {"prog", "--config", file.c_str(), "--name=from-args", "job.txt", "--verbose"};
  troupe::node_config cfg;
  auto rest = troupe::configure_from_command_line(cfg, 6, argv);
  ASSERT_TRUE(rest) << rest.error();
  EXPECT_EQ(*rest, (std::vector<std::string>{"job.txt", "--verbose"}));
  EXPECT_EQ(cfg.name, "from-args");
  EXPECT_EQ(cfg.listen, "tcp://0.0.0.0:4000");
  EXPECT_EQ(cfg.cluster.seeds, std::vector<std::string>{"tcp://h1:4000"});
  // A cluster member listens somewhere even if not told where.
  const char* argv2[] = {"prog", "--cluster", "etcd=http://e:2379"};
  troupe::node_config cfg2;
  ASSERT_TRUE(troupe::configure_from_command_line(cfg2, 3, argv2));
  EXPECT_EQ(cfg2.listen, "tcp://0.0.0.0:0");
  const char* argv3[] = {"prog", "--cluster", "seeds="};
  troupe::node_config cfg3;
  EXPECT_FALSE(troupe::configure_from_command_line(cfg3, 3, argv3));
  const char* argv4[] = {"prog", "--config", "/nonexistent/troupe.conf"};
  EXPECT_FALSE(troupe::configure_from_command_line(cfg3, 3, argv4));
  std::filesystem::remove_all(pattern);
}

}  // namespace
