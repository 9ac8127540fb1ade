// gateway_http_bench.cpp — troupe_gateway_bench's HTTP workloads (WORKLOADS.md):
// JSON-RPC 2.0 (gateway_jsonrpc_http, gateway_jsonrpc_http_p99) and XML-RPC
// (gateway_xmlrpc_http, gateway_xmlrpc_http_p99) `bank.balance` calls over
// HTTP/1.1 keep-alive POSTs, served by troupe's gateway (a bank actor behind
// troupe::gateway::methods and troupe::gateway::server) or, with --baseline,
// by a plain Boost.Beast server written here doing the same work without
// actors (a std::map under a mutex, answered on the thread that read the request).
//
// What differs between the two sides, and what does not:
// - Threads: the baseline runs as many Asio threads as the gateway's server
//   (server_settings{}.threads); troupe adds its scheduler's workers (--threads).
// - JSON-RPC: the baseline parses the body with Boost.JSON (what the gateway
//   uses), checks it is a 2.0 request, and writes the same response text.
// - XML-RPC: the baseline calls the gateway's own codec functions
//   (xmlrpc::decode_call: libxml2's shape check, then xmlrpc-c's parser;
//   xmlrpc::encode_response), so the documents cost the same on both sides and
//   the difference is the gateway's server, its method table and the actor hop.
// - The load generator is the same: `concurrency` keep-alive connections from
//   this process, a Beast async client on one io_context and thread of its
//   own; each connection has one call in flight, and its completion checks the
//   reply body byte for byte and sends the next. Accounts are opened with
//   bank.deposit calls through the same protocol, then an untimed warm-up of a
//   tenth of `calls` calls, then each repetition times `calls` calls and takes
//   the 99th percentile of their latencies (write to reply read).
//
// Failures end the run (bench::fail: a line on stderr, abort); every wait has
// a deadline. No sleeps.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include <troupe/gateway/methods.hpp>
#include <troupe/gateway/server.hpp>
#include <troupe/gateway/xmlrpc.hpp>
#include <troupe/runtime/system.hpp>

#include "gateway_common.hpp"

