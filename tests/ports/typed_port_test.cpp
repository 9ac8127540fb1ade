// The typed layer: frames decoded with troupe's serialization into the
// owner's own type, from a Python program that writes the wire format by hand.
#include "ports_support.hpp"
#include "support/watchdog.hpp"

namespace ports_test {
namespace {

struct reading {
  std::int32_t sensor;
  std::string unit;
};

using typed_protocol = troupe::protocol<ports::received<reading>, ports::port_error, ports::child_exited>;

struct typed_recorder : troupe::actor<typed_protocol> {
  explicit typed_recorder(event_log* log) : log_(log) {}
  void on(ports::received<reading> r) { log_->add("reading " + std::to_string(r.value.sensor) + " " + r.value.unit); }
  void on(const ports::port_error& e) { log_->add("error " + e.what); }
  void on(const ports::child_exited& /*unused*/) {}
  void on(const troupe::exit& e) { log_->add("exit " + e.reason.to_string()); }

 private:
  event_log* log_;
};

TEST(typed_port, frames_decode_into_the_owners_type_and_one_that_does_not_closes_the_port) {
  troupe::test_support::watchdog guard;
  ports::reactor io;
  event_log log;
  troupe::system sys(two_workers());
  auto owner = sys.spawn<typed_recorder>(&log);
  // reading{7, "kPa"}: i32 little-endian, then a varint length and the bytes;
  // each frame behind a u32 big-endian length. Then a frame of 2 bytes: too short.
  const char* script =
      "import struct, sys\n"
      "def frame(b): sys.stdout.buffer.write(struct.pack('>I', len(b)) + b)\n"
      "frame(struct.pack('<i', 7) + bytes([3]) + b'kPa')\n"
      "frame(struct.pack('<i', -2) + bytes([1]) + b'C')\n"
      "frame(b'\\x01\\x02')\n"
      "sys.stdout.flush()\n";
  ports::port_options options;
  options.frames = ports::framing::u32_length(1024);
  auto p = ports::spawn_typed<reading>(io, sys, owner, ports::program({"/usr/bin/python3", "-c", script}), options);
  ASSERT_TRUE(p) << p.error().text();
  ASSERT_TRUE(log.wait_for("reading 7 kPa"));
  ASSERT_TRUE(log.wait_for("reading -2 C"));
  ASSERT_FALSE(wait_for_prefix(log, "error a frame that does not decode").empty());
  ASSERT_FALSE(wait_for_prefix(log, "exit error: a frame that does not decode").empty());
}

}  // namespace
}  // namespace ports_test
