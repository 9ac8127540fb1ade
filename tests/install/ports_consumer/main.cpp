// Uses an installed troupe::ports: /bin/cat as a program port echoes one line
// back to its owner. Exits 0 only if the line comes back and cat exits 0.
#include <troupe/ports/ports.hpp>
#include <troupe/runtime/system.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>

namespace ports = troupe::ports;
using owner_protocol = troupe::protocol<ports::data, ports::child_exited>;

struct owner : troupe::actor<owner_protocol> {
  explicit owner(std::promise<std::string>* done) : done_(done) {}
  void on(ports::data d) { line_ = d.text(); }
  void on(ports::child_exited e) {
    const auto* status = std::get_if<ports::exit_status>(&e.status);
    done_->set_value(status != nullptr && status->code == 0 ? line_ : "bad exit");
  }
  std::promise<std::string>* done_;
  std::string line_;
};

int main() {
  ports::reactor io;
  std::promise<std::string> done;
  troupe::system sys;
  auto me = sys.spawn<owner>(&done);
  ports::port_options options;
  options.frames = ports::framing::lines();
  auto cat = ports::spawn(io, sys, me, ports::program({"/bin/cat"}), options);
  if (!cat) {
    std::fprintf(stderr, "spawn: %s\n", cat.error().text().c_str());
    return 1;
  }
  cat->tell(ports::write{ports::bytes_of("hello")});
  cat->tell(ports::close_output{});
  auto result = done.get_future();
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready) return 1;
  const std::string line = result.get();
  if (line != "hello") {
    std::fprintf(stderr, "got '%s'\n", line.c_str());
    return 1;
  }
  return 0;
}
