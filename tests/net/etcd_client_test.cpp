// The etcd client (net/cluster/etcd/etcd_client.hpp): against a real etcd that the
// test starts (tests/support/etcd_server.hpp), and against hostile "etcd"s
// played by the test on loopback sockets (garbage, oversized and truncated
// answers, broken watch streams, silence) and a refused port.
//
// Every wait has a deadline; the deadlines are safety nets for a loaded
// machine, never timing assertions.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <future>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd/etcd_client.hpp"
#include "support/child_process.hpp"
#include "support/etcd_server.hpp"
#include "support/unique_fd.hpp"
#include "support/watchdog.hpp"

using namespace std::chrono_literals;
namespace td = troupe::detail;
namespace ts = troupe::test_support;
using troupe::errc;

namespace {

// (after reading the request), or never answers (silent), then closes.
class fake_etcd {
 public:
  explicit fake_etcd(std::string answer, bool silent = false) : answer_(std::move(answer)), silent_(silent) {
    listener_ = ts::unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!listener_ || ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_.get(), 8) != 0) {
      ts::throw_errno("fake etcd: listen");
    }
    socklen_t length = sizeof address;
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    int wake[2];
    if (::pipe2(wake, O_CLOEXEC) != 0) ts::throw_errno("pipe2");
    wake_read_ = ts::unique_fd(wake[0]);
    wake_write_ = ts::unique_fd(wake[1]);
    thread_ = std::thread([this] { serve(); });
  }
  ~fake_etcd() {
    wake_write_.reset();  // the server thread's poll sees the hang-up
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void serve() {
    std::vector<ts::unique_fd> held;  // silent mode: connections kept open, unanswered
    for (;;) {
      pollfd ready[2] = {{listener_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
      if (::poll(ready, 2, -1) < 0) return;
      if (ready[1].revents != 0) return;
      ts::unique_fd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!connection) continue;
      if (silent_) {
        held.push_back(std::move(connection));
        continue;
      }
      read_request(connection.get());
      for (std::size_t sent = 0; sent < answer_.size();) {
        const ssize_t n = ::send(connection.get(), answer_.data() + sent, answer_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the client gave up on us: expected for oversized answers
        sent += static_cast<std::size_t>(n);
      }
    }
  }
  // Reads the request's head and body (Content-Length), within 5 s.
  void read_request(int fd) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    std::string request;
    for (;;) {
      const auto head_end = request.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        const auto length_at = request.find("Content-Length: ");
        const std::size_t length = length_at == std::string::npos ? 0 : std::stoul(request.substr(length_at + 16, 12));
        if (request.size() >= head_end + 4 + length) return;
      }
      pollfd readable{fd, POLLIN, 0};
      if (::poll(&readable, 1, ts::poll_timeout_until(deadline)) <= 0) return;
      char buffer[4096];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) return;
      request.append(buffer, static_cast<std::size_t>(n));
    }
  }

  std::string answer_;
  bool silent_;
  ts::unique_fd listener_;
  ts::unique_fd wake_read_, wake_write_;
  std::uint16_t port_ = 0;
  std::thread thread_;  // last: starts once the fields it reads exist
};

std::string http_answer(const std::string& status, const std::string& body) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// A streamed answer, as etcd's watch sends it: one chunk per piece.
std::string chunked_answer(const std::vector<std::string>& pieces) {
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  char size[32];
  for (const std::string& piece : pieces) {
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    out += size + piece + "\r\n";
  }
  return out + "0\r\n\r\n";
}

const std::string created_line = R"({"result":{"header":{"revision":"5"},"created":true}})"
                                 "\n";

td::etcd_client client_for(const std::string& url, std::chrono::milliseconds timeout = 3s) {
  return td::etcd_client::create(url, timeout).value();
}

class etcd_client : public ::testing::Test {
 protected:
  void SetUp() override {
    TROUPE_REQUIRE_ETCD();
    url_ = ts::etcd_server::shared().url();
    prefix_ = "/" + ts::unique_etcd_name() + "/";
  }
  td::etcd_client client() const { return client_for(url_); }

