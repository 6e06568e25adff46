// zinf::plan — the per-tier byte model of zinf's engine and trainer (see
// estimate.h and docs/estimates.md for what is counted and why).
#include "plan/estimate.h"

#include <algorithm>
#include <deque>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>

#include "core/checked.h"
#include "core/error.h"
#include "core/pool_shape.h"
#include "core/text.h"
#include "core/units.h"
#include "plan/recommend.h"

namespace zinf::plan {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

constexpr std::int64_t kDirect = 4096;       // io::kDirectAlignment: NVMe segments and host buffers
constexpr std::int64_t kShardAlign = 64;     // elements: the engine's and ShardPlan's shard rounding
constexpr int kPhases = 6;


// Items per rank on each tier, summed into per-node totals at the end.
struct RankItems {
  std::vector<Item> accel, cpu, nvme;
  void add(Tier t, std::string what, std::int64_t bytes, Phase phase = Phase::kResident) {
    if (bytes <= 0) return;
    (t == Tier::kDevice ? accel : t == Tier::kCpu ? cpu : nvme).push_back({std::move(what), bytes, phase});
  }
};

std::int64_t sum(const std::vector<Item>& items) {
  std::int64_t total = 0;
  for (const auto& i : items) total = checked_add(total, i.bytes, "the bytes of a tier");
  return total;
}

// Per-rank items as per-node items: n ranks share a node and run in step.
std::vector<Item> times(std::vector<Item> items, int n) {
  for (auto& i : items) {
    i.bytes = checked_mul(i.bytes, n, "the bytes of " + i.what + " for " + std::to_string(n) + " ranks per node");
    if (n > 1) i.what += ", x " + std::to_string(n) + " ranks";
  }
  return items;
}

std::string count(std::int64_t n) { return format_count(double(n)); }

// A pool as the engine sizes it (core/pool_shape.h), in the bytes its
// 4096-aligned buffers take.
std::int64_t pool_bytes(const PoolShape& p) { return p.count * round_up(p.buffer_bytes, kDirect); }

// The engine's blocks (model/layout.h) for the model's architecture: the
// embedding (GPT-2 token + position tables, Llama token table), the
// transformer blocks, the head (final norm, and an untied LM head). When
// --params gives a count the derived shape does not reach exactly, the last
// transformer block takes the difference, so the blocks add up to the count.
std::vector<std::int64_t> engine_blocks(const Inputs& in) {
  const ModelSpec& m = in.model;
  std::vector<std::int64_t> blocks;
  blocks.push_back(m.embedding_parameter_count());
  for (std::int64_t i = 0; i < m.layers; ++i) blocks.push_back(m.block_parameter_count());
  blocks.push_back(m.head_parameter_count());
  std::int64_t total = 0;
  for (std::int64_t b : blocks) total += b;
  std::int64_t& last = blocks[blocks.size() - 2];
  last = std::max<std::int64_t>(1, last + (in.params - total));
  return blocks;
}

// The model-state floor: parameters, gradients and optimizer states with
// ideal partitions, as DeepSpeed's estimators count them (deepspeed_reference.h).
void model_state_floor(const Inputs& in, const Option& o, bool gradients_nvme, std::int64_t& accel, std::int64_t& cpu) {
  const bool mixed = in.precision != config::Precision::kFp32;
  const std::int64_t bw = mixed ? 2 : 4;
  const std::int64_t P = in.params, Pn = ceil_div(P, in.ranks());
  const int stage = o.zero_stage;
  const Tier param_home = stage == 3 ? o.offload_param : Tier::kDevice;
  const Tier opt_home = o.offload_optimizer;
  auto physical = [&](Tier t) { return in.target == Target::kCpu && t == Tier::kDevice ? Tier::kCpu : t; };
  const std::int64_t opt_numel = stage == 0 ? P : Pn;
  accel = cpu = 0;
  auto add = [&](Tier t, std::int64_t bytes) {
    if (t == Tier::kDevice) accel += bytes;
    else if (t == Tier::kCpu) cpu += bytes;
  };
  add(param_home, (stage < 3 ? P : Pn) * bw);
  if (stage < 2) add(Tier::kDevice, P * bw);
  const bool grad32 = mixed || stage >= 2 || physical(opt_home) != physical(Tier::kDevice);
  if (grad32) add(opt_home == Tier::kNvme && !gradients_nvme ? Tier::kCpu : opt_home, opt_numel * 4);
  if (mixed || physical(param_home) != physical(opt_home)) add(opt_home, opt_numel * 4);
  add(opt_home, opt_numel * 8);
}

// ------------------------------------------------ loading pretrained weights

// hf::PretrainedWeights::read, which fills the block being initialised from
// safetensors files through pread (the page cache is not the process's
// memory): a straight tensor goes through a piece of at most
// kSafetensorsPieceElements as stored, converted into the block's fp32
// buffer (F32 files: read in place, no piece); a GPT-2 Conv1D weight, stored
// [in, out], is read whole as fp32 plus its stored copy and transposed. The
// stored dtype is in the files, which the planner does not read: counted at
// 16 bits, the common save (an F32 Conv1D weight needs no stored copy, so
// this is the most either takes).
constexpr std::int64_t kSafetensorsPieceElements = std::int64_t(1) << 22;

// Elements of the largest single weight: the token table (or an untied LM
// head of its shape), an MLP matrix, or the query / output projection.
std::int64_t largest_weight(const ModelSpec& m) {
  return std::max({m.vocab_size * m.hidden_size, m.ffn_size() * m.hidden_size, m.heads * m.head_size() * m.hidden_size});
}

// The reader's largest moment, named.
Item load_item(const ModelSpec& m) {
  const std::int64_t piece = 2 * std::min(largest_weight(m), kSafetensorsPieceElements);
  const std::int64_t conv1d = 4 * m.hidden_size * m.hidden_size;  // GPT-2 mlp.c_fc / c_proj, [h, 4h]
  if (m.architecture() == Architecture::kGpt2 && (4 + 2) * conv1d > piece)
    return {"pretrained load: a Conv1D weight read whole and transposed (fp32 + 16-bit as stored)", (4 + 2) * conv1d,
            Phase::kInit};
  return {"pretrained load: safetensors read piece (16-bit, up to " + count(kSafetensorsPieceElements) + " elements)",
          piece, Phase::kInit};
}

// What the blocks keep for backward depends on the kernels: a CUDA target is
// planned as LibTorch 2 (flash attention; RMSNorm's x^2 freed), a CPU one as
// LibTorch 1.13, Debian's (materialised scores; mean() keeps x^2).
ActivationInputs activation_inputs(const Inputs& in, std::int64_t dtype_bytes, bool checkpointing) {
  ActivationInputs ai{in.model, in.micro_batch, in.seq_len, dtype_bytes, in.attention, checkpointing};
  ai.mean_keeps_input = in.attention == Attention::kMaterialized;
  return ai;
}

// ------------------------------------------------ stages 0-2 without offload

// train/data_parallel.h: the model's flat parameters and gradients (padded to
// world x shard), the fp32 master, accumulator and AdamW moments of the part
// this rank updates, and the step's temporaries.
void data_parallel_items(const Inputs& in, const Option& o, RankItems& r) {
  const bool mixed = in.precision != config::Precision::kFp32;
  const std::int64_t bw = mixed ? 2 : 4;
  const std::string prec = config::precision_name(in.precision);
  const std::int64_t W = in.ranks(), P = in.params;
  const std::int64_t shard = std::max(kShardAlign, round_up(ceil_div(P, W), kShardAlign));
  const std::int64_t padded = shard * W;
  const int stage = W > 1 ? o.zero_stage : 0;  // one rank: every stage runs as none
  const std::int64_t master = stage == 0 ? P : shard;
  const std::string part = stage == 0 ? "" : " (shard of " + count(shard) + ")";
  const Tier A = Tier::kDevice;

  r.add(A, prec + " parameters (flat model buffer)", padded * bw);
  // DataParallel::wants_flat_grads: a 16-bit model at stage 0-1 has no flat
  // gradient buffer; each parameter's gradient lives from its backward until
  // the micro-batch's gradients are moved into the fp32 sum. They replace
  // the activations as backward frees them: the forward/backward peak is at
  // its start (activations, the head's gradient: the temporaries below),
  // and all gradients are alive together only at its end. (H200, 1.36B
  // Llama: counting both together put the estimate 2.5 GiB high.)
  const bool flat_grads = !mixed || stage == 2;
  if (flat_grads) r.add(A, prec + " gradients (flat model buffer)", padded * bw);
  else r.add(A, prec + " gradients (each parameter's, until moved into the fp32 sum)", P * bw, Phase::kBackwardEnd);
  if (mixed || stage > 0) r.add(A, "fp32 master weights" + part, master * 4);
  if (stage == 0 && mixed) r.add(A, "fp32 gradient accumulator", P * 4);
  if (stage == 1 && mixed) r.add(A, "fp32 gradient accumulator (padded)", padded * 4);
  if (stage > 0) r.add(A, "fp32 gradient shard", shard * 4);
  if (stage == 2) {
    const std::int64_t bucket = in.reduce_bucket_size > 0 ? in.reduce_bucket_size : in.model.hidden_size * in.model.hidden_size;
    const std::int64_t piece = std::clamp<std::int64_t>(bucket / W, 1, shard);
    r.add(A, "reduce-scatter bucket (fp32, in + out)", piece * (W + 1) * 4);
  }
  r.add(A, "AdamW moments m, v (fp32)" + part, master * 8);

  // Forward/backward: activations, and autograd's temporaries for the
  // largest weight. A tied embedding gets its gradient from the LM head and
  // from the lookup, both held before they are added into the flat buffer;
  // an untied weight's one gradient is added into it as it arrives.
  const ModelSpec& m = in.model;
  const std::int64_t wte = m.vocab_size * m.hidden_size;
  if (m.head_is_embedding()) {
    r.add(A, "backward temporaries: 2 x the tied embedding's gradient", 2 * wte * bw, Phase::kStep);
  } else {
    r.add(A, "backward temporaries: the largest weight's gradient", largest_weight(m) * bw, Phase::kStep);
  }

  // Optimizer step: the gradient norm (a norm reduction on CUDA; on CPU
  // squares of at most 2^26 elements at a time, below what AdamW then
  // holds), then AdamW, which on CPU (no fused kernel) holds sqrt(v) and its
  // scaled copy together; CUDA builds (LibTorch 2) run the fused kernel.
  if (in.target == Target::kCpu)
    r.add(A, "AdamW temporaries: sqrt(v) and its scaled copy (fp32, unfused on CPU)", 2 * master * 4,
          Phase::kOptimizer);
  if (stage > 0 && mixed) r.add(A, prec + " copy of the updated shard (all-gather)", shard * bw, Phase::kOptimizer);

  // Initialisation (DataParallel::init through train::for_each_block): one
  // block's fp32 weights at a time in a host buffer, copied into the model.
  const std::vector<std::int64_t> blocks = engine_blocks(in);
  const std::int64_t largest = *std::max_element(blocks.begin(), blocks.end());
  r.add(Tier::kCpu, "initial fp32 weights of the largest block", 4 * largest, Phase::kInit);
  if (in.pretrained) {
    const Item load = load_item(m);
    r.add(Tier::kCpu, load.what, load.bytes, Phase::kInit);
  }
  // Checkpoints stream 4M-element pieces of master, m and v through host memory.
  if (in.save && in.target == Target::kCuda)
    r.add(Tier::kCpu, "checkpoint pieces (master, m, v of 4M elements)", 3 * kCheckpointChunkElements * 4,
          Phase::kSave);
}

// ------------------------------------------------ the ZeRO engine

// zero/offload_engine.cpp build() and its pipeline: the parameters' home,
// the fetch pool, sub-groups and their stores, the gradient homes and
// staging pools, the write pool; then a walk over the run() calls of one
// forward and backward for the largest moment of the blocks being computed.
void engine_items(const Inputs& in, const Option& o, bool gradients_nvme, bool device_sums, RankItems& r) {
  const bool half = in.precision != config::Precision::kFp32;
  const std::int64_t pb = half ? 2 : 4;
  const std::string prec = config::precision_name(in.precision);
  const std::int64_t W = in.ranks();
  const bool cuda = in.target == Target::kCuda;
  const Tier param_home = o.zero_stage >= 3 ? o.offload_param : Tier::kDevice;
  const Tier opt_home = o.offload_optimizer;
  const bool host_opt = opt_home != Tier::kDevice;
  const bool sharded = W > 1 && o.zero_stage >= 3;
  const bool fetch_needed = param_home != Tier::kDevice || sharded;
  const std::int64_t granule = std::max<std::int64_t>(in.aio_block_size, kDirect);
  const Tier A = Tier::kDevice, C = Tier::kCpu, N = Tier::kNvme;

  const std::vector<std::int64_t> numel = engine_blocks(in);
  const std::size_t nb = numel.size();
  std::vector<std::int64_t> shard(nb), own(nb), home(nb);
  std::int64_t owned = 0, largest = 1;
  for (std::size_t b = 0; b < nb; ++b) {
    shard[b] = W == 1 ? numel[b] : round_up(ceil_div(numel[b], W), kShardAlign);
    own[b] = std::min(numel[b], shard[b]);  // rank 0, which owns a full shard of every block
    home[b] = sharded ? shard[b] : numel[b];
    owned += own[b];
    largest = std::max(largest, numel[b]);
  }
  const std::string part = W > 1 ? " (this rank's shards)" : "";

  // ---- parameters' home
  std::vector<std::int64_t> nvme_homes;
  if (param_home == A) {
    std::int64_t n = 0;
    for (std::size_t b = 0; b < nb; ++b) n += W > 1 && !sharded ? W * shard[b] : home[b];
    r.add(A, prec + " parameters" + (sharded ? part : std::string()), n * pb);
  } else {
    std::int64_t cpu_bytes = 0, nvme_bytes = 0, in_cpu = 0;
    for (std::size_t b = 0; b < nb; ++b) {
      if (param_home == C || in_cpu + home[b] <= in.param_max_in_cpu) {
        if (param_home == N) in_cpu += home[b];
        cpu_bytes = round_up(cpu_bytes + home[b] * pb, 64);
      } else {
        nvme_bytes += round_up(home[b] * pb, kDirect);
        nvme_homes.push_back(home[b]);
      }
    }
    r.add(C, prec + " parameters" + part + (param_home == N ? " kept in CPU memory (max_in_cpu)" : "") +
                 (cuda ? ", pinned" : ""), round_up(cpu_bytes, kDirect));
    if (!nvme_homes.empty()) {
      r.add(N, prec + " parameters" + part + " (params.swp)", nvme_bytes);
      // "auto" (config/build.cpp): min(largest block, 8M elements), the
      // largest block counted as max(transformer block, vocab x hidden).
      const std::int64_t buffer_size =
          in.param_buffer_size > 0
              ? in.param_buffer_size
              : std::min<std::int64_t>(std::max(in.model.block_parameter_count(), in.model.vocab_size * in.model.hidden_size),
                                       std::int64_t(8) << 20);
      const PoolShape pool = pool_shape(in.param_buffer_count, buffer_size, pb, nvme_homes, granule);
      r.add(C, "parameter fetch pool (" + std::to_string(pool.count) + " x " + format_bytes(double(pool.buffer_bytes)) +
                   (cuda ? ", pinned)" : ")"), pool_bytes(pool));
    }
  }

  // ---- optimizer sub-groups over the owned elements
  std::int64_t sub_group = in.sub_group_size > 0
                               ? in.sub_group_size
                               : std::clamp<std::int64_t>(in.params / 64, std::int64_t(1) << 20, std::int64_t(16) << 20);
  if (param_home == N) sub_group = round_up(sub_group, granule / pb);
  std::vector<std::int64_t> groups;
  for (std::size_t b = 0; b < nb; ++b)
    for (std::int64_t off = 0; off < own[b]; off += sub_group) groups.push_back(std::min(sub_group, own[b] - off));
  std::int64_t largest_group = 1;
  for (std::int64_t g : groups) largest_group = std::max(largest_group, g);
  const std::string sg = " (" + std::to_string(groups.size()) + " sub-groups of up to " + count(largest_group) + ")";

  if (!host_opt) {
    r.add(A, "fp32 master weights, Adam m, v" + part, 12 * owned);
    r.add(A, "fp32 gradients" + part, 4 * owned);
  } else {
    if (device_sums) r.add(A, "fp32 gradient sums of the micro-batches" + part, 4 * std::max<std::int64_t>(1, owned));
    if (opt_home == C) {
      std::int64_t bytes = 0;
      for (std::int64_t g : groups) bytes = round_up(bytes + 12 * g, 64);
      r.add(C, "fp32 master weights, Adam m, v" + part + sg, round_up(bytes, kDirect));
    } else {
      std::int64_t cpu_bytes = 0, nvme_bytes = 0, in_cpu = 0, ring = 0;
      for (std::int64_t g : groups) {
        if (in_cpu + g <= in.optimizer_max_in_cpu) {
          in_cpu += g;
          cpu_bytes = round_up(cpu_bytes + 12 * g, 64);
        } else {
          nvme_bytes += round_up(12 * g, kDirect);
          ring = std::max(ring, g);
        }
      }
      r.add(C, "fp32 master weights, Adam m, v kept in CPU memory (optimizer_max_in_cpu)", round_up(cpu_bytes, kDirect));
      if (ring > 0) {
        r.add(N, "fp32 master weights, Adam m, v" + part + sg + " (optimizer.swp)", nvme_bytes);
        r.add(C, "optimizer pipeline buffers (3 x " + count(ring) + " x 16 B: state and gradient)",
              3 * round_up(round_up(12 * ring, kDirect) + 4 * ring, kDirect));
        r.add(C, "optimizer sub-group write buffer (12 B x " + count(ring) + ")", round_up(12 * ring, kDirect));
      }
    }
    if (gradients_nvme) {
      std::int64_t bytes = 0;
      for (std::int64_t g : groups) bytes += round_up(4 * g, kDirect);
      r.add(N, "fp32 gradients" + part + ", one segment per sub-group (grads.swp)", bytes);
      r.add(C, "gradient segment staging (2 x " + count(largest_group) + " x 4 B)", 2 * round_up(4 * largest_group, kDirect));
    } else {
      const std::int64_t gb = in.grad_accum > 1 || !half ? 4 : pb;
      r.add(C, std::string(gb == 4 ? "fp32" : prec) + " gradients" + part +
                   (in.grad_accum > 1 ? ", accumulated" : "") + (cuda ? ", pinned" : ""),
            round_up(std::max<std::int64_t>(1, owned) * gb, kDirect));
    }
    if (cuda) {
      const PoolShape pool = pool_shape(3, 0, device_sums ? 4 : pb, own, kDirect);  // device sums cross in fp32
      r.add(C, "gradient copy-down pool (" + std::to_string(pool.count) + " x " + format_bytes(double(pool.buffer_bytes)) +
                   ", pinned)", pool_bytes(pool));
    }
  }
  if (host_opt && (param_home == N || (param_home == A && cuda)))
    r.add(C, "new-weights write pool (3 x " + count(largest_group) + " x " + std::to_string(pb) + " B)",
          3 * round_up(largest_group * pb, kDirect));

  // ---- one forward and backward, call by call (train/zero_gpt.cpp): the
  // embedding, each block, then the head (with the embedding again when tied).
  std::vector<std::vector<std::size_t>> calls{{0}};
  for (std::size_t b = 1; b + 1 < nb; ++b) calls.push_back({b});
  if (in.model.head_is_embedding()) calls.push_back({nb - 1, 0});
  else calls.push_back({nb - 1});
  const ActivationBytes act = activation_bytes(activation_inputs(in, pb, /*checkpointing=*/true));
  auto fetched = [&](std::size_t c) {  // on the device while call c computes
    std::int64_t n = 0;
    if (fetch_needed)
      for (std::size_t b : calls[c]) n += sharded ? W * shard[b] + shard[b] : numel[b];
    return n * pb;
  };
  auto grads = [&](std::size_t c) {  // the call's flat gradients as autograd builds them
    std::int64_t n = 0, top = 0;
    for (std::size_t b : calls[c]) {
      n += numel[b];
      top = std::max(top, numel[b]);
    }
    return (n + (kBlockGradCopies - 1) * top + (W > 1 ? top : 0)) * pb;
  };
  // A gradient handed to a worker (the host optimizer's accumulation, or the
  // reduce-scatter across ranks) lives until its job has run; the compute
  // thread runs at most kGradJobsInFlight such jobs ahead (zero/engine_grads.cpp).
  // Summed on the device on one rank, a job holds a view of the sums, not a
  // gradient of its own.
  auto handed = [&](std::size_t c) {
    std::int64_t n = 0;
    for (std::size_t b : calls[c]) n += numel[b];
    return (host_opt && !(device_sums && W == 1)) || W > 1 ? n * pb : 0;
  };
  struct Moment {
    std::string when;
    std::int64_t params = 0, grads = 0, held = 0, acts = 0;
    std::int64_t total() const { return params + grads + held + acts; }
  };
  Moment peak;
  const std::size_t last = calls.size() - 1;
  auto consider = [&](Moment m) {
    if (m.total() > peak.total()) peak = std::move(m);
  };
  auto call_name = [&](std::size_t c) {
    return c == 0 ? std::string("the embedding") : c == last ? std::string("the head") : "block " + std::to_string(c - 1);
  };
  for (std::size_t c = 0; c < calls.size(); ++c)  // forward: this call and the next one prefetched
    consider({"forward of " + call_name(c), fetched(c) + fetched(c == last ? c : c + 1), 0, 0,
              act.blocks + (c == last ? act.head : 0)});
  constexpr std::size_t kGradJobsInFlight = 4;
  std::deque<std::int64_t> in_flight;  // gradients of the calls handed off most recently
  for (std::size_t c = calls.size(); c-- > 0;) {  // backward: recompute, gradients, the previous call prefetched
    std::int64_t held = 0;
    for (std::int64_t h : in_flight) held += h;
    consider({"backward of " + call_name(c), fetched(c) + (c > 0 ? fetched(c - 1) : 0), grads(c), held,
              act.blocks + (c == last ? act.head : c > 0 ? act.per_block : 0)});
    in_flight.push_back(handed(c));
    if (in_flight.size() > kGradJobsInFlight) in_flight.pop_front();
  }
  r.add(A, "parameters gathered at the peak (" + peak.when + ": current + prefetched)", peak.params, Phase::kStep);
  r.add(A, "block gradients being built (" + std::to_string(kBlockGradCopies) + " copies of the largest)", peak.grads,
        Phase::kStep);
  r.add(A, "gradients of the last blocks, until their offload jobs have run", peak.held, Phase::kStep);
  r.add(A, "activations (block inputs" + std::string(peak.acts > act.blocks ? " + the block being recomputed)" : ")"),
        peak.acts, Phase::kStep);

  // ---- optimizer on the device: its update runs as tensor ops per block
  if (!host_opt) {
    std::int64_t top = 0;
    for (std::int64_t n : own) top = std::max(top, n);
    r.add(A, "device Adam temporaries (3 x the largest block, fp32)", 3 * 4 * top, Phase::kOptimizer);
    r.add(A, "gradient norm piece (fp32 square + fp64 copy of " + count(std::min(kNormPieceElements, owned)) + ")",
          12 * std::min(kNormPieceElements, std::max<std::int64_t>(1, owned)), Phase::kOptimizer);
  }

  // ---- initialisation (OffloadEngine build): one block's fp32 weights at a
  // time, its zero-padded shard, and its home copy in the compute dtype; a
  // seeded rank reading its shard draws the whole block to cut it
  // (train/weight_source.cpp RandomWeights).
  r.add(C, "initial fp32 weights of the largest block", 4 * largest +
               (param_home != A && half ? pb * largest : 0) + (sharded ? 4 * largest / W : 0) +
               (sharded && !in.pretrained ? 4 * largest : 0), Phase::kInit);
  if (in.pretrained) {
    const Item load = load_item(in.model);
    r.add(C, load.what, load.bytes, Phase::kInit);
  }
  // ---- checkpoints: one sub-group read back, and the model export's piece
  if (in.save) {
    const std::int64_t piece = opt_home == N ? 12 * largest_group : 0;
    r.add(C, "checkpoint and export pieces", std::max(piece, 4 * kCheckpointChunkElements), Phase::kSave);
  }
}

}  // namespace

