// The XML-RPC endpoint against Python's xmlrpc.client on both sides: its
// dumps() writes the calls, its loads() reads the replies. Every spec type,
// the extensions, the by-name convention, a fault for every bad input, and no
// actor ever sees a message it cannot handle.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/describe/class.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <thread>

#include "support/child_process.hpp"
#include "troupe/gateway/xmlrpc.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/system.hpp"

namespace {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;
namespace xr = troupe::gateway::xmlrpc;
namespace json = boost::json;

namespace kinds {
struct inner {
  std::string name;
  std::vector<std::int64_t> values;
};
BOOST_DESCRIBE_STRUCT(inner, (), (name, values))
struct everything {
  std::int64_t i;
  bool b;
  std::string s;
  double d;
  std::string when;
  std::string bytes;
  std::vector<std::int64_t> list;
  inner nested;
  using reply = everything;
  static constexpr std::string_view rpc_name = "echo";
};
BOOST_DESCRIBE_STRUCT(everything, (), (i, b, s, d, when, bytes, list, nested))
struct add {
  std::int64_t a;
  std::int64_t b;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(add, (), (a, b))
// One member: its one param is always positional, a struct included.
struct measure {
  inner what;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(measure, (), (what))
struct big {
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(big, (), ())
struct ping {
  using reply = void;
};
BOOST_DESCRIBE_STRUCT(ping, (), ())
struct not_a_number {
  using reply = double;
};
BOOST_DESCRIBE_STRUCT(not_a_number, (), ())
struct note {
  std::string text;
};
BOOST_DESCRIBE_STRUCT(note, (), (text))
struct crash {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(crash, (), ())
struct stall {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(stall, (), ())
using protocol = troupe::protocol<everything, add, measure, big, ping, not_a_number, note, crash, stall>;
}  // namespace kinds

// Counts every message it handles: a bad call must leave the count alone.
struct kinds_actor : troupe::actor<kinds::protocol> {
  explicit kinds_actor(std::shared_ptr<std::atomic<int>> handled) : handled_(std::move(handled)) {}
  kinds::everything on(kinds::everything e) {
    count();
    return e;
  }
  std::int64_t on(const kinds::add& a) {
    count();
    return a.a + a.b;
  }
  std::int64_t on(const kinds::measure& m) {
    count();
    return static_cast<std::int64_t>(m.what.values.size());
  }
  std::int64_t on(kinds::big /*unused*/) {
    count();
    return std::int64_t{1} << 40;
  }
  void on(kinds::ping /*unused*/) { count(); }
  double on(kinds::not_a_number /*unused*/) {
    count();
    return std::numeric_limits<double>::quiet_NaN();
  }
  void on(const kinds::note& /*unused*/) { count(); }
  bool on(kinds::crash /*unused*/) {
    count();
    throw std::runtime_error("the disk is on fire");
  }
  void on(kinds::stall /*unused*/, troupe::reply_promise<bool> later) {
    count();
    stalled_.push_back(std::move(later));
  }

 private:
  // Relaxed: a count the test reads after the replies it waited for.
  void count() { handled_->fetch_add(1, std::memory_order_relaxed); }
  std::shared_ptr<std::atomic<int>> handled_;
  std::vector<troupe::reply_promise<bool>> stalled_;
};

std::string peer_script() { return std::string(TROUPE_GATEWAY_TEST_DIR) + "/xmlrpc_peer.py"; }

// Python's xmlrpc.client.dumps of `params` (a Python tuple literal).
std::string python_call(const std::string& method, const std::string& params) {
  troupe::test_support::command_result r =
      troupe::test_support::run_command({"python3", peer_script(), "call", method, params});
  EXPECT_TRUE(r.succeeded()) << r.err;
  return r.out;
}

// What Python's xmlrpc.client.loads makes of a methodResponse.
json::value python_reads(const std::string& response) {
  troupe::test_support::command_result r =
      troupe::test_support::run_command({"python3", peer_script(), "loads"}, response);
  EXPECT_TRUE(r.succeeded()) << r.err << "\nfor the document:\n" << response;
  return r.succeeded() ? json::parse(r.out) : json::value(nullptr);
}

struct gateway_fixture {
  explicit gateway_fixture(gw::settings s = {}) : m(sys, s) { m.expose("kinds", sys.spawn<kinds_actor>(handled)); }
  // Calls the endpoint and waits, with a deadline, for its one reply.
  gw::http_reply post(std::string body, std::string content_type = "text/xml", const xr::limits& lim = {}) {
    auto done = std::make_shared<std::promise<gw::http_reply>>();
    auto calls = std::make_shared<std::atomic<int>>(0);
    xr::handle(
        m, gw::http_request{"/RPC2", std::move(content_type), std::move(body)},
        [done, calls](gw::http_reply r) {
          if (calls->fetch_add(1) == 0) done->set_value(std::move(r));
        },
        lim);
    std::future<gw::http_reply> f = done->get_future();
    if (f.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "no reply within 10 s";
      return {};
    }
    gw::http_reply r = f.get();
    EXPECT_EQ(calls->load(), 1);
    return r;
  }
  // The reply as Python reads it; every XML-RPC reply is HTTP 200 text/xml.
  json::value python_post(std::string body, const xr::limits& lim = {}) {
    gw::http_reply r = post(std::move(body), "text/xml", lim);
    EXPECT_EQ(r.status, 200U);
    EXPECT_EQ(r.content_type, "text/xml");
    return python_reads(r.body);
  }
  [[nodiscard]] int handled_count() const { return handled->load(std::memory_order_relaxed); }

