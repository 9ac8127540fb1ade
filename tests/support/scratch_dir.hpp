// scratch_dir: a fresh directory under the test's temporary directory, removed
// with everything in it when the test is done (durable queues' files, .proto
// stubs a test generates).
//
//   troupe::test_support::scratch_dir dir("troupe-grpc");
//   std::ofstream(dir.file("bank.proto")) << proto;
//
// Thread safety: a value owned by one test.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "support/child_process.hpp"

namespace troupe::test_support {

class scratch_dir {
 public:
  explicit scratch_dir(const std::string& prefix = "troupe-test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw_errno("mkdtemp");
    path_ = pattern;
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] std::filesystem::path file(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace troupe::test_support