const char* target_name(Target t) { return t == Target::kCuda ? "cuda" : "cpu"; }

std::int64_t largest_block_params(const ModelSpec& m) {
  return std::max({m.block_parameter_count(), m.embedding_parameter_count(), m.head_parameter_count()});
}

ModelSpec shape_for_params(std::int64_t params, std::int64_t vocab_size, std::int64_t seq_len) {
  // 12*h^2 per block dominates: params ~ 12 * layers * h^2 with h = 128 * layers.
  const double h_exact = std::cbrt(static_cast<double>(params) * 128.0 / 12.0);
  const std::int64_t h = std::max<std::int64_t>(128, std::llround(h_exact / 128.0) * 128);
  ModelSpec m{"custom", vocab_size, seq_len, h, 1, h / 128};
  const double rest = static_cast<double>(params - (vocab_size + seq_len) * h);
  m.layers = std::max<std::int64_t>(1, std::llround(rest / static_cast<double>(m.block_parameter_count())));
  return m;
}

std::optional<std::int64_t> parse_param_count(const std::string& raw) {
  std::string t = text::trim(raw);
  if (t.empty()) return std::nullopt;
  double scale = 1;
  switch (std::toupper(static_cast<unsigned char>(t.back()))) {
    case 'K': scale = 1e3; break;
    case 'M': scale = 1e6; break;
    case 'B': scale = 1e9; break;
    case 'T': scale = 1e12; break;
    default: break;
  }
  if (scale != 1) {
    t.pop_back();
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || v * scale > 9e18) return std::nullopt;
    return static_cast<std::int64_t>(std::llround(v * scale));
  }
  const auto n = parse_integer(t);
  if (!n || *n <= 0) return std::nullopt;
  return n;
}


