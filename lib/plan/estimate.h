// zinf::plan — what zinf's engine allocates, per tier, for each ZeRO option.
// Implements: Inputs (model, batch, precision, ranks, engine buffer sizes),
// the standard options in speed order (none ... infinity on NVMe), and
// estimate(): bytes per GPU (rank), CPU memory per node and NVMe space per
// node, each the peak of what the code holds at once: resident state plus
// the largest of its phases (initialisation, forward/backward, optimizer
// step, checkpoint), every item named. Two paths, as lib/train runs them:
// stages 0-2 without offload (train/data_parallel.h: flat model buffers,
// AdamW over a flat fp32 master) and the ZeRO engine (zero/offload_engine.h:
// per-block homes, fetch pool, sub-groups, gradient stores), whose block
// list, shards, sub-groups and pools are sized here with the engine's own
// rules. The model-state floor (model_state_*) follows DeepSpeed's formulas
// (plan/deepspeed_reference.h); docs/estimates.md says where and why zinf
// differs. Never touches Torch or the machine: hardware limits and the
// choice live in plan/recommend.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/settings.h"
#include "core/model_spec.h"
#include "plan/activations.h"

namespace zinf::plan {

// ------------------------------------------------------------ fixed overheads

// GPU memory a CUDA process holds before its first tensor: the CUDA context
// and LibTorch's CUDA kernel images, loaded lazily. nvidia-smi shows 500-700
// MiB on H100 with CUDA 12; LibTorch's allocator statistics do not include
// it, so calibration against torch's peak allocated subtracts this item.
constexpr std::int64_t kCudaContextBytes = 600LL << 20;

// Host memory of one zinf process with LibTorch's CPU runtime loaded and a
// training step run, before any model state: code pages, the intra-op and
// autograd threads, allocator metadata. Measured on CI (LibTorch 1.13 CPU,
// Debian 12, 2 cores): tiny-model runs (`tools/bench_planner.sh` with
// DEVICE=cpu and the tiny model) peak at 189-211 MiB RSS, of which the
// planner's own items for that model are 19-31 MiB (docs/estimates.md,
// "Calibration").
constexpr std::int64_t kHostRuntimeBytesCpu = 180LL << 20;

// The same for a CUDA build: libtorch_cuda, cuBLAS and cuDNN pages touched at
// initialisation add to the CPU figure. Refitted on the H200 host
// (2026-12-04, tools/bench_planner.sh): in-GPU runs, whose host memory is
// little more than the runtime, peaked at 1.04 GiB RSS (1.31B GPT, 0.39 GiB
// of it the planner's other items) and 0.99-1.03 GiB (1.36B Llama from a
// HF directory, 0.25 GiB); 736 MiB puts both within 6% and moves the
// offload runs' 21 GiB estimates by 1%.
constexpr std::int64_t kHostRuntimeBytesCuda = 736LL << 20;

// Copies of a block's flat gradient autograd holds at once while it builds
// it: the parameter-shaped gradient of a view, the zero-filled flat tensor
// its slice backward makes, and the out-of-place sum with the other views'
// slices. Measured with heaptrack on the CPU engine (gpt2-small, embedding
// backward: slice_backward zeros peak at 3 x the embedding block).
constexpr std::int64_t kBlockGradCopies = 3;

// Elements per stage 0-2 checkpoint piece (DataParallel::save_state's chunk)
// and per final-model export piece (train::write_hf_model).
constexpr std::int64_t kCheckpointChunkElements = std::int64_t(1) << 22;

// ------------------------------------------------------------------- inputs

enum class Target { kCpu, kCuda };  // what plays the accelerator's part

struct Inputs {
  std::int64_t params = 0;              // parameters trained (the model's count, or --params)
  ModelSpec model;                      // shape: activations, blocks and the largest gathered block
  std::int64_t micro_batch = 1;         // samples per rank per forward
  std::int64_t seq_len = 1;             // tokens per sample
  std::int64_t grad_accum = 1;          // micro-batches per step (1: host gradients in the compute dtype)
  bool activation_checkpointing = false;
  bool packed = false;                  // zinf.data.windows = packed: one [B, 1, T, T] attention mask per forward
  config::Precision precision = config::Precision::kBf16;
  Target target = Target::kCuda;
  Attention attention = Attention::kFlash;
  int gpus_per_node = 1;                // ranks per node
  int nodes = 1;
  // engine buffers; 0 means what `zinf config` resolves "auto" to
  std::int64_t reduce_bucket_size = 0;              // elements per stage-2 reduce bucket (auto: hidden^2)
  std::int64_t param_buffer_count = 5;              // offload_param.buffer_count
  std::int64_t param_buffer_size = 0;               // elements per fetch buffer (auto: min(largest block, 8M))
  std::int64_t param_max_in_cpu = 0;                // NVMe parameters: elements kept in CPU memory
  std::int64_t sub_group_size = 0;                  // elements per optimizer sub-group (auto: P/64 in [1M, 16M])
  std::int64_t optimizer_max_in_cpu = 0;            // NVMe optimizer: elements of its state kept in CPU memory
  std::int64_t aio_block_size = 1 << 20;            // bytes; NVMe pieces are multiples of it
  std::optional<bool> gradients_nvme;               // gradient accumulators on NVMe; unset: auto (with an
                                                    // NVMe optimizer at stage >= 2, as `zinf config` resolves)
  bool pretrained = false;                          // first weights read from a Hugging Face directory (--from-pretrained)
  bool save = true;                                 // checkpoints and the final model directory are written
  bool checksums = true;                            // swap files keep a CRC32C per page in host memory
  // Micro-batches summed in fp32 on the device (host optimizer, grad_accum > 1);
  // unset: auto, on for CUDA when the option's need with the sums fits
  // gpu_capacity_bytes less kSafetyMargin (recommend.h), off when that is unknown.
  std::optional<bool> device_grad_accumulation;
  std::optional<std::int64_t> gpu_capacity_bytes;   // memory of one GPU, for that choice

