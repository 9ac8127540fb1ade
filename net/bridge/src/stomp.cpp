// The STOMP session behind stomp_source and the STOMP sink (see stomp.hpp).
// Everything that touches the connection runs on the session's one thread
// (its io_context); the public calls post there. Each connection attempt has
// an epoch: a callback from an earlier connection finds another epoch and
// does nothing, and tokens (ACK ids) of an earlier connection are stale.
#include "troupe/bridge/stomp.hpp"

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace troupe::bridge::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

namespace {
// Sends waiting for a connection, at most; one more fails at once.
constexpr std::size_t max_unsent = 10'000;

// "cx,cy" of a heart-beat header, in ms; {0, 0} if absent or malformed.
std::pair<std::uint64_t, std::uint64_t> beats_of(std::optional<std::string_view> header) {
  if (!header) return {0, 0};
  const std::size_t comma = header->find(',');
  if (comma == std::string_view::npos) return {0, 0};
  std::uint64_t x = 0;
  std::uint64_t y = 0;
  const std::string_view a = header->substr(0, comma);
  const std::string_view b = header->substr(comma + 1);
  if (std::from_chars(a.data(), a.data() + a.size(), x).ec != std::errc() ||
      std::from_chars(b.data(), b.data() + b.size(), y).ec != std::errc()) {
    return {0, 0};
  }
  return {x, y};
}
}  // namespace

struct stomp_session::impl {
  impl(stomp::endpoint e, std::optional<subscription> s)
      : endpoint(std::move(e)),
        sub(std::move(s)),
        decoder(endpoint.frame_limits),
        backoff(endpoint.reconnect_backoff) {}

  struct unsent_send {
    std::string destination;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::function<void(expected<void>)> done;
  };
  enum class phase { disconnected, connecting, connected, closed };

  stomp::endpoint endpoint;
  std::optional<subscription> sub;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  tcp::socket socket{io};
  tcp::resolver resolver{io};
  asio::steady_timer retry{io};
  asio::steady_timer deadline{io};  // the connect's, then the heart-beats' check
  asio::steady_timer beat{io};      // our heart-beats
  std::thread thread;

  // The session's thread only, from here on.
  stomp::decoder decoder;
  std::array<char, 64 << 10> read_buffer{};
  std::deque<std::string> out;
  bool writing = false;
  phase state = phase::disconnected;
  std::uint64_t epoch = 0;
  bool resumed = false;
  bool subscribed = false;
  std::uint64_t next_token = 1;
  std::unordered_map<std::uint64_t, std::pair<std::uint64_t, std::string>> acks;  // token -> epoch, ack id
  std::uint64_t next_receipt = 1;
  std::unordered_map<std::string, std::function<void(expected<void>)>> receipts;
  std::deque<unsent_send> unsent;
  std::chrono::nanoseconds backoff;
  std::chrono::milliseconds beat_out{0};  // we send at least this often
  std::chrono::milliseconds beat_in{0};   // the broker does
  clock::time_point last_read{};
  clock::time_point last_write{};

  // Read by stats() and wait_connected() from any thread.
  mutable std::mutex mutex;
  std::condition_variable changed;
  link_stats tally;  // guarded by mutex, but for settles_sent:
  // ACKs written, counted on the session's thread once per message (relaxed:
  // a count on its own, read only by stats()); kept out of `mutex` and
  // `changed`, which are for connection state that waiters need.
  std::atomic<std::uint64_t> acks_written{0};

  void note(const std::function<void(link_stats&)>& change) {
    {
      std::lock_guard lock(mutex);
      change(tally);
    }
    changed.notify_all();
  }

  // --- connecting --------------------------------------------------------------
  void connect() {
    if (state == phase::closed) return;
    state = phase::connecting;
    const std::uint64_t e = ++epoch;
    decoder = stomp::decoder(endpoint.frame_limits);
    deadline.expires_after(endpoint.connect_timeout);
    deadline.async_wait([this, e](boost::system::error_code ec) {
      if (!ec && e == epoch && state == phase::connecting) lost("no CONNECTED frame within the connect timeout");
    });
    resolver.async_resolve(
        endpoint.host, endpoint.port,
        [this, e](boost::system::error_code ec, const tcp::resolver::results_type& found) {
          if (e != epoch || state != phase::connecting) return;
          if (ec) return lost("cannot resolve " + endpoint.host + ": " + ec.message());
          asio::async_connect(socket, found, [this, e](boost::system::error_code ec2, const tcp::endpoint&) {
            if (e != epoch || state != phase::connecting) return;
            if (ec2) return lost("cannot connect to " + endpoint.host + ":" + endpoint.port + ": " + ec2.message());
            stomp::frame f{"CONNECT", {{"accept-version", "1.2"}, {"host", endpoint.virtual_host}}, {}};
            const auto ms = std::to_string(endpoint.heart_beat.count());
            f.headers.emplace_back("heart-beat", ms + "," + ms);
            if (!endpoint.login.empty()) f.headers.emplace_back("login", endpoint.login);
            if (!endpoint.passcode.empty()) f.headers.emplace_back("passcode", endpoint.passcode);
            write(stomp::encode(f));
            read(e);
          });
        });
  }