const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kResident: return "resident";
    case Phase::kInit: return "initialisation";
    case Phase::kStep: return "forward/backward";
    case Phase::kOptimizer: return "optimizer step";
    case Phase::kSave: return "checkpoint";
    case Phase::kBackwardEnd: return "end of backward";
  }
  return "?";
}

std::int64_t peak_bytes(const std::vector<Item>& items) {
  std::int64_t phase[kPhases] = {};
  for (const auto& i : items) {
    std::int64_t& p = phase[static_cast<int>(i.phase)];
    p = checked_add(p, i.bytes, std::string("the bytes of the ") + phase_name(i.phase) + " phase");
  }
  return checked_add(phase[0], *std::max_element(phase + 1, phase + kPhases), "the peak bytes of a tier");
}

Inputs inputs_from(const config::Settings& s, int gpus_per_node, int nodes, Target target) {
  Inputs in;
  in.model = s.model;
  in.params = s.model.parameter_count();
  in.micro_batch = s.micro_batch;
  in.seq_len = s.model.seq_len;
  in.packed = s.data_windows == "packed";
  in.grad_accum = s.grad_accum;
  in.activation_checkpointing = s.activation_checkpointing;
  in.precision = s.precision;
  in.target = target;
  in.attention = target == Target::kCuda ? Attention::kFlash : Attention::kMaterialized;
  in.gpus_per_node = gpus_per_node;
  in.nodes = nodes;
  in.reduce_bucket_size = s.reduce_bucket_size;
  in.param_buffer_count = s.offload_param.buffer_count > 0 ? s.offload_param.buffer_count : 5;
  in.param_buffer_size = s.offload_param.buffer_size;
  // What the configuration keeps in CPU memory applies where it puts the
  // parameters on NVMe; the table's other NVMe rows are the infinity recipe (0).
  in.param_max_in_cpu = s.offload_param.device == Tier::kNvme ? s.offload_param.max_in_cpu : 0;
  in.sub_group_size = s.sub_group_size;
  in.optimizer_max_in_cpu = s.optimizer_max_in_cpu;
  in.aio_block_size = s.aio_block_size;
  // "auto" (gradients follow an NVMe optimizer) applies to every row; a
  // value the user chose against it applies to every row that can have it.
  const bool auto_nvme = s.offload_optimizer.device == Tier::kNvme && s.zero_stage >= 2;
  if (s.offload_gradients_nvme != auto_nvme) in.gradients_nvme = s.offload_gradients_nvme;
  in.pretrained = !s.from_pretrained.empty();
  in.save = s.save;
  in.checksums = s.checksums;
  in.device_grad_accumulation = s.device_grad_accumulation;
  return in;
}

