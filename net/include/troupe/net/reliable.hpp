// Reliable channels: at-least-once delivery from a producing actor to one
// consuming actor, or to many that pull work as they have room, at every
// distance a ref reaches (this process, another process, another machine).
//
//   struct job { std::int64_t n; };
//   struct source : troupe::actor<troupe::protocol<troupe::demand<job>>> {
//     troupe::producer_window<job> out;
//     void on(const troupe::demand<job>& d) { out.update(d); while (out.credit() > 0) (void)out.send(job{}); }
//   };
//   struct worker : troupe::actor<troupe::protocol<troupe::delivery<job>>> {
//     troupe::ref<troupe::producer_controller_protocol<job>> from;
//     explicit worker(troupe::ref<troupe::producer_controller_protocol<job>> p) : from(std::move(p)) {}
//     void on_start() { (void)troupe::spawn_consumer<job>(system(), self(), from); }
//     void on(const troupe::delivery<job>& d) { /* ... */ (void)d.confirm(); }
//   };
//   auto out = troupe::spawn_producer<job>(sys, sys.spawn<source>());
//   sys.spawn<worker>(out);                       // or on another node: refs travel
//
// Built as Akka's Reliable Delivery is: two controller actors, one beside the
// producing actor (producer_controller.hpp), one beside each consuming actor
// (consumer_controller.hpp), that talk with ordinary typed messages
// (reliable_messages.hpp) — so a channel crosses processes and machines like
// any message, and needs no record of its own on the wire.
//
// What is promised (docs/delivery.md, "At-least-once channels", has the table
// per distance and the comparison with Akka, OTP and Orleans):
// - While the producer controller, a consumer controller and the connection
//   between them live, the consuming actor gets every message sent to it
//   exactly once, in the order the producing actor sent them (work pulling:
//   each consumer in order of its own messages; no order across consumers).
// - At least once across failures: a message is kept by the producer until the
//   consumer confirmed it. A consumer that stops, whose process dies or whose
//   connection is lost, or that is restarted in place by its supervisor, gives
//   its unconfirmed messages back, and they go to the next consumer with room —
//   the same one restarted, or another. A message it handled but had not yet
//   confirmed (or whose confirmation had not been acknowledged yet) is handed
//   again: duplicates across a failure, at most one window's worth per consumer.
// - A message not confirmed within producer_options::resend_after is sent
//   again (the consumer drops what it had); a gap (a message lost on the way)
//   makes the consumer ask for the rest again at once.
// - Flow control: demand<T> tells the producing actor how far it may send; the
//   producer holds at most `buffer` waiting messages plus each consumer's window
//   of unconfirmed ones. A message beyond the demand is refused (counted in
//   producer_stats::rejected), or fails the controller (full_window_policy).
// - A producer with a store (producer_store.hpp; troupe::durable for SQLite)
//   sends a message only once it is durable, and a controller started again on
//   the store sends the unconfirmed messages again and numbers on; what it
//   sends again that a consumer had handled is at most one window.
// - Batches: what a producer controller sends in one activation goes in
//   batches of at most an eighth of the consumer's window (and 256 messages),
//   each one message on the wire, so that confirmations of the first flow
//   back while the next are on their way; the consumer controller queues a
//   batch's deliveries in its actor's mailbox in one step.
//   delivery<T>::batch_end lets a consumer confirm once per batch
//   (confirmation is cumulative).
// - Not promised: anything while the producer controller is down without a
//   store (its messages are gone), nor exactly-once across a consumer's failure.
//
// Untrusted input: a controller's messages from another process are checked
// where used. A seq out of order or beyond the window, an acknowledgement of
// more than was sent, an unknown channel, change nothing but counters; a
// message that does not decode closes that connection like any message.
//
// Thread safety: the controllers are actors; producer_window<T> belongs to its
// producing actor.
#pragma once

#include "troupe/net/consumer_controller.hpp"  // IWYU pragma: export
#include "troupe/net/producer_controller.hpp"  // IWYU pragma: export
#include "troupe/net/producer_store.hpp"       // IWYU pragma: export
#include "troupe/net/reliable_messages.hpp"    // IWYU pragma: export
