// zinf::data — token shards and document indexes, written through temporaries.
#include "data/shard_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "data/token_file.h"

namespace zinf::data {
namespace {

constexpr std::size_t kBufferBytes = std::size_t(4) << 20;

[[noreturn]] void throw_write(const std::string& path, int err) {
  throw Error("cannot write '" + path + "': " + errno_text(err),
              err == ENOSPC || err == EDQUOT ? "free some space or choose --output-dir on a larger disk"
                                             : "check that the output directory is writable");
}

void pwrite_all(int fd, const std::string& path, const void* src, std::size_t bytes, std::int64_t offset) {
  const auto* p = static_cast<const char*>(src);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, p, bytes, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_write(path, errno);
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += n;
  }
}

int create_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_write(path, errno);
  return fd;
}

void rename_or_throw(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    const int err = errno;
    throw Error("cannot rename '" + from + "' to '" + to + "': " + errno_text(err));
  }
}

}  // namespace

std::string shard_name(const std::string& prefix, std::int64_t index) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "_%06lld", static_cast<long long>(index));
  return prefix + digits;
}

// ---------------------------------------------------------------- the open shard

struct ShardWriter::Shard {
  std::string bin_path, tmp_path;
  int fd = -1;
  std::int64_t tokens = 0;
  bool continues = false;  // starts inside the previous shard's last document
  std::vector<std::int64_t> starts;
  std::vector<std::int64_t> prompts;  // [starts] prompt length of each document starting here
  std::vector<std::int64_t> context;  // [3 x runs] context runs of documents starting here (ContextRun)
  std::vector<char> buffer;  // tokens not yet written, at file offset `flushed`
  std::int64_t flushed = kTokenFileHeaderInts * 4;
  ~Shard() {
    if (fd >= 0) ::close(fd);
  }
  void flush() {
    pwrite_all(fd, tmp_path, buffer.data(), buffer.size(), flushed);
    flushed += static_cast<std::int64_t>(buffer.size());
    buffer.clear();
  }
};

ShardWriter::ShardWriter(std::string prefix, int width, std::int64_t shard_tokens)
    : prefix_(std::move(prefix)), width_(width), shard_tokens_(shard_tokens) {
  if (width != 2 && width != 4) throw Error("token shards hold 2- or 4-byte tokens, not " + std::to_string(width));
  if (shard_tokens < 1 || shard_tokens > std::int64_t(INT32_MAX))
    throw UsageError("--shard-tokens " + std::to_string(shard_tokens) + " is outside 1..2147483647",
                     "llm.c's header stores the count as int32; 100M is the usual size");
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  open_.reset();
  for (const std::string& t : temps_) ::unlink(t.c_str());
}

void ShardWriter::open_shard() {
  open_ = std::make_unique<Shard>();
  open_->bin_path = shard_name(prefix_, static_cast<std::int64_t>(done_.size())) + ".bin";
  open_->tmp_path = open_->bin_path + ".tmp";
  temps_.push_back(open_->tmp_path);
  open_->fd = create_file(open_->tmp_path);
  open_->buffer.reserve(kBufferBytes);
  open_->continues = std::exchange(continues_, false);
}

