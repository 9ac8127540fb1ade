// The durable tests' main: GoogleTest, or, started as `--child <role> ...` by a
// test (durable_support.hpp's child), one of the roles below, which report on
// stdout one line per event so the test can wait for it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "troupe/durable/outbox.hpp"

namespace {

void say(const std::string& line) {
  const std::string text = line + "\n";
  // One write per line: lines from the writer thread and this one never interleave.
  [[maybe_unused]] const ssize_t ignored = ::write(STDOUT_FILENO, text.data(), text.size());
}

// Blocks until the test closes our stdin (or kills us).
void wait_for_stdin_eof() {
  char c = 0;
  while (::read(STDIN_FILENO, &c, 1) > 0) {
  }
}

std::vector<std::byte> body_of(std::uint64_t seq) {
  const std::string text = "entry-" + std::to_string(seq);
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

// outbox-hold <file>: opens an outbox, says "open", holds the file until stdin closes.
int outbox_hold(const char* file) {
  auto box = troupe::durable::outbox::open(file, "held");
  if (!box) {
    say("error " + box.error().to_string());
    return 1;
  }
  say("open");
  wait_for_stdin_eof();
  return 0;
}

// outbox-append <file> <count>: appends seq 1..count as fast as it can, saying
// "durable <seq>" as each becomes durable; then waits for stdin to close.
int outbox_append(const char* file, std::uint64_t count) {
  auto box = troupe::durable::outbox::open(file, "stream");
  if (!box) {
    say("error " + box.error().to_string());
    return 1;
  }
  say("open");
  for (std::uint64_t seq = 1; seq <= count; ++seq) {
    box->append(seq, body_of(seq), [seq](const troupe::expected<void>& r) {
      say(r ? "durable " + std::to_string(seq) : "failed " + std::to_string(seq) + " " + r.error().to_string());
    });
  }
  wait_for_stdin_eof();
  return 0;
}

}  // namespace

namespace durable_test {
std::vector<std::byte> entry_body(std::uint64_t seq) { return body_of(seq); }
}  // namespace durable_test

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--child") == 0) {
    const std::string role = argv[2];
    if (role == "outbox-hold" && argc == 4) return outbox_hold(argv[3]);
    if (role == "outbox-append" && argc == 5) return outbox_append(argv[3], std::strtoull(argv[4], nullptr, 10));
    std::fprintf(stderr, "unknown child role or arguments: %s\n", role.c_str());
    return 2;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