  ts::watchdog watchdog_;
  std::string url_;
  std::string prefix_;
};

}  // namespace

// ---- the client against a real etcd --------------------------------------

TEST_F(etcd_client, puts_gets_and_erases_keys_with_their_revisions) {
  const td::etcd_client c = client();
  const std::string key = prefix_ + "k";
  const std::int64_t first = c.put(key, "v1").value();
  ASSERT_GT(first, 0);
  td::etcd_range got = c.get(key).value();
  ASSERT_EQ(got.kvs.size(), 1u);
  EXPECT_EQ(got.kvs[0].key, key);
  EXPECT_EQ(got.kvs[0].value, "v1");
  EXPECT_EQ(got.kvs[0].create_revision, first);
  EXPECT_GE(got.revision, first);

  // Bytes, not text: NUL and 0xff survive base64 both ways.
  const std::string binary("\0\xff\x01 b\xfe", 6);
  const std::int64_t second = c.put(key + binary, binary).value();
  got = c.get(key + binary).value();
  ASSERT_EQ(got.kvs.size(), 1u);
  EXPECT_EQ(got.kvs[0].value, binary);
  EXPECT_EQ(got.kvs[0].mod_revision, second);

  EXPECT_EQ(c.erase(key).value(), 1);
  EXPECT_TRUE(c.get(key).value().kvs.empty());
  EXPECT_EQ(c.erase(key).value(), 0);
}

TEST_F(etcd_client, lists_a_prefix_and_nothing_beyond_it) {
  const td::etcd_client c = client();
  const std::string p = prefix_ + "p/";
  ASSERT_TRUE(c.put(p + "b", "2"));
  ASSERT_TRUE(c.put(p + "a", "1"));
  ASSERT_TRUE(c.put(prefix_ + "p0", "next to the prefix"));
  ASSERT_TRUE(c.put(prefix_ + "p", "the prefix without its slash"));
  const td::etcd_range listed = c.get_prefix(p).value();
  ASSERT_EQ(listed.kvs.size(), 2u);
  EXPECT_EQ(listed.kvs[0].key, p + "a");
  EXPECT_EQ(listed.kvs[1].key, p + "b");
  EXPECT_EQ(td::etcd_prefix_end("a/"), "a0");
  EXPECT_EQ(td::etcd_prefix_end("a\xff"), "b");
  EXPECT_EQ(td::etcd_prefix_end("\xff"), std::string(1, '\0'));
}

TEST_F(etcd_client, transaction_creates_a_key_only_if_it_is_absent) {
  const td::etcd_client c = client();
  const std::string key = prefix_ + "name";
  const auto create = [&](const std::string& value) {
    return c.txn({{td::etcd_compare::target::create_revision, key, 0, {}}},
                 {{td::etcd_operation::kind::put, key, value, 0}}, {{td::etcd_operation::kind::get, key, {}, 0}});
  };
  const td::etcd_txn_result first = create("mine").value();
  EXPECT_TRUE(first.succeeded);
  ASSERT_EQ(first.responses.size(), 1u);
  EXPECT_TRUE(first.responses[0].kvs.empty());

  const td::etcd_txn_result second = create("theirs").value();
  EXPECT_FALSE(second.succeeded);
  ASSERT_EQ(second.responses.size(), 1u);
  ASSERT_EQ(second.responses[0].kvs.size(), 1u);
  EXPECT_EQ(second.responses[0].kvs[0].value, "mine");

  // Delete only if the value is still ours.
  const auto erase_if = [&](const std::string& value) {
    return c.txn({{td::etcd_compare::target::value, key, 0, value}}, {{td::etcd_operation::kind::erase, key, {}, 0}},
                 {});
  };
  EXPECT_FALSE(erase_if("theirs").value().succeeded);
  EXPECT_TRUE(erase_if("mine").value().succeeded);
  EXPECT_TRUE(c.get(key).value().kvs.empty());
}

