// The TCP transport within one process: nodes connected over real loopback
// sockets (so ThreadSanitizer sees both sides), plus hostile peers played by
// the test with raw sockets and the protocol's own pure functions
// (net/wire/wire.hpp; its own checks are in wire_test.cpp): a wrong cookie, garbage, a peer that authenticates and then goes
// silent (the failure detector), a peer that never reads (bounded queues).
// Multi-host behaviour (separate network stacks, cut links, kill -9) is in
// tests/integration (the netns rig).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "node/node_access.hpp"
#include "node/node_core.hpp"
#include "support/node_fixture.hpp"
#include "support/test_pki.hpp"
#include "support/watchdog.hpp"
#include "troupe/net/testing.hpp"
#include "troupe/troupe.hpp"
#include "wire/wire.hpp"

using namespace std::chrono_literals;
namespace td = troupe::detail;

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
struct spin_for {
  std::int64_t ms = 0;
  using reply = std::int64_t;
};
using greeter_protocol = troupe::protocol<greet, tally, total, spin_for>;

struct greeter : troupe::actor<greeter_protocol> {
  std::string on(const greet& g) { return "hello " + g.who; }
  void on(const tally& t) {
    if (t.n != next) out_of_order = true;
    next = t.n + 1;
    sum += t.n;
  }
  std::int64_t on(total) { return out_of_order ? -1 : sum; }
  // Keeps its worker busy (a loaded node), without sleeping.
  std::int64_t on(const spin_for& s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(s.ms);
    std::int64_t rounds = 0;
    while (std::chrono::steady_clock::now() < until) ++rounds;
    return rounds;
  }
  std::int64_t next = 0;
  std::int64_t sum = 0;
  bool out_of_order = false;
};

struct seen {
  std::int64_t n = 0;
};
using probe_protocol = troupe::protocol<seen>;
struct probe : troupe::actor<probe_protocol> {
  explicit probe(std::promise<std::int64_t>* p) : got(p) {}
  void on(const seen& s) { got->set_value(s.n); }
  std::promise<std::int64_t>* got;
};
struct call_back {
  troupe::ref<probe_protocol> target;
  std::int64_t n = 0;
};
using relay_protocol = troupe::protocol<call_back>;
struct relay : troupe::actor<relay_protocol> {
  void on(const call_back& c) { c.target.tell(seen{c.n}); }
};

struct watch_it {
  troupe::actor_addr who;
};
using watcher_protocol = troupe::protocol<watch_it>;
struct watcher : troupe::actor<watcher_protocol> {
  explicit watcher(std::promise<troupe::exit_reason>* p) : done(p) {}
  void on(const watch_it& w) { (void)monitor(w.who); }
  void on(const troupe::down& d) {
    if (!fired.exchange(true)) done->set_value(d.reason);
  }
  std::promise<troupe::exit_reason>* done;
  std::atomic<bool> fired{false};
};

constexpr const char* cookie = "a-test-cookie-of-some-length";

class tcp_test : public troupe::test_support::node_fixture {
 protected:
  troupe::node_config tcp_config(std::string name, std::string secret = cookie) const {
    troupe::node_config cfg = config(std::move(name));
    cfg.listen = "tcp://127.0.0.1:0";
    cfg.cookie = std::move(secret);
    return cfg;
  }
};

// --- a raw socket for playing a hostile or silent peer ---------------------------------

