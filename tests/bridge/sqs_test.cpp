// troupe/bridge/sqs.hpp against a real SQS endpoint: troupe's own
// (troupe/bridge/sqs_endpoint.hpp), started by each test on a free port and a
// scratch data directory, spoken to over HTTP with signed requests. The
// queues are created and read back with the bridge's own raw client
// (sqs_client.hpp), outside the source and sink under test.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include <algorithm>
#include <boost/describe/class.hpp>
#include <boost/json/array.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bridge/source_control.hpp"
#include "sqs_client.hpp"
#include "support/scratch_dir.hpp"
#include "support/watchdog.hpp"
#include "troupe/bridge/sqs.hpp"
#include "troupe/bridge/sqs_endpoint.hpp"
#include "troupe/runtime/supervisor.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace sqs = troupe::bridge::sqs;
namespace json = boost::json;
using troupe::bridge::publish;
using troupe::bridge::published;
using troupe::bridge::received;

struct order {
  std::int64_t id = 0;
  std::string note;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, note))

// Any key: the endpoint does not check signatures, but the requests carry them as for AWS.
sqs::connection_settings link_to(const std::string& url) {
  sqs::connection_settings c;
  c.endpoint = url;
  c.auth = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  c.reconnect_backoff = 20ms;
  c.max_reconnect_backoff = 200ms;
  c.request_timeout = 5s;
  return c;
}

// An endpoint on a scratch directory, and a raw client for setting up and reading back.
class endpoint_rig {
 public:
  explicit endpoint_rig(troupe::system& sys) : sys_(sys) { start(0); }
  void start(std::uint16_t port) {
    sqs::endpoint_config cfg;
    cfg.data_dir = dir_.path().string();
    cfg.port = port;
    auto ep = sqs::endpoint::start(sys_, cfg);
    if (!ep) throw std::runtime_error("endpoint: " + ep.error().to_string());
    endpoint_ = std::move(*ep);
    raw_ = std::make_unique<sqs::detail::sqs_client>(link_to(endpoint_->url()));
  }
  void stop() {
    raw_.reset();
    endpoint_->stop();
    endpoint_.reset();
  }
  void restart() {
    const std::uint16_t port = port_ != 0 ? port_ : 0;
    start(port);
  }
  [[nodiscard]] std::uint16_t port() const { return endpoint_->port(); }
  [[nodiscard]] std::string url() const { return endpoint_->url(); }
  sqs::detail::sqs_client& raw() { return *raw_; }

  std::string create(const std::string& name) {
    auto r = raw_->call("CreateQueue", json::object{{"QueueName", name}});
    if (!r || !r->contains("QueueUrl")) throw std::runtime_error("CreateQueue " + name + " failed");
    return std::string(r->at("QueueUrl").as_string());
  }
  // Visible plus in flight (received, not deleted).
  std::int64_t messages_in(const std::string& queue_url) {
    auto r = raw_->call("GetQueueAttributes",
                        json::object{{"QueueUrl", queue_url},
                                     {"AttributeNames", json::array{"ApproximateNumberOfMessages",
                                                                    "ApproximateNumberOfMessagesNotVisible"}}});
    if (!r) return -1;
    const json::object& a = r->at("Attributes").as_object();
    return std::stoll(std::string(a.at("ApproximateNumberOfMessages").as_string())) +
           std::stoll(std::string(a.at("ApproximateNumberOfMessagesNotVisible").as_string()));
  }
  void send_raw(const std::string& queue_url, const std::string& body) {
    auto r = raw_->call("SendMessage", json::object{{"QueueUrl", queue_url}, {"MessageBody", body}});
    if (!r) throw std::runtime_error("SendMessage: " + r.error().to_string());
  }
  // Up to 10 messages, their bodies and string attributes; deleted once read.
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> take(const std::string& queue_url) {
    std::vector<std::pair<std::string, std::map<std::string, std::string>>> out;
    auto r = raw_->call("ReceiveMessage",
                        json::object{{"QueueUrl", queue_url},
                                     {"MaxNumberOfMessages", 10},
                                     {"WaitTimeSeconds", 1},
                                     {"MessageAttributeNames", json::array{"All"}}},
                        1s);
    if (!r || !r->contains("Messages")) return out;
    for (const json::value& m : r->at("Messages").as_array()) {
      std::map<std::string, std::string> attributes;
      if (const json::value* a = m.as_object().if_contains("MessageAttributes")) {
        for (const auto& [name, v] : a->as_object()) {
          if (const json::value* s = v.as_object().if_contains("StringValue")) attributes[name] = s->as_string();
        }
      }
      out.emplace_back(std::string(m.at("Body").as_string()), std::move(attributes));
      (void)raw_->call("DeleteMessage",
                       json::object{{"QueueUrl", queue_url}, {"ReceiptHandle", m.at("ReceiptHandle")}});
    }
    return out;
  }
  void remember_port() { port_ = port(); }