  // The connection is gone (or never came): everything sent on it that waits
  // for an answer fails; try again after the backoff.
  void lost(const std::string& why) {
    if (state == phase::closed) return;
    ++epoch;  // callbacks of this connection are now stale
    state = phase::disconnected;
    boost::system::error_code ignored;
    socket.close(ignored);
    deadline.cancel();
    beat.cancel();
    out.clear();
    writing = false;
    subscribed = false;
    const std::size_t dropped_acks = acks.size();
    acks.clear();
    fail_receipts(error(errc::connection_lost, "STOMP: " + why));
    note([&](link_stats& s) {
      if (s.connected) ++s.connection_losses;
      s.connected = false;
      s.last_error = why;
      (void)dropped_acks;
    });
    retry.expires_after(backoff);
    backoff = std::min(backoff * 2, endpoint.max_reconnect_backoff);
    retry.async_wait([this](boost::system::error_code ec) {
      if (!ec && state == phase::disconnected) connect();
    });
  }

  void fail_receipts(const error& why) {
    auto waiting = std::move(receipts);
    receipts.clear();
    for (auto& [id, done] : waiting) done(why);
  }

  // --- reading -------------------------------------------------------------------
  void read(std::uint64_t e) {
    socket.async_read_some(asio::buffer(read_buffer), [this, e](boost::system::error_code ec, std::size_t n) {
      if (e != epoch) return;
      if (ec) return lost(ec == asio::error::eof ? "the broker closed the connection" : ec.message());
      last_read = clock::now();
      decoder.feed(std::string_view(read_buffer.data(), n));
      while (std::optional<stomp::frame> f = decoder.next()) {
        handle(std::move(*f));
        if (e != epoch) return;  // the frame ended the connection
      }
      if (decoder.failed()) return lost("a bad frame from the broker: " + decoder.error());
      read(e);
    });
  }

  void handle(stomp::frame f) {
    if (f.command == "CONNECTED") {
      if (state != phase::connecting) return lost("CONNECTED twice");
      on_connected(f);
    } else if (state != phase::connected) {
      lost("a " + f.command + " frame before CONNECTED");
    } else if (f.command == "MESSAGE") {
      on_message(std::move(f));
    } else if (f.command == "RECEIPT") {
      const std::optional<std::string_view> id = f.header("receipt-id");
      if (!id) return;
      const auto found = receipts.find(std::string(*id));
      if (found == receipts.end()) return;
      auto done = std::move(found->second);
      receipts.erase(found);
      done(expected<void>{});
    } else if (f.command == "ERROR") {
      const std::optional<std::string_view> message = f.header("message");
      lost("ERROR from the broker: " + std::string(message.value_or("")) +
           (f.body.empty() ? "" : " (" + f.body.substr(0, 200) + ")"));
    } else {
      lost("an unexpected " + f.command + " frame from the broker");
    }
  }

  void on_connected(const stomp::frame& f) {
    state = phase::connected;
    backoff = endpoint.reconnect_backoff;
    // Heart-beats (spec: "Heart-beating"): each side's interval is the larger
    // of what one offers and the other wants, or none if either says 0.
    const auto [sx, sy] = beats_of(f.header("heart-beat"));
    const auto ours = static_cast<std::uint64_t>(endpoint.heart_beat.count());
    beat_out = std::chrono::milliseconds(ours == 0 || sy == 0 ? 0 : std::max(ours, sy));
    beat_in = std::chrono::milliseconds(ours == 0 || sx == 0 ? 0 : std::max(ours, sx));
    note([](link_stats& s) {
      s.connected = true;
      ++s.connects;
    });
    if (sub && resumed) subscribe();
    while (!unsent.empty()) {
      unsent_send u = std::move(unsent.front());
      unsent.pop_front();
      send_now(std::move(u));
    }
    watch(epoch);
    if (beat_out.count() > 0) heart_beat(epoch);
  }

