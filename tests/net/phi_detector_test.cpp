// The phi-accrual failure detector of TCP connections (net/tcp/phi_detector.hpp),
// fed with heartbeat gaps directly: no sockets, no clock.
#include <gtest/gtest.h>

#include "tcp/phi_detector.hpp"

namespace {

namespace td = troupe::detail;

TEST(phi_detector, silence_grows_suspicion_and_regular_heartbeats_keep_it_low) {
  td::phi_detector d(250, 500, 100, 100);
  for (int i = 0; i < 50; ++i) d.add_gap(250 + (i % 5) * 5);
  EXPECT_LT(d.phi(300), 1.0);
  EXPECT_LT(d.phi(800), 8.0);
  EXPECT_GT(d.phi(1600), 8.0);
  EXPECT_LT(d.phi(1000), d.phi(1200));
  // Irregular heartbeats widen the tolerance.
  td::phi_detector jittery(250, 500, 100, 100);
  for (int i = 0; i < 50; ++i) jittery.add_gap(i % 2 == 0 ? 50 : 700);
  EXPECT_LT(jittery.phi(1600), d.phi(1600));
}

}  // namespace
