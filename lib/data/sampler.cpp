// zinf::data — split, vocabulary check and the resumable sampler.
#include "data/sampler.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/targets.h"

namespace zinf::data {

std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Windows parse_windows(const std::string& name) {
  if (name == "stream") return Windows::kStream;
  if (name == "documents") return Windows::kDocuments;
  if (name == "packed") return Windows::kPacked;
  throw UsageError("unknown window mode '" + name + "'",
                   "allowed: stream (windows back to back across documents), documents (each window within one "
                   "document, padded) or packed (several documents to a window, attention kept within each)");
}

const char* windows_name(Windows w) {
  switch (w) {
    case Windows::kStream: return "stream";
    case Windows::kDocuments: return "documents";
    case Windows::kPacked: return "packed";
  }
  return "?";
}

Windows resolve_windows(const std::string& setting, const Tokens& tokens) {
  if (setting == "detect") return tokens.has_prompts() ? Windows::kDocuments : Windows::kStream;
  return parse_windows(setting);
}

DataSplit split_tokens(const Tokens& tokens, double val_fraction, std::int64_t seq_len, Windows windows) {
  const std::int64_t n = tokens.size();
  std::int64_t val = static_cast<std::int64_t>(std::floor(double(n) * val_fraction));
  const bool by_documents = windows != Windows::kStream;
  if (by_documents && val > 0) {  // from the start of the document the cut falls in
    const std::int64_t cut = document_at(tokens.documents(), n - val)->start;
    val = cut > 0 ? n - cut : val;  // a single document stays split at the fraction
  }
  DataSplit s;
  s.train = {0, n - val};
  s.val = {n - val, val};
  const std::string what = tokens.format() == TokenFormat::kBytes ? " bytes" : " tokens";
  // A document window may be as short as 2 tokens; a stream window is seq_len + 1.
  const std::int64_t sample = by_documents ? 2 : seq_len + 1;
  const std::string needs =
      by_documents ? "2 tokens (a document window)" : "seq_len + 1 = " + std::to_string(seq_len + 1);
  if (s.train.count < sample)
    throw UsageError((by_documents ? "the data is too short: '"
                                                     : "seq-len " + std::to_string(seq_len) + " is longer than the data: '") +
                         tokens.path() + "' has " + std::to_string(n) + what + ", " + std::to_string(s.train.count) +
                         " of them for training, and one sample needs " + needs,
                     "lower --seq-len, or use a larger --dataset-file");
  if (val > 0 && s.val.count < sample)
    throw UsageError("the held-out validation split of '" + tokens.path() + "' (zinf.data.val_fraction = " +
                         std::to_string(val_fraction) + ") has " + std::to_string(val) + what +
                         ", fewer than one sample of " + needs,
                     "lower --seq-len, use a larger --dataset-file, or set zinf.data.val_fraction to 0");
  return s;
}

void check_vocab(const Tokens& tokens, std::int64_t vocab_size) {
  const std::int64_t max_id = tokens.max_id();
  if (max_id >= vocab_size)
    throw UsageError("'" + tokens.path() + "' contains token id " + std::to_string(max_id) +
                         " but the model's vocabulary has " + std::to_string(vocab_size) + " entries (ids 0.." +
                         std::to_string(vocab_size - 1) + ")",
                     "set --vocab-size to at least " + std::to_string(max_id + 1) +
                         (tokens.format() == TokenFormat::kBytes ? " (text is read as bytes: 256)" : ""));
}

Sampler::Sampler(const Tokens& tokens, Span span, std::int64_t seq_len, std::uint64_t seed, bool shuffle,
                 Windows windows)
    : tokens_(&tokens), mode_(windows), span_(span), seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  if (seq_len < 1) throw UsageError("seq-len " + std::to_string(seq_len) + " is not positive", "use --seq-len 1 or more");
  masks_prompts_ = tokens.has_prompts();
  if (mode_ != Windows::kStream || masks_prompts_) docs_ = &tokens.documents();
  if (mode_ != Windows::kStream) {
    const std::vector<Document>& docs = *docs_;
    const std::int64_t span_end = span.begin + span.count;
    for (auto it = document_at(docs, span.begin); it != docs.end() && it->start < span_end; ++it) {
      const std::int64_t begin = std::max(it->start, span.begin);
      const std::int64_t end = std::min(std::next(it) == docs.end() ? tokens.size() : std::next(it)->start, span_end);
      const bool example = it->prompt > 0;
      for (std::int64_t at = begin; end - at >= 2; at += seq_len) {
        doc_window_start_.push_back(at);
        doc_window_tokens_.push_back(static_cast<std::int32_t>(std::min(seq_len + 1, end - at)));
        if (example) {
          if (end - at > seq_len + 1) ++truncated_;
          break;
        }
      }
    }
    if (doc_window_start_.empty())
      throw UsageError("no document of the " + std::to_string(span.count) + " tokens at " +
                           std::to_string(span.begin) + " of '" + tokens.path() + "' has 2 tokens to train on",
                       "use more data, or zinf.data.windows = stream");
    windows_ = static_cast<std::int64_t>(doc_window_start_.size());
    if (mode_ == Windows::kPacked) pack_windows();
  } else {
    if (span.count < seq_len + 1)
      throw UsageError((span.count == tokens.size() ? "'" + tokens.path() + "'"
                                                    : "the " + std::to_string(span.count) + " tokens at " +
                                                          std::to_string(span.begin) + " of '" + tokens.path() + "'") +
                           " has " + std::to_string(span.count) + " tokens; one window needs seq_len + 1 = " +
                           std::to_string(seq_len + 1),
                       "lower --seq-len or use a larger file");
    windows_ = (span.count - 1) / seq_len;
  }
  if (windows_ > std::numeric_limits<std::uint32_t>::max())
    throw UsageError("the dataset has " + std::to_string(windows_) + " samples per epoch; at most 2^32 supported",
                     "raise --seq-len or split the data");
  start_epoch();
}

