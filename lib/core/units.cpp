// zinf::core — byte and number formatting and parsing.
#include "core/units.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace zinf {
namespace {

std::string printf_string(const char* fmt, double value, const char* unit) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, value, unit);
  return buf;
}

}  // namespace

std::string format_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  double v = bytes;
  while (std::fabs(v) >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? printf_string("%.0f %s", v, units[u]) : printf_string("%.2f %s", v, units[u]);
}

std::string format_gb(double bytes) { return printf_string("%.2f %s", bytes / 1e9, "GB"); }

std::string format_gbps(double bytes_per_second) {
  return printf_string("%.2f %s", bytes_per_second / 1e9, "GB/s");
}

std::string format_count(double n) {
  if (std::fabs(n) >= 1e9) return printf_string("%.2f%s", n / 1e9, "B");
  if (std::fabs(n) >= 1e6) return printf_string("%.1f%s", n / 1e6, "M");
  if (std::fabs(n) >= 1e3) return printf_string("%.1f%s", n / 1e3, "K");
  return printf_string("%.0f%s", n, "");
}

std::optional<std::int64_t> parse_integer(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  long long as_int = std::strtoll(begin, &end, 10);
  if (errno == 0 && *end == '\0') return as_int;
  errno = 0;
  double as_double = std::strtod(begin, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(as_double)) return std::nullopt;
  if (as_double != std::floor(as_double)) return std::nullopt;
  if (std::fabs(as_double) > 9.0e18) return std::nullopt;
  return static_cast<std::int64_t>(as_double);
}

std::optional<std::int64_t> parse_bytes(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.' ||
                             text[i] == 'e' || text[i] == 'E' || text[i] == '+')) {
    // an 'e' followed by a non-digit is not an exponent ("1eB" is junk anyway)
    ++i;
  }
  const std::string number = text.substr(0, i);
  std::string unit = text.substr(i);
  if (number.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (*end != '\0' || !std::isfinite(value) || value < 0) return std::nullopt;
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  double scale = 1;
  if (unit.empty()) scale = 1;
  else if (unit == "K") scale = 1e3;
  else if (unit == "M") scale = 1e6;
  else if (unit == "G") scale = 1e9;
  else if (unit == "T") scale = 1e12;
  else if (unit == "KI") scale = double(kKiB);
  else if (unit == "MI") scale = double(kMiB);
  else if (unit == "GI") scale = double(kGiB);
  else if (unit == "TI") scale = double(kGiB) * 1024;
  else return std::nullopt;
  const double bytes = value * scale;
  if (bytes != std::floor(bytes) || bytes > 9.0e18) return std::nullopt;
  return static_cast<std::int64_t>(bytes);
}

std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace zinf
