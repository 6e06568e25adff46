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
  return key(std::move(path), Kind::kOpaque, nullptr, "accepted for DeepSpeed compatibility", false);
}

// Accepted, without effect in zinf: `why` is the warning's reason and
// --explain's note; `harmless` values (besides the default) do what zinf does anyway.
KeySpec inert(KeySpec k, std::string why, std::vector<Json> harmless = {}) {
  k.inert = std::move(why);
  k.harmless = std::move(harmless);
  return k;
}

// A DeepSpeed section zinf does not implement: accepted, warned about when enabled.
KeySpec feature(std::string path, std::string why) { return inert(opaque(std::move(path)), std::move(why)); }

// Reasons shared by several keys.
const char* const kNoFeature = "zinf does not implement this DeepSpeed feature";
const char* const kBlockGather =
    "zinf gathers one transformer block's parameters at a time (prefetching the next) and releases them after use";
const char* const kActivationApi =
    "it configures DeepSpeed's activation-checkpointing API, which a model calls itself; zinf's blocks checkpoint "
    "themselves (zinf.model.activation_checkpointing)";
const char* const kFp32Master = "zinf keeps fp32 master weights, fp32 gradient sums and fp32 optimizer states";

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
      integer("steps_per_print", 10, 1, kBig,
              "log every N optimizer steps; read as zinf.train.log_every unless that is set too"),
      inert(boolean("wall_clock_breakdown", false, "print per-phase timings"),
            "zinf has no per-phase timers to print; metrics.jsonl has each step's time"),
      inert(boolean("prescale_gradients", false, "divide gradients before the reduction"),
            "zinf averages gradients over the ranks in its reduction; dividing first changes only rounding "
            "(DeepSpeed offers it against fp16 overflow)"),
      inert(number("gradient_predivide_factor", 1.0, 1e-30, 1e300, "divisor applied before reduction"),
            "zinf averages gradients over the ranks in its reduction; dividing first changes only rounding "
            "(DeepSpeed offers it against fp16 overflow)"),
      inert(opaque("gradient_allreduce_op"), "zinf averages gradients over the ranks", {"mean"}),
      inert(boolean("zero_allow_untested_optimizer", true, "DeepSpeed guard against untested optimizers"),
            "zinf's optimizers are all tested", {false}),
      inert(boolean("zero_force_ds_cpu_optimizer", true, "DeepSpeed guard: DeepSpeed's CPU Adam with offload"),
            "zinf always uses its own CPU Adam", {false}),
      // ------------------------------------------------------------ optimizer
      choice("optimizer.type", "AdamW", {"Adam", "AdamW"}, "optimizer; Adam with weight_decay is L2, AdamW decoupled"),
      number("optimizer.params.lr", "auto", 0, 1e300,
             "peak learning rate; auto = 3e-4, or 2e-5 when fine-tuning (zinf.model.from_pretrained is set)", true),
      number_list("optimizer.params.betas", Json::array({0.9, 0.999}), "Adam betas (beta1, beta2)", true),
      number("optimizer.params.eps", 1e-8, 0, 1e300, "Adam epsilon", true),
      number("optimizer.params.weight_decay", "auto", 0, 1e300,
             "weight decay (auto = 0.01), on the parameters zinf.optimizer.weight_decay_on names", true),
      boolean("optimizer.params.adam_w_mode", true, "decoupled weight decay (AdamW)"),
      inert(boolean("optimizer.params.torch_adam", false, "DeepSpeed switch: torch's Adam instead of its fused one"),
            "zinf always runs its own Adam (fused on the GPU, vectorised on the CPU)", {true}),
      // ------------------------------------------------------------ scheduler
      choice("scheduler.type", "auto", scheduler_types(),
             "LR schedule (DeepSpeed's): WarmupLR = constant after warmup, WarmupDecayLR = linear decay, "
             "WarmupCosineLR = cosine decay, OneCycle = 1cycle then decay, LRRangeTest = growing LR; auto (no "
             "scheduler given) = zinf's recipe: WarmupCosineLR with an auto warmup, down to 10% of the peak",
             true),
      number("scheduler.params.warmup_min_lr", 0.0, 0, 1e300, "LR at step 0 of the warmup", true),
      number("scheduler.params.warmup_max_lr", "auto", 0, 1e300, "LR at the end of warmup", true),
      integer("scheduler.params.warmup_num_steps", "auto", 0, kBig,
              "warmup length in optimizer steps; auto = 0 under a scheduler you name, and under zinf's recipe "
              "min(steps - 1, max(ceil(2% of steps), min(5, steps / 10)))",
              true),
      integer("scheduler.params.total_num_steps", "auto", 1, kBig, "steps over which the LR decays", true),
      choice("scheduler.params.warmup_type", "linear", {"linear", "log"}, "warmup curve"),
      number("scheduler.params.warmup_min_ratio", 0.0, 0, 1, "WarmupCosineLR: start LR / peak LR"),
      number("scheduler.params.cos_min_ratio", "auto", 0, 1,
             "WarmupCosineLR: final LR / peak LR; auto = 0.1 under zinf's recipe, DeepSpeed's 0.0001 when "
             "WarmupCosineLR is named",
             true),
      // OneCycle and LRRangeTest: absent unless given; their defaults (DeepSpeed's)
      // are filled in when scheduler.type names them.
      number("scheduler.params.cycle_min_lr", nullptr, 0, 1e300, "OneCycle: LR at the start and end of the cycle"),
      number("scheduler.params.cycle_max_lr", nullptr, 0, 1e300, "OneCycle: LR at the cycle's peak"),
      number("scheduler.params.decay_lr_rate", nullptr, 0, 1e300,
             "OneCycle: after the cycle, lr = cycle_min_lr / (1 + rate x steps / decay_step_size)"),
      integer("scheduler.params.cycle_first_step_size", nullptr, 1, kBig, "OneCycle: steps of the rising half"),
      integer("scheduler.params.cycle_second_step_size", nullptr, 0, kBig,
              "OneCycle: steps of the falling half (default: cycle_first_step_size)"),
      integer("scheduler.params.cycle_first_stair_count", nullptr, 0, kBig,
              "OneCycle: stairs in the rising half; 0 = smooth"),
      integer("scheduler.params.cycle_second_stair_count", nullptr, 0, kBig,
              "OneCycle: stairs in the falling half (default: cycle_first_stair_count)"),
      integer("scheduler.params.decay_step_size", nullptr, 0, kBig,
              "OneCycle: decay interval in steps after the cycle; 0 = no decay"),
      inert(boolean("scheduler.params.cycle_momentum", nullptr, "OneCycle: cycle beta1 inversely to the LR"),
            "zinf's Adam takes beta1 once, when it is built, and keeps it for the run", {false}),
      number("scheduler.params.cycle_min_mom", nullptr, 0, 1, "OneCycle: lowest beta1 of the cycle"),
      number("scheduler.params.cycle_max_mom", nullptr, 0, 1, "OneCycle: highest beta1 of the cycle"),
      number("scheduler.params.decay_mom_rate", nullptr, 0, 1e300, "OneCycle: beta1 decay rate after the cycle"),
      number("scheduler.params.lr_range_test_min_lr", nullptr, 0, 1e300, "LRRangeTest: LR at step 0"),
      integer("scheduler.params.lr_range_test_step_size", nullptr, 1, kBig,
              "LRRangeTest: steps per LR increase"),
      number("scheduler.params.lr_range_test_step_rate", nullptr, 0, 1e300,
             "LRRangeTest: lr = min_lr x (1 + rate x steps / step_size)"),
      boolean("scheduler.params.lr_range_test_staircase", nullptr, "LRRangeTest: grow in stairs, not smoothly"),
      inert(integer("scheduler.params.last_batch_iteration", nullptr, -1, kBig,
                    "every scheduler: the step it resumes after; -1 = start"),
            "zinf's schedule position is the step of the checkpoint it resumes from (--resume)", {-1}),
      // ------------------------------------------------------------ precision
      boolean("fp16.enabled", "auto", "fp16 weights and activations, fp32 master weights, dynamic loss scaling", true),
      number("fp16.loss_scale", 0, 0, 1e300, "0 = dynamic loss scaling, else a fixed scale"),
      integer("fp16.initial_scale_power", 16, 0, 64, "dynamic loss scale starts at 2^N"),
      integer("fp16.loss_scale_window", 1000, 1, kBig, "steps without overflow before the scale doubles"),
      integer("fp16.hysteresis", 2, 1, kBig, "overflows tolerated before the scale halves"),
      boolean("fp16.consecutive_hysteresis", false, "reset hysteresis after a good step"),
      number("fp16.min_loss_scale", 1, 0, 1e300, "lower bound of the dynamic loss scale"),
      inert(boolean("fp16.auto_cast", false, "DeepSpeed switch: cast the model's inputs to fp16"),
            "zinf's model makes its own inputs in the training precision"),
      inert(boolean("fp16.fp16_master_weights_and_grads", false, "DeepSpeed: fp16 master weights and gradients"),
            kFp32Master),
      boolean("bf16.enabled", "auto", "bf16 weights and activations with fp32 master weights", true),
      inert(boolean("bf16.immediate_grad_update", nullptr, "DeepSpeed: apply each gradient as it is reduced"),
            "zinf accumulates gradients per block in fp32 and reduces them per block", {false, true}),
      inert(boolean("bf16.check_grad_overflow", nullptr, "DeepSpeed: look for inf/nan gradients under bf16"),
            "zinf does not skip bf16 steps; fp16's loss scaler checks for overflow", {false}),
      inert(boolean("bf16.bf16_master_weights_and_grads", false, "DeepSpeed: bf16 master weights and gradients"),
            kFp32Master),
      inert(boolean("bf16.bf16_optimizer_states", false, "DeepSpeed: bf16 optimizer states"), kFp32Master),
      feature("amp", "zinf's precision is bf16 or fp16 (bf16/fp16 sections); NVIDIA Apex AMP is not used"),
      feature("torch_autocast", "zinf's precision is bf16 or fp16 (bf16/fp16 sections); torch.autocast is not used"),
      inert(choice("communication_data_type", nullptr, {"fp32", "fp16", "bf16"},
                   "DeepSpeed: dtype of gradient reductions"),
            "zinf reduces gradients in the dtype of its gradient buffers (fp32 sums)", {"fp32"}),
      inert(choice("data_types.grad_accum_dtype", nullptr, {"fp32", "fp16", "bf16"},
                   "DeepSpeed: dtype gradients are accumulated in"),
            "zinf accumulates gradients in fp32", {"fp32"}),
      // -------------------------------------------------------------- ZeRO
      integer("zero_optimization.stage", 0, 0, 3,
              "0 = none, 1 = partition optimizer states, 2 = also gradients, 3 = also parameters"),
      inert(boolean("zero_optimization.allgather_partitions", true, "all-gather updated partitions after the step"),
            "zinf all-gathers the updated partitions after every step"),
      inert(integer("zero_optimization.allgather_bucket_size", 500000000, 0, kMaxElements,
                    "elements per all-gather bucket", true),
            "zinf all-gathers one block's flat buffer at a time"),
      inert(boolean("zero_optimization.overlap_comm", true, "overlap reduction with backward"),
            "zinf always overlaps communication with compute on its own communication worker"),
      inert(boolean("zero_optimization.reduce_scatter", true, "reduce-scatter gradients instead of all-reduce"),
            "zinf always reduce-scatters gradients"),
      integer("zero_optimization.reduce_bucket_size", "auto", 0, kMaxElements,
              "elements per gradient reduction bucket (0, which DeepSpeed allows, is read as auto)", true),
      inert(boolean("zero_optimization.use_multi_rank_bucket_allreduce", true, "DeepSpeed: all-reduce buckets by rank"),
            "zinf reduce-scatters each bucket", {false}),
      inert(boolean("zero_optimization.contiguous_gradients", true, "copy gradients into one contiguous buffer"),
            "zinf's gradients always live in flat contiguous buffers"),
      integer("zero_optimization.sub_group_size", "auto", 1, kMaxElements,
              "elements per optimizer sub-group (NVMe optimizer states are swapped per sub-group)", true),
      inert(integer("zero_optimization.stage3_prefetch_bucket_size", "auto", 0, kMaxElements,
                    "elements of parameters prefetched ahead of use", true),
            "zinf prefetches exactly the next block's parameters"),
      inert(integer("zero_optimization.stage3_param_persistence_threshold", "auto", 0, kMaxElements,
                    "parameters smaller than this stay gathered", true),
            "zinf partitions every parameter, small ones too: they travel with their block"),
      inert(integer("zero_optimization.stage3_model_persistence_threshold", nullptr, 0, kBig,
                    "DeepSpeed: cap on the elements kept gathered"),
            "zinf partitions every parameter, small ones too: they travel with their block"),
      inert(integer("zero_optimization.stage3_max_live_parameters", 1000000000, 0, kMaxElements,
                    "max gathered parameters at once", true),
            kBlockGather),
      inert(integer("zero_optimization.stage3_max_reuse_distance", 1000000000, 0, kMaxElements,
                    "keep a gathered parameter if reused within this many elements", true),
            kBlockGather),
      inert(integer("zero_optimization.stage3_module_granularity_threshold", 0, 0, kBig,
                    "DeepSpeed: fetch small modules as one leaf"),
            kBlockGather),
      inert(boolean("zero_optimization.stage3_use_all_reduce_for_fetch_params", false,
                    "DeepSpeed: gather parameters with all-reduce"),
            "zinf gathers parameters with all-gather"),
      inert(boolean("zero_optimization.stage3_allgather_sequential", false, "DeepSpeed: one all-gather at a time"),
            "zinf gathers one block's flat buffer with one all-gather"),
      inert(boolean("zero_optimization.stage3_gather_16bit_weights_on_model_save", false,
                    "gather full 16-bit weights when saving", true),
            "zinf writes the whole model (OUTPUT_DIR/model/, an HF model directory) at the end of every run", {true}),
      inert(boolean("zero_optimization.stage3_gather_fp16_weights_on_model_save", false, "old name of the key above"),
            "zinf writes the whole model (OUTPUT_DIR/model/, an HF model directory) at the end of every run", {true}),
      inert(boolean("zero_optimization.round_robin_gradients", false, "stage 1/2 gradient partition order"),
            "zinf partitions gradients in one fixed order", {true}),
      inert(boolean("zero_optimization.elastic_checkpoint", false, "DeepSpeed elastic checkpoints"),
            "zinf's checkpoints resume on any world size anyway", {true}),
      inert(boolean("zero_optimization.legacy_stage1", false, "DeepSpeed's old stage-1 code"),
            "zinf has one stage-1 implementation"),
      inert(boolean("zero_optimization.ignore_unused_parameters", true, "tolerate parameters without gradients"),
            "every parameter of zinf's models gets a gradient", {false}),
      inert(boolean("zero_optimization.load_from_fp32_weights", true, "resume from fp32 master weights"),
            "zinf's checkpoints hold the fp32 master weights and resume from them"),
      inert(boolean("zero_optimization.memory_efficient_linear", true, "DeepSpeed: its own linear for ZeRO-3"),
            "zinf's blocks run inside one autograd function each, which saves only the block's input", {false}),
      boolean("zero_optimization.cpu_offload", false, "deprecated DeepSpeed switch; use offload_optimizer"),
      boolean("zero_optimization.cpu_offload_param", false,
              "deprecated DeepSpeed switch; use offload_param (read as offload_param.device cpu)"),
      inert(boolean("zero_optimization.cpu_offload_use_pin_memory", false, "deprecated DeepSpeed switch"),
            "use offload_param.pin_memory and offload_optimizer.pin_memory", {true}),
      inert(boolean("zero_optimization.pipeline_loading_checkpoint", false,
                    "DeepSpeed: load checkpoints into pipeline stages"),
            "zinf streams checkpoints by owned range"),
      inert(boolean("zero_optimization.override_module_apply", true, "DeepSpeed: wrap nn.Module.apply under ZeRO-3"),
            "zinf's model has no Python modules to wrap", {false}),
      inert(boolean("zero_optimization.log_trace_cache_warnings", false, "DeepSpeed: log its trace cache warnings"),
            "zinf has no parameter trace cache", {true}),
      inert(boolean("zero_optimization.enable_sanity_checks", false, "DeepSpeed: extra ZeRO-3 checks"),
            "zinf has no such checks to switch on"),
      inert(boolean("zero_optimization.save_muon_momentum_buffer_in_memory", false,
                    "DeepSpeed: Muon optimizer momentum in memory"),
            "zinf has no Muon optimizer", {true}),
      feature("zero_optimization.leaf_module", "zinf's gather unit is the transformer block"),
      feature("zero_optimization.zenflow", "ZenFlow is not supported"),
      feature("zero_optimization.zeropp_loco_param", "ZeRO++ is not supported"),
      inert(boolean("zero_optimization.zero_quantized_nontrainable_weights", false,
                    "ZeRO++ quantized frozen weights"),
            "every zinf parameter is trained"),
      integer("zero_optimization.zero_hpz_partition_size", 1, 1, kBig, "ZeRO++ hierarchical partition; only 1"),
      boolean("zero_optimization.zero_quantized_weights", false, "ZeRO++ quantized weights; not supported"),
      boolean("zero_optimization.zero_quantized_gradients", false, "ZeRO++ quantized gradients; not supported"),
      inert(integer("zero_optimization.mics_shard_size", -1, -1, kBig, "MiCS; not supported, -1 = off"),
            "MiCS is not supported"),
      inert(boolean("zero_optimization.mics_hierarchical_params_gather", false, "MiCS hierarchical gather"),
            "MiCS is not supported"),
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
      inert(boolean("zero_optimization.offload_optimizer.fast_init", false, "DeepSpeed: faster NVMe optimizer init"),
            "zinf writes its NVMe optimizer states once, at the start", {true}),
      inert(boolean("zero_optimization.offload_optimizer.pipeline_read", false,
                    "DeepSpeed: read the next optimizer sub-group while one is updated"),
            "zinf always overlaps the NVMe reads and writes of optimizer sub-groups with the update", {true}),
      inert(boolean("zero_optimization.offload_optimizer.pipeline_write", false,
                    "DeepSpeed: write a sub-group back while the next is updated"),
            "zinf always overlaps the NVMe reads and writes of optimizer sub-groups with the update", {true}),
      number("zero_optimization.offload_optimizer.ratio", 1.0, 0, 1, "fraction of optimizer work on CPU; only 1"),
      inert(boolean("zero_optimization.offload_optimizer.super_offload", false, "DeepSpeed SuperOffload"),
            "SuperOffload is not supported"),
      inert(number("zero_optimization.offload_optimizer.cpuadam_cores_perc", 0.8, 0, 1,
                   "DeepSpeed: share of cores for the CPU Adam"),
            "zinf's CPU Adam uses the threads it is given (OMP_NUM_THREADS)"),
      // --------------------------------------------------------------- aio
      integer("aio.block_size", 1048576, 1, kBig, "bytes per NVMe request; a multiple of 4096"),
      integer("aio.queue_depth", 8, 1, 1024, "NVMe requests in flight"),
      integer("aio.thread_count", 1, 1, 256, "threads submitting I/O"),
      integer("aio.intra_op_parallelism", 1, 1, 256, "DeepSpeed's newer name for thread_count"),
      boolean("aio.single_submit", false, "submit requests one at a time"),
      inert(boolean("aio.overlap_events", true, "submit new requests while others complete"),
            "zinf's io_uring engine always submits new requests while others complete"),
      inert(boolean("aio.use_gds", false, "GPUDirect Storage (cuFile)"),
            "zinf moves NVMe data through pinned host buffers with io_uring; GPUDirect Storage is not used"),
      // ------------------------------------------------- activation checkpointing
      inert(boolean("activation_checkpointing.partition_activations", false, "DeepSpeed: partition checkpoints"),
            kActivationApi),
      inert(boolean("activation_checkpointing.cpu_checkpointing", false, "keep checkpointed activations on CPU"),
            kActivationApi),
      inert(boolean("activation_checkpointing.contiguous_memory_optimization", false,
                    "DeepSpeed: checkpoints in one buffer"),
            kActivationApi),
      inert(integer("activation_checkpointing.number_checkpoints", nullptr, 0, kBig, "DeepSpeed: checkpoints"),
            kActivationApi),
      inert(boolean("activation_checkpointing.synchronize_checkpoint_boundary", false,
                    "DeepSpeed: synchronize at checkpoints"),
            kActivationApi),
      inert(boolean("activation_checkpointing.profile", false, "DeepSpeed: time the checkpointed forward"),
            kActivationApi),
      // -------------------------------------------------------------- monitors
      boolean("tensorboard.enabled", false,
              "DeepSpeed: write TensorBoard events under output_path/job_name (zinf writes them natively)"),
      string("tensorboard.output_path", "",
             "TensorBoard base directory; \"\" = <output_dir>/tensorboard (DeepSpeed: ~/tensorboard)", true),
      string("tensorboard.job_name", "DeepSpeedJobName", "TensorBoard subdirectory of output_path"),
      boolean("csv_monitor.enabled", false, "DeepSpeed: write one CSV file per metric under output_path/job_name"),
      string("csv_monitor.output_path", "",
             "CSV base directory; \"\" = <output_dir>/csv_monitor (DeepSpeed: ~/csv_monitor)", true),
      string("csv_monitor.job_name", "DeepSpeedJobName", "CSV subdirectory of output_path"),
      string("zinf.train.tensorboard_dir", "",
             "write TensorBoard events straight into this directory (set by --tensorboard-dir; overrides the "
             "tensorboard section)"),
      inert(boolean("wandb.enabled", nullptr, "DeepSpeed: report to Weights & Biases"),
            "zinf does not report to Weights & Biases; metrics.jsonl has these values", {false}),
      opaque("wandb.group"), opaque("wandb.team"), opaque("wandb.project"),
      inert(boolean("comet.enabled", nullptr, "DeepSpeed: report to Comet"),
            "zinf does not report to Comet; metrics.jsonl has these values", {false}),
      opaque("comet.samples_log_interval"), opaque("comet.project"), opaque("comet.workspace"),
      opaque("comet.api_key"), opaque("comet.experiment_name"), opaque("comet.experiment_key"),
      opaque("comet.online"), opaque("comet.mode"),
      feature("monitor_config", "zinf reads the top-level tensorboard and csv_monitor sections, not monitor_config"),
      // ---------------------------------------- DeepSpeed sections zinf does not implement
      // Warned about when set (a section when it says "enabled": true).
      feature("flops_profiler", "zinf has no FLOPs profiler; summary.json has tokens per second"),
      feature("comms_logger", "zinf does not log its collectives"),
      feature("autotuning", kNoFeature), feature("elasticity", kNoFeature), feature("checkpoint", "zinf writes its own checkpoints (checkpoint.json and safetensors per rank)"),
      feature("compression_training", kNoFeature), feature("data_efficiency", kNoFeature),
      feature("curriculum_learning", kNoFeature), feature("pipeline", "zinf has no pipeline parallelism"),
      feature("sparse_attention", kNoFeature), feature("dump_state", kNoFeature),
      feature("memory_breakdown", "zinf estimate prints the memory breakdown"),
      feature("dataloader_drop_last", "zinf's sampler draws whole micro batches"),
      feature("sparse_gradients", kNoFeature), feature("disable_allgather", kNoFeature),
      feature("fp32_reduce_scatter", kNoFeature), feature("seq_parallel_communication_data_type", kNoFeature),
      feature("timers", kNoFeature), feature("nebula", kNoFeature), feature("weight_quantization", kNoFeature),
      feature("hybrid_engine", kNoFeature), feature("compile", kNoFeature),
      feature("use_data_before_expert_parallelism", kNoFeature),
      feature("managed_gradient_accumulation", kNoFeature), feature("graph_harvesting", kNoFeature),
      feature("log_level", "zinf's log level is --log-level"), feature("eigenvalue", kNoFeature),
      feature("progressive_layer_drop", kNoFeature), feature("quantize_training", kNoFeature),
      feature("tensor_parallel", "zinf has no tensor parallelism"),
      // -------------------------------------------------------------- zinf
      choice("zinf.model.name", "tiny", model_name_list(), "named model size; the dimensions below override it"),
      integer("zinf.model.vocab_size", "auto", 2, double(kMaxVocabSize), "vocabulary size", true),
      integer("zinf.model.seq_len", "auto", 1, double(kMaxSeqLen), "tokens per sample", true),
      integer("zinf.model.hidden_size", "auto", 1, double(kMaxHiddenSize), "model width", true),
      integer("zinf.model.layers", "auto", 1, double(kMaxLayers), "transformer blocks", true),
      integer("zinf.model.heads", "auto", 1, double(kMaxHeads), "attention heads", true),
      choice("zinf.model.model_type", "auto", {"gpt2", "llama", "mistral", "qwen2"},
             "architecture (HF config.json's model_type); auto = the named model's", true),
      integer("zinf.model.kv_heads", "auto", 1, double(kMaxHeads),
              "key/value heads (grouped-query attention, Llama family); auto = the named model's, else heads", true),
      integer("zinf.model.intermediate_size", "auto", 1, double(kMaxHiddenSize) * 8,
              "MLP width; auto = the named model's, else 4 x hidden_size", true),
      integer("zinf.model.head_dim", "auto", 1, double(kMaxHiddenSize),
              "size of one attention head; auto = hidden_size / heads", true),
      integer("zinf.model.max_positions", "auto", 1, double(kMaxSeqLen),
              "positions the model has (GPT-2's position table, HF max_position_embeddings); auto = the named "
              "model's, else seq_len",
              true),
      number("zinf.model.norm_eps", "auto", 0, 1, "LayerNorm / RMSNorm epsilon; auto = the named model's", true),
      number("zinf.model.rope_theta", "auto", 0, 1e12, "rotary embedding base (Llama family); auto = the named model's",
             true),
      key("zinf.model.rope_scaling", Kind::kOpaque, nullptr,
          "HF rope_scaling: null, or {\"rope_type\": \"linear\", \"factor\": F} or {\"rope_type\": \"llama3\", "
          "\"factor\", \"low_freq_factor\", \"high_freq_factor\", \"original_max_position_embeddings\"}",
          false),
      boolean("zinf.model.tied_embeddings", "auto",
              "the LM head shares the token embedding (GPT-2 always); auto = the named model's", true),
      boolean("zinf.model.attention_bias", "auto", "q/k/v projections have biases (Qwen2); auto = the named model's, or true when model_type "
              "qwen2 overrides a named model of another type",
              true),
      integer("zinf.model.bos_token_id", -1, -1, double(kMaxVocabSize), "beginning-of-sequence token; -1 = none"),
      integer("zinf.model.eos_token_id", -1, -1, double(kMaxVocabSize), "end-of-sequence token; -1 = none"),
      integer("zinf.model.sliding_window", "auto", 0, double(kMaxSeqLen),
              "Mistral's attention window (0 = none); zinf attends fully, so seq_len may not exceed it; auto = the "
              "model's",
              true),
      string("zinf.model.from_pretrained", "",
             "Hugging Face model directory (config.json + safetensors) the run starts from; its config.json "
             "sets the model keys"),
      boolean("zinf.model.activation_checkpointing", false, "recompute each block in backward"),
      string("zinf.data.dataset_file", "auto",
             "text file (byte tokens), llm.c .bin token file (uint16 or uint32), or a comma-separated list, "
             "directory or glob of them; auto = bundled corpus",
             false, true),
      string("zinf.data.tokenizer", "",
             "tokenizer (a directory with tokenizer.json, or that file) that encodes text datasets at start-up "
             "(EOS after each file / JSONL line); empty = text is read as bytes, or the --from-pretrained "
             "directory's own tokenizer when it has one"),
      choice("zinf.data.format", "detect", {"detect", "bytes", "llmc", "nanogpt"},
             "how dataset files are read: detect = .bin by its llm.c header, others as bytes; nanogpt = "
             "header-less uint16 (nanoGPT's train.bin)"),
      choice("zinf.data.windows", "detect", {"detect", "stream", "documents", "packed"},
             "how training windows are cut: stream = back to back across documents (pre-training); documents = "
             "each window within one document, padded, a fine-tuning example truncated to one window (TRL "
             "without packing); packed = documents' windows packed several to a window (best-fit decreasing), "
             "positions restarting and attention kept within each document (TRL packing with position ids); "
             "detect = documents when the data holds prompt/completion examples, else stream"),
      number("zinf.data.val_fraction", 0.1, 0, 0.5,
             "share of the data held out for validation (when no val_dataset_file is given)"),
      string("zinf.data.val_dataset_file", "",
             "validation data in files of their own (same forms as dataset_file); empty = hold out val_fraction"),
      integer("zinf.data.eval_every", 0, 0, kBig, "validation loss every N steps; 0 = only at the end"),
      integer("zinf.data.eval_batches", 4, 1, kBig, "micro batches per validation"),
      integer("zinf.train.steps", 100, 1, kBig, "optimizer steps to run"),
      integer("zinf.train.seed", 1234, 0, kBig, "seed for initialisation and data order"),
      choice("zinf.train.device", "auto", {"auto", "cpu", "cuda"}, "auto = cuda when a GPU is present"),
      string("zinf.train.output_dir", "zinf-out", "where ds_config.json, metrics, checkpoints go"),
      integer("zinf.train.save_every", 0, 0, kBig, "checkpoint every N steps; 0 = only at the end"),
      integer("zinf.train.keep_checkpoints", 2, 1, kBig, "checkpoints kept"),
      boolean("zinf.train.save", true, "write checkpoints and the final model (model/) (off: benchmarks, disks too small)"),
      boolean("zinf.train.resume", false, "continue from the latest checkpoint in output_dir"),
      integer("zinf.train.log_every", 1, 1, kBig, "log a line every N steps"),
      string("zinf.train.gpus", "auto", "GPUs: auto, a count, or ids like 0,1", false, true),
      integer("zinf.train.comm_timeout", 600, 1, 86400,
              "seconds a rank waits for the other ranks (rendezvous, each collective) before it fails"),
      boolean("zinf.optimize", false, "pick stage and offload from the estimate"),
      choice("zinf.optimizer.weight_decay_on", "matrices", {"matrices", "all"},
             "which parameters weight decay shrinks: matrices = the 2-D weights of the transformer blocks and an "
             "untied lm_head (not norms, biases or embeddings: the usual LLM recipe); all = every parameter "
             "(DeepSpeed's and torch.optim's behaviour)"),
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
          "the estimate with the sums fits the GPU with the planner's safety margin; ds_config.json records the choice)",
          true)),
  };
  return s;
}

}  // namespace

