// zinf estimate — memory and NVMe-space planning for every ZeRO option.
// Implements: the `estimate` subcommand. Takes the same model and batch
// options as `zinf train` (plus --params, --gpus per node, --nodes and
// hardware sizes), prints for each standard option the bytes per GPU, CPU
// memory per node and NVMe space per node and whether it fits, marks the
// recommended one, and with --json prints the same as JSON. The arithmetic is
// lib/plan's; this file parses and prints.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "command.h"
#include "config/json.h"
#include "config/settings.h"
#include "core/model_spec.h"
#include "core/error.h"
#include "core/text.h"
#include "core/units.h"
#include "hw/machine.h"
#include "log/log.h"
#include "plan/estimate.h"
#include "plan/recommend.h"

namespace zinf::app {
namespace {

struct EstimateCommand {
  ConfigOptions options;
  std::string params, nodes = "1", gpu_memory_gb, cpu_memory_gb, nvme_free_gb;
  std::string precision = "auto", device = "auto";
  bool json = false;
};

// ------------------------------------------------------------ input helpers

// The last value of option `name` among flags and ZINF_* variables; empty when unset.
std::string given(const config::Sources& s, const std::string& name) {
  std::string value;
  for (const auto& o : s.env)
    if (o.name == name) value = o.value;
  for (const auto& o : s.flags)
    if (o.name == name) value = o.value;
  return value;
}

bool set_by_user(const config::Origins& origins, const std::string& path) {
  const std::string o = origins.of(path);
  return o != "default" && o != "auto";
}

int parse_count(const std::string& flag, const std::string& text, const std::string& allowed) {
  const auto n = parse_integer(text::trim(text));
  if (!n) throw UsageError("--" + flag + " '" + text + "': not a whole number", "allowed: " + allowed);
  if (*n < 1) throw UsageError("--" + flag + " is " + std::to_string(*n) + ": must be at least 1", "allowed: " + allowed);
  if (*n > 1000000) throw UsageError("--" + flag + " is " + std::to_string(*n) + ": too large", "allowed: " + allowed);
  return static_cast<int>(*n);
}

// --gpus for estimate: a count ("8"), or ids ("0,1,2,3") whose number is the count.
int gpus_per_node(const std::string& text) {
  const std::string allowed = "a number of GPUs per node such as 8, or GPU ids such as 0,1";
  if (text.find(',') != std::string::npos) {
    int count = 0;
    for (const auto& id : text::split(text, ',')) {
      const auto n = parse_integer(text::trim(id));
      if (!n || *n < 0) throw UsageError("--gpus '" + text + "': '" + id + "' is not a GPU id", "allowed: " + allowed);
      ++count;
    }
    return count;
  }
  return parse_count("gpus", text, allowed);
}

std::optional<std::int64_t> gib_option(const std::string& flag, const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v))
    throw UsageError("--" + flag + " '" + text + "': not a number", "allowed: a size in GiB such as 80 or 1.5");
  if (v <= 0)
    throw UsageError("--" + flag + " is " + text + ": must be positive", "allowed: a size in GiB such as 80 or 1.5");
  if (v > 1048576)
    throw UsageError("--" + flag + " is " + text + ": more than 1048576 GiB (1 PiB)", "allowed: a size in GiB such as 80");
  return static_cast<std::int64_t>(v * double(kGiB));
}

config::Precision precision_for(const EstimateCommand& c, const config::Resolved& r, const config::Settings& s,
                                plan::Target target) {
  if (c.precision != "auto" || set_by_user(r.origins, "bf16.enabled") || set_by_user(r.origins, "fp16.enabled"))
    return s.precision;
  if (target == plan::Target::kCpu) return config::Precision::kFp32;
  const auto gpus = hw::detect_gpus();
  return gpus.empty() || gpus.front().bf16 ? config::Precision::kBf16 : config::Precision::kFp16;
}

// --------------------------------------------------------------- printing

std::string gib(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(kGiB));
  return buf;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}
std::string lpad(const std::string& s, std::size_t width) {
  return s.size() < width ? std::string(width - s.size(), ' ') + s : s;
}