void check_inputs(const Inputs& in) {
  auto positive = [](std::int64_t v, const std::string& what, const std::string& allowed) {
    if (v < 1)
      throw UsageError(what + " is " + std::to_string(v) + ": must be at least 1", "allowed: " + allowed);
  };
  positive(in.gpus_per_node, "GPUs per node (--gpus)", "a whole number of GPUs per node, 1 or more");
  positive(in.nodes, "nodes (--nodes)", "a whole number of nodes, 1 or more");
  if (in.ranks() > kMaxRanks)
    throw UsageError(std::to_string(in.gpus_per_node) + " GPUs per node x " + std::to_string(in.nodes) + " nodes = " +
                         std::to_string(in.ranks()) + " ranks: more than " + std::to_string(kMaxRanks),
                     "allowed: at most " + std::to_string(kMaxRanks) + " GPUs in all");
  positive(in.micro_batch, "micro-batch (--batch-size)", "samples per GPU per forward, 1 or more");
  positive(in.seq_len, "sequence length (--seq-len)", "tokens per sample, 1 or more");
  positive(in.params, "parameter count (--params)", "a positive count such as 124439808, 1.3e9 or 175B");
  positive(in.grad_accum, "gradient accumulation steps (--grad-accum)", "1 or more");
  if (in.params > kMaxParameters)
    throw UsageError("parameter count (--params) " + std::to_string(in.params) + " is above the largest supported " +
                         std::to_string(kMaxParameters) + " (2^50)",
                     "allowed: up to 1.1e15 parameters");
  if (in.seq_len > kMaxSeqLen)
    throw UsageError("sequence length (--seq-len) " + std::to_string(in.seq_len) + " is above the largest supported " +
                         std::to_string(kMaxSeqLen),
                     "allowed: 1 to " + std::to_string(kMaxSeqLen));
  const ModelSpec& m = in.model;
  m.check_dimensions();
  if (in.sub_group_size > 0 && in.params / in.sub_group_size > kMaxSubGroups)
    throw UsageError("zero_optimization.sub_group_size " + std::to_string(in.sub_group_size) + " cuts " +
                         std::to_string(in.params) + " parameters into more than " + std::to_string(kMaxSubGroups) +
                         " optimizer sub-groups",
                     "allowed: at least " + std::to_string((in.params + kMaxSubGroups - 1) / kMaxSubGroups) +
                         " for this model, or \"auto\"");
}

