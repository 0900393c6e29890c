#pragma once
// The daemon's debug log timestamps ("[2026-11-21 07:50:32.091234]", local time, microseconds)
// as microseconds since the epoch, to set against the bench's own system_clock.
#include <cstdio>
#include <ctime>
#include <string>

namespace vhp::bench {

inline double log_time_us(const std::string& stamp) {
  std::tm tm{};
  int micros = 0;
  std::sscanf(stamp.c_str(), "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros);
  tm.tm_year -= 1900, tm.tm_mon -= 1, tm.tm_isdst = -1;
  return static_cast<double>(std::mktime(&tm)) * 1e6 + micros;
}

}  // namespace vhp::bench
