// troupe::run(): the main() hook that lets a program be the parent or a child
// node that spawn_node() started (deploy.hpp).
#include <cstdlib>
#include <iostream>

#include "node/node_access.hpp"
#include "node/node_core.hpp"
#include "troupe/net/deploy.hpp"

namespace troupe {

bool is_spawned_node() noexcept {
  const char* name = std::getenv("TROUPE_NODE_NAME");
  const char* parent = std::getenv("TROUPE_PARENT_NODE");
  return name != nullptr && *name != '\0' && parent != nullptr && *parent != '\0';
}

int run(int argc, char** argv, const std::function<int()>& main_fn, const std::function<void(node&)>& child_setup) {
  (void)argc;
  (void)argv;
  if (!is_spawned_node()) return main_fn();
  try {
    node_config cfg;
    cfg.name = std::getenv("TROUPE_NODE_NAME");
    if (const char* dir = std::getenv("TROUPE_RUNTIME_DIR")) cfg.runtime_dir = dir;
    // The parent's transport settings (spawn_node passes them on).
    auto size_from = [](const char* variable, std::size_t& out) {
      if (const char* v = std::getenv(variable)) {
        char* end = nullptr;
        const unsigned long long parsed = std::strtoull(v, &end, 10);
        if (end != v && *end == '\0') out = static_cast<std::size_t>(parsed);
      }
    };
    size_from("TROUPE_RING_BYTES", cfg.ring_bytes);
    size_from("TROUPE_MAX_QUEUED_BYTES", cfg.max_queued_bytes);
    size_from("TROUPE_MAX_MESSAGE_BYTES", cfg.max_message_bytes);
    size_from("TROUPE_WORKER_THREADS", cfg.system.worker_threads);
    const std::string parent = std::getenv("TROUPE_PARENT_NODE");
    node n(std::move(cfg));
    detail::node_access::core(n).set_parent(parent);
    // Set up first: the parent's spawn_node() returns once this node has joined,
    // and by then what the setup publishes must be there.
    if (child_setup) child_setup(n);
    auto connection = n.connect(parent);
    if (!connection) {
      std::cerr << "troupe: child node '" << n.name() << "' could not join '" << parent << "': " << connection.error()
                << '\n';
      return 1;
    }
    detail::node_access::core(n).wait_for_stop();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "troupe: child node failed: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace troupe
