// tcp_transport: the listener, dialing and accepting with the handshake, and
// stopping (see tcp_transport.hpp). Re-dialing is in redial.cpp.
#include "tcp/tcp_transport.hpp"

#include <cstring>

#include "node/node_core.hpp"
#include "tcp/handshake_io.hpp"
#include "tcp/tcp_connection.hpp"
#include "tcp/transport_impl.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

namespace {

// Handshake frames are small (a nonce; a hello with its schema table).
constexpr std::size_t max_handshake_frame = std::size_t{4} << 20;

}  // namespace

tcp_transport::impl::impl(node_core& n) : node(n), config(n.config()) {}

tcp_transport::tcp_transport(node_core& node) : impl_(std::make_unique<impl>(node)) {
  impl& s = *impl_;
  const node_config& cfg = s.config;
  if (!cfg.cookie.empty()) {
    if (cfg.cookie.size() < 16)
      throw troupe_error(error(errc::connection_lost, "the cookie must have at least 16 characters"));
    s.cookie = cfg.cookie;
  } else {
    auto cookie = load_cookie(cfg.cookie_file.empty() ? default_cookie_path() : cfg.cookie_file,
                              /*create=*/cfg.cookie_file.empty());
    if (!cookie) throw troupe_error(cookie.error());
    s.cookie = std::move(*cookie);
  }
  if (cfg.tls.enabled) {
    try {
      s.tls = std::make_unique<ssl::context>(ssl::context::tls);
      s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
      s.tls->use_certificate_chain_file(cfg.tls.certificate_file);
      s.tls->use_private_key_file(cfg.tls.private_key_file, ssl::context::pem);
      s.tls->load_verify_file(cfg.tls.ca_file);
      s.tls->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    } catch (const std::exception& e) {
      throw troupe_error(
          error(errc::connection_lost, std::string("TLS set-up failed (certificate, key or CA file): ") + e.what()));
    }
  }
  if (!cfg.listen.empty()) {
    auto where = parse_endpoint(cfg.listen, /*allow_any_port=*/true);
    if (!where) throw troupe_error(where.error());
    try {
      const auto address = asio::ip::make_address(where->host);
      tcp::endpoint local(address, where->port);
      s.acceptor = std::make_unique<tcp::acceptor>(s.io);
      s.acceptor->open(local.protocol());
      s.acceptor->set_option(tcp::acceptor::reuse_address(true));
      s.acceptor->bind(local);
      s.acceptor->listen(static_cast<int>(std::max<std::size_t>(cfg.max_pending_connections, 16)));
      const auto bound = s.acceptor->local_endpoint();
      std::string host = where->host;
      if (address.is_unspecified()) {
        char name[256] = {};
        host = ::gethostname(name, sizeof name - 1) == 0 ? name : "localhost";
      }
      s.endpoint = cfg.advertise.empty() ? format_endpoint(host, bound.port()) : cfg.advertise;
    } catch (const std::exception& e) {
      throw troupe_error(error(errc::name_in_use, "cannot listen on " + cfg.listen + ": " + e.what()));
    }
  }
  s.work.emplace(s.io.get_executor());
  for (std::size_t i = 0; i < std::max<std::size_t>(cfg.io_threads, 1); ++i) {
    s.threads.emplace_back([&s] {
      // Records written from here (heartbeats, replies to lookups) never wait.
      forbid_blocking_sends_on_this_thread();
      s.io.run();
    });
  }
  s.redialer = std::thread([&s] { s.redial_loop(); });
  if (s.acceptor) asio::post(s.io, [&s] { s.accept_next(); });
}

tcp_transport::~tcp_transport() { stop(); }

std::string tcp_transport::endpoint() const { return impl_->endpoint; }

