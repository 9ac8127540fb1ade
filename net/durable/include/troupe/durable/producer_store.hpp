// open_producer_store: the durable producer side of a reliable channel — a
// troupe::producer_store (troupe/net/producer_store.hpp) kept in an outbox of
// an SQLite file, so that a producer controller's unconfirmed messages survive
// a kill -9 of its process and are sent again when it starts on the same file.
//
//   auto store = troupe::durable::open_producer_store("/var/lib/app/out.db", "orders").value();
//   auto out = troupe::spawn_producer<order>(n, source, {.store = store});
//   consumer_controller.tell(troupe::channel_producer<order>{out});   // after a restart: invite them back
//
// What it keeps: every message the controller appended and no consumer has
// confirmed (in the outbox `name`), and the highest id ever confirmed (in the
// outbox `name` + "#confirmed"), so that a controller that finds everything
// confirmed still numbers on after the last message. Durability is the
// outbox's: a message counts as durable once its group commit is done, and the
// controller sends nothing before that. An append whose commit fails never
// becomes durable, so it is never sent: a line on stderr says so, and the
// channel stalls at that message (a full disk is not something to paper over).
//
// Errors at open: the outbox's (storage_failed, storage_locked: another process
// holds the file).
//
// Thread safety: as producer_store: the controller's actor calls it; the
// durability callback runs on the outbox's writer thread.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "troupe/durable/outbox.hpp"
#include "troupe/net/producer_store.hpp"
#include "troupe/runtime/error.hpp"

namespace troupe::durable {

[[nodiscard]] expected<std::shared_ptr<producer_store>> open_producer_store(const std::filesystem::path& file,
                                                                            const std::string& name,
                                                                            const outbox_options& options = {});

}  // namespace troupe::durable
