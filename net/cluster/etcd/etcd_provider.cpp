// etcd_provider: members and names kept in etcd. Owns: the lease, the member and
// name keys, the watch. May use: cluster/, etcd_client.
//
// The etcd membership provider (membership.hpp has the interface, cluster.hpp
// the user's view): members and cluster-wide names kept in etcd, through its
// v3 HTTP/JSON gateway (etcd_client.hpp).
//
// Keys, under /troupe/<cluster_name>/:
//   members/<node>  {"name","incarnation","endpoint"}  attached to the node's lease
//   names/<name>    the owner, in the same form         attached to the owner's lease
// The incarnation is a decimal string: a u64 does not survive JSON's doubles.
//
// A node's lease is its liveness. The node renews it every ttl/3; when the
// node dies, or cannot reach etcd for a whole TTL, etcd deletes its member key
// and its names at once. Every other node's watch sees the member key's DELETE
// and reports the member gone; its names are free to claim. An orderly leave
// (stop()) revokes the lease, so the others see it at once, not a TTL later.
//
// Two threads per provider:
// - keepalive: renews the lease. If etcd says the lease is gone (it expired
//   during an outage), it grants a new one and registers again, re-claiming
//   this node's names; the others then see this node leave and come back.
// - watcher: lists the member prefix, reports the difference from what it
//   reported before, then follows a watch from the list's revision + 1. Any
//   end of the watch (etcd restarted or unreachable, the start revision
//   compacted) leads to a new list, which catches up on what was missed.
// Only the watcher reports member_seen / member_gone, so the core sees them in
// etcd's order. While etcd is unreachable both retry with backoff and the view
// stays as it was (the core's connections still detect dead peers); the outage and
// its end are logged once each.
//
// Records read from etcd are untrusted (anyone with etcd access can write
// there): a record with a bad node name or endpoint, or that is not the JSON
// above, is skipped with a log line.
#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

#include "cluster/etcd/etcd_client.hpp"
#include "cluster/membership.hpp"
#include "os/os.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A member record is three short fields; anything much larger is not ours.
constexpr std::size_t max_record_bytes = 4096;
// The longest global name (cluster_core checks the same).
constexpr std::size_t max_global_name_bytes = 256;
// Retry pacing while etcd is unreachable: from the first to the last.
constexpr std::chrono::milliseconds first_backoff{100};
constexpr std::chrono::milliseconds last_backoff{5000};
// A watch that ends sooner than this after it started counts as a failure
// (backoff), so that a server that drops every watch at once is not hammered.
constexpr std::chrono::seconds healthy_watch{1};

std::string record_of(const member& m) {
  json::object o;
  o["name"] = m.name;
  o["incarnation"] = std::to_string(m.incarnation);
  o["endpoint"] = m.endpoint;
  return json::serialize(o);
}

// The member in a record, or why it is not one.
expected<member> parse_record(std::string_view text) {
  const auto bad = [](const std::string& why) { return error(errc::malformed_message, why); };
  if (text.size() > max_record_bytes) return bad("a record of " + std::to_string(text.size()) + " bytes");
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 4;
  const json::value v = json::parse(text, ec, {}, options);
  if (ec || !v.is_object()) return bad("not a JSON object");
  const json::object& o = v.as_object();
  const json::value* name = o.if_contains("name");
  const json::value* incarnation = o.if_contains("incarnation");
  const json::value* endpoint = o.if_contains("endpoint");
  if (name == nullptr || !name->is_string() || incarnation == nullptr || !incarnation->is_string() ||
      endpoint == nullptr || !endpoint->is_string()) {
    return bad("not {\"name\", \"incarnation\", \"endpoint\"} strings");
  }
  member m;
  m.name = std::string(name->as_string());
  if (!valid_node_name(m.name)) return bad("an invalid node name");
  const json::string& digits = incarnation->as_string();
  const char* end = digits.data() + digits.size();
  const auto [stop, problem] = std::from_chars(digits.data(), end, m.incarnation);
  if (digits.empty() || problem != std::errc() || stop != end) return bad("an incarnation that is not a u64");
  m.endpoint = std::string(endpoint->as_string());
  if (!parse_endpoint(m.endpoint)) return bad("an endpoint that is not tcp://host:port");
  return m;
}

// A key from etcd, fit for a log line: bounded, control characters shown as '?'.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return text.size() > 200 ? out + "..." : out;
}

std::string describe(const member& m) {
  return "node '" + m.name + "' (incarnation " + std::to_string(m.incarnation) + ", " + m.endpoint + ")";
}

