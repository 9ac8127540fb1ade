// bridges: orders arrive from RabbitMQ, are priced by a supervised actor in a
// second process, and each invoice is published to a Kafka topic (librdkafka's
// mock cluster, in this process) and to an SQS queue (troupe's own SQS
// endpoint, read back with `aws sqs receive-message` when awscli is installed).
// An order is acknowledged on RabbitMQ only once both brokers confirmed its
// invoice: at least once, and counted.
//
//   ./bridges --amqp-port 5672                 # a RabbitMQ on 127.0.0.1:5672 (guest/guest)
//   ./bridges --amqp-port 5672 --kill-pricer   # and SIGKILL the pricing process a third of the way in
//
// --kill-pricer: the supervisor starts a new pricing process and the orders
// that were in flight are asked again (the desk's asks to the dead process
// fail; the source retries). docs/bridges.md is the guide;
// tests/bridge/bridges_example_test.cpp runs this program, with --kill-pricer,
// against a private RabbitMQ.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <unistd.h>

#include <boost/describe/class.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <troupe/bridge/amqp.hpp>
#include <troupe/bridge/kafka.hpp>
#include <troupe/bridge/sqs.hpp>
#include <troupe/bridge/sqs_endpoint.hpp>
#include <troupe/troupe.hpp>
#include <vector>

using namespace std::chrono_literals;
namespace bridge = troupe::bridge;
namespace amqp = troupe::bridge::amqp;
namespace kafka = troupe::bridge::kafka;
namespace sqs = troupe::bridge::sqs;

// --- the messages ----------------------------------------------------------------------

struct order {
  std::int64_t id = 0;
  std::string item;
  std::int64_t quantity = 0;
};
BOOST_DESCRIBE_STRUCT(order, (), (id, item, quantity))  // JSON on RabbitMQ

struct invoice {
  std::int64_t order_id = 0;
  std::int64_t cents = 0;
  std::int32_t priced_by = 0;  // the pricing process's pid
};
BOOST_DESCRIBE_STRUCT(invoice, (), (order_id, cents, priced_by))  // JSON on Kafka and SQS

// --- the pricing process ---------------------------------------------------------------

struct price {
  order what;
  using reply = invoice;
};
using pricer_protocol = troupe::protocol<price>;

struct pricer : troupe::actor<pricer_protocol> {
  invoice on(const price& p) {
    static const std::map<std::string, std::int64_t> list = {{"tea", 450}, {"cake", 320}, {"soup", 610}};
    const auto found = list.find(p.what.item);
    if (found == list.end()) throw std::invalid_argument("no price for " + p.what.item);
    return invoice{p.what.id, found->second * p.what.quantity, static_cast<std::int32_t>(::getpid())};
  }
};
TROUPE_REGISTER_ACTOR(pricer);

// --- this process: the desk between the brokers and the pricer ------------------------

// The pricer's current ref: the node's supervisor deploys a new one after each
// restart of the pricing process.
class pricer_slot {
 public:
  void set(troupe::ref<pricer_protocol> r, int pid) {
    {
      std::lock_guard lock(mutex_);
      ref_ = std::move(r);
      pid_ = pid;
      ++deployments_;
    }
    changed_.notify_all();
  }
  troupe::ref<pricer_protocol> get() {
    std::lock_guard lock(mutex_);
    return ref_;
  }
  int pid() {
    std::lock_guard lock(mutex_);
    return pid_;
  }
  bool wait_deployments(int n, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return deployments_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  troupe::ref<pricer_protocol> ref_;
  int pid_ = 0;
  int deployments_ = 0;
};

// What the example checks at the end.
class ledger {
 public:
  void invoiced(const invoice& i) {
    {
      std::lock_guard lock(mutex_);
      ++times_[i.order_id];
      pids_.insert(i.priced_by);
    }
    changed_.notify_all();
  }
  bool wait_distinct(std::size_t n, std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return times_.size() >= n; });
  }
  std::size_t distinct() {
    std::lock_guard lock(mutex_);
    return times_.size();
  }
  std::size_t total() {
    std::lock_guard lock(mutex_);
    std::size_t t = 0;
    for (const auto& [id, n] : times_) t += n;
    return t;
  }
  std::size_t processes() {
    std::lock_guard lock(mutex_);
    return pids_.size();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::int64_t, std::size_t> times_;
  std::set<std::int32_t> pids_;
};

