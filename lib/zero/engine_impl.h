// zinf::zero — the offload engine's internals, shared by its source files.
// Implements: OffloadEngine::Impl, the state behind the public class — where
// each block's shard lives (BlockPart), the homes of parameters, optimizer
// states and gradients, the worker threads and CUDA streams of the
// pipeline, the per-block readiness after the optimizer, counters and the
// step timeline — and the declarations of the pipeline's stages, defined in
// engine_fetch.cpp (parameters to the device), engine_grads.cpp (gradients
// off it), engine_step.cpp (norm, optimizer, new weights home) and
// engine_state.cpp (checkpoint streaming). Not a public header.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#ifdef ZINF_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "comm/communicator.h"
#include "io/aligned_buffer.h"
#include "io/swap_file.h"
#include "offload/flat_store.h"
#include "offload/pinned_pool.h"
#include "offload/subgroup_pipeline.h"
#include "offload/worker.h"
#include "zero/offload_engine.h"

namespace zinf::zero {


// Block b across ranks: the padded block splits into world equal shards;
// this rank owns [own_begin, own_begin + own_count) of the block's elements.
struct BlockPart {
  std::int64_t numel = 0;         // elements of the block
  std::int64_t offset = 0;        // elements into the model's flat vector
  std::int64_t shard = 0;         // elements per rank (numel on one rank)
  std::int64_t own_begin = 0;     // elements into the block
  std::int64_t own_count = 0;     // real elements owned (the rest of the shard is padding)
  std::int64_t owned_offset = 0;  // elements into this rank's owned buffers (gradients, optimizer)
};

// Host seconds since t.
inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

#ifdef ZINF_WITH_CUDA
using EventPtr = std::shared_ptr<at::cuda::CUDAEvent>;
#endif

// A parameter fetch in flight or done.
struct Fetch {
  std::shared_future<void> done;
  torch::Tensor shard;  // [home elements] on the device, this rank's part (several ranks)
  torch::Tensor full;   // [numel] on the device, the whole block
#ifdef ZINF_WITH_CUDA
  EventPtr shard_ready, ready;  // recorded after `shard` / `full` were written
#endif
};

struct OffloadEngine::Impl {
  OffloadEngineOptions opt;
  std::vector<EngineBlock> blocks;
  std::vector<BlockPart> parts;      // [blocks]
  std::int64_t numel = 0;            // elements of the flat vector
  std::int64_t owned_total = 0;      // elements this rank owns
  int world = 1, rank = 0;
  bool sharded_params = false;       // homes hold shards (stage 3 on several ranks)
  std::int64_t step = 0;

