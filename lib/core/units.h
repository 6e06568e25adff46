// zinf::core — byte and number formatting and parsing.
// Implements: human-readable byte sizes ("1.50 GiB"), parsing of sizes a user
// types ("1e8", "512MB", "4GiB"), and GB/s formatting. Decimal (GB) and binary
// (GiB) units are both accepted on input and named exactly on output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace zinf {

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;

// "1.50 GiB", "512 B", "3.20 MiB".
std::string format_bytes(double bytes);

// "1.53 GB" (decimal, for disk space where vendors count in 10^9).
std::string format_gb(double bytes);

// "2.21 GB/s".
std::string format_gbps(double bytes_per_second);

// "124.4M", "1.56B": parameter counts.
std::string format_count(double n);
// `value` with `decimals` digits after the point ("5.1312").
std::string format_fixed(double value, int decimals);

// Parses "1048576", "1e6", "1.5e9", "4096B", "512KiB", "64MB", "2GiB", "1G".
// K/M/G/T without "i" and with or without "B" are decimal; with "i" binary.
// Returns nullopt for anything else (negative values included).
std::optional<std::int64_t> parse_bytes(const std::string& text);

// Parses a whole number written as "8", "1e8" or "100000000.0"; nullopt when
// it is not integral or does not fit.
std::optional<std::int64_t> parse_integer(const std::string& text);

// Rounds up to a multiple of `align` (align > 0).
constexpr std::int64_t round_up(std::int64_t value, std::int64_t align) {
  return (value + align - 1) / align * align;
}

}  // namespace zinf
