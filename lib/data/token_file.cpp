// zinf::data — datasets of text or token files, read on demand.
#include "data/token_file.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"

namespace zinf::data {
namespace {

constexpr const char* kDataHint =
    "give --dataset-file a non-empty text file (read as bytes), an llm.c token file (.bin), a comma-separated "
    "list, a directory or a glob of them";
constexpr std::int64_t kHeaderBytes = kTokenFileHeaderInts * 4;
constexpr std::int64_t kScanBytes = std::int64_t(1) << 20;  // pieces of max_id's pass and of the fingerprint

bool is_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// The files `spec` names, in a fixed order.
std::vector<std::string> expand(const std::string& spec) {
  std::vector<std::string> out;
  for (std::size_t at = 0; at <= spec.size();) {
    const std::size_t comma = std::min(spec.find(',', at), spec.size());
    const std::string part = trim(spec.substr(at, comma - at));
    at = comma + 1;
    if (part.empty()) {
      if (spec.find(',') != std::string::npos)
        throw UsageError("dataset list '" + spec + "' has an empty entry", "separate the files with single commas");
      throw UsageError("no dataset file given", kDataHint);
    }
    if (is_glob(part)) {
      glob_t g{};
      const int rc = ::glob(part.c_str(), 0, nullptr, &g);
      std::vector<std::string> found;
      for (std::size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
        if (!fs::is_directory(g.gl_pathv[i])) found.emplace_back(g.gl_pathv[i]);
      ::globfree(&g);
      if (found.empty()) throw UsageError("dataset glob '" + part + "' matches no file", kDataHint);
      std::sort(found.begin(), found.end());  // glob sorts too; say so here
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::is_directory(part)) {
      std::vector<std::string> found;
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(part, ec)) {
        const std::string name = e.path().filename().string();
        if (!name.empty() && name[0] != '.' && e.is_regular_file(ec)) found.push_back(e.path().string());
      }
      if (found.empty()) throw UsageError("dataset directory '" + part + "' holds no files", kDataHint);
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else {
      if (!fs::exists(part)) throw UsageError("dataset file '" + part + "' does not exist", kDataHint);
      out.push_back(part);
    }
  }
  return out;
}

// Reads exactly `bytes` at `offset`, or throws naming the file.
void read_exact(int fd, const std::string& path, std::int64_t offset, void* dst, std::int64_t bytes) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, p, static_cast<std::size_t>(bytes), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      throw Error("cannot read dataset file '" + path + "' at byte " + std::to_string(offset) + ": " + errno_text(err),
                  "check the disk (dmesg) and that the file is still there");
    }
    if (n == 0)
      throw Error("dataset file '" + path + "' ended at byte " + std::to_string(offset) + " while being read",
                  "the file was truncated or replaced during the run; restore it and resume");
    p += n;
    offset += n;
    bytes -= n;
  }
}