  std::shared_ptr<std::atomic<int>> handled = std::make_shared<std::atomic<int>>(0);
  troupe::system sys;
  gw::methods m;
};

// The fault code Python sees, or 0 (with a failure) when the reply is no fault.
int fault_code(const json::value& read) {
  const json::object& o = read.as_object();
  if (!o.contains("fault")) {
    ADD_FAILURE() << "not a fault: " << json::serialize(read);
    return 0;
  }
  return static_cast<int>(o.at("fault").as_array().at(0).as_int64());
}
std::string fault_text(const json::value& read) {
  const json::object& o = read.as_object();
  return o.contains("fault") ? std::string(o.at("fault").as_array().at(1).as_string()) : "";
}

std::string call_document(std::string_view method, std::string_view params_xml) {
  return R"(<?xml version="1.0"?><methodCall><methodName>)" + std::string(method) + "</methodName><params>" +
         std::string(params_xml) + "</params></methodCall>";
}

TEST(xmlrpc_gateway, every_spec_type_written_by_python_reaches_the_actor_and_its_reply_reads_back_in_python) {
  gateway_fixture g;
  const json::value read = g.python_post(python_call(
      "kinds.echo",
      R"((-7, True, 'caf\u00e9 <&>', 1.5, D('20260107T10:20:30'), B(b'\x00\xffab'), [1, 2, 3], {'name': 'n', 'values': [4]}))"));
  // Bytes that are not text go back as base64; the text ones as strings.
  EXPECT_EQ(
      json::serialize(read),
      R"({"result":{"b":true,"bytes":"b64:AP9hYg==","d":1.5E0,"i":-7,"list":[1,2,3],"nested":{"name":"n","values":[4]},"s":"café <&>","when":"20260107T10:20:30"}})");
  EXPECT_EQ(g.handled_count(), 1);
}

TEST(xmlrpc_gateway, a_value_without_a_type_tag_is_a_string_and_the_i4_i8_and_nil_forms_are_read) {
  gateway_fixture g;
  const std::string params =
      "<param><value><i4>-7</i4></value></param><param><value><boolean>0</boolean></value></param>"
      "<param><value>untagged text</value></param><param><value><double>-0.25</double></value></param>"
      "<param><value><dateTime.iso8601>19980717T14:08:55</dateTime.iso8601></value></param>"
      "<param><value><base64>aGk=</base64></value></param>"
      "<param><value><array><data><value><i8>8589934592</i8></value></data></array></value></param>"
      "<param><value><struct><member><name>name</name><value><string></string></value></member>"
      "<member><name>values</name><value><array><data/></array></value></member></struct></value></param>";
  EXPECT_EQ(
      json::serialize(g.python_post(call_document("kinds.echo", params))),
      R"({"result":{"b":false,"bytes":"hi","d":-2.5E-1,"i":-7,"list":[8589934592],"nested":{"name":"","values":[]},"s":"untagged text","when":"19980717T14:08:55"}})");
  // nil: an optional's null; a void reply is nil too, and Python reads it as None.
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.ping", "()"))), R"({"result":null})");
  // An integer beyond 32 bits goes out as i8, which Python reads.
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.big", "()"))), R"({"result":1099511627776})");
  EXPECT_EQ(g.handled_count(), 3);
}

TEST(xmlrpc_gateway, one_struct_param_goes_by_name_unless_the_method_has_exactly_one_member) {
  gateway_fixture g;
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.add", "(2, 3)"))), R"({"result":5})");
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.add", "({'a': 20, 'b': 22},)"))), R"({"result":42})");
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.measure", "({'name': 'x', 'values': [1, 2, 3]},)"))),
            R"({"result":3})");
  // A tell: Python sees nil once the message is sent.
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.note", "('hello',)"))), R"({"result":null})");
  EXPECT_EQ(json::serialize(g.python_post(python_call("kinds.add", "(1, 1)"))), R"({"result":2})");
  EXPECT_EQ(g.handled_count(), 5);  // in order: the note was handled before this add
}

TEST(xmlrpc_gateway, each_bad_call_is_answered_with_its_fault_code_and_reaches_no_actor) {
  gateway_fixture g;
  EXPECT_EQ(fault_code(g.python_post("<methodCall><methodName>kinds.add</methodName>")), xr::parse_error);
  EXPECT_EQ(fault_code(g.python_post("")), xr::parse_error);
  EXPECT_EQ(fault_code(g.python_post("not xml at all")), xr::parse_error);
  EXPECT_EQ(fault_code(g.python_post("<?xml version=\"1.0\"?><methodResponse/>")), xr::invalid_request);
  EXPECT_EQ(fault_code(g.python_post(call_document("kinds.add", "<param><value><int>twelve</int></value></param>"))),
            xr::invalid_request);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.rob", "(1,)"))), xr::method_not_found);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.add", "('two', 3)"))), xr::invalid_params);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.add", "(1,)"))), xr::invalid_params);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.add", "(1, 2, 3)"))), xr::invalid_params);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.add", "({'a': 1, 'c': 2},)"))), xr::invalid_params);
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.echo", "(1, True, 's', 1.5, 'when', 'bytes', [1, 'x'], {})"))),
            xr::invalid_params);
  EXPECT_EQ(g.handled_count(), 0);
}

