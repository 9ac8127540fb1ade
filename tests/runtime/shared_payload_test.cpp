// Shared payloads (shared_message_envelope, runtime/detail/reply.hpp): one
// immutable message that several envelopes point at, as a topic's publication
// reaches its local subscribers. typed_cell hands it to a handler taking
// const M& in place, and gives every other kind of handler a copy of its own.
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>
#include <troupe/troupe.hpp>

#include "support/watchdog.hpp"

namespace {

using namespace std::chrono_literals;

struct note {
  std::string text;
};
using note_protocol = troupe::protocol<note>;

// Where the handler's note lives, and what it said.
struct seen {
  const void* where;
  std::string text;
};

struct by_const_ref : troupe::actor<note_protocol> {
  explicit by_const_ref(std::promise<seen>* p) : out(p) {}
  void on(const note& n) { out->set_value(seen{&n, n.text}); }
  std::promise<seen>* out;
};
struct by_value : troupe::actor<note_protocol> {
  explicit by_value(std::promise<seen>* p) : out(p) {}
  void on(note n) { out->set_value(seen{&n, n.text}); }
  std::promise<seen>* out;
};
struct by_rvalue_ref : troupe::actor<note_protocol> {
  explicit by_rvalue_ref(std::promise<seen>* p) : out(p) {}
  void on(note&& n) { out->set_value(seen{&n, std::move(n.text)}); }
  std::promise<seen>* out;
};
struct by_coroutine : troupe::actor<note_protocol> {
  explicit by_coroutine(std::promise<seen>* p) : out(p) {}
  troupe::task<void> on(const note& n) {
    out->set_value(seen{&n, n.text});
    co_return;
  }
  std::promise<seen>* out;
};

// Puts the one shared payload in `to`'s mailbox, as a topic does.
template <class P>
void send_shared(const troupe::ref<P>& to, const std::shared_ptr<const note>& payload) {
  ASSERT_FALSE(troupe::detail::ref_access::get(to)->enqueue(
      new troupe::detail::shared_message_envelope<note>(P::template index_of<note>, payload)));
}

seen wait(std::promise<seen>& p) {
  auto f = p.get_future();
  EXPECT_EQ(f.wait_for(10s), std::future_status::ready);
  return f.get();
}

TEST(shared_payload, a_const_ref_handler_reads_the_shared_object_in_place) {
  troupe::test_support::watchdog guard;
  std::promise<seen> first, second;  // outlive the system
  troupe::system sys;
  const auto payload = std::make_shared<const note>(note{"shared"});
  send_shared(sys.spawn<by_const_ref>(&first), payload);
  send_shared(sys.spawn<by_const_ref>(&second), payload);
  const seen a = wait(first);
  const seen b = wait(second);
  EXPECT_EQ(a.where, payload.get());
  EXPECT_EQ(b.where, payload.get());
  EXPECT_EQ(a.text, "shared");
}

TEST(shared_payload, by_value_rvalue_and_coroutine_handlers_get_a_copy_of_their_own) {
  troupe::test_support::watchdog guard;
  std::promise<seen> value, rvalue, coroutine;
  troupe::system sys;
  const auto payload = std::make_shared<const note>(note{"original"});
  send_shared(sys.spawn<by_value>(&value), payload);
  send_shared(sys.spawn<by_rvalue_ref>(&rvalue), payload);
  send_shared(sys.spawn<by_coroutine>(&coroutine), payload);
  for (std::promise<seen>* p : {&value, &rvalue, &coroutine}) {
    const seen s = wait(*p);
    EXPECT_NE(s.where, payload.get());
    EXPECT_EQ(s.text, "original");
  }
  EXPECT_EQ(payload->text, "original");  // the rvalue handler moved out of its copy only
}

TEST(shared_payload, lambda_actors_and_scoped_inboxes_take_it_like_a_plain_message) {
  troupe::test_support::watchdog guard;
  std::promise<seen> lambda;
  troupe::system sys;
  const auto payload = std::make_shared<const note>(note{"both"});
  send_shared(sys.spawn<note_protocol>([&lambda](const note& n) { lambda.set_value(seen{&n, n.text}); }), payload);
  EXPECT_EQ(wait(lambda).where, payload.get());
  troupe::scoped<note_protocol> inbox{sys};
  send_shared(inbox.self(), payload);
  auto got = inbox.receive<note>(10s);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->text, "both");
}

}  // namespace
