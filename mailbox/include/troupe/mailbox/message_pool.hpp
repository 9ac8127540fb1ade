// message_pool: the allocator for mailbox messages. Messages are allocated on
// one thread and freed on another at a very high rate; this keeps per-thread
// caches of small blocks and moves them between threads a magazine at a time.
// The runtime's envelope type routes its operator new/delete here.
//
//   void* p = troupe::allocate_message(sizeof(my_message));
//   ...                                        // possibly on another thread:
//   troupe::deallocate_message(p, sizeof(my_message));
//
// Thread safety: both functions from any thread; a block may be freed by a
// different thread than the one that allocated it. `size` must be the size
// passed to allocate_message.
#pragma once

#include <cstddef>

namespace troupe {

void* allocate_message(std::size_t size);
void deallocate_message(void* p, std::size_t size) noexcept;

}  // namespace troupe