 private:
  troupe::system& sys_;
  troupe::test_support::scratch_dir dir_{"troupe-sqs"};
  std::unique_ptr<sqs::endpoint> endpoint_;
  std::unique_ptr<sqs::detail::sqs_client> raw_;
  std::uint16_t port_ = 0;
};

// What the test's actor saw, shared with the test thread.
struct tally {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::int64_t, int> asked;    // id -> handler calls
  std::map<std::int64_t, int> handled;  // id -> handler returns (each acknowledges)
  std::uint32_t most_receives = 0;      // the largest delivery_count seen
  std::function<bool(std::int64_t, int)> refuse = [](std::int64_t, int) { return false; };
  // While `gate_closed`, the handler of an id >= gate_from waits for the gate to open.
  bool gate_closed = false;
  std::int64_t gate_from = 0;
  int held = 0;  // handlers waiting at the gate now

  bool wait(const std::function<bool(const tally&)>& done, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return done(*this); });
  }
  [[nodiscard]] std::size_t total_handled() const {
    std::size_t n = 0;
    for (const auto& [id, times] : handled) n += static_cast<std::size_t>(times);
    return n;
  }
};

using shop_protocol = troupe::protocol<received<order>>;
struct shop : troupe::actor<shop_protocol> {
  explicit shop(std::shared_ptr<tally> t) : seen(std::move(t)) {}
  void on(const received<order>& m) {
    std::unique_lock lock(seen->mutex);
    const int attempt = ++seen->asked[m.body.id];
    if (seen->refuse(m.body.id, attempt)) {
      lock.unlock();
      throw std::runtime_error("order " + std::to_string(m.body.id) + " refused");
    }
    if (seen->gate_closed && m.body.id >= seen->gate_from) {
      ++seen->held;
      seen->changed.notify_all();
      seen->changed.wait(lock, [this] { return !seen->gate_closed; });
      --seen->held;
    }
    EXPECT_EQ(m.from.broker, "sqs");
    EXPECT_FALSE(m.from.key.empty());
    seen->most_receives = std::max(seen->most_receives, m.from.delivery_count);
    ++seen->handled[m.body.id];
    seen->changed.notify_all();
  }
  std::shared_ptr<tally> seen;
};

using troupe::test_support::eventually;
using troupe::test_support::stats_reach;

template <class Sink>
std::size_t publish_orders(const Sink& sink, std::int64_t from, std::int64_t to, const std::string& queue_url) {
  std::vector<troupe::response<published>> pending;
  for (std::int64_t id = from; id < to; ++id) {
    pending.push_back(sink.ask(publish<order>{{id, "note " + std::to_string(id)}, {}}, 30s));
  }
  std::size_t ok = 0;
  for (auto& p : pending) {
    auto r = p.try_get();
    EXPECT_TRUE(r) << r.error().to_string();
    if (r) {
      EXPECT_EQ(r->destination, queue_url);
      ++ok;
    }
  }
  return ok;
}

