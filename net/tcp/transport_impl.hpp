// tcp_transport::impl: the TCP transport's shared state. Owns: the io_context
// and its threads, the listener, TLS context, cookie, own nonces and re-dial table. May use: tcp_stream, wire/, os/.
//
// Private to tcp/: the transport (tcp_transport.cpp), its connections
// (tcp_connection.cpp) and the re-dialer (redial.cpp) share it.
//
// Thread safety: the fields under `mutex` as marked; the rest are set before
// the I/O threads start and read-only after.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "connection/connection.hpp"
#include "os/os.hpp"
#include "tcp/tcp_stream.hpp"
#include "tcp/tcp_transport.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/net/node.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

class node_core;
class tcp_connection;

struct tcp_transport::impl {
  explicit impl(node_core& n);

  node_core& node;
  const node_config& config;
  std::string cookie;
  std::unique_ptr<ssl::context> tls;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::string endpoint;

  mutable troupe::mutex mutex;  // the fields below
  std::condition_variable_any changed;
  bool stopping TROUPE_GUARDED_BY(mutex) = false;
  std::size_t pending_handshakes TROUPE_GUARDED_BY(mutex) = 0;
  std::size_t active_dials TROUPE_GUARDED_BY(mutex) = 0;
  std::vector<std::weak_ptr<tcp_connection>> connections TROUPE_GUARDED_BY(mutex);
  struct redial {
    std::string endpoint;
    int attempts = 0;
    time_limit since;
    time_limit next;
    std::string last_error;
  };
  std::map<std::string, redial> redials TROUPE_GUARDED_BY(mutex);
  // Nonces this node made for its recent handshakes (the last 4096, whether
  // still running or not): a challenge carrying one of them is a reflection
  // of our own (see docs/security.md). Kept after a handshake ends, so the
  // check does not depend on which of two reflected handshakes gets there first.
  std::set<nonce> own_nonces TROUPE_GUARDED_BY(mutex);
  std::deque<nonce> own_order TROUPE_GUARDED_BY(mutex);
  nonce fresh_own_nonce() {
    const nonce n = fresh_nonce();
    troupe::mutex_lock lock(mutex);
    own_nonces.insert(n);
    own_order.push_back(n);
    if (own_order.size() > 4096) {
      own_nonces.erase(own_order.front());
      own_order.pop_front();
    }
    return n;
  }
  bool is_own(const nonce& n) const {
    troupe::mutex_lock lock(mutex);
    return own_nonces.count(n) != 0;
  }
  std::thread redialer;
  std::minstd_rand jitter_random{static_cast<std::minstd_rand::result_type>(random_u64())};

  void accept_next();
  void handshake_accepted(tcp::socket socket) noexcept;
  expected<std::shared_ptr<connection>> dial(const std::string& endpoint, const std::string& expected_name,
                                             time_limit until);
  std::unique_ptr<tcp_stream> wrap(tcp::socket socket);
  std::shared_ptr<connection> make_connection(std::unique_ptr<tcp_stream> stream, std::vector<std::byte> leftover,
                                              hello_info hello);
  hello_info my_hello() const;
  void redial_loop() noexcept;
  std::chrono::milliseconds backoff(int attempts);
};

}  // namespace troupe::detail
