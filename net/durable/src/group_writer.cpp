// group_writer: see group_writer.hpp.
#include "group_writer.hpp"

#include <utility>

namespace troupe::durable::detail {

statement& group_writer::session::prepared(const char* sql) {
  auto found = statements_.find(std::string_view(sql));
  if (found == statements_.end()) {
    expected<statement> made = db_.prepare(sql);
    if (!made) throw troupe_error(made.error());
    found = statements_.emplace(sql, std::move(*made)).first;
  }
  found->second.reset();
  return found->second;
}

expected<std::shared_ptr<group_writer>> group_writer::open(const std::string& path, const database_options& options,
                                                           const char* schema) {
  expected<database> db = database::open(path, options);
  if (!db) return db.error();
  if (auto r = db->exec(schema); !r) return r.error();
  // Not make_shared: the constructor is private.
  return std::shared_ptr<group_writer>(new group_writer(std::move(*db)));
}

group_writer::group_writer(database db) : db_(std::move(db)), thread_([this] { loop(); }) {}

group_writer::~group_writer() {
  {
    troupe::mutex_lock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void group_writer::submit(work w, done d) {
  {
    troupe::mutex_lock lock(mutex_);
    jobs_.push_back(job{std::move(w), std::move(d)});
  }
  wake_.notify_one();
}

std::size_t group_writer::pending() const {
  troupe::mutex_lock lock(mutex_);
  return jobs_.size() + in_batch_;
}

void group_writer::loop() {
  std::vector<job> batch;
  for (;;) {
    {
      troupe::mutex_lock lock(mutex_);
      wake_.wait(lock, [&]() TROUPE_REQUIRES(mutex_) { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and everything submitted is committed
      batch.swap(jobs_);
      in_batch_ = batch.size();
    }
    const expected<void> result = run_batch(batch);
    {
      // Before the callbacks: one that asks pending() sees its own work done.
      troupe::mutex_lock lock(mutex_);
      in_batch_ = 0;
    }
    for (job& j : batch) {
      if (j.on_done) j.on_done(result);
    }
    batch.clear();
  }
}

expected<void> group_writer::run_batch(std::vector<job>& batch) {
  if (auto r = db_.exec("BEGIN IMMEDIATE"); !r) return r.error();
  expected<void> result;
  for (job& j : batch) {
    try {
      result = j.run(session_);
    } catch (const troupe_error& e) {
      result = e.error();
    }
    if (!result) break;
  }
  if (result) result = db_.exec("COMMIT");
  // relaxed: a statistic (see commits()).
  if (result) commits_.fetch_add(1, std::memory_order_relaxed);
  // A failed statement or commit may have ended the transaction already.
  if (!result && db_.in_transaction()) (void)db_.exec("ROLLBACK");
  return result;
}

}  // namespace troupe::durable::detail