nlohmann::json option_json(const plan::Option& o, const plan::Need& n, const plan::Fit& f) {
  auto items = [](const std::vector<plan::Item>& v) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& i : v) j.push_back({{"what", i.what}, {"bytes", i.bytes}, {"phase", plan::phase_name(i.phase)}});
    return j;
  };
  nlohmann::json j = {{"name", o.name},
                      {"zero_stage", o.zero_stage},
                      {"offload_param", tier_name(o.offload_param)},
                      {"offload_optimizer", tier_name(o.offload_optimizer)},
                      {"gpu_bytes", n.gpu_bytes},
                      {"cpu_bytes", n.cpu_bytes},
                      {"nvme_bytes", n.nvme_bytes},
                      {"fits", f.fits},
                      {"device_grad_accumulation", n.device_sums},
                      {"breakdown", {{"gpu", items(n.gpu)}, {"cpu", items(n.cpu)}, {"nvme", items(n.nvme)}}}};
  if (!f.fits) j["why"] = f.why;
  return j;
}

std::string hw_text(const std::optional<std::int64_t>& v, const std::string& source) {
  return v ? gib(*v) + " (" + source + ")" : "unknown";
}

// ------------------------------------------------------------------- run

void run_estimate(const EstimateCommand& c) {
  config::Sources sources = c.options.sources();
  const bool by_params = !c.params.empty();
  if (by_params)
    for (const char* shape : {"model", "hidden-size", "layers", "heads"})
      if (!given(sources, shape).empty())
        throw UsageError(std::string("--params and --") + shape + " both describe the model",
                         "give either --params N (a GPT shape is derived from the count) or --model / "
                         "--hidden-size --layers --heads");
  std::optional<std::int64_t> params;
  if (by_params) {
    params = plan::parse_param_count(c.params);
    if (!params)
      throw UsageError("--params '" + c.params + "': not a positive parameter count",
                       "allowed: a count such as 124439808, 1.3e9, 6.7B or 175B");
  }
  if (c.precision != "auto") sources.flags.push_back({"precision", c.precision});

  const int nodes = parse_count("nodes", c.nodes, "a whole number of nodes, 1 or more");
  const std::optional<std::int64_t> gpu_mem = gib_option("gpu-memory-gb", c.gpu_memory_gb);
  const std::optional<std::int64_t> cpu_mem = gib_option("cpu-memory-gb", c.cpu_memory_gb);
  const std::optional<std::int64_t> nvme_free = gib_option("nvme-free-gb", c.nvme_free_gb);

  std::string gpus_text = given(sources, "gpus");
  if (text::trim(gpus_text) == "auto") gpus_text.clear();  // the config default: detect
  const std::vector<hw::Gpu> detected = hw::detect_gpus();
  plan::Target target = plan::Target::kCpu;
  if (c.device == "cuda" || (c.device == "auto" && (!gpus_text.empty() || gpu_mem || !detected.empty())))
    target = plan::Target::kCuda;
  int gpus = gpus_text.empty() ? std::max<int>(1, static_cast<int>(detected.size())) : gpus_per_node(gpus_text);
  if (target == plan::Target::kCpu && gpus_text.empty()) gpus = 1;

  if (std::int64_t{gpus} * nodes > plan::kMaxRanks)
    throw UsageError("--gpus " + std::to_string(gpus) + " x --nodes " + std::to_string(nodes) + " = " +
                         std::to_string(std::int64_t{gpus} * nodes) + " ranks: more than " +
                         std::to_string(plan::kMaxRanks),
                     "allowed: at most " + std::to_string(plan::kMaxRanks) + " GPUs in all");
  config::MachineFacts facts = detect_machine_facts();
  facts.world_size = gpus * nodes;
  if (cpu_mem) facts.cpu_memory_bytes = *cpu_mem;  // "auto" sub-group size follows the memory planned for
  const config::Resolved resolved = config::build_config(sources, facts);
  for (const auto& w : resolved.warnings) log::warn_once(w, w);  // each once per process
  const config::Settings settings = config::settings_from(resolved.config);

  plan::Inputs in = plan::inputs_from(settings, gpus, nodes, target);
  in.precision = precision_for(c, resolved, settings, target);
  if (params) {
    const std::int64_t vocab = set_by_user(resolved.origins, "zinf.model.vocab_size") ? settings.model.vocab_size : 50304;
    const std::int64_t seq = set_by_user(resolved.origins, "zinf.model.seq_len") ? settings.model.seq_len : 2048;
    in.model = plan::shape_for_params(*params, vocab, seq);
    in.params = *params;
    in.seq_len = seq;
    // Sizes the configuration resolved from its own model's "auto" follow the
    // --params shape instead: 0 is the planner's "auto".
    if (!set_by_user(resolved.origins, "zero_optimization.sub_group_size")) in.sub_group_size = 0;
    if (!set_by_user(resolved.origins, "zero_optimization.reduce_bucket_size")) in.reduce_bucket_size = 0;
    if (!set_by_user(resolved.origins, "zero_optimization.offload_param.buffer_size")) in.param_buffer_size = 0;
  }
  plan::Hardware hw;
  {
    const plan::Hardware found = plan::detect_hardware(settings.swap_root());
    hw.gpu_bytes = gpu_mem ? gpu_mem : found.gpu_bytes;
    hw.cpu_bytes = cpu_mem ? cpu_mem : found.cpu_bytes;
    hw.nvme_free_bytes = nvme_free ? nvme_free : found.nvme_free_bytes;
  }
  in.gpu_capacity_bytes = hw.gpu_bytes;  // device gradient sums on "auto" are counted where they fit, as train decides
  const plan::Estimate est = plan::estimate(in);
  const plan::Recommendation rec = plan::recommend(est, hw);

  const bool has_selected = set_by_user(resolved.origins, "zero_optimization.stage") ||
                            set_by_user(resolved.origins, "zero_optimization.offload_param.device") ||
                            set_by_user(resolved.origins, "zero_optimization.offload_optimizer.device");
  const plan::Option selected = plan::option_from(settings);
  const plan::Need selected_need = plan::estimate_option(in, selected);
  const plan::Fit selected_fit = plan::check_fit(selected_need, hw, target);

  std::string model_name = params ? "custom (--params)" : settings.model.name;
  if (!params && model_name == "custom") {  // a named model with another sequence length or vocabulary stays named
    const config::Json* named = config::find_path(resolved.config, "zinf.model.name");
    const auto spec = named && named->is_string() ? find_model(named->get<std::string>()) : std::nullopt;
    if (spec && spec->hidden_size == in.model.hidden_size && spec->layers == in.model.layers &&
        spec->heads == in.model.heads)
      model_name = spec->name + " (seq_len " + std::to_string(in.model.seq_len) + ", vocab " +
                   std::to_string(in.model.vocab_size) + ")";
  }
  if (c.json) {
    nlohmann::json j;
    j["params"] = in.params;
    j["model"] = {{"name", model_name},          {"hidden_size", in.model.hidden_size},
                  {"layers", in.model.layers},    {"heads", in.model.heads},
                  {"vocab_size", in.model.vocab_size}, {"shape_derived_from_params", params.has_value()},
                  {"largest_block_params", est.largest_block_params}};
    j["micro_batch"] = in.micro_batch;
    j["seq_len"] = in.seq_len;
    j["activation_checkpointing"] = in.activation_checkpointing;
    j["precision"] = config::precision_name(in.precision);
    j["target"] = plan::target_name(target);
    j["gpus_per_node"] = gpus;
    j["nodes"] = nodes;
    auto opt = [](const std::optional<std::int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    j["hardware"] = {{"gpu_bytes", opt(hw.gpu_bytes)},
                     {"cpu_bytes", opt(hw.cpu_bytes)},
                     {"nvme_free_bytes", opt(hw.nvme_free_bytes)},
                     {"safety_margin", plan::kSafetyMargin}};
    j["options"] = nlohmann::json::array();
    for (std::size_t i = 0; i < est.rows.size(); ++i)
      j["options"].push_back(option_json(est.rows[i].option, est.rows[i].need, rec.fits[i]));
    j["recommended"] = rec.chosen ? nlohmann::json(est.rows[*rec.chosen].option.name) : nlohmann::json(nullptr);
    j["explanation"] = rec.explanation + (rec.shortfall.empty() ? "" : ": " + rec.shortfall);
    if (has_selected) j["selected"] = option_json(selected, selected_need, selected_fit);
    std::cout << j.dump(2) << "\n";
  } else {
    std::ostringstream out;
    out << "zinf estimate: " << model_name << ", " << format_count(double(in.params)) << " parameters (hidden "
        << in.model.hidden_size << ", " << in.model.layers << " layers, " << in.model.heads << " heads"
        << (params ? ", shape derived from --params" : "") << "), micro-batch " << in.micro_batch << " x "
        << in.seq_len << " tokens, " << config::precision_name(in.precision) << ", activation checkpointing "
        << (in.activation_checkpointing ? "on" : "off (always on at stage 3)") << "\n";
    out << "ranks: " << nodes << " node" << (nodes > 1 ? "s" : "") << " x " << gpus
        << (target == plan::Target::kCuda ? " GPU" : " CPU process") << (gpus > 1 ? "s" : "")
        << (target == plan::Target::kCpu ? " (CPU run: the accelerator's share is in CPU memory)" : "") << "\n";
    out << "hardware: ";
    if (target == plan::Target::kCuda)
      out << "GPU " << hw_text(hw.gpu_bytes, gpu_mem ? "--gpu-memory-gb" : "detected") << ", ";
    out << "CPU " << hw_text(hw.cpu_bytes, cpu_mem ? "--cpu-memory-gb" : "detected, available") << " per node, NVMe free "
        << hw_text(hw.nvme_free_bytes, nvme_free ? "--nvme-free-gb" : "detected") << "; "
        << std::lround(plan::kSafetyMargin * 100) << "% of each kept free\n\n";
    out << "    " << pad("option", 25) << pad("stage", 7) << pad("params", 8) << pad("optimizer", 11)
        << lpad("GPU/rank", 12) << lpad("CPU/node", 13) << lpad("NVMe/node", 13) << "  fits\n";
    auto row = [&](const std::string& mark, const plan::Option& o, const plan::Need& n, const plan::Fit& f) {
      out << " " << pad(mark, 3) << pad(o.name, 25) << pad(std::to_string(o.zero_stage), 7)
          << pad(tier_name(o.offload_param), 8) << pad(tier_name(o.offload_optimizer), 11)
          << lpad(target == plan::Target::kCuda ? gib(n.gpu_bytes) : "-", 12) << lpad(gib(n.cpu_bytes), 13)
          << lpad(n.nvme_bytes ? gib(n.nvme_bytes) : "-", 13) << "  "
          << (f.fits ? "yes" : f.known ? "no" : "unknown") << "\n";
    };
    for (std::size_t i = 0; i < est.rows.size(); ++i)
      row(rec.chosen && *rec.chosen == i ? "*" : "", est.rows[i].option, est.rows[i].need, rec.fits[i]);
    out << "\n" << (rec.chosen ? "* " : "") << rec.explanation << "\n";
    if (has_selected) {
      out << "\nselected by your configuration: " << selected.name << " ("
          << (selected_fit.fits ? "fits" : selected_fit.known ? "does not fit: " + selected_fit.why : selected_fit.why)
          << ")\n"
          << plan::describe_need(selected_need, target);
    } else if (rec.chosen) {
      out << "\n" << est.rows[*rec.chosen].option.name << " in detail:\n"
          << plan::describe_need(est.rows[*rec.chosen].need, target);
    }
    std::cout << out.str();
  }
  std::cout.flush();
  if (rec.nothing_fits)
    throw Error(rec.explanation + ": " + rec.shortfall,
                "add memory or machines, lower --batch-size, turn on --activation-checkpointing, or give the real "
                "sizes with --gpu-memory-gb / --cpu-memory-gb / --nvme-free-gb",
                ExitCode::kUnusable);
}

void setup(CLI::App& app) {
  auto state = std::make_shared<EstimateCommand>();
  CLI::App* cmd = app.add_subcommand(
      "estimate",
      "Estimate GPU memory per GPU, CPU memory per node and NVMe space per node for every ZeRO stage and\n"
      "offload choice (none, zero1, zero2, zero3, zero3+cpu-optimizer, infinity on CPU or NVMe), check them\n"
      "against the hardware (detected, or given in GiB) and mark the fastest that fits.");
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions);
  cmd->add_option("--params", state->params,
                  "parameter count instead of a model (124439808, 1.3e9, 6.7B, 175B); a GPT shape with hidden = 128 x "
                  "layers is derived for activations")
      ->type_name("N")
      ->group("Model");
  cmd->add_option("--nodes", state->nodes, "nodes, each with --gpus GPUs (default 1)")->type_name("M");
  cmd->add_option("--gpu-memory-gb", state->gpu_memory_gb, "memory of one GPU in GiB (default: detected)")
      ->type_name("GIB");
  cmd->add_option("--cpu-memory-gb", state->cpu_memory_gb,
                  "CPU memory per node in GiB (default: detected MemAvailable)")
      ->type_name("GIB");
  cmd->add_option("--nvme-free-gb", state->nvme_free_gb,
                  "free NVMe space per node in GiB (default: free space under --nvme-offload-path)")
      ->type_name("GIB");
  cmd->add_option("--precision", state->precision,
                  "auto (bf16 for GPUs, fp32 for CPU runs; a --config file's choice wins), fp32, bf16, fp16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}));
  cmd->add_option("--device", state->device,
                  "auto (cuda when --gpus, --gpu-memory-gb or a GPU is present), cuda, or cpu (a CPU run)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_flag("--json", state->json,
                "print JSON: params, options (zero_stage, offload_param, offload_optimizer, gpu_bytes, cpu_bytes, "
                "nvme_bytes, fits, breakdown: items with what, bytes and phase), recommended, selected");
  cmd->callback([state] { run_estimate(*state); });
}

ZINF_REGISTER_COMMAND(20, setup);

}  // namespace
}  // namespace zinf::app
