// zinf::train — data parallelism for the loop that runs without the ZeRO engine.
// Implements:
//  - ShardPlan: the contiguous part of the flat parameter vector each rank
//    owns (the vector padded to a multiple of the world size; pure arithmetic);
//  - RankGroup: the trainer's view of its data-parallel group, a
//    comm::Communicator (or none: one rank) plus the device its collectives'
//    tensors live on;
//  - DataParallel: the optimizer side of stage none, ZeRO-1 and ZeRO-2 over
//    the model's flat buffers, per rank:
//      none   full fp32 master, full fp32 gradient, full moments; the
//             gradient is all-reduced once per step, every rank steps
//             everything;
//      zero1  fp32 master and moments of its shard only; the (full) gradient
//             is reduce-scattered into the shard once per step; AdamW on the
//             shard; the updated shards are all-gathered back into the
//             model's parameters (compute dtype);
//      zero2  as zero1, and the gradient too: after every micro-batch's
//             backward the model's gradient is reduce-scattered, bucket by
//             bucket, into a shard-sized fp32 accumulator, so no rank keeps a
//             full-size fp32 gradient across micro-batches.
//    On one rank every stage is `none` (one partition holds everything).
// The caller scales each rank's loss by 1 / (grad_accum * world size), so the
// sums these collectives compute are the global mean gradient.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/flat_state.h"
#include "optim/adamw_tensor.h"

namespace zinf::comm {
class Communicator;
}
namespace zinf::model {
class Gpt;
}

namespace zinf::train {

class WeightSource;

struct ShardPlan {
  // `numel` elements split over `world_size` ranks; shards are rounded up to
  // `align` elements so each starts on a vector-friendly boundary.
  ShardPlan(std::int64_t numel, int world_size, std::int64_t align = 64);

  std::int64_t numel = 0;        // elements of the flat vector
  int world_size = 1;
  std::int64_t shard_numel = 0;  // elements per rank, padding included

  std::int64_t padded_numel() const { return shard_numel * world_size; }
  // [rank * shard_numel, (rank + 1) * shard_numel): may reach into the padding.
  FlatRange shard(int rank) const;
  // The shard without the padding: what the rank's checkpoint shard holds
  // (empty for a rank whose shard is all padding).
  FlatRange owned(int rank) const;
};

class RankGroup {
 public:
  // comm: the data-parallel group (caller-owned), or nullptr for one rank.
  RankGroup(comm::Communicator* comm, torch::Device device);

  int rank() const { return rank_; }
  int size() const { return size_; }
  comm::Communicator* comm() const { return comm_; }
  const torch::Device& device() const { return device_; }

  // t <- sum of t over ranks (in place; t on device()); nothing on one rank.
  void sum(torch::Tensor& t) const;
  void barrier() const;

 private:
  comm::Communicator* comm_;
  torch::Device device_;
  int rank_ = 0, size_ = 1;
};

class DataParallel {
 public:
  // model: built with GptOptions::padded_numel = plan.padded_numel() of
  // ShardPlan(model numel, group.size()). stage: 0, 1 or 2 (1 and 2 act as 0
  // on one rank). bucket_numel: elements per ZeRO-2 reduce-scatter bucket,
  // all ranks' pieces together (reduce_bucket_size). adam.no_decay: the
  // elements of the flat vector that take no weight decay (each shard steps
  // its part of them). Holds references to model and group; they must outlive it.
  DataParallel(model::Gpt& model, const RankGroup& group, int stage, std::int64_t bucket_numel,
               const optim::AdamWOptions& adam);
  // Whether the model for (stage, world size, dtype) needs GptOptions::flat_grads:
  // a bf16/fp16 model at stage 0 or 1 hands over fresh per-parameter gradients instead.
  static bool wants_flat_grads(int stage, int world, torch::Dtype dtype);

  // The first weights ([numel] fp32 CPU, the same on every rank) into the
  // master copy and the model.
  void init(const torch::Tensor& initial);
  // The same from `weights`, a block at a time through one block's host
  // buffer (the model is on the device whole; the host never holds it).
  void init(const WeightSource& weights);

  // After each micro-batch's backward (the model's gradient holds it).
  void accumulate();
  // After the step's last micro-batch: the gradient of the part this rank
  // updates, fp32, summed over ranks ([numel] for none, [shard] otherwise).
  // Unscaling and clipping may change it in place.
  torch::Tensor& reduce();
  // This rank's share of the squared global gradient norm of `grad` (from
  // reduce()): summed over ranks it is the square of the global norm.
  torch::Tensor square_sum(const torch::Tensor& grad) const;
  // AdamW with `lr` on this rank's part, then the model's parameters are
  // refreshed from the master weights (all-gathered for zero1/zero2).
  void step(const torch::Tensor& grad, double lr);
  // Clears the model's gradient and the accumulators for the next step.
  void zero_grads();
  std::int64_t step_count() const { return optimizer_->step_count(); }

  // Checkpoints: the ranges this rank saves (none: its ShardPlan part of the
  // replicated state, so the ranks write in parallel; zero1/zero2: its
  // shard), streamed in pieces of at most `chunk` elements.
  std::vector<FlatRange> owned_ranges() const;
  void save_state(const StateSink& sink, std::int64_t chunk = std::int64_t(1) << 22) const;
  // Collective: reads what this rank holds from `source`, sets the step
  // count and refreshes the model's parameters.
  void load_state(const StateSource& source, std::int64_t adam_steps, std::int64_t chunk = std::int64_t(1) << 22);

  // What this rank keeps, in elements (tests, memory reports):
  int stage() const { return stage_; }                     // as run: 0 on one rank
  std::int64_t master_numel() const { return master_.numel(); }
  std::int64_t moment_numel() const { return optimizer_->exp_avg().numel(); }
  // fp32 gradient carried from one micro-batch to the next (the model's own
  // buffer when it is fp32 and no other accumulator exists).
  std::int64_t accumulator_numel() const;
  std::int64_t bucket_numel() const { return bucket_in_.defined() ? bucket_in_.numel() : 0; }
  const ShardPlan& plan() const { return plan_; }

 private:
  void publish();  // master weights -> the model's parameters

  model::Gpt& model_;
  const RankGroup& group_;
  ShardPlan plan_;
  int stage_ = 0;
  bool fp32_model_ = true;
  torch::Tensor master_;      // none: [numel] fp32 (the model's own buffer in fp32); zero1/2: [shard] fp32
  torch::Tensor grad32_;      // none/zero1 with a low-precision model: [numel] / [padded] fp32 accumulator
  torch::Tensor grad_shard_;  // zero1: [shard] reduce-scatter target; zero2: [shard] accumulator
  torch::Tensor bucket_in_;   // zero2: [world * piece] fp32, one bucket's pieces of every rank's shard
  torch::Tensor bucket_out_;  // zero2: [piece] fp32, this rank's reduced piece
  std::unique_ptr<optim::AdamWFlat> optimizer_;
  std::int64_t micro_ = 0;    // micro-batches accumulated this step
};

}  // namespace zinf::train