sqs::source_config consumer_for(const endpoint_rig& rig, const std::string& queue_url) {
  sqs::source_config in;
  in.queue_url = queue_url;
  in.connection = link_to(rig.url());
  in.wait_time = 1s;
  in.visibility_timeout = 5s;
  in.flow.handler_timeout = 2s;
  in.flow.retry_backoff = 5ms;
  in.flow.max_backoff = 50ms;
  return in;
}

// A loopback HTTP server that answers each request with the next of
// `answers` (the last one again once they run out): an SQS endpoint gone
// wrong. Counts connections and requests.
class scripted_server {
 public:
  explicit scripted_server(std::vector<std::string> answers) : answers_(std::move(answers)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0 || ::listen(listener_, 8) != 0) {
      throw std::runtime_error("scripted_server: bind/listen failed");
    }
    socklen_t size = sizeof at;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&at), &size);
    port_ = ntohs(at.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  scripted_server(const scripted_server&) = delete;
  scripted_server& operator=(const scripted_server&) = delete;
  ~scripted_server() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
    ::close(listener_);
  }
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int connections() const { return connections_.load(std::memory_order_relaxed); }
  [[nodiscard]] int requests() const { return requests_.load(std::memory_order_relaxed); }

 private:
  // Waits for `fd` to be readable, 100 ms at most, so a stop is noticed.
  bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 100) > 0;
  }
  void serve() {
    while (!stop_.load(std::memory_order_relaxed)) {
      if (!readable(listener_)) continue;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      connections_.fetch_add(1, std::memory_order_relaxed);
      std::string in;
      bool open = true;
      while (open && !stop_.load(std::memory_order_relaxed)) {
        const std::size_t end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
          std::size_t length = 0;
          const std::size_t at = in.find("Content-Length: ");
          if (at != std::string::npos && at < end) length = std::stoul(in.substr(at + 16));
          if (in.size() >= end + 4 + length) {
            in.erase(0, end + 4 + length);
            const int k = requests_.fetch_add(1, std::memory_order_relaxed);
            const std::string& a = answers_[std::min<std::size_t>(static_cast<std::size_t>(k), answers_.size() - 1)];
            (void)::send(fd, a.data(), a.size(), MSG_NOSIGNAL);
            continue;
          }
        }
        if (!readable(fd)) continue;
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) open = false;
        if (n > 0) in.append(buffer, static_cast<std::size_t>(n));
      }
      ::close(fd);
    }
  }

  std::vector<std::string> answers_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0}, requests_{0};
};

std::string answer_200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST(sqs_bridge, produces_n_through_the_sink_and_consumes_n_through_the_source_each_deleted_once) {
  troupe::test_support::watchdog guard;
  constexpr std::int64_t n = 500;
  auto seen = std::make_shared<tally>();
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  {
    auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders, link_to(rig.url())});
    ASSERT_EQ(publish_orders(out, 0, n, orders), static_cast<std::size_t>(n));
    EXPECT_EQ(rig.messages_in(orders), n);
    const sqs::http_stats sent = out.ask(sqs::http_stats_query{}, 5s).get();
    EXPECT_EQ(sent.sent, static_cast<std::uint64_t>(n));
    EXPECT_EQ(sent.failures, 0U);

    auto target = sys.spawn<shop>(seen);
    auto source = sys.spawn<sqs::source<order>>(consumer_for(rig, orders), target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 60s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.acknowledged == n && s.in_flight == 0; }, 10s));
    // The deletes are sent after the acknowledgements: the queue empties.
    ASSERT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 10s));
    const auto stats = source.ask(troupe::bridge::stats_query{}, 5s).get();
    EXPECT_EQ(stats.delivered, static_cast<std::uint64_t>(n));
    EXPECT_EQ(stats.retried, 0U);
    EXPECT_EQ(stats.dead_lettered, 0U);
    EXPECT_EQ(stats.redelivered, 0U);
    const troupe::bridge::link_stats link = source.ask(troupe::bridge::stats_query{}, 5s).get().link;
    EXPECT_EQ(link.settles_sent, static_cast<std::uint64_t>(n));
    EXPECT_EQ(link.stale_settles, 0U);
    EXPECT_EQ(link.connection_losses, 0U) << link.last_error;
    EXPECT_LT(link.settle_calls, static_cast<std::uint64_t>(n)) << "several deletes per DeleteMessageBatch";
    std::cout << n << " messages: " << link.fetch_calls << " ReceiveMessage calls, " << link.settle_calls
              << " delete calls\n";
  }
  std::lock_guard lock(seen->mutex);
  EXPECT_EQ(seen->total_handled(), static_cast<std::size_t>(n)) << "each handled exactly once";
  EXPECT_EQ(seen->most_receives, 1U);
}

