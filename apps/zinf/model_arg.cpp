// zinf app — MODEL as an HF directory or a checkpoint.
#include "model_arg.h"

#include <algorithm>

#include "core/error.h"
#include "log/log.h"

namespace zinf::app {

OpenedModel open_model(const std::string& model, const ConfigOptions& options, bool reads_data) {
  config::Sources sources = options.sources();
  // No dataset is read: its checks against the model (a text corpus needs
  // 256 byte tokens) do not apply; a token-file format skips them.
  if (!reads_data) sources.flags.push_back({"data-format", "llmc"});
  const bool hf_dir = !model.empty() && train::is_hf_model_dir(model);
  if (hf_dir) sources.flags.push_back({"from-pretrained", model});
  config::Resolved r = config::build_config(sources, detect_machine_facts());
  for (const auto& w : r.warnings) log::warn_once(w, w);
  OpenedModel m{config::settings_from(r.config), nullptr};
  if (model.empty() || hf_dir) {
    if (m.settings.from_pretrained.empty())
      throw UsageError("no model given", "name a Hugging Face model directory or a zinf checkpoint as MODEL");
    m.weights = train::pretrained_weights(m.settings.model, m.settings.from_pretrained);
    return m;
  }
  // A checkpoint knows its own model; the run's sequence length may be
  // shorter than its positions (--seq-len), never longer.
  ModelSpec spec;
  m.weights = train::checkpoint_weights(model, &spec);
  const std::string seq_origin = r.origins.of("zinf.model.seq_len");
  if (seq_origin != "auto" && seq_origin != "default") spec.seq_len = m.settings.model.seq_len;
  m.settings.model = spec;
  return m;
}

}  // namespace zinf::app
