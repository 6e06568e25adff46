// zinf::config — the option table.
#include "config/options.h"

#include <cmath>
#include <cstdlib>

#include "config/origins.h"
#include "core/error.h"
#include "core/model_spec.h"
#include "core/text.h"
#include "core/units.h"

namespace zinf::config {
namespace {

using ApplyFn = std::function<void(Json&, const std::string&, const std::string&, Origins&)>;

// Sets every path in `paths` to the value, typed by `type`.
ApplyFn set_paths(std::vector<std::string> paths, OptionType type) {
  return [paths, type](Json& cfg, const std::string& value, const std::string& origin, Origins& origins) {
    Json typed;
    switch (type) {
      case OptionType::kInt:
      case OptionType::kBytes: typed = std::stoll(value); break;
      case OptionType::kNumber: typed = std::stod(value); break;
      case OptionType::kBoolPair:
      case OptionType::kSwitch: typed = (value == "true"); break;
      case OptionType::kString: typed = value; break;
    }
    for (const auto& p : paths) {
      set_path(cfg, p, typed);
      origins.set(p, origin);
    }
  };
}

const char* kOffloadParam = "zero_optimization.offload_param.device";
const char* kOffloadOptimizer = "zero_optimization.offload_optimizer.device";

// --nvme-offload-params / --no-nvme-offload-params (likewise for the optimizer):
// "on" puts that state's home on NVMe; "off" moves it from NVMe to CPU, which
// is what infinity means without NVMe (ZeRO-3 with CPU offload), and leaves a
// stage without offload alone.
ApplyFn nvme_switch(const char* device_path) {
  return [device_path](Json& cfg, const std::string& value, const std::string& origin, Origins& origins) {
    const Json* current = find_path(cfg, device_path);
    const std::string device = current && current->is_string() ? current->get<std::string>() : "none";
    if (value == "true") {
      set_path(cfg, device_path, "nvme");
      origins.set(device_path, origin);
    } else if (device == "nvme") {
      set_path(cfg, device_path, "cpu");
      origins.set(device_path, origin);
    }
  };
}

// --lr-schedule picks the DeepSpeed scheduler type.
void apply_lr_schedule(Json& cfg, const std::string& value, const std::string& origin, Origins& origins) {
  const std::string type = value == "constant" ? "WarmupLR" : value == "warmup-decay" ? "WarmupDecayLR" : "WarmupCosineLR";
  set_path(cfg, "scheduler.type", type);
  origins.set("scheduler.type", origin);
}

std::vector<OptionSpec> build_options() {
  const unsigned src = kSourceOptions, zero = kZeroOptions, model = kModelOptions, train = kTrainOptions;
  return {
      // ------------------------------------------------------------ sources
      {"zero-stage", OptionType::kString, "STAGE",
       "ZeRO recipe: none (plain data parallel), zero1 (partition optimizer states), zero2 (also "
       "gradients), zero3 (also parameters), infinity (zero3 plus offload of parameters and optimizer "
       "states to NVMe, or to CPU with --no-nvme-offload-*). A --config file refines the recipe.",
       src, {"none", "zero1", "zero2", "zero3", "infinity"}, nullptr},
      {"preset", OptionType::kString, "NAME[,NAME]",
       "presets/NAME.yaml recipes applied in order: zero1, zero2, zero3, infinity, infinity-cpu, or a "
       "model size (gpt2-small ... 13b)", src, {}, nullptr},
      {"config", OptionType::kString, "FILE", "DeepSpeed JSON or YAML config; 'auto' values are resolved",
       src, {}, nullptr},
      // ------------------------------------------------------- ZeRO / offload
      {"nvme-offload-path", OptionType::kString, "PATH",
       "directory on a fast local NVMe disk for swap files (one subdirectory per run and rank)", zero, {},
       set_paths({"zero_optimization.offload_param.nvme_path", "zero_optimization.offload_optimizer.nvme_path"},
                 OptionType::kString)},
      {"nvme-offload-optimizer", OptionType::kBoolPair, "",
       "keep fp32 master weights and Adam moments on NVMe (default with infinity); --no-... keeps them in CPU memory",
       zero, {}, nvme_switch(kOffloadOptimizer)},
      {"nvme-offload-params", OptionType::kBoolPair, "",
       "keep parameters on NVMe between uses (default with infinity); --no-... keeps them in CPU memory", zero, {},
       nvme_switch(kOffloadParam)},
      {"nvme-offload-gradients", OptionType::kBoolPair, "",
       "keep gradient accumulators on NVMe (default: when the optimizer is on NVMe); --no-... keeps them in CPU memory",
       zero, {},
       [](Json& cfg, const std::string& v, const std::string& origin, Origins& origins) {
         set_path(cfg, "zinf.offload.gradients", v == "true" ? "nvme" : "none");
         origins.set("zinf.offload.gradients", origin);
       }},
      {"delayed-param-update", OptionType::kBoolPair, "",
       "ZeRO-Offload's delayed parameter update: step N's CPU optimizer overlaps step N+1, which computes with the "
       "weights from before step N's update (default off; needs parameters and optimizer in CPU memory)",
       zero, {}, set_paths({"zinf.offload.delayed_param_update"}, OptionType::kBoolPair)},
      {"device-grad-accumulation", OptionType::kBoolPair, "",
       "with --grad-accum > 1 and the optimizer offloaded: sum the micro-batches' gradients in fp32 on the device "
       "(4 bytes per owned parameter of device memory) and send them to the host once per step, instead of copying "
       "and adding every micro-batch's on the host (default auto: on for CUDA runs whose estimate with the sums fits "
       "the GPU)",
       zero, {}, set_paths({"zinf.offload.device_grad_accumulation"}, OptionType::kBoolPair)},
      {"optimizer-max-in-cpu", OptionType::kInt, "N",
       "with the optimizer on NVMe: elements of its state kept in CPU memory, the rest on NVMe (default 0)", zero, {},
       set_paths({"zinf.offload.optimizer_max_in_cpu"}, OptionType::kInt)},
      {"aio-block-size", OptionType::kBytes, "BYTES",
       "bytes per NVMe request, a positive multiple of 4096 (default 1048576)", zero, {},
       set_paths({"aio.block_size"}, OptionType::kBytes)},
      {"aio-queue-depth", OptionType::kInt, "N", "NVMe requests in flight, 1..1024 (default 8)", zero, {},
       set_paths({"aio.queue_depth"}, OptionType::kInt)},
      {"pin-memory", OptionType::kBoolPair, "", "page-locked CPU buffers for offload (default on)", zero, {},
       set_paths({"zero_optimization.offload_param.pin_memory", "zero_optimization.offload_optimizer.pin_memory"},
                 OptionType::kBoolPair)},
      {"strict-nvme", OptionType::kSwitch, "",
       "fail when the NVMe path is unusable instead of falling back to CPU offload", zero, {},
       set_paths({"zinf.offload.strict_nvme"}, OptionType::kSwitch)},
      {"optimize", OptionType::kSwitch, "",
       "pick the ZeRO stage and offload from the memory estimate and the detected hardware", zero, {},
       set_paths({"zinf.optimize"}, OptionType::kSwitch)},
      // ---------------------------------------------------------------- model
      {"model", OptionType::kString, "NAME", "model size: " + model_names(), model, model_name_list(),
       set_paths({"zinf.model.name"}, OptionType::kString)},
      {"hidden-size", OptionType::kInt, "N", "model width (overrides --model)", model, {},
       set_paths({"zinf.model.hidden_size"}, OptionType::kInt)},
      {"layers", OptionType::kInt, "N", "transformer blocks (overrides --model)", model, {},
       set_paths({"zinf.model.layers"}, OptionType::kInt)},
      {"heads", OptionType::kInt, "N", "attention heads (overrides --model)", model, {},
       set_paths({"zinf.model.heads"}, OptionType::kInt)},
      {"model-type", OptionType::kString, "TYPE",
       "architecture: gpt2, llama, mistral or qwen2 (overrides --model)", model, {"gpt2", "llama", "mistral", "qwen2"},
       set_paths({"zinf.model.model_type"}, OptionType::kString)},
      {"kv-heads", OptionType::kInt, "N", "key/value heads for grouped-query attention (Llama family)", model, {},
       set_paths({"zinf.model.kv_heads"}, OptionType::kInt)},
      {"intermediate-size", OptionType::kInt, "N", "MLP width (overrides --model)", model, {},
       set_paths({"zinf.model.intermediate_size"}, OptionType::kInt)},
      {"rope-theta", OptionType::kNumber, "X", "rotary embedding base (Llama family)", model, {},
       set_paths({"zinf.model.rope_theta"}, OptionType::kNumber)},
      {"from-pretrained", OptionType::kString, "DIR",
       "start from a Hugging Face model directory (config.json + model.safetensors or shards); its config sets "
       "the model",
       model | train, {}, set_paths({"zinf.model.from_pretrained"}, OptionType::kString)},
      {"seq-len", OptionType::kInt, "N", "tokens per sample (overrides --model)", model, {},
       set_paths({"zinf.model.seq_len"}, OptionType::kInt)},
      {"vocab-size", OptionType::kInt, "N", "vocabulary size (overrides --model; byte data needs >= 256)", model, {},
       set_paths({"zinf.model.vocab_size"}, OptionType::kInt)},
      {"activation-checkpointing", OptionType::kBoolPair, "", "recompute each block in backward to save memory",
       model, {}, set_paths({"zinf.model.activation_checkpointing"}, OptionType::kBoolPair)},
      {"batch-size", OptionType::kInt, "N", "micro-batch per GPU (train_micro_batch_size_per_gpu)",
       model | train, {}, set_paths({"train_micro_batch_size_per_gpu"}, OptionType::kInt)},
      // ---------------------------------------------------------------- train
      {"dataset-file", OptionType::kString, "FILE",
       "training data: a text file (byte tokens), an llm.c .bin token file (uint16 or uint32), or a "
       "comma-separated list, a directory or a glob of them (read in name order); default: the bundled corpus",
       train, {}, set_paths({"zinf.data.dataset_file"}, OptionType::kString)},
      {"val-dataset-file", OptionType::kString, "FILE",
       "validation data of its own (the same forms as --dataset-file); then all of --dataset-file trains",
       train, {}, set_paths({"zinf.data.val_dataset_file"}, OptionType::kString)},
      {"tokenizer", OptionType::kString, "DIR",
       "encode text datasets with this tokenizer (a directory with tokenizer.json, or that file) at start-up, "
       "in memory, for small datasets (large ones: zinf tokenize); default: bytes",
       train, {}, set_paths({"zinf.data.tokenizer"}, OptionType::kString)},
      {"data-format", OptionType::kString, "FORMAT",
       "detect (.bin files by their llm.c header, others as bytes), bytes, llmc, or nanogpt (header-less uint16 "
       "train.bin)",
       train, {}, set_paths({"zinf.data.format"}, OptionType::kString)},
      {"data-windows", OptionType::kString, "MODE",
       "detect (documents for prompt/completion data, else stream), stream (windows back to back across "
       "documents), documents (each window inside one document, padded) or packed (several documents to a "
       "window, each attending only to itself)",
       train, {}, set_paths({"zinf.data.windows"}, OptionType::kString)},
      {"steps", OptionType::kInt, "N", "optimizer steps", train, {},
       set_paths({"zinf.train.steps"}, OptionType::kInt)},
      {"grad-accum", OptionType::kInt, "N", "micro-batches per optimizer step (gradient_accumulation_steps)",
       model | train, {}, set_paths({"gradient_accumulation_steps"}, OptionType::kInt)},
      {"lr", OptionType::kNumber, "LR", "peak learning rate (default 3e-4; 2e-5 with --from-pretrained)", train, {},
       set_paths({"optimizer.params.lr"}, OptionType::kNumber)},
      {"weight-decay", OptionType::kNumber, "WD", "AdamW weight decay (default 0.01), on block matrices only (zinf.optimizer.weight_decay_on)", train, {},
       set_paths({"optimizer.params.weight_decay"}, OptionType::kNumber)},
      {"lr-schedule", OptionType::kString, "NAME",
       "constant (after warmup), warmup-decay (linear to 0, DeepSpeed WarmupDecayLR), cosine (DeepSpeed "
       "WarmupCosineLR, to 1e-4 of the peak); default: zinf's recipe, warmup then cosine to 10% of the peak",
       train,
       {"constant", "warmup-decay", "cosine"}, apply_lr_schedule},
      {"warmup-steps", OptionType::kInt, "N", "linear LR warmup steps (default: 2% of --steps, at least 5 on runs of 50+ steps, under the "
       "default schedule; 0 under a named --lr-schedule)", train, {},
       set_paths({"scheduler.params.warmup_num_steps"}, OptionType::kInt)},
      {"gradient-clipping", OptionType::kNumber, "NORM", "clip the global gradient norm (0 = off, default 1)",
       train, {}, set_paths({"gradient_clipping"}, OptionType::kNumber)},
      {"precision", OptionType::kString, "P",
       "auto (bf16 on GPUs that have it, else fp32), fp32, bf16, fp16", train, {"auto", "fp32", "bf16", "fp16"},
       [](Json& cfg, const std::string& v, const std::string& origin, Origins& origins) {
         set_path(cfg, "bf16.enabled", v == "auto" ? Json("auto") : Json(v == "bf16"));
         set_path(cfg, "fp16.enabled", v == "auto" ? Json("auto") : Json(v == "fp16"));
         origins.set("bf16.enabled", origin);
         origins.set("fp16.enabled", origin);
       }},
      {"seed", OptionType::kInt, "N", "random seed (initialisation and data order)", train, {},
       set_paths({"zinf.train.seed"}, OptionType::kInt)},
      {"device", OptionType::kString, "DEV", "auto (cuda when a GPU is present), cpu or cuda", train,
       {"auto", "cpu", "cuda"}, set_paths({"zinf.train.device"}, OptionType::kString)},
      {"gpus", OptionType::kString, "LIST", "GPUs to use: a count or ids like 0,1 (default: all visible)",
       model | train, {}, set_paths({"zinf.train.gpus"}, OptionType::kString)},
      {"output-dir", OptionType::kString, "DIR", "where ds_config.json, metrics.jsonl, checkpoints and the model go",
       train, {}, set_paths({"zinf.train.output_dir"}, OptionType::kString)},
      {"tensorboard-dir", OptionType::kString, "DIR",
       "write TensorBoard event files into DIR (DeepSpeed's tensorboard monitor, written natively)", train, {},
       set_paths({"zinf.train.tensorboard_dir"}, OptionType::kString)},
      {"save-every", OptionType::kInt, "N", "checkpoint every N steps (0 = only at the end)", train, {},
       set_paths({"zinf.train.save_every"}, OptionType::kInt)},
      {"keep-checkpoints", OptionType::kInt, "N", "checkpoints kept (default 2)", train, {},
       set_paths({"zinf.train.keep_checkpoints"}, OptionType::kInt)},
      {"save", OptionType::kBoolPair, "",
       "write checkpoints and the final model directory (model/) (default on); --no-save trains and reports only", train, {},
       set_paths({"zinf.train.save"}, OptionType::kBoolPair)},
      {"eval-every", OptionType::kInt, "N", "validation loss every N steps (0 = only at the end)", train, {},
       set_paths({"zinf.data.eval_every"}, OptionType::kInt)},
      {"log-every", OptionType::kInt, "N", "log a line every N steps (default 1)", train, {},
       set_paths({"zinf.train.log_every"}, OptionType::kInt)},
      {"comm-timeout", OptionType::kInt, "SECONDS",
       "multi-rank runs: how long a rank waits for the others (rendezvous, each collective) before it fails "
       "(default 600)",
       train, {}, set_paths({"zinf.train.comm_timeout"}, OptionType::kInt)},
      {"resume", OptionType::kSwitch, "", "continue from the latest checkpoint in --output-dir", train, {},
       set_paths({"zinf.train.resume"}, OptionType::kSwitch)},
  };
}

}  // namespace

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> table = build_options();
  return table;
}