TEST(xmlrpc_gateway, hostile_documents_are_refused_before_they_cost_stack_memory_or_time) {
  gateway_fixture g;
  // Arrays nested deeper than the limit.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "<value><array><data>";
  for (int i = 0; i < 200; ++i) deep += "</data></array></value>";
  const json::value too_deep = g.python_post(call_document("kinds.add", "<param>" + deep + "</param>"));
  EXPECT_EQ(fault_code(too_deep), xr::invalid_request);
  EXPECT_NE(fault_text(too_deep).find("nested deeper"), std::string::npos) << fault_text(too_deep);
  // A million nested elements (a stack overflow in xmlrpc-c's tree) in a body the limit allows.
  std::string tower;
  for (int i = 0; i < 150'000; ++i) tower += "<a>";
  for (int i = 0; i < 150'000; ++i) tower += "</a>";
  EXPECT_EQ(fault_code(g.python_post(call_document("kinds.add", tower), xr::limits{.max_body_bytes = 4 << 20})),
            xr::invalid_request);
  // Too many elements (xmlrpc-c's structs cost quadratic time in their members).
  std::string wide = "<param><value><struct>";
  for (int i = 0; i < 20'000; ++i) wide += "<member><name>k" + std::to_string(i) + "</name><value>1</value></member>";
  wide += "</struct></value></param>";
  EXPECT_EQ(fault_code(g.python_post(call_document("kinds.add", wide))), xr::invalid_request);
  // Entities: "billion laughs" (minutes of work in xmlrpc-c's expat) is refused at its DTD.
  std::string laughs = R"(<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a0 "ha">)";
  for (int i = 1; i < 10; ++i) {
    laughs += "<!ENTITY a" + std::to_string(i) + " \"";
    for (int k = 0; k < 10; ++k) laughs += "&a" + std::to_string(i - 1) + ";";
    laughs += "\">";
  }
  laughs += "]>" + call_document("kinds.add", "<param><value>&a9;</value></param>").substr(21);
  const json::value refused = g.python_post(laughs);
  EXPECT_TRUE(fault_code(refused) == xr::invalid_request || fault_code(refused) == xr::parse_error)
      << fault_text(refused);
  // An <i8> that is not an integer (xmlrpc-c 1.33 crashes on it; refused before it sees it).
  for (const char* junk : {"12#3", "-", "99999999999999999999", "", "1 2"}) {
    const json::value read =
        g.python_post(call_document("kinds.add", std::string("<param><value><i8>") + junk + "</i8></value></param>"));
    EXPECT_EQ(fault_code(read), xr::invalid_request) << junk;
    EXPECT_NE(fault_text(read).find("<i8>"), std::string::npos) << fault_text(read);
  }
  // A body over the limit.
  EXPECT_EQ(fault_code(g.python_post(python_call("kinds.add", "(1, 2)"), xr::limits{.max_body_bytes = 64})),
            xr::invalid_request);
  EXPECT_EQ(g.handled_count(), 0);
}

TEST(xmlrpc_gateway, an_actor_failure_is_a_fault_with_its_exit_reason_and_a_stalled_call_times_out) {
  gateway_fixture g(gw::settings{.ask_timeout = 100ms});
  const json::value stalled = g.python_post(python_call("kinds.stall", "()"));
  EXPECT_EQ(fault_code(stalled), xr::call_timeout) << fault_text(stalled);
  const json::value nan = g.python_post(python_call("kinds.not_a_number", "()"));
  EXPECT_EQ(fault_code(nan), xr::internal_error);
  EXPECT_NE(fault_text(nan).find("NaN"), std::string::npos) << fault_text(nan);
  const json::value crashed = g.python_post(python_call("kinds.crash", "()"));
  EXPECT_EQ(fault_code(crashed), xr::internal_error);
  EXPECT_NE(fault_text(crashed).find("the disk is on fire"), std::string::npos) << fault_text(crashed);
  EXPECT_EQ(g.handled_count(), 3);
}

TEST(xmlrpc_gateway, a_body_that_is_not_xml_by_its_content_type_is_refused_with_http_415) {
  gateway_fixture g;
  gw::http_reply r = g.post(python_call("kinds.add", "(1, 2)"), "application/json");
  EXPECT_EQ(r.status, 415U);
  EXPECT_NE(r.body.find("application/json"), std::string::npos);
  EXPECT_EQ(g.post(python_call("kinds.add", "(1, 2)"), "text/xml; charset=utf-8").status, 200U);
  EXPECT_EQ(g.post(python_call("kinds.add", "(1, 2)"), "").status, 200U);
  EXPECT_EQ(g.handled_count(), 2);
}

// A test-only HTTP front for handle() until the gateway's server mounts it:
// one Asio thread, connections served one request at a time, keep-alive.
class tiny_front {
 public:
  explicit tiny_front(const gw::methods& m)
      : methods_(m), acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  tiny_front(const tiny_front&) = delete;
  tiny_front& operator=(const tiny_front&) = delete;
  ~tiny_front() {
    io_.stop();
    thread_.join();
  }
  [[nodiscard]] std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/RPC2";
  }

 private:
  struct connection : std::enable_shared_from_this<connection> {
    connection(const gw::methods& m, boost::asio::ip::tcp::socket s) : methods(m), socket(std::move(s)) {}
    void read() {
      request = {};
      boost::beast::http::async_read(socket, buffer, request,
                                     [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                                       if (!ec) self->serve();
                                     });
    }
    void serve() {
      gw::http_request r{std::string(request.target()), std::string(request[boost::beast::http::field::content_type]),
                         std::move(request.body())};
      // handle()'s done may run on a scheduler worker: back to the Asio thread to write.
      gw::xmlrpc::handle(methods, std::move(r), [self = shared_from_this()](gw::http_reply reply) {
        boost::asio::post(self->socket.get_executor(),
                          [self, reply = std::move(reply)]() mutable { self->write(std::move(reply)); });
      });
    }
    void write(gw::http_reply reply) {
      response = {};
      response.result(reply.status);
      response.set(boost::beast::http::field::content_type, reply.content_type);
      response.body() = std::move(reply.body);
      response.keep_alive(request.keep_alive() && reply.keep_alive);
      response.prepare_payload();
      boost::beast::http::async_write(socket, response,
                                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                                        if (!ec && self->response.keep_alive()) self->read();
                                      });
    }
    const gw::methods& methods;
    boost::asio::ip::tcp::socket socket;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    boost::beast::http::response<boost::beast::http::string_body> response;
  };
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      std::make_shared<connection>(methods_, std::move(s))->read();
      accept();
    });
  }
  const gw::methods& methods_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
};