const std::vector<Option>& standard_options() {
  static const std::vector<Option> options = {
      {"none", 0, Tier::kDevice, Tier::kDevice},
      {"zero1", 1, Tier::kDevice, Tier::kDevice},
      {"zero2", 2, Tier::kDevice, Tier::kDevice},
      {"zero3", 3, Tier::kDevice, Tier::kDevice},
      {"zero3+cpu-optimizer", 3, Tier::kDevice, Tier::kCpu},
      {"infinity-cpu", 3, Tier::kCpu, Tier::kCpu},
      {"infinity-nvme-optimizer", 3, Tier::kCpu, Tier::kNvme},
      {"infinity-nvme", 3, Tier::kNvme, Tier::kNvme},
  };
  return options;
}

Option option_from(const config::Settings& s) {
  Option o{"", s.zero_stage, s.zero_stage == 3 ? s.offload_param.device : Tier::kDevice,
           s.offload_optimizer.device};
  for (const auto& std_option : standard_options())
    if (std_option.zero_stage == o.zero_stage && std_option.offload_param == o.offload_param &&
        std_option.offload_optimizer == o.offload_optimizer)
      return std_option;
  o.name = o.zero_stage == 0 ? "none" : "zero" + std::to_string(o.zero_stage);
  if (o.offload_param != Tier::kDevice)
    o.name += std::string("+") + tier_name(o.offload_param) + "-params";
  if (o.offload_optimizer != Tier::kDevice)
    o.name += std::string("+") + tier_name(o.offload_optimizer) + "-optimizer";
  return o;
}


