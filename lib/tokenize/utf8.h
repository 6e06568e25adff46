// zinf::tokenize — UTF-8 helpers.
// Implements: repair of invalid UTF-8 (each maximal invalid subpart becomes
// U+FFFD, as Python's bytes.decode("utf-8", errors="replace") and Rust's
// String::from_utf8_lossy do), code point iteration and encoding, and GPT-2's
// byte-level alphabet (bytes_to_unicode).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace zinf::tokenize {

// `text` with every invalid UTF-8 sequence replaced by U+FFFD; `replaced`
// (when given) receives how many were replaced.
std::string repair_utf8(std::string_view text, std::size_t* replaced = nullptr);

// Length in bytes of the (valid) UTF-8 character starting at s[i].
inline std::size_t utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  return 4;
}

// Decodes the valid UTF-8 character at s[i]; advances i.
char32_t next_code_point(std::string_view s, std::size_t& i);

void append_utf8(std::string& out, char32_t cp);

// GPT-2's bytes_to_unicode: each byte's stand-in character, as UTF-8.
const std::array<std::string, 256>& byte_to_unicode();
// The inverse: code point -> byte, or -1 when the code point is not in the alphabet.
int unicode_to_byte(char32_t cp);

}  // namespace zinf::tokenize
