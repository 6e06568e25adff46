// zinf generate — let a model continue a prompt.
// Implements: `zinf generate MODEL (--prompt-tokens 1,2,3 | --prompt TEXT)
// [--max-new-tokens N] [--temperature T] [--top-p P] [--seed N]
// [--stop-at-eos]`: MODEL is a Hugging Face model directory or a zinf
// checkpoint (model_arg.h), run whole on --device with a KV cache
// (model/generate.h): greedy at temperature 0 (the default), else sampled
// with top-p from the seed. --prompt encodes text with --tokenizer (default:
// MODEL's own tokenizer files) and the output is decoded with it. Prints one
// JSON object on stdout: prompt ids, generated ids and, with a tokenizer, text.
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.h"
#include "core/error.h"
#include "core/fs.h"
#include "log/log.h"
#include "model_arg.h"
#include "tokenize/tokenizer.h"
#include "train/inference.h"

namespace zinf::app {
namespace {

struct GenerateCommand {
  ConfigOptions options;
  std::string model;
  std::vector<std::int64_t> prompt_tokens;
  std::string prompt_text;
  std::string tokenizer;
  model::SamplingOptions sampling;
  bool stop_at_eos = false;
};

void run_generate(GenerateCommand& c) {
  if (c.prompt_tokens.empty() == c.prompt_text.empty())
    throw UsageError(c.prompt_tokens.empty() ? "no prompt given" : "--prompt-tokens and --prompt both given",
                     "give one of --prompt-tokens 1,2,3 or --prompt TEXT (with a tokenizer)");
  OpenedModel m = open_model(c.model, c.options, /*reads_data=*/false);
  // The tokenizer: --tokenizer, else MODEL's own files when it has them.
  std::string tok_path = c.tokenizer;
  if (tok_path.empty() && !c.model.empty() &&
      (fs::exists(c.model + "/tokenizer.json") || fs::exists(c.model + "/tokenizer.model")))
    tok_path = c.model;
  if (tok_path.empty() && !c.prompt_text.empty())
    throw UsageError("--prompt needs a tokenizer, and " + (c.model.empty() ? std::string("MODEL") : c.model) +
                         " has no tokenizer.json or tokenizer.model",
                     "name one with --tokenizer DIR, or give --prompt-tokens");
  std::unique_ptr<tokenize::Tokenizer> tok;
  if (!tok_path.empty()) {
    tok = tokenize::load_tokenizer(tok_path);
    if (std::int64_t(tok->vocab_size()) > m.settings.model.vocab_size)
      throw UsageError("the tokenizer " + tok->path() + " has " + std::to_string(tok->vocab_size()) +
                           " tokens, more than the model's vocabulary of " + std::to_string(m.settings.model.vocab_size),
                       "use the tokenizer the model was trained with");
  }
  std::vector<std::int64_t> prompt = c.prompt_tokens;
  if (!c.prompt_text.empty())
    for (std::uint32_t id : tok->encode(c.prompt_text, /*add_special=*/true)) prompt.push_back(id);
  if (c.stop_at_eos) {
    c.sampling.stop_token = m.settings.model.eos_token_id;
    if (c.sampling.stop_token < 0 && tok && tok->eos_id()) c.sampling.stop_token = *tok->eos_id();
    if (c.sampling.stop_token < 0)
      throw UsageError("--stop-at-eos, but neither the model nor its tokenizer names an EOS token",
                       "drop --stop-at-eos (generation stops after --max-new-tokens)");
  }
  log::info("weights: " + m.weights->describe());
  train::InferenceModel model(m.settings, *m.weights);
  const std::vector<std::int64_t> all = model.generate(prompt, c.sampling);
  const std::vector<std::int64_t> generated(all.begin() + std::ptrdiff_t(prompt.size()), all.end());
  nlohmann::json j = {{"prompt_tokens", prompt}, {"generated_tokens", generated}};
  if (tok) {
    tokenize::Ids ids(generated.begin(), generated.end());
    j["text"] = tok->decode(ids);
  }
  std::cout << j.dump() << std::endl;
}

void setup(CLI::App& app) {
  auto state = std::make_shared<GenerateCommand>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Continue a prompt with a model (KV cache; greedy by default, --temperature/--top-p to sample).\n"
      "MODEL: a Hugging Face model directory or a zinf checkpoint. Prints one JSON line.");
  cmd->add_option("MODEL", state->model, "HF model directory or zinf checkpoint");
  cmd->add_option("--prompt-tokens", state->prompt_tokens, "the prompt as token ids (1,2,3)")->delimiter(',');
  cmd->add_option("--prompt", state->prompt_text, "the prompt as text (needs a tokenizer)");
  cmd->add_option("--tokenizer", state->tokenizer, "tokenizer.json / tokenizer.model or its directory (default: MODEL's)");
  cmd->add_option("--max-new-tokens", state->sampling.max_new_tokens, "tokens to generate (default 32)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", state->sampling.temperature, "0 = greedy (default); > 0 samples")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", state->sampling.top_p, "nucleus sampling mass in (0, 1] (default 1)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--sample-seed", state->sampling.seed, "seed of the sampling generator (default 0)");
  cmd->add_flag("--stop-at-eos", state->stop_at_eos, "stop after the model's EOS token");
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions |
                                  config::kTrainOptions);
  cmd->callback([state] { run_generate(*state); });
}

ZINF_REGISTER_COMMAND(16, setup);

}  // namespace
}  // namespace zinf::app