TEST(sqs_bridge, a_handler_that_throws_is_retried_then_its_message_is_dead_lettered_with_the_reason) {
  troupe::test_support::watchdog guard;
  constexpr std::int64_t n = 40;
  auto seen = std::make_shared<tally>();
  // Multiples of 10 fail twice, then succeed; 7 always fails.
  seen->refuse = [](std::int64_t id, int attempt) { return id == 7 || (id % 10 == 0 && attempt <= 2); };
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  const std::string dlq = rig.create("orders-dlq");
  {
    troupe::supervisor_spec spec;
    spec.max_restarts = 1000;  // every refusal fails the shop; its supervisor restarts it in place
    spec.within = 60s;
    spec.children.push_back(troupe::child<shop>("shop", seen));
    auto sup = troupe::spawn_supervisor(sys, std::move(spec));
    auto target = sup.child<shop_protocol>("shop");
    auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders, link_to(rig.url())});
    ASSERT_EQ(publish_orders(out, 0, n, orders), static_cast<std::size_t>(n));
    sqs::source_config in = consumer_for(rig, orders);
    in.dead_letter_queue_url = dlq;
    in.flow.max_deliveries = 3;
    auto source = sys.spawn<sqs::source<order>>(in, target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n - 1; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.acknowledged == n - 1 && s.dead_lettered == 1 && s.in_flight == 0; },
        10s));
    const auto stats = source.ask(troupe::bridge::stats_query{}, 5s).get();
    EXPECT_EQ(stats.retried, 4U * 2 + 2) << "4 multiples of 10 retried twice, and 7 twice before giving up";
    ASSERT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 10s))
        << "the dead letter's original deleted too";
  }
  {
    std::lock_guard lock(seen->mutex);
    EXPECT_EQ(seen->asked[7], 3);
    EXPECT_EQ(seen->handled.count(7), 0U);
    EXPECT_EQ(seen->asked[10], 3);
    EXPECT_EQ(seen->handled[10], 1);
  }
  auto dead = rig.take(dlq);
  ASSERT_EQ(dead.size(), 1U);
  EXPECT_EQ(dead[0].first, troupe::bridge::json_codec<order>::encode(order{7, "note 7"}));
  const std::string reason = dead[0].second["troupe.dead_letter.reason"];
  EXPECT_NE(reason.find("failed 3 times"), std::string::npos) << reason;
  EXPECT_NE(reason.find("order 7 refused"), std::string::npos) << reason;
  EXPECT_EQ(dead[0].second["troupe.dead_letter.queue"], orders);
}

