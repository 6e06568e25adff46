// zinf::tokenize — regular expressions for pre-tokenizers and normalizers.
// Implements: Regex, a PCRE2 pattern (UTF + Unicode properties, JIT when the
// build has it) with a find-all over a UTF-8 string. Thread-safe: match data
// is per thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace zinf::tokenize {

class Regex {
 public:
  // Throws zinf::UsageError naming `what` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& what);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, leftmost first, as [begin, end) byte
  // offsets; an empty match advances one character.
  void find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const;

  static std::string escape(const std::string& literal);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zinf::tokenize