class etcd_provider final : public membership_provider {
 public:
  explicit etcd_provider(const cluster_config& config)
      : config_(config),
        members_prefix_("/troupe/" + config.cluster_name + "/members/"),
        names_prefix_("/troupe/" + config.cluster_name + "/names/") {}
  ~etcd_provider() override { stop(); }
  etcd_provider(const etcd_provider&) = delete;
  etcd_provider& operator=(const etcd_provider&) = delete;

  expected<void> start(const member& self, membership_events& events) override;
  void stop() noexcept override;
  expected<void> claim_name(const std::string& name) override;
  void release_name(const std::string& name) noexcept override;
  expected<member> name_owner(const std::string& name) override;

 private:
  [[nodiscard]] expected<void> register_self(const std::stop_token& stop);
  [[nodiscard]] expected<void> claim_with(const std::string& name, std::int64_t lease, const std::stop_token& stop);
  void keep_alive_loop(const std::stop_token& stop);
  void watch_loop(const std::stop_token& stop);
  [[nodiscard]] expected<void> follow(const std::stop_token& cycle, bool& watched_long);
  void reconcile(const etcd_range& listed);
  void apply(const etcd_event& event);
  [[nodiscard]] std::optional<member> read_member(const etcd_kv& kv);
  void cut_watch();
  void log(const std::string& line) noexcept;
  [[nodiscard]] std::chrono::milliseconds renew_interval() const;

  const cluster_config config_;
  const std::string members_prefix_;
  const std::string names_prefix_;
  // Set by start() before the threads exist and not changed after: read
  // without a lock by the threads and by calls after start() returned.
  std::optional<etcd_client> client_;
  member self_;
  std::string self_key_;
  std::string self_record_;
  membership_events* events_ = nullptr;

  // Serializes start() and stop(): a second stop() returns only once the
  // first has ended every thread (no events after any stop() returns).
  troupe::mutex lifecycle_mutex_;
  bool started_ TROUPE_GUARDED_BY(lifecycle_mutex_) = false;
  bool stopped_ TROUPE_GUARDED_BY(lifecycle_mutex_) = false;

  mutable troupe::mutex mutex_;
  std::condition_variable_any changed_;
  bool running_ TROUPE_GUARDED_BY(mutex_) = false;  // between start() and stop()
  std::int64_t lease_ TROUPE_GUARDED_BY(mutex_) = 0;
  std::chrono::seconds ttl_ TROUPE_GUARDED_BY(mutex_){0};              // as granted
  std::set<std::string> names_ TROUPE_GUARDED_BY(mutex_);              // the names this node holds
  bool check_lease_now_ TROUPE_GUARDED_BY(mutex_) = false;             // the watcher saw this node's key go
  std::stop_source* watch_cycle_ TROUPE_GUARDED_BY(mutex_) = nullptr;  // the watcher's current list+watch

  // The watcher's thread only: what it has reported as members, by key.
  std::map<std::string, member> known_;

  std::jthread keepalive_;
  std::jthread watcher_;
};

void etcd_provider::log(const std::string& line) noexcept {
  try {
    events_->provider_log("etcd provider: " + line);
  } catch (...) {  // a log line is not worth a terminate(); nothing else to do
  }
}

std::chrono::milliseconds etcd_provider::renew_interval() const {
  troupe::mutex_lock lock(mutex_);
  return std::max<std::chrono::milliseconds>(std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3, 100ms);
}

expected<void> etcd_provider::start(const member& self, membership_events& events) {
  troupe::mutex_lock lifecycle(lifecycle_mutex_);
  if (started_ || stopped_) return error(errc::system_stopped, "the etcd provider was started already");
  if (!valid_node_name(config_.cluster_name)) {
    return error(errc::no_such_node, "invalid cluster name '" + config_.cluster_name +
                                         "' (letters, digits, '-', '_', '.'; at most 64): it is part of etcd keys");
  }
  if (!valid_node_name(self.name)) return error(errc::no_such_node, "invalid node name '" + self.name + "'");
  if (auto endpoint = parse_endpoint(self.endpoint); !endpoint) return endpoint.error();
  if (config_.lease_ttl < 1s) {
    return error(errc::no_such_node,
                 "the etcd lease TTL must be at least 1 s (it is " + std::to_string(config_.lease_ttl.count()) + " s)");
  }
  auto client = etcd_client::create(config_.etcd, config_.request_timeout);
  if (!client) return client.error();
  client_.emplace(std::move(*client));
  self_ = self;
  self_key_ = members_prefix_ + self.name;
  self_record_ = record_of(self);
  events_ = &events;
  if (auto registered = register_self({}); !registered) {
    return error(registered.error().code(), "cannot register in etcd: " + registered.error().text());
  }
  {
    troupe::mutex_lock lock(mutex_);
    running_ = true;
  }
  started_ = true;
  keepalive_ = std::jthread([this](const std::stop_token& stop) { keep_alive_loop(stop); });
  watcher_ = std::jthread([this](const std::stop_token& stop) { watch_loop(stop); });
  return {};
}

