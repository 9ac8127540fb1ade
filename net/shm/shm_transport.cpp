// shm_transport: the same-host handshake (see shm_transport.hpp).
#include "shm/shm_transport.hpp"

#include <unistd.h>

#include <thread>

#include "node/node_core.hpp"
#include "shm/shm_connection.hpp"
#include "troupe/mailbox/spsc_ring.hpp"
#include "wire/wire.hpp"

namespace troupe::detail {

std::size_t shm_transport::ring_size_for(std::size_t configured) noexcept {
  std::size_t bytes = min_ring_bytes;
  while (bytes * 2 <= configured && bytes * 2 <= max_ring_bytes) bytes *= 2;
  return bytes;
}

shm_transport::shm_transport(node_core& node) : node_(node) {}

void shm_transport::listen() {
  auto dir = prepare_runtime_dir(node_.config().runtime_dir);
  if (!dir) throw troupe_error(dir.error());
  runtime_dir_ = *dir;
  socket_path_ = socket_path(runtime_dir_, node_.name());
  auto listener = listen_unix(socket_path_);
  if (!listener) throw troupe_error(listener.error());
  listener_ = std::move(*listener);
}

void shm_transport::close() noexcept {
  if (!listener_) return;
  listener_.reset();
  ::unlink(socket_path_.c_str());
}

std::vector<std::byte> shm_transport::hello() const {
  hello_info h;
  h.name = node_.name();
  h.incarnation = node_.incarnation();
  h.anchor_id = node_.anchor_id();
  h.ring_bytes = ring_size_for(node_.config().ring_bytes);
  h.host = node_.host();
  h.endpoint = node_.endpoint();
  return encode_hello(h, node_.schema_table());
}

namespace {
// The shared-memory transport's extra check of a hello.
expected<hello_info> parse_shm_hello(std::span<const std::byte> bytes) {
  auto h = parse_hello(bytes);
  if (!h) return h;
  if (h->ring_bytes < shm_transport::min_ring_bytes || h->ring_bytes > shm_transport::max_ring_bytes ||
      (h->ring_bytes & (h->ring_bytes - 1)) != 0) {
    return error(errc::malformed_message, "hello with a bad ring size " + std::to_string(h->ring_bytes));
  }
  return h;
}
}  // namespace

namespace {
expected<void> check_same_user(int socket, pid_t& pid) {
  auto cred = credentials_of(socket);
  if (!cred) return cred.error();
  if (cred->uid != ::getuid()) {
    return error(errc::connection_lost, "peer runs as uid " + std::to_string(cred->uid) + ", not this user");
  }
  pid = cred->pid;
  return {};
}
}  // namespace

expected<std::shared_ptr<connection>> shm_transport::dial(const std::string& node_name) {
  const time_limit until = std::chrono::steady_clock::now() + node_.config().connect_timeout;
  auto socket = connect_unix(socket_path(runtime_dir_, node_name));
  if (!socket)
    return error(errc::no_such_node, "no node '" + node_name + "' on this host (" + socket.error().text() + ")");
  pid_t pid = 0;
  if (auto ok = check_same_user(socket->get(), pid); !ok) return ok.error();
  const std::vector<std::byte> mine = hello();
  if (auto sent = send_frame(socket->get(), mine, until); !sent) return sent.error();
  auto theirs_bytes = receive_frame(socket->get(), until);
  if (!theirs_bytes) return theirs_bytes.error();
  auto theirs = parse_shm_hello(*theirs_bytes);
  if (!theirs) {
    const std::string_view text(reinterpret_cast<const char*>(theirs_bytes->data()), theirs_bytes->size());
    if (text.starts_with("refused: "))
      return error(errc::connection_lost, "node '" + node_name + "' " + std::string(text));
    return theirs.error();
  }
  if (theirs->name != node_name) {
    return error(errc::no_such_node, "the socket of '" + node_name + "' is held by node '" + theirs->name + "'");
  }
  // The dialer makes the shared memory: [ring dialer->acceptor][ring acceptor->dialer].
  const std::size_t ring_bytes = ring_size_for(node_.config().ring_bytes);
  const std::size_t half = spsc_ring::bytes_for(ring_bytes);
  auto memory = create_shared_memory(("troupe:" + node_.name() + "->" + node_name).c_str(), 2 * half);
  if (!memory) return memory.error();
  auto* base = static_cast<std::byte*>(memory->second.data());
  spsc_ring out = spsc_ring::create(base, half);
  spsc_ring in = spsc_ring::create(base + half, half);
  std::vector<std::byte> rings;
  {
    wire_writer w(rings);
    w.write_scalar(static_cast<std::uint64_t>(half));
  }
  if (auto sent = send_frame(socket->get(), rings, until, memory->first.get()); !sent) return sent.error();
  auto ack = receive_frame(socket->get(), until);
  if (!ack) return ack.error();
  if (ack->size() != 1 || (*ack)[0] != std::byte{1}) {
    return error(errc::connection_lost, "node '" + node_name + "' refused the connection: " +
                                            std::string(reinterpret_cast<const char*>(ack->data()), ack->size()));
  }
  auto peer = std::make_shared<peer_info>();
  peer->name = theirs->name;
  peer->incarnation = theirs->incarnation;
  peer->pid = pid;
  peer->anchor_id = theirs->anchor_id;
  peer->host = theirs->host;
  peer->endpoint = theirs->endpoint;
  return node_.register_connection(std::make_shared<shm_connection>(
      node_, std::move(*socket), std::move(memory->second), out, in, std::move(peer), std::move(theirs->schema)));
}

void shm_transport::accept_one() noexcept {
  auto socket = accept_unix(listener_.get());
  if (!socket) return;
  try {
    {
      troupe::mutex_lock lock(handshakes_mutex_);
      ++handshakes_;
    }
    std::thread([this, s = std::move(*socket)]() mutable {
      handshake(std::move(s));
      // Notifies under the lock: once wait_for_handshakes() sees 0 the node may
      // destroy this transport.
      troupe::mutex_lock lock(handshakes_mutex_);
      --handshakes_;
      handshakes_done_.notify_all();
    }).detach();  // the node's stop() waits for handshakes_ to reach 0
  } catch (...) {
    troupe::mutex_lock lock(handshakes_mutex_);
    --handshakes_;
  }
}

void shm_transport::wait_for_handshakes() noexcept {
  troupe::mutex_lock lock(handshakes_mutex_);
  handshakes_done_.wait(lock, [&]() TROUPE_REQUIRES(handshakes_mutex_) { return handshakes_ == 0; });
}

void shm_transport::handshake(unique_fd accepted) noexcept {
  if (node_.stopping()) return;
  expected<unique_fd> socket(std::move(accepted));
  const time_limit until = std::chrono::steady_clock::now() + node_.config().connect_timeout;
  auto refuse = [&](const std::string& why) {
    node_.log("refused a connection: " + why);
    const std::string text = "refused: " + why;
    (void)send_frame(socket->get(), {reinterpret_cast<const std::byte*>(text.data()), text.size()}, until);
  };
  try {
    pid_t pid = 0;
    if (auto ok = check_same_user(socket->get(), pid); !ok) return refuse(ok.error().text());
    auto theirs_bytes = receive_frame(socket->get(), until);
    if (!theirs_bytes) return refuse("no hello: " + theirs_bytes.error().text());
    auto theirs = parse_shm_hello(*theirs_bytes);
    if (!theirs) return refuse(theirs.error().to_string());
    if (theirs->name == node_.name()) return refuse("a peer with this node's own name");
    if (auto sent = send_frame(socket->get(), hello(), until); !sent) return;
    unique_fd memfd;
    auto rings = receive_frame(socket->get(), until, &memfd);
    if (!rings) return refuse("no rings: " + rings.error().text());
    wire_reader in(*rings);
    std::uint64_t half = 0;
    if (!in.read_scalar(half) || in.remaining() != 0 || !memfd || half < spsc_ring::bytes_for(min_ring_bytes) ||
        half > spsc_ring::bytes_for(max_ring_bytes)) {
      return refuse("malformed ring hand-over");
    }
    auto memory = map_shared_memory(memfd.get(), 2 * half);
    if (!memory) return refuse(memory.error().text());
    auto* base = static_cast<std::byte*>(memory->data());
    auto from_them = spsc_ring::attach(base, half);
    auto to_them = spsc_ring::attach(base + half, half);
    if (!from_them || !to_them) return refuse("the shared memory does not hold two rings of this version");
    const std::byte ok{1};
    if (auto sent = send_frame(socket->get(), {&ok, 1}, until); !sent) return;
    auto peer = std::make_shared<peer_info>();
    peer->name = theirs->name;
    peer->incarnation = theirs->incarnation;
    peer->pid = pid;
    peer->anchor_id = theirs->anchor_id;
    peer->host = theirs->host;
    peer->endpoint = theirs->endpoint;
    (void)node_.register_connection(std::make_shared<shm_connection>(node_, std::move(*socket), std::move(*memory),
                                                                     *to_them, *from_them, std::move(peer),
                                                                     std::move(theirs->schema)));
  } catch (const std::exception& e) {
    node_.log(std::string("accepting a connection failed: ") + e.what());
  }
}

}  // namespace troupe::detail