  // ------------------------------------------------ homes
  std::unique_ptr<io::UringEngine> uring;  // NVMe plumbing, when anything lives there
  std::unique_ptr<io::SwapDir> swap_dir;
  // Parameters: device_params[b] ([home] or, replicated on several ranks,
  // [world * shard]) when the home is the device; else cpu_params / nvme_params
  // segment cpu_seg[b] / nvme_seg[b] (-1 when not in that store).
  std::vector<torch::Tensor> device_params;
  std::unique_ptr<offload::FlatStore> cpu_params, nvme_params;
  std::vector<int> cpu_seg, nvme_seg;
  std::unique_ptr<offload::PinnedPool> fetch_pool;  // NVMe reads -> device
  std::unique_ptr<offload::PinnedPool> write_pool;  // optimizer -> NVMe / device parameter writes
  // Optimizer: dev_* [own_count] per block on the device, or `states` on CPU/NVMe.
  std::vector<torch::Tensor> dev_master, dev_m, dev_v;
  torch::Tensor dev_step;  // [1] fp32 beside dev_master: the step count the fused AdamW kernel reads
  std::unique_ptr<offload::OptimizerStates> states;
  // Gradients of the owned elements: grads_dev [owned_total] fp32 on the
  // device; or host_grads [owned_total] (fp32, or the compute dtype when
  // nothing accumulates); or nvme_grads, one fp32 segment per sub-group.
  torch::Tensor grads_dev;
  // accumulate_on_device: grads_dev_acc [owned_total] fp32 on the device sums
  // the micro-batches before the host gets them; dev_acc_live[b]: it holds
  // block b's contributions not yet sent; host_fresh[b]: the host
  // accumulator has nothing of this step yet. Touched by the thread that
  // delivers gradients (compute thread, or the communication worker on
  // several ranks) and between steps once the workers are drained.
  torch::Tensor grads_dev_acc;
  std::vector<char> dev_acc_live, host_fresh;
  io::AlignedBuffer host_grads;
  torch::Dtype host_grad_dtype = torch::kFloat32;
  std::unique_ptr<offload::FlatStore> nvme_grads;
  std::unique_ptr<offload::PinnedPool> grad_pool;   // device -> host staging pieces (16-bit)
  std::unique_ptr<offload::PinnedPool> grad_stage;  // NVMe gradient segments being accumulated (fp32)
  std::vector<std::vector<std::size_t>> groups_of;  // [blocks] sub-groups of each block, in order
  // Per block, written by the compute thread between steps, read by workers
  // through the jobs they were posted with.
  std::vector<char> grad_fresh;       // next contribution assigns instead of adding
  std::vector<char> has_grad;         // a contribution arrived this step
  std::vector<double> block_norm2;    // sum of squares of the accumulated gradient (host homes)
  bool boundary = true;               // the coming backward ends the accumulation (norm wanted)
  // Delayed parameter update: the optimizer writes the parameters' next home
  // and reads the gradients of the step before, while the step in flight
  // reads cpu_params and accumulates into host_grads; step() swaps them.
  std::unique_ptr<offload::FlatStore> cpu_params_next;
  io::AlignedBuffer host_grads_next;
  bool update_pending = false;        // an optimizer pass whose weights are not swapped in yet
  // opt.no_decay seen from this rank (made by the first step, split_decay()):
  // per block the runs of its owned elements that decay (device optimizer,
  // [0, own_count) coordinates); per sub-group the runs that do not (host
  // optimizer, [0, numel) of the sub-group). Empty lists: no split needed.
  std::vector<std::vector<FlatRange>> decay_owned;   // [blocks]
  std::vector<std::vector<FlatRange>> group_no_decay;  // [sub-groups]
  bool decay_split = false;

  // ------------------------------------------------ pipeline
  offload::Worker fetch_worker, grad_worker, optim_worker;
  std::unique_ptr<offload::Worker> comm_worker;           // several ranks only
  std::vector<std::shared_future<void>> block_ready;      // [blocks] the optimizer is done with b
  std::deque<std::shared_future<void>> grads_in_flight;   // throttles the compute thread
  std::deque<std::shared_future<void>> delivered_in_flight;  // the same, on the communication worker
  std::mutex fetch_mu;
  std::map<std::size_t, std::shared_ptr<Fetch>> prefetched;   // block -> in flight or ready
  std::vector<std::vector<std::size_t>> schedule;             // block lists of run() calls, forward order
  std::size_t cursor = 0;                                      // next forward call index
  bool schedule_known = false;                                 // a whole forward has been seen
  torch::Tensor anchor;                                        // puts every run() on the graph
#ifdef ZINF_WITH_CUDA
  std::unique_ptr<c10::cuda::CUDAStream> h2d_stream, d2h_stream, comm_stream;
  std::vector<EventPtr> params_updated;  // [blocks] device-home parameters written by the optimizer
#endif

  // ------------------------------------------------ counters and timeline
  std::atomic<std::int64_t> h2d{0}, d2h{0}, hits{0}, misses{0};
  std::mutex timeline_mu;
  StepTimeline timeline;  // host-timed parts
#ifdef ZINF_WITH_CUDA
  std::vector<std::pair<EventPtr, EventPtr>> compute_events, h2d_events, d2h_events;
#endif
  void add_time(double StepTimeline::*field, double seconds) {
    std::lock_guard<std::mutex> lock(timeline_mu);
    timeline.*field += seconds;
  }