namespace {

// One option's need, with the device sums of zinf.offload.device_grad_accumulation
// or without them; device_sums applies only to a host optimizer with accumulation.
Need estimate_with(const Inputs& in, const Option& o, bool device_sums) {
  const Tier opt_home = o.offload_optimizer;
  const bool gradients_nvme =
      opt_home != Tier::kDevice && o.zero_stage >= 2 &&
      in.gradients_nvme.value_or(opt_home == Tier::kNvme);
  device_sums = device_sums && opt_home != Tier::kDevice && in.grad_accum > 1;
  RankItems r;
  const bool zero_engine = runs_on_zero_engine(o.zero_stage, opt_home);
  if (zero_engine) engine_items(in, o, gradients_nvme, device_sums, r);
  else data_parallel_items(in, o, r);

  // Activations of the data-parallel path (the engine counts its own per call).
  const bool mixed = in.precision != config::Precision::kFp32;
  const ActivationInputs ai = activation_inputs(in, mixed ? 2 : 4, in.activation_checkpointing || zero_engine);
  const ActivationBytes act = activation_bytes(ai);
  // Packed rows: the boolean mask and its additive copy in the activation
  // dtype (model::Packing), one per forward, shared by every block.
  if (in.packed)
    r.add(Tier::kDevice, "packed rows: the attention mask, bool and as an additive bias",
          in.micro_batch * in.seq_len * in.seq_len * (1 + (mixed ? 2 : 4)), Phase::kStep);
  if (!zero_engine) {
    r.add(Tier::kDevice, std::string("activations (") + (ai.checkpointing ? "block inputs + one recomputed block" : "all blocks") + ")",
          act.blocks + act.recompute, Phase::kStep);
    r.add(Tier::kDevice, "LM head: logits, fp32 log-softmax and gradient", act.head, Phase::kStep);
  }

  // ------------------------------------------------------ fixed overheads
  if (in.target == Target::kCuda) {
    r.add(Tier::kDevice, "CUDA context and LibTorch kernels (not in LibTorch's allocator statistics)", kCudaContextBytes);
    r.add(Tier::kCpu, "LibTorch runtime (host, CUDA build)", kHostRuntimeBytesCuda);
  } else {
    r.add(Tier::kCpu, "LibTorch runtime (host)", kHostRuntimeBytesCpu);
  }

  // The swap files' checksum tables (io::SwapFile): 4 B per 4 KiB page, in host memory.
  if (in.checksums) {
    std::int64_t table = 0;
    for (const Item& i : r.nvme) table += swap_checksum_table_bytes(i.bytes);
    r.add(Tier::kCpu, "swap-file checksums (CRC32C per 4 KiB page)", table);
  }

  Need need;
  need.activations = act;
  if (in.target == Target::kCpu) {  // the CPU is the accelerator: its tier is host memory
    r.cpu.insert(r.cpu.begin(), r.accel.begin(), r.accel.end());
    r.accel.clear();
  }
  const int n = in.gpus_per_node;
  need.gpu = r.accel;
  need.cpu = times(r.cpu, n);
  need.nvme = times(r.nvme, n);
  need.gpu_bytes = peak_bytes(need.gpu);
  need.cpu_bytes = peak_bytes(need.cpu);
  need.nvme_bytes = sum(need.nvme);
  std::int64_t floor_accel = 0, floor_cpu = 0;
  model_state_floor(in, o, gradients_nvme, floor_accel, floor_cpu);
  if (in.target == Target::kCpu) {
    floor_cpu += floor_accel;
    floor_accel = 0;
  }
  need.model_state_gpu_bytes = floor_accel;
  need.model_state_cpu_bytes = floor_cpu * n;
  need.device_sums = device_sums;
  return need;
}

}  // namespace