TEST_F(etcd_client, a_lease_holds_its_keys_until_it_is_revoked) {
  const td::etcd_client c = client();
  // etcd raises a TTL below its minimum: the granted one is what counts.
  const td::etcd_lease lease = c.grant_lease(1s).value();
  EXPECT_NE(lease.id, 0);
  EXPECT_GE(lease.ttl, 1s);
  const std::string key = prefix_ + "leased";
  ASSERT_TRUE(c.put(key, "x", lease.id));
  EXPECT_EQ(c.get(key).value().kvs.at(0).lease, lease.id);
  EXPECT_GT(c.keep_alive(lease.id).value(), 0s);

  ASSERT_TRUE(c.revoke_lease(lease.id));
  EXPECT_TRUE(c.get(key).value().kvs.empty());
  EXPECT_EQ(c.keep_alive(lease.id).value(), 0s);
  EXPECT_TRUE(c.revoke_lease(lease.id)) << "revoking a lease that is gone is not an error";

  // A put with a lease etcd does not have is etcd's refusal, quoted.
  const auto refused = c.put(key, "x", lease.id);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), errc::request_dropped);
  EXPECT_NE(refused.error().text().find("lease not found"), std::string::npos) << refused.error().text();
}

TEST_F(etcd_client, a_watch_reports_puts_and_deletes_in_order) {
  const td::etcd_client c = client();
  const std::string p = prefix_ + "w/";
  const std::int64_t start = c.put(p + "a", "1").value();
  auto watch = td::etcd_watch::open(c, p, td::etcd_prefix_end(p), start + 1, {}).value();
  ASSERT_TRUE(c.put(p + "b", "2"));
  ASSERT_EQ(c.erase(p + "a").value(), 1);
  ASSERT_TRUE(c.put(p + "b", "3"));
  ASSERT_TRUE(c.put(prefix_ + "elsewhere", "not watched"));

  std::vector<td::etcd_event> events;
  while (events.size() < 3) {
    auto batch = watch->next();
    ASSERT_TRUE(batch) << batch.error();
    events.insert(events.end(), batch->events.begin(), batch->events.end());
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_FALSE(events[0].deleted);
  EXPECT_EQ(events[0].kv.key, p + "b");
  EXPECT_EQ(events[0].kv.value, "2");
  EXPECT_TRUE(events[1].deleted);
  EXPECT_EQ(events[1].kv.key, p + "a");
  EXPECT_FALSE(events[2].deleted);
  EXPECT_EQ(events[2].kv.value, "3");
}

TEST_F(etcd_client, a_watch_from_a_compacted_revision_ends_with_a_clear_error) {
  const td::etcd_client c = client();
  const std::string p = prefix_ + "c/";
  const std::int64_t old = c.put(p + "x", "1").value();
  const std::int64_t now = c.put(p + "x", "2").value();
  ASSERT_TRUE(c.compact(now));
  // etcd confirms the watch, then cancels it; either step may carry the news.
  auto watch = td::etcd_watch::open(c, p, td::etcd_prefix_end(p), old, {});
  troupe::error ended;
  if (!watch) {
    ended = watch.error();
  } else {
    auto batch = (*watch)->next();
    ASSERT_FALSE(batch);
    ended = batch.error();
  }
  EXPECT_NE(ended.text().find("compacted"), std::string::npos) << ended;
}

TEST_F(etcd_client, a_blocked_watch_ends_promptly_when_stopped) {
  const td::etcd_client c = client();
  std::stop_source stop;
  auto watch = td::etcd_watch::open(c, prefix_, td::etcd_prefix_end(prefix_), 0, stop.get_token()).value();
  auto ended = std::async(std::launch::async, [&] { return watch->next(); });
  // Nothing changes under the prefix: next() waits until stopped.
  EXPECT_EQ(ended.wait_for(0s), std::future_status::timeout);
  stop.request_stop();
  ASSERT_EQ(ended.wait_for(10s), std::future_status::ready) << "next() did not return after stop";
  const auto result = ended.get();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), errc::system_stopped);

  // A call whose stop was requested before it began ends at once.
  EXPECT_EQ(c.get(prefix_, stop.get_token()).error().code(), errc::system_stopped);
}

