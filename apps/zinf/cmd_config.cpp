// zinf config — print the merged, fully resolved DeepSpeed-compatible configuration.
#include <iostream>
#include <memory>

#include "command.h"
#include "config/loader.h"
#include "core/error.h"
#include "core/fs.h"
#include "log/log.h"

namespace zinf::app {
namespace {

struct ConfigCommand {
  ConfigOptions options;
  std::string format = "json";
  std::string output;
  bool explain = false;
};

void run_config(const ConfigCommand& c) {
  const config::Resolved r = config::build_config(c.options.sources(), detect_machine_facts());
  for (const auto& w : r.warnings) log::warn(w);
  if (c.explain) {
    for (const auto& [path, origin] : r.origins.all()) {
      const config::Json* v = config::find_path(r.config, path);
      std::cout << path << " = " << (v ? v->dump() : "null") << "    # " << origin << "\n";
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
  cmd->callback([state] { run_config(*state); });
}

ZINF_REGISTER_COMMAND(40, setup);

}  // namespace
}  // namespace zinf::app