int dial_raw(const std::string& endpoint) {
  auto e = td::parse_endpoint(endpoint);
  if (!e) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(e->port);
  ::inet_pton(AF_INET, e->host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::vector<std::byte>& bytes) {
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  return true;
}

// Reads one frame (bounded wait); kind 0 and empty on EOF/timeout.
struct raw_frame {
  std::uint32_t kind = 0;
  std::vector<std::byte> body;
};
raw_frame read_frame(int fd, std::vector<std::byte>& buffer, std::chrono::milliseconds timeout = 5s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::size_t offset = 0;
    td::frame_view view;
    std::string defect;
    if (td::next_frame(buffer, offset, 1 << 24, view, defect) == td::frame_status::frame) {
      raw_frame f{view.kind, {view.body.begin(), view.body.end()}};
      buffer.erase(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(offset));
      return f;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
    std::byte chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return {};
    buffer.insert(buffer.end(), chunk, chunk + n);
  }
}

std::vector<std::byte> frame(std::uint32_t kind, std::span<const std::byte> head,
                             std::span<const std::byte> body = {}) {
  std::vector<std::byte> out;
  td::append_frame(out, kind, head, body);
  return out;
}

// Plays the dialing side of the handshake with `secret`; returns the socket
// (linked, if the cookie was right) or -1.
int handshake_as(const std::string& endpoint, const std::string& secret, const std::string& name,
                 raw_frame* answer = nullptr, std::span<const std::pair<std::uint64_t, std::uint64_t>> schema = {}) {
  const int fd = dial_raw(endpoint);
  if (fd < 0) return -1;
  std::vector<std::byte> buffer;
  const td::nonce mine = td::fresh_nonce();
  send_all(fd, frame(static_cast<std::uint32_t>(td::tcp_kind::challenge), td::encode_challenge(mine)));
  raw_frame challenge = read_frame(fd, buffer);
  auto theirs = td::parse_challenge(challenge.body);
  if (!theirs) {
    ::close(fd);
    return -1;
  }
  td::hello_info h;
  h.name = name;
  h.incarnation = 42;
  h.anchor_id = 1;
  h.host = 7;
  const std::vector<std::byte> hello = td::encode_hello(h, schema);
  const auto mac = td::compute_mac(secret, td::dialer_role, mine, *theirs, hello);
  send_all(fd, frame(static_cast<std::uint32_t>(td::tcp_kind::proof), mac, hello));
  raw_frame welcome = read_frame(fd, buffer);
  if (answer != nullptr) *answer = welcome;
  return fd;
}

// --- tests --------------------------------------------------------------------------------

TEST_F(tcp_test, nodes_connected_over_tcp_exchange_asks_and_ordered_tells) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  troupe::node b(tcp_config("b"));
  ASSERT_TRUE(a.endpoint().starts_with("tcp://127.0.0.1:")) << a.endpoint();
  b.publish("greeter", b.spawn<greeter>());
  auto g = a.lookup<greeter_protocol>(b.endpoint() + "/greeter");
  ASSERT_TRUE(g) << g.error();
  EXPECT_EQ(g->ask(greet{"a"}, 10s).get(), "hello a");
  std::int64_t expected = 0;
  for (std::int64_t i = 0; i < 20000; ++i) {
    g->tell(tally{i});
    expected += i;
  }
  EXPECT_EQ(g->ask(total{}, 30s).get(), expected);
  // The link is TCP, not shared memory.
  auto h = a.connect(b.endpoint());
  ASSERT_TRUE(h) << h.error();
  EXPECT_EQ(h->name(), "b");
  EXPECT_EQ(h->endpoint(), b.endpoint());
}

TEST_F(tcp_test, a_ref_sent_over_tcp_arrives_as_a_working_ref) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  troupe::node b(tcp_config("b"));
  b.publish("relay", b.spawn<relay>());
  auto r = a.lookup<relay_protocol>(b.endpoint() + "/relay");
  ASSERT_TRUE(r) << r.error();
  std::promise<std::int64_t> got;
  auto p = a.spawn<probe>(&got);
  // b's relay gets a ref to a's probe inside the message and tells it back.
  r->tell(call_back{p, 7});
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(f.get(), 7);
}

// Nodes on one host that do not share a runtime directory cannot meet over
// shared memory: a ref to a third such node is reached at its TCP endpoint.
TEST_F(tcp_test, a_ref_to_a_third_node_outside_the_runtime_directory_is_reached_over_tcp) {
  troupe::test_support::watchdog guard;
  auto own_dir = [&](const std::string& name) {
    troupe::node_config cfg = tcp_config(name);
    cfg.runtime_dir = dir_ + "/" + name;
    std::filesystem::create_directory(cfg.runtime_dir);
    std::filesystem::permissions(cfg.runtime_dir, std::filesystem::perms::owner_all);
    return cfg;
  };
  std::promise<std::int64_t> got;
  troupe::node a(own_dir("a"));
  troupe::node b(own_dir("b"));
  troupe::node c(own_dir("c"));
  b.publish("relay", b.spawn<relay>());
  c.publish("probe", c.spawn<probe>(&got));
  auto r = a.lookup<relay_protocol>(b.endpoint() + "/relay");
  auto p = a.lookup<probe_protocol>(c.endpoint() + "/probe");
  ASSERT_TRUE(r) << r.error();
  ASSERT_TRUE(p) << p.error();
  r->tell(call_back{*p, 9});  // b has no link to c yet
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(f.get(), 9);
}