void etcd_provider::stop() noexcept {
  troupe::mutex_lock lifecycle(lifecycle_mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  std::int64_t lease = 0;
  {
    troupe::mutex_lock lock(mutex_);
    running_ = false;
    lease = lease_;
  }
  // The stop tokens cut any request or watch in progress at once.
  keepalive_.request_stop();
  watcher_.request_stop();
  keepalive_.join();
  watcher_.join();
  // Not cancellable, but bounded by the request timeout: the others then see
  // this node leave now rather than a TTL later.
  if (auto revoked = client_->revoke_lease(lease); !revoked) {
    log("could not revoke this node's lease (" + revoked.error().text() +
        "); the others will see it leave when "
        "the lease expires");
  }
}

// Grants a lease, writes this node's member key with it and re-claims the
// names this node held under the previous lease, if any.
expected<void> etcd_provider::register_self(const std::stop_token& stop) {
  auto lease = client_->grant_lease(config_.lease_ttl, stop);
  if (!lease) return lease.error();
  if (auto put = client_->put(self_key_, self_record_, lease->id, stop); !put) {
    (void)client_->revoke_lease(lease->id, stop);  // best effort: it expires anyway
    return put.error();
  }
  std::set<std::string> names;
  {
    troupe::mutex_lock lock(mutex_);
    lease_ = lease->id;
    ttl_ = lease->ttl;
    names = names_;
  }
  for (const std::string& name : names) {
    if (auto claimed = claim_with(name, lease->id, stop); !claimed) {
      if (claimed.error().code() == errc::name_taken) {
        troupe::mutex_lock lock(mutex_);
        names_.erase(name);
      }
      log("lost the global name '" + name + "' while this node's lease was gone: " + claimed.error().text());
    }
  }
  return {};
}

void etcd_provider::keep_alive_loop(const std::stop_token& stop) {
  auto backoff = first_backoff;
  bool outage = false;
  auto next = steady::now() + renew_interval();
  for (;;) {
    std::int64_t lease = 0;
    {
      troupe::mutex_lock lock(mutex_);
      changed_.wait_until(lock, stop, next, [this]() TROUPE_REQUIRES(mutex_) { return check_lease_now_; });
      if (stop.stop_requested()) return;
      check_lease_now_ = false;
      lease = lease_;
    }
    error failure;
    const expected<std::chrono::seconds> alive = [&]() -> expected<std::chrono::seconds> {
      try {
        return client_->keep_alive(lease, stop);
      } catch (const std::exception& e) {  // out of memory, say: a failed round like any other
        return error(errc::connection_lost, std::string("renewing the lease failed: ") + e.what());
      }
    }();
    if (stop.stop_requested()) return;
    if (alive && alive->count() > 0) {
      if (outage) log("etcd at " + config_.etcd + " is reachable again");
      outage = false;
      backoff = first_backoff;
      next = steady::now() + renew_interval();
      continue;
    }
    if (alive) {
      log("this node's lease " + std::to_string(lease) +
          " is gone from etcd (it expired while etcd was out of reach?): registering again");
      const expected<void> again = [&]() -> expected<void> {
        try {
          return register_self(stop);
        } catch (const std::exception& e) {
          return error(errc::connection_lost, std::string("registering failed: ") + e.what());
        }
      }();
      if (stop.stop_requested()) return;
      if (again) {
        log("registered again, with a new lease");
        outage = false;
        backoff = first_backoff;
        next = steady::now() + renew_interval();
        continue;
      }
      failure = again.error();
    } else {
      failure = alive.error();
    }
    if (!outage) {
      log("cannot renew this node's lease, retrying: " + failure.text());
      outage = true;
      // The watch may be stuck on a dead connection (no FIN through a cut
      // cable): start it over, so that it lists again once etcd is back.
      cut_watch();
    }
    next = steady::now() + backoff;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, renew_interval());
  }
}

void etcd_provider::cut_watch() {
  troupe::mutex_lock lock(mutex_);
  if (watch_cycle_ != nullptr) watch_cycle_->request_stop();
}

