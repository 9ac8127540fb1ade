// free_loopback_port: a TCP port on 127.0.0.1 that nobody listens on right now,
// for a server a test starts (etcd, ActiveMQ, RabbitMQ). Picked by binding
// port 0 and releasing it: another process may take it before the server
// binds, so a caller that cannot tolerate that retries on a new one.
//
// Thread safety: any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include "support/child_process.hpp"
#include "support/unique_fd.hpp"

namespace troupe::test_support {

inline std::uint16_t free_loopback_port() {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throw_errno("socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) throw_errno("bind");
  socklen_t length = sizeof address;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) throw_errno("getsockname");
  return ntohs(address.sin_port);
}

}  // namespace troupe::test_support