void tcp_transport::stop() noexcept {
  impl& s = *impl_;
  {
    troupe::mutex_lock lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;  // from here no connection is made (make_connection) and no dial starts
    s.changed.notify_all();
  }
  if (s.acceptor) {
    try {
      asio::post(s.io, [&s] {
        boost::system::error_code ignored;
        s.acceptor->close(ignored);
      });
    } catch (...) {  // out of memory: the acceptor ends with the I/O threads below
    }
  }
  if (s.redialer.joinable()) s.redialer.join();
  {
    // Handshakes and dials in progress end by their deadlines (they need the I/O threads).
    troupe::mutex_lock lock(s.mutex);
    s.changed.wait(lock, [&]() TROUPE_REQUIRES(s.mutex) { return s.pending_handshakes == 0 && s.active_dials == 0; });
  }
  try {
    std::vector<std::shared_ptr<tcp_connection>> connections;
    {
      troupe::mutex_lock lock(s.mutex);
      for (auto& w : s.connections) {
        if (auto c = w.lock()) connections.push_back(std::move(c));
      }
    }
    const std::string why = "node '" + s.node.name() + "' is shutting down";
    for (auto& c : connections) c->say_goodbye(why);
    for (auto& c : connections) c->join();
  } catch (...) {
    // Out of memory: no goodbyes. Stopping the I/O threads below still ends
    // every connection; their peers see them lost and re-dial in vain.
  }
  s.work.reset();
  s.io.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
}

hello_info tcp_transport::impl::my_hello() const {
  hello_info h;
  h.name = node.name();
  h.incarnation = node.incarnation();
  h.anchor_id = node.anchor_id();
  h.host = node.host();
  h.endpoint = endpoint;
  return h;
}

std::unique_ptr<tcp_stream> tcp_transport::impl::wrap(tcp::socket socket) {
  auto stream = std::make_unique<tcp_stream>(std::move(socket));
  if (tls) stream->tls = std::make_unique<ssl::stream<tcp::socket&>>(stream->plain, *tls);
  return stream;
}

std::shared_ptr<connection> tcp_transport::impl::make_connection(std::unique_ptr<tcp_stream> stream,
                                                                 std::vector<std::byte> leftover, hello_info hello) {
  auto peer = std::make_shared<peer_info>();
  peer->name = hello.name;
  peer->incarnation = hello.incarnation;
  peer->anchor_id = hello.anchor_id;
  peer->host = hello.host;
  peer->endpoint = hello.endpoint;
  const std::string remote = stream->remote();
  auto c = std::make_shared<tcp_connection>(node, *this, std::move(stream), std::move(leftover), std::move(peer),
                                            std::move(hello.schema));
  c->remote_ = remote;
  {
    troupe::mutex_lock lock(mutex);
    // stop() has collected the connections to close: a late one would outlive the I/O threads.
    if (stopping) return nullptr;
    std::erase_if(connections, [](const std::weak_ptr<tcp_connection>& w) { return w.expired(); });
    connections.push_back(c);
    redials.erase(hello.name);
  }
  return node.register_connection(c);
}

void tcp_transport::impl::accept_next() {
  acceptor->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec) {
      bool admitted = false;
      {
        troupe::mutex_lock lock(mutex);
        if (!stopping && pending_handshakes < config.max_pending_connections) {
          ++pending_handshakes;
          admitted = true;
        }
      }
      if (!admitted) {
        boost::system::error_code e2;
        const auto from = socket.remote_endpoint(e2);
        node.log("refused a connection from " + (e2 ? std::string("?") : from.address().to_string()) +
                 ": too many handshakes pending (max_pending_connections)");
        socket.close(e2);
      } else {
        try {
          std::thread([this, s = std::move(socket)]() mutable {
            handshake_accepted(std::move(s));
            troupe::mutex_lock lock(mutex);
            --pending_handshakes;
            changed.notify_all();
          }).detach();  // stop() waits for pending_handshakes to reach 0
        } catch (...) {
          troupe::mutex_lock lock(mutex);
          --pending_handshakes;
        }
      }
    }
    accept_next();
  });
}