// ---- the client against no etcd and hostile ones ----------------------------

TEST(etcd_client_failures, a_closed_port_is_reported_unreachable_not_as_a_timeout) {
  ts::watchdog guard;
  const ts::refused_url port;
  // A long timeout: the answer must come from the refusal, not the deadline.
  const auto got = client_for(port.url(), 30s).get("k");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::connection_lost) << got.error();
  EXPECT_NE(got.error().text().find("unreachable"), std::string::npos) << got.error();
  EXPECT_NE(got.error().text().find(port.url()), std::string::npos) << got.error();
}

TEST(etcd_client_failures, a_server_that_never_answers_is_a_timeout) {
  ts::watchdog guard;
  const fake_etcd silent("", /*silent=*/true);
  const auto got = client_for(silent.url(), 300ms).get("k");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), errc::timeout) << got.error();
  EXPECT_NE(got.error().text().find("300 ms"), std::string::npos) << got.error();
}

TEST(etcd_client_failures, hostile_answers_are_errors_not_crashes) {
  ts::watchdog guard;
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  std::string oversized_chunk(std::size_t{17} << 20, ' ');
  const struct {
    const char* what;
    std::string answer;
    errc expected;
  } cases[] = {
      {"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", errc::malformed_message},
      {"not JSON", http_answer("200 OK", "{nope"), errc::malformed_message},
      {"not an object", http_answer("200 OK", "[1,2]"), errc::malformed_message},
      {"nested beyond reason", http_answer("200 OK", deep), errc::malformed_message},
      {"a huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n{}", errc::malformed_message},
      {"a chunked body past the cap", chunked_answer({oversized_chunk}), errc::malformed_message},
      {"a header past the cap", "HTTP/1.1 200 OK\r\nX-Junk: " + std::string(100000, 'j') + "\r\n\r\n",
       errc::malformed_message},
      {"bad base64", http_answer("200 OK", R"({"kvs":[{"key":"!!!!"}]})"), errc::malformed_message},
      {"unpadded base64", http_answer("200 OK", R"({"kvs":[{"key":"YQ"}]})"), errc::malformed_message},
      {"kvs not an array", http_answer("200 OK", R"({"kvs":{"key":"YQ=="}})"), errc::malformed_message},
      {"a value that is a number", http_answer("200 OK", R"({"kvs":[{"key":"YQ==","value":5}]})"),
       errc::malformed_message},
      {"a revision that is not an integer", http_answer("200 OK", R"({"kvs":[{"key":"YQ==","mod_revision":"12x"}]})"),
       errc::malformed_message},
      {"a revision past int64", http_answer("200 OK", R"({"header":{"revision":"99999999999999999999"}})"),
       errc::malformed_message},
      {"a key-value without a key", http_answer("200 OK", R"({"kvs":[{"value":"YQ=="}]})"), errc::malformed_message},
      {"a truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"kvs\":", errc::connection_lost},
      {"a plain 404", "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nNot Found", errc::protocol_mismatch},
      {"etcd's refusal",
       http_answer("500 Internal Server Error", R"({"error":"x","message":"etcdserver: boom","code":2})"),
       errc::request_dropped},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const fake_etcd server(c.answer);
    const auto got = client_for(server.url()).get("a");
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().code(), c.expected) << got.error();
    EXPECT_FALSE(got.error().text().empty());
  }
  // The refusal's own words reach the caller.
  const fake_etcd refusing(http_answer("500 Internal Server Error", R"({"message":"etcdserver: boom","code":2})"));
  EXPECT_NE(client_for(refusing.url()).get("a").error().text().find("etcdserver: boom"), std::string::npos);
}