Need estimate_option(const Inputs& in, const Option& o) {
  check_inputs(in);
  if (in.device_grad_accumulation) return estimate_with(in, o, *in.device_grad_accumulation);
  // auto: the sums when they fit, since they give the same losses faster;
  // on the CPU they would only be a second host copy.
  if (in.target != Target::kCuda || !in.gpu_capacity_bytes) return estimate_with(in, o, false);
  Need with = estimate_with(in, o, true);
  if (!with.device_sums || with.gpu_bytes <= usable_bytes(*in.gpu_capacity_bytes)) return with;
  return estimate_with(in, o, false);
}

DeviceSumsChoice choose_device_sums(const config::Settings& s, int ranks, Target target,
                                    std::optional<std::int64_t> gpu_capacity_bytes) {
  Inputs in = inputs_from(s, std::max(1, ranks), 1, target);
  in.gpu_capacity_bytes = gpu_capacity_bytes;
  const Need need = estimate_option(in, option_from(s));
  DeviceSumsChoice c;
  c.on = need.device_sums;
  c.automatic = !s.device_grad_accumulation.has_value();
  const bool matters = target == Target::kCuda && s.grad_accum > 1 && s.offload_optimizer.device != Tier::kDevice;
  if (!c.automatic || !matters) return c;
  if (!gpu_capacity_bytes) {
    c.why = "the GPU's memory is unknown";
    return c;
  }
  const std::string limit = "the GPU's " + format_bytes(double(*gpu_capacity_bytes)) + " less " + safety_margin_text();
  c.why = c.on ? "the estimate with them, " + format_bytes(double(need.gpu_bytes)) + ", fits " + limit
               : "the estimate with them would not fit " + limit;
  return c;
}

