// hosts: the netns-rig fixture of the cross-machine tests (hosts_test.cpp,
// gateway_hosts_test.cpp). Host 0 is the test's thread (node "a"); hosts 1 and
// 2 run this executable as a node ("--host-node", see main.cpp) listening on
// its own address, each publishing "echo" and "relay".
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "process_fixture.hpp"
#include "support/child_process.hpp"
#include "support/netns_rig.hpp"

namespace it {

namespace ts = troupe::test_support;

constexpr const char* host_cookie = "rig-cookie-0123456789abcdef";
constexpr int host_port = 7100;

class hosts : public ts::node_fixture {
 protected:
  std::string endpoint(int host) const { return "tcp://" + rig_->address(host) + ":" + std::to_string(host_port); }

  // Builds the rig, starts nodes b (host 1) and c (host 2), moves this thread to host 0.
  void start(int count = 3, const std::string& tls_dir = {}) {
    rig_.emplace(count);
    for (int h = 1; h < count; ++h) start_node(h, std::string(1, static_cast<char>('a' + h)), tls_dir);
    rig_->enter(0);
  }

  void start_node(int host, const std::string& name, const std::string& tls_dir) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, 0), 0);  // the write end is inherited by the child
    ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    std::vector<std::string> argv = {ts::current_executable(), "--host-node", name,
                                     endpoint(host),           host_cookie,   std::to_string(fds[1])};
    if (!tls_dir.empty()) {
      argv.push_back(tls_dir);
      argv.push_back(host == 1 ? "node1" : "node2");
    }
    pids_[host] = rig_->spawn_in(host, argv, {"TROUPE_RUNTIME_DIR=" + dir_});
    ::close(fds[1]);
    pollfd p{fds[0], POLLIN, 0};
    char ready = 0;
    const bool up = ::poll(&p, 1, 30000) == 1 && ::read(fds[0], &ready, 1) == 1;
    ::close(fds[0]);
    ASSERT_TRUE(up) << "node '" << name << "' on host " << host << " did not come up";
  }

  troupe::node_config host_config(std::string name, std::string cookie = host_cookie) const {
    troupe::node_config cfg = config(std::move(name));
    cfg.listen = endpoint(0);
    cfg.cookie = std::move(cookie);
    return cfg;
  }

  std::optional<ts::netns_rig> rig_;
  pid_t pids_[3] = {0, 0, 0};
};

}  // namespace it
