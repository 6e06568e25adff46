// zinf::core — small string utilities.
// Implements: edit distance and "did you mean" suggestions, join, split,
// lower/upper case, trim.
#pragma once

#include <string>
#include <vector>

namespace zinf::text {

std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word` by edit distance when it is close enough to
// be a plausible typo (distance <= max(2, len/3)); empty otherwise.
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& items, const std::string& sep);
std::vector<std::string> split(const std::string& s, char sep);
std::string to_upper(std::string s);
std::string to_lower(std::string s);
std::string trim(const std::string& s);
bool starts_with(const std::string& s, const std::string& prefix);
bool ends_with(const std::string& s, const std::string& suffix);

}  // namespace zinf::text
