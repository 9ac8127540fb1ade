// os: checked POSIX calls (see os.hpp).
#include "os/os.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace troupe::detail {

void unique_fd::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

mapped_memory& mapped_memory::operator=(mapped_memory&& other) noexcept {
  if (this != &other) {
    if (address_ != nullptr) ::munmap(address_, size_);
    address_ = std::exchange(other.address_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

mapped_memory::~mapped_memory() {
  if (address_ != nullptr) ::munmap(address_, size_);
}

std::string errno_text(const char* call) {
  const int saved = errno;
  // Not strerror(): it may share one buffer between threads.
  return std::string(call) + ": " + std::generic_category().message(saved);
}

namespace {

error os_error(const char* call) { return error(errc::connection_lost, errno_text(call)); }

int remaining_ms(time_limit until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > 1'000'000 ? 1'000'000 : static_cast<int>(left.count()) + 1;
}

// Waits until `socket` is ready for `events`; false (errno = ETIMEDOUT) at the deadline.
bool wait_ready(int socket, short events, time_limit until) {
  for (;;) {
    pollfd p{socket, events, 0};
    const int n = ::poll(&p, 1, remaining_ms(until));
    if (n > 0) return true;
    if (n == 0) {
      errno = ETIMEDOUT;
      return false;
    }
    if (errno != EINTR) return false;
  }
}

bool make_dir_0700(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0) return true;
  return errno == EEXIST;
}

}  // namespace

bool valid_node_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

expected<std::string> prepare_runtime_dir(const std::string& configured) {
  std::string dir = configured;
  if (dir.empty()) {
    if (const char* env = std::getenv("TROUPE_RUNTIME_DIR"); env != nullptr && *env != '\0') {
      dir = env;
    } else if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && *xdg != '\0') {
      dir = std::string(xdg) + "/troupe";
    } else {
      dir = "/tmp/troupe-" + std::to_string(::getuid());
    }
  }
  if (!make_dir_0700(dir)) return error(errc::no_such_node, errno_text(("mkdir " + dir).c_str()));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return error(errc::no_such_node, errno_text(("stat " + dir).c_str()));
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::getuid() || (st.st_mode & 077) != 0) {
    return error(errc::no_such_node,
                 "runtime directory " + dir + " must be a directory owned by this user with mode 0700 (it is not)");
  }
  return dir;
}

std::string socket_path(const std::string& dir, std::string_view node_name) {
  return dir + "/" + std::string(node_name) + ".sock";
}

namespace {
expected<sockaddr_un> address_for(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) return error(errc::no_such_node, "socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}
}  // namespace

expected<unique_fd> connect_unix(const std::string& path) {
  auto address = address_for(path);
  if (!address) return address.error();
  unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return os_error("socket");
  int rc;
  do {
    rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(sockaddr_un));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED)
      return error(errc::no_such_node, errno_text(("connect " + path).c_str()));
    return os_error("connect");
  }
  return s;
}

expected<unique_fd> listen_unix(const std::string& path) {
  auto address = address_for(path);
  if (!address) return address.error();
  for (int attempt = 0; attempt < 2; ++attempt) {
    unique_fd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s) return os_error("socket");
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof(sockaddr_un)) == 0) {
      if (::listen(s.get(), 64) != 0) return os_error("listen");
      return s;
    }
    if (errno != EADDRINUSE) return os_error("bind");
    // Taken: by a live node (it accepts) or left behind by a dead one.
    if (connect_unix(path)) return error(errc::name_in_use, "node name in use: " + path);
    ::unlink(path.c_str());
  }
  return error(errc::name_in_use, "could not claim " + path);
}

expected<unique_fd> accept_unix(int listener) {
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return unique_fd(fd);
    if (errno == EINTR) continue;
    return os_error("accept");
  }
}

expected<peer_credentials> credentials_of(int socket) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) return os_error("SO_PEERCRED");
  return peer_credentials{cred.pid, cred.uid};
}

