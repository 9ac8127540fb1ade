// queue_store: see queue_store.hpp.
#include "queue_store.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <utility>

#include "troupe/runtime/serialization.hpp"

namespace troupe::durable::detail {

namespace {

constexpr const char* schema =
    "CREATE TABLE IF NOT EXISTS troupe_queue_messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"  // never reused: message ids stay unique after deletes
    "  body BLOB NOT NULL, attributes BLOB, group_id TEXT NOT NULL DEFAULT '',"
    "  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,"
    "  receive_count INTEGER NOT NULL DEFAULT 0, lease INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS troupe_queue_visible ON troupe_queue_messages(visible_at);"
    "CREATE TABLE IF NOT EXISTS troupe_queue_dedup ("
    "  dedup_id TEXT PRIMARY KEY, message_id INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;";

// FIFO queues look up the oldest message of a group at every receive.
constexpr const char* fifo_schema =
    "CREATE INDEX IF NOT EXISTS troupe_queue_groups ON troupe_queue_messages(group_id, id);";

std::span<const std::byte> as_bytes(const std::string& s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

std::string make_receipt(std::int64_t message_id, std::int64_t token) {
  // to_chars, not snprintf: a receipt is made for every message received.
  char text[40];
  char* end = std::to_chars(text, text + 16, static_cast<std::uint64_t>(message_id), 16).ptr;
  *end++ = '-';
  end = std::to_chars(end, text + sizeof text, static_cast<std::uint64_t>(token), 16).ptr;
  return {text, static_cast<std::size_t>(end - text)};
}

std::optional<receipt_parts> parse_receipt(const std::string& receipt) noexcept {
  const std::size_t dash = receipt.find('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 >= receipt.size() || receipt.size() > 33) {
    return std::nullopt;
  }
  std::uint64_t id = 0;
  std::uint64_t token = 0;
  const char* begin = receipt.data();
  const char* end = begin + receipt.size();
  auto [id_end, id_error] = std::from_chars(begin, begin + dash, id, 16);
  if (id_error != std::errc{} || id_end != begin + dash) return std::nullopt;
  auto [token_end, token_error] = std::from_chars(begin + dash + 1, end, token, 16);
  if (token_error != std::errc{} || token_end != end) return std::nullopt;
  if (id == 0 || token == 0 || id > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return receipt_parts{static_cast<std::int64_t>(id), static_cast<std::int64_t>(token)};
}

expected<std::unique_ptr<queue_store>> queue_store::open(const queue_config& config) {
  database_options options;
  options.busy_timeout = config.busy_timeout;
  options.full_sync = config.full_sync;
  expected<database> db = database::open(config.file, options);
  if (!db) return db.error();
  if (auto r = db->exec(schema); !r) return r.error();
  if (config.fifo) {
    if (auto r = db->exec(fifo_schema); !r) return r.error();
  }
  std::unique_ptr<queue_store> store(new queue_store(std::move(*db)));
  // remove()'s DELETE reports the size of the body it deletes through this.
  if (auto r = store->db_.define_note("troupe_note_size", &store->deleted_size_); !r) return r.error();
  if (auto r = store->load_counts(); !r) return r.error();
  return store;
}

expected<void> queue_store::load_counts() {
  statement& count = prepared("SELECT count(*), coalesce(sum(length(body)), 0) FROM troupe_queue_messages");
  expected<bool> row = count.next();
  if (!row) return row.error();
  messages_ = static_cast<std::uint64_t>(count.column_int64(0));
  bytes_ = static_cast<std::uint64_t>(count.column_int64(1));
  count.reset();
  return {};
}

expected<std::uint64_t> queue_store::visible(std::int64_t now) {
  statement& count = prepared("SELECT count(*) FROM troupe_queue_messages WHERE visible_at <= ?1");
  count.bind(1, now);
  expected<bool> row = count.next();
  if (!row) return row.error();
  const auto n = static_cast<std::uint64_t>(count.column_int64(0));
  count.reset();
  return n;
}

expected<void> queue_store::begin_if_needed() {
  if (db_.in_transaction()) return {};
  return db_.exec("BEGIN IMMEDIATE");
}

expected<void> queue_store::commit() {
  if (!db_.in_transaction()) return {};
  return db_.exec("COMMIT");
}

void queue_store::rollback() {
  if (db_.in_transaction()) (void)db_.exec("ROLLBACK");
  (void)load_counts();
}

std::uint64_t queue_store::new_token() {
  // 63 bits, never 0: stored as a positive SQLite integer.
  for (;;) {
    const std::uint64_t t = tokens_() >> 1;
    if (t != 0) return t;
  }
}

expected<queue_store::send_outcome> queue_store::send(const send_message& m, std::int64_t now,
                                                      std::int64_t dedup_window_ms) {
  if (auto r = begin_if_needed(); !r) return r.error();
  if (!m.dedup_id.empty()) {
    statement& find = prepared("SELECT message_id FROM troupe_queue_dedup WHERE dedup_id = ?1 AND expires_at > ?2");
    find.bind(1, std::string_view(m.dedup_id)).bind(2, now);
    expected<bool> row = find.next();
    if (!row) return row.error();
    if (*row) {
      send_outcome repeat{static_cast<std::uint64_t>(find.column_int64(0)), true};
      find.reset();
      return repeat;
    }
  }
  std::vector<std::byte> attributes;
  if (!m.attributes.empty()) attributes = to_bytes(m.attributes);
  statement& insert = prepared(
      "INSERT INTO troupe_queue_messages(body, attributes, group_id, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?5)");
  insert.bind(1, as_bytes(m.body));
  if (attributes.empty()) {
    insert.bind_null(2);
  } else {
    insert.bind(2, std::span<const std::byte>(attributes));
  }
  insert.bind(3, std::string_view(m.group_id)).bind(4, now).bind(5, now + m.delay.count());
  if (auto r = insert.run(); !r) return r.error();
  const auto id = static_cast<std::uint64_t>(db_.last_insert_rowid());
  if (!m.dedup_id.empty()) {
    statement& remember =
        prepared("INSERT OR REPLACE INTO troupe_queue_dedup(dedup_id, message_id, expires_at) VALUES (?1, ?2, ?3)");
    remember.bind(1, std::string_view(m.dedup_id))
        .bind(2, static_cast<std::int64_t>(id))
        .bind(3, now + dedup_window_ms);
    if (auto r = remember.run(); !r) return r.error();
  }
  messages_ += 1;
  bytes_ += m.body.size();
  return send_outcome{id, false};
}

expected<std::vector<picked_message>> queue_store::pick(std::uint32_t max, std::int64_t now, bool fifo) {
  // FIFO: only the oldest message of its group, and only if it is visible —
  // a leased (or delayed) oldest message keeps its whole group back.
  statement& select =
      fifo ? prepared(
                 "SELECT id, body, attributes, group_id, sent_at, receive_count FROM troupe_queue_messages AS m "
                 "WHERE visible_at <= ?1 AND id = (SELECT min(id) FROM troupe_queue_messages AS h "
                 "WHERE h.group_id = m.group_id) ORDER BY id LIMIT ?2")
           : prepared(
                 "SELECT id, body, attributes, group_id, sent_at, receive_count FROM troupe_queue_messages "
                 "WHERE visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2");
  select.bind(1, now).bind(2, static_cast<std::int64_t>(max));
  std::vector<picked_message> picked;
  for (;;) {
    expected<bool> row = select.next();
    if (!row) return row.error();
    if (!*row) break;
    picked_message p;
    p.message.message_id = static_cast<std::uint64_t>(select.column_int64(0));
    const std::span<const std::byte> body = select.column_blob(1);
    p.message.body.assign(reinterpret_cast<const char*>(body.data()), body.size());
    if (!select.column_is_null(2)) {
      auto attributes = from_bytes<std::map<std::string, std::string>>(select.column_blob(2));
      if (!attributes) {
        select.reset();
        return error(errc::storage_failed, "SQLite file '" + db_.path() + "': message " +
                                               std::to_string(p.message.message_id) +
                                               " has unreadable attributes: " + attributes.error().text());
      }
      p.message.attributes = std::move(*attributes);
    }
    p.message.group_id = std::string(select.column_text(3));
    p.message.sent_at_ms = select.column_int64(4);
    p.receive_count_before = select.column_int64(5);
    p.message.receive_count = static_cast<std::uint32_t>(p.receive_count_before);
    picked.push_back(std::move(p));
  }
  select.reset();
  return picked;
}

expected<void> queue_store::lease(std::span<queue_message* const> messages, std::int64_t until) {
  if (messages.empty()) return {};
  if (auto r = begin_if_needed(); !r) return r.error();
  // One token per receive: it is still new at each receive, and a receipt
  // names its message and lease together. No RETURNING (nor any other clause
  // that makes SQLite open a statement journal): the counts are the ones
  // pick() read, plus one. Ids past a short chunk's end stay unbound (NULL),
  // which matches no row.
  static const std::string update_sql = [] {
    std::string sql =
        "UPDATE troupe_queue_messages SET visible_at = ?1, receive_count = receive_count + 1, lease = ?2 "
        "WHERE id IN (";
    for (std::size_t i = 0; i < lease_chunk; ++i) sql += (i == 0 ? "?" : ", ?") + std::to_string(i + 3);
    return sql + ")";
  }();
  const auto token = static_cast<std::int64_t>(new_token());
  for (std::size_t first = 0; first < messages.size(); first += lease_chunk) {
    const std::span<queue_message* const> chunk =
        messages.subspan(first, std::min(lease_chunk, messages.size() - first));
    statement& update = prepared(update_sql.c_str());
    update.bind(1, until).bind(2, token);
    int parameter = 3;
    for (const queue_message* m : chunk) update.bind(parameter++, static_cast<std::int64_t>(m->message_id));
    if (auto r = update.run(); !r) return r.error();
    if (db_.changes() != static_cast<std::int64_t>(chunk.size())) {
      return error(errc::storage_failed, "SQLite file '" + db_.path() + "': " +
                                             std::to_string(chunk.size() - static_cast<std::size_t>(db_.changes())) +
                                             " message(s) vanished while being received");
    }
  }
  for (queue_message* m : messages) {
    m->receive_count += 1;
    m->receipt = make_receipt(static_cast<std::int64_t>(m->message_id), token);
  }
  return {};
}

expected<void> queue_store::remove(const std::string& receipt) {
  const std::optional<receipt_parts> parts = parse_receipt(receipt);
  if (!parts) return error(errc::invalid_receipt, "malformed receipt handle");
  if (auto r = begin_if_needed(); !r) return r.error();
  // One statement: the lease check, and the body's size for the byte count
  // handed over by troupe_note_size() (see open()) — no lookup before, no
  // RETURNING (which costs a statement journal per row).
  deleted_size_ = -1;
  statement& erase =
      prepared("DELETE FROM troupe_queue_messages WHERE id = ?1 AND lease = ?2 AND troupe_note_size(length(body))");
  if (auto r = erase.bind(1, parts->message_id).bind(2, parts->token).run(); !r) return r.error();
  if (db_.changes() == 0) {
    return error(errc::invalid_receipt,
                 "the receipt's lease is not the message's current one (it was received again, or deleted)");
  }
  // A row was deleted, so every term of its WHERE held for it, the note included.
  if (deleted_size_ < 0) {
    return error(errc::storage_failed, "SQLite file '" + db_.path() + "': a delete did not report the body's size");
  }
  messages_ -= 1;
  bytes_ -= static_cast<std::uint64_t>(deleted_size_);
  return {};
}

expected<std::uint64_t> queue_store::purge() {
  if (auto r = begin_if_needed(); !r) return r.error();
  if (auto r = prepared("DELETE FROM troupe_queue_messages").run(); !r) return r.error();
  const std::uint64_t purged = messages_;
  messages_ = 0;
  bytes_ = 0;
  return purged;
}

expected<void> queue_store::change_visibility(const std::string& receipt, std::int64_t until, std::int64_t now) {
  const std::optional<receipt_parts> parts = parse_receipt(receipt);
  if (!parts) return error(errc::invalid_receipt, "malformed receipt handle");
  if (auto r = begin_if_needed(); !r) return r.error();
  statement& update =
      prepared("UPDATE troupe_queue_messages SET visible_at = ?1 WHERE id = ?2 AND lease = ?3 AND visible_at > ?4");
  update.bind(1, until).bind(2, parts->message_id).bind(3, parts->token).bind(4, now);
  if (auto r = update.run(); !r) return r.error();
  if (db_.changes() == 0) {
    return error(errc::invalid_receipt, "the receipt's lease has ended (or the message was deleted)");
  }
  return {};
}

expected<std::optional<std::int64_t>> queue_store::next_visible_after(std::int64_t now) {
  statement& next = prepared("SELECT min(visible_at) FROM troupe_queue_messages WHERE visible_at > ?1");
  next.bind(1, now);
  expected<bool> row = next.next();
  if (!row) return row.error();
  std::optional<std::int64_t> at;
  if (*row && !next.column_is_null(0)) at = next.column_int64(0);
  next.reset();
  return at;
}

expected<void> queue_store::purge_dedup(std::int64_t now) {
  if (auto r = begin_if_needed(); !r) return r.error();
  return prepared("DELETE FROM troupe_queue_dedup WHERE expires_at <= ?1").bind(1, now).run();
}

}  // namespace troupe::durable::detail