TEST(sqs_bridge, a_body_that_does_not_decode_goes_to_the_dead_letter_queue_with_the_decode_error) {
  troupe::test_support::watchdog guard;
  auto seen = std::make_shared<tally>();
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  const std::string dlq = rig.create("orders-dlq");
  rig.send_raw(orders, troupe::bridge::json_codec<order>::encode(order{1, "fine"}));
  rig.send_raw(orders, "{not json");
  rig.send_raw(orders, R"({"id":"two"})");
  rig.send_raw(orders, troupe::bridge::json_codec<order>::encode(order{3, "fine"}));
  {
    auto target = sys.spawn<shop>(seen);
    sqs::source_config in = consumer_for(rig, orders);
    in.dead_letter_queue_url = dlq;
    auto source = sys.spawn<sqs::source<order>>(in, target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == 2; }, 30s));
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.dead_lettered == 2 && s.decode_errors == 2 && s.in_flight == 0; }, 10s));
    ASSERT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 10s));
  }
  std::map<std::string, std::string> reasons;
  for (int i = 0; i < 5 && reasons.size() < 2; ++i) {
    for (auto& [body, attributes] : rig.take(dlq)) reasons[body] = attributes["troupe.dead_letter.reason"];
  }
  ASSERT_EQ(reasons.size(), 2U);
  EXPECT_NE(reasons["{not json"].find("does not decode"), std::string::npos) << reasons["{not json"];
  EXPECT_NE(reasons["{not json"].find("not JSON"), std::string::npos) << reasons["{not json"];
  EXPECT_NE(reasons[R"({"id":"two"})"].find("wrong shape"), std::string::npos) << reasons[R"({"id":"two"})"];
}

TEST(sqs_bridge, the_source_reconnects_after_the_endpoint_restarts_under_load_and_the_count_is_exact) {
  troupe::test_support::watchdog guard;
  constexpr std::int64_t n = 600;
  auto seen = std::make_shared<tally>();
  troupe::system sys;
  endpoint_rig rig(sys);
  rig.remember_port();
  const std::string orders = rig.create("orders");
  {
    auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders, link_to(rig.url())});
    ASSERT_EQ(publish_orders(out, 0, n, orders), static_cast<std::size_t>(n));
  }
  {
    auto target = sys.spawn<shop>(seen);
    sqs::source_config in = consumer_for(rig, orders);
    in.visibility_timeout = 3s;  // what was in flight when the endpoint went comes back soon
    in.flow.max_in_flight = 16;
    auto source = sys.spawn<sqs::source<order>>(in, target);
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() >= n / 3; }, 30s));
    rig.stop();  // mid-stream: receives and deletes fail from here
    ASSERT_TRUE(eventually(
        [&] {
          auto l = source.ask(troupe::bridge::stats_query{}, 5s).try_get();
          return l && l->link.connection_losses > 0;
        },
        20s));
    rig.restart();  // the same port and data directory
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 60s));
    ASSERT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 30s)) << rig.messages_in(orders);
    ASSERT_TRUE(stats_reach(
        source, [](const auto& s) { return s.in_flight == 0; }, 10s));
    const auto stats = source.ask(troupe::bridge::stats_query{}, 5s).get();
    const troupe::bridge::link_stats link = source.ask(troupe::bridge::stats_query{}, 5s).get().link;
    std::lock_guard lock(seen->mutex);
    const std::size_t total = seen->total_handled();
    EXPECT_EQ(stats.acknowledged, total);
    EXPECT_EQ(stats.delivered, total) << "no decode errors, no dead letters: each delivery handled once";
    // Every message handled more than once was delivered again by SQS (its
    // receive count says so). SQS may count more: a ReceiveMessage whose
    // answer was lost with the connection took its messages (they came back
    // after their visibility timeout, handled once, with a receive count of 2).
    EXPECT_GE(stats.redelivered, total - static_cast<std::size_t>(n));
    EXPECT_GE(link.connects, 2U) << "reconnected";
    EXPECT_GT(link.connection_losses, 0U);
    EXPECT_EQ(link.settles_sent + link.stale_settles, stats.acknowledged) << "each acknowledgement sent as a delete";
    std::cout << "restart: " << total - static_cast<std::size_t>(n) << " handled twice, " << stats.redelivered
              << " redelivered, " << link.connection_losses << " failed calls, " << link.connects << " connections, "
              << link.stale_settles << " deletes refused; last error: " << link.last_error << '\n';
  }
}

