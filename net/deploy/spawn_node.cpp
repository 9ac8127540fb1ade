// spawn_node: starting a child process that joins as a node (fork + exec),
// stopping and killing it (node.hpp has the user's view, docs/deployment.md the guide).
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

expected<node_handle> node_core::spawn_node(node_spawn_options options) {
  if (!valid_node_name(options.name)) return error(errc::no_such_node, "invalid node name '" + options.name + "'");
  if (stopping()) return error(errc::system_stopped, "the node is shutting down");
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
    troupe::mutex_lock lock(connections_mutex_);
    children_.push_back(child_process{pid, options.name, open_pidfd(pid), false});
  }
  wake_control();
  const time_limit until = std::chrono::steady_clock::now() + options.timeout;
  std::shared_ptr<connection> joined;
  bool exited = false;
  {
    troupe::mutex_lock lock(connections_mutex_);
    connections_changed_.wait_until(lock, until, [&]() TROUPE_REQUIRES(connections_mutex_) {
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
  // release: pairs with the acquire in node_handle::pid(); the pid set in the handshake is visible.
  joined->peer()->spawned_by_us.store(true, std::memory_order_release);
  return handle_for(joined);
}

void node_core::stop_node(const node_handle& h) {
  if (!h) return;
  std::shared_ptr<connection> c;
  {
    troupe::mutex_lock lock(connections_mutex_);
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
    troupe::mutex_lock lock(connections_mutex_);
    for (const child_process& child : children_) {
      // Only our own children, and only while not yet reaped (the pid is still theirs).
      if (child.pid == h.pid() && !child.exited) killed = ::kill(child.pid, SIGKILL) == 0;
    }
  }
  // Returns once the process is gone (its name is free for a successor).
  if (killed) (void)wait_for_exit(h.pid(), std::chrono::steady_clock::now() + config_.connect_timeout);
}

}  // namespace troupe::detail