TEST(etcd_client_failures, hostile_watch_streams_are_errors_not_crashes) {
  ts::watchdog guard;
  const auto open = [](const fake_etcd& server) {
    return td::etcd_watch::open(client_for(server.url()), "/p/", "/p0", 1, {});
  };
  {
    const fake_etcd server(chunked_answer({"garbage\n"}));
    const auto watch = open(server);
    ASSERT_FALSE(watch);
    EXPECT_EQ(watch.error().code(), errc::malformed_message) << watch.error();
  }
  {
    const fake_etcd server(chunked_answer({R"({"result":{"events":[]}})"
                                           "\n"}));
    const auto watch = open(server);
    ASSERT_FALSE(watch) << "a stream that does not start with the watch's confirmation";
    EXPECT_EQ(watch.error().code(), errc::malformed_message) << watch.error();
  }
  const struct {
    const char* what;
    std::vector<std::string> pieces;
    errc expected;
  } cases[] = {
      {"bad base64 in an event",
       {created_line, R"({"result":{"events":[{"kv":{"key":"@@@@"}}]}})"
                      "\n"},
       errc::malformed_message},
      {"an unknown event type",
       {created_line, R"({"result":{"events":[{"type":"EXPLODE","kv":{"key":"YQ=="}}]}})"
                      "\n"},
       errc::malformed_message},
      {"events not an array",
       {created_line, R"({"result":{"events":7}})"
                      "\n"},
       errc::malformed_message},
      {"a message past the cap", {created_line, std::string(std::size_t{17} << 20, 'x')}, errc::malformed_message},
      {"a stream error",
       {created_line, R"({"error":{"grpc_code":14,"message":"etcdserver: no leader"}})"
                      "\n"},
       errc::request_dropped},
      {"a cancelled watch",
       {created_line, R"({"result":{"canceled":true,"cancel_reason":"because"}})"
                      "\n"},
       errc::request_dropped},
      {"the end of the stream", {created_line}, errc::connection_lost},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const fake_etcd server(chunked_answer(c.pieces));
    auto watch = open(server);
    ASSERT_TRUE(watch) << watch.error();
    const auto batch = (*watch)->next();
    ASSERT_FALSE(batch);
    EXPECT_EQ(batch.error().code(), c.expected) << batch.error();
  }
  // A message split across chunks, with its event, is read whole.
  const std::string event = R"({"result":{"events":[{"type":"DELETE","kv":{"key":"L3AveA=="}}]}})"
                            "\n";
  const fake_etcd split(
      chunked_answer({created_line.substr(0, 7), created_line.substr(7) + event.substr(0, 20), event.substr(20)}));
  auto watch = open(split);
  ASSERT_TRUE(watch) << watch.error();
  const auto batch = (*watch)->next();
  ASSERT_TRUE(batch) << batch.error();
  ASSERT_EQ(batch->events.size(), 1u);
  EXPECT_TRUE(batch->events[0].deleted);
  EXPECT_EQ(batch->events[0].kv.key, "/p/x");
}

TEST(etcd_client_failures, bad_urls_are_refused_before_any_connection) {
  for (const char* url : {"https://127.0.0.1:2379", "ftp://h:1", "http://", "http://h:0", "http://h:99999",
                          "http://h:12/v3", "http://h h:1", "http://[::1", "127.0.0.1:2379"}) {
    SCOPED_TRACE(url);
    const auto client = td::etcd_client::create(url, 1s);
    ASSERT_FALSE(client);
    EXPECT_NE(client.error().text().find("bad etcd URL"), std::string::npos) << client.error();
  }
  for (const char* url : {"http://127.0.0.1:2379/", "http://[::1]:2379", "http://etcd-0.local"}) {
    EXPECT_TRUE(td::etcd_client::create(url, 1s)) << url;
  }
}

TEST(etcd_client_failures, base64_is_strict) {
  std::string bytes;
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(td::base64_decode(td::base64_encode(bytes)), bytes);
    bytes += static_cast<char>(0xf0 + i);
  }
  EXPECT_EQ(td::base64_decode("YQ=="), "a");
  for (const char* bad : {"YQ", "Y===", "YQ=a", "=YQ=", "YQ==YQ==", "!!!!", "YQ\n="}) {
    EXPECT_FALSE(td::base64_decode(bad)) << bad;
  }
}
