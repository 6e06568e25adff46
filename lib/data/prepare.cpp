// zinf::data — text corpora to token ids: reader, parallel encoder, shards.
#include "data/prepare.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "core/thread_pool.h"
#include "log/log.h"
#include "tokenize/chat_template.h"
#include "tokenize/tokenizer.h"

namespace zinf::data {
namespace {

namespace sfs = std::filesystem;
using json = nlohmann::json;

constexpr std::size_t kBatchBytes = std::size_t(8) << 20;  // text per batch (at most three in memory: encoding, ready, being read)
constexpr std::size_t kBatchDocs = 16384;
constexpr std::size_t kLineBufferBytes = std::size_t(1) << 20;
// A text file larger than this is encoded in pieces of about this size, cut
// where the tokenizer allows (Tokenizer::splits_after_newline), in parallel.
constexpr std::size_t kTextPieceBytes = std::size_t(512) << 10;

bool is_jsonl(const std::string& path) {
  const std::string p = text::to_lower(path);
  return text::ends_with(p, ".jsonl") || text::ends_with(p, ".json");
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// ---------------------------------------------------------------- reading batches

// One document as read: the text itself, or a JSONL line still to parse, or
// a piece of a large text file's one document.
struct RawDoc {
  std::string data;
  std::size_t input = 0;
  std::int64_t line = 0;   // 1-based JSONL line; 0 for text
  bool continues = false;  // a later piece of the text file's document
  bool ends = true;        // the document's last (or only) piece
};

// A cut after data[i - 1] == '\n' between two ASCII characters other than space.
bool cut_allowed(const std::string& data, std::size_t i) {
  auto solid = [](char c) { return c > ' ' && c < 0x7f; };
  return i >= 2 && i < data.size() && data[i - 1] == '\n' && solid(data[i - 2]) && solid(data[i]);
}

struct Batch {
  std::vector<RawDoc> docs;
  std::int64_t bytes = 0;
};

// Streams `inputs` into batches; next() returns nullopt at the end. With
// piece_bytes, a text file is read in pieces of at least that many bytes, cut
// only where cut_allowed (a file without such a place stays whole).
class BatchReader {
 public:
  BatchReader(const std::vector<CorpusInput>& inputs, std::size_t piece_bytes)
      : inputs_(inputs), piece_bytes_(piece_bytes) {}

  std::optional<Batch> next() {
    Batch b;
    std::size_t text = 0;
    while (b.docs.size() < kBatchDocs && text < kBatchBytes) {
      if (!open_next()) break;
      RawDoc d;
      d.input = current_;
      if (inputs_[current_].jsonl) {
        if (!std::getline(in_, d.data)) {
          if (in_.bad()) throw read_error();
          close_current();
          continue;
        }
        ++line_;
        b.bytes += static_cast<std::int64_t>(d.data.size()) + 1;
        if (blank(d.data)) continue;
        d.line = line_;
      } else if (piece_bytes_ == 0) {
        d.data = fs::read_file(inputs_[current_].path);
        b.bytes += static_cast<std::int64_t>(d.data.size());
        close_current();
      } else {
        next_piece(d);
        b.bytes += static_cast<std::int64_t>(d.data.size());
        if (d.ends) close_current();
      }
      text += d.data.size();
      b.docs.push_back(std::move(d));
    }
    if (b.docs.empty() && done()) return std::nullopt;
    return b;
  }

 private:
  bool done() const { return next_ >= inputs_.size() && !open_; }

  // The next piece of the open text file into d: at least piece_bytes_ (or
  // the rest of the file), up to the first place a cut is allowed.
  void next_piece(RawDoc& d) {
    std::size_t searched = piece_bytes_;  // no allowed cut before this in pending_
    for (;;) {
      if (pending_.size() > searched) {
        for (std::size_t i = searched; i < pending_.size(); ++i)
          if (cut_allowed(pending_, i)) {
            d.data = pending_.substr(0, i);
            pending_.erase(0, i);
            d.continues = std::exchange(piece_read_, true);
            d.ends = false;
            return;
          }
        searched = pending_.size();  // every place before it is checked
      }
      if (file_done_) break;
      const std::size_t at = pending_.size();
      pending_.resize(at + piece_bytes_);
      in_.read(&pending_[at], static_cast<std::streamsize>(piece_bytes_));
      if (in_.bad()) throw read_error();
      pending_.resize(at + static_cast<std::size_t>(in_.gcount()));
      if (in_.eof()) file_done_ = true;
    }
    d.data = std::move(pending_);
    pending_.clear();
    d.continues = std::exchange(piece_read_, true);
    d.ends = true;
  }

  // Makes the input to read from current; false when all are read.
  bool open_next() {
    if (open_) return true;
    if (next_ >= inputs_.size()) return false;
    current_ = next_++;
    line_ = 0;
    pending_.clear();
    piece_read_ = file_done_ = false;
    if (inputs_[current_].jsonl || piece_bytes_ > 0) {
      in_ = std::ifstream();
      in_.rdbuf()->pubsetbuf(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
      in_.open(inputs_[current_].path, std::ios::binary);
      if (!in_) throw read_error();
    }
    open_ = true;
    return true;
  }
  void close_current() {
    if (in_.is_open()) in_.close();
    open_ = false;
  }
  Error read_error() const {
    const int err = errno;
    return UsageError("cannot read '" + inputs_[current_].path + "': " + errno_text(err), "check the path");
  }

  const std::vector<CorpusInput>& inputs_;
  std::size_t piece_bytes_;
  std::string pending_;   // a text file's bytes read but not yet handed out
  bool piece_read_ = false, file_done_ = false;
  std::size_t next_ = 0, current_ = 0;
  bool open_ = false;
  std::int64_t line_ = 0;
  std::ifstream in_;
  std::vector<char> buffer_ = std::vector<char>(kLineBufferBytes);
};

// BatchReader on a thread of its own, one batch ahead of the encoder.
class Prefetcher {
 public:
  Prefetcher(const std::vector<CorpusInput>& inputs, std::size_t piece_bytes)
      : reader_(inputs, piece_bytes), thread_([this] { run(); }) {}
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // The next batch; nullopt at the end; rethrows the reader's error.
  std::optional<Batch> next() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return ready_.has_value() || finished_; });
    if (ready_) {
      std::optional<Batch> b = std::exchange(ready_, std::nullopt);
      cv_.notify_all();
      return b;
    }
    if (error_) std::rethrow_exception(error_);
    return std::nullopt;
  }

