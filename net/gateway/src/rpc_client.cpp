// The RPC client actor and its transport (see rpc_client.hpp): the actor hands
// each call to the transport's Asio thread, where one exchange per call
// connects (or takes a kept-alive connection), writes, reads and decodes, with
// one deadline timer; the reply_promise it holds is answered exactly once.
#include "troupe/gateway/rpc_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <mutex>
#include <optional>
#include <thread>
#include <variant>
#include <vector>

#include "troupe/gateway/xmlrpc.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"

namespace troupe::gateway {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t max_answer_header_bytes = std::size_t{64} << 10;

std::string shortened(std::string_view text, std::size_t at_most = 200) {
  if (text.size() <= at_most) return std::string(text);
  return std::string(text.substr(0, at_most)) + "...";
}

// --- the two encodings --------------------------------------------------------

std::variant<std::string, error> encode_request(const rpc_endpoint& where, const rpc_request& r, std::uint64_t id) {
  if (where.encoding == rpc_encoding::xmlrpc) {
    std::variant<std::string, xmlrpc::fault> call = xmlrpc::encode_call(r.method, r.params);
    if (auto* bad = std::get_if<xmlrpc::fault>(&call)) {
      return error(errc::invalid_request, "the call to " + r.method + " has no XML-RPC form: " + bad->message);
    }
    return std::move(std::get<std::string>(call));
  }
  json::object request{{"jsonrpc", "2.0"}, {"method", r.method}, {"id", id}};
  if (r.params.is_array() || r.params.is_object()) {
    request["params"] = r.params;
  } else if (!r.params.is_null()) {
    request["params"] = json::array{r.params};
  }
  return json::serialize(request);
}

std::variant<json::value, error> decode_xmlrpc(std::string_view body, std::size_t max_bytes) {
  xmlrpc::decoded_response d = xmlrpc::decode_response(body, xmlrpc::limits{.max_body_bytes = max_bytes});
  if (auto* result = std::get_if<json::value>(&d.outcome)) return std::move(*result);
  const xmlrpc::fault& f = std::get<xmlrpc::fault>(d.outcome);
  if (d.is_remote_fault) return error(errc::remote_fault, "XML-RPC fault " + std::to_string(f.code) + ": " + f.message);
  return error(errc::malformed_message, "the answer is not an XML-RPC methodResponse: " + f.message);
}

std::variant<json::value, error> decode_jsonrpc(std::string_view body, std::uint64_t id) {
  boost::system::error_code ec;
  json::value answer = json::parse(body, ec);  // Boost.JSON's default depth limit (32) applies
  if (ec) return error(errc::malformed_message, "the answer is not JSON: " + ec.message());
  const json::object* o = answer.if_object();
  if (o == nullptr) return error(errc::malformed_message, "the answer is not a JSON-RPC response object");
  const json::value* version = o->if_contains("jsonrpc");
  if (version == nullptr || !version->is_string() || version->get_string() != "2.0") {
    return error(errc::malformed_message, "the answer is not JSON-RPC 2.0 (no \"jsonrpc\": \"2.0\")");
  }
  const json::value* answered = o->if_contains("id");
  const bool same_id =
      answered != nullptr &&
      ((answered->is_uint64() && answered->get_uint64() == id) ||
       (answered->is_int64() && answered->get_int64() >= 0 && static_cast<std::uint64_t>(answered->get_int64()) == id));
  if (const json::value* e = o->if_contains("error")) {
    const json::object* eo = e->if_object();
    const json::value* code = eo ? eo->if_contains("code") : nullptr;
    const json::value* message = eo ? eo->if_contains("message") : nullptr;
    if (code == nullptr || !code->is_int64() || message == nullptr || !message->is_string()) {
      return error(errc::malformed_message,
                   "the answer's error is not a JSON-RPC error object: " + shortened(json::serialize(*e)));
    }
    // A parse error's id is null: the server could not read ours.
    if (!same_id && !(answered != nullptr && answered->is_null())) {
      return error(errc::malformed_message, "the answer's id is not the call's");
    }
    std::string text =
        "JSON-RPC error " + std::to_string(code->get_int64()) + ": " + std::string(message->get_string());
    if (const json::value* data = eo->if_contains("data")) text += " (data: " + shortened(json::serialize(*data)) + ")";
    return error(errc::remote_fault, std::move(text));
  }
  if (!same_id) return error(errc::malformed_message, "the answer's id is not the call's");
  const json::value* result = o->if_contains("result");
  if (result == nullptr) return error(errc::malformed_message, "the answer has neither a result nor an error");
  return *result;
}

}  // namespace