void ShardWriter::close_shard() {
  Shard& s = *open_;
  s.flush();
  std::int32_t header[kTokenFileHeaderInts] = {};
  header[0] = width_ == 2 ? kTokenFileMagic : kTokenFileMagicU32;
  header[1] = width_ == 2 ? kTokenFileVersion : kTokenFileVersionU32;
  header[2] = static_cast<std::int32_t>(s.tokens);
  pwrite_all(s.fd, s.tmp_path, header, sizeof header, 0);
  if (::fsync(s.fd) != 0) throw_write(s.tmp_path, errno);
  ::close(std::exchange(s.fd, -1));

  ShardInfo info;
  info.bin_path = s.bin_path;
  info.idx_path = doc_index_path(s.bin_path);
  info.tokens = s.tokens;
  info.documents = static_cast<std::int64_t>(s.starts.size());
  info.continues = s.continues;
  const bool runs = !s.context.empty();
  const bool prompts = runs || std::any_of(s.prompts.begin(), s.prompts.end(), [](std::int64_t p) { return p > 0; });
  std::vector<std::int64_t> idx(std::size_t(kDocIndexHeaderInts), 0);
  idx[0] = kDocIndexMagic;
  idx[1] = runs ? kDocIndexVersionContext : prompts ? kDocIndexVersionPrompts : kDocIndexVersion;
  idx[2] = info.documents;
  idx[3] = info.tokens;
  idx[4] = info.continues ? 1 : 0;
  idx[5] = prompts ? 1 : 0;
  idx[6] = static_cast<std::int64_t>(s.context.size() / 3);
  idx.insert(idx.end(), s.starts.begin(), s.starts.end());
  if (prompts) idx.insert(idx.end(), s.prompts.begin(), s.prompts.end());
  idx.insert(idx.end(), s.context.begin(), s.context.end());
  const std::string idx_tmp = info.idx_path + ".tmp";
  temps_.push_back(idx_tmp);
  const int fd = create_file(idx_tmp);
  try {
    pwrite_all(fd, idx_tmp, idx.data(), idx.size() * sizeof(std::int64_t), 0);
    if (::fsync(fd) != 0) throw_write(idx_tmp, errno);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  done_.push_back(std::move(info));
  open_.reset();
}

void ShardWriter::add_document(const std::vector<std::uint32_t>& ids, std::int64_t prompt,
                               const std::vector<Span>& context) {
  if (ids.empty()) return;
  ++total_docs_;
  write_ids(ids, true, prompt, context);
}

void ShardWriter::append_to_document(const std::vector<std::uint32_t>& ids) {
  if (total_docs_ == 0) throw Error("ShardWriter::append_to_document before any document");
  if (!open_) continues_ = true;  // the last shard closed full: the next one goes on with the document
  write_ids(ids, false, 0, {});
}

void ShardWriter::write_ids(const std::vector<std::uint32_t>& ids, bool doc, std::int64_t prompt,
                            const std::vector<Span>& context) {
  bool first_piece = doc;
  for (std::size_t at = 0; at < ids.size();) {
    if (!open_) open_shard();
    Shard& s = *open_;
    if (first_piece) {
      s.starts.push_back(s.tokens);
      s.prompts.push_back(prompt);
      const auto index = static_cast<std::int64_t>(s.starts.size() - 1);
      for (const Span& r : context) s.context.insert(s.context.end(), {index, r.begin, r.count});
    }
    first_piece = false;
    const std::size_t n = std::min<std::size_t>(ids.size() - at, static_cast<std::size_t>(shard_tokens_ - s.tokens));
    for (std::size_t i = at; i < at + n; ++i) {
      if (s.buffer.size() + 4 > kBufferBytes) s.flush();
      const std::size_t end = s.buffer.size();
      s.buffer.resize(end + std::size_t(width_));
      if (width_ == 2) {
        const auto v = static_cast<std::uint16_t>(ids[i]);
        std::memcpy(s.buffer.data() + end, &v, 2);
      } else {
        std::memcpy(s.buffer.data() + end, &ids[i], 4);
      }
    }
    s.tokens += static_cast<std::int64_t>(n);
    total_tokens_ += static_cast<std::int64_t>(n);
    at += n;
    if (s.tokens == shard_tokens_) {
      close_shard();
      continues_ = at < ids.size();  // the rest goes on in the next shard
    }
  }
}

std::vector<ShardInfo> ShardWriter::commit() {
  if (open_) close_shard();
  for (const ShardInfo& s : done_) {
    rename_or_throw(s.bin_path + ".tmp", s.bin_path);
    rename_or_throw(s.idx_path + ".tmp", s.idx_path);
  }
  committed_ = true;
  return done_;
}

std::string doc_index_path(const std::string& token_file) {
  const bool bin = token_file.size() > 4 && token_file.compare(token_file.size() - 4, 4, ".bin") == 0;
  return (bin ? token_file.substr(0, token_file.size() - 4) : token_file) + ".idx";
}

// ---------------------------------------------------------------- reading an index

namespace {

// Checks the header `v` (at least kDocIndexHeaderInts entries) of `path`;
// `entries` is the file's size in int64s. Returns whether prompts follow.
bool check_doc_index_header(const std::string& path, const std::int64_t* v, std::size_t entries) {
  const auto bad = [&](const std::string& what) {
    return UsageError("document index '" + path + "' " + what, "regenerate it with zinf tokenize");
  };
  if (v[0] != kDocIndexMagic) throw bad("has magic " + std::to_string(v[0]) + ", expected " + std::to_string(kDocIndexMagic));
  if (v[1] < kDocIndexVersion || v[1] > kDocIndexVersionContext)
    throw bad("has version " + std::to_string(v[1]) + ", expected " + std::to_string(kDocIndexVersion) + " to " +
              std::to_string(kDocIndexVersionContext));
  const bool prompts = v[1] >= kDocIndexVersionPrompts;
  const std::int64_t runs = v[1] == kDocIndexVersionContext ? v[6] : 0;
  const std::size_t per_doc = prompts ? 2 : 1;
  const std::size_t body = entries - std::size_t(kDocIndexHeaderInts);
  if (v[2] < 0 || runs < 0 || static_cast<std::size_t>(v[2]) * per_doc + 3 * static_cast<std::size_t>(runs) != body)
    throw bad("says " + std::to_string(v[2]) + " documents" + (runs ? " and " + std::to_string(runs) + " context runs" : "") +
              " but holds " + std::to_string(body) + " entries" +
              (prompts ? " (2 per document: start, prompt length" + std::string(runs ? "; 3 per run)" : ")")
                       : " (1 per document)"));
  return prompts;
}

}  // namespace

DocIndex read_doc_index(const std::string& path) {
  const std::string bytes = fs::read_file(path);
  const std::size_t header = std::size_t(kDocIndexHeaderInts) * 8;
  if (bytes.size() < header || bytes.size() % 8 != 0)
    throw UsageError("document index '" + path + "' is " + std::to_string(bytes.size()) + " bytes, not a header of " +
                         std::to_string(header) + " bytes plus int64 entries",
                     "regenerate it with zinf tokenize");
  std::vector<std::int64_t> v(bytes.size() / 8);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  const bool prompts = check_doc_index_header(path, v.data(), v.size());
  DocIndex d;
  d.tokens = v[3];
  d.continues = v[4] != 0;
  const auto starts = v.begin() + kDocIndexHeaderInts, ends = starts + v[2];
  d.starts.assign(starts, ends);
  if (prompts) d.prompts.assign(ends, ends + v[2]);
  for (auto r = ends + (prompts ? v[2] : 0); r != v.end(); r += 3) {
    const ContextRun run{r[0], r[1], r[2]};
    const ContextRun* prev = d.context.empty() ? nullptr : &d.context.back();
    if (run.document < 0 || run.document >= v[2] || run.offset < 0 || run.count < 1 ||
        (prev && (run.document < prev->document ||
                  (run.document == prev->document && run.offset < prev->offset + prev->count))))
      throw UsageError("document index '" + path + "': context run " + std::to_string(d.context.size()) +
                           " (document " + std::to_string(run.document) + ", offset " + std::to_string(run.offset) +
                           ", " + std::to_string(run.count) + " tokens) is out of order or outside its documents",
                       "regenerate it with zinf tokenize");
    d.context.push_back(run);
  }
  for (std::size_t k = 0; k < d.starts.size(); ++k) {
    const std::int64_t next = k + 1 < d.starts.size() ? d.starts[k + 1] : d.tokens;
    if (d.starts[k] < 0 || d.starts[k] >= next || d.starts[k] >= d.tokens ||
        (prompts && (d.prompts[k] < 0)))
      throw UsageError("document index '" + path + "': document " + std::to_string(k) + " starts at " +
                           std::to_string(d.starts[k]) + (prompts ? " with prompt " + std::to_string(d.prompts[k]) : "") +
                           ", out of order or outside the shard's " + std::to_string(d.tokens) + " tokens",
                       "regenerate it with zinf tokenize");
  }
  return d;
}

bool doc_index_has_prompts(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError("cannot open document index '" + path + "': " + errno_text(errno));
  std::int64_t v[kDocIndexHeaderInts] = {};
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0 && ::pread(fd, v, sizeof v, 0) == static_cast<ssize_t>(sizeof v);
  ::close(fd);
  if (!ok || st.st_size % 8 != 0)
    throw UsageError("document index '" + path + "' is shorter than its " + std::to_string(sizeof v) +
                         "-byte header or not whole int64 entries",
                     "regenerate it with zinf tokenize");
  return check_doc_index_header(path, v, static_cast<std::size_t>(st.st_size / 8));
}

}  // namespace zinf::data
