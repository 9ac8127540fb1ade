// ports: an actor system that talks to programs that are not actors.
//   1. /usr/bin/sort as a child program over pipes: lines in, sorted lines out,
//      its exit status as a message;
//   2. a UDP port that receives datagrams from socat (if socat is installed);
//   3. a POSIX message queue fed by mq_feeder, a small C-API program.
// docs/ports.md is the guide.
//
//   ./ports [path/to/mq_feeder]
#include <unistd.h>

#include <chrono>
#include <future>
#include <iostream>
#include <string>
#include <troupe/ports/ports.hpp>
#include <troupe/runtime/system.hpp>

namespace ports = troupe::ports;

using desk_protocol = troupe::protocol<ports::data, ports::datagram, ports::queue_message, ports::child_exited,
                                       ports::closed, ports::port_error>;

// The owner of every port: prints what arrives, and says when it has seen the
// end of each of the three stories.
struct desk : troupe::actor<desk_protocol> {
  explicit desk(std::promise<void>* done) : done_(done) {}
  void on(ports::data d) {
    std::cout << "sort says:   " << d.text() << '\n';
    if (++sorted_ == 3) step();
  }
  void on(ports::datagram d) {
    std::cout << "udp from " << d.from << ": " << d.text();
    step();
  }
  void on(ports::queue_message m) {
    std::cout << "queue (priority " << m.priority << "): " << m.text() << '\n';
    if (++queued_ == 3) step();
  }
  void on(const ports::child_exited& e) {
    if (const auto* s = std::get_if<ports::exit_status>(&e.status)) {
      std::cout << "a program exited with status " << s->code << '\n';
    }
  }
  void on(const ports::closed& c) { std::cout << "closed: " << c.why << '\n'; }
  void on(const ports::port_error& e) { std::cout << "port error: " << e.what << '\n'; }
  // The ports are linked to this actor: their ends arrive here as messages
  // (each program's port ends normally once the program has exited 0).
  void on(const troupe::exit& e) {
    if (!e.reason.is_normal()) std::cout << "a port failed: " << e.reason << '\n';
  }

 private:
  void step() {
    if (++steps_ == wanted) done_->set_value();
  }
  std::promise<void>* done_;
  int sorted_ = 0;
  int queued_ = 0;
  int steps_ = 0;

 public:
  static inline int wanted = 3;
};

int main(int argc, char** argv) {
  const std::string feeder = argc > 1 ? argv[1] : "./mq_feeder";
  const bool have_socat = ::access("/usr/bin/socat", X_OK) == 0;
  if (!have_socat) desk::wanted = 2;

  ports::reactor io;  // before the system: it must outlive every port
  std::promise<void> done;
  troupe::system sys;
  auto me = sys.spawn<desk>(&done);

  // 1. sort over pipes.
  ports::port_options lines;
  lines.frames = ports::framing::lines();
  auto sorter = ports::spawn(io, sys, me, ports::program({"/usr/bin/sort"}), lines).value();
  for (const char* fruit : {"pear", "apple", "fig"}) sorter.tell(ports::write{ports::bytes_of(fruit)});
  sorter.tell(ports::close_output{});

  // 2. UDP from socat.
  if (have_socat) {
    auto udp = ports::spawn(io, sys, me, ports::udp_bind("127.0.0.1", 0)).value();
    const std::string where = udp.ask(ports::local_address{}, std::chrono::seconds(5)).get();
    (void)ports::spawn(
        io, sys, me, ports::program({"/bin/sh", "-c", "echo hello over udp | /usr/bin/socat -u - UDP-SENDTO:" + where}),
        lines);
  } else {
    std::cout << "(socat not installed: skipping the UDP part)\n";
  }

  // 3. A POSIX queue, fed by a C program.
  ports::posix_queue_spec queue;
  queue.name = "/troupe-example-" + std::to_string(::getpid());
  queue.unlink_if_created = true;
  auto inbox = ports::spawn(io, sys, me, ports::posix_queue(queue)).value();
  (void)ports::spawn(io, sys, me, ports::program({feeder, queue.name}), lines).value();

  if (done.get_future().wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    std::cerr << "ports: not everything arrived within 20 s\n";
    return 1;
  }
  inbox.tell(ports::close{});
  return 0;
}
