// http_session: one HTTP/1.1 exchange with a server on the network, driven on
// the calling thread with deadlines. Owns: connecting, sending a request,
// reading an answer (whole or streamed). May use: Boost.Beast, Boost.Asio.
//
// Every step (resolve, connect, write, read) is bounded by the caller's
// deadline and ends at once when the caller's stop_token is triggered: the
// session runs a private io_context on the calling thread, so nobody else
// touches the socket. Answers are untrusted: the header and the body are
// capped, and a larger answer is errc::malformed_message. The etcd client
// (cluster/etcd/) uses it; so can anything else that calls an HTTP service.
//
//   http_session s(http_peer{"127.0.0.1", "2379", "etcd at http://127.0.0.1:2379", 3s, 16 << 20}, stop);
//   s.connect(deadline).value();
//   s.send("/v3/kv/range", body, deadline).value();
//   http_answer a = s.receive(deadline).value();
//
// Thread safety: one thread drives a session; its stop_token may be triggered
// from any thread.
#pragma once

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "troupe/runtime/error.hpp"

namespace troupe::detail {

// An answer's header larger than this is refused.
inline constexpr std::size_t max_http_header_bytes = std::size_t{64} << 10;

// Who the session talks to, and how its errors name it.
struct http_peer {
  std::string host;  // a name or an address, without IPv6 brackets
  std::string port;
  std::string label;                      // "etcd at http://10.0.0.1:2379": starts every error text
  std::chrono::milliseconds timeout{0};   // the caller's deadline, named in timeout errors
  std::size_t max_body_bytes = 16 << 20;  // a whole answer's body larger than this is refused
};

// An answer that arrived whole: its HTTP status and body.
struct http_answer {
  unsigned status = 0;
  std::string body;
};

class http_session {
 public:
  using clock = std::chrono::steady_clock;
  using streamed_parser = boost::beast::http::response_parser<boost::beast::http::buffer_body>;

  http_session(http_peer peer, std::stop_token stop);
  http_session(const http_session&) = delete;
  http_session& operator=(const http_session&) = delete;

  // Resolves (if the host is a name) and connects, trying each address.
  expected<void> connect(clock::time_point deadline);
  // POSTs `body` to `target`.
  expected<void> send(std::string_view target, std::string body, clock::time_point deadline,
                      std::string_view content_type = "application/json");
  // The whole answer of a plain call.
  expected<http_answer> receive(clock::time_point deadline);
  // A streamed answer (a watch): its head, then its body piece by piece.
  expected<unsigned> receive_head(streamed_parser& parser, clock::time_point deadline);
  // Appends what arrives to `out`; false once the answer has ended. No
  // deadline: waits until something arrives or stop is requested.
  expected<bool> receive_some(streamed_parser& parser, std::string& out, std::optional<clock::time_point> deadline);

 private:
  // The failure of a step, as a troupe error naming the peer and the step.
  // `reaching`: the step is resolving or connecting.
  [[nodiscard]] error failure(const std::string& step, const boost::system::error_code& ec,
                              bool reaching = false) const;

  // Starts one operation and runs the io_context on this thread until it
  // completes, the deadline passes (timed_out) or stop is requested
  // (operation_aborted). An interrupted operation is abandoned with the
  // socket closed, and the session refuses further steps: the abandoned
  // handler still refers to this frame, so the io_context must not run again.
  template <class Start>
  boost::system::error_code run(std::optional<clock::time_point> deadline, Start start) {
    if (broken_) return boost::asio::error::operation_aborted;
    bool done = false;
    boost::system::error_code result;
    start([&done, &result](boost::system::error_code e) {
      result = e;
      done = true;
    });
    while (!done) {
      const std::size_t ran = deadline ? io_.run_one_until(*deadline) : io_.run_one();
      if (ran == 0 && !done) {
        broken_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
        // Only a stop request stops the io_context while work is pending.
        return io_.stopped() ? boost::system::error_code(boost::asio::error::operation_aborted)
                             : boost::system::error_code(boost::asio::error::timed_out);
      }
    }
    return result;
  }
  template <class Start>
  boost::system::error_code run(clock::time_point deadline, Start start) {
    return run(std::optional<clock::time_point>(deadline), std::move(start));
  }

  struct stopper {
    boost::asio::io_context* io;
    // Thread-safe, and sticky: every later run_one() returns at once, so the
    // calling thread leaves whatever it is waiting for.
    void operator()() const noexcept { io->stop(); }
  };

  const http_peer peer_;
  // Declared before the objects whose pending operations refer to them, so
  // that the socket (cancelling them) goes first, then the io_context
  // (destroying them uncalled), then these.
  boost::beast::flat_buffer buffer_;
  boost::beast::http::request<boost::beast::http::string_body> request_;
  std::array<char, std::size_t{64} << 10> chunk_{};
  bool broken_ = false;
  boost::asio::io_context io_{1};
  // Keeps run_one() from returning "out of work" between steps: only stop()
  // stops the io_context, so io_.stopped() means exactly "stop requested".
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  boost::asio::ip::tcp::socket socket_{io_};
  // Last: registered once everything it touches exists, deregistered first.
  std::stop_callback<stopper> on_stop_;
};

}  // namespace troupe::detail