TEST(xmlrpc_gateway, python_server_proxy_calls_an_actor_over_http_end_to_end) {
  gateway_fixture g;
  tiny_front front(g.m);
  const std::string calls =
      "kinds.add\t(2, 3)\n"
      "kinds.add\t({'a': 20, 'b': 22},)\n"
      "kinds.echo\t(-7, True, 's', 1.5, D('20260107T10:20:30'), B(b'\\x00\\xff'), [1], {'name': 'n', 'values': []})\n"
      "kinds.ping\t()\n"
      "kinds.rob\t()\n"
      "kinds.add\t('two', 3)\n"
      "kinds.crash\t()\n";
  troupe::test_support::command_result r =
      troupe::test_support::run_command({"python3", peer_script(), "proxy", front.url()}, calls);
  ASSERT_TRUE(r.succeeded()) << r.err;
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < r.out.size();) {
    const std::size_t end = r.out.find('\n', at);
    lines.push_back(r.out.substr(at, end - at));
    at = end == std::string::npos ? r.out.size() : end + 1;
  }
  ASSERT_EQ(lines.size(), 7U) << r.out;
  EXPECT_EQ(lines[0], R"({"result": 5})");
  EXPECT_EQ(lines[1], R"({"result": 42})");
  EXPECT_EQ(lines[2],
            R"({"result": {"b": true, "bytes": "b64:AP8=", "d": 1.5, "i": -7, "list": [1], "nested": {"name": "n", )"
            R"("values": []}, "s": "s", "when": "20260107T10:20:30"}})");  // a date goes back as its text
  EXPECT_EQ(lines[3], R"({"result": null})");
  EXPECT_EQ(json::parse(lines[4]).at("fault").at(0), xr::method_not_found);
  EXPECT_EQ(json::parse(lines[5]).at("fault").at(0), xr::invalid_params);
  EXPECT_EQ(json::parse(lines[6]).at("fault").at(0), xr::internal_error);
  EXPECT_NE(lines[6].find("the disk is on fire"), std::string::npos) << lines[6];
  EXPECT_EQ(g.handled_count(), 5);  // add, add, echo, ping, crash
}