namespace detail {

// Owns the Asio thread and the kept-alive connections. start() from any
// thread; everything else runs on the Asio thread.
class rpc_transport : public std::enable_shared_from_this<rpc_transport> {
 public:
  explicit rpc_transport(rpc_endpoint endpoint)
      : endpoint_(std::move(endpoint)),
        label_(std::string(endpoint_.encoding == rpc_encoding::xmlrpc ? "XML-RPC" : "JSON-RPC") + " at http://" +
               endpoint_.host + ":" + endpoint_.port + endpoint_.target),
        io_(std::make_unique<asio::io_context>(1)),
        work_(asio::make_work_guard(*io_)),
        thread_([this] { io_->run(); }) {}
  rpc_transport(const rpc_transport&) = delete;
  rpc_transport& operator=(const rpc_transport&) = delete;
  ~rpc_transport() { close(); }

  void start(rpc_request request, reply_promise<json::value> promise);

  // Stops the thread; exchanges in flight are destroyed with the io_context,
  // and their reply_promises answer errc::request_dropped.
  void close() {
    {
      const std::lock_guard lock(mutex_);
      if (closed_) return;
      closed_ = true;
    }
    work_.reset();
    io_->stop();
    if (thread_.joinable()) thread_.join();
    idle_.clear();
    io_.reset();
  }

  [[nodiscard]] const rpc_endpoint& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const std::string& label() const noexcept { return label_; }
  asio::io_context& io() noexcept { return *io_; }
  std::uint64_t next_id() noexcept { return next_id_++; }

  std::optional<tcp::socket> take_idle() {
    if (idle_.empty()) return std::nullopt;
    tcp::socket s = std::move(idle_.back());
    idle_.pop_back();
    return s;
  }
  void keep_idle(tcp::socket s) {
    if (idle_.size() < endpoint_.max_idle_connections) idle_.push_back(std::move(s));
  }

 private:
  rpc_endpoint endpoint_;
  std::string label_;
  std::mutex mutex_;  // closed_ and posting to io_, against close()
  bool closed_ = false;
  std::unique_ptr<asio::io_context> io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  // The Asio thread's own.
  std::vector<tcp::socket> idle_;
  std::uint64_t next_id_ = 1;
};

namespace {

// One call: its socket, its deadline, its promise. Lives in its handlers.
class exchange : public std::enable_shared_from_this<exchange> {
 public:
  exchange(rpc_transport& owner, rpc_request request, reply_promise<json::value> promise)
      : owner_(owner),
        request_(std::move(request)),
        promise_(std::move(promise)),
        id_(owner.next_id()),
        timer_(owner.io()),
        resolver_(owner.io()),
        socket_(owner.io()) {}

  void run() {
    std::variant<std::string, error> body = encode_request(owner_.endpoint(), request_, id_);
    if (auto* bad = std::get_if<error>(&body)) return finish(std::move(*bad));
    const rpc_endpoint& where = owner_.endpoint();
    message_ = http::request<http::string_body>(http::verb::post, where.target, 11);
    message_.set(http::field::host, where.host + ":" + where.port);
    message_.set(http::field::user_agent, "troupe-gateway");
    message_.set(http::field::content_type, where.encoding == rpc_encoding::xmlrpc ? "text/xml" : "application/json");
    message_.keep_alive(true);
    message_.body() = std::move(std::get<std::string>(body));
    message_.prepare_payload();
    timer_.expires_after(request_.timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->on_deadline();
    });
    if (std::optional<tcp::socket> kept = owner_.take_idle()) {
      socket_ = std::move(*kept);
      reused_ = true;
      write();
    } else {
      connect();
    }
  }

 private:
  void on_deadline() {
    if (finished_) return;
    timed_out_ = true;
    resolver_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);  // the operation in flight ends with operation_aborted
  }

  void connect() {
    const rpc_endpoint& where = owner_.endpoint();
    resolver_.async_resolve(
        where.host, where.port,
        [self = shared_from_this()](boost::system::error_code ec, const tcp::resolver::results_type& found) {
          if (ec) return self->failed(ec, "resolving the host");
          asio::async_connect(self->socket_, found, [self](boost::system::error_code ec2, const tcp::endpoint&) {
            if (ec2) return self->failed(ec2, "connecting");
            self->write();
          });
        });
  }