// Best-fit decreasing: the pieces longest first (file order among equals),
// each into the open window with the least room that still takes it, else a
// new window. One pass over a balanced tree: n log n for n pieces.
void Sampler::pack_windows() {
  const std::size_t pieces = doc_window_start_.size();
  if (pieces > std::numeric_limits<std::uint32_t>::max())
    throw UsageError("the dataset has " + std::to_string(pieces) + " document windows; at most 2^32 can be packed",
                     "raise --seq-len or split the data");
  auto inputs = [this](std::size_t p) { return std::int64_t(doc_window_tokens_[p]) - 1; };
  std::vector<std::uint32_t> by_length(pieces);
  for (std::size_t p = 0; p < pieces; ++p) by_length[p] = static_cast<std::uint32_t>(p);
  std::stable_sort(by_length.begin(), by_length.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return inputs(a) > inputs(b); });
  std::vector<std::uint32_t> window_of(pieces);
  std::set<std::pair<std::int64_t, std::uint32_t>> room;  // (free positions, window) of windows not yet full
  std::uint32_t windows = 0;
  for (const std::uint32_t p : by_length) {
    const std::int64_t need = inputs(p);
    auto it = room.lower_bound({need, 0});
    std::int64_t left = 0;
    if (it == room.end()) {
      window_of[p] = windows++;
      left = seq_len_ - need;
    } else {
      window_of[p] = it->second;
      left = it->first - need;
      room.erase(it);
    }
    if (left > 0) room.insert({left, window_of[p]});
  }
  // Counting sort by window, pieces in file order within each.
  pack_first_.assign(std::size_t(windows) + 1, 0);
  for (std::size_t p = 0; p < pieces; ++p) ++pack_first_[window_of[p] + 1];
  for (std::size_t w = 0; w < windows; ++w) pack_first_[w + 1] += pack_first_[w];
  pack_piece_.resize(pieces);
  std::vector<std::int64_t> next(pack_first_.begin(), pack_first_.end() - 1);
  for (std::size_t p = 0; p < pieces; ++p) pack_piece_[std::size_t(next[window_of[p]]++)] = static_cast<std::uint32_t>(p);
  windows_ = windows;
}

double Sampler::packed_fill() const {
  if (mode_ != Windows::kPacked || windows_ == 0) return 0;
  double inputs = 0;
  for (const std::int32_t t : doc_window_tokens_) inputs += double(t - 1);
  return inputs / (double(windows_) * double(seq_len_));
}

void Sampler::start_epoch() {
  order_.resize(static_cast<std::size_t>(windows_));
  for (std::int64_t i = 0; i < windows_; ++i) order_[i] = static_cast<std::uint32_t>(i);
  shift_ = 0;
  if (!shuffle_) return;
  std::uint64_t rng = seed_ * 0x100000001B3ull ^ static_cast<std::uint64_t>(state_.epoch + 1) * 0x9E3779B97F4A7C15ull;
  if (mode_ == Windows::kStream) {  // documents' windows are where the documents are
    const std::int64_t slack = (span_.count - 1) - windows_ * seq_len_;  // tokens left over after the windows
    shift_ = static_cast<std::int64_t>(splitmix64(rng) % static_cast<std::uint64_t>(slack + 1));
  }
  for (std::int64_t i = windows_ - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(splitmix64(rng) % static_cast<std::uint64_t>(i + 1));
    std::swap(order_[i], order_[j]);
  }
}

