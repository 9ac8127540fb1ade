// The outbound JSON-RPC client: its actor and its Asio thread (see jsonrpc_client.hpp).
#include "troupe/gateway/jsonrpc_client.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::gateway {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace detail {
// Shared by the client object and its actor. The io_context goes with the
// client object: the destructor closes the gate (so the actor posts no more),
// stops and joins the thread, then destroys the io_context, and with it every
// call still in flight, whose promise then answers errc::request_dropped.
struct client_core {
  explicit client_core(client_settings s) : config(std::move(s)) {}
  const client_settings config;
  std::mutex gate;
  bool open = true;  // under gate
  std::unique_ptr<asio::io_context> io = std::make_unique<asio::io_context>();
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{asio::make_work_guard(*io)};
  std::thread thread;
  // Relaxed: only makes ids unique; orders nothing.
  std::atomic<std::uint64_t> next_id{1};
};
}  // namespace detail

namespace {

// What a service's answer says, checked: the result, or why there is none.
expected<json::value> read_answer(unsigned status, const std::string& body, std::uint64_t id, const std::string& who) {
  const auto malformed = [&](const std::string& why) {
    return expected<json::value>(error(errc::malformed_message, who + ": " + why));
  };
  boost::system::error_code failed;
  json::parse_options options;
  options.max_depth = 64;
  json::value answer = json::parse(body, failed, {}, options);
  if (failed) return malformed("HTTP " + std::to_string(status) + ", and the body is not JSON: " + failed.message());
  json::object* response = answer.if_object();
  if (response == nullptr) return malformed("the answer is not a JSON-RPC response object");
  const json::value* version = response->if_contains("jsonrpc");
  if (version == nullptr || *version != "2.0") return malformed("the answer lacks \"jsonrpc\":\"2.0\"");
  const json::value* echoed = response->if_contains("id");
  const json::value* result = response->if_contains("result");
  const json::value* failure = response->if_contains("error");
  if ((result == nullptr) == (failure == nullptr))
    return malformed("the answer must hold exactly one of result and error");
  if (failure != nullptr) {
    const json::object* e = failure->if_object();
    const json::value* code = e != nullptr ? e->if_contains("code") : nullptr;
    const json::value* message = e != nullptr ? e->if_contains("message") : nullptr;
    if (code == nullptr || !code->is_int64() || message == nullptr || !message->is_string()) {
      return malformed("an error without an integer code and a string message");
    }
    std::string text = who + ": error " + std::to_string(code->get_int64()) + " " + std::string(message->get_string());
    if (const json::value* data = e->if_contains("data")) text += " (" + json::serialize(*data) + ")";
    return expected<json::value>(error(errc::invalid_request, std::move(text)));
  }
  if (echoed == nullptr || !echoed->is_number() || json::value_to<double>(*echoed) != static_cast<double>(id)) {
    return malformed("the answer is to another call (its id is not " + std::to_string(id) + ")");
  }
  if (status != 200) return malformed("a result with HTTP status " + std::to_string(status));
  return std::move(*const_cast<json::value*>(result));  // NOLINT(cppcoreguidelines-pro-type-const-cast): ours to move
}

// One call: resolve, connect, POST, read the answer, all by the call's
// deadline. Callbacks, not Asio's coroutines: clang 14 cannot compile those
// under AddressSanitizer ("cannot represent a difference across sections").
// Each step's handler holds the exchange; its promise answers once, at the
// end or at the first failure (or, unanswered, when the io_context goes).
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(asio::io_context& io, client_settings config, std::uint64_t id, outbound_call call,
           reply_promise<json::value> later)
      : config_(std::move(config)),
        id_(id),
        call_(std::move(call)),
        later_(std::move(later)),
        deadline_(std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(call_.timeout)),
        who_("JSON-RPC service at http://" + config_.host + ":" + config_.port + config_.target + " (" + call_.method +
             ")"),
        resolver_(io),
        stream_(io) {}

  void start() {
    resolver_.async_resolve(
        config_.host, config_.port,
        [self = shared_from_this()](beast::error_code ec, const tcp::resolver::results_type& addresses) {
          if (ec) return self->fail(ec);
          self->connect(addresses);
        });
  }

