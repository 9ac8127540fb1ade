// Process deployment: spawn_node (fork + exec of a child that joins as a
// node), stopping and killing child nodes, remote spawn's answering side, and
// the node's own orderly stop.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "node/node_core.hpp"

extern char** environ;

namespace troupe::detail {

namespace {
constexpr auto child_stop_grace = std::chrono::seconds(3);
}

expected<node_handle> node_core::spawn_node(node_spawn_options options) {
  if (!valid_node_name(options.name)) return error(errc::no_such_node, "invalid node name '" + options.name + "'");
  if (stopping_.load(std::memory_order_acquire)) return error(errc::system_stopped, "the node is shutting down");
  const std::string program = options.program.empty() ? "/proc/self/exe" : options.program;
  // Everything exec needs is built before fork: between fork and exec the child
  // may only make async-signal-safe calls.
  std::vector<std::string> args;
  args.push_back(program);
  for (auto& a : options.args) args.push_back(a);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.starts_with("TROUPE_NODE_NAME=") || entry.starts_with("TROUPE_PARENT_NODE=") ||
        entry.starts_with("TROUPE_RUNTIME_DIR=") || entry.starts_with("TROUPE_RING_BYTES=") ||
        entry.starts_with("TROUPE_MAX_QUEUED_BYTES=") || entry.starts_with("TROUPE_MAX_MESSAGE_BYTES=") ||
        entry.starts_with("TROUPE_WORKER_THREADS=")) {
      continue;
    }
    env.emplace_back(entry);
  }
  env.push_back("TROUPE_NODE_NAME=" + options.name);
  env.push_back("TROUPE_PARENT_NODE=" + config_.name);
  env.push_back("TROUPE_RUNTIME_DIR=" + shm_.runtime_dir());
  // The child's node inherits this node's transport settings (see troupe::run).
  env.push_back("TROUPE_RING_BYTES=" + std::to_string(config_.ring_bytes));
  env.push_back("TROUPE_MAX_QUEUED_BYTES=" + std::to_string(config_.max_queued_bytes));
  env.push_back("TROUPE_MAX_MESSAGE_BYTES=" + std::to_string(config_.max_message_bytes));
  env.push_back("TROUPE_WORKER_THREADS=" + std::to_string(config_.system.worker_threads));
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return error(errc::system_stopped, errno_text("fork"));
  if (pid == 0) {
    // The child dies with its parent (also if the parent is killed -9).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::execve(program.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  {
    std::lock_guard lock(links_mutex_);
    children_.push_back(child_process{pid, options.name, open_pidfd(pid), false});
  }
  wake_control();
  const time_limit until = std::chrono::steady_clock::now() + options.timeout;
  std::shared_ptr<connection> joined;
  bool exited = false;
  {
    std::unique_lock lock(links_mutex_);
    links_changed_.wait_until(lock, until, [&] {
      auto [first, last] = connections_.equal_range(options.name);
      for (auto it = first; it != last; ++it) {
        if (it->second->peer()->pid == pid && it->second->alive()) joined = it->second;
      }
      for (const child_process& child : children_) {
        if (child.pid == pid && child.exited) exited = true;
      }
      return joined != nullptr || exited;
    });
  }
  if (!joined) {
    ::kill(pid, SIGKILL);
    return error(errc::no_such_node, "child node '" + options.name + "' (" + program + ", pid " + std::to_string(pid) +
                                         ") " + (exited ? "exited before it joined" : "did not join in time"));
  }
  joined->peer()->spawned_by_us.store(true, std::memory_order_release);
  return handle_for(joined);
}

void node_core::stop_node(const node_handle& h) {
  if (!h) return;
  std::shared_ptr<connection> c;
  {
    std::lock_guard lock(links_mutex_);
    auto [first, last] = connections_.equal_range(h.name());
    for (auto it = first; it != last; ++it) {
      if (it->second->peer()->incarnation == h.incarnation()) c = it->second;
    }
  }
  if (c) (void)c->write(record_kind::stop, {});
}

void node_core::kill_node(const node_handle& h) {
  if (!h || h.pid() <= 0) return;
  bool killed = false;
  {
    std::lock_guard lock(links_mutex_);
    for (const child_process& child : children_) {
      // Only our own children, and only while not yet reaped (the pid is still theirs).
      if (child.pid == h.pid() && !child.exited) killed = ::kill(child.pid, SIGKILL) == 0;
    }
  }
  // Returns once the process is gone (its name is free for a successor).
  if (killed) (void)wait_for_exit(h.pid(), std::chrono::steady_clock::now() + config_.connect_timeout);
}

