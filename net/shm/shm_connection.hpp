// shm_connection: a connection to a node on this host. Owns: the shared-memory
// rings' reader and writers. May use: connection/, os/, mailbox/ (spsc_ring).
//
// The UNIX socket the connection was set up over (shm/shm_transport.hpp) stays
// open as the liveness channel: the node's control thread polls it, and a
// hang-up is the peer's death, seen at once. Records travel through one memfd
// holding two spsc_rings, one per direction.
//
// Thread safety: write() from any thread (write_lock orders writers and makes
// the ring single-producer); close() and join() from any thread; the reader
// and flusher are the connection's own threads.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connection/connection.hpp"
#include "os/os.hpp"
#include "shm/write_lock.hpp"
#include "troupe/mailbox/mutex.hpp"
#include "troupe/mailbox/spsc_ring.hpp"

namespace troupe::detail {

// A connection to a node on this host: the UNIX socket it was set up over (kept open
// as the liveness channel), and one memfd holding two spsc_rings, one per
// direction. Threads: a reader (spins briefly, then parks on the inbound
// ring's futex; runs the actors its records make runnable) and a flusher
// (parked unless the outbound ring filled up and records had to queue).
class shm_connection final : public connection {
 public:
  shm_connection(node_core& node, unique_fd socket, mapped_memory memory, spsc_ring out, spsc_ring in,
                 std::shared_ptr<peer_info> peer, schema_map peer_schema);
  ~shm_connection() override;

  void start() override;
  std::error_code write(record_kind kind, std::span<const std::byte> head,
                        std::span<const std::byte> body = {}) noexcept override;
  void close(const std::string& why) noexcept override;
  void join() noexcept override;
  [[nodiscard]] int liveness_socket() const noexcept override { return socket_.get(); }
  void on_hangup() noexcept override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] exit_reason loss_reason(const std::string& why) const override {
    return exit_reason::process_down(why);
  }
  // Tests that play a hostile peer (net/include/troupe/net/testing.hpp).
  [[nodiscard]] spsc_ring& outbound_ring_for_tests() noexcept { return out_; }

 private:
  void read_loop() noexcept;
  void flush_loop() noexcept;

  unique_fd socket_;
  mapped_memory memory_;
  spsc_ring out_;
  spsc_ring in_;

  // Writers.
  write_lock write_mutex_;
  std::condition_variable_any flush_wanted_;
  bool flushing_ TROUPE_GUARDED_BY(write_mutex_) = false;  // records are queued: only the flusher writes the ring
  bool write_closed_ TROUPE_GUARDED_BY(write_mutex_) = false;
  struct queued_record {
    record_kind kind;
    std::vector<std::byte> bytes;
  };
  std::deque<queued_record> queue_ TROUPE_GUARDED_BY(write_mutex_);
  std::size_t queued_bytes_ TROUPE_GUARDED_BY(write_mutex_) = 0;

  std::thread reader_;
  std::thread flusher_;
  troupe::mutex join_mutex_;  // join() from several threads
};

}  // namespace troupe::detail
