// down and exit: what the runtime tells an actor about another actor's end.
//
//   struct watcher : troupe::actor<P> {
//     void on_start() { monitor(worker); link(partner); }
//     void on(const troupe::down& d) { ... }   // a monitored actor stopped
//     void on(const troupe::exit& e) { ... }   // declaring this traps exits from links
//   };
//
// Handlers for them are declared like any other handler, but the types are not
// listed in the protocol: nobody sends them but the runtime. The Erlang defaults
// apply to an actor that declares no handler:
//   - down: ignored;
//   - exit (a linked actor stopped): ignored if the reason is normal, otherwise
//     this actor stops too, with the same reason. Declaring on(const exit&)
//     "traps exits": every exit signal arrives as a message instead, normal ones
//     included, and the actor decides.
#pragma once

#include <cstdint>

#include "troupe/runtime/actor_addr.hpp"
#include "troupe/runtime/exit_reason.hpp"

namespace troupe {

// A monitor fired: `who` stopped with `reason`. `monitor` is the id monitor()
// returned. Delivered once per monitor, immediately if `who` was already gone.
struct down {
  actor_addr who;
  exit_reason reason;
  std::uint64_t monitor = 0;
};

// A linked actor stopped (or someone called send_exit on this actor).
struct exit {
  actor_addr who;
  exit_reason reason;
};

}  // namespace troupe
