// os: checked POSIX calls. Owns: file descriptors, UNIX sockets, fd passing, memfd,
// pidfds, the runtime directory. May use: std and the C library only.
//
// Thin, checked wrappers over the POSIX calls the same-host transport needs:
// the per-user runtime directory, UNIX stream sockets, length-prefixed frames
// with deadlines, file-descriptor passing (SCM_RIGHTS), peer credentials
// (SO_PEERCRED), memfd-backed shared memory, and pidfds. Every failure comes
// back as troupe::error with the call and errno text.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "troupe/runtime/error.hpp"

namespace troupe::detail {

using time_limit = std::chrono::steady_clock::time_point;

// An owned file descriptor.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset() noexcept;
  [[nodiscard]] int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A shared mapping (munmap on destruction).
class mapped_memory {
 public:
  mapped_memory() = default;
  mapped_memory(void* address, std::size_t size) noexcept : address_(address), size_(size) {}
  mapped_memory(mapped_memory&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  mapped_memory& operator=(mapped_memory&& other) noexcept;
  ~mapped_memory();
  [[nodiscard]] void* data() const noexcept { return address_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

 private:
  void* address_ = nullptr;
  std::size_t size_ = 0;
};

std::string errno_text(const char* call);

// $TROUPE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/troupe, else /tmp/troupe-<uid>;
// `configured` wins when not empty. Created mode 0700; refused if it is not a
// directory owned by this user with no group/other access.
expected<std::string> prepare_runtime_dir(const std::string& configured);
std::string socket_path(const std::string& dir, std::string_view node_name);
// Node names are path components: letters, digits, '-', '_', '.', 1..64 chars, not "." or "..".
bool valid_node_name(std::string_view name) noexcept;

// Binds and listens on `path`. A stale socket (nobody accepts) is replaced;
// a live one means the name is taken (errc::name_in_use).
expected<unique_fd> listen_unix(const std::string& path);
// errc::no_such_node when nobody listens there.
expected<unique_fd> connect_unix(const std::string& path);
expected<unique_fd> accept_unix(int listener);

struct peer_credentials {
  pid_t pid;
  uid_t uid;
};
expected<peer_credentials> credentials_of(int socket);

// Frames: a u32 little-endian length, then the bytes. `fd` rides along (SCM_RIGHTS).
inline constexpr std::size_t max_frame_bytes = std::size_t{16} << 20;
expected<void> send_frame(int socket, std::span<const std::byte> bytes, time_limit until, int fd = -1);
// Receives one frame; `fd` (if not null) receives a passed descriptor, if any.
expected<std::vector<std::byte>> receive_frame(int socket, time_limit until, unique_fd* fd = nullptr);

// memfd-backed shared memory of `bytes`, mapped read-write.
expected<std::pair<unique_fd, mapped_memory>> create_shared_memory(const char* name, std::size_t bytes);
// Maps a received memfd; checks that its size is exactly `bytes`.
expected<mapped_memory> map_shared_memory(int fd, std::size_t bytes);

// 64 random bits (getrandom).
std::uint64_t random_u64() noexcept;

// A pidfd for a child process (readable once it exits); invalid if unsupported.
unique_fd open_pidfd(pid_t pid) noexcept;
// Waits until process `pid` (a child, not yet reaped, or already reaped) has
// exited, or `until`; true if it has.
bool wait_for_exit(pid_t pid, time_limit until) noexcept;

}  // namespace troupe::detail