TEST(sqs_bridge, a_consumer_abandoned_mid_stream_loses_nothing_and_its_successor_counts_the_redeliveries) {
  troupe::test_support::watchdog guard;
  constexpr std::int64_t n = 300;
  auto seen = std::make_shared<tally>();
  seen->gate_closed = true;
  seen->gate_from = n / 2;
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  {
    auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders, link_to(rig.url())});
    ASSERT_EQ(publish_orders(out, 0, n, orders), static_cast<std::size_t>(n));
  }
  sqs::source_config in = consumer_for(rig, orders);
  in.visibility_timeout = 3s;  // what the first consumer held comes back soon
  in.flow.max_in_flight = 8;
  auto target = sys.spawn<shop>(seen);
  troupe::bridge::source_stats first;
  {
    auto source = sys.spawn<sqs::source<order>>(in, target);
    // The first consumer's handler holds a message from the second half: its
    // window is in flight, unacknowledged, when it is abandoned.
    ASSERT_TRUE(seen->wait([](const tally& t) { return t.held == 1; }, 30s));
    first = source.ask(troupe::bridge::stats_query{}, 5s).get();
    EXPECT_GT(first.in_flight, 0U);
    (void)source.tell(troupe::bridge::abandon{});
    ASSERT_TRUE(eventually([&] { return !source.ask(troupe::bridge::stats_query{}, 1s).try_get(); }, 10s))
        << "it stopped";
  }
  {
    std::lock_guard lock(seen->mutex);
    seen->gate_closed = false;  // the held handler returns: its acknowledgement goes nowhere
  }
  seen->changed.notify_all();
  auto successor = sys.spawn<sqs::source<order>>(in, target);
  ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == n; }, 60s));
  ASSERT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 30s)) << rig.messages_in(orders);
  ASSERT_TRUE(stats_reach(
      successor, [](const auto& s) { return s.in_flight == 0; }, 10s));
  const auto second = successor.ask(troupe::bridge::stats_query{}, 5s).get();
  std::lock_guard lock(seen->mutex);
  const std::size_t total = seen->total_handled();
  const std::size_t twice = total - static_cast<std::size_t>(n);
  EXPECT_GE(twice, 1U) << "the held message was handled by both";
  // Each message handled twice came back from SQS with ApproximateReceiveCount 2.
  EXPECT_GE(second.redelivered, twice);
  EXPECT_GE(seen->most_receives, 2U);
  std::cout << "abandoned with " << first.in_flight << " in flight: " << twice << " handled twice, "
            << second.redelivered << " redelivered to the successor\n";
}

TEST(sqs_bridge, answers_that_are_not_json_of_the_wrong_shape_or_too_large_are_errors_and_the_source_goes_on) {
  troupe::test_support::watchdog guard;
  scripted_server garbage(
      {answer_200("not json"), answer_200(R"({"Messages":[{"MessageId":1}]})"), answer_200(R"({"Messages":"x"})"),
       answer_200(R"({"Messages":[{"MessageId":"m","ReceiptHandle":"r","Body":"{}",)"
                  R"("Attributes":{"ApproximateReceiveCount":"many"}}]})"),
       "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n", "garbage\r\n\r\n", answer_200("{}")});
  troupe::system sys;
  auto seen = std::make_shared<tally>();
  auto target = sys.spawn<shop>(seen);
  sqs::source_config in;
  in.queue_url = garbage.url() + "/000000000000/orders";
  in.connection = link_to(garbage.url());
  in.connection.max_response_bytes = 1U << 20U;
  in.wait_time = 0s;
  in.flow.handler_timeout = 2s;
  in.visibility_timeout = 5s;
  auto source = sys.spawn<sqs::source<order>>(in, target);
  // Six bad answers, then good empty ones: the source keeps asking.
  ASSERT_TRUE(eventually(
      [&] {
        auto l = source.ask(troupe::bridge::stats_query{}, 5s).try_get();
        return l && l->link.fetch_calls >= 2;
      },
      30s));
  const troupe::bridge::link_stats link = source.ask(troupe::bridge::stats_query{}, 5s).get().link;
  EXPECT_EQ(link.connection_losses, 6U) << link.last_error;
  EXPECT_GE(garbage.connections(), 7) << "the connection is dropped after each bad answer";
  const auto stats = source.ask(troupe::bridge::stats_query{}, 5s).get();
  EXPECT_EQ(stats.delivered, 0U) << "nothing from a bad answer reaches the actor";
}