  // The broker's heart-beats: nothing read for three intervals is a lost connection.
  void watch(std::uint64_t e) {
    if (beat_in.count() == 0) {
      deadline.cancel();
      return;
    }
    deadline.expires_after(beat_in);
    deadline.async_wait([this, e](boost::system::error_code ec) {
      if (ec || e != epoch) return;
      if (clock::now() - last_read > 3 * beat_in) return lost("no heart-beat from the broker for 3 intervals");
      watch(e);
    });
  }

  void heart_beat(std::uint64_t e) {
    beat.expires_after(beat_out);
    beat.async_wait([this, e](boost::system::error_code ec) {
      if (ec || e != epoch) return;
      if (out.empty() && clock::now() - last_write >= beat_out / 2) write(std::string(stomp::heart_beat));
      heart_beat(e);
    });
  }

  void subscribe() {
    stomp::frame f{"SUBSCRIBE",
                   {{"id", "0"},
                    {"destination", sub->destination},
                    {"ack", "client-individual"},
                    {"activemq.prefetchSize", std::to_string(sub->prefetch)},
                    {"prefetch-count", std::to_string(sub->prefetch)}},
                   {}};
    write(stomp::encode(f));
    subscribed = true;
  }

  void on_message(stomp::frame f) {
    if (!sub || !subscribed || !resumed) return;  // paused: left unacknowledged, redelivered later
    const std::optional<std::string_view> ack = f.header("ack");
    if (!ack) return lost("a MESSAGE without an ack header under client-individual acks");
    const std::uint64_t token = next_token++;
    acks.emplace(token, std::make_pair(epoch, std::string(*ack)));
    origin from;
    from.broker = "stomp";
    from.destination = std::string(f.header("destination").value_or(sub->destination));
    from.key = std::string(f.header("troupe-key").value_or(f.header("message-id").value_or("")));
    from.delivery_count = f.header("redelivered").value_or("") == "true" ? 2 : 1;
    for (auto& [name, value] : f.headers) {
      if (name != "ack" && name != "content-length") from.headers.emplace_back(name, value);
    }
    sub->on_message(token, std::move(f.body), std::move(from));
  }

  // --- writing -------------------------------------------------------------------
  void write(std::string bytes) {
    out.push_back(std::move(bytes));
    pump();
  }
  void pump() {
    if (writing || out.empty()) return;
    writing = true;
    const std::uint64_t e = epoch;
    asio::async_write(socket, asio::buffer(out.front()), [this, e](boost::system::error_code ec, std::size_t) {
      if (e != epoch) return;
      writing = false;
      if (ec) return lost("writing: " + ec.message());
      out.pop_front();
      last_write = clock::now();
      if (state == phase::closed && out.empty()) return finish_close();
      pump();
    });
  }

  void send_now(unsent_send u) {
    const std::string id = "s" + std::to_string(next_receipt++);
    stomp::frame f{"SEND", {{"destination", std::move(u.destination)}, {"receipt", id}}, std::move(u.body)};
    for (auto& h : u.headers) f.headers.push_back(std::move(h));
    receipts.emplace(id, std::move(u.done));
    write(stomp::encode(f));
  }

  void settle(std::uint64_t token) {
    const auto found = acks.find(token);
    if (found == acks.end() || found->second.first != epoch || state != phase::connected) {
      note([](link_stats& s) { ++s.stale_settles; });
      if (found != acks.end()) acks.erase(found);
      return;
    }
    stomp::frame f{"ACK", {{"id", found->second.second}}, {}};
    acks.erase(found);
    write(stomp::encode(f));
    acks_written.fetch_add(1, std::memory_order_relaxed);
  }

  // --- closing -------------------------------------------------------------------
  void begin_close() {
    if (state == phase::closed) return;
    const bool was_connected = state == phase::connected;
    state = phase::closed;
    retry.cancel();
    beat.cancel();
    const error why(errc::request_dropped, "STOMP: the session was closed");
    fail_receipts(why);
    for (unsent_send& u : unsent) u.done(why);
    unsent.clear();
    if (!was_connected) return finish_close();
    write(stomp::encode(stomp::frame{"DISCONNECT", {}, {}}));
    // The DISCONNECT goes out, or the deadline closes anyway.
    deadline.expires_after(std::chrono::seconds(1));
    deadline.async_wait([this](boost::system::error_code ec) {
      if (!ec) finish_close();
    });
  }
  void finish_close() {
    boost::system::error_code ignored;
    socket.close(ignored);
    deadline.cancel();
    resolver.cancel();
    note([](link_stats& s) { s.connected = false; });
    work.reset();
  }

