// zinf config — print the merged, fully resolved DeepSpeed-compatible configuration;
// --explain says what set each value and marks keys zinf accepts without acting on.
#include <iostream>
#include <memory>

#include "command.h"
#include "config/loader.h"
#include "config/schema.h"
#include "config/settings.h"
#include "core/error.h"
#include "core/fs.h"
#include "log/log.h"
#include "plan/estimate.h"
#include "plan/recommend.h"

namespace zinf::app {
namespace {

struct ConfigCommand {
  ConfigOptions options;
  std::string format = "json";
  std::string output;
  bool explain = false;
  bool keys = false;
};

const char* kind_name(config::Kind k) {
  switch (k) {
    case config::Kind::kBool: return "bool";
    case config::Kind::kInt: return "int";
    case config::Kind::kNumber: return "number";
    case config::Kind::kString: return "string";
    case config::Kind::kEnum: return "choice";
    case config::Kind::kNumberList: return "[number, number]";
    case config::Kind::kOpaque: return "any";
  }
  return "";
}

// Every key zinf knows: path, type, default, allowed values, help.
void print_keys() {
  for (const auto& k : config::schema()) {
    std::cout << k.path << "  (" << kind_name(k.kind);
    if (k.auto_ok) std::cout << " or \"auto\"";
    std::cout << ")";
    if (k.kind != config::Kind::kOpaque) std::cout << "  default " << k.default_value.dump();
    if (!k.allowed.empty()) {
      std::cout << "  one of:";
      for (const auto& a : k.allowed) std::cout << " " << a;
    }
    std::cout << "\n    " << k.help << "\n";
    if (!k.inert.empty()) std::cout << "    accepted, no effect in zinf: " << k.inert << "\n";
  }
}

// The one "auto" the configuration layer leaves (it needs the planner): the
// device gradient sums, decided as `zinf train` decides them on this machine.
void resolve_device_sums(config::Resolved& r, const config::MachineFacts& facts) {
  const char* path = "zinf.offload.device_grad_accumulation";
  const config::Json* v = config::find_path(r.config, path);
  if (!v || !v->is_string()) return;
  const config::Settings s = config::settings_from(r.config);
  const plan::Target target = s.device == "cuda" ? plan::Target::kCuda : plan::Target::kCpu;
  const plan::DeviceSumsChoice choice =
      plan::choose_device_sums(s, facts.world_size, target, plan::detect_hardware("").gpu_bytes);
  config::set_path(r.config, path, choice.on);
  r.origins.set(path, "auto" + (choice.why.empty() ? std::string() : ": " + choice.why));
}

void run_config(const ConfigCommand& c) {
  if (c.keys) return print_keys();
  const config::MachineFacts facts = detect_machine_facts();
  config::Resolved r = config::build_config(c.options.sources(), facts);
  resolve_device_sums(r, facts);
  for (const auto& w : r.warnings) log::warn_once(w, w);  // each once per process
  if (c.explain) {
    for (const auto& [path, origin] : r.origins.all()) {
      const config::Json* v = config::find_path(r.config, path);
      const std::string inert = config::inert_reason(path);
      std::cout << path << " = " << (v ? v->dump() : "null") << "    # " << origin
                << (inert.empty() ? "" : "  (accepted, no effect in zinf: " + inert + ")") << "\n";
    }
    return;
  }
  const std::string text = c.format == "yaml" ? config::to_yaml(r.config) : r.config.dump(2) + "\n";
  if (c.output.empty()) {
    std::cout << text;
  } else {
    fs::write_file_atomic(c.output, text);
    log::info("wrote " + c.output);
  }
}

void setup(CLI::App& app) {
  auto state = std::make_shared<ConfigCommand>();
  CLI::App* cmd = app.add_subcommand(
      "config",
      "Print the merged, fully resolved configuration (DeepSpeed JSON + a \"zinf\" section, no \"auto\" left).\n"
      "Merge order, lowest first: built-in defaults < --preset / --zero-stage recipe < --config file\n"
      "< ZINF_* environment < command-line flags.");
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions |
                                  config::kTrainOptions);
  cmd->add_option("--format", state->format, "json (default) or yaml")->check(CLI::IsMember({"json", "yaml"}));
  cmd->add_option("--output,-o", state->output, "write to FILE instead of stdout");
  cmd->add_flag("--explain", state->explain, "print every value set by something other than the defaults, and by what");
  cmd->add_flag("--keys", state->keys, "list every configuration key with its type, default and meaning");
  cmd->callback([state] { run_config(*state); });
}

ZINF_REGISTER_COMMAND(40, setup);

}  // namespace
}  // namespace zinf::app