TEST_F(tcp_test, a_remote_actor_stopping_and_a_node_leaving_are_reported_down) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  std::promise<troupe::exit_reason> gone;
  auto w = a.spawn<watcher>(&gone);
  {
    troupe::node b(tcp_config("b"));
    b.publish("greeter", b.spawn<greeter>());
    auto g = a.lookup<greeter_protocol>(b.endpoint() + "/greeter");
    ASSERT_TRUE(g) << g.error();
    w.tell(watch_it{troupe::actor_addr(*g)});
    ASSERT_EQ(g->ask(greet{"a"}, 10s).get(), "hello a");  // the watch is in place
  }                                                       // b shuts down: its actors stop, then it says goodbye
  auto f = gone.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  const troupe::exit_reason why = f.get();
  EXPECT_TRUE(why.what() == troupe::exit_reason::kind::shutdown || why.what() == troupe::exit_reason::kind::node_down)
      << why;
}

TEST_F(tcp_test, tell_records_are_delivered_in_order_and_a_short_one_closes_only_that_connection) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  auto g = a.spawn<greeter>();
  a.publish("greeter", g);  // exports it
  // A raw peer that announces tally's schema sends tells as a node does:
  // kind 17, the target and the type id, then the value (no request id).
  const std::pair<std::uint64_t, std::uint64_t> schema[] = {
      {troupe::type_id_of<tally>(), troupe::fingerprint_of<tally>()}};
  const int fd = handshake_as(a.endpoint(), cookie, "raw", nullptr, schema);
  ASSERT_GE(fd, 0);
  std::byte head[16];
  const std::uint64_t target = troupe::testing::remote_id(g), type = troupe::type_id_of<tally>();
  std::memcpy(head, &target, 8);
  std::memcpy(head + 8, &type, 8);
  for (std::int64_t n = 0; n < 3; ++n) {
    send_all(fd, frame(static_cast<std::uint32_t>(td::record_kind::tell), head, troupe::to_bytes(tally{n})));
  }
  // Delivered, in order (sum 0+1+2, and -1 if out of order).
  std::int64_t sum = 0;
  for (const auto until = std::chrono::steady_clock::now() + 10s;
       sum != 3 && std::chrono::steady_clock::now() < until;) {
    sum = g.ask(total{}, 10s).get();
  }
  EXPECT_EQ(sum, 3);
  // A tell too short to hold its target and type id is a defect: the node
  // closes this link (no goodbye), and keeps serving.
  send_all(fd, frame(static_cast<std::uint32_t>(td::record_kind::tell), std::vector<std::byte>(12, std::byte{1})));
  std::vector<std::byte> rest;
  bool closed = false;
  for (const auto until = std::chrono::steady_clock::now() + 10s;
       !closed && std::chrono::steady_clock::now() < until;) {
    const raw_frame f = read_frame(fd, rest, 2s);  // heartbeats until the close
    ASSERT_NE(f.kind, static_cast<std::uint32_t>(td::record_kind::goodbye));
    if (f.kind == 0) {
      std::byte b;
      closed = ::recv(fd, &b, 1, MSG_DONTWAIT) == 0;  // EOF, not a pause
    }
  }
  EXPECT_TRUE(closed) << "the link survived a malformed tell record";
  ::close(fd);
  EXPECT_EQ(g.ask(total{}, 10s).get(), 3);
}

