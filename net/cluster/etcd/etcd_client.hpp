// etcd_client: etcd's v3 HTTP/JSON gateway. Owns: leases, keys, transactions, watches.
// May use: http/.
//
// etcd_client: a small synchronous client for etcd's v3 HTTP/JSON gateway
// (etcd >= 3.4 serves it under /v3/), enough for the etcd membership provider
// (etcd_provider.cpp): leases, put/range/delete, transactions and a streaming
// watch.
//
//   auto client = etcd_client::create("http://127.0.0.1:2379", 3000ms).value();
//   etcd_lease lease = client.grant_lease(5s).value();
//   client.put("/troupe/x/members/a", "{...}", lease.id).value();
//
// Why the gateway and not gRPC: it needs nothing beyond Boost (Beast, JSON),
// and the handful of calls troupe makes are not on a hot path. Each call is
// one short HTTP/1.1 connection (no pooling): calls are rare (every ttl/3 and
// on claims), and a fresh connection never inherits a half-read response.
//
// etcd is a server on the network, so its answers are untrusted: bodies are
// capped (max_response_bytes), every JSON field is type-checked, keys and
// values must be valid base64. A bad answer is errc::malformed_message; the
// caller keeps running. Errors, by code:
//   timeout            no complete answer within the request timeout
//   connection_lost    etcd unreachable (resolve, connect, reset), or it
//                      closed the connection mid-answer
//   protocol_mismatch  an HTTP error without etcd's JSON (not etcd's gateway)
//   request_dropped    etcd refused the request (its error message is quoted)
//   malformed_message  the answer is not what the gateway sends
//   system_stopped     the caller's stop_token asked the call to end
//
// Thread safety: an etcd_client is immutable after create(); any number of
// threads may call it at once (each call has its own connection). A call
// given a stop_token ends promptly (system_stopped) once stop is requested,
// from any thread. etcd_watch: one thread calls next(); stopping is through
// the stop_token given to open().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "http/base64.hpp"  // etcd's gateway writes bytes as strict base64
#include "troupe/runtime/error.hpp"

namespace troupe::detail {

// A response body (or one watch message) larger than this is refused: etcd's
// own default request limit is 1.5 MiB, so a larger answer means a hostile or
// broken server, not a big cluster.
inline constexpr std::size_t max_etcd_response_bytes = std::size_t{16} << 20;

struct etcd_kv {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t lease = 0;
};

struct etcd_lease {
  std::int64_t id = 0;
  std::chrono::seconds ttl{0};  // as granted: etcd may raise a TTL below its minimum
};

// A range answer: the matching keys and the store's revision it was read at.
struct etcd_range {
  std::vector<etcd_kv> kvs;
  std::int64_t revision = 0;
};

// One comparison of a transaction; all are "equal to".
struct etcd_compare {
  enum class target : std::uint8_t { create_revision, value };
  target what = target::create_revision;
  std::string key;
  std::int64_t create_revision = 0;  // target::create_revision (0: the key does not exist)
  std::string value;                 // target::value
};

// One operation of a transaction.
struct etcd_operation {
  enum class kind : std::uint8_t { put, get, erase };
  kind what = kind::get;
  std::string key;
  std::string value;       // put
  std::int64_t lease = 0;  // put: 0 for none
};

struct etcd_txn_result {
  bool succeeded = false;  // the comparisons held: the success branch ran
  // One per operation of the branch that ran: get's keys; empty for put and erase.
  std::vector<etcd_range> responses;
  std::int64_t revision = 0;
};

// The end of the key range holding every key that starts with `prefix`.
std::string etcd_prefix_end(std::string_view prefix);

class etcd_client {
 public:
  // `url`: "http://host:port" (port defaults to 2379; a trailing '/' is fine).
  // Checks the URL only; nothing is contacted.
  [[nodiscard]] static expected<etcd_client> create(const std::string& url, std::chrono::milliseconds request_timeout);

  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  [[nodiscard]] std::chrono::milliseconds request_timeout() const noexcept { return timeout_; }

  [[nodiscard]] expected<etcd_lease> grant_lease(std::chrono::seconds ttl, const std::stop_token& stop = {}) const;
  // The lease's remaining TTL after renewal; 0 if etcd no longer has the lease.
  [[nodiscard]] expected<std::chrono::seconds> keep_alive(std::int64_t lease, const std::stop_token& stop = {}) const;
  // Succeeds also if the lease is gone already.
  [[nodiscard]] expected<void> revoke_lease(std::int64_t lease, const std::stop_token& stop = {}) const;

  // The store's revision after the put. `lease` 0: none.
  [[nodiscard]] expected<std::int64_t> put(const std::string& key, const std::string& value, std::int64_t lease = 0,
                                           const std::stop_token& stop = {}) const;
  [[nodiscard]] expected<etcd_range> get(const std::string& key, const std::stop_token& stop = {}) const;
  [[nodiscard]] expected<etcd_range> get_prefix(const std::string& prefix, const std::stop_token& stop = {}) const;
  // The number of keys deleted (0 or 1).
  [[nodiscard]] expected<std::int64_t> erase(const std::string& key, const std::stop_token& stop = {}) const;
  // Forgets the history before `revision` (watches from earlier revisions end).
  [[nodiscard]] expected<void> compact(std::int64_t revision, const std::stop_token& stop = {}) const;
  [[nodiscard]] expected<etcd_txn_result> txn(const std::vector<etcd_compare>& compares,
                                              const std::vector<etcd_operation>& success,
                                              const std::vector<etcd_operation>& failure,
                                              const std::stop_token& stop = {}) const;

  // For etcd_watch and the implementation: where etcd is.
  struct endpoint {
    std::string host;  // without IPv6 brackets
    std::string port;
  };
  [[nodiscard]] const endpoint& where() const noexcept { return endpoint_; }

 private:
  etcd_client(std::string url, endpoint where, std::chrono::milliseconds timeout)
      : url_(std::move(url)), endpoint_(std::move(where)), timeout_(timeout) {}

  std::string url_;
  endpoint endpoint_;
  std::chrono::milliseconds timeout_;
};

// A watch: the changes to a key range, streamed as they happen.
struct etcd_event {
  bool deleted = false;  // DELETE (value empty); else PUT
  etcd_kv kv;
};
struct etcd_watch_batch {
  std::vector<etcd_event> events;  // may be empty (a progress report)
  std::int64_t revision = 0;
};

class etcd_watch {
 public:
  // Watches [key, range_end) from `start_revision` (the changes after a
  // range read at revision r: r + 1). Returns once etcd confirmed the watch;
  // connecting and that confirmation are bounded by the client's timeout.
  // `stop` ends the watch (and a next() in progress) from any thread.
  [[nodiscard]] static expected<std::unique_ptr<etcd_watch>> open(const etcd_client& client, const std::string& key,
                                                                  const std::string& range_end,
                                                                  std::int64_t start_revision, std::stop_token stop);
  ~etcd_watch();
  etcd_watch(const etcd_watch&) = delete;
  etcd_watch& operator=(const etcd_watch&) = delete;

  // Blocks until etcd reports changes (no deadline: a quiet range is quiet).
  // An error ends the watch: the connection broke, etcd cancelled the watch
  // (e.g. its start revision was compacted: re-read and watch again), or stop.
  [[nodiscard]] expected<etcd_watch_batch> next();

  struct state;

 private:
  explicit etcd_watch(std::unique_ptr<state> s);
  std::unique_ptr<state> state_;
};

}  // namespace troupe::detail