namespace troupe::bench::rpc {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace gw = troupe::gateway;
using tcp = asio::ip::tcp;

// How long one read or write of a connection (client or baseline server) may
// take; past it the connection fails, and with it the run.
constexpr auto io_deadline = std::chrono::seconds(30);

// --- the baseline ---------------------------------------------------------------

// The bank actor's work without the actor: the same map, under a mutex.
class plain_bank {
 public:
  void deposit(const std::string& account, std::int64_t cents) {
    const std::lock_guard lock(mutex_);
    cents_[account] += cents;
  }
  std::int64_t balance(const std::string& account) {
    const std::lock_guard lock(mutex_);
    return cents_[account];
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::int64_t> cents_;
};

std::string jsonrpc_error(const json::value& id, int code, std::string_view message) {
  json::object reply;
  reply["jsonrpc"] = "2.0";
  reply["id"] = id;
  reply["error"] = json::object{{"code", code}, {"message", message}};
  return json::serialize(reply);
}

// A JSON-RPC 2.0 request to its response, the way a hand-written server does
// it: Boost.JSON's parser, the members it needs, the same response text as the
// gateway's (jsonrpc, id, result, in that order).
std::string answer_jsonrpc(plain_bank& bank, const std::string& body) {
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  const json::object* request = parsed.if_object();
  if (ec || request == nullptr) return jsonrpc_error(nullptr, -32700, "Parse error");
  const json::value* id = request->if_contains("id");
  const json::value reply_id = id != nullptr ? *id : json::value(nullptr);
  const json::value* version = request->if_contains("jsonrpc");
  const json::value* method = request->if_contains("method");
  const json::value* params = request->if_contains("params");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0" || method == nullptr ||
      !method->is_string()) {
    return jsonrpc_error(reply_id, -32600, "Invalid Request");
  }
  const json::array* args = params != nullptr ? params->if_array() : nullptr;
  json::value result;
  if (method->get_string() == "bank.balance") {
    if (args == nullptr || args->size() != 1 || !(*args)[0].is_string())
      return jsonrpc_error(reply_id, -32602, "Invalid params");
    result = bank.balance(std::string((*args)[0].get_string()));
  } else if (method->get_string() == "bank.deposit") {
    if (args == nullptr || args->size() != 2 || !(*args)[0].is_string() || !(*args)[1].is_int64())
      return jsonrpc_error(reply_id, -32602, "Invalid params");
    bank.deposit(std::string((*args)[0].get_string()), (*args)[1].get_int64());
  } else {
    return jsonrpc_error(reply_id, -32601, "Method not found");
  }
  json::object reply;
  reply["jsonrpc"] = "2.0";
  reply["id"] = reply_id;
  reply["result"] = std::move(result);
  return json::serialize(reply);
}

// An XML-RPC methodCall to its methodResponse, through the gateway's own codec
// (see the top of this file).
std::string answer_xmlrpc(plain_bank& bank, const std::string& body) {
  namespace xmlrpc = gw::xmlrpc;
  std::variant<xmlrpc::decoded_call, xmlrpc::fault> decoded = xmlrpc::decode_call(body);
  if (auto* bad = std::get_if<xmlrpc::fault>(&decoded)) return xmlrpc::encode_fault(*bad);
  const xmlrpc::decoded_call& call = std::get<xmlrpc::decoded_call>(decoded);
  const json::array& args = call.params;
  if (call.method == "bank.balance") {
    if (args.size() != 1 || !args[0].is_string())
      return xmlrpc::encode_fault({xmlrpc::invalid_params, "bank.balance takes one string"});
    return xmlrpc::encode_response(json::value(bank.balance(std::string(args[0].get_string()))));
  }
  if (call.method == "bank.deposit") {
    if (args.size() != 2 || !args[0].is_string() || !args[1].is_int64())
      return xmlrpc::encode_fault({xmlrpc::invalid_params, "bank.deposit takes a string and an int"});
    bank.deposit(std::string(args[0].get_string()), args[1].get_int64());
    return xmlrpc::encode_response(json::value(nullptr));
  }
  return xmlrpc::encode_fault({xmlrpc::method_not_found, "no method named '" + call.method + "'"});
}

enum class call_kind { deposit, balance };

// One protocol on the wire: the requests the load sends and the exact replies
// it expects, the same for troupe's server and the baseline.
struct wire {
  std::string_view rate_name;
  std::string_view p99_name;
  std::string target;
  std::string content_type;
  // deposit: opening_cents(account) into account; balance: account's balance.
  std::function<std::string(call_kind, std::int64_t id, int account)> request;
  std::function<bool(call_kind, std::string_view body, std::int64_t id, int account)> reply_ok;
  // troupe's side: mounts the protocol on the gateway's server.
  void (*serve)(gw::server&, const gw::methods&) = nullptr;
  // The baseline's side: a request body to the response body.
  std::string (*answer)(plain_bank&, const std::string& body) = nullptr;
};

wire jsonrpc_wire() {
  wire w;
  w.rate_name = "gateway_jsonrpc_http";
  w.p99_name = "gateway_jsonrpc_http_p99";
  w.target = "/jsonrpc";
  w.content_type = "application/json";
  w.serve = [](gw::server& s, const gw::methods& table) { s.serve_jsonrpc(table); };
  w.answer = answer_jsonrpc;
  w.request = [](call_kind kind, std::int64_t id, int account) {
    std::string out = R"({"jsonrpc":"2.0","id":)" + std::to_string(id);
    if (kind == call_kind::deposit) {
      out += R"(,"method":"bank.deposit","params":[")" + account_name(account) + "\"," +
             std::to_string(opening_cents(account)) + "]}";
    } else {
      out += R"(,"method":"bank.balance","params":[")" + account_name(account) + "\"]}";
    }
    return out;
  };
  w.reply_ok = [](call_kind kind, std::string_view body, std::int64_t id, int account) {
    const std::string result = kind == call_kind::deposit ? "null" : std::to_string(opening_cents(account));
    return body == R"({"jsonrpc":"2.0","id":)" + std::to_string(id) + R"(,"result":)" + result + "}";
  };
  return w;
}

wire xmlrpc_wire() {
  wire w;
  w.rate_name = "gateway_xmlrpc_http";
  w.p99_name = "gateway_xmlrpc_http_p99";
  w.target = "/RPC2";
  w.content_type = "text/xml";
  w.serve = [](gw::server& s, const gw::methods& table) { s.serve_xmlrpc(table); };
  w.answer = answer_xmlrpc;
  w.request = [](call_kind kind, std::int64_t /*id: XML-RPC has none*/, int account) {
    std::string out = R"(<?xml version="1.0"?><methodCall><methodName>)";
    out += kind == call_kind::deposit ? "bank.deposit" : "bank.balance";
    out += "</methodName><params><param><value><string>" + account_name(account) + "</string></value></param>";
    if (kind == call_kind::deposit) {
      out += "<param><value><int>" + std::to_string(opening_cents(account)) + "</int></value></param>";
    }
    out += "</params></methodCall>";
    return out;
  };
  // The expected documents, written once by the gateway's encoder: xmlrpc-c's
  // exact layout is not this bench's business, only that both sides send it.
  auto balances = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < accounts; ++i) balances->push_back(gw::xmlrpc::encode_response(json::value(opening_cents(i))));
  auto deposited = std::make_shared<const std::string>(gw::xmlrpc::encode_response(json::value(nullptr)));
  w.reply_ok = [balances, deposited](call_kind kind, std::string_view body, std::int64_t /*id*/, int account) {
    return body == (kind == call_kind::deposit ? *deposited : (*balances)[static_cast<std::size_t>(account)]);
  };
  return w;
}