 private:
  void connect(const tcp::resolver::results_type& addresses) {
    stream_.expires_at(deadline_);
    stream_.async_connect(addresses, [self = shared_from_this()](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return self->fail(ec);
      self->send();
    });
  }

  void send() {
    json::object message{{"jsonrpc", "2.0"}, {"method", call_.method}, {"id", id_}};
    if (!call_.params.is_null()) message.emplace("params", std::move(call_.params));
    request_ = http::request<http::string_body>(http::verb::post, config_.target, 11);
    request_.set(http::field::host, config_.host);
    request_.set(http::field::content_type, "application/json");
    request_.set(http::field::user_agent, "troupe-gateway");
    request_.body() = json::serialize(message);
    request_.prepare_payload();
    stream_.expires_at(deadline_);
    http::async_write(stream_, request_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->receive();
    });
  }

  void receive() {
    parser_.body_limit(config_.max_response_bytes);
    parser_.header_limit(64 * 1024);
    stream_.expires_at(deadline_);
    http::async_read(stream_, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->fail(ec);
      self->finish();
    });
  }

  void finish() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    expected<json::value> answer = read_answer(parser_.get().result_int(), parser_.get().body(), id_, who_);
    if (answer) {
      later_.deliver(std::move(*answer));
    } else {
      later_.fail(answer.error());
    }
  }

  void fail(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      later_.fail(error(errc::timeout, who_ + ": no answer within the call's timeout"));
    } else if (ec == http::error::body_limit || ec == http::error::header_limit ||
               ec.category() == http::make_error_code(http::error::bad_target).category()) {
      later_.fail(error(errc::malformed_message, who_ + ": " + ec.message()));
    } else {
      later_.fail(error(errc::connection_lost, who_ + ": " + ec.message()));
    }
  }

  const client_settings config_;
  const std::uint64_t id_;
  outbound_call call_;
  reply_promise<json::value> later_;
  const std::chrono::steady_clock::time_point deadline_;
  const std::string who_;
  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

// Hands each call to the Asio thread; its promise goes with it.
struct client_actor final : actor<client_protocol> {
  explicit client_actor(std::shared_ptr<detail::client_core> c) : core_(std::move(c)) {}
  void on(outbound_call call, reply_promise<json::value> later) {
    // Relaxed: see client_core::next_id.
    const std::uint64_t id = core_->next_id.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard<std::mutex> lock(core_->gate);
    if (!core_->open) {
      later.fail(error(errc::request_dropped, "the JSON-RPC client is closed"));
      return;
    }
    // The exchange keeps its own copy of the settings: it may outlive nothing
    // but the io_context, which destroys it.
    auto call_exchange = std::make_shared<exchange>(*core_->io, core_->config, id, std::move(call), std::move(later));
    asio::post(*core_->io, [call_exchange] { call_exchange->start(); });
  }
  void on(close_client /*unused*/) { stop(); }

 private:
  std::shared_ptr<detail::client_core> core_;
};

}  // namespace

jsonrpc_client::jsonrpc_client(troupe::system& sys, client_settings s)
    : core_(std::make_shared<detail::client_core>(std::move(s))), actor_(sys.spawn<client_actor>(core_)) {
  core_->thread = std::thread([io = core_->io.get()] { io->run(); });
}

jsonrpc_client::~jsonrpc_client() {
  {
    const std::lock_guard<std::mutex> lock(core_->gate);
    core_->open = false;
  }
  (void)actor_.tell(close_client{});
  core_->work.reset();
  core_->io->stop();
  core_->thread.join();
  core_->io.reset();
}

response<json::value> jsonrpc_client::call_json(std::string method, json::value params,
                                                std::chrono::nanoseconds timeout) const {
  // The ask outlives the HTTP exchange a little, so that the exchange's own
  // timeout (which names the service) is the one reported.
  return actor_.ask(outbound_call{std::move(method), std::move(params), timeout},
                    timeout + std::chrono::milliseconds(500));
}

}  // namespace troupe::gateway
