// zinf app — subcommand registry.
// Implements: the registry each cmd_*.cpp adds itself to, so main.cpp stays
// a dispatcher and each subcommand is one file. A subcommand's setup adds a
// CLI11 subcommand and sets its callback; callbacks throw zinf::Error.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "config/build.h"
#include "config/options.h"

namespace zinf::app {

struct Command {
  int order;                               // position in `zinf --help`
  std::function<void(CLI::App&)> setup;    // adds the subcommand to the root app
};

std::vector<Command>& command_registry();

struct RegisterCommand {
  RegisterCommand(int order, std::function<void(CLI::App&)> setup) {
    command_registry().push_back({order, std::move(setup)});
  }
};

// Exit code a callback wants main() to return (for commands that report
// "not usable" without throwing, like validate-nvme).
void set_exit_code(int code);
int exit_code();

// ------------------------------------------------------- shared option set
// Registers the config options of `groups` on `cmd` (with their ZINF_* env
// names in the help), and collects what the user gave into `flags`.
class ConfigOptions {
 public:
  void add_to(CLI::App& cmd, unsigned groups);
  // Flags from the command line plus ZINF_* environment, ready for build_config.
  config::Sources sources() const;

 private:
  unsigned groups_ = 0;
  std::vector<std::pair<std::string, std::string>> given_;  // storage CLI11 writes into
  std::vector<CLI::Option*> cli_options_;
  std::vector<std::string> names_;
  std::vector<std::string> values_;
  std::vector<int> bool_values_;
};

// Machine facts for "auto" resolution: GPUs, bf16, RAM, and WORLD_SIZE when a
// launcher set it.
config::MachineFacts detect_machine_facts();

}  // namespace zinf::app

#define ZINF_CONCAT_INNER(a, b) a##b
#define ZINF_CONCAT(a, b) ZINF_CONCAT_INNER(a, b)
#define ZINF_REGISTER_COMMAND(order, fn) \
  static ::zinf::app::RegisterCommand ZINF_CONCAT(zinf_register_, __LINE__)(order, fn)