using kafka_out = troupe::ref<kafka::sink<invoice>::protocol_type>;
using sqs_out = troupe::ref<sqs::sink<invoice>::protocol_type>;

// The desk takes each order from RabbitMQ (received<order>), has it priced in
// the other process, publishes the invoice to Kafka and to SQS, and only then
// answers — which acknowledges the order on RabbitMQ. Any failure on the way
// (the pricing process died, a broker refused) fails this one request, not the
// desk: the source asks again after its backoff, so an order is never
// acknowledged uninvoiced. The asks' callbacks (`then`) run as messages of the
// desk, which handles other orders meanwhile.
using desk_protocol = troupe::protocol<bridge::received<order>>;
struct desk : troupe::actor<desk_protocol> {
  desk(pricer_slot* p, kafka_out k, sqs_out q, ledger* l)
      : pricers(p), to_kafka(std::move(k)), to_sqs(std::move(q)), book(l) {}

  void on(const bridge::received<order>& m, troupe::reply_promise<void> reply) {
    auto answer = std::make_shared<troupe::reply_promise<void>>(std::move(reply));
    auto failed = [answer](const troupe::error& e) { answer->fail(e); };
    pricers->get()
        .ask(price{m.body}, 5s)
        .then(
            [this, answer, failed](invoice bill) {
              to_kafka.ask(bridge::publish<invoice>{bill, std::to_string(bill.order_id)}, 10s)
                  .then(
                      [this, answer, failed, bill](const bridge::published& /*where*/) {
                        to_sqs.ask(bridge::publish<invoice>{bill, {}}, 10s)
                            .then(
                                [this, answer, bill](const bridge::published& /*where*/) {
                                  book->invoiced(bill);
                                  answer->deliver();
                                },
                                failed);
                      },
                      failed);
            },
            failed);
  }

  pricer_slot* pricers;
  kafka_out to_kafka;
  sqs_out to_sqs;
  ledger* book;
};

// --- the brokers' side ------------------------------------------------------------------