TEST_F(tcp_test, a_peer_with_the_wrong_cookie_is_refused_and_never_reaches_an_actor) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  a.publish("greeter", a.spawn<greeter>());
  {
    troupe::node intruder(tcp_config("intruder", "not-the-right-cookie-at-all"));
    auto g = intruder.lookup<greeter_protocol>(a.endpoint() + "/greeter");
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().text().find("authentication"), std::string::npos) << g.error();
  }
  // Raw: a forged proof gets a refusal frame, then the connection closes.
  raw_frame answer;
  const int fd = handshake_as(a.endpoint(), "forged-cookie-value-xyz", "mallory", &answer);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(answer.kind, static_cast<std::uint32_t>(td::tcp_kind::refusal));
  std::vector<std::byte> rest;
  EXPECT_EQ(read_frame(fd, rest, 5s).kind, 0u);  // closed
  ::close(fd);
  // The node serves a rightful peer as before.
  troupe::node b(tcp_config("b"));
  auto g = b.lookup<greeter_protocol>(a.endpoint() + "/greeter");
  ASSERT_TRUE(g) << g.error();
  EXPECT_EQ(g->ask(greet{"b"}, 10s).get(), "hello b");
}

// The reflection attack: the attacker makes a node dial it while it also dials
// the node, and swaps the node's own challenges between the two connections,
// so that the node would compute, as dialer, the very proof its acceptor
// expects. The node notices its own nonce coming back (and its proof is bound
// to its own hello, which names itself); no link is made.
TEST_F(tcp_test, a_reflected_challenge_is_refused) {
  troupe::test_support::watchdog guard;
  troupe::node_config cfg = tcp_config("a");
  cfg.connect_timeout = 1s;  // the half-done handshake we leave behind ends sooner
  troupe::node a(cfg);
  a.publish("greeter", a.spawn<greeter>());
  // The attacker's listener, which a will be made to dial.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t length = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);
  const std::string attacker = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto dialed = std::async(std::launch::async, [&] { return a.connect(attacker); });
  const int as_acceptor = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);  // a dials us
  ASSERT_GE(as_acceptor, 0);
  std::vector<std::byte> buf1, buf2;
  const raw_frame dialer_challenge = read_frame(as_acceptor, buf1);
  ASSERT_EQ(dialer_challenge.kind, static_cast<std::uint32_t>(td::tcp_kind::challenge));
  const int as_dialer = dial_raw(a.endpoint());  // we dial a
  ASSERT_GE(as_dialer, 0);
  const raw_frame acceptor_challenge = read_frame(as_dialer, buf2);
  ASSERT_EQ(acceptor_challenge.kind, static_cast<std::uint32_t>(td::tcp_kind::challenge));
  // Swap: each side gets a's own nonce from the other connection.
  send_all(as_acceptor, frame(acceptor_challenge.kind, acceptor_challenge.body));
  send_all(as_dialer, frame(dialer_challenge.kind, dialer_challenge.body));
  auto result = dialed.get();
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().text().find("reflected"), std::string::npos) << result.error();
  // No proof came out of a to relay; the connection we dialed gets no welcome.
  const raw_frame proof = read_frame(as_acceptor, buf1, 5s);
  EXPECT_NE(proof.kind, static_cast<std::uint32_t>(td::tcp_kind::proof));
  const raw_frame answer = read_frame(as_dialer, buf2, 5s);
  EXPECT_NE(answer.kind, static_cast<std::uint32_t>(td::tcp_kind::welcome));
  for (int fd : {as_acceptor, as_dialer, listener}) ::close(fd);
}

