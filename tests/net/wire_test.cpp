// The pure parts of the node protocol (net/wire/wire.hpp) that the fuzz
// targets do not judge: the cookie file's rules, the handshake's MACs and
// endpoint parsing. Frames, hellos and challenges are fuzzed (tests/fuzz).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "wire/wire.hpp"

namespace {

namespace td = troupe::detail;

TEST(wire, cookie_files_must_be_private_and_long_enough) {
  char pattern[] = "/tmp/troupe-cookie-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string dir = pattern;
  const std::string made = dir + "/sub/cookie";
  auto created = td::load_cookie(made, /*create=*/true);
  ASSERT_TRUE(created) << created.error();
  EXPECT_EQ(created->size(), 64u);
  EXPECT_EQ(std::filesystem::status(made).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(*td::load_cookie(made, false), *created);  // stable
  std::filesystem::permissions(made, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  auto open = td::load_cookie(made, false);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().text().find("0640"), std::string::npos) << open.error();
  const std::string short_one = dir + "/short";
  { std::ofstream(short_one) << "tiny\n"; }
  std::filesystem::permissions(short_one, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_FALSE(td::load_cookie(short_one, false));
  EXPECT_FALSE(td::load_cookie(dir + "/missing", false));
  std::filesystem::remove_all(dir);
}

TEST(wire, macs_depend_on_cookie_role_and_both_nonces) {
  const td::nonce n1 = td::fresh_nonce(), n2 = td::fresh_nonce();
  const auto m = td::compute_mac("cookie-cookie-cookie", td::dialer_role, n1, n2);
  EXPECT_TRUE(td::macs_equal(m, td::compute_mac("cookie-cookie-cookie", td::dialer_role, n1, n2)));
  EXPECT_FALSE(td::macs_equal(m, td::compute_mac("cookie-cookie-cookiE", td::dialer_role, n1, n2)));
  EXPECT_FALSE(td::macs_equal(m, td::compute_mac("cookie-cookie-cookie", td::acceptor_role, n1, n2)));
  EXPECT_FALSE(td::macs_equal(m, td::compute_mac("cookie-cookie-cookie", td::dialer_role, n2, n1)));
  EXPECT_FALSE(td::macs_equal(m, std::span(m).first(31)));
  // The transcript (the hellos) is part of the proof.
  const std::vector<std::byte> hello1(10, std::byte{1}), hello2(10, std::byte{2});
  EXPECT_FALSE(td::macs_equal(td::compute_mac("cookie-cookie-cookie", td::dialer_role, n1, n2, hello1),
                              td::compute_mac("cookie-cookie-cookie", td::dialer_role, n1, n2, hello2)));
}

TEST(wire, endpoints_parse_strictly) {
  auto e = td::parse_endpoint("tcp://10.1.2.3:4000");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "10.1.2.3");
  EXPECT_EQ(e->port, 4000);
  auto v6 = td::parse_endpoint("tcp://[::1]:9");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(td::format_endpoint("::1", 9), "tcp://[::1]:9");
  for (const char* bad : {"10.1.2.3:4000", "tcp://host", "tcp://host:0", "tcp://host:70000", "tcp://:80",
                          "tcp://ho st:80", "tcp://[::1:80", "tcp://host:8x"}) {
    EXPECT_FALSE(td::parse_endpoint(bad)) << bad;
  }
  EXPECT_TRUE(td::parse_endpoint("tcp://0.0.0.0:0", /*allow_any_port=*/true));
}

}  // namespace