const std::vector<std::string>& scheduler_types() {
  static const std::vector<std::string> types = {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle",
                                                 "LRRangeTest"};
  return types;
}

// The parameters of each of DeepSpeed's schedulers (lr_schedules.py's constructors).
std::vector<std::string> scheduler_types_of(const std::string& param) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> owners = {
      {"warmup_min_lr", {"WarmupLR", "WarmupDecayLR"}},
      {"warmup_max_lr", {"WarmupLR", "WarmupDecayLR"}},
      {"warmup_num_steps", {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR"}},
      {"warmup_type", {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR"}},
      {"total_num_steps", {"WarmupDecayLR", "WarmupCosineLR"}},
      {"warmup_min_ratio", {"WarmupCosineLR"}},
      {"cos_min_ratio", {"WarmupCosineLR"}},
      {"lr_range_test_min_lr", {"LRRangeTest"}},
      {"lr_range_test_step_size", {"LRRangeTest"}},
      {"lr_range_test_step_rate", {"LRRangeTest"}},
      {"lr_range_test_staircase", {"LRRangeTest"}},
      {"last_batch_iteration", scheduler_types()},
  };
  for (const auto& [name, types] : owners)
    if (name == param) return types;
  return {"OneCycle"};  // every other scheduler.params key of the schema is OneCycle's
}

std::string inert_reason(const std::string& path) {
  for (std::string p = path;;) {
    if (const KeySpec* k = find_key(p)) return k->inert;
    const auto dot = p.rfind('.');
    if (dot == std::string::npos) return "";
    p = p.substr(0, dot);
  }
}

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
