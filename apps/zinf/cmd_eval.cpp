// zinf eval — loss and perplexity of a model on a token file.
// Implements: `zinf eval MODEL --dataset-file FILE [--seq-len N]
// [--batch-size N] [--max-batches N]`: MODEL is a Hugging Face model
// directory or a zinf checkpoint (model_arg.h); the file is read in
// consecutive windows of seq_len + 1 tokens (every target token scored once)
// on --device in --precision, through the ZeRO engine when the options offload
// (a model larger than the GPU). Prints a line on the log and one JSON
// object on stdout: loss, perplexity, tokens, windows, seconds, model.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/units.h"
#include "data/prepare.h"
#include "data/sampler.h"
#include "data/token_file.h"
#include "log/log.h"
#include "model_arg.h"
#include "train/inference.h"

namespace zinf::app {
namespace {

struct EvalCommand {
  ConfigOptions options;
  std::string model;
  std::int64_t max_batches = 0;
};

void run_eval(const EvalCommand& c) {
  OpenedModel m = open_model(c.model, c.options);
  const config::Settings& s = m.settings;
  const data::Tokens tokens =
      data::load_dataset(s.dataset_file, data::parse_token_format(s.data_format), s.tokenizer, s.model.vocab_size);
  const data::Windows windows = data::resolve_windows(s.data_windows, tokens);
  log::info("weights: " + m.weights->describe());
  train::InferenceModel model(s, *m.weights);
  const std::int64_t max_windows = c.max_batches > 0 ? c.max_batches * s.micro_batch : 0;
  const train::EvalResult r = train::evaluate(model, tokens, s.model.seq_len, s.micro_batch, max_windows, windows);
  log::info("eval: loss " + format_fixed(r.loss, 4) + ", perplexity " + format_fixed(r.perplexity, 2) + " over " +
            std::to_string(r.tokens) + " tokens (" + std::to_string(r.windows) + " windows of " +
            std::to_string(s.model.seq_len) + ") of " + tokens.path() + " in " + format_fixed(r.seconds, 2) + " s" +
            (model.through_engine() ? " (through the ZeRO engine)" : ""));
  nlohmann::json j = {{"loss", r.loss},       {"perplexity", r.perplexity}, {"tokens", r.tokens},
                      {"windows", r.windows}, {"seq_len", s.model.seq_len}, {"seconds", r.seconds},
                      {"dataset", tokens.path()}, {"weights", m.weights->describe()}};
  std::cout << j.dump() << std::endl;
}

void setup(CLI::App& app) {
  auto state = std::make_shared<EvalCommand>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Loss and perplexity of a model on a dataset (--dataset-file: token files, or text/JSONL with\n"
      "--tokenizer), in consecutive windows of seq_len + 1 tokens (or document windows, --data-windows);\n"
      "fine-tuning examples count their completions only. MODEL: a Hugging Face model directory (config.json + safetensors) or a zinf\n"
      "checkpoint (global_stepN, checkpoints/ or a training output directory). Prints one JSON line.");
  cmd->add_option("MODEL", state->model, "HF model directory or zinf checkpoint");
  cmd->add_option("--max-batches", state->max_batches, "score at most N batches (0 = the whole file)")
      ->check(CLI::NonNegativeNumber);
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions |
                                  config::kTrainOptions);
  cmd->callback([state] { run_eval(*state); });
}

ZINF_REGISTER_COMMAND(15, setup);

}  // namespace
}  // namespace zinf::app