TokenShard open_shard(int fd, const std::string& path, std::int64_t size, TokenFormat asked) {
  TokenShard s;
  s.path = path;
  s.file_bytes = size;
  TokenFormat f = asked;
  if (f == TokenFormat::kAuto) f = text::ends_with(text::to_lower(path), ".bin") ? TokenFormat::kLlmc : TokenFormat::kBytes;
  s.format = f;
  if (f == TokenFormat::kBytes) {
    s.width = 1;
    s.count = size;
    return s;
  }
  if (f == TokenFormat::kNanoGpt) {
    if (size % 2 != 0)
      throw UsageError("nanoGPT token file '" + path + "' is " + std::to_string(size) +
                           " bytes, not a whole number of uint16 tokens",
                       "the file is truncated or not a nanoGPT train.bin/val.bin; regenerate it");
    s.width = 2;
    s.count = size / 2;
    return s;
  }
  // llm.c: a 256 x int32 header, then the tokens.
  if (size < kHeaderBytes)
    throw UsageError("token file '" + path + "' is " + std::to_string(size) + " bytes, smaller than its " +
                         std::to_string(kHeaderBytes) + "-byte header",
                     "a .bin dataset must be an llm.c token file (256 x int32 header, then the tokens); a nanoGPT "
                     "train.bin has no header: add --data-format nanogpt; text files should not end in .bin");
  std::int32_t header[kTokenFileHeaderInts];
  read_exact(fd, path, 0, header, kHeaderBytes);
  const std::string nanogpt_hint =
      size % 2 == 0 ? "; if it is a nanoGPT train.bin (uint16 tokens, no header), add --data-format nanogpt" : "";
  if (header[0] == kTokenFileMagic) {
    if (header[1] != kTokenFileVersion)
      throw UsageError("token file '" + path + "' has magic " + std::to_string(kTokenFileMagic) + " (uint16) but version " +
                           std::to_string(header[1]) + ", expected " + std::to_string(kTokenFileVersion),
                       "re-export it with llm.c's data scripts");
    s.width = 2;
  } else if (header[0] == kTokenFileMagicU32) {
    if (header[1] != kTokenFileVersionU32)
      throw UsageError("token file '" + path + "' has magic " + std::to_string(kTokenFileMagicU32) +
                           " (uint32) but version " + std::to_string(header[1]) + ", expected " +
                           std::to_string(kTokenFileVersionU32),
                       "re-export it with llm.c's data scripts");
    s.width = 4;
  } else {
    throw UsageError("token file '" + path + "' has magic " + std::to_string(header[0]) + ", expected " +
                         std::to_string(kTokenFileMagic) + " (llm.c, uint16 tokens) or " +
                         std::to_string(kTokenFileMagicU32) + " (llm.c, uint32 tokens)",
                     "write it with llm.c's data scripts" + nanogpt_hint);
  }
  s.offset = kHeaderBytes;
  s.count = header[2];
  const std::int64_t expected = kHeaderBytes + s.width * s.count;
  if (s.count < 0 || expected != size)
    throw UsageError("token file '" + path + "' header says " + std::to_string(s.count) + " tokens of " +
                         std::to_string(s.width) + " bytes (" + std::to_string(expected) +
                         " bytes with the header), but the file is " + std::to_string(size) + " bytes",
                     "the file is truncated or not a token file; regenerate it");
  return s;
}

