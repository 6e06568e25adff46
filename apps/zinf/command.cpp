// zinf app — the subcommand registry and the shared configuration options.
#include "command.h"

#include <cstdlib>

#include "config/options.h"
#include "hw/machine.h"

namespace zinf::app {
namespace {
int g_exit_code = 0;
}  // namespace

std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}

void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

void ConfigOptions::add_to(CLI::App& cmd, unsigned groups) {
  groups_ = groups;
  const auto& table = config::options();
  values_.assign(table.size(), std::string());  // sized once: CLI11 keeps references
  for (std::size_t i = 0; i < table.size(); ++i) {
    const auto& spec = table[i];
    if (!(spec.group & groups)) continue;
    // A command's own option of that name wins (zinf generate's --tokenizer).
    if (cmd.get_option_no_throw("--" + spec.name) != nullptr) continue;
    const std::string help = spec.help + "  [env: " + config::env_name(spec.name) + "]";
    CLI::Option* opt = nullptr;
    switch (spec.type) {
      case config::OptionType::kBoolPair:
        opt = cmd.add_flag("--" + spec.name + "{true},--no-" + spec.name + "{false}", values_[i], help);
        break;
      case config::OptionType::kSwitch:
        opt = cmd.add_flag("--" + spec.name + "{true}", values_[i], help);
        break;
      default:
        opt = cmd.add_option("--" + spec.name, values_[i], help)->type_name(spec.value_name);
        break;
    }
    opt->group(spec.group == config::kSourceOptions ? "Configuration"
               : spec.group == config::kZeroOptions ? "ZeRO and offload"
               : (spec.group & config::kTrainOptions) ? "Training"
                                                      : "Model");
    cli_options_.push_back(opt);
    names_.push_back(spec.name);
  }
}

config::Sources ConfigOptions::sources() const {
  config::Sources s;
  s.env = config::read_env_options(groups_);
  const auto& table = config::options();
  for (std::size_t k = 0; k < cli_options_.size(); ++k) {
    if (cli_options_[k]->count() == 0) continue;
    for (std::size_t i = 0; i < table.size(); ++i)
      if (table[i].name == names_[k]) s.flags.push_back({names_[k], values_[i]});
  }
  return s;
}

config::MachineFacts detect_machine_facts() {
  config::MachineFacts facts;
  const auto gpus = hw::detect_gpus();
  facts.cuda_devices = static_cast<int>(gpus.size());
  facts.bf16_supported = !gpus.empty() && gpus.front().bf16;
  facts.cpu_memory_bytes = hw::detect_memory().total_bytes;
  if (const char* ws = std::getenv("WORLD_SIZE"); ws && *ws) facts.world_size = std::max(1, std::atoi(ws));
  return facts;
}

}  // namespace zinf::app