void etcd_provider::watch_loop(const std::stop_token& stop) {
  auto backoff = first_backoff;
  bool outage = false;
  while (!stop.stop_requested()) {
    // One list + watch; cut by stop() or by the keepalive thread.
    std::stop_source cycle;
    {
      troupe::mutex_lock lock(mutex_);
      watch_cycle_ = &cycle;
    }
    bool watched_long = false;
    const expected<void> ended = [&]() -> expected<void> {
      const std::stop_callback forward(stop, [&cycle] { cycle.request_stop(); });
      try {
        return follow(cycle.get_token(), watched_long);
      } catch (const std::exception& e) {  // out of memory, say: list and watch again
        return error(errc::connection_lost, std::string("following the members failed: ") + e.what());
      }
    }();
    {
      troupe::mutex_lock lock(mutex_);
      watch_cycle_ = nullptr;
    }
    if (stop.stop_requested()) return;
    // Cut by the keepalive thread, which has logged the outage already.
    const bool cut = cycle.stop_requested();
    if (watched_long || cut) {
      // It worked for a while: list again at once (a compaction, an etcd restart).
      if (!cut) log("the watch of etcd ended (" + ended.error().text() + "); listing the members again");
      backoff = first_backoff;
      outage = false;
      continue;
    }
    if (!outage) log("cannot follow the members in etcd, retrying: " + ended.error().text());
    outage = true;
    troupe::mutex_lock lock(mutex_);
    changed_.wait_for(lock, stop, backoff, [] { return false; });
    backoff = std::min(backoff * 2, last_backoff);
  }
}

// Lists the members, reports the difference, then reports the watch's events
// until it ends. `watched_long`: the watch ran healthily for a while.
expected<void> etcd_provider::follow(const std::stop_token& cycle, bool& watched_long) {
  auto listed = client_->get_prefix(members_prefix_, cycle);
  if (!listed) return listed.error();
  reconcile(*listed);
  auto watch =
      etcd_watch::open(*client_, members_prefix_, etcd_prefix_end(members_prefix_), listed->revision + 1, cycle);
  if (!watch) return watch.error();
  const auto since = steady::now();
  for (;;) {
    auto batch = (*watch)->next();
    watched_long = steady::now() - since >= healthy_watch;
    if (!batch) return batch.error();
    for (const etcd_event& event : batch->events) apply(event);
  }
}

std::optional<member> etcd_provider::read_member(const etcd_kv& kv) {
  auto m = parse_record(kv.value);
  if (!m) {
    log("skipped the member record at '" + printable(kv.key) + "': " + m.error().text());
    return std::nullopt;
  }
  if (kv.key != members_prefix_ + m->name) {
    log("skipped the member record at '" + printable(kv.key) + "': it names node '" + m->name + "'");
    return std::nullopt;
  }
  return std::move(*m);
}

void etcd_provider::reconcile(const etcd_range& listed) {
  std::map<std::string, member> now;
  for (const etcd_kv& kv : listed.kvs) {
    if (kv.key == self_key_) continue;
    if (auto m = read_member(kv)) now.emplace(kv.key, std::move(*m));
  }
  for (auto it = known_.begin(); it != known_.end();) {
    if (now.contains(it->first)) {
      ++it;
      continue;
    }
    const member gone = std::move(it->second);
    it = known_.erase(it);
    events_->member_gone(gone, "its etcd lease expired or it left");
  }
  for (auto& [key, m] : now) {
    auto it = known_.find(key);
    if (it != known_.end() && it->second == m) continue;
    if (it != known_.end()) {
      const member old = std::exchange(it->second, m);
      events_->member_gone(old, "it restarted as a new incarnation");
    } else {
      known_.emplace(key, m);
    }
    events_->member_seen(m);
  }
}

void etcd_provider::apply(const etcd_event& event) {
  const std::string& key = event.kv.key;
  if (key == self_key_) {
    // This node's own registration vanished (its lease expired): the
    // keepalive thread registers again now rather than at its next renewal.
    if (event.deleted) {
      {
        troupe::mutex_lock lock(mutex_);
        check_lease_now_ = true;
      }
      changed_.notify_all();
    } else if (event.kv.value != self_record_) {
      log("another node registered under this node's name '" + self_.name + "' (a new incarnation of it?)");
    }
    return;
  }
  auto it = known_.find(key);
  std::optional<member> m;
  if (!event.deleted) m = read_member(event.kv);
  if (it != known_.end()) {
    if (m && it->second == *m) return;  // the same member again (e.g. it registered again)
    const member old = m ? std::exchange(it->second, *m) : std::move(it->second);
    if (!m) known_.erase(it);
    events_->member_gone(old, event.deleted ? "its etcd lease expired or it left"
                              : m           ? "it restarted as a new incarnation"
                                            : "its etcd record is no longer valid");
  } else if (m) {
    known_.emplace(key, *m);
  }
  if (m) events_->member_seen(*m);
}