  void write() {
    http::async_write(socket_, message_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) return self->failed(ec, "sending the call");
      self->read();
    });
  }

  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(max_answer_header_bytes));
    parser_->body_limit(owner_.endpoint().max_response_bytes);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                       if (ec) return self->failed(ec, "reading the answer");
                       self->answered();
                     });
  }

  void failed(boost::system::error_code ec, const char* doing) {
    if (finished_) return;
    if (timed_out_) {
      return finish(error(errc::timeout, owner_.label() + ": no answer to " + request_.method + " within " +
                                             std::to_string(request_.timeout.count()) + " ms"));
    }
    // A kept connection the server closed while it was idle: once more on a new one.
    const bool nothing_read = !parser_ || !parser_->got_some();
    if (reused_ && nothing_read) {
      reused_ = false;
      boost::system::error_code ignored;
      socket_.close(ignored);
      socket_ = tcp::socket(owner_.io());
      buffer_.clear();
      parser_.reset();
      return connect();
    }
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return finish(
          error(errc::malformed_message, owner_.label() + ": the answer to " + request_.method + " is larger than " +
                                             std::to_string(owner_.endpoint().max_response_bytes) + " bytes"));
    }
    finish(error(errc::connection_lost, owner_.label() + ": " + doing + " failed: " + ec.message()));
  }

  void answered() {
    http::response<http::string_body> answer = parser_->release();
    const bool reusable = answer.keep_alive();
    std::variant<json::value, error> outcome;
    if (answer.result_int() != 200) {
      outcome = error(errc::remote_fault, "HTTP " + std::to_string(answer.result_int()) + " " +
                                              std::string(answer.reason()) + ": " + shortened(answer.body()));
    } else if (owner_.endpoint().encoding == rpc_encoding::xmlrpc) {
      outcome = decode_xmlrpc(answer.body(), owner_.endpoint().max_response_bytes);
    } else {
      outcome = decode_jsonrpc(answer.body(), id_);
    }
    if (reusable) {
      owner_.keep_idle(std::move(socket_));
    }
    if (auto* bad = std::get_if<error>(&outcome)) {
      return finish(error(bad->code(), owner_.label() + ": " + request_.method + ": " + bad->text()));
    }
    finish(std::move(std::get<json::value>(outcome)));
  }

  void finish(std::variant<json::value, error> outcome) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    if (auto* e = std::get_if<error>(&outcome)) {
      promise_.fail(std::move(*e));
    } else {
      promise_.deliver(std::move(std::get<json::value>(outcome)));
    }
  }

  rpc_transport& owner_;  // outlives the exchange: its io_context holds the exchange's handlers
  rpc_request request_;
  reply_promise<json::value> promise_;
  std::uint64_t id_;
  asio::steady_timer timer_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  http::request<http::string_body> message_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  bool reused_ = false;
  bool timed_out_ = false;
  bool finished_ = false;
};

}  // namespace

void rpc_transport::start(rpc_request request, reply_promise<json::value> promise) {
  const std::lock_guard lock(mutex_);
  if (closed_) {
    promise.fail(error(errc::system_stopped, label_ + ": the rpc_client is closed"));
    return;
  }
  asio::post(*io_, [this, request = std::move(request), promise = std::move(promise)]() mutable {
    std::make_shared<exchange>(*this, std::move(request), std::move(promise))->run();
  });
}

namespace {

struct rpc_client_actor final : actor<rpc_protocol> {
  explicit rpc_client_actor(std::shared_ptr<rpc_transport> transport) : transport_(std::move(transport)) {}
  void on(rpc_request r, reply_promise<json::value> reply) { transport_->start(std::move(r), std::move(reply)); }
  void on(rpc_close /*unused*/) { stop(); }

 private:
  std::shared_ptr<rpc_transport> transport_;
};

}  // namespace
}  // namespace detail

rpc_client::rpc_client(troupe::system& sys, rpc_endpoint endpoint)
    : transport_(std::make_shared<detail::rpc_transport>(std::move(endpoint))),
      actor_(sys.spawn<detail::rpc_client_actor>(transport_)) {}

rpc_client::~rpc_client() {
  (void)actor_.tell(rpc_close{});
  transport_->close();
}

const rpc_endpoint& rpc_client::endpoint() const noexcept { return transport_->endpoint(); }

}  // namespace troupe::gateway