  // Runs `f` on the session's thread and waits for it (bounded: the thread
  // runs until close() joins it, and close() is the caller's).
  void run_and_wait(const std::function<void()>& f) {
    if (std::this_thread::get_id() == thread.get_id()) {
      f();
      return;
    }
    std::promise<void> done;
    std::future<void> ran = done.get_future();
    asio::post(io, [&] {
      f();
      done.set_value();
    });
    (void)ran.wait_for(std::chrono::seconds(30));
  }
};

stomp_session::stomp_session(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

std::shared_ptr<stomp_session> stomp_session::start(stomp::endpoint endpoint, std::optional<subscription> sub) {
  auto s = std::make_shared<stomp_session>(std::make_unique<impl>(std::move(endpoint), std::move(sub)));
  impl* i = s->impl_.get();
  asio::post(i->io, [i] { i->connect(); });
  i->thread = std::thread([i] { i->io.run(); });
  return s;
}

stomp_session::~stomp_session() {
  try {
    close();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor; the thread was joined or never ran
  }
}

void stomp_session::send(std::string destination, std::string body,
                         std::vector<std::pair<std::string, std::string>> headers,
                         std::function<void(expected<void>)> done) {
  impl* i = impl_.get();
  asio::post(i->io, [i, u = impl::unsent_send{std::move(destination), std::move(body), std::move(headers),
                                              std::move(done)}]() mutable {
    if (i->state == impl::phase::closed) return u.done(error(errc::request_dropped, "STOMP: the session was closed"));
    if (i->state == impl::phase::connected) return i->send_now(std::move(u));
    if (i->unsent.size() >= max_unsent) {
      return u.done(error(errc::connection_lost, "STOMP: not connected, and " + std::to_string(max_unsent) +
                                                     " sends already wait for the connection"));
    }
    i->unsent.push_back(std::move(u));
  });
}

void stomp_session::acknowledge(std::uint64_t token) {
  impl* i = impl_.get();
  // The source holds this session (shared_ptr) while completions can come, so `i` lives.
  asio::post(i->io, [i, token] { i->settle(token); });
}

void stomp_session::dead_letter(std::uint64_t token, std::string_view bytes, const origin& from,
                                const std::string& reason) {
  impl* i = impl_.get();
  std::vector<std::pair<std::string, std::string>> headers{{"troupe-dead-letter-reason", reason},
                                                           {"troupe-original-destination", from.destination}};
  std::weak_ptr<stomp_session> self = weak_from_this();
  send(i->sub ? i->sub->dead_letter_destination : from.destination + ".DLQ", std::string(bytes), std::move(headers),
       [self, token](const expected<void>& sent) {
         // Only once the broker has the dead letter is the original acknowledged;
         // if the connection went first, the original comes again.
         if (auto s = self.lock(); s && sent) s->impl_->settle(token);
       });
}

void stomp_session::resume() {
  impl* i = impl_.get();
  asio::post(i->io, [i] {
    i->resumed = true;
    if (i->state == impl::phase::connected && i->sub && !i->subscribed) i->subscribe();
  });
}

void stomp_session::pause() {
  impl* i = impl_.get();
  if (!i->thread.joinable()) return;
  // No UNSUBSCRIBE: the broker would take back the messages whose ACKs are
  // still to come (a drain is waiting for exactly those). The session just
  // stops passing MESSAGEs on; the ones that arrive meanwhile stay
  // unacknowledged and are redelivered after the DISCONNECT. The prefetch
  // bounds how many that can be.
  i->run_and_wait([i] { i->resumed = false; });
}

void stomp_session::close() {
  impl* i = impl_.get();
  if (!i->thread.joinable()) return;
  if (std::this_thread::get_id() == i->thread.get_id()) {
    i->begin_close();  // from a completion on the session's own thread: the owner joins later
    return;
  }
  asio::post(i->io, [i] { i->begin_close(); });
  i->thread.join();
}

bool stomp_session::wait_connected(std::chrono::nanoseconds timeout) {
  std::unique_lock lock(impl_->mutex);
  return impl_->changed.wait_for(lock, timeout, [this] { return impl_->tally.connected; });
}

link_stats stomp_session::stats() const {
  std::lock_guard lock(impl_->mutex);
  link_stats s = impl_->tally;
  s.settles_sent = impl_->acks_written.load(std::memory_order_relaxed);
  return s;
}

}  // namespace troupe::bridge::detail
