// fake_peer: a TCP server on loopback that answers every connection with the
// same bytes and then closes it, or (no bytes) holds it open in silence: the
// broker that sends garbage, hangs up mid-frame or stalls, for the bridges'
// bad-peer tests. May use: POSIX sockets, unique_fd.
//
// Thread safety: one owner; the accepting thread is its own.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "support/child_process.hpp"
#include "support/unique_fd.hpp"

namespace troupe::test_support {

class fake_peer {
 public:
  explicit fake_peer(std::string reply) : reply_(std::move(reply)) {
    listener_ = unique_fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (!listener_ || ::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(listener_.get(), 16) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw_errno("fake_peer: listening socket");
    }
    port_ = ntohs(address.sin_port);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2");
    stop_read_ = unique_fd(fds[0]);
    stop_write_ = unique_fd(fds[1]);
    thread_ = std::thread([this] { serve(); });
  }
  fake_peer(const fake_peer&) = delete;
  fake_peer& operator=(const fake_peer&) = delete;
  ~fake_peer() {
    stop_write_.reset();  // EOF on the pipe: the thread ends
    thread_.join();
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }

 private:
  void serve() {
    std::vector<unique_fd> held;  // stalled connections, open until the end
    for (;;) {
      pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) return;
      if (fds[1].revents != 0) return;
      unique_fd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) continue;
      if (reply_.empty()) {
        held.push_back(std::move(c));
        continue;
      }
      (void)!::send(c.get(), reply_.data(), reply_.size(), MSG_NOSIGNAL);
    }
  }
  std::string reply_;
  unique_fd listener_, stop_read_, stop_write_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace troupe::test_support