expected<void> send_frame(int socket, std::span<const std::byte> bytes, time_limit until, int fd) {
  if (bytes.size() > max_frame_bytes) return error(errc::malformed_message, "frame too large");
  std::byte header[4];
  const auto length = static_cast<std::uint32_t>(bytes.size());
  std::memcpy(header, &length, 4);
  iovec parts[2] = {{header, 4}, {const_cast<std::byte*>(bytes.data()), bytes.size()}};
  std::size_t skip = 0;  // bytes already sent
  const std::size_t total = 4 + bytes.size();
  bool fd_sent = fd < 0;
  while (skip < total) {
    if (!wait_ready(socket, POLLOUT, until)) return os_error("send (waiting)");
    iovec left[2];
    int count = 0;
    std::size_t offset = skip;
    for (const iovec& p : parts) {
      if (offset >= p.iov_len) {
        offset -= p.iov_len;
        continue;
      }
      left[count++] = iovec{static_cast<std::byte*>(p.iov_base) + offset, p.iov_len - offset};
      offset = 0;
    }
    msghdr message{};
    message.msg_iov = left;
    message.msg_iovlen = static_cast<std::size_t>(count);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    if (!fd_sent) {
      std::memset(control, 0, sizeof control);
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&message);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(socket, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return os_error("sendmsg");
    }
    fd_sent = true;
    skip += static_cast<std::size_t>(n);
  }
  return {};
}

namespace {
// Reads exactly `size` bytes; collects a passed descriptor into `fd`.
expected<void> read_exact(int socket, std::byte* out, std::size_t size, time_limit until, unique_fd* fd) {
  std::size_t done = 0;
  while (done < size) {
    if (!wait_ready(socket, POLLIN, until)) return os_error("recv (waiting)");
    iovec part{out + done, size - done};
    msghdr message{};
    message.msg_iov = &part;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return os_error("recvmsg");
    }
    if (n == 0) return error(errc::connection_lost, "the peer closed the connection");
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (fd != nullptr && !*fd) {
          *fd = unique_fd(received);
        } else {
          ::close(received);  // unexpected extra descriptors are not kept
        }
      }
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}
}  // namespace

expected<std::vector<std::byte>> receive_frame(int socket, time_limit until, unique_fd* fd) {
  std::byte header[4];
  if (auto r = read_exact(socket, header, 4, until, fd); !r) return r.error();
  std::uint32_t length;
  std::memcpy(&length, header, 4);
  if (length > max_frame_bytes) {
    return error(errc::malformed_message, "frame of " + std::to_string(length) + " bytes exceeds the limit");
  }
  std::vector<std::byte> bytes(length);
  if (auto r = read_exact(socket, bytes.data(), length, until, fd); !r) return r.error();
  return bytes;
}

expected<std::pair<unique_fd, mapped_memory>> create_shared_memory(const char* name, std::size_t bytes) {
  unique_fd fd(static_cast<int>(::syscall(SYS_memfd_create, name, MFD_CLOEXEC)));
  if (!fd) return os_error("memfd_create");
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return os_error("ftruncate");
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) return os_error("mmap");
  return std::pair<unique_fd, mapped_memory>(std::move(fd), mapped_memory(p, bytes));
}

expected<mapped_memory> map_shared_memory(int fd, std::size_t bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return os_error("fstat");
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) != bytes) {
    return error(errc::malformed_message,
                 "shared memory of " + std::to_string(st.st_size) + " bytes, expected " + std::to_string(bytes));
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return os_error("mmap");
  return mapped_memory(p, bytes);
}

std::uint64_t random_u64() noexcept {
  std::uint64_t value = 0;
  if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
    value = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
            (static_cast<std::uint64_t>(::getpid()) << 32);
  }
  return value == 0 ? 1 : value;
}

unique_fd open_pidfd(pid_t pid) noexcept { return unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))); }

bool wait_for_exit(pid_t pid, time_limit until) noexcept {
  unique_fd pidfd = open_pidfd(pid);
  if (!pidfd) return errno == ESRCH;  // already reaped: gone
  return wait_ready(pidfd.get(), POLLIN, until);
}

}  // namespace troupe::detail