void tcp_transport::impl::handshake_accepted(tcp::socket socket) noexcept {
  try {
    auto stream = wrap(std::move(socket));
    const std::string from = stream->remote();
    const time_limit until = clock_type::now() + config.connect_timeout;
    handshake_io io_steps(io, *stream, until);
    auto refuse = [&](const std::string& log_text, const std::string& told) {
      node.log("refused a connection from " + from + ": " + log_text);
      (void)io_steps.send(static_cast<std::uint32_t>(tcp_kind::refusal),
                          {reinterpret_cast<const std::byte*>(told.data()), told.size()});
    };
    if (stream->tls) {
      if (auto ok = io_steps.tls_handshake(ssl::stream_base::server); !ok) {
        node.log("refused a connection from " + from + ": " + ok.error().text());
        return;
      }
    }
    const nonce mine = fresh_own_nonce();
    if (auto sent = io_steps.send(static_cast<std::uint32_t>(tcp_kind::challenge), encode_challenge(mine)); !sent) {
      return;
    }
    auto challenge = io_steps.receive(64);
    if (!challenge) return refuse("no challenge: " + challenge.error().text(), "no challenge");
    if (challenge->kind != static_cast<std::uint32_t>(tcp_kind::challenge))
      return refuse("no challenge", "no challenge");
    auto theirs = parse_challenge(challenge->body);
    if (!theirs) return refuse(theirs.error().text(), theirs.error().text());
    if (is_own(*theirs))
      return refuse("a reflected challenge (one of this node's own nonces)", "authentication failed");
    auto proof = io_steps.receive(max_handshake_frame);
    if (!proof) return refuse("no proof: " + proof.error().text(), "no proof");
    if (proof->kind != static_cast<std::uint32_t>(tcp_kind::proof) || proof->body.size() < 32) {
      return refuse("no proof", "no proof");
    }
    const auto their_hello = std::span<const std::byte>(proof->body).subspan(32);
    const auth_mac expected_mac = compute_mac(cookie, dialer_role, *theirs, mine, their_hello);
    if (!macs_equal(expected_mac, std::span(proof->body).first(32))) {
      // The peer learns nothing but the refusal; it never reaches an actor.
      return refuse("authentication failed (wrong cookie)", "authentication failed");
    }
    auto hello = parse_hello(their_hello);
    if (!hello) return refuse(hello.error().text(), hello.error().text());
    if (hello->name == node.name()) return refuse("a peer with this node's own name", "a node named like this one");
    if (auto clash = node.admit_connection(hello->name, hello->incarnation, hello->endpoint))
      return refuse(*clash, *clash);
    const std::vector<std::byte> my_hello_bytes = encode_hello(my_hello(), node.schema_table());
    std::vector<std::byte> transcript(their_hello.begin(), their_hello.end());
    transcript.insert(transcript.end(), my_hello_bytes.begin(), my_hello_bytes.end());
    const auth_mac my_mac = compute_mac(cookie, acceptor_role, *theirs, mine, transcript);
    if (auto sent = io_steps.send(static_cast<std::uint32_t>(tcp_kind::welcome), my_mac, my_hello_bytes); !sent) {
      return;
    }
    (void)make_connection(std::move(stream), io_steps.take_leftover(), std::move(*hello));  // null if stopping
  } catch (const std::exception& e) {
    node.log(std::string("accepting a TCP connection failed: ") + e.what());
  }
}

