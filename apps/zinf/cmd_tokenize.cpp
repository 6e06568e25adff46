// zinf tokenize — text corpora to llm.c token shards.
// Implements: `zinf tokenize --tokenizer DIR_OR_FILE INPUT... --output-dir
// OUT`: plain text files (a document each), directories of them and JSONL
// files (--text-field) encoded on all cores into OUT/train_NNNNNN.bin and
// OUT/val_NNNNNN.bin (llm.c token files, uint16 or uint32 by the vocabulary),
// a document index beside each shard (.idx) and OUT/manifest.json
// (data::prepare_shards). Prints a progress line on stderr (in place on a
// terminal, every few seconds otherwise) and the throughput at the end on
// stdout.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "command.h"
#include "core/error.h"
#include "core/units.h"
#include "data/prepare.h"
#include "tokenize/tokenizer.h"

namespace zinf::app {
namespace {

struct TokenizeCommand {
  std::string tokenizer;
  std::vector<std::string> inputs;
  std::string output_dir;
  std::string text_field = "text";
  double val_fraction = 0.0005;
  std::int64_t val_docs = -1;
  std::string shard_tokens = "100M";
  int threads = 0;
  bool no_eos = false;
  std::string format = "llmc";
};

std::string rate_line(const data::CorpusProgress& p) {
  const double s = p.seconds > 0 ? p.seconds : 1e-9;
  char line[200];
  std::snprintf(line, sizeof line, "%lld docs, %s tokens, %s read, %.1f s: %s tokens/s, %.1f MB/s",
                static_cast<long long>(p.documents), format_count(double(p.tokens)).c_str(),
                format_bytes(double(p.bytes)).c_str(), p.seconds, format_count(double(p.tokens) / s).c_str(),
                double(p.bytes) / s / 1e6);
  return line;
}

void run(const TokenizeCommand& c) {
  if (c.format != "llmc")
    throw UsageError("unknown --format '" + c.format + "'", "allowed: llmc (llm.c token files, uint16 or uint32)");
  if (c.threads < 0) throw UsageError("--threads " + std::to_string(c.threads) + " is negative", "0 = all cores");
  const std::optional<std::int64_t> shard = parse_bytes(c.shard_tokens);
  if (!shard || *shard < 1)
    throw UsageError("--shard-tokens '" + c.shard_tokens + "' is not a positive count", "e.g. 100M or 1e8");
  const std::unique_ptr<tokenize::Tokenizer> tok = tokenize::load_tokenizer(c.tokenizer);

  data::PrepareOptions opts;
  opts.encode.text_field = c.text_field;
  opts.encode.eos = !c.no_eos;
  opts.encode.threads = c.threads;
  opts.output_dir = c.output_dir;
  opts.val_fraction = c.val_fraction;
  opts.val_docs = c.val_docs;
  opts.shard_tokens = *shard;

  const bool tty = ::isatty(STDERR_FILENO) == 1;
  double last = -1;
  const double every = tty ? 0.2 : 5.0;
  const auto progress = [&](const data::CorpusProgress& p) {
    if (p.seconds - last < every) return;
    last = p.seconds;
    std::cerr << (tty ? "\r" : "") << "tokenize: " << rate_line(p) << (tty ? "   " : "\n") << std::flush;
  };
  const data::PrepareResult r = data::prepare_shards(*tok, c.inputs, opts, progress);
  if (tty && last >= 0) std::cerr << "\n";

  std::cout << "tokenizer: " << tok->description() << ", vocabulary " << tok->vocab_size() << " ("
            << (r.width == 2 ? "uint16" : "uint32") << " shards)\n"
            << "train: " << r.train_documents << " documents, " << r.train_tokens << " tokens in " << r.train.size()
            << " shard(s)\n"
            << "val: " << r.val_documents << " documents, " << r.val_tokens << " tokens in " << r.val.size()
            << " shard(s)\n"
            << (r.totals.examples > 0 ? "fine-tuning examples: " + std::to_string(r.totals.examples) +
                                              " (prompt + completion; the loss counts completions only)\n"
                                        : std::string())
            << "wrote " << r.manifest_path << "\n"
            << "throughput: " << rate_line(r.totals) << "\n";
}

void setup(CLI::App& app) {
  auto c = std::make_shared<TokenizeCommand>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Tokenize text into llm.c token shards for --dataset-file, on all cores.\n"
      "INPUT: text files (one document each), directories of them (recursively, in name order) and\n"
      "JSONL files (.jsonl/.json, one document a line in --text-field, or a fine-tuning example as\n"
      "\"prompt\" and \"completion\": its prompt is recorded in the index and never trained on). The\n"
      "tokenizer's EOS ends every document. Writes OUT/train_NNNNNN.bin, OUT/val_NNNNNN.bin (uint16 when the vocabulary fits,\n"
      "else uint32), a document index per shard (.idx) and OUT/manifest.json. Validation: every\n"
      "round(1/--val-fraction)-th document from the first, or the first --val-docs documents.");
  cmd->add_option("--tokenizer", c->tokenizer, "directory with tokenizer.json or tokenizer.model, or that file")
      ->required();
  cmd->add_option("INPUT", c->inputs, "text files, directories, JSONL files")->required();
  cmd->add_option("--output-dir,-o", c->output_dir, "where the shards and manifest.json go")->required();
  cmd->add_option("--text-field", c->text_field, "JSONL field that holds the document (default: text)");
  auto* frac = cmd->add_option("--val-fraction", c->val_fraction,
                               "share of documents for validation: every round(1/F)-th, from document 0 "
                               "(default 0.0005; 0 = none)");
  cmd->add_option("--val-docs", c->val_docs, "the first N documents are validation instead")->excludes(frac);
  cmd->add_option("--shard-tokens", c->shard_tokens, "tokens per shard (default 100M)");
  cmd->add_option("--threads", c->threads, "encoding threads (default 0 = all cores)");
  cmd->add_flag("--no-eos", c->no_eos, "no EOS after documents (for a tokenizer without one)");
  cmd->add_option("--format", c->format, "output format: llmc (the only one)");
  cmd->callback([c] { run(*c); });
}

ZINF_REGISTER_COMMAND(45, setup);

}  // namespace
}  // namespace zinf::app
