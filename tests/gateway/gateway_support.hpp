// Shared by the gateway's server tests: a bank actor that counts what it
// receives and can hold a request until told to let it go, a served method
// table, and real clients — curl, Python scripts, and a raw socket for the
// misbehaving ones. Everything waits on events with deadlines.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/describe/class.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/unique_fd.hpp"
#include "troupe/gateway/methods.hpp"
#include "troupe/gateway/server.hpp"
#include "troupe/runtime/actor.hpp"
#include "troupe/runtime/reply_promise.hpp"
#include "troupe/runtime/system.hpp"

namespace gateway_test {

using namespace std::chrono_literals;
namespace gw = troupe::gateway;

// Debian's interpreter, which has python3-websockets (a pyenv one on PATH may not).
inline const std::string python = "/usr/bin/python3";

namespace bank {
struct deposit {
  std::string account;
  std::int64_t cents;
};
BOOST_DESCRIBE_STRUCT(deposit, (), (account, cents))
struct balance {
  std::string account;
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(balance, (), (account))
// Answered only once a release has come (at once after that).
struct hold {
  std::string tag;
  using reply = std::string;
};
BOOST_DESCRIBE_STRUCT(hold, (), (tag))
// Answers every held request; replies how many there were.
struct release {
  using reply = std::int64_t;
};
BOOST_DESCRIBE_STRUCT(release, (), ())
struct crash {
  using reply = bool;
};
BOOST_DESCRIBE_STRUCT(crash, (), ())
using protocol = troupe::protocol<deposit, balance, hold, release, crash>;
}  // namespace bank

// What the bank saw; read by the tests after the calls are answered.
struct counters {
  std::atomic<int> deposits{0};
  std::atomic<int> balances{0};
  std::atomic<int> holds{0};
  std::atomic<int> releases{0};
  std::atomic<int> crashes{0};
  int total() const { return deposits + balances + holds + releases + crashes; }

  // The bank has received `n` holds (false at the deadline).
  bool wait_for_holds(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex);
    return held.wait_for(lock, timeout, [&] { return holds.load() >= n; });
  }
  void note_hold() {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      ++holds;
    }
    held.notify_all();
  }

 private:
  std::mutex mutex;
  std::condition_variable held;
};

struct bank_actor : troupe::actor<bank::protocol> {
  explicit bank_actor(std::shared_ptr<counters> c) : seen_(std::move(c)) {}
  void on(const bank::deposit& d) {
    ++seen_->deposits;
    accounts_[d.account] += d.cents;
  }
  std::int64_t on(const bank::balance& b) {
    ++seen_->balances;
    return accounts_[b.account];
  }
  void on(const bank::hold& h, troupe::reply_promise<std::string> later) {
    seen_->note_hold();
    if (released_) {
      later.deliver("released " + h.tag);
      return;
    }
    held_.emplace_back(h.tag, std::move(later));
  }
  std::int64_t on(bank::release /*unused*/) {
    ++seen_->releases;
    released_ = true;
    const auto n = static_cast<std::int64_t>(held_.size());
    for (auto& [tag, later] : held_) later.deliver("released " + tag);
    held_.clear();
    return n;
  }
  bool on(bank::crash /*unused*/) {
    ++seen_->crashes;
    throw std::runtime_error("the vault is on fire");
  }

 private:
  std::shared_ptr<counters> seen_;
  std::map<std::string, std::int64_t> accounts_;
  std::vector<std::pair<std::string, troupe::reply_promise<std::string>>> held_;
  bool released_ = false;
};

// A bank served over JSON-RPC on a running server.
struct served_bank {
  explicit served_bank(gw::server_settings s = {}, gw::jsonrpc::settings limits = {})
      : table(sys, gw::settings{.ask_timeout = 10s}), srv(std::move(s)) {
    table.expose("bank", sys.spawn<bank_actor>(seen));
    srv.serve_jsonrpc(table, "/jsonrpc", limits);
    srv.start();
  }
  std::string url(const std::string& path = "/jsonrpc") const {
    return "http://127.0.0.1:" + std::to_string(srv.port()) + path;
  }
  troupe::system sys;
  std::shared_ptr<counters> seen = std::make_shared<counters>();
  gw::methods table;
  gw::server srv;
};

struct http_answer {
  int status = 0;
  std::string body;
};

// curl POSTs `body` (or whatever `extra` says) and reports the status and body.
inline http_answer curl(const std::string& url, const std::string& body, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{"curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"};
  if (extra.empty()) extra = {"-H", "Content-Type: application/json", "--data-binary", "@-"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  const troupe::test_support::command_result r = troupe::test_support::run_command(argv, body);
  EXPECT_TRUE(r.succeeded()) << "curl failed: " << r.err;
  http_answer a;
  const std::size_t cut = r.out.rfind('\n');
  if (cut == std::string::npos) return a;
  a.status = std::stoi(r.out.substr(cut + 1));
  a.body = r.out.substr(0, cut);
  return a;
}

// A TCP client that does exactly what a test says, for clients that misbehave.
class raw_client {
 public:
  explicit raw_client(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
      troupe::test_support::throw_errno("connect");
    }
  }
  void send(const std::string& bytes) {
    for (std::size_t sent = 0; sent < bytes.size();) {
      const ssize_t n = ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0) troupe::test_support::throw_errno("send");
      sent += static_cast<std::size_t>(n);
    }
  }
  // Reads until the server closes (true) or the deadline passes (false).
  bool wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      pollfd readable{fd_.get(), POLLIN, 0};
      const int ready = ::poll(&readable, 1, troupe::test_support::poll_timeout_until(deadline));
      if (ready == 0) return false;
      char chunk[4096];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n <= 0) return true;  // EOF or reset: closed
      received_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  // Reads one response with a Content-Length body (or none), within the deadline.
  std::optional<std::string> read_response(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const std::size_t head_end = received_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::size_t length = 0;
        const std::size_t field = received_.find("Content-Length: ");
        if (field != std::string::npos && field < head_end) length = std::stoul(received_.substr(field + 16));
        if (received_.size() >= head_end + 4 + length) {
          std::string response = received_.substr(0, head_end + 4 + length);
          received_.erase(0, head_end + 4 + length);
          return response;
        }
      }
      pollfd readable{fd_.get(), POLLIN, 0};
      if (::poll(&readable, 1, troupe::test_support::poll_timeout_until(deadline)) == 0) return std::nullopt;
      char chunk[4096];
      const ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n <= 0) return std::nullopt;
      received_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  troupe::test_support::unique_fd fd_;
  std::string received_;
};

// An HTTP/1.1 POST of a JSON body, as bytes.
inline std::string post(const std::string& path, const std::string& body) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace gateway_test