expected<std::shared_ptr<connection>> tcp_transport::impl::dial(const std::string& where,
                                                                const std::string& expected_name, time_limit until) {
  auto target = parse_endpoint(where);
  if (!target) return target.error();
  {
    troupe::mutex_lock lock(mutex);
    if (stopping) return error(errc::system_stopped, "the node is shutting down");
    ++active_dials;
  }
  struct dial_done {
    impl& s;
    ~dial_done() {
      troupe::mutex_lock lock(s.mutex);
      --s.active_dials;
      s.changed.notify_all();
    }
  } done_guard{*this};
  tcp::resolver::results_type endpoints;
  try {
    tcp::resolver resolver(io);
    endpoints = resolver.resolve(target->host, std::to_string(target->port));
  } catch (const std::exception& e) {
    return error(errc::no_such_node, "cannot resolve " + where + ": " + e.what());
  }
  auto stream = wrap(tcp::socket(io));
  handshake_io io_steps(io, *stream, until);
  auto unreachable = [&](const error& e) {
    // A TLS alert (our certificate refused) is a refusal, not an absent node.
    const bool tls_refusal = e.text().find("TLS: ") != std::string::npos;
    return error(e.code() == errc::timeout ? errc::timeout
                 : tls_refusal             ? errc::connection_lost
                                           : errc::no_such_node,
                 "no node reachable at " + where + " (" + e.text() + ")");
  };
  if (auto ok = io_steps.connect(endpoints); !ok) return unreachable(ok.error());
  if (stream->tls) {
    if (auto ok = io_steps.tls_handshake(ssl::stream_base::client); !ok) {
      return error(errc::connection_lost, "TLS with " + where + " failed: " + ok.error().text());
    }
  }
  const nonce mine = fresh_own_nonce();
  if (auto ok = io_steps.send(static_cast<std::uint32_t>(tcp_kind::challenge), encode_challenge(mine)); !ok) {
    return unreachable(ok.error());
  }
  auto challenge = io_steps.receive(64);
  if (!challenge) return unreachable(challenge.error());
  if (challenge->kind == static_cast<std::uint32_t>(tcp_kind::refusal)) {
    return error(errc::connection_lost, where + " refused the connection: " +
                                            std::string(reinterpret_cast<const char*>(challenge->body.data()),
                                                        std::min<std::size_t>(challenge->body.size(), 512)));
  }
  if (challenge->kind != static_cast<std::uint32_t>(tcp_kind::challenge)) {
    return error(errc::malformed_message, where + " is not a troupe node (no challenge)");
  }
  auto theirs = parse_challenge(challenge->body);
  if (!theirs) return error(theirs.error().code(), where + ": " + theirs.error().text());
  if (is_own(*theirs)) {
    node.log("refused the connection to " + where + ": it reflected one of this node's own challenges");
    return error(errc::connection_lost, where + " reflected this node's own challenge (an attack?)");
  }
  const std::vector<std::byte> my_hello_bytes = encode_hello(my_hello(), node.schema_table());
  const auth_mac my_mac = compute_mac(cookie, dialer_role, mine, *theirs, my_hello_bytes);
  if (auto ok = io_steps.send(static_cast<std::uint32_t>(tcp_kind::proof), my_mac, my_hello_bytes); !ok) {
    return unreachable(ok.error());
  }
  auto answer = io_steps.receive(max_handshake_frame);
  if (!answer) return error(errc::connection_lost, "no welcome from " + where + ": " + answer.error().text());
  if (answer->kind == static_cast<std::uint32_t>(tcp_kind::refusal)) {
    std::string text(reinterpret_cast<const char*>(answer->body.data()),
                     std::min<std::size_t>(answer->body.size(), 512));
    if (text.starts_with("already connected") || text.starts_with("simultaneous dial")) {
      // The other direction's connection is (about to be) the one: use it.
      auto c = expected_name.empty() ? node.await_endpoint(where, until) : node.await_connection(expected_name, until);
      if (c) return c;
    }
    return error(errc::connection_lost, where + " refused the connection: " + text);
  }
  if (answer->kind != static_cast<std::uint32_t>(tcp_kind::welcome) || answer->body.size() < 32) {
    return error(errc::malformed_message, where + " answered the proof with something else than a welcome");
  }
  const auto their_hello = std::span<const std::byte>(answer->body).subspan(32);
  std::vector<std::byte> transcript = my_hello_bytes;
  transcript.insert(transcript.end(), their_hello.begin(), their_hello.end());
  const auth_mac their_mac = compute_mac(cookie, acceptor_role, mine, *theirs, transcript);
  if (!macs_equal(their_mac, std::span(answer->body).first(32))) {
    node.log("refused the connection to " + where + ": it failed to prove the cookie");
    return error(errc::connection_lost, where + " failed authentication (a different cookie)");
  }
  auto hello = parse_hello(their_hello);
  if (!hello) return error(hello.error().code(), where + ": " + hello.error().text());
  if (!expected_name.empty() && hello->name != expected_name) {
    return error(errc::no_such_node, where + " is node '" + hello->name + "', not '" + expected_name + "'");
  }
  if (hello->name == node.name()) return error(errc::no_such_node, where + " is this node itself");
  auto c = make_connection(std::move(stream), io_steps.take_leftover(), std::move(*hello));
  if (!c) return error(errc::system_stopped, "the node is shutting down");
  return c;
}

expected<std::shared_ptr<connection>> tcp_transport::dial(const std::string& endpoint, const std::string& expected_name,
                                                          time_limit until) {
  try {
    return impl_->dial(endpoint, expected_name, until);
  } catch (const troupe_error& e) {
    return e.error();  // no randomness for a nonce, say
  } catch (const std::exception& e) {
    return error(errc::connection_lost, "dialing " + endpoint + " failed: " + e.what());
  }
}

}  // namespace troupe::detail