TEST_F(tcp_test, garbage_and_oversized_frames_close_only_that_connection) {
  troupe::test_support::watchdog guard;
  troupe::node_config cfg = tcp_config("a");
  cfg.connect_timeout = 1s;  // the silent client's handshake deadline
  troupe::node a(cfg);
  a.publish("greeter", a.spawn<greeter>());
  troupe::node b(tcp_config("b"));
  auto g = b.lookup<greeter_protocol>(a.endpoint() + "/greeter");
  ASSERT_TRUE(g) << g.error();
  // Not a troupe node at all.
  int fd = dial_raw(a.endpoint());
  send_all(fd, std::vector<std::byte>(64, std::byte{'G'}));
  std::vector<std::byte> buffer;
  (void)read_frame(fd, buffer);  // our challenge, then the refusal or the close
  ::close(fd);
  // A frame claiming 4 GiB during the handshake.
  fd = dial_raw(a.endpoint());
  std::vector<std::byte> huge(8);
  const std::uint32_t length = 0xffffffffu, kind = 0x100;
  std::memcpy(huge.data(), &length, 4);
  std::memcpy(huge.data() + 4, &kind, 4);
  send_all(fd, huge);
  ::close(fd);
  // Silence: the handshake deadline frees the slot.
  fd = dial_raw(a.endpoint());
  buffer.clear();
  EXPECT_EQ(read_frame(fd, buffer).kind, static_cast<std::uint32_t>(td::tcp_kind::challenge));
  // After connect_timeout: a refusal, then the close.
  EXPECT_EQ(read_frame(fd, buffer, 10s).kind, static_cast<std::uint32_t>(td::tcp_kind::refusal));
  EXPECT_EQ(read_frame(fd, buffer, 10s).kind, 0u);
  ::close(fd);
  // After authenticating: a record of an unknown kind closes that link only.
  raw_frame welcome;
  fd = handshake_as(a.endpoint(), cookie, "rogue", &welcome);
  ASSERT_EQ(welcome.kind, static_cast<std::uint32_t>(td::tcp_kind::welcome));
  send_all(fd, frame(999, std::vector<std::byte>(4)));
  buffer.clear();
  for (raw_frame f; (f = read_frame(fd, buffer, 10s)).kind != 0;) {
  }  // heartbeats until the node closes it
  ::close(fd);
  EXPECT_EQ(g->ask(greet{"still"}, 10s).get(), "hello still");
}

TEST_F(tcp_test, a_peer_that_goes_silent_is_declared_down_by_the_failure_detector) {
  troupe::test_support::watchdog guard;
  troupe::node a(tcp_config("a"));
  std::promise<troupe::exit_reason> gone;
  auto w = a.spawn<watcher>(&gone);
  // A peer that authenticates, then never sends another byte (a frozen host).
  raw_frame welcome;
  const int fd = handshake_as(a.endpoint(), cookie, "frozen", &welcome);
  ASSERT_EQ(welcome.kind, static_cast<std::uint32_t>(td::tcp_kind::welcome));
  auto link = a.await_connection("frozen", 10s);
  ASSERT_TRUE(link) << link.error();
  w.tell(watch_it{link->anchor()});
  const auto silent_since = std::chrono::steady_clock::now();
  auto f = gone.get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  const auto took = std::chrono::steady_clock::now() - silent_since;
  const troupe::exit_reason why = f.get();
  EXPECT_EQ(why.what(), troupe::exit_reason::kind::node_down) << why;
  EXPECT_NE(why.text().find("failure detector"), std::string::npos) << why;
  // Documented default: detected within 2 s (generous here: sanitizers, a busy host).
  EXPECT_LT(took, 10s);
  ::close(fd);
}

TEST_F(tcp_test, a_busy_peer_whose_heartbeats_keep_coming_is_not_declared_down) {
  troupe::test_support::watchdog guard;
  std::promise<troupe::exit_reason> gone;  // outlives the nodes: b's shutdown is a down too
  troupe::node a(tcp_config("a"));
  troupe::node_config busy = tcp_config("b");
  busy.system.worker_threads = 1;
  troupe::node b(busy);
  b.publish("greeter", b.spawn<greeter>());
  auto g = a.lookup<greeter_protocol>(b.endpoint() + "/greeter");
  ASSERT_TRUE(g) << g.error();
  auto w = a.spawn<watcher>(&gone);
  w.tell(watch_it{troupe::actor_addr(*g)});
  // b's only worker computes for 3 s (twice the detection time) while a waits.
  auto busy_reply = g->ask(spin_for{3000}, 30s);
  EXPECT_GT(busy_reply.get(), 0);
  EXPECT_EQ(gone.get_future().wait_for(0s), std::future_status::timeout) << "a busy peer was declared down";
  EXPECT_EQ(g->ask(greet{"after"}, 10s).get(), "hello after");
}

