// zinf::data — deterministic, resumable batches.
// Implements: split_tokens() (the tail of the data is held out for
// validation, as nanoGPT does, with clear errors when a split is shorter than
// one sample), check_vocab(), and Sampler: windows of seq_len + 1 tokens
// (inputs and next-token targets) drawn without replacement in an order fixed
// by the seed and the epoch. Windows are cut one of two ways:
//   stream     the split as one sequence, windows back to back from an offset
//              drawn each epoch; a window may span documents (nanoGPT, llm.c);
//   documents  every window starts at a document's start and ends by its end:
//              a short document's window is padded (targets kIgnoreTarget), a
//              long one is cut into consecutive windows, except a fine-tuning
//              example (a document with a prompt), which keeps only its first
//              window, as TRL truncates to max_length.
//   packed     the documents' windows of `documents`, several to a window:
//              best-fit decreasing (TRL's "bfd" packing), fixed by the data
//              and seq_len. Each token carries its position in its own
//              document (Batch::positions), by which the model restarts
//              positions and keeps attention within each document.
// A target that is a prompt token is kIgnoreTarget in either way, so the loss
// is taken on completions only. Its whole state is (epoch, position), so a
// checkpoint that stores it makes a resumed run see exactly the batches the
// uninterrupted run would have seen. The random generator is our own
// (splitmix64 + Fisher-Yates), so the order is the same on every platform.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_file.h"

namespace zinf::data {

struct DataSplit {
  Span train;
  Span val;  // count 0 when val_fraction is 0
};

enum class Windows { kStream, kDocuments, kPacked };
// "stream", "documents", "packed"; throws UsageError naming the allowed ones.
Windows parse_windows(const std::string& name);
const char* windows_name(Windows w);
// zinf.data.windows for `tokens`: "detect" is documents when the data holds
// fine-tuning examples (documents with a prompt), else stream.
Windows resolve_windows(const std::string& setting, const Tokens& tokens);

// Holds out the last floor(count * val_fraction) tokens (with kDocuments,
// from the start of the document that point falls in, so no document is
// split; the same with kPacked). Throws UsageError when the training part
// (or a non-empty validation part) is shorter than one sample (seq_len + 1
// tokens; by documents, 2), naming the file, the counts and what to change.
DataSplit split_tokens(const Tokens& tokens, double val_fraction, std::int64_t seq_len,
                       Windows windows = Windows::kStream);

// Throws UsageError when a token id is >= vocab_size (one pass over the data).
void check_vocab(const Tokens& tokens, std::int64_t vocab_size);

struct SamplerState {
  std::int64_t epoch = 0;     // completed passes over the split
  std::int64_t position = 0;  // windows already handed out in this epoch
};

struct Batch {
  std::int64_t rows = 0, cols = 0;      // micro batch, seq_len
  std::vector<std::int64_t> inputs;     // [rows * cols] token ids
  std::vector<std::int64_t> targets;    // [rows * cols] the next token of each input
  // kPacked: [rows * cols] each input's position within its document (0
  // where one starts; the padding after the last is a run of its own).
  // Empty otherwise: every row is at positions 0..cols-1.
  std::vector<std::int64_t> positions;
};

// Targets of `b` that train (not kIgnoreTarget).
std::int64_t trained_targets(const Batch& b);

class Sampler {
 public:
  // `tokens` must outlive the sampler. shuffle = false reads windows in file
  // order from the start (validation).
  Sampler(const Tokens& tokens, Span span, std::int64_t seq_len, std::uint64_t seed, bool shuffle,
          Windows windows = Windows::kStream);

  Batch next(std::int64_t rows);
  std::int64_t windows_per_epoch() const { return windows_; }
  // kDocuments, kPacked: fine-tuning examples longer than one window, whose tail is never trained on.
  std::int64_t truncated_documents() const { return truncated_; }
  // kPacked: the share of input positions that hold a document (not padding).
  double packed_fill() const;

  SamplerState state() const { return state_; }
  void restore(const SamplerState& s);

 private:
  void start_epoch();
  void pack_windows();
  // Copies the `count` tokens at global index `start` into a row from
  // position `at`: inputs, next-token targets (prompts masked) and, when
  // `positions`, positions 0.. ; returns the inputs written (count - 1).
  std::int64_t copy_piece(std::int64_t start, std::int64_t count, std::int64_t* in, std::int64_t* tg,
                          std::int64_t* positions);
  // Sets targets[i] (the token at global index first + 1 + i) to
  // kIgnoreTarget where that token is part of its document's prompt.
  void mask_prompts(std::int64_t first, std::int64_t* targets, std::int64_t count) const;

  const Tokens* tokens_;
  Windows mode_;
  bool masks_prompts_ = false;                   // the data has fine-tuning examples
  const std::vector<Document>* docs_ = nullptr;  // when masks_prompts_ or mode_ is kDocuments
  std::vector<std::int64_t> doc_window_start_;   // kDocuments: [windows_] first token of each window
  std::vector<std::int32_t> doc_window_tokens_;  // kDocuments: [windows_] tokens in it (2 .. seq_len + 1)
  // kPacked: the document windows above are the pieces; window w holds
  // pieces pack_piece_[pack_first_[w] .. pack_first_[w + 1]), in file order.
  std::vector<std::int64_t> pack_first_;
  std::vector<std::uint32_t> pack_piece_;
  std::int64_t truncated_ = 0;
  std::vector<std::int64_t> window_;  // [seq_len + 1] the window being copied
  Span span_;
  std::int64_t seq_len_;
  std::uint64_t seed_;
  bool shuffle_;
  std::int64_t windows_;            // windows per epoch
  std::int64_t shift_ = 0;          // tokens, this epoch's offset of window 0
  std::vector<std::uint32_t> order_;  // [windows_] this epoch's window order
  SamplerState state_;
};

// splitmix64: the generator behind the sampler's order (exposed for tests).
std::uint64_t splitmix64(std::uint64_t& state);

}  // namespace zinf::data
