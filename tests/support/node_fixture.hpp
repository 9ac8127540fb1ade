// node_fixture: a GoogleTest fixture for tests that create troupe::nodes. Each
// test gets its own runtime directory (mode 0700, removed afterwards), so node
// names never collide between tests or with other programs of this user; child
// nodes inherit it through spawn_node.
//
//   class my_nodes : public troupe::test_support::node_fixture {};
//   TEST_F(my_nodes, ...) { troupe::node a(config("a")); ... }
//
// Thread safety: the test's thread only.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "troupe/net/node.hpp"

namespace troupe::test_support {

class node_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/troupe-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);  // mkdtemp makes it mode 0700
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  // A node named `name` in this test's runtime directory, with two workers.
  troupe::node_config config(std::string name) const {
    troupe::node_config cfg;
    cfg.name = std::move(name);
    cfg.runtime_dir = dir_;
    cfg.system.worker_threads = 2;
    return cfg;
  }
  std::string dir_;
};

}  // namespace troupe::test_support