// Floods a peer that authenticated and then never reads (nor sends: after
// about 1.3 s the failure detector ends the link). Returns the messages the
// link accepted and the error that stopped the flood.
struct flood_result {
  std::int64_t accepted = 0;
  std::error_code stopped_by;
};
flood_result flood_a_sink(troupe::node& a, bool as_actor) {
  raw_frame welcome;
  const int fd = handshake_as(a.endpoint(), cookie, "sink", &welcome);
  EXPECT_EQ(welcome.kind, static_cast<std::uint32_t>(td::tcp_kind::welcome));
  int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  auto link = troupe::detail::node_access::core(a).await_connection("sink", std::chrono::steady_clock::now() + 10s);
  EXPECT_TRUE(link) << link.error();
  flood_result result;
  if (!link) return result;
  std::thread sender([&] {
    // An actor's handler never blocks; this thread plays one when asked to.
    if (as_actor) troupe::detail::forbid_blocking_sends_on_this_thread();
    // The sink announced no schema: the record goes straight to the link.
    const std::vector<std::byte> payload(1000, std::byte{'x'});
    const std::byte head[24] = {};
    for (int i = 0; i < 100000; ++i) {
      if (auto ec = (*link)->write(td::record_kind::message, head, payload)) {
        result.stopped_by = ec;
        return;
      }
      ++result.accepted;
    }
  });
  sender.join();
  ::close(fd);
  return result;
}

TEST_F(tcp_test, an_actors_sends_to_a_peer_that_never_reads_fail_once_the_queue_is_full) {
  troupe::test_support::watchdog guard;
  troupe::node_config cfg = tcp_config("a");
  cfg.max_queued_bytes = 256 << 10;
  troupe::node a(cfg);
  const flood_result r = flood_a_sink(a, /*as_actor=*/true);
  EXPECT_EQ(r.stopped_by, make_error_code(troupe::errc::peer_overloaded)) << r.stopped_by.message();
  // Kernel buffers (a few MB on loopback at most) plus the 256 KiB queue: bounded.
  EXPECT_LT(r.accepted, 20000);
}

TEST_F(tcp_test, a_plain_threads_sends_wait_for_room_under_backpressure_and_fail_under_the_fail_policy) {
  troupe::test_support::watchdog guard;
  {
    troupe::node_config cfg = tcp_config("a");
    cfg.max_queued_bytes = 256 << 10;
    troupe::node a(cfg);
    // Backpressure (the default): the thread waits, never overloading the
    // link, until the link ends (the silent sink is declared down).
    const flood_result r = flood_a_sink(a, /*as_actor=*/false);
    EXPECT_EQ(r.stopped_by, make_error_code(troupe::errc::connection_lost)) << r.stopped_by.message();
    EXPECT_LT(r.accepted, 20000);
  }
  troupe::node_config cfg = tcp_config("a2");
  cfg.max_queued_bytes = 256 << 10;
  cfg.overflow = troupe::connection_overflow::fail;
  troupe::node a(cfg);
  const flood_result r = flood_a_sink(a, /*as_actor=*/false);
  EXPECT_EQ(r.stopped_by, make_error_code(troupe::errc::peer_overloaded)) << r.stopped_by.message();
  EXPECT_LT(r.accepted, 20000);
}

struct chunk {
  std::int64_t seq = 0;
  std::string data;
};
struct stall {};
struct chunks_seen {
  using reply = std::int64_t;
};
using sink_protocol = troupe::protocol<stall, chunk, chunks_seen>;
struct slow_sink : troupe::actor<sink_protocol> {
  explicit slow_sink(std::shared_future<void> r) : release(std::move(r)) {}
  void on(stall) { release.wait(); }  // holds the link's delivery thread (a stuck handler)
  void on(const chunk& c) {
    if (c.seq != next) out_of_order = true;
    ++next;
  }
  std::int64_t on(chunks_seen) { return out_of_order ? -1 : next; }
  std::shared_future<void> release;
  std::int64_t next = 0;
  bool out_of_order = false;
};