// One claim under `lease`: create the key if absent; if present, it must be
// this node's (or an earlier incarnation's of this node, which is dead: this
// incarnation holds the node's name now).
expected<void> etcd_provider::claim_with(const std::string& name, std::int64_t lease, const std::stop_token& stop) {
  const std::string key = names_prefix_ + name;
  // A few rounds: the key may change between our look and our write.
  for (int round = 0; round < 3; ++round) {
    auto created = client_->txn({{etcd_compare::target::create_revision, key, 0, {}}},
                                {{etcd_operation::kind::put, key, self_record_, lease}},
                                {{etcd_operation::kind::get, key, {}, 0}}, stop);
    if (!created) return created.error();
    if (created->succeeded) return {};
    if (created->responses.empty() || created->responses[0].kvs.empty()) continue;  // gone meanwhile
    const etcd_kv& held = created->responses[0].kvs[0];
    auto owner = parse_record(held.value);
    if (!owner) {
      return error(errc::name_taken, "the global name '" + name + "' is held by a record this node cannot read (" +
                                         owner.error().text() + ")");
    }
    if (owner->name != self_.name) {
      return error(errc::name_taken, "the global name '" + name + "' is held by " + describe(*owner));
    }
    if (owner->incarnation == self_.incarnation && held.lease == lease) return {};
    // Ours under an older lease, or an earlier incarnation's: attach it to
    // this lease, unless it changed since we read it.
    auto moved = client_->txn({{etcd_compare::target::value, key, 0, held.value}},
                              {{etcd_operation::kind::put, key, self_record_, lease}}, {}, stop);
    if (!moved) return moved.error();
    if (moved->succeeded) return {};
  }
  return error(errc::name_taken, "the global name '" + name + "' kept changing hands in etcd; try again");
}

namespace {
// Why `name` cannot be a global name, if it cannot.
std::optional<error> check_global_name(const std::string& name) {
  if (!name.empty() && name.size() <= max_global_name_bytes && name.find('/') == std::string::npos) return {};
  // Appended piece by piece: GCC 12 reports a false -Wrestrict on "'" + std::string at -O3.
  std::string text(1, '\'');
  text += name.substr(0, 64);
  text += "' is not a valid global name";
  return error(errc::no_such_name, std::move(text));
}
}  // namespace

expected<void> etcd_provider::claim_name(const std::string& name) {
  if (auto bad = check_global_name(name)) return *bad;
  std::int64_t lease = 0;
  {
    troupe::mutex_lock lock(mutex_);
    if (!running_) return error(errc::system_stopped, "the etcd provider is not running");
    lease = lease_;
  }
  if (auto claimed = claim_with(name, lease, {}); !claimed) return claimed;
  troupe::mutex_lock lock(mutex_);
  names_.insert(name);
  return {};
}

void etcd_provider::release_name(const std::string& name) noexcept {
  try {
    {
      troupe::mutex_lock lock(mutex_);
      if (!running_) return;  // stopped: the lease and the names went with it
      names_.erase(name);
    }
    // Delete only our own record: the name may have passed to another node.
    const std::string key = names_prefix_ + name;
    auto released = client_->txn({{etcd_compare::target::value, key, 0, self_record_}},
                                 {{etcd_operation::kind::erase, key, {}, 0}}, {});
    if (!released) {
      log("could not release the global name '" + name + "' (" + released.error().text() +
          "); it goes when this node's lease does");
    }
  } catch (...) {  // out of memory: the name goes with the lease
  }
}

expected<member> etcd_provider::name_owner(const std::string& name) {
  if (auto bad = check_global_name(name)) return *bad;
  if (!client_) return error(errc::system_stopped, "the etcd provider is not running");
  auto found = client_->get(names_prefix_ + name);
  if (!found) return found.error();
  if (found->kvs.empty()) {
    return error(errc::no_such_name, "no member of the cluster holds the global name '" + name + "'");
  }
  auto owner = parse_record(found->kvs[0].value);
  if (!owner) {
    return error(errc::malformed_message,
                 "the etcd record of the global name '" + name + "' is not a member: " + owner.error().text());
  }
  return owner;
}

}  // namespace

std::unique_ptr<membership_provider> make_etcd_provider(const cluster_config& config) {
  return std::make_unique<etcd_provider>(config);
}

}  // namespace troupe::detail