Batch Sampler::next(std::int64_t rows) {
  Batch b;
  b.rows = rows;
  b.cols = seq_len_;
  b.inputs.resize(static_cast<std::size_t>(rows * seq_len_));
  b.targets.resize(b.inputs.size());
  if (mode_ == Windows::kPacked) b.positions.resize(b.inputs.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    if (state_.position == windows_) {
      ++state_.epoch;
      state_.position = 0;
      start_epoch();
    }
    const std::uint32_t w = order_[state_.position++];
    std::int64_t* in = b.inputs.data() + r * seq_len_;
    std::int64_t* tg = b.targets.data() + r * seq_len_;
    std::int64_t used = 0;
    if (mode_ == Windows::kPacked) {
      std::int64_t* pos = b.positions.data() + r * seq_len_;
      for (std::int64_t i = pack_first_[w]; i < pack_first_[w + 1]; ++i) {
        const std::uint32_t p = pack_piece_[std::size_t(i)];
        used += copy_piece(doc_window_start_[p], doc_window_tokens_[p], in + used, tg + used, pos + used);
      }
      for (std::int64_t i = used; i < seq_len_; ++i) pos[i] = i - used;  // the padding: a run of its own
    } else if (mode_ == Windows::kDocuments) {
      used = copy_piece(doc_window_start_[w], doc_window_tokens_[w], in, tg, nullptr);
    } else {
      used = copy_piece(span_.begin + shift_ + std::int64_t(w) * seq_len_, seq_len_ + 1, in, tg, nullptr);
    }
    // Padding after a short document: its inputs are the last token read
    // (any id would do: neither causal nor packed attention lets a document
    // see it), its targets train nothing.
    std::fill(in + used, in + seq_len_, window_.back());
    std::fill(tg + used, tg + seq_len_, kIgnoreTarget);
  }
  return b;
}

std::int64_t Sampler::copy_piece(std::int64_t start, std::int64_t count, std::int64_t* in, std::int64_t* tg,
                                 std::int64_t* positions) {
  window_.resize(static_cast<std::size_t>(count));
  tokens_->read(start, count, window_.data());
  std::copy(window_.begin(), window_.end() - 1, in);
  std::copy(window_.begin() + 1, window_.end(), tg);
  if (positions)
    for (std::int64_t i = 0; i + 1 < count; ++i) positions[i] = i;
  if (masks_prompts_) mask_prompts(start, tg, count - 1);
  return count - 1;
}

std::int64_t trained_targets(const Batch& b) {
  return std::count_if(b.targets.begin(), b.targets.end(), [](std::int64_t t) { return t != kIgnoreTarget; });
}

void Sampler::mask_prompts(std::int64_t first, std::int64_t* targets, std::int64_t count) const {
  const std::vector<Document>& docs = *docs_;
  const std::int64_t begin = first + 1, end = begin + count;  // the targets' global indices
  auto mask = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t g = std::max(begin, from); g < std::min(end, to); ++g) targets[g - begin] = kIgnoreTarget;
  };
  for (auto it = document_at(docs, begin); it != docs.end() && it->start < end; ++it)
    mask(it->start, it->start + it->prompt);
  const std::vector<Span>& runs = tokens_->context_runs();
  auto run = std::upper_bound(runs.begin(), runs.end(), begin, [](std::int64_t g, const Span& r) { return g < r.begin; });
  if (run != runs.begin()) --run;  // the last run starting at or before `begin` may reach into the window
  for (; run != runs.end() && run->begin < end; ++run) mask(run->begin, run->begin + run->count);
}

void Sampler::restore(const SamplerState& s) {
  if (s.epoch < 0 || s.position < 0 || s.position > windows_)
    throw UsageError("checkpointed data position (epoch " + std::to_string(s.epoch) + ", sample " +
                         std::to_string(s.position) + ") does not fit this dataset's " + std::to_string(windows_) +
                         " samples per epoch",
                     "resume with the same --dataset-file and --seq-len as the run that wrote the checkpoint");
  state_ = s;
  start_epoch();
}

}  // namespace zinf::data
