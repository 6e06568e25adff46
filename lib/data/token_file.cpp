// zinf::data — byte-level text and llm.c token files.
#include "data/token_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "core/units.h"

namespace zinf::data {
namespace {

constexpr const char* kDataHint =
    "give --dataset-file a non-empty text file (read as bytes) or an llm.c-style .bin token file";

Tokens from_bin(const std::string& path, const std::string& raw) {
  const std::int64_t header_bytes = kTokenFileHeaderInts * 4;
  const auto size = static_cast<std::int64_t>(raw.size());
  if (size < header_bytes)
    throw UsageError("token file '" + path + "' is " + std::to_string(size) + " bytes, smaller than its " +
                         std::to_string(header_bytes) + "-byte header",
                     "a .bin dataset must be an llm.c token file (256 x int32 header, then uint16 tokens); "
                     "text files should not end in .bin");
  std::int32_t header[kTokenFileHeaderInts];
  std::memcpy(header, raw.data(), header_bytes);
  if (header[0] != kTokenFileMagic)
    throw UsageError("token file '" + path + "' has magic " + std::to_string(header[0]) + ", expected " +
                         std::to_string(kTokenFileMagic),
                     "write it with llm.c's or nanoGPT's data scripts (uint16 tokens after a 256-int32 header)");
  if (header[1] != kTokenFileVersion)
    throw UsageError("token file '" + path + "' has version " + std::to_string(header[1]) +
                         ", this build reads version " + std::to_string(kTokenFileVersion),
                     "re-export the tokens as version 1 (uint16 tokens)");
  const std::int64_t count = header[2];
  const std::int64_t expected = header_bytes + 2 * count;
  if (count < 0 || expected != size)
    throw UsageError("token file '" + path + "' header says " + std::to_string(count) + " tokens (" +
                         std::to_string(expected) + " bytes with the header), but the file is " +
                         std::to_string(size) + " bytes",
                     "the file is truncated or not a token file; regenerate it");
  if (count == 0) throw Error("token file '" + path + "' holds no tokens", kDataHint);
  Tokens t;
  t.format = TokenFormat::kBin;
  t.path = path;
  t.ids.resize(static_cast<std::size_t>(count));
  std::memcpy(t.ids.data(), raw.data() + header_bytes, static_cast<std::size_t>(2 * count));  // little-endian host
  for (auto id : t.ids) t.max_id = std::max<std::int32_t>(t.max_id, id);
  return t;
}

}  // namespace

Tokens load_tokens(const std::string& path) {
  if (path.empty()) throw UsageError("no dataset file given", kDataHint);
  if (!fs::exists(path)) throw UsageError("dataset file '" + path + "' does not exist", kDataHint);
  if (fs::is_directory(path))
    throw UsageError("dataset file '" + path + "' is a directory", kDataHint);
  const std::string raw = fs::read_file(path);
  if (raw.empty()) throw UsageError("dataset file '" + path + "' is empty", kDataHint);
  if (text::ends_with(text::to_lower(path), ".bin")) return from_bin(path, raw);
  Tokens t;
  t.format = TokenFormat::kBytes;
  t.path = path;
  t.ids.resize(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    t.ids[i] = static_cast<unsigned char>(raw[i]);
    t.max_id = std::max<std::int32_t>(t.max_id, t.ids[i]);
  }
  return t;
}

void write_token_file(const std::string& path, const std::vector<std::uint16_t>& ids) {
  std::int32_t header[kTokenFileHeaderInts] = {};
  header[0] = kTokenFileMagic;
  header[1] = kTokenFileVersion;
  header[2] = static_cast<std::int32_t>(ids.size());
  std::string bytes(sizeof(header) + 2 * ids.size(), '\0');
  std::memcpy(bytes.data(), header, sizeof(header));
  if (!ids.empty()) std::memcpy(bytes.data() + sizeof(header), ids.data(), 2 * ids.size());
  fs::write_file_atomic(path, bytes);
}

}  // namespace zinf::data