TEST(xmlrpc_codec, a_call_and_a_response_written_here_read_back_here) {
  const std::variant<std::string, xr::fault> call =
      xr::encode_call("bank.deposit", json::parse(R"(["alice", 250, 4294967296, null, {"k": [true, 1.5]}])"));
  ASSERT_TRUE(std::holds_alternative<std::string>(call));
  std::variant<xr::decoded_call, xr::fault> decoded = xr::decode_call(std::get<std::string>(call));
  ASSERT_TRUE(std::holds_alternative<xr::decoded_call>(decoded));
  EXPECT_EQ(std::get<xr::decoded_call>(decoded).method, "bank.deposit");
  EXPECT_EQ(json::serialize(std::get<xr::decoded_call>(decoded).params),
            R"(["alice",250,4294967296,null,{"k":[true,1.5E0]}])");
  const xr::decoded_response ok = xr::decode_response(xr::encode_response(json::parse(R"({"n": [1, "two"]})")));
  ASSERT_TRUE(std::holds_alternative<json::value>(ok.outcome));
  EXPECT_EQ(json::serialize(std::get<json::value>(ok.outcome)), R"({"n":[1,"two"]})");
  const xr::decoded_response f = xr::decode_response(xr::encode_fault({xr::method_not_found, "no such method"}));
  ASSERT_TRUE(std::holds_alternative<xr::fault>(f.outcome));
  EXPECT_TRUE(f.is_remote_fault);
  EXPECT_EQ(std::get<xr::fault>(f.outcome).code, xr::method_not_found);
  EXPECT_EQ(std::get<xr::fault>(f.outcome).message, "no such method");
  // A fault's text that XML cannot carry keeps what it can.
  const xr::decoded_response odd = xr::decode_response(xr::encode_fault({xr::internal_error, "bad \xff\x01 byte"}));
  ASSERT_TRUE(std::holds_alternative<xr::fault>(odd.outcome));
  EXPECT_EQ(std::get<xr::fault>(odd.outcome).message, "bad ?? byte");
  const xr::decoded_response broken = xr::decode_response("<methodResponse>");
  ASSERT_TRUE(std::holds_alternative<xr::fault>(broken.outcome));
  EXPECT_FALSE(broken.is_remote_fault);
  EXPECT_EQ(std::get<xr::fault>(broken.outcome).code, xr::parse_error);
}

}  // namespace