const OptionSpec* find_option(const std::string& name) {
  for (const auto& o : options())
    if (o.name == name) return &o;
  return nullptr;
}

std::string env_name(const std::string& option_name) {
  std::string env = "ZINF_" + text::to_upper(option_name);
  for (auto& c : env)
    if (c == '-') c = '_';
  return env;
}

std::string normalise_option_value(const OptionSpec& spec, const std::string& raw, const std::string& origin) {
  const std::string v = text::trim(raw);
  auto fail = [&](const std::string& what, const std::string& allowed) -> Error {
    return UsageError(origin + " '" + raw + "': " + what, "allowed: " + allowed);
  };
  switch (spec.type) {
    case OptionType::kInt: {
      const auto n = parse_integer(v);
      if (!n) {
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        if (!v.empty() && *end == '\0' && std::isfinite(d) && d == std::floor(d))  // whole, but not 64-bit
          throw fail("too large", "a whole number of at most 9e18");
        throw fail("not a whole number", "a whole number such as 8 or 1e8");
      }
      return std::to_string(*n);
    }
    case OptionType::kBytes: {
      if (!v.empty() && v[0] == '-') throw fail("a size cannot be negative", "a positive number of bytes, e.g. 1048576 or 1MiB");
      const auto n = parse_bytes(v);
      if (!n) throw fail("not a number of bytes", "a number of bytes such as 1048576, 1MiB or 1e6");
      return std::to_string(*n);
    }
    case OptionType::kNumber: {
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(d)) throw fail("not a number", "a number such as 3e-4");
      return v;
    }
    case OptionType::kBoolPair:
    case OptionType::kSwitch: {
      const std::string l = text::to_lower(v);
      if (l == "1" || l == "true" || l == "yes" || l == "on") return "true";
      if (l == "0" || l == "false" || l == "no" || l == "off") return "false";
      throw fail("not a boolean", "1/0, true/false, yes/no, on/off");
    }
    case OptionType::kString: {
      if (spec.allowed.empty()) {
        if (v.empty()) throw fail("must not be empty", "a non-empty value");
        return v;
      }
      for (const auto& a : spec.allowed)
        if (a == v) return v;
      const std::string guess = text::closest(v, spec.allowed);
      throw UsageError(origin + " '" + raw + "' is not one of the allowed values" +
                           (guess.empty() ? "" : " (did you mean '" + guess + "'?)"),
                       "allowed: " + text::join(spec.allowed, ", "));
    }
  }
  return v;
}

}  // namespace zinf::config
