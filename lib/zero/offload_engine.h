// zinf::zero — the ZeRO-3 / ZeRO-Infinity engine, on one rank or many.
// Implements: OffloadEngine, which owns every block's state at its home tier
// and runs blocks without PyTorch-style hooks:
//  - parameters (in the compute dtype) live on the device, in pinned CPU
//    memory, or on NVMe (with max_in_cpu elements kept in CPU memory); with
//    several ranks each rank's home holds only its shard of every block
//    (stage 3), or the device keeps whole blocks (stages 1-2);
//  - fp32 master weights and Adam moments of this rank's shard live on the
//    device, in CPU memory or on NVMe in sub-groups (offload/
//    subgroup_pipeline.h), optionally split between CPU and NVMe;
//  - gradients of this rank's shard accumulate next to the optimizer:
//    device, host (fp32, or the compute dtype when nothing accumulates), or
//    NVMe segments;
//  - run() executes one block inside a custom autograd function: forward
//    fetches the block's parameters (home -> pinned -> device, all-gathered
//    across ranks), computes without a graph, keeps only its input and drops
//    the parameters; backward fetches them again, recomputes,
//    back-propagates, and hands the block's gradient to the engine, which
//    reduce-scatters it to its owners and copies it off the device while
//    backward goes on. Upcoming blocks are prefetched on a worker thread
//    while the current block computes;
//  - step() clips by the global gradient norm (summed as gradients arrive,
//    all-reduced across ranks), skips on overflow (fp16), and starts the
//    fused CPU Adam/AdamW (optim/cpu_adam.h) over the sub-groups on a worker
//    thread, block by block in forward order, writing the bf16/fp16 weights
//    straight into the parameters' home: the next forward starts as soon as
//    its first block is updated, so the optimizer overlaps the next step's
//    compute. With the optimizer on the device it runs as tensor ops.
// Threads and streams: a fetch worker (NVMe reads, host->device copies on a
// side stream), a gradient worker (device->host copies on a second side
// stream, accumulation), an optimizer worker and, with several ranks, one
// communication worker that issues every collective in the order the
// compute thread asked for them, so all ranks agree on the order. CUDA work
// is ordered by events, never by host waits on the compute thread. On CPU
// builds the same threads run the same pipeline, which is how CI tests it.
// A block's computation is a callback, so this module never sees the model
// (lib/train connects the two).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/flat_state.h"
#include "io/uring_engine.h"
#include "core/tier.h"
#include "optim/cpu_adam.h"

namespace zinf::comm {
class Communicator;
}

namespace zinf::zero {

struct OffloadEngineOptions {
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;      // parameters as the blocks compute with them
  Tier param_home = Tier::kDevice;
  Tier optimizer_home = Tier::kDevice;
  std::string nvme_path;                     // root of the swap directory (either home kNvme)
  std::string run_id;                        // swap directory name; "" = io::default_run_id()
  int rank = 0;
  std::int64_t buffer_count = 5;             // pinned staging buffers for NVMe parameters
  std::int64_t buffer_size = 0;              // elements per staging buffer; 0 = the largest block
  std::int64_t max_in_cpu = 0;               // elements of NVMe-homed parameters kept in CPU memory
  std::int64_t sub_group_size = 0;           // elements per optimizer sub-group; 0 = one per block
  io::EngineOptions aio;
  bool checksums = true;
  bool keep_swap_files = false;
  bool pin_memory = true;                    // page-lock host buffers (CUDA builds)
  bool prefetch = true;                      // fetch the next block while this one computes
  optim::AdamParams adam;                    // lr, step and grad_scale are set per step()
  // Elements of the flat vector (blocks back to back) that take no weight
  // decay, sorted and disjoint; empty: every element decays. Each rank
  // applies its owned part, on every optimizer home.
  std::vector<FlatRange> no_decay;
  comm::Communicator* comm = nullptr;        // data-parallel ranks (caller-owned); nullptr = one rank
  bool partition_params = true;              // stage 3: each rank's home holds its shard of the
                                             // parameters; false (stages 1-2): whole blocks on the
                                             // device, only optimizer state and gradients partitioned
  std::int64_t optimizer_max_in_cpu = 0;     // optimizer on NVMe: elements of its state kept in CPU memory
  bool gradients_on_nvme = false;            // gradient accumulators as NVMe segments (optimizer off-device)
  bool accumulate_gradients = true;          // false (grad_accum 1): host gradients in the compute dtype
  // With accumulate_gradients and the optimizer off the device: sum the
  // micro-batches' gradients in an fp32 buffer on the device (4 B per owned
  // element) and copy each block's sum to the host once per step, during
  // the backward that ends the accumulation. Needs the boundary hint
  // (set_accumulation_boundary(false) before the other micro-batches); a
  // sum the hint left on the device goes at step(). The host then neither
  // receives nor adds one gradient per micro-batch.
  bool accumulate_on_device = false;
  bool overlap_optimizer = true;             // step() returns while the CPU optimizer runs; blocks
                                             // wait for their own update before the next fetch
  // ZeRO-Offload's delayed parameter update (opt-in): step t's CPU optimizer
  // runs during step t+1's forward and backward, which therefore compute
  // with the weights from before step t's update (steps 1 and 2 both use the
  // initial weights; step t >= 2 uses those of step t-2). Checkpoints, and
  // anything else that needs the weights (synchronize()), wait for the update
  // and make it visible. Needs the optimizer off the device, parameters in
  // CPU memory and gradients in CPU memory (a second copy of each).
  bool delayed_update = false;
};

// Where the time of one optimizer step went (seconds; take_timeline()).
// Device times come from CUDA events on the engine's streams; on CPU builds
// from host clocks around the same work.
struct StepTimeline {
  double compute_s = 0;           // block computations: forward, recompute and backward
  double h2d_s = 0;               // host -> device copies (parameters)
  double d2h_s = 0;               // device -> host copies (gradients)
  double grad_accumulate_s = 0;   // CPU adding gradients into their accumulators
  double optimizer_s = 0;         // the optimizer pass (CPU Adam + writes of the new weights)
  double nvme_wait_s = 0;         // threads waiting on NVMe reads and writes
  double fetch_wait_s = 0;        // the compute thread waiting for parameters to arrive
  double comm_s = 0;              // collectives, host time on the communication worker
};

struct EngineBlock {
  std::string name;           // "embedding", "block.0", "head"
  std::int64_t numel = 0;     // elements
};

struct TransferCounters {
  std::int64_t h2d_bytes = 0;         // host -> device parameter uploads
  std::int64_t d2h_bytes = 0;         // device -> host gradient downloads
  std::int64_t nvme_read_bytes = 0;   // parameters and optimizer states read from NVMe
  std::int64_t nvme_write_bytes = 0;  // written to NVMe
  std::int64_t prefetch_hits = 0;     // block fetches already under way when the block was needed
  std::int64_t fetch_misses = 0;      // block fetches that made the compute thread wait from the start
};

struct StepResult {
  double grad_norm = 0;  // global L2 norm of the unscaled gradient, before clipping
  bool skipped = false;  // inf/NaN in the gradient: nothing was updated
};

// The full optimizer state, as flat fp32 CPU tensors [numel] (checkpoints).
struct EngineState {
  torch::Tensor master, exp_avg, exp_avg_sq;
  std::int64_t step = 0;
};

class OffloadEngine {
 public:
  // init(b, first, count, dst) writes elements [first, first + count) of
  // block b's initial fp32 weights into dst; it is called once per block, in
  // order, for the range this rank keeps (its shard when parameters are
  // partitioned, else the whole block), so no more than one block's weights
  // are ever in host memory at once and a rank reads only what it owns.
  using Initializer = std::function<void(std::size_t block, std::int64_t first, std::int64_t count, float* dst)>;
  OffloadEngine(OffloadEngineOptions options, std::vector<EngineBlock> blocks, const Initializer& init);
  // initial: [sum of block numels] fp32 on the CPU, the blocks back to back.
  OffloadEngine(OffloadEngineOptions options, std::vector<EngineBlock> blocks, const torch::Tensor& initial);
  ~OffloadEngine();
  OffloadEngine(const OffloadEngine&) = delete;
  OffloadEngine& operator=(const OffloadEngine&) = delete;