// librdkafka's in-process mock cluster: a Kafka without a Kafka (none is
// packaged in Debian); a real cluster's bootstrap servers work the same way.
class kafka_mock {
 public:
  kafka_mock() {
    char why[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // This handle only hosts the mock: no warning that it has no brokers itself.
    (void)rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (handle_ == nullptr) throw std::runtime_error(why);
    cluster_ = rd_kafka_mock_cluster_new(handle_, 1);
    if (cluster_ == nullptr) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    if (rd_kafka_mock_topic_create(cluster_, "invoices", 2, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("cannot create the topic");
    }
  }
  kafka_mock(const kafka_mock&) = delete;
  kafka_mock& operator=(const kafka_mock&) = delete;
  ~kafka_mock() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(handle_);
  }
  [[nodiscard]] std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

 private:
  rd_kafka_t* handle_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

// Counts what a Kafka source reads back from the invoices topic.
struct kafka_reader : troupe::actor<troupe::protocol<bridge::received<invoice>>> {
  explicit kafka_reader(ledger* l) : seen(l) {}
  void on(const bridge::received<invoice>& m) { seen->invoiced(m.body); }
  ledger* seen;
};

// `aws sqs receive-message` against the endpoint, if awscli is there.
void read_back_with_awscli(const std::string& endpoint_url, const std::string& queue_url) {
  if (std::system("command -v aws >/dev/null 2>&1") != 0) {
    std::cout << "(awscli is not installed: skipping `aws sqs receive-message`)\n";
    return;
  }
  const std::string command =
      "AWS_ACCESS_KEY_ID=example AWS_SECRET_ACCESS_KEY=example AWS_DEFAULT_REGION=us-east-1 "
      "AWS_EC2_METADATA_DISABLED=true aws --endpoint-url " +
      endpoint_url + " sqs receive-message --queue-url " + queue_url +
      " --max-number-of-messages 3 --query 'Messages[].Body' --output text";
  std::cout << "$ aws sqs receive-message --queue-url " << queue_url << " --max-number-of-messages 3\n" << std::flush;
  if (std::system(command.c_str()) != 0) throw std::runtime_error("aws sqs receive-message failed");
}

int run_example(std::uint16_t amqp_port, const std::string& data_dir, bool kill_pricer) {
  constexpr std::int64_t orders = 60;
  // Before the node: the Kafka source and sink, actors of the node, stop
  // before the cluster they talk to goes away.
  kafka_mock kafka_cluster;
  troupe::node_config cfg;
  cfg.name = "bridges-" + std::to_string(::getpid());
  troupe::node n(cfg);

  // The pricing process: a supervised child node; each (re)start deploys a pricer.
  pricer_slot pricers;
  troupe::supervisor_spec spec;
  spec.max_restarts = 3;
  spec.within = 60s;
  troupe::node_spawn_options pricing;
  pricing.name = cfg.name + "-pricing";
  spec.children.push_back(
      troupe::node_child(n, "pricing", pricing, [&pricers](troupe::node& self, const troupe::node_handle& h) {
        pricers.set(self.spawn<pricer>(troupe::on(h)).value(), h.pid());
        std::cout << "pricing process " << h.pid() << " is up\n" << std::flush;
      }));
  auto sup = troupe::spawn_supervisor(n, std::move(spec));
  if (!pricers.wait_deployments(1, 30s)) throw std::runtime_error("the pricing process did not start");

  // Where invoices go: Kafka (mock cluster) and SQS (troupe's endpoint, a
  // durable queue on disk).
  auto endpoint = sqs::endpoint::start(n, sqs::endpoint_config{.data_dir = data_dir}).value();
  const std::string queue_url = endpoint->create_queue("invoices").value();
  kafka::sink_config to_kafka;
  to_kafka.brokers = kafka_cluster.bootstraps();
  to_kafka.topic = "invoices";
  auto invoices_to_kafka = n.spawn<kafka::sink<invoice>>(to_kafka);
  sqs::sink_config to_sqs;
  to_sqs.queue_url = queue_url;  // the endpoint is the URL's scheme://host:port
  auto invoices_to_sqs = n.spawn<sqs::sink<invoice>>(to_sqs);

  // Orders into RabbitMQ: this program plays the shop's front end too.
  amqp::sink_config front;
  front.connection.port = amqp_port;
  front.exchange = "shop";
  front.routing_key = "orders";
  auto front_end = n.spawn<amqp::sink<order>>(front);
  amqp::source_config in;
  in.connection.port = amqp_port;
  in.queue = "shop.orders." + std::to_string(::getpid());
  in.exchange = "shop";
  in.binding_keys = {"orders"};
  in.flow.max_in_flight = 8;
  in.flow.retry_backoff = 200ms;  // the pricing process comes back within a second or two
  in.flow.max_deliveries = 10;
  // Told on the link's thread once the queue is declared, bound and consumed:
  // only then do orders sent to the exchange have somewhere to go.
  auto consuming = std::make_shared<std::promise<void>>();
  auto first_connect = std::make_shared<std::once_flag>();
  in.connection.on_event = [consuming, first_connect](const amqp::connection_event& e) {
    if (e.what == amqp::connection_event::kind::connected) {
      std::call_once(*first_connect, [&] { consuming->set_value(); });
    }
  };

  ledger invoiced;
  auto front_desk = n.spawn<desk>(&pricers, invoices_to_kafka, invoices_to_sqs, &invoiced);
  auto source = n.spawn<amqp::source<order>>(in, front_desk);
  if (consuming->get_future().wait_for(30s) != std::future_status::ready) {
    throw std::runtime_error("cannot consume from RabbitMQ on port " + std::to_string(amqp_port));
  }
  const std::vector<std::string> items = {"tea", "cake", "soup"};
  std::vector<troupe::response<bridge::published>> confirms;
  for (std::int64_t id = 1; id <= orders; ++id) {
    confirms.push_back(front_end.ask(
        bridge::publish<order>{order{id, items[static_cast<std::size_t>(id) % items.size()], id % 4 + 1}, {}}, 10s));
  }
  for (auto& c : confirms) (void)c.get();  // RabbitMQ confirmed every order
  std::cout << "published " << orders << " orders to RabbitMQ\n" << std::flush;

  if (kill_pricer) {
    // A third of the way in, the pricing process dies.
    if (!invoiced.wait_distinct(orders / 3, 60s)) throw std::runtime_error("orders are not being invoiced");
    const int victim = pricers.pid();
    std::cout << "killing the pricing process " << victim << " with SIGKILL\n" << std::flush;
    ::kill(victim, SIGKILL);
    if (!pricers.wait_deployments(2, 30s)) throw std::runtime_error("the pricing process was not restarted");
  }
  // Progress every few seconds until every order is invoiced (or two minutes pass).
  for (int step = 0; !invoiced.wait_distinct(orders, 5s); ++step) {
    const auto now = source.ask(bridge::stats_query{}, 5s).get();
    std::cerr << "  " << invoiced.distinct() << " of " << orders << " invoiced; the source: " << now.delivered
              << " delivered, " << now.in_flight << " in flight, " << now.retried << " retried, " << now.dead_lettered
              << " dead-lettered, " << now.acknowledged << " acknowledged\n";
    if (step == 24) throw std::runtime_error("not every order was invoiced");
  }
  const auto stats = source.ask(bridge::stats_query{}, 5s).get();
  std::cout << "invoiced all " << orders << " orders (" << invoiced.total()
            << " invoices: " << invoiced.total() - orders << " sent twice), pricing processes: " << invoiced.processes()
            << "; the source retried " << stats.retried << " asks, acknowledged " << stats.acknowledged << "\n"
            << std::flush;

  // Read the invoices back: Kafka through a troupe source, SQS with the AWS CLI.
  ledger from_kafka;
  kafka::source_config back;
  back.brokers = kafka_cluster.bootstraps();
  back.group = "auditors";
  back.topics = {"invoices"};
  auto audit = n.spawn<kafka::source<invoice>>(back, n.spawn<kafka_reader>(&from_kafka));
  if (!from_kafka.wait_distinct(orders, 60s)) throw std::runtime_error("Kafka does not have every invoice");
  std::cout << "Kafka topic 'invoices' holds " << from_kafka.total() << " invoices for " << from_kafka.distinct()
            << " orders\n";
  read_back_with_awscli(endpoint->url(), queue_url);
  (void)sup.self().tell(troupe::shutdown_supervisor{});
  n.shutdown();  // every actor stops (the sources drain) while the brokers are still there
  return 0;
}

int main(int argc, char** argv) {
  return troupe::run(argc, argv, [&] {
    std::uint16_t port = 0;
    bool kill_pricer = false;
    std::string data_dir;
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      if (flag == "--kill-pricer") kill_pricer = true;
      if (i + 1 < argc && flag == "--amqp-port") port = static_cast<std::uint16_t>(std::stoul(argv[++i]));
      if (i + 1 < argc && flag == "--data-dir") data_dir = argv[++i];
    }
    if (port == 0) {
      std::cerr << "usage: bridges --amqp-port PORT [--data-dir DIR] [--kill-pricer]   (a RabbitMQ on 127.0.0.1:PORT, "
                   "guest/guest)\n";
      return 2;
    }
    const bool own_dir = data_dir.empty();
    if (own_dir) data_dir = std::filesystem::temp_directory_path() / ("troupe-bridges-" + std::to_string(::getpid()));
    std::filesystem::create_directories(data_dir);
    try {
      const int status = run_example(port, data_dir, kill_pricer);
      if (own_dir) std::filesystem::remove_all(data_dir);
      return status;
    } catch (const std::exception& e) {
      std::cerr << "bridges: " << e.what() << '\n';
      return 1;
    }
  });
}
