// zinf::data — text corpora to token ids with a tokenizer.
// Implements: the document reader and the parallel encoder behind `zinf
// tokenize` and `zinf train --tokenizer`:
//   - list_corpus_inputs(): plain text files (one document per file),
//     directories of them (recursively, in path-name order, hidden entries
//     skipped) and JSONL files (.jsonl or .json: one JSON object a line, the
//     document in its `text_field`; blank lines skipped);
//   - encode_corpus(): streams the inputs (a JSONL file is read line by line,
//     never whole; a text file, with a tokenizer that allows it
//     (Tokenizer::splits_after_newline), in pieces of about 512 KiB cut after
//     a newline between two ASCII non-space characters, whose ids are those of
//     the whole file; otherwise whole), encodes documents and pieces in
//     parallel on a thread pool in batches
//     (at most three batches of text in memory), and hands each document's ids
//     to a sink in input order, so the output never depends on the number of
//     threads. A document's ids are tokenizer.encode(text) without the
//     post-processor's special tokens, then the tokenizer's EOS (when asked):
//     EOS ends every document, as nanoGPT's prepare.py does. A JSONL line
//     without `text_field` but with string fields "prompt" and "completion"
//     is a fine-tuning example (TRL's prompt-completion form): BOS when the
//     tokenizer's post-processor puts one first, the prompt's ids, then the
//     completion's ids and EOS, each part encoded on its own; the BOS and the
//     prompt are the document's prompt, context the loss never counts. A line
//     with "messages" (a list of {"role", "content"} ending with the
//     assistant's) is an example rendered by the chat template of the
//     tokenizer's tokenizer_config.json: every assistant reply is trained
//     (what the template adds for it beyond the conversation before it with
//     the generation prompt), the system and user turns and generation
//     prompts are context (the first run of it the prompt, later ones
//     context runs), each piece encoded as text (special tokens written in it
//     become their ids) with no BOS or EOS added: the template writes them,
//     and its end-of-turn token ends each reply. A template that renders
//     earlier turns differently once later ones follow trains only the last
//     reply (a warning counts such conversations);
//   - prepare_shards(): encode_corpus into llm.c shards (ShardWriter) under
//     OUT: train_NNNNNN.bin/.idx, val_NNNNNN.bin/.idx and manifest.json;
//   - tokenize_dataset(): a small dataset tokenized into memory, for training.
// Documents are numbered from 0 in input order; the validation split takes the
// first `val_docs` documents, or else every k-th document from document 0
// with k = round(1 / val_fraction).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/shard_writer.h"
#include "data/token_file.h"

namespace zinf::tokenize {
class Tokenizer;
}

namespace zinf::data {

struct CorpusInput {
  std::string path;
  bool jsonl = false;  // .jsonl / .json: a document a line
};

// The files `inputs` name, in order (directories expanded as above). Throws
// UsageError for a missing input or a directory without files.
std::vector<CorpusInput> list_corpus_inputs(const std::vector<std::string>& inputs);

struct EncodeOptions {
  std::string text_field = "text";  // the JSONL field holding the document
  bool eos = true;                  // append the tokenizer's EOS to every document
  int threads = 0;                  // 0 = all cores
};

struct CorpusProgress {
  std::int64_t documents = 0;
  std::int64_t examples = 0;        // of them, fine-tuning examples (prompt + completion, conversations)
  std::int64_t last_reply_only = 0; // conversations whose earlier replies stay context (see encode_corpus)
  std::int64_t pieces = 0;          // further pieces large text files were encoded in, beyond each one's first
  std::int64_t tokens = 0;
  std::int64_t bytes = 0;           // input bytes read (files, JSONL lines)
  double seconds = 0;
};

// One encoded document: its ids, how many of the first are its prompt (0 but
// for fine-tuning examples) and further context runs (offsets into ids: a
// conversation's later system and user turns). Context is never a target.
struct EncodedDocument {
  std::vector<std::uint32_t> ids;
  std::int64_t prompt = 0;
  std::vector<Span> context;
  bool continues = false;  // more ids of the previous document (a large text file's later piece)
};

// Called in input order: document `index` (from 0) of input `input`.
using DocumentSink = std::function<void(std::int64_t index, std::size_t input, const EncodedDocument& doc)>;
// Called after every batch (on the calling thread).
using ProgressFn = std::function<void(const CorpusProgress&)>;

// Encodes every document of `inputs` into `sink`. Throws UsageError naming the
// file and line for a JSONL line that is not a JSON object or has neither a
// string `text_field` nor string "prompt" and "completion" nor "messages", for
// "messages" without a chat template, not ending with the assistant's, or that
// the template refuses (raise_exception) or renders so that the prompt does
// not begin the whole text, and for eos without a tokenizer EOS.
CorpusProgress encode_corpus(const tokenize::Tokenizer& tok, const std::vector<CorpusInput>& inputs,
                             const EncodeOptions& opts, const DocumentSink& sink, const ProgressFn& progress = {});

struct PrepareOptions {
  EncodeOptions encode;
  std::string output_dir;
  double val_fraction = 0.0005;        // every round(1/f)-th document, from document 0; 0 = none
  std::int64_t val_docs = -1;          // >= 0: the first val_docs documents instead
  std::int64_t shard_tokens = 100000000;
};

struct PrepareResult {
  std::vector<ShardInfo> train, val;
  std::int64_t train_documents = 0, val_documents = 0;
  std::int64_t train_tokens = 0, val_tokens = 0;
  int width = 2;                       // bytes per token in the shards
  CorpusProgress totals;
  std::string manifest_path;
};

// Tokenizes `inputs` into shards under opts.output_dir (created). Nothing is
// renamed into place before every document has been written, and files of an
// earlier run with other shard numbers are removed then.
PrepareResult prepare_shards(const tokenize::Tokenizer& tok, const std::vector<std::string>& inputs,
                             const PrepareOptions& opts, const ProgressFn& progress = {});

// The text dataset `spec` (what load_tokens takes: a file, a list, a
// directory or a glob; .jsonl files by their "text" field) tokenized into
// memory, EOS after every document when the tokenizer has one.
Tokens tokenize_dataset(const std::string& spec, const tokenize::Tokenizer& tok);

// The training data `spec` as load_tokens(spec, format) reads it, or, with a
// `tokenizer` (a directory or file for load_tokenizer), its text files
// tokenized into memory (token files are read as they are). Throws UsageError
// naming both sizes when the tokenizer's vocabulary exceeds model_vocab.
Tokens load_dataset(const std::string& spec, TokenFormat format, const std::string& tokenizer,
                    std::int64_t model_vocab);

}  // namespace zinf::data