  std::int64_t ranks() const { return std::int64_t{gpus_per_node} * nodes; }
};

// Inputs from a resolved configuration, for `gpus_per_node` ranks on `nodes`.
// Attention is flash/SDPA on CUDA, materialised on CPU.
Inputs inputs_from(const config::Settings& s, int gpus_per_node, int nodes, Target target);

// The most data-parallel ranks an estimate is made for.
constexpr std::int64_t kMaxRanks = 1 << 20;

// Throws UsageError naming the value when a count is not positive, a size is
// above its bound (the ranks above kMaxRanks, the parameters above
// kMaxParameters, a dimension above core/model_spec.h's kMax*, more than
// kMaxSubGroups sub-groups) or the shape is inconsistent. With inputs within
// these bounds the estimate's sums are checked and overflow is a UsageError.
void check_inputs(const Inputs& in);

// ------------------------------------------------------------------ options

struct Option {
  std::string name;                                   // "zero3+cpu-optimizer"
  int zero_stage = 0;                                 // 0..3
  Tier offload_param = Tier::kDevice;
  Tier offload_optimizer = Tier::kDevice;
};

// none, zero1, zero2, zero3, zero3+cpu-optimizer, infinity-cpu,
// infinity-nvme-optimizer, infinity-nvme: fastest first.
const std::vector<Option>& standard_options();

// The option a resolved configuration asks for (named like the standard one
// it equals, else "zero2+cpu-optimizer"-style).
Option option_from(const config::Settings& s);

// ---------------------------------------------------------------- estimate

// When an item is held: all the time, or only during one phase of the run.
// A tier's need is the resident items plus the largest phase.
// kBackwardEnd: the moment a micro-batch's backward has made every gradient
// and freed its activations (stage 0-1 16-bit models, whose parameters each
// hold their own gradient until it is moved into the fp32 sum).
enum class Phase { kResident, kInit, kStep, kOptimizer, kSave, kBackwardEnd };
// "resident", "initialisation", "forward/backward", "optimizer step", "checkpoint", "end of backward"
const char* phase_name(Phase p);

struct Item {
  std::string what;        // "fp32 master weights (partition)"
  std::int64_t bytes = 0;  // on this tier, per rank (GPU) or per node (CPU, NVMe)
  Phase phase = Phase::kResident;
};

// Resident items plus the largest phase's items.
std::int64_t peak_bytes(const std::vector<Item>& items);

struct Need {
  std::int64_t gpu_bytes = 0;   // per GPU; 0 when the target is the CPU
  std::int64_t cpu_bytes = 0;   // per node
  std::int64_t nvme_bytes = 0;  // per node
  std::vector<Item> gpu, cpu, nvme;
  ActivationBytes activations;  // per rank
  // The model-state floor with ideal partitions (ceil(P / ranks)): 16-bit
  // parameters and gradients, fp32 master and moments where the option puts
  // them, no buffers and no padding; what DeepSpeed's formulas count.
  std::int64_t model_state_gpu_bytes = 0;  // per GPU
  std::int64_t model_state_cpu_bytes = 0;  // per node
  bool device_sums = false;                // the micro-batches' gradients are summed on the device
};

// One option's need; throws like check_inputs on bad inputs.
Need estimate_option(const Inputs& in, const Option& option);

// zinf.offload.device_grad_accumulation for the configured option of `s`
// on `ranks` ranks of `target` whose GPUs have `gpu_capacity_bytes` each:
// the value asked for, or on "auto" what estimate_option counts. `why` says
// how "auto" was decided where it could matter (CUDA, a host optimizer,
// accumulation); empty otherwise. `train` and `zinf config` both use it.
struct DeviceSumsChoice {
  bool on = false;
  bool automatic = false;  // the setting was "auto"
  std::string why;
};
DeviceSumsChoice choose_device_sums(const config::Settings& s, int ranks, Target target,
                                    std::optional<std::int64_t> gpu_capacity_bytes);

struct Row {
  Option option;
  Need need;
};

struct Estimate {
  Inputs inputs;
  std::int64_t largest_block_params = 0;  // the largest unit gathered at once (a block or the embedding)
  std::vector<Row> rows;                  // standard_options() order
};

Estimate estimate(const Inputs& in);

// Parameters of the largest unit zinf gathers at once: a transformer block,
// the embedding (GPT-2: token + position tables; a tied LM head reuses it) or
// the head (an untied LM head).
std::int64_t largest_block_params(const ModelSpec& m);

// A GPT shape for a bare parameter count (--params): GPT-3's aspect ratio
// hidden = 128 x layers, hidden a multiple of 128, 128-wide heads, with the
// given vocabulary and sequence length.
ModelSpec shape_for_params(std::int64_t params, std::int64_t vocab_size, std::int64_t seq_len);

// "175B", "6.7e9", "124439808" -> count; nullopt when not a positive count.
std::optional<std::int64_t> parse_param_count(const std::string& text);

const char* target_name(Target t);

// The items of `need`, one per line, grouped by tier ("  GPU per rank  12.3 GiB\n    fp32 master ..."),
// each phase's items under the phase's name.
std::string describe_need(const Need& need, Target target);

}  // namespace zinf::plan
