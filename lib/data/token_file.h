// zinf::data — reading training data.
// Implements: load_tokens(), which turns a dataset file into a token array:
// any file that is not a .bin is read as bytes (one token per byte, vocabulary
// 256, so no tokenizer or download is needed); a .bin file is an llm.c /
// nanoGPT-style token file (a 256 x int32 header: magic 20240520, version 1,
// token count; then uint16 tokens), checked against its size before it is
// trusted. Also write_token_file() for tests and tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zinf::data {

constexpr std::int32_t kTokenFileMagic = 20240520;  // llm.c's GPT-2 token files
constexpr std::int32_t kTokenFileVersion = 1;
constexpr std::int64_t kTokenFileHeaderInts = 256;  // int32 header entries

enum class TokenFormat { kBytes, kBin };

struct Tokens {
  std::vector<std::uint16_t> ids;  // [count] token ids
  std::int32_t max_id = -1;        // largest id present; -1 when empty
  TokenFormat format = TokenFormat::kBytes;
  std::string path;
};

// Reads `path` as described above. Throws zinf::Error for a missing,
// unreadable or empty file, and UsageError for a malformed .bin (naming the
// header field, the expected and actual values, and the file size).
Tokens load_tokens(const std::string& path);

// Writes `ids` as an llm.c token file (header + uint16 tokens).
void write_token_file(const std::string& path, const std::vector<std::uint16_t>& ids);

}  // namespace zinf::data
