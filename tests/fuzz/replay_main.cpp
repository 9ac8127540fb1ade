// The main() of a fuzz target in builds without libFuzzer (TROUPE_FUZZ off):
// runs LLVMFuzzerTestOneInput once on every file named, and on every file in
// every directory named (recursively, in name order; dot files skipped). So the
// seed corpus and each past finding are checked by ctest in every build,
// under ASan and TSan too.
//
//   fuzz_frames tests/fuzz/corpus/fuzz_frames tests/fuzz/regressions/fuzz_frames
//   fuzz_frames crash-3f2a...   # one reproducer
//
// A failed invariant aborts, naming the input last started on stderr.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "fuzz_check.hpp"

namespace {

namespace fs = std::filesystem;

bool collect(const fs::path& path, std::vector<fs::path>& files) {
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    files.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, error)) {
    std::fprintf(stderr, "replay: %s is neither a file nor a directory\n", path.c_str());
    return false;
  }
  std::vector<fs::path> found;
  for (fs::recursive_directory_iterator it(path, error), end; !error && it != end; it.increment(error)) {
    if (it->path().filename().string().starts_with('.')) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) found.push_back(it->path());
  }
  if (error) {
    std::fprintf(stderr, "replay: cannot list %s: %s\n", path.c_str(), error.message().c_str());
    return false;
  }
  std::ranges::sort(found);
  files.insert(files.end(), found.begin(), found.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <file-or-directory>...\n", argc > 0 ? argv[0] : "replay");
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (!collect(argv[i], files)) return 2;
  }
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
      return 2;
    }
    const std::vector<char> content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Named before running: a crash leaves this as the last line.
    std::fprintf(stderr, "replay: %s\n", file.c_str());
    // A copy of exactly the input's size: ASan catches a read one past the end.
    const std::vector<std::uint8_t> input(content.begin(), content.end());
    (void)LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::printf("replayed %zu inputs\n", files.size());
  return 0;
}