TEST(sqs_bridge, without_a_dead_letter_queue_a_dead_letter_is_logged_and_deleted) {
  troupe::test_support::watchdog guard;
  auto seen = std::make_shared<tally>();
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  rig.send_raw(orders, "{not json");
  rig.send_raw(orders, troupe::bridge::json_codec<order>::encode(order{1, "fine"}));
  auto target = sys.spawn<shop>(seen);
  auto source = sys.spawn<sqs::source<order>>(consumer_for(rig, orders), target);
  ASSERT_TRUE(seen->wait([](const tally& t) { return t.handled.size() == 1; }, 30s));
  ASSERT_TRUE(stats_reach(
      source, [](const auto& s) { return s.dead_lettered == 1 && s.acknowledged == 1 && s.in_flight == 0; }, 10s));
  EXPECT_TRUE(eventually([&] { return rig.messages_in(orders) == 0; }, 10s)) << "the dead letter was deleted";
}

TEST(sqs_bridge, a_dead_letter_queue_that_refuses_the_letter_stops_the_source_and_the_message_stays) {
  troupe::test_support::watchdog guard;
  auto seen = std::make_shared<tally>();
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  rig.send_raw(orders, "{not json");
  auto target = sys.spawn<shop>(seen);
  sqs::source_config in = consumer_for(rig, orders);
  in.dead_letter_queue_url = orders + "-dlq-that-does-not-exist";
  auto source = sys.spawn<sqs::source<order>>(in, target);
  // The source stops with the error (for its supervisor) rather than lose the letter.
  ASSERT_TRUE(eventually([&] { return !source.ask(troupe::bridge::stats_query{}, 1s).try_get(); }, 20s));
  EXPECT_EQ(rig.messages_in(orders), 1) << "not deleted: it comes back after its visibility timeout";
}

TEST(sqs_bridge, the_sink_answers_connection_lost_when_no_endpoint_listens) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  const std::string url = rig.url();
  rig.stop();
  auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders, link_to(url)});
  auto r = out.ask(publish<order>{{1, "x"}, {}}, 10s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::connection_lost) << r.error().to_string();
}

TEST(sqs_bridge, the_sink_answers_broker_failed_when_sqs_refuses_the_message) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  endpoint_rig rig(sys);
  const std::string orders = rig.create("orders");
  // No such queue: SQS answers with an error, not a lost connection.
  auto out = sys.spawn<sqs::sink<order>>(sqs::sink_config{orders + "-missing", link_to(rig.url())});
  auto r = out.ask(publish<order>{{1, "x"}, {}}, 10s).try_get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), troupe::errc::broker_failed) << r.error().to_string();
  EXPECT_NE(r.error().text().find("HTTP 400"), std::string::npos) << r.error().to_string();
}

TEST(sqs_bridge, the_source_refuses_a_visibility_timeout_shorter_than_the_handler_timeout) {
  troupe::test_support::watchdog guard;
  troupe::system sys;
  auto seen = std::make_shared<tally>();
  auto target = sys.spawn<shop>(seen);
  sqs::source_config in;
  in.queue_url = "http://127.0.0.1:1/000000000000/orders";
  in.visibility_timeout = 10s;
  in.flow.handler_timeout = 30s;
  auto source = sys.spawn<sqs::source<order>>(in, target);
  auto r = source.ask(troupe::bridge::stats_query{}, 5s).try_get();
  EXPECT_FALSE(r) << "the source stopped at start";
}