  // y = fn(x, flats) with flats[i] the parameters of blocks[i] as one flat
  // device tensor [numel] (dtype); the same block may appear in several
  // calls (a tied head lists the embedding), its gradients add up. fn must be
  // deterministic: backward recomputes it.
  using Compute = std::function<torch::Tensor(const torch::Tensor& x, const std::vector<torch::Tensor>& flats)>;
  torch::Tensor run(const std::vector<std::size_t>& blocks, Compute fn, const torch::Tensor& x);

  // Waits for the gradient offloads, then updates every parameter with
  // lr; gradients are divided by loss_scale and clipped to max_grad_norm
  // (0 = off). Zeroes the gradients.
  StepResult step(double lr, double loss_scale = 1.0, double max_grad_norm = 0.0);
  void zero_grads();
  std::int64_t step_count() const;
  // Waits until the last step's optimizer pass (and everything in flight) is
  // done; with delayed_update the new weights become the ones used next.
  void synchronize();
  // Waits for the same work, but a delayed update stays pending: the next
  // step computes with the weights it would have had (validation uses this,
  // so how often it runs cannot change training).
  void drain();
  // Says whether the next backward is the last micro-batch before step()
  // (the accumulation boundary): only then is the gradient norm summed.
  // Without this hint every micro-batch counts it.
  void set_accumulation_boundary(bool last);

  // This rank's part of the flat parameter vector: the ranges whose fp32
  // master weights and moments it holds, increasing (world size 1: all).
  std::vector<FlatRange> owned_ranges() const;
  // Streams the owned ranges' master, m and v to `sink` in pieces no larger
  // than the engine's own buffers (sub-groups), in increasing order.
  void save_state(const StateSink& sink);
  // Reads the owned ranges from `source`, sets the step count and refreshes
  // the parameters' home from the master weights.
  void load_state(const StateSource& source, std::int64_t step);

  // Whole-state forms for one rank (tests, small models): copies in full.
  EngineState state();                       // copies out (reads NVMe when it lives there)
  torch::Tensor master_weights();            // [numel] fp32 CPU, the master weights only
  void load_state(const EngineState& state); // and refreshes the parameters from the master weights
  // [numel] fp32 CPU, the parameters as the blocks see them. With several
  // ranks every rank must call it (it gathers).
  torch::Tensor parameters();
  int world_size() const;
  int rank() const;

  TransferCounters counters() const;
  // The timeline since the last call (waits for the device work it timed).
  StepTimeline take_timeline();
  std::int64_t nvme_reserved_bytes() const;  // swap space reserved on disk, all files
  std::int64_t pinned_pool_bytes() const;    // staging buffers allocated
  std::int64_t host_state_bytes() const;     // host memory holding params/optimizer/grads/buffers
  std::string swap_dir() const;              // "" when nothing is on NVMe
  const std::vector<EngineBlock>& blocks() const;
  const OffloadEngineOptions& options() const;

  struct Impl;  // opaque; public only so the autograd function can reach it

 private:
  std::unique_ptr<Impl> impl_;
};

// "none" | "cpu" | "nvme" -> Tier; throws UsageError naming `key` otherwise.
Tier parse_tier(const std::string& key, const std::string& value);

}  // namespace zinf::zero
