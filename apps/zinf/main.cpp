// zinf — ZeRO stages 1-3 and ZeRO-Infinity (CPU and NVMe offload) for LibTorch.
// Implements: the entry point. Builds the root CLI from the registered
// subcommands, runs the chosen one, and turns every zinf::Error into a message
// on stderr ("error: ...", "hint: ...") and its exit code. Fixes glibc's
// mmap threshold first (see fix_malloc_threshold).
#include <CLI/CLI.hpp>
#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "command.h"
#include "core/error.h"
#include "core/text.h"
#include "core/version.h"
#include "log/log.h"

namespace {

// "did you mean --aio-block-size?" for a mistyped flag.
std::string suggest_flag(const CLI::App& app, const std::string& given) {
  const CLI::App* scope = &app;
  for (const CLI::App* sub : app.get_subcommands()) scope = sub;
  std::vector<std::string> names;
  for (const CLI::Option* opt : scope->get_options())
    for (const auto& n : opt->get_lnames()) names.push_back("--" + n);
  std::string bare = given.substr(0, given.find('='));
  return zinf::text::closest(bare, names);
}

// glibc raises its mmap threshold (up to 32 MiB) each time a large buffer
// is freed, after which block-sized tensors (a transformer block's
// parameters or gradient, tens of MiB) come from its per-thread arenas and
// stay there when freed: on the CPU engine that kept 350-500 MiB of freed
// memory resident (gpt2-small, infinity) and made peak RSS depend on the
// allocation history rather than on what is live. A fixed threshold turns
// the dynamic rule off: buffers of 4 MiB and more are mapped and unmapped
// whole, so peak RSS is what lib/plan counts. MALLOC_MMAP_THRESHOLD_ in the
// environment still wins.
void fix_malloc_threshold() {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  fix_malloc_threshold();
  CLI::App app{
      "zinf: train LibTorch models larger than GPU memory with DeepSpeed's ZeRO stages 1-3 and\n"
      "ZeRO-Infinity (parameters, gradients and optimizer states offloaded to CPU memory or NVMe).\n"
      "\n"
      "What each stage saves, per GPU, for N data-parallel GPUs:\n"
      "  none      every GPU holds everything (parameters, gradients, optimizer states)\n"
      "  zero1     optimizer states (fp32 master weights + Adam moments, 12 bytes/param) split N ways\n"
      "  zero2     zero1 + gradients split N ways\n"
      "  zero3     zero2 + parameters split N ways, gathered one block at a time\n"
      "  infinity  zero3 + parameters and optimizer states kept on NVMe (or CPU), streamed in as needed\n",
      "zinf"};
  app.set_version_flag("--version", "zinf " + zinf::version());
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn, error, off")
      ->envname("ZINF_LOG_LEVEL")
      ->each([](const std::string& v) { zinf::log::set_level(zinf::log::parse_level(v)); });
  app.require_subcommand(1);
  app.fallthrough();

  auto& registry = zinf::app::command_registry();
  std::sort(registry.begin(), registry.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
  for (const auto& cmd : registry) cmd.setup(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ExtrasError& e) {
    std::cerr << "error: " << e.what() << "\n";
    for (const auto& extra : app.remaining(true)) {
      if (extra.rfind("--", 0) != 0) continue;
      const std::string guess = suggest_flag(app, extra);
      if (!guess.empty()) std::cerr << "hint: did you mean " << guess << " (instead of " << extra << ")?\n";
    }
    std::cerr << "Run with --help for the options.\n";
    return static_cast<int>(zinf::ExitCode::kUsage);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\nRun with --help for the options.\n";
    return static_cast<int>(zinf::ExitCode::kUsage);
  } catch (const zinf::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (!e.hint().empty()) std::cerr << "hint: " << e.hint() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return static_cast<int>(zinf::ExitCode::kFailure);
  }
  return zinf::app::exit_code();
}
