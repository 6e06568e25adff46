// zinf::config — the schema table.
// DeepSpeed's defaults are kept where zinf implements the feature the same way
// (aio, offload buffer counts, bucket sizes); "auto" is the default where the
// right value depends on the model, the batch or the machine.
#include "config/schema.h"

#include <set>

#include "core/model_spec.h"
#include "core/text.h"

namespace zinf::config {
namespace {

// The fields every key has; the helpers below add what their kind needs.
KeySpec key(std::string path, Kind kind, Json def, std::string help, bool auto_ok) {
  KeySpec k;
  k.path = std::move(path);
  k.kind = kind;
  k.default_value = std::move(def);
  k.auto_ok = auto_ok;
  k.help = std::move(help);
  return k;
}

KeySpec boolean(std::string path, Json def, std::string help, bool auto_ok = false) {
  return key(std::move(path), Kind::kBool, std::move(def), std::move(help), auto_ok);
}

// "auto" stays in the resolved file: it needs the planner and the GPU, which
// the configuration layer does not see (lib/train decides it).
KeySpec decided_at_start(KeySpec k) {
  k.auto_at_start = true;
  return k;
}

KeySpec ranged(std::string path, Kind kind, Json def, double min, double max, std::string help, bool auto_ok) {
  KeySpec k = key(std::move(path), kind, std::move(def), std::move(help), auto_ok);
  k.min = min;
  k.max = max;
  return k;
}

KeySpec integer(std::string path, Json def, double min, double max, std::string help, bool auto_ok = false) {
  return ranged(std::move(path), Kind::kInt, std::move(def), min, max, std::move(help), auto_ok);
}

KeySpec number(std::string path, Json def, double min, double max, std::string help, bool auto_ok = false) {
  return ranged(std::move(path), Kind::kNumber, std::move(def), min, max, std::move(help), auto_ok);
}

KeySpec number_list(std::string path, Json def, std::string help, bool auto_ok) {
  return key(std::move(path), Kind::kNumberList, std::move(def), std::move(help), auto_ok);
}

KeySpec string(std::string path, Json def, std::string help, bool nullable = false, bool auto_ok = false) {
  KeySpec k = key(std::move(path), Kind::kString, std::move(def), std::move(help), auto_ok);
  k.nullable = nullable;
  return k;
}

KeySpec choice(std::string path, Json def, std::vector<std::string> allowed, std::string help,
               bool auto_ok = false) {
  KeySpec k = key(std::move(path), Kind::kEnum, std::move(def), std::move(help), auto_ok);
  k.allowed = std::move(allowed);
  return k;
}

KeySpec opaque(std::string path) {
  return key(std::move(path), Kind::kOpaque, nullptr, "accepted for DeepSpeed compatibility; zinf ignores it", false);
}

constexpr double kBig = 9.0e18;
// Element counts (buckets, buffers, sub-groups): no more than a model can have.
constexpr double kMaxElements = double(kMaxParameters);

std::vector<KeySpec> build_schema() {
  const std::vector<std::string> devices = {"none", "cpu", "nvme"};
  std::vector<KeySpec> s = {
      // ---------------------------------------------------------------- batch
      integer("train_batch_size", "auto", 1, kBig,
              "global batch in samples = micro batch x accumulation x data-parallel ranks", true),
      integer("train_micro_batch_size_per_gpu", "auto", 1, kBig, "samples per rank per forward pass",
              true),
      integer("gradient_accumulation_steps", "auto", 1, kBig,
              "micro batches accumulated before each optimizer step", true),
      number("gradient_clipping", 1.0, 0, 1e300, "max global gradient L2 norm; 0 disables", true),
      integer("steps_per_print", 10, 1, kBig, "log every N optimizer steps"),
      boolean("wall_clock_breakdown", false, "print per-phase timings"),
      boolean("prescale_gradients", false, "divide gradients before the reduction"),
      number("gradient_predivide_factor", 1.0, 1e-30, 1e300, "divisor applied before reduction"),
      boolean("zero_allow_untested_optimizer", true, "DeepSpeed guard; zinf's optimizers are all tested"),
      boolean("zero_force_ds_cpu_optimizer", true, "DeepSpeed guard; zinf always uses its own CPU Adam"),
      // ------------------------------------------------------------ optimizer
      choice("optimizer.type", "AdamW", {"Adam", "AdamW"}, "optimizer; Adam with weight_decay is L2, AdamW decoupled"),
      number("optimizer.params.lr", "auto", 0, 1e300, "peak learning rate", true),
      number_list("optimizer.params.betas", Json::array({0.9, 0.999}), "Adam betas (beta1, beta2)", true),
      number("optimizer.params.eps", 1e-8, 0, 1e300, "Adam epsilon", true),
      number("optimizer.params.weight_decay", "auto", 0, 1e300, "weight decay", true),
      boolean("optimizer.params.adam_w_mode", true, "decoupled weight decay (AdamW)"),
      boolean("optimizer.params.torch_adam", false, "DeepSpeed switch; zinf ignores it"),
      // ------------------------------------------------------------ scheduler
      choice("scheduler.type", "WarmupLR", {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR"},
             "LR schedule: WarmupLR = constant after warmup, WarmupDecayLR = linear decay, "
             "WarmupCosineLR = cosine decay"),
      number("scheduler.params.warmup_min_lr", 0.0, 0, 1e300, "LR at step 0 of the warmup", true),
      number("scheduler.params.warmup_max_lr", "auto", 0, 1e300, "LR at the end of warmup", true),
      integer("scheduler.params.warmup_num_steps", 0, 0, kBig, "warmup length in optimizer steps", true),
      integer("scheduler.params.total_num_steps", "auto", 1, kBig, "steps over which the LR decays", true),
      choice("scheduler.params.warmup_type", "linear", {"linear", "log"}, "warmup curve"),
      number("scheduler.params.warmup_min_ratio", 0.0, 0, 1, "WarmupCosineLR: start LR / peak LR"),
      number("scheduler.params.cos_min_ratio", 0.0001, 0, 1, "WarmupCosineLR: final LR / peak LR"),
      // ------------------------------------------------------------ precision
      boolean("fp16.enabled", "auto", "fp16 weights and activations, fp32 master weights, dynamic loss scaling", true),
      number("fp16.loss_scale", 0, 0, 1e300, "0 = dynamic loss scaling, else a fixed scale"),
      integer("fp16.initial_scale_power", 16, 0, 64, "dynamic loss scale starts at 2^N"),
      integer("fp16.loss_scale_window", 1000, 1, kBig, "steps without overflow before the scale doubles"),
      integer("fp16.hysteresis", 2, 1, kBig, "overflows tolerated before the scale halves"),
      boolean("fp16.consecutive_hysteresis", false, "reset hysteresis after a good step"),
      number("fp16.min_loss_scale", 1, 0, 1e300, "lower bound of the dynamic loss scale"),
      boolean("fp16.auto_cast", false, "DeepSpeed switch; zinf ignores it"),
      boolean("bf16.enabled", "auto", "bf16 weights and activations with fp32 master weights", true),
      opaque("bf16.immediate_grad_update"),
      opaque("amp"),
      opaque("communication_data_type"),
      opaque("data_types"),
      // -------------------------------------------------------------- ZeRO
      integer("zero_optimization.stage", 0, 0, 3,
              "0 = none, 1 = partition optimizer states, 2 = also gradients, 3 = also parameters"),
      boolean("zero_optimization.allgather_partitions", true, "all-gather updated partitions after the step"),
      integer("zero_optimization.allgather_bucket_size", 500000000, 1, kMaxElements, "elements per all-gather bucket", true),
      boolean("zero_optimization.overlap_comm", true, "overlap reduction with backward"),
      boolean("zero_optimization.reduce_scatter", true, "reduce-scatter gradients instead of all-reduce"),
      integer("zero_optimization.reduce_bucket_size", "auto", 1, kMaxElements, "elements per gradient reduction bucket", true),
      boolean("zero_optimization.contiguous_gradients", true, "copy gradients into one contiguous buffer"),
      integer("zero_optimization.sub_group_size", "auto", 1, kMaxElements,
              "elements per optimizer sub-group (NVMe optimizer states are swapped per sub-group)", true),
      integer("zero_optimization.stage3_prefetch_bucket_size", "auto", 0, kMaxElements,
              "elements of parameters prefetched ahead of use", true),
      integer("zero_optimization.stage3_param_persistence_threshold", "auto", 0, kMaxElements,
              "parameters smaller than this stay gathered", true),
      integer("zero_optimization.stage3_max_live_parameters", 1000000000, 0, kMaxElements,
              "max gathered parameters at once", true),
      integer("zero_optimization.stage3_max_reuse_distance", 1000000000, 0, kMaxElements,
              "keep a gathered parameter if reused within this many elements", true),
      boolean("zero_optimization.stage3_gather_16bit_weights_on_model_save", false,
              "gather full 16-bit weights when saving", true),
      boolean("zero_optimization.stage3_gather_fp16_weights_on_model_save", false, "old name of the key above"),
      boolean("zero_optimization.round_robin_gradients", false, "stage 1/2 gradient partition order"),
      boolean("zero_optimization.elastic_checkpoint", false, "DeepSpeed elastic checkpoints; ignored"),
      boolean("zero_optimization.ignore_unused_parameters", true, "tolerate parameters without gradients"),
      boolean("zero_optimization.load_from_fp32_weights", true, "resume from fp32 master weights"),
      boolean("zero_optimization.memory_efficient_linear", true, "DeepSpeed switch; ignored"),
      boolean("zero_optimization.cpu_offload", false, "deprecated DeepSpeed switch; use offload_optimizer"),
      integer("zero_optimization.zero_hpz_partition_size", 1, 1, kBig, "ZeRO++ hierarchical partition; only 1"),
      boolean("zero_optimization.zero_quantized_weights", false, "ZeRO++ quantized weights; not supported"),
      boolean("zero_optimization.zero_quantized_gradients", false, "ZeRO++ quantized gradients; not supported"),
      integer("zero_optimization.mics_shard_size", -1, -1, kBig, "MiCS; not supported, -1 = off"),
      choice("zero_optimization.offload_param.device", "none", devices,
             "home of the parameters between uses (stage 3 only)"),
      string("zero_optimization.offload_param.nvme_path", nullptr, "directory for parameter swap files", true),
      boolean("zero_optimization.offload_param.pin_memory", true, "page-locked CPU buffers"),
      integer("zero_optimization.offload_param.buffer_count", 5, 1, 1024, "parameter swap buffers"),
      integer("zero_optimization.offload_param.buffer_size", "auto", 1, kMaxElements,
              "elements per parameter swap buffer; larger blocks stream through in pieces "
              "(auto: 8M, at most the largest block; DeepSpeed's default is 1e8)", true),
      integer("zero_optimization.offload_param.max_in_cpu", 1000000000, 0, kMaxElements,
              "max parameter elements kept in CPU memory with NVMe offload"),
      choice("zero_optimization.offload_optimizer.device", "none", devices,
             "home of fp32 master weights and Adam moments"),
      string("zero_optimization.offload_optimizer.nvme_path", nullptr, "directory for optimizer swap files", true),
      boolean("zero_optimization.offload_optimizer.pin_memory", true, "page-locked CPU buffers"),
      integer("zero_optimization.offload_optimizer.buffer_count", 4, 1, 1024, "optimizer swap buffers"),
      boolean("zero_optimization.offload_optimizer.fast_init", false, "DeepSpeed switch; ignored"),
      number("zero_optimization.offload_optimizer.ratio", 1.0, 0, 1, "fraction of optimizer work on CPU; only 1"),
      // --------------------------------------------------------------- aio
      integer("aio.block_size", 1048576, 1, kBig, "bytes per NVMe request; a multiple of 4096"),
      integer("aio.queue_depth", 8, 1, 1024, "NVMe requests in flight"),
      integer("aio.thread_count", 1, 1, 256, "threads submitting I/O"),
      integer("aio.intra_op_parallelism", 1, 1, 256, "DeepSpeed's newer name for thread_count"),
      boolean("aio.single_submit", false, "submit requests one at a time"),
      boolean("aio.overlap_events", true, "submit new requests while others complete"),
      boolean("aio.use_gds", false, "GPUDirect Storage (cuFile)"),
      // ------------------------------------------------- activation checkpointing
      boolean("activation_checkpointing.partition_activations", false, "DeepSpeed switch; ignored"),
      boolean("activation_checkpointing.cpu_checkpointing", false, "keep checkpointed activations on CPU"),
      boolean("activation_checkpointing.contiguous_memory_optimization", false, "DeepSpeed switch; ignored"),
      opaque("activation_checkpointing.number_checkpoints"),
      boolean("activation_checkpointing.synchronize_checkpoint_boundary", false, "DeepSpeed switch; ignored"),
      boolean("activation_checkpointing.profile", false, "DeepSpeed switch; ignored"),
      // ---------------------------------------- DeepSpeed sections zinf ignores
      opaque("flops_profiler"), opaque("tensorboard"), opaque("wandb"), opaque("csv_monitor"),
      opaque("comet"), opaque("comms_logger"), opaque("monitor_config"), opaque("autotuning"),
      opaque("elasticity"), opaque("checkpoint"), opaque("compression_training"),
      opaque("data_efficiency"), opaque("curriculum_learning"), opaque("pipeline"),
      opaque("sparse_attention"), opaque("dump_state"), opaque("memory_breakdown"),
      opaque("dataloader_drop_last"), opaque("sparse_gradients"), opaque("disable_allgather"),
      opaque("fp32_reduce_scatter"), opaque("seq_parallel_communication_data_type"),
      opaque("timers"), opaque("nebula"), opaque("weight_quantization"), opaque("hybrid_engine"),
      opaque("compile"), opaque("use_data_before_expert_parallelism"),
      // -------------------------------------------------------------- zinf
      choice("zinf.model.name", "tiny",
             {"tiny", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "1b", "2.7b", "6.7b", "13b"},
             "named model size; the dimensions below override it"),
      integer("zinf.model.vocab_size", "auto", 2, double(kMaxVocabSize), "vocabulary size", true),
      integer("zinf.model.seq_len", "auto", 1, double(kMaxSeqLen), "tokens per sample", true),
      integer("zinf.model.hidden_size", "auto", 1, double(kMaxHiddenSize), "model width", true),
      integer("zinf.model.layers", "auto", 1, double(kMaxLayers), "transformer blocks", true),
      integer("zinf.model.heads", "auto", 1, double(kMaxHeads), "attention heads", true),
      boolean("zinf.model.activation_checkpointing", false, "recompute each block in backward"),
      string("zinf.data.dataset_file", "auto",
             "text file (byte tokens), llm.c .bin token file (uint16 or uint32), or a comma-separated list, "
             "directory or glob of them; auto = bundled corpus",
             false, true),
      choice("zinf.data.format", "detect", {"detect", "bytes", "llmc", "nanogpt"},
             "how dataset files are read: detect = .bin by its llm.c header, others as bytes; nanogpt = "
             "header-less uint16 (nanoGPT's train.bin)"),
      number("zinf.data.val_fraction", 0.1, 0, 0.5,
             "share of the data held out for validation (when no val_dataset_file is given)"),
      string("zinf.data.val_dataset_file", "",
             "validation data in files of their own (same forms as dataset_file); empty = hold out val_fraction"),
      integer("zinf.data.eval_every", 0, 0, kBig, "validation loss every N steps; 0 = only at the end"),
      integer("zinf.data.eval_batches", 4, 1, kBig, "micro batches per validation"),
      integer("zinf.train.steps", 100, 1, kBig, "optimizer steps to run"),
      integer("zinf.train.seed", 1234, 0, kBig, "seed for initialisation and data order"),
      choice("zinf.train.device", "auto", {"auto", "cpu", "cuda"}, "auto = cuda when a GPU is present"),
      string("zinf.train.output_dir", "zinf-out", "where config.json, metrics, checkpoints go"),
      integer("zinf.train.save_every", 0, 0, kBig, "checkpoint every N steps; 0 = only at the end"),
      integer("zinf.train.keep_checkpoints", 2, 1, kBig, "checkpoints kept"),
      boolean("zinf.train.save", true, "write checkpoints and model.safetensors (off: benchmarks, disks too small)"),
      boolean("zinf.train.resume", false, "continue from the latest checkpoint in output_dir"),
      integer("zinf.train.log_every", 1, 1, kBig, "log a line every N steps"),
      string("zinf.train.gpus", "auto", "GPUs: auto, a count, or ids like 0,1", false, true),
      integer("zinf.train.comm_timeout", 600, 1, 86400,
              "seconds a rank waits for the other ranks (rendezvous, each collective) before it fails"),
      boolean("zinf.optimize", false, "pick stage and offload from the estimate"),
      choice("zinf.offload.gradients", "auto", {"none", "nvme"},
             "gradient accumulators on NVMe (auto: nvme when the optimizer is on NVMe)", true),
      integer("zinf.offload.optimizer_max_in_cpu", 0, 0, kMaxElements,
              "with the optimizer on NVMe: elements of optimizer state kept in CPU memory, the rest on NVMe"),
      boolean("zinf.offload.strict_nvme", false, "fail instead of falling back to CPU when NVMe is unusable"),
      boolean("zinf.offload.keep_swap_files", false, "keep swap files after the run"),
      boolean("zinf.offload.checksums", true, "verify checksums of data read back from NVMe"),
      boolean("zinf.offload.delayed_param_update", false,
              "ZeRO-Offload DPU: the CPU step of step N overlaps step N+1's forward/backward"),
      decided_at_start(boolean(
          "zinf.offload.device_grad_accumulation", "auto",
          "with gradient accumulation and the optimizer offloaded: sum the micro-batches' gradients in fp32 on "
          "the device (4 bytes per owned parameter) and copy them to the host once per step (auto: on CUDA when "
          "the estimate with the sums fits the GPU with the planner's safety margin; config.json records the choice)",
          true)),
  };
  return s;
}

}  // namespace

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> table = build_schema();
  return table;
}

const KeySpec* find_key(const std::string& path) {
  for (const auto& k : schema())
    if (k.path == path) return &k;
  return nullptr;
}

bool is_section(const std::string& path) {
  const std::string prefix = path + ".";
  for (const auto& k : schema())
    if (text::starts_with(k.path, prefix)) return true;
  return false;
}

std::vector<std::string> children_of(const std::string& section) {
  const std::string prefix = section.empty() ? "" : section + ".";
  std::set<std::string> seen;
  std::vector<std::string> out;
  for (const auto& k : schema()) {
    if (!text::starts_with(k.path, prefix)) continue;
    const std::string rest = k.path.substr(prefix.size());
    const std::string child = rest.substr(0, rest.find('.'));
    if (seen.insert(child).second) out.push_back(child);
  }
  return out;
}

Json defaults() {
  Json root = Json::object();
  for (const auto& k : schema())
    if (k.kind != Kind::kOpaque && !(k.default_value.is_null() && !k.nullable)) set_path(root, k.path, k.default_value);
  return root;
}

}  // namespace zinf::config