std::string describe_need(const Need& need, Target target) {
  std::string out;
  auto line = [&](const Item& i) {
    std::string what = i.what;
    if (what.size() < 72) what.resize(72, ' ');
    out += "      " + what + " " + format_bytes(double(i.bytes)) + "\n";
  };
  auto tier = [&](const std::string& title, std::int64_t total, const std::vector<Item>& items) {
    if (items.empty()) return;
    out += "  " + title + ": " + format_bytes(double(total)) + "\n";
    std::int64_t phase[kPhases] = {};
    for (const auto& i : items) phase[static_cast<int>(i.phase)] += i.bytes;
    const int largest = int(std::max_element(phase + 1, phase + kPhases) - phase);
    for (int p = 0; p < kPhases; ++p) {
      if (phase[p] == 0) continue;
      out += "    " + std::string(phase_name(Phase(p))) + ": " + format_bytes(double(phase[p])) +
             (p == 0 ? "" : p == largest ? " (the largest phase: counted)" : " (not at the peak)") + "\n";
      for (const auto& i : items)
        if (static_cast<int>(i.phase) == p) line(i);
    }
  };
  if (target == Target::kCuda) tier("GPU, per rank", need.gpu_bytes, need.gpu);
  tier("CPU memory, per node", need.cpu_bytes, need.cpu);
  tier("NVMe, per node", need.nvme_bytes, need.nvme);
  return out;
}

Estimate estimate(const Inputs& in) {
  check_inputs(in);
  Estimate e;
  e.inputs = in;
  e.largest_block_params = std::min(in.params, largest_block_params(in.model));
  for (const auto& o : standard_options()) e.rows.push_back({o, estimate_option(in, o)});
  return e;
}

}  // namespace zinf::plan
