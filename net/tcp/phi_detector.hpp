// phi_detector: the phi-accrual failure detector of a TCP connection. Owns: the
// heartbeat gap statistics. May use: std only.
//
// phi-accrual failure detection (Hayashibara et al., 2004; the variant Akka and
// Cassandra use): instead of a fixed timeout, the detector learns the gaps
// between a peer's heartbeats and says how unlikely the current silence is.
//
//   phi(t) = -log10(P(a gap at least as long as t)),
//
// with the gaps modelled as a normal distribution of the window's mean (plus
// acceptable_pause, the allowance for a GC-like stall or a busy host) and
// standard deviation (at least min_std_deviation, so a perfectly regular
// loopback connection does not make every small delay look fatal). phi 8 means the
// silence would happen once in 10^8 heartbeats if the peer were alive. The
// normal tail uses the logistic approximation Akka uses, which stays finite
// where erfc underflows.
//
// Defaults (node.hpp: failure_detector_config): heartbeats every 250 ms, a
// 500 ms acceptable pause, 100 ms minimal deviation, threshold 8: a silent
// peer is declared dead about 1.3 s after its last sign of life.
//
// Thread safety: none; one connection's strand owns it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <deque>

namespace troupe::detail {

class phi_detector {
 public:
  phi_detector(double first_gap_ms, double acceptable_pause_ms, double min_std_deviation_ms, std::size_t window)
      : pause_(acceptable_pause_ms), min_deviation_(min_std_deviation_ms), window_(std::max<std::size_t>(window, 2)) {
    // Seeded as Akka does: two gaps of the expected interval, so the first
    // real silence is judged against something.
    add_gap(first_gap_ms);
    add_gap(first_gap_ms);
  }

  void add_gap(double ms) {
    if (gaps_.size() == window_) {
      sum_ -= gaps_.front();
      squares_ -= gaps_.front() * gaps_.front();
      gaps_.pop_front();
    }
    gaps_.push_back(ms);
    sum_ += ms;
    squares_ += ms * ms;
  }

  [[nodiscard]] double mean() const { return sum_ / static_cast<double>(gaps_.size()) + pause_; }
  [[nodiscard]] double deviation() const {
    const double n = static_cast<double>(gaps_.size());
    const double m = sum_ / n;
    const double variance = std::max(0.0, squares_ / n - m * m);
    return std::max(std::sqrt(variance), min_deviation_);
  }

  // How suspicious `silence_ms` without a sign of life is.
  [[nodiscard]] double phi(double silence_ms) const {
    const double m = mean();
    const double y = (silence_ms - m) / deviation();
    const double e = std::exp(-y * (1.5976 + 0.070566 * y * y));
    if (silence_ms > m) return -std::log10(e / (1.0 + e));
    return -std::log10(1.0 - 1.0 / (1.0 + e));
  }

 private:
  double pause_;
  double min_deviation_;
  std::size_t window_;
  std::deque<double> gaps_;
  double sum_ = 0;
  double squares_ = 0;
};

}  // namespace troupe::detail