struct plain_route {
  std::string target;
  std::string content_type;
  std::function<std::string(const std::string& body)> answer;
};

// One keep-alive connection of the baseline server, Beast's asynchronous HTTP
// server in its plainest form (its http_server_async example): read a request,
// answer it on the same thread, write, read the next. The session's own
// pending operation keeps it alive.
class plain_session : public std::enable_shared_from_this<plain_session> {
 public:
  plain_session(tcp::socket&& socket, const plain_route& route) : stream_(std::move(socket)), route_(route) {}

  void read() {
    request_ = {};
    stream_.expires_after(io_deadline);
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t /*bytes*/) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec) return;  // the client closed, or broke the protocol: let the connection go
    response_ = {};
    response_.version(request_.version());
    response_.keep_alive(request_.keep_alive());
    response_.set(http::field::server, "bench-plain");
    if (request_.method() != http::verb::post || request_.target() != route_.target) {
      response_.result(http::status::not_found);
    } else {
      response_.result(http::status::ok);
      response_.set(http::field::content_type, route_.content_type);
      response_.body() = route_.answer(request_.body());
    }
    response_.prepare_payload();
    stream_.expires_after(io_deadline);
    http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
      if (write_ec) return;
      if (self->response_.keep_alive()) {
        self->read();
      } else {
        beast::error_code ignored;
        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      }
    });
  }

  beast::tcp_stream stream_;
  const plain_route& route_;  // the server's, which outlives every session (see ~plain_server)
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

// The baseline server: a loopback listener, one strand per connection,
// `threads` threads running one io_context.
class plain_server {
 public:
  plain_server(std::size_t threads, plain_route route) : route_(std::move(route)), acceptor_(io_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    accept();
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  plain_server(const plain_server&) = delete;
  plain_server& operator=(const plain_server&) = delete;
  // Stops the threads; the io_context's destruction (after the threads are
  // joined, before route_ goes) destroys the sessions its pending operations hold.
  ~plain_server() {
    io_.stop();
    for (std::thread& t : threads_) t.join();
  }

  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;  // only when stopping: the listener is closed
      std::make_shared<plain_session>(std::move(socket), route_)->read();
      accept();
    });
  }

  const plain_route route_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
};

// --- the load generator -----------------------------------------------------------