  bool is_cuda() const { return opt.device.is_cuda(); }
  std::int64_t pbytes() const { return static_cast<std::int64_t>(c10::elementSize(opt.dtype)); }
  bool half_dtype() const { return opt.dtype == torch::kBFloat16 || opt.dtype == torch::kFloat16; }
  // Elements of block b at its parameters' home.
  std::int64_t home_numel(std::size_t b) const { return sharded_params ? parts[b].shard : parts[b].numel; }
  bool fetch_needed() const { return opt.param_home != Tier::kDevice || sharded_params; }
  void wait_ready(std::size_t b) const {
    if (block_ready[b].valid()) block_ready[b].get();
  }

  // ------------------------------------------------ setup (offload_engine.cpp)
  void build(const OffloadEngine::Initializer& init);

  // ------------------------------------------------ fetch (engine_fetch.cpp)
  std::shared_ptr<Fetch> start_fetch(std::size_t b);
  void load_home(std::size_t b, Fetch& f);     // fetch worker: home -> device (this rank's part)
  void gather(std::size_t b, Fetch& f);        // comm worker: all-gather the shards
  void prefetch(std::size_t b);
  void prefetch_call(std::size_t call);
  torch::Tensor acquire(std::size_t b);        // the block on the device, [numel]
  std::vector<torch::Tensor> acquire_all(const std::vector<std::size_t>& list);
  void drop_prefetches();                      // waits for and forgets fetches in flight

  // ------------------------------------------------ gradients (engine_grads.cpp)
  void hand_grad(std::size_t b, const torch::Tensor& g);
  std::shared_future<void> deliver_grad(std::size_t b, const torch::Tensor& own, bool assign, bool norm);
  std::shared_future<void> send_to_host(std::size_t b, const torch::Tensor& own, bool assign, bool norm);
  torch::Tensor device_sum(std::size_t b) const {  // block b's part of grads_dev_acc
    return grads_dev_acc.narrow(0, parts[b].owned_offset, parts[b].own_count);
  }
  std::shared_future<void> send_device_sum(std::size_t b);  // to the host accumulator, at the boundary
  void flush_device_accumulators();            // sends what grads_dev_acc still holds
  // Waits for every gradient job; with send_device_sums also sends the sums
  // grads_dev_acc still holds (step() does; a discard or a mid-step
  // synchronize() leaves them where they are).
  void wait_for_gradients(bool send_device_sums);
  void reset_step_gradients();                 // the next contribution of every block starts a new sum

  // ------------------------------------------------ step (engine_step.cpp)
  double grad_norm_squared();
  void split_decay();                          // fills decay_owned / group_no_decay once
  void launch_update(double lr, double grad_scale);
  void drain_update();                         // waits for the optimizer pass and its collectives
  void finish_update();                        // drain_update(), then swaps in a pending delayed update
  void swap_in_update();                       // delayed update: the pass's weights become the home
  void wait_for_device_work();                 // gradient jobs (device sums stay), then the compute stream

  // ------------------------------------------------ parameters' home
  void write_home_params(std::size_t b, std::int64_t at, const float* src, std::int64_t count);
  // Bytes to write for `bytes` of new weights at `at_bytes` of block b's NVMe
  // segment: rounded up to whole 4096-byte units unless the piece reaches the
  // segment's end (a shard's padding tail); `buf` gets zeros in the extra bytes.
  std::int64_t nvme_write_bytes(std::size_t b, std::int64_t at_bytes, std::int64_t bytes, void* buf) const;
};

// A CPU tensor over host memory (no copy).
inline torch::Tensor host_tensor(void* data, std::int64_t numel, torch::Dtype dtype) {
  return torch::from_blob(data, {numel}, torch::TensorOptions().dtype(dtype));
}

}  // namespace zinf::zero