 private:
  void run() {
    try {
      for (;;) {
        std::optional<Batch> b = reader_.next();
        std::unique_lock<std::mutex> lk(mu_);
        if (!b) break;
        cv_.wait(lk, [this] { return !ready_.has_value() || stop_; });
        if (stop_) break;
        ready_ = std::move(b);
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> g(mu_);
      error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> g(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  BatchReader reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Batch> ready_;
  bool finished_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the fields above exist
};

// ---------------------------------------------------------------- encoding

// A document as text: pieces encoded one by one and concatenated, each
// trained on or context only (a fine-tuning example's prompt, a
// conversation's system and user turns).
struct TextPiece {
  std::string text;
  bool trained = true;
};
struct DocumentText {
  std::vector<TextPiece> pieces;
  bool example = false;             // some piece is context
  bool chat = false;                // rendered by the chat template: its BOS and end-of-turn are in the text
  bool last_reply_only = false;     // a conversation whose earlier replies could not be cut out (context)
};

// The tokenizer's chat template, loaded once per corpus. A template that
// fails to load is reported by the first "messages" line only, so a corpus of
// plain text never depends on it.
struct ChatSource {
  std::optional<tokenize::ChatTemplate> tmpl;
  std::exception_ptr error;
  std::string tokenizer;  // its path, for messages
};

std::string string_field(const json& j, const char* name, const std::string& where) {
  const json& v = j.at(name);
  if (!v.is_string())
    throw UsageError(where + ": field \"" + name + "\" is a " + std::string(v.type_name()) + ", not a string");
  return v.get<std::string>();
}

// A "messages" line as an example. Every assistant reply trains (TRL's
// assistant_only_loss): what the template adds for reply k, render(conv[..k])
// beyond render(conv[..k), generation prompt), is trained; everything
// between (system and user turns, generation prompts) is context. That
// needs a template that renders each earlier turn the same once later ones
// follow; where one does not (some move the system message, or drop earlier
// reasoning), the conversation before the last reply is all context.
DocumentText chat_text(const json& messages, const std::string& where, const ChatSource& chat) {
  constexpr const char* kShape = "\"messages\" is a list of {\"role\": ..., \"content\": ...} ending with the "
                                 "assistant's reply to train on";
  if (!messages.is_array() || messages.empty())
    throw UsageError(where + ": \"messages\" is not a non-empty list", kShape);
  std::vector<tokenize::ChatMessage> conv;
  for (std::size_t k = 0; k < messages.size(); ++k) {
    const json& m = messages[k];
    const std::string at = where + ": message " + std::to_string(k);
    if (!m.is_object()) throw UsageError(at + " is a " + std::string(m.type_name()) + ", not an object", kShape);
    for (const auto& item : m.items())
      if (item.key() != "role" && item.key() != "content")
        throw UsageError(at + " has the field \"" + item.key() + "\"; zinf renders \"role\" and \"content\" only",
                         "tool calls and other fields would be missing from the template's input, changing the "
                         "text; write such examples as \"prompt\" and \"completion\"");
    if (!m.contains("role") || !m.contains("content")) throw UsageError(at + " lacks \"role\" or \"content\"", kShape);
    conv.push_back({string_field(m, "role", at), string_field(m, "content", at)});
  }
  if (conv.back().role != "assistant")
    throw UsageError(where + ": the last message is from \"" + conv.back().role + "\", not \"assistant\"", kShape);
  if (chat.error) std::rethrow_exception(chat.error);
  if (!chat.tmpl)
    throw UsageError(where + " holds chat \"messages\", but the tokenizer " + chat.tokenizer +
                         " has no chat template (\"chat_template\" in the tokenizer_config.json beside it)",
                     "use the model's tokenizer directory with its tokenizer_config.json, or write each example as "
                     "\"prompt\" and \"completion\"");
  auto render = [&](std::size_t messages_before, bool generation_prompt) {
    try {
      return chat.tmpl->render({conv.begin(), conv.begin() + std::ptrdiff_t(messages_before)}, generation_prompt);
    } catch (const Error& e) {
      throw UsageError(where + ": " + e.what(), e.hint());
    }
  };
  const std::string whole = render(conv.size(), false);
  DocumentText out;
  out.example = out.chat = true;
  std::string done;  // the text the pieces cover so far
  for (std::size_t k = 1; k < conv.size(); ++k) {
    if (conv[k].role != "assistant") continue;
    const std::string before = render(k, true);
    const std::string after = k + 1 == conv.size() ? whole : render(k + 1, false);
    if (!text::starts_with(before, done) || !text::starts_with(after, before) || !text::starts_with(whole, after)) {
      out.pieces.clear();
      break;
    }
    out.pieces.push_back({before.substr(done.size()), false});
    out.pieces.push_back({after.substr(before.size()), true});
    done = after;
  }
  if (!out.pieces.empty()) {
    if (whole.size() > done.size()) out.pieces.push_back({whole.substr(done.size()), false});
    return out;
  }
  const std::string prompt = render(conv.size() - 1, true);
  if (!text::starts_with(whole, prompt))
    throw UsageError(where + ": the chat template renders the conversation before the reply (with the generation "
                             "prompt) as a text that does not begin the whole conversation's text, so the reply "
                             "cannot be cut from it",
                     "the template changes earlier turns once a reply follows; write the example as \"prompt\" and "
                     "\"completion\"");
  out.pieces = {{prompt, false}, {whole.substr(prompt.size()), true}};
  out.last_reply_only = std::count_if(conv.begin(), conv.end() - 1,
                                      [](const tokenize::ChatMessage& m) { return m.role == "assistant"; }) > 0;
  return out;
}

// The document of `d`: the file's bytes, or the JSONL line's field (or prompt
// and completion, or chat messages).
DocumentText document_text(const RawDoc& d, const CorpusInput& in, const std::string& field, const ChatSource& chat) {
  if (!in.jsonl) return {{{d.data, true}}};
  const std::string where = in.path + ":" + std::to_string(d.line);
  json j = json::parse(d.data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    throw UsageError(where + " is not valid JSON",
                     "a JSONL file holds one JSON object per line; a file of plain text should not end in .jsonl/.json");
  if (!j.is_object()) throw UsageError(where + " is a JSON " + std::string(j.type_name()) + ", not an object");
  if (j.contains(field)) return {{{string_field(j, field.c_str(), where), true}}};
  if (j.contains("prompt") && j.contains("completion"))
    return {{{string_field(j, "prompt", where), false}, {string_field(j, "completion", where), true}}, true};
  if (j.contains("messages")) return chat_text(j["messages"], where, chat);
  throw UsageError(where + " has no field \"" + field + "\", nor \"prompt\" and \"completion\", nor \"messages\"",
                   "a line holds a document in \"" + field + "\" (--text-field names another) or a fine-tuning "
                   "example as \"prompt\" and \"completion\" or as chat \"messages\"");
}

}  // namespace

std::vector<CorpusInput> list_corpus_inputs(const std::vector<std::string>& inputs) {
  constexpr const char* kHint = "give text files, JSONL files (.jsonl/.json) or directories of them";
  if (inputs.empty()) throw UsageError("no input given", kHint);
  std::vector<CorpusInput> out;
  for (const std::string& path : inputs) {
    std::error_code ec;
    if (sfs::is_directory(path, ec)) {
      std::vector<std::string> found;
      auto it = sfs::recursive_directory_iterator(path, sfs::directory_options::follow_directory_symlink, ec);
      if (ec) throw UsageError("cannot read directory '" + path + "': " + ec.message(), kHint);
      for (; it != sfs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) throw UsageError("cannot read directory '" + path + "': " + ec.message(), kHint);
        const std::string name = it->path().filename().string();
        if (!name.empty() && name[0] == '.') {
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file(ec)) found.push_back(it->path().string());
      }
      if (found.empty()) throw UsageError("input directory '" + path + "' holds no files", kHint);
      std::sort(found.begin(), found.end());
      for (std::string& f : found) out.push_back({f, is_jsonl(f)});
    } else if (sfs::exists(path, ec)) {
      out.push_back({path, is_jsonl(path)});
    } else {
      throw UsageError("input '" + path + "' does not exist", kHint);
    }
  }
  return out;
}

CorpusProgress encode_corpus(const tokenize::Tokenizer& tok, const std::vector<CorpusInput>& inputs,
                             const EncodeOptions& opts, const DocumentSink& sink, const ProgressFn& progress) {
  std::optional<std::uint32_t> eos;
  if (opts.eos) {
    eos = tok.eos_id();
    if (!eos)
      throw UsageError("the tokenizer " + tok.path() + " names no EOS token to put after each document",
                       "add a tokenizer_config.json with \"eos_token\" (or a config.json with eos_token_id) beside "
                       "it, or pass --no-eos to concatenate documents without a separator");
  }
  // A fine-tuning example starts as the tokenizer's own encode would: with
  // BOS when its post-processor puts one first (Llama), else bare (GPT-2, Qwen2).
  const tokenize::Ids specials = tok.encode("", /*add_special=*/true);
  const std::optional<std::uint32_t> example_bos =
      !specials.empty() && tok.bos_id() && specials.front() == *tok.bos_id() ? tok.bos_id() : std::nullopt;
  ChatSource chat;
  chat.tokenizer = tok.path();
  try {
    chat.tmpl = tokenize::load_chat_template(tok.path());
  } catch (...) {
    chat.error = std::current_exception();
  }
  ThreadPool pool(opts.threads);
  Prefetcher reader(inputs, tok.splits_after_newline() ? kTextPieceBytes : 0);
  const auto t0 = std::chrono::steady_clock::now();
  CorpusProgress p;
  std::vector<EncodedDocument> docs;
  std::vector<char> last_reply_only;
  std::vector<std::exception_ptr> errors;
  while (std::optional<Batch> b = reader.next()) {
    const std::size_t n = b->docs.size();
    docs.assign(n, {});
    last_reply_only.assign(n, 0);
    errors.assign(n, nullptr);
    pool.parallel_for(static_cast<std::int64_t>(n), 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const RawDoc& d = b->docs[std::size_t(i)];
        try {
          const DocumentText t = document_text(d, inputs[d.input], opts.text_field, chat);
          EncodedDocument e;
          std::vector<std::uint32_t>& v = e.ids;
          if (t.example && example_bos && !t.chat) v.push_back(*example_bos);  // context: part of the prompt
          bool leading = true;  // context pieces before the first trained one are the prompt
          for (const TextPiece& piece : t.pieces) {
            const std::size_t at = v.size();
            const tokenize::Ids ids = tok.encode(piece.text, /*add_special=*/false);
            v.insert(v.end(), ids.begin(), ids.end());
            if (piece.trained) {
              leading = false;
            } else if (leading) {
              e.prompt = static_cast<std::int64_t>(v.size());
            } else if (v.size() > at) {
              e.context.push_back({static_cast<std::int64_t>(at), static_cast<std::int64_t>(v.size() - at)});
            }
          }
          // A rendered conversation ends with the template's own end-of-turn
          // (<|eot_id|>, <|im_end|>, </s>): that is what the model learns to stop with.
          if (eos && !t.chat && d.ends) v.push_back(*eos);
          e.continues = d.continues;
          docs[std::size_t(i)] = std::move(e);
          last_reply_only[std::size_t(i)] = t.last_reply_only ? 1 : 0;
        } catch (...) {
          errors[std::size_t(i)] = std::current_exception();
        }
      }
    });
    for (std::size_t i = 0; i < n; ++i) {  // in input order: the first bad document is the one reported
      if (errors[i]) std::rethrow_exception(errors[i]);
      if (docs[i].continues) ++p.pieces;
      else ++p.documents;
      sink(p.documents - 1, b->docs[i].input, docs[i]);
      if (docs[i].prompt > 0 || !docs[i].context.empty()) ++p.examples;
      p.last_reply_only += last_reply_only[i];
      p.tokens += static_cast<std::int64_t>(docs[i].ids.size());
    }
    p.bytes += b->bytes;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (progress) progress(p);
  }
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (p.last_reply_only > 0)
    log::warn_once("data.last_reply_only",
                   std::to_string(p.last_reply_only) + " conversations train only their last assistant reply: the "
                   "chat template of " + tok.path() + " renders earlier turns differently once later ones follow, so "
                   "their earlier replies cannot be cut out and stay context");
  return p;
}

// ---------------------------------------------------------------- shards on disk

namespace {

// Removes shard files of an earlier run (train_NNNNNN.bin/.idx beyond `keep`).
void remove_stale(const std::string& dir, const std::string& split, std::size_t keep) {
  for (std::size_t k = keep;; ++k) {
    const std::string base = shard_name(dir + "/" + split, static_cast<std::int64_t>(k));
    if (!fs::exists(base + ".bin") && !fs::exists(base + ".idx")) break;
    ::unlink((base + ".bin").c_str());
    ::unlink((base + ".idx").c_str());
  }
}

json shards_json(const std::vector<ShardInfo>& shards) {
  json a = json::array();
  for (const ShardInfo& s : shards)
    a.push_back({{"file", sfs::path(s.bin_path).filename().string()},
                 {"index", sfs::path(s.idx_path).filename().string()},
                 {"tokens", s.tokens},
                 {"documents", s.documents},
                 {"continues_previous", s.continues}});
  return a;
}

}  // namespace

PrepareResult prepare_shards(const tokenize::Tokenizer& tok, const std::vector<std::string>& input_paths,
                             const PrepareOptions& opts, const ProgressFn& progress) {
  const std::vector<CorpusInput> inputs = list_corpus_inputs(input_paths);
  if (opts.output_dir.empty()) throw UsageError("no output directory given", "pass --output-dir DIR");
  fs::make_dirs(opts.output_dir);
  {  // an unwritable directory should fail before the corpus is read
    const std::string probe = opts.output_dir + "/.zinf-tokenize-probe." + std::to_string(::getpid());
    fs::write_file_atomic(probe, "");
    ::unlink(probe.c_str());
  }
  if (opts.val_fraction < 0 || opts.val_fraction > 0.5)
    throw UsageError("--val-fraction " + std::to_string(opts.val_fraction) + " is outside 0..0.5");
  const std::int64_t every =
      opts.val_fraction > 0 ? std::max<std::int64_t>(1, std::llround(1.0 / opts.val_fraction)) : 0;
  const auto is_val = [&](std::int64_t doc) {
    if (opts.val_docs >= 0) return doc < opts.val_docs;
    return every > 0 && doc % every == 0;
  };

  PrepareResult r;
  const std::size_t vocab = tok.vocab_size();
  r.width = vocab <= 65536 ? 2 : 4;  // every id < 2^16 fits uint16 (llm.c's GPT-2 files)
  ShardWriter train(opts.output_dir + "/train", r.width, opts.shard_tokens);
  ShardWriter val(opts.output_dir + "/val", r.width, opts.shard_tokens);
  std::vector<std::int64_t> docs_per_input(inputs.size(), 0);
  r.totals = encode_corpus(
      tok, inputs, opts.encode,
      [&](std::int64_t doc, std::size_t input, const EncodedDocument& e) {
        ShardWriter& w = is_val(doc) ? val : train;
        if (e.continues) {
          w.append_to_document(e.ids);
          return;
        }
        ++docs_per_input[input];
        w.add_document(e.ids, e.prompt, e.context);
      },
      progress);
  if (train.documents() == 0)
    throw UsageError("no documents left for training: the corpus has " + std::to_string(r.totals.documents) +
                         " documents and all of them went to validation",
                     "lower --val-docs or --val-fraction, or add documents");
  r.train_documents = train.documents();
  r.train_tokens = train.tokens();
  r.val_documents = val.documents();
  r.val_tokens = val.tokens();

  // The manifest goes first, so a run cut short between the renames below
  // leaves no manifest that claims the mix of old and new shards.
  r.manifest_path = opts.output_dir + "/manifest.json";
  ::unlink(r.manifest_path.c_str());
  r.train = train.commit();
  r.val = val.commit();
  remove_stale(opts.output_dir, "train", r.train.size());
  remove_stale(opts.output_dir, "val", r.val.size());

  json in = json::array();
  for (std::size_t i = 0; i < inputs.size(); ++i)
    in.push_back({{"path", inputs[i].path}, {"kind", inputs[i].jsonl ? "jsonl" : "text"}, {"documents", docs_per_input[i]}});
  json m = {
      {"format", "zinf-token-shards"},
      {"version", 1},
      {"tokenizer",
       {{"path", tok.path()},
        {"description", tok.description()},
        {"vocab_size", vocab},
        {"eos_id", opts.encode.eos && tok.eos_id() ? json(*tok.eos_id()) : json(nullptr)}}},
      {"token_dtype", r.width == 2 ? "uint16" : "uint32"},
      {"magic", r.width == 2 ? kTokenFileMagic : kTokenFileMagicU32},
      {"eos_after_each_document", opts.encode.eos},
      {"text_field", opts.encode.text_field},
      {"shard_tokens", opts.shard_tokens},
      {"split", opts.val_docs >= 0 ? json{{"rule", "first documents"}, {"val_docs", opts.val_docs}}
                                   : json{{"rule", "every k-th document from document 0"},
                                          {"val_fraction", opts.val_fraction},
                                          {"k", every}}},
      {"documents", {{"train", r.train_documents}, {"val", r.val_documents}}},
      {"fine_tuning_examples", r.totals.examples},
      {"tokens", {{"train", r.train_tokens}, {"val", r.val_tokens}}},
      {"input_bytes", r.totals.bytes},
      {"inputs", in},
      {"shards", {{"train", shards_json(r.train)}, {"val", shards_json(r.val)}}},
  };
  fs::write_file_atomic(r.manifest_path, m.dump(2) + "\n");
  return r;
}

Tokens tokenize_dataset(const std::string& spec, const tokenize::Tokenizer& tok) {
  const Tokens files = load_tokens(spec, TokenFormat::kBytes);  // expands the list, directory or glob
  std::vector<CorpusInput> inputs;
  for (const TokenShard& s : files.shards()) inputs.push_back({s.path, is_jsonl(s.path)});
  EncodeOptions opts;
  opts.eos = tok.eos_id().has_value();
  std::vector<std::uint32_t> all;
  std::vector<Document> docs;
  std::vector<Span> runs;
  encode_corpus(tok, inputs, opts, [&](std::int64_t, std::size_t, const EncodedDocument& e) {
    if (e.continues) {
      all.insert(all.end(), e.ids.begin(), e.ids.end());
      return;
    }
    if (e.ids.empty()) return;
    const auto start = static_cast<std::int64_t>(all.size());
    docs.push_back({start, e.prompt});
    for (const Span& r : e.context) runs.push_back({start + r.begin, r.count});
    all.insert(all.end(), e.ids.begin(), e.ids.end());
  });
  if (all.empty()) throw UsageError("dataset '" + spec + "' holds no tokens after tokenization");
  return tokens_in_memory(spec, all, std::move(docs), std::move(runs));
}

Tokens load_dataset(const std::string& spec, TokenFormat format, const std::string& tokenizer,
                    std::int64_t model_vocab) {
  if (tokenizer.empty()) return load_tokens(spec, format);
  const std::unique_ptr<tokenize::Tokenizer> tok = tokenize::load_tokenizer(tokenizer);
  if (static_cast<std::int64_t>(tok->vocab_size()) > model_vocab)
    throw UsageError("the tokenizer " + tok->path() + " has " + std::to_string(tok->vocab_size()) +
                         " ids but the model's vocabulary has " + std::to_string(model_vocab),
                     "use --vocab-size " + std::to_string(tok->vocab_size()) +
                         " or more (GPT-2 pads 50257 to 50304), or the tokenizer made for the model");
  Tokens files = load_tokens(spec, format);
  if (files.format() != TokenFormat::kBytes) return files;  // already token ids
  return tokenize_dataset(spec, *tok);
}

}  // namespace zinf::data