// `concurrency` keep-alive connections to one server, driven by one thread of
// their own. run() may be called again and again (warm-up, repetitions) on the
// same connections, from one thread at a time.
class http_load {
 public:
  http_load(std::uint16_t port, const wire& w) : wire_(w) {
    const tcp::endpoint server(asio::ip::make_address("127.0.0.1"), port);
    calls_ = concurrency;  // the connects, counted like calls
    for (int i = 0; i < concurrency; ++i) {
      auto c = std::make_unique<connection>(io_);
      c->stream.expires_after(io_deadline);
      c->stream.async_connect(server, [this, &c = *c](beast::error_code ec) {
        if (ec) {
          finish(c, "cannot connect to the server: " + ec.message());
        } else {
          count_one();
        }
      });
      c->request.method(http::verb::post);
      c->request.target(wire_.target);
      c->request.version(11);
      c->request.keep_alive(true);
      c->request.set(http::field::host, "127.0.0.1");
      c->request.set(http::field::content_type, wire_.content_type);
      connections_.push_back(std::move(c));
    }
    thread_ = std::thread([this] { io_.run(); });
    (void)wait(clock::now());
  }
  http_load(const http_load&) = delete;
  http_load& operator=(const http_load&) = delete;
  ~http_load() {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // Makes `calls` calls of `kind` (call n on account n % accounts), one in
  // flight per connection, and returns their rate and p99 latency.
  load_result run(call_kind kind, std::int64_t calls) {
    {
      const std::lock_guard lock(mutex_);
      finished_ = 0;
    }
    // The io thread is idle between runs (every call of the previous one
    // finished); the post below hands it these.
    kind_ = kind;
    calls_ = calls;
    issued_ = 0;
    latencies_.emplace(calls);
    const auto start = clock::now();
    asio::post(io_, [this] {
      for (const std::unique_ptr<connection>& c : connections_) issue(*c);
    });
    const double seconds = wait(start);
    return {static_cast<double>(calls) / seconds, latencies_->p99()};
  }

 private:
  using clock = std::chrono::steady_clock;
  struct connection {
    explicit connection(asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
    std::int64_t n = 0;
    int account = 0;
    clock::time_point start;
  };

  // Waits (at most run_deadline from `start`) until calls_ calls have
  // finished; the seconds since `start`. Fails the run on a failed call.
  double wait(clock::time_point start) {
    std::unique_lock lock(mutex_);
    if (!done_cv_.wait_until(lock, start + run_deadline, [&] { return finished_ == calls_ || !failure_.empty(); })) {
      fail("gateway bench: the calls did not finish within the deadline");
    }
    if (!failure_.empty()) fail("gateway bench: " + failure_);
    return std::chrono::duration<double>(clock::now() - start).count();
  }

  // On the io thread, like everything below.
  void issue(connection& c) {
    if (issued_ >= calls_) return;
    c.n = issued_++;
    c.account = static_cast<int>(c.n % accounts);
    c.request.body() = wire_.request(kind_, c.n, c.account);
    c.request.prepare_payload();
    c.start = clock::now();
    c.stream.expires_after(io_deadline);
    http::async_write(c.stream, c.request, [this, &c](beast::error_code ec, std::size_t) {
      if (ec) {
        finish(c, "a request write failed: " + ec.message());
        return;
      }
      c.response = {};
      http::async_read(c.stream, c.buffer, c.response,
                       [this, &c](beast::error_code read_ec, std::size_t) { on_reply(c, read_ec); });
    });
  }

  void on_reply(connection& c, beast::error_code ec) {
    latencies_->record(c.n, std::chrono::duration<double, std::micro>(clock::now() - c.start).count());
    if (ec) {
      finish(c, "a reply read failed: " + ec.message());
    } else if (c.response.result() != http::status::ok || !wire_.reply_ok(kind_, c.response.body(), c.n, c.account)) {
      finish(c, "call " + std::to_string(c.n) + " got HTTP " + std::to_string(c.response.result_int()) + " " +
                    c.response.body());
    } else {
      issue(c);  // the next call first: the count below may end the run, and then run() owns the state
      count_one();
    }
  }

  void count_one() {
    const std::lock_guard lock(mutex_);
    if (++finished_ == calls_) done_cv_.notify_one();
  }
  void finish(const connection& c, const std::string& failure) {
    const std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = "call " + std::to_string(c.n) + ": " + failure;
    done_cv_.notify_one();
  }

  const wire& wire_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::vector<std::unique_ptr<connection>> connections_;
  std::thread thread_;
  // The current run: set by run() while the io thread is idle, then used by the io thread alone.
  call_kind kind_ = call_kind::balance;
  std::int64_t calls_ = 0;
  std::int64_t issued_ = 0;
  std::optional<latencies> latencies_;
  // The io thread's report to run().
  std::mutex mutex_;
  std::condition_variable done_cv_;
  std::int64_t finished_ = 0;
  std::string failure_;
};

void run_protocol(const options& opts, bool baseline, const wire& w) {
  if (!opts.selected(w.rate_name) && !opts.selected(w.p99_name)) return;
  const std::int64_t calls = calls_for(opts);

  // The server under test, on a free loopback port.
  std::unique_ptr<troupe::system> sys;
  std::unique_ptr<gw::methods> table;
  std::unique_ptr<gw::server> gateway;
  plain_bank bank;
  std::unique_ptr<plain_server> plain;
  std::uint16_t port = 0;
  if (baseline) {
    plain_route route{w.target, w.content_type,
                      [&bank, answer = w.answer](const std::string& body) { return answer(bank, body); }};
    plain = std::make_unique<plain_server>(gw::server_settings{}.threads, std::move(route));
    port = plain->port();
  } else {
    troupe::config cfg;
    cfg.worker_threads = opts.threads;
    sys = std::make_unique<troupe::system>(cfg);
    table = std::make_unique<gw::methods>(*sys);
    table->expose("bank", sys->spawn<bank_actor>());
    gateway = std::make_unique<gw::server>();  // the default settings: the baseline copies their thread count
    w.serve(*gateway, *table);
    gateway->start();
    port = gateway->port();
  }

  {
    http_load load(port, w);
    (void)load.run(call_kind::deposit, accounts);    // open the accounts, through the protocol
    (void)load.run(call_kind::balance, calls / 10);  // warm-up: connections, allocator, caches
    run_and_report(opts, w.rate_name, w.p99_name, [&] { return load.run(call_kind::balance, calls); });
  }  // the client goes before the server it talks to
}

}  // namespace

void run_http(const options& opts, bool baseline) {
  run_protocol(opts, baseline, jsonrpc_wire());
  run_protocol(opts, baseline, xmlrpc_wire());
}

}  // namespace troupe::bench::rpc