std::vector<std::byte> node_core::answer_spawn(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok) {
  wire_context context{this, nullptr};
  wire_reader in(body, &context);
  std::string key;
  ok = in.read_scalar(request_id) && troupe::decode(in, key);
  std::vector<std::byte> result;
  if (!ok) return result;
  wire_writer out(result);
  auto fail = [&](const error& e) {
    out.write_scalar<std::uint8_t>(1);
    encode_error(out, e);
    return result;
  };
  actor_factory factory = find_actor_factory(key);
  if (factory == nullptr) {
    return fail(error(errc::not_registered,
                      "node '" + config_.name + "' has no actor registered as " + key + " (TROUPE_REGISTER_ACTOR)"));
  }
  try {
    auto spawned = factory(owner_, in);
    if (!spawned) return fail(spawned.error());
    export_cell(spawned->first.get(), *spawned->second);
    out.write_scalar<std::uint8_t>(0);
    out.write_scalar(spawned->first->id());
    return result;
  } catch (const troupe_error& e) {
    return fail(e.error());
  } catch (const std::exception& e) {
    return fail(error(errc::actor_down, std::string("the constructor of ") + key + " threw: " + e.what()));
  }
}

std::vector<std::byte> node_core::answer_load(std::span<const std::byte> body, std::uint64_t& request_id, bool& ok) {
  wire_reader in(body);
  std::string key;
  ok = in.read_scalar(request_id) && troupe::decode(in, key) && in.remaining() == 0;
  std::vector<std::byte> result;
  if (!ok) return result;
  wire_writer out(result);
  out.write_scalar<std::uint8_t>(0);
  out.write_scalar<std::uint8_t>(find_actor_factory(key) != nullptr ? 1 : 0);
  out.write_scalar<std::uint64_t>(owner_.live_actors());
  return result;
}

void node_core::stop() noexcept {
  if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
  if (!control_.joinable()) return;  // never started
  // Leave the cluster first: with etcd, the lease goes at once, so the other
  // members hear of it now rather than when it expires.
  if (cluster_) cluster_->stop();
  // Child nodes first: ask them to stop, give them a moment, then kill.
  std::vector<std::shared_ptr<connection>> links;
  std::vector<pid_t> alive_children;
  {
    std::lock_guard lock(links_mutex_);
    for (auto& [name, c] : connections_) links.push_back(c);
    for (const child_process& child : children_) {
      if (!child.exited) alive_children.push_back(child.pid);
    }
  }
  for (auto& c : links) {
    const bool our_child =
        std::find(alive_children.begin(), alive_children.end(), c->peer()->pid) != alive_children.end();
    if (our_child) (void)c->write(record_kind::stop, {});
  }
  const time_limit until = std::chrono::steady_clock::now() + child_stop_grace;
  for (pid_t pid : alive_children) {
    // The control thread no longer runs: wait for each child here.
    if (!wait_for_exit(pid, until)) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  // TCP links say goodbye (their peers will not re-dial); then the rest close.
  {
    std::unique_ptr<tcp_transport> tcp;
    {
      std::lock_guard lock(tcp_mutex_);
      tcp = std::move(tcp_);
    }
    if (tcp) tcp->stop();
    std::lock_guard lock(tcp_mutex_);
    tcp_ = std::move(tcp);  // destroyed with the node (links may still refer to it)
  }
  for (auto& c : links) c->close("node '" + config_.name + "' is shutting down");
  wake_control();
  control_.join();
  shm_.wait_for_handshakes();  // each ends by its deadline
  {
    std::lock_guard lock(links_mutex_);
    // A handshake that finished meanwhile registered a link: close it too.
    for (auto& [name, c] : connections_) links.push_back(c);
  }
  for (auto& c : links) c->close("node '" + config_.name + "' is shutting down");
  // Every link's reader ends after close(); join them all.
  for (auto& c : links) c->join();
  reap();
  shm_.close();
  std::lock_guard lock(exports_mutex_);
  proxies_.clear();
  names_.clear();
  exports_.clear();
}

}  // namespace troupe::detail