// A receiver whose actors fall behind stops reading: over plain TCP its
// delivery thread reads only when it is done delivering (one buffer ahead at
// most); over TLS the I/O thread reads ahead, up to max_queued_bytes, then
// stops. Either way TCP's flow control then holds the sender back, so the
// sender (with the fail policy) is told peer_overloaded instead of the
// receiver's memory growing without bound. Nothing accepted is lost.
void receiver_falls_behind(troupe::node_config cb, troupe::node_config ca) {
  std::promise<void> release;
  cb.max_queued_bytes = 256 << 10;
  troupe::node b(cb);
  b.publish("sink", b.spawn<slow_sink>(release.get_future().share()));
  // The sender may queue far more than the receiver: only the receiver's
  // bound (and TCP's flow control) can make it overflow before 100,000.
  ca.max_queued_bytes = 8 << 20;
  ca.overflow = troupe::connection_overflow::fail;
  troupe::node a(ca);
  auto sink = a.lookup<sink_protocol>(b.endpoint() + "/sink");
  ASSERT_TRUE(sink) << sink.error();
  ASSERT_FALSE(sink->tell(stall{}));
  const std::string data(1000, 'x');
  std::int64_t accepted = 0;
  std::error_code refused;
  for (std::int64_t i = 0; i < 200000; ++i) {  // 200 MB if nothing held it back
    if ((refused = sink->tell(chunk{i, data}))) break;
    ++accepted;
  }
  EXPECT_EQ(refused, make_error_code(troupe::errc::peer_overloaded)) << refused.message();
  EXPECT_LT(accepted, 100000);
  release.set_value();
  EXPECT_EQ(sink->ask(chunks_seen{}, 60s).get(), accepted);  // all of them, in order
  // b held at most its bound (plus the read that crossed it) between reading
  // and delivering, though a sent megabytes more than that.
  const std::size_t held = troupe::testing::inbound_high_water(b, "a");
  std::printf("accepted %lld messages (%lld KiB); b held at most %zu KiB undelivered\n",
              static_cast<long long>(accepted), static_cast<long long>(accepted), held >> 10);
  EXPECT_GT(accepted * 1000, 4 * static_cast<std::int64_t>(cb.max_queued_bytes));
  EXPECT_GT(held, 0u);
  EXPECT_LE(held, cb.max_queued_bytes + (1u << 20));
}

TEST_F(tcp_test, a_receiver_that_falls_behind_stops_reading_and_loses_nothing) {
  troupe::test_support::watchdog guard;
  receiver_falls_behind(tcp_config("b"), tcp_config("a"));
}

TEST_F(tcp_test, a_receiver_that_falls_behind_stops_reading_and_loses_nothing_over_tls) {
  troupe::test_support::watchdog guard;
  troupe::test_support::test_pki pki(dir_);
  troupe::node_config cb = tcp_config("b"), ca = tcp_config("a");
  cb.tls = pki.tls_for("node1");
  ca.tls = pki.tls_for("node2");
  receiver_falls_behind(cb, ca);
}

TEST_F(tcp_test, with_tls_on_nodes_talk_and_a_certificate_from_another_ca_is_refused) {
  troupe::test_support::watchdog guard;
  troupe::test_support::test_pki pki(dir_);
  troupe::node_config ca = tcp_config("a");
  ca.tls = pki.tls_for("node1");
  troupe::node a(ca);
  a.publish("greeter", a.spawn<greeter>());
  {
    troupe::node_config cb = tcp_config("b");
    cb.tls = pki.tls_for("node2");
    troupe::node b(cb);
    auto g = b.lookup<greeter_protocol>(a.endpoint() + "/greeter");
    ASSERT_TRUE(g) << g.error();
    EXPECT_EQ(g->ask(greet{"over tls"}, 10s).get(), "hello over tls");
    for (std::int64_t i = 0; i < 5000; ++i) g->tell(tally{i});
    EXPECT_EQ(g->ask(total{}, 30s).get(), 5000 * 4999 / 2);
  }
  {
    // Right cookie, but a certificate the cluster's CA did not sign.
    troupe::node_config cr = tcp_config("rogue");
    cr.tls = pki.tls_for("rogue");
    troupe::node rogue(cr);
    auto g = rogue.lookup<greeter_protocol>(a.endpoint() + "/greeter");
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().text().find("TLS"), std::string::npos) << g.error();
  }
  {
    // A plain-TCP node cannot talk to a TLS one.
    troupe::node plain(tcp_config("plain"));
    auto g = plain.lookup<greeter_protocol>(a.endpoint() + "/greeter");
    ASSERT_FALSE(g);
  }
}

}  // namespace
