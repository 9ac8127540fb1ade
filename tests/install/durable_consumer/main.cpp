// Uses an installed troupe::durable: an outbox in a fresh SQLite file keeps
// what was appended and not confirmed, across closing and opening it again.
// Exits 0 only if it reads back exactly that.
#include <troupe/durable/outbox.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: troupe_durable_consumer DIRECTORY\n");
    return 2;
  }
  const std::filesystem::path file = std::filesystem::path(argv[1]) / "outbox.db";
  const std::vector<std::byte> bytes{std::byte{1}, std::byte{2}, std::byte{3}};
  {
    auto box = troupe::durable::outbox::open(file, "orders");
    if (!box) {
      std::fprintf(stderr, "open: %s\n", box.error().text().c_str());
      return 1;
    }
    for (std::uint64_t seq = 1; seq <= 3; ++seq) box->append(seq, bytes);
    box->confirm(1);
    if (auto flushed = box->flush(); !flushed) {
      std::fprintf(stderr, "flush: %s\n", flushed.error().text().c_str());
      return 1;
    }
  }
  auto again = troupe::durable::outbox::open(file, "orders");
  if (!again) return 1;
  auto entries = again->load();
  if (!entries || entries->size() != 2 || (*entries)[0].seq != 2 || (*entries)[1].seq != 3 ||
      (*entries)[1].bytes != bytes) {
    std::fprintf(stderr, "load: not the two unconfirmed entries\n");
    return 1;
  }
  return 0;
}
