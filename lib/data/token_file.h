// zinf::data — reading training data.
// Implements: load_tokens(), which opens a dataset — one file, a
// comma-separated list, a directory (its files in name order) or a glob — as
// one token sequence, the files back to back, read on demand with pread and
// never held in memory whole, so memory does not grow with the data (64-bit
// counts throughout). Formats: text (any file that is not a .bin: one token
// per byte, vocabulary 256, no tokenizer needed); llm.c token files (a 256 x
// int32 header: magic 20240520 version 1 with uint16 tokens, as its GPT-2
// scripts write, or magic 20240801 version 7 with uint32 tokens, as its
// Llama-3 scripts write; the header's count is checked against the file's
// size before it is trusted); nanoGPT's header-less uint16 train.bin, only
// when asked for (TokenFormat::kNanoGpt), since nothing in it says what it is.
// Also tokens_in_memory() (a dataset already tokenized, e.g. text encoded
// with a tokenizer at start-up) and write_token_file() for tests and tools.
// Documents: where each document starts and how many of its first tokens are
// a prompt (context, never a target), from the .idx zinf tokenize writes
// beside each shard, one document per text file, or as tokens_in_memory was
// given them; read only when asked for.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace zinf::data {

constexpr std::int32_t kTokenFileMagic = 20240520;    // llm.c's GPT-2 token files (uint16)
constexpr std::int32_t kTokenFileVersion = 1;
constexpr std::int32_t kTokenFileMagicU32 = 20240801;  // llm.c's Llama-3 token files (uint32)
constexpr std::int32_t kTokenFileVersionU32 = 7;
constexpr std::int64_t kTokenFileHeaderInts = 256;     // int32 header entries

// kAuto ("detect"): .bin files by their llm.c header, anything else as bytes.
enum class TokenFormat { kAuto, kBytes, kLlmc, kNanoGpt };
// "detect", "bytes", "llmc", "nanogpt"; throws UsageError naming the allowed ones.
TokenFormat parse_token_format(const std::string& name);

// One file of a dataset.
struct TokenShard {
  std::string path;
  TokenFormat format = TokenFormat::kBytes;  // kBytes, kLlmc or kNanoGpt
  int width = 1;                             // bytes per token: 1 (text), 2 or 4
  std::int64_t offset = 0;                   // bytes before the first token (the llm.c header)
  std::int64_t count = 0;                    // tokens
  std::int64_t file_bytes = 0;
};

// A run of tokens: [begin, begin + count).
struct Span {
  std::int64_t begin = 0;  // tokens, index of the first token
  std::int64_t count = 0;  // tokens
};

// One document of a dataset.
struct Document {
  std::int64_t start = 0;   // index of its first token in the whole sequence
  std::int64_t prompt = 0;  // its first tokens that are context only (a fine-tuning example's prompt)
};

// The document holding token `at` of the sequence (documents as
// Tokens::documents() gives them: ascending, the first at 0).
std::vector<Document>::const_iterator document_at(const std::vector<Document>& docs, std::int64_t at);

class Tokens {
 public:
  Tokens();
  ~Tokens();
  Tokens(Tokens&&) noexcept;
  Tokens& operator=(Tokens&&) noexcept;

  std::int64_t size() const { return total_; }  // tokens in all shards
  const std::vector<TokenShard>& shards() const { return shards_; }
  // The dataset as the user named it (a path, a list, a directory or a glob).
  const std::string& path() const { return spec_; }
  // kBytes when every shard is text (the count is then in bytes).
  TokenFormat format() const;

  // Tokens [first, first + count) of the whole sequence into `out`, across
  // shard boundaries. Throws naming the file on a read error or a file that
  // shrank since it was opened. Safe to call from several threads.
  void read(std::int64_t first, std::int64_t count, std::int64_t* out) const;

  // The documents in order (computed on the first call). Throws UsageError
  // naming a token file that has no .idx beside it.
  const std::vector<Document>& documents() const;
  // Whether any document has a prompt: the sampler then trains only on the
  // tokens after it. Reads only the .idx headers; false without them.
  bool has_prompts() const;
  // Context runs inside documents besides their prompts (a multi-turn
  // conversation's later user turns): never targets. Ascending, global token
  // indices; read with documents().
  const std::vector<Span>& context_runs() const;

  // The largest id in the data (one pass over every file, in 1 MiB pieces).
  std::int64_t max_id() const;
  // What identifies the data cheaply, for a checkpoint's fingerprint (the
  // caller checksums it): each shard's token count, width and its first and
  // last MiB as stored. Reads at most 2 MiB per shard.
  std::string fingerprint_bytes() const;

  // Internal: load_tokens's shards and their open files (taken over).
  Tokens(std::string spec, std::vector<TokenShard> shards, std::vector<int> fds);
  friend Tokens tokens_in_memory(std::string name, const std::vector<std::uint32_t>& ids,
                                 std::vector<Document> documents, std::vector<Span> context_runs);

 private:
  struct Files;
  // Bytes [offset, offset + bytes) of shard k (its file, or its memory).
  void read_bytes(std::size_t k, std::int64_t offset, void* dst, std::int64_t bytes) const;
  std::string spec_;
  std::vector<TokenShard> shards_;
  std::vector<std::int64_t> starts_;  // [shards] index of each shard's first token
  std::int64_t total_ = 0;
  std::unique_ptr<Files> files_;      // open descriptors, one per shard
  mutable std::int64_t max_id_ = -2;  // -2: not computed yet
  mutable std::vector<Document> documents_;
  mutable std::vector<Span> context_runs_;
  mutable bool documents_known_ = false;
  mutable int has_prompts_ = -1;      // -1: not computed yet
};

// Opens `spec` as described above. Throws UsageError for a missing, empty or
// malformed file (naming the file, the header field, the expected and actual
// values and the file size), a directory or glob with no files, and a list
// mixing text with token files.
Tokens load_tokens(const std::string& spec, TokenFormat format = TokenFormat::kAuto);

// A dataset of `ids` held in memory (one uint32 shard, format kLlmc); `name`
// stands for its path in messages and in the checkpoint's fingerprint.
// `documents` (starts ascending, the first at 0), or empty: one document;
// `context_runs` as Tokens::context_runs() gives them.
Tokens tokens_in_memory(std::string name, const std::vector<std::uint32_t>& ids,
                        std::vector<Document> documents = {}, std::vector<Span> context_runs = {});

// Writes `ids` as an llm.c token file: uint16 (version 1) when width is 2,
// uint32 (version 7) when it is 4.
void write_token_file(const std::string& path, const std::vector<std::uint32_t>& ids, int width = 2);
void write_token_file(const std::string& path, const std::vector<std::uint16_t>& ids);

}  // namespace zinf::data