std::int64_t id_at(const unsigned char* p, int width) {
  if (width == 1) return p[0];
  if (width == 2) {
    std::uint16_t v;
    std::memcpy(&v, p, 2);  // little-endian host, as llm.c and nanoGPT write
    return v;
  }
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

TokenFormat parse_token_format(const std::string& name) {
  if (name == "detect") return TokenFormat::kAuto;
  if (name == "bytes") return TokenFormat::kBytes;
  if (name == "llmc") return TokenFormat::kLlmc;
  if (name == "nanogpt") return TokenFormat::kNanoGpt;
  throw UsageError("unknown data format '" + name + "'",
                   "allowed: detect (.bin files by their llm.c header, others as bytes), bytes, llmc, nanogpt "
                   "(header-less uint16)");
}

struct Tokens::Files {
  std::vector<int> fds;  // [shards] open descriptor, -1 for a shard in memory
  std::string memory;    // the one in-memory shard's bytes (tokens_in_memory)
  ~Files() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

void Tokens::read_bytes(std::size_t k, std::int64_t offset, void* dst, std::int64_t bytes) const {
  if (files_->fds[k] >= 0) return read_exact(files_->fds[k], shards_[k].path, offset, dst, bytes);
  std::memcpy(dst, files_->memory.data() + offset, static_cast<std::size_t>(bytes));
}

Tokens tokens_in_memory(std::string name, const std::vector<std::uint32_t>& ids, std::vector<Document> documents,
                        std::vector<Span> context_runs) {
  TokenShard s;
  s.path = name;
  s.format = TokenFormat::kLlmc;
  s.width = 4;
  s.count = static_cast<std::int64_t>(ids.size());
  s.file_bytes = 4 * s.count;
  Tokens t(std::move(name), {s}, {-1});
  t.files_->memory.assign(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  if (documents.empty()) documents.push_back({0, 0});
  for (std::size_t k = 0; k < documents.size(); ++k)
    if ((k == 0 && documents[k].start != 0) || (k > 0 && documents[k].start <= documents[k - 1].start) ||
        documents[k].start >= std::max<std::int64_t>(1, s.count) || documents[k].prompt < 0)
      throw Error("tokens_in_memory: document " + std::to_string(k) + " of '" + t.spec_ + "' starts at " +
                  std::to_string(documents[k].start) + ": starts must ascend from 0 within the " +
                  std::to_string(s.count) + " tokens");
  for (std::size_t k = 0; k < context_runs.size(); ++k)
    if (context_runs[k].begin < 0 || context_runs[k].count < 1 || context_runs[k].begin + context_runs[k].count > s.count ||
        (k > 0 && context_runs[k].begin < context_runs[k - 1].begin + context_runs[k - 1].count))
      throw Error("tokens_in_memory: context run " + std::to_string(k) + " of '" + t.spec_ +
                  "' is not ascending within the " + std::to_string(s.count) + " tokens");
  t.documents_ = std::move(documents);
  t.context_runs_ = std::move(context_runs);
  t.documents_known_ = true;
  return t;
}

Tokens::Tokens() : files_(std::make_unique<Files>()) {}
Tokens::~Tokens() = default;
Tokens::Tokens(Tokens&&) noexcept = default;
Tokens& Tokens::operator=(Tokens&&) noexcept = default;

Tokens::Tokens(std::string spec, std::vector<TokenShard> shards, std::vector<int> fds)
    : spec_(std::move(spec)), shards_(std::move(shards)), files_(std::make_unique<Files>()) {
  files_->fds = std::move(fds);
  for (const TokenShard& s : shards_) {
    starts_.push_back(total_);
    total_ += s.count;
  }
}

TokenFormat Tokens::format() const {
  for (const TokenShard& s : shards_)
    if (s.format != TokenFormat::kBytes) return s.format;
  return TokenFormat::kBytes;
}

void Tokens::read(std::int64_t first, std::int64_t count, std::int64_t* out) const {
  if (first < 0 || count < 0 || first > total_ - count)
    throw Error("token range [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") is outside the dataset's " + std::to_string(total_) + " tokens");
  thread_local std::vector<unsigned char> buf;
  auto it = std::upper_bound(starts_.begin(), starts_.end(), first);
  std::size_t shard = static_cast<std::size_t>(it - starts_.begin()) - 1;
  while (count > 0) {
    const TokenShard& s = shards_[shard];
    const std::int64_t local = first - starts_[shard];
    const std::int64_t n = std::min(count, s.count - local);
    buf.resize(static_cast<std::size_t>(n * s.width));
    read_bytes(shard, s.offset + local * s.width, buf.data(), n * s.width);
    for (std::int64_t i = 0; i < n; ++i) out[i] = id_at(buf.data() + i * s.width, s.width);
    out += n;
    first += n;
    count -= n;
    ++shard;
  }
}

std::int64_t Tokens::max_id() const {
  if (max_id_ != -2) return max_id_;
  std::int64_t top = -1;
  std::vector<unsigned char> buf(static_cast<std::size_t>(kScanBytes));
  for (std::size_t k = 0; k < shards_.size(); ++k) {
    const TokenShard& s = shards_[k];
    const std::int64_t bytes = s.count * s.width;
    for (std::int64_t at = 0; at < bytes; at += kScanBytes) {
      const std::int64_t n = std::min(kScanBytes, bytes - at);
      read_bytes(k, s.offset + at, buf.data(), n);
      for (std::int64_t i = 0; i < n; i += s.width) top = std::max(top, id_at(buf.data() + i, s.width));
    }
  }
  max_id_ = top;
  return top;
}

std::string Tokens::fingerprint_bytes() const {
  std::string out;
  for (std::size_t k = 0; k < shards_.size(); ++k) {
    const TokenShard& s = shards_[k];
    out += std::to_string(s.count) + "x" + std::to_string(s.width) + ";";
    const std::int64_t bytes = s.count * s.width;
    const std::int64_t head = std::min(kScanBytes, bytes);
    const std::int64_t tail_at = std::max(head, bytes - kScanBytes);
    std::string piece(static_cast<std::size_t>(head + (bytes - tail_at)), '\0');
    read_bytes(k, s.offset, piece.data(), head);
    if (bytes > tail_at) read_bytes(k, s.offset + tail_at, piece.data() + head, bytes - tail_at);
    out += piece;
  }
  return out;
}

namespace {

// The descriptors load_tokens has opened so far: closed if it throws before
// Tokens takes them over.
class OpenedFiles {
 public:
  OpenedFiles() = default;
  OpenedFiles(const OpenedFiles&) = delete;
  OpenedFiles& operator=(const OpenedFiles&) = delete;
  ~OpenedFiles() {
    for (int fd : fds_) ::close(fd);
  }
  void add(int fd) { fds_.push_back(fd); }
  std::vector<int> release() { return std::exchange(fds_, {}); }

 private:
  std::vector<int> fds_;
};

}  // namespace

Tokens load_tokens(const std::string& spec, TokenFormat format) {
  if (trim(spec).empty()) throw UsageError("no dataset file given", kDataHint);
  const std::vector<std::string> paths = expand(spec);
  std::vector<TokenShard> shards;
  OpenedFiles files;
  for (const std::string& path : paths) {
    if (fs::is_directory(path)) throw UsageError("dataset file '" + path + "' is a directory", kDataHint);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      throw UsageError("cannot open dataset file '" + path + "': " + errno_text(err), kDataHint);
    }
    files.add(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error("cannot stat dataset file '" + path + "': " + errno_text(errno));
    if (st.st_size == 0) throw UsageError("dataset file '" + path + "' is empty", kDataHint);
    TokenShard s = open_shard(fd, path, std::int64_t(st.st_size), format);
    if (s.count == 0) throw Error("token file '" + path + "' holds no tokens", kDataHint);
    if (!shards.empty() && (shards.front().format == TokenFormat::kBytes) != (s.format == TokenFormat::kBytes))
      throw UsageError("dataset '" + spec + "' mixes text ('" +
                           (s.format == TokenFormat::kBytes ? s.path : shards.front().path) + "') with token files ('" +
                           (s.format == TokenFormat::kBytes ? shards.front().path : s.path) + "')",
                       "give text files or token files, not both: their ids mean different things");
    shards.push_back(std::move(s));
  }
  return Tokens(spec, std::move(shards), files.release());
}

void write_token_file(const std::string& path, const std::vector<std::uint32_t>& ids, int width) {
  if (width != 2 && width != 4) throw Error("token files hold 2- or 4-byte tokens, not " + std::to_string(width));
  std::int32_t header[kTokenFileHeaderInts] = {};
  header[0] = width == 2 ? kTokenFileMagic : kTokenFileMagicU32;
  header[1] = width == 2 ? kTokenFileVersion : kTokenFileVersionU32;
  header[2] = static_cast<std::int32_t>(ids.size());
  std::string bytes(sizeof(header) + std::size_t(width) * ids.size(), '\0');
  std::memcpy(bytes.data(), header, sizeof(header));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (width == 2) {
      const auto v = static_cast<std::uint16_t>(ids[i]);
      std::memcpy(bytes.data() + sizeof(header) + 2 * i, &v, 2);
    } else {
      std::memcpy(bytes.data() + sizeof(header) + 4 * i, &ids[i], 4);
    }
  }
  fs::write_file_atomic(path, bytes);
}

void write_token_file(const std::string& path, const std::vector<std::uint16_t>& ids) {
  write_token_file(path, std::vector<std::uint32_t>(ids.begin(), ids.end()), 2);
}

}  // namespace zinf::data
