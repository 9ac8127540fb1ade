// The durable queue across processes, killed -9: a queue in a child node under
// load from producers and a consumer in this one, killed mid-stream and
// restarted on the same file, with exact accounting; and a worker process
// killed while it holds a lease.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "durable/durable_support.hpp"
#include "support/node_fixture.hpp"
#include "support/watchdog.hpp"
#include "troupe/durable/queue.hpp"
#include "troupe/net/node.hpp"

namespace {

using namespace std::chrono_literals;
namespace durable = troupe::durable;
using queue_ref = troupe::ref<durable::queue_protocol>;

class queue_kill : public troupe::test_support::node_fixture {
 protected:
  // A child node serving the queue on `file`, once it said "ready".
  std::unique_ptr<durable_test::child> start_queue_node(const std::string& name, const std::string& file) {
    auto node = std::make_unique<durable_test::child>(std::vector<std::string>{"queue-node", dir_, name, file});
    std::optional<std::string> line = node->read_line();
    EXPECT_EQ(line, "ready");
    return node;
  }
  durable_test::scratch_dir files;
};

// What the test's threads saw, under one lock.
struct ledger {
  std::mutex mutex;
  std::condition_variable changed;
  std::set<std::string> acknowledged;        // sends whose reply said ok
  std::set<std::string> attempted;           // every send made (acknowledged or not)
  std::set<std::string> deleted;             // deletes whose reply said ok
  std::set<std::string> received_undeleted;  // received before the kill, delete not acknowledged
};

TEST_F(queue_kill, every_acknowledged_send_survives_kill_9_of_the_queue_process_and_nothing_deleted_returns) {
  troupe::test_support::watchdog guard(120s);
  const std::string file = files.file("q.db").string();
  troupe::node self(config("client"));
  auto first = start_queue_node("queue-a", file);
  queue_ref q = self.lookup<durable::queue_protocol>("troupe://queue-a/queue", 10s).value();

  ledger book;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&, p] {
      for (int n = 0; !stop.load(std::memory_order_relaxed); ++n) {
        std::string body = "p" + std::to_string(p) + "-" + std::to_string(n);
        {
          std::lock_guard lock(book.mutex);
          book.attempted.insert(body);
        }
        auto r = q.ask(durable::send_message{.body = body}, 5s).try_get();
        if (!r || !r->status.ok()) return;  // the queue is gone: this send's fate is unknown
        std::lock_guard lock(book.mutex);
        book.acknowledged.insert(body);
        book.changed.notify_all();
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      auto r = q.ask(durable::receive_messages{10, 1s, 100ms}, 5s).try_get();
      if (!r || !r->status.ok()) return;
      std::vector<std::string> receipts;
      {
        std::lock_guard lock(book.mutex);
        for (const auto& m : r->messages) {
          book.received_undeleted.insert(m.body);
          receipts.push_back(m.receipt);
        }
      }
      if (receipts.empty()) continue;
      auto d = q.ask(durable::delete_messages{receipts}, 5s).try_get();
      if (!d) return;
      std::lock_guard lock(book.mutex);
      for (std::size_t i = 0; i < d->size() && i < r->messages.size(); ++i) {
        if (!(*d)[i].ok()) continue;
        book.deleted.insert(r->messages[i].body);
        book.received_undeleted.erase(r->messages[i].body);
      }
    }
  });
  {
    std::unique_lock lock(book.mutex);
    ASSERT_TRUE(book.changed.wait_for(lock, 60s, [&] { return book.acknowledged.size() >= 3000; }));
  }
  const int status = first->kill();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();

  // The same file, a new process: drain it.
  auto second = start_queue_node("queue-b", file);
  queue_ref q2 = self.lookup<durable::queue_protocol>("troupe://queue-b/queue", 10s).value();
  std::map<std::string, int> drained;
  for (;;) {
    const durable::queue_stats stats = q2.ask(durable::get_queue_stats{}, 5s).get();
    if (stats.messages == 0) break;
    // Long polls: messages leased before the kill come back within 1 s.
    auto r = q2.ask(durable::receive_messages{100, 60s, 2s}, 10s).get();
    ASSERT_TRUE(r.status.ok()) << r.status.text;
    std::vector<std::string> receipts;
    for (const auto& m : r.messages) {
      ++drained[m.body];
      receipts.push_back(m.receipt);
    }
    if (!receipts.empty()) {
      for (const auto& s : q2.ask(durable::delete_messages{receipts}, 5s).get()) ASSERT_TRUE(s.ok()) << s.text;
    }
  }

  std::lock_guard lock(book.mutex);
  std::size_t lost = 0;
  std::size_t redelivered_deleted = 0;
  std::size_t duplicates = 0;
  for (const std::string& body : book.acknowledged) {
    if (book.deleted.count(body) == 0 && drained.count(body) == 0) ++lost;
  }
  for (const auto& [body, times] : drained) {
    EXPECT_EQ(times, 1) << body << " drained twice from one restart";
    EXPECT_EQ(book.attempted.count(body), 1u) << body << " was never sent";
    if (book.deleted.count(body) != 0) ++redelivered_deleted;
    if (book.received_undeleted.count(body) != 0) ++duplicates;
  }
  EXPECT_EQ(lost, 0u) << "acknowledged sends missing after the restart";
  EXPECT_EQ(redelivered_deleted, 0u) << "messages whose delete was acknowledged came back";
  // Delivered twice: only those received but whose delete was not acknowledged
  // when the queue died (at most one receive batch in flight).
  EXPECT_LE(duplicates, 10u);
  EXPECT_LE(drained.size() + book.deleted.size(), book.attempted.size());
  RecordProperty("acknowledged", static_cast<int>(book.acknowledged.size()));
  RecordProperty("deleted_before_kill", static_cast<int>(book.deleted.size()));
  RecordProperty("drained_after_restart", static_cast<int>(drained.size()));
  RecordProperty("delivered_twice", static_cast<int>(duplicates));
  second->close_stdin();
  EXPECT_TRUE(second->wait());
}

TEST_F(queue_kill, a_message_leased_by_a_worker_killed_9_comes_back_after_its_visibility_timeout) {
  troupe::test_support::watchdog guard(120s);
  troupe::node self(config("owner"));
  durable::queue_config c;
  c.file = files.file("q.db").string();
  queue_ref q = durable::spawn_queue(self, c).value();
  self.publish("queue", q);
  ASSERT_TRUE(q.ask(durable::send_message{.body = "the job"}, 5s).get().status.ok());

  durable_test::child worker({"worker", dir_, "worker", "troupe://owner/queue", "2000"});
  ASSERT_EQ(worker.read_line(), "got the job 1");
  EXPECT_TRUE(q.ask(durable::receive_messages{1, 30s, 0ms}, 5s).get().messages.empty()) << "leased by the worker";
  const int status = worker.kill();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // A long poll: returns as soon as the worker's 2 s lease ends.
  auto again = q.ask(durable::receive_messages{1, 30s, 10s}, 20s).get();
  ASSERT_EQ(again.messages.size(), 1u) << again.status.text;
  EXPECT_EQ(again.messages[0].body, "the job");
  EXPECT_EQ(again.messages[0].receive_count, 2u);
}

}  // namespace
