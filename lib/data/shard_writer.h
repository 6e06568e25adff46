// zinf::data — writing token shards and their document index.
// Implements: ShardWriter, which appends documents (token ids) to a series of
// llm.c token files PREFIX_000000.bin, PREFIX_000001.bin, ... of at most
// `shard_tokens` tokens each (uint16, magic 20240520, when every id fits in 16
// bits; else uint32, magic 20240801), each with a document index beside it
// (PREFIX_000000.idx, layout below). Shards are filled exactly, as llm.c's
// fineweb.py does: a document that does not fit in what is left of a shard
// continues at the start of the next one. Everything is written to
// `<name>.tmp` files and renamed by commit(); a writer destroyed without
// commit() removes its temporaries, so an interrupted run leaves nothing that
// looks complete. Also read_doc_index(), for tests and for document-aware
// windows.
//
// Index file (.idx), little-endian, all int64:
//   [0] magic kDocIndexMagic   [1] version kDocIndexVersion
//   [2] documents starting in the shard (n)   [3] tokens in the shard
//   [4] 1 when the shard's first tokens continue the previous shard's last
//       document, else 0   [5] 1 when prompt lengths follow (version 2)
//       [6] context runs m (version 3, else 0)   [7] reserved (0)
//   [8 .. 8+n) start of each document, in tokens from the shard's first token,
//       ascending. A document runs to the next start (or the shard's end, then
//       on into the next shard when that one's [4] is 1); its EOS, when
//       written, is its last token.
//   [8+n .. 8+2n) version 2 and 3: each document's prompt length, the tokens
//       at its start that are context, never targets (a fine-tuning
//       example's prompt). Version 1 (no prompts) is written when every
//       document's prompt is 0, so plain corpora stay readable by version-1 readers.
//   [8+2n .. 8+2n+3m) version 3 only, m = header [6]: further context runs
//       inside documents that start in this shard (a multi-turn
//       conversation's later user turns, never targets), as triples
//       (document's index in this shard, offset from its start, tokens),
//       ascending. Written only when some document has one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_file.h"

namespace zinf::data {

constexpr std::int64_t kDocIndexMagic = 0x31584449464e495a;  // "ZINFIDX1"
constexpr std::int64_t kDocIndexVersion = 1;
constexpr std::int64_t kDocIndexVersionPrompts = 2;  // prompt lengths after the starts
constexpr std::int64_t kDocIndexVersionContext = 3;  // and context runs after them
constexpr std::int64_t kDocIndexHeaderInts = 8;

// One finished shard, as commit() reports it.
struct ShardInfo {
  std::string bin_path;            // PREFIX_NNNNNN.bin (final name)
  std::string idx_path;            // PREFIX_NNNNNN.idx
  std::int64_t tokens = 0;
  std::int64_t documents = 0;      // documents that start in this shard
  bool continues = false;          // first tokens belong to the previous shard's last document
};

class ShardWriter {
 public:
  // width: 2 (uint16) or 4 (uint32). shard_tokens >= 1.
  ShardWriter(std::string prefix, int width, std::int64_t shard_tokens);
  ~ShardWriter();  // removes the temporaries unless commit() ran
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // Appends one document whose first `prompt` ids are context only, as are
  // the runs `context` (offsets into ids, ascending, after the prompt; see
  // the index layout). Throws naming the file on a write error.
  void add_document(const std::vector<std::uint32_t>& ids, std::int64_t prompt = 0,
                    const std::vector<Span>& context = {});
  // Appends `ids` to the last document added (a document added in pieces).
  void append_to_document(const std::vector<std::uint32_t>& ids);
  // Closes the last shard and renames every temporary to its final name.
  std::vector<ShardInfo> commit();

  std::int64_t tokens() const { return total_tokens_; }
  std::int64_t documents() const { return total_docs_; }

 private:
  struct Shard;
  void open_shard();
  void close_shard();
  // Writes ids; a new document's start (with its prompt and context runs) is recorded first when `doc`.
  void write_ids(const std::vector<std::uint32_t>& ids, bool doc, std::int64_t prompt, const std::vector<Span>& context);

  std::string prefix_;
  int width_;
  std::int64_t shard_tokens_;
  std::unique_ptr<Shard> open_;     // the shard being written, if any
  std::vector<ShardInfo> done_;     // closed shards (still under temporary names)
  std::vector<std::string> temps_;  // every temporary made, for cleanup
  std::int64_t total_tokens_ = 0, total_docs_ = 0;
  bool continues_ = false;          // the next shard starts inside a document
  bool committed_ = false;
};

// A context run of a document in a shard's index (version 3).
struct ContextRun {
  std::int64_t document = 0;  // index among the documents starting in the shard
  std::int64_t offset = 0;    // tokens from the document's start
  std::int64_t count = 0;
};

struct DocIndex {
  std::int64_t tokens = 0;           // tokens in the shard
  bool continues = false;            // see the file layout above
  std::vector<std::int64_t> starts;  // [documents] token offset of each document in the shard
  std::vector<std::int64_t> prompts; // [documents] prompt lengths (version 2, 3), or empty (all 0)
  std::vector<ContextRun> context;   // version 3
};

// Reads only the header of a .idx file: whether it holds prompt lengths.
// Throws like read_doc_index.
bool doc_index_has_prompts(const std::string& path);

// Reads a .idx file; throws UsageError naming the file for a bad magic,
// version or size.
DocIndex read_doc_index(const std::string& path);

// "PREFIX_000003" for shard 3.
std::string shard_name(const std::string& prefix, std::int64_t index);
// The document index beside a token file: PATH.bin -> PATH.idx (another name
// gets .idx appended).
std::string doc_index_path(const std::string& token_file);

}  // namespace zinf::data
