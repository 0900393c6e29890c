#pragma once
// The p-quantile (0..1) of samples, by the nearest rank.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace vhp::bench {

inline double percentile(std::vector<double> v, double p) {
  std::ranges::sort(v);
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace vhp::bench
