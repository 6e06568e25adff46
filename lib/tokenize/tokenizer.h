// zinf::tokenize — the tokenizer interface.
// Implements: Tokenizer (encode text to ids, decode ids to text, vocabulary
// facts) and load_tokenizer(), which opens a Hugging Face tokenizer.json or a
// SentencePiece tokenizer.model, from a directory (tokenizer.json first) or a
// file. BOS/EOS come from tokenizer_config.json or config.json beside it when
// present. Text that is not valid UTF-8 is repaired first: each invalid
// sequence becomes U+FFFD (Python's errors="replace"). Encoding is
// thread-safe: one Tokenizer may be shared by many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zinf::tokenize {

using Ids = std::vector<std::uint32_t>;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of `text` (UTF-8; invalid sequences become U+FFFD). add_special adds
  // what the tokenizer's post-processor adds (e.g. BOS), as the tokenizers
  // library's encode(text, add_special_tokens=True).
  virtual Ids encode(std::string_view text, bool add_special) const = 0;
  // The text of `ids` (special tokens kept), as the library's decode.
  virtual std::string decode(const Ids& ids) const = 0;
  // Number of ids: the largest id + 1.
  virtual std::size_t vocab_size() const = 0;
  virtual std::optional<std::uint32_t> token_to_id(const std::string& token) const = 0;
  // Whether encode(a + b) == encode(a) + encode(b) whenever `a` ends with a
  // newline preceded by an ASCII character other than space and `b` starts
  // with one: no normalizer, pre-tokenizer or added token joins or looks
  // across such a newline. Lets a large text be encoded in parallel pieces.
  virtual bool splits_after_newline() const { return false; }

  std::optional<std::uint32_t> bos_id() const { return bos_; }
  std::optional<std::uint32_t> eos_id() const { return eos_; }
  // "tokenizer.json (BPE)" or "tokenizer.model (SentencePiece)", for logs.
  const std::string& description() const { return description_; }
  const std::string& path() const { return path_; }

  void set_bos(std::optional<std::uint32_t> id) { bos_ = id; }
  void set_eos(std::optional<std::uint32_t> id) { eos_ = id; }

 protected:
  std::string description_;
  std::string path_;
  std::optional<std::uint32_t> bos_;
  std::optional<std::uint32_t> eos_;
};

// Opens `dir_or_file`: a directory holding tokenizer.json or tokenizer.model,
// or one of those files. Throws zinf::UsageError for a missing or malformed
// file or an unsupported component.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file);

// The tokenizer.json parser and the SentencePiece loader behind load_tokenizer.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

}  // namespace zinf::tokenize
