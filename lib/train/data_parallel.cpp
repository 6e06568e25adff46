// zinf::train — shard arithmetic, the rank group and the stage none/1/2 optimizer side.
#include "train/data_parallel.h"

#include <algorithm>
#include <cstring>

#include "comm/communicator.h"
#include "core/error.h"
#include "model/gpt.h"
#include "train/weight_source.h"

namespace zinf::train {

// ------------------------------------------------------------ ShardPlan

ShardPlan::ShardPlan(std::int64_t n, int world, std::int64_t align) : numel(n), world_size(world) {
  if (n < 0 || world < 1 || align < 1)
    throw Error("cannot split " + std::to_string(n) + " elements over " + std::to_string(world) +
                " ranks in units of " + std::to_string(align));
  const std::int64_t per_rank = (n + world - 1) / world;
  shard_numel = std::max<std::int64_t>(align, (per_rank + align - 1) / align * align);
}

FlatRange ShardPlan::shard(int rank) const { return {rank * shard_numel, shard_numel}; }

FlatRange ShardPlan::owned(int rank) const {
  const std::int64_t b = std::min(numel, rank * shard_numel), e = std::min(numel, (rank + 1) * shard_numel);
  return {b, e - b};
}

// ------------------------------------------------------------ RankGroup

RankGroup::RankGroup(comm::Communicator* comm, torch::Device device) : comm_(comm), device_(device) {
  if (comm_) {
    rank_ = comm_->rank();
    size_ = comm_->world_size();
  }
}

void RankGroup::sum(torch::Tensor& t) const {
  if (size_ > 1) comm_->all_reduce_sum(t);
}

void RankGroup::barrier() const {
  if (size_ > 1) comm_->barrier();
}

// ------------------------------------------------------------ DataParallel

namespace {

// The bytes of a 2-byte tensor: Gloo in LibTorch 1.13 has no bf16
// collectives, and an all-gather only copies, so bytes gather the same.
torch::Tensor as_bytes(const torch::Tensor& t) {
  return t.element_size() == 2 ? t.view(torch::kUInt8) : t;
}

}  // namespace

DataParallel::DataParallel(model::Gpt& model, const RankGroup& group, int stage, std::int64_t bucket_numel,
                           const optim::AdamWOptions& adam)
    : model_(model), group_(group), plan_(model.numel(), group.size()), stage_(group.size() > 1 ? stage : 0) {
  if (stage < 0 || stage > 2)
    throw Error("the data-parallel loop runs ZeRO stages 0-2, not " + std::to_string(stage),
                "stage 3 trains through the ZeRO engine (train/zero_gpt.h)");
  if (stage_ > 0 && model.padded_params().numel() != plan_.padded_numel())
    throw Error("the model's flat buffers hold " + std::to_string(model.padded_params().numel()) +
                " elements; sharding over " + std::to_string(group.size()) + " ranks needs " +
                std::to_string(plan_.padded_numel()));
  fp32_model_ = model.params().scalar_type() == torch::kFloat32;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(model.params().device());
  if (stage_ == 0) {
    master_ = fp32_model_ ? model.params() : torch::zeros({plan_.numel}, f32);
    if (!fp32_model_) grad32_ = torch::zeros({plan_.numel}, f32);
  } else {
    master_ = torch::zeros({plan_.shard_numel}, f32);
    grad_shard_ = torch::zeros({plan_.shard_numel}, f32);
    if (stage_ == 1 && !fp32_model_) grad32_ = torch::zeros({plan_.padded_numel()}, f32);
    if (stage_ == 2) {
      // One bucket holds a piece of every rank's shard, `piece` elements each.
      const std::int64_t piece = std::clamp<std::int64_t>(bucket_numel / group.size(), 1, plan_.shard_numel);
      bucket_in_ = torch::zeros({piece * group.size()}, f32);
      bucket_out_ = torch::zeros({piece}, f32);
    }
  }
  // adam.no_decay is in the flat vector's coordinates; a shard sees its part.
  optim::AdamWOptions mine = adam;
  if (stage_ > 0) mine.no_decay = clip_ranges(adam.no_decay, plan_.shard(group.rank()));
  optimizer_ = std::make_unique<optim::AdamWFlat>(master_, mine);
}

namespace {

// A flat [numel] fp32 CPU vector as the WeightSource of its layout's blocks.
class FlatWeights final : public WeightSource {
 public:
  FlatWeights(const torch::Tensor& flat, const std::vector<model::BlockLayout>& layout) : flat_(flat), layout_(layout) {}
  void read(std::size_t block, std::int64_t first, std::int64_t count, float* dst) const override {
    std::memcpy(dst, flat_.data_ptr<float>() + layout_.at(block).offset + first, sizeof(float) * std::size_t(count));
  }
  std::string describe() const override { return "a flat vector"; }

 private:
  const torch::Tensor& flat_;
  const std::vector<model::BlockLayout>& layout_;
};

}  // namespace

void DataParallel::init(const torch::Tensor& initial) {
  if (initial.numel() != model_.numel() || initial.scalar_type() != torch::kFloat32 || !initial.device().is_cpu() ||
      !initial.is_contiguous())
    throw Error("the first weights must be a contiguous CPU fp32 vector of the model's " +
                std::to_string(model_.numel()) + " parameters, got " + std::to_string(initial.numel()) + " elements");
  init(FlatWeights(initial, model_.layout()));
}

void DataParallel::init(const WeightSource& weights) {
  torch::NoGradGuard no_grad;
  const auto& layout = model_.layout();
  const FlatRange o = stage_ == 0 ? FlatRange{0, plan_.numel} : plan_.owned(group_.rank());
  if (stage_ != 0) master_.zero_();
  for_each_block(weights, layout, [&](std::size_t b, const float* values) {
    const std::int64_t begin = layout[b].offset, numel = layout[b].numel;
    const torch::Tensor block = torch::from_blob(const_cast<float*>(values), {numel}, torch::kFloat32);
    model_.params().narrow(0, begin, numel).copy_(block);
    // The part of the block this rank's master copy holds.
    const std::int64_t lo = std::max(begin, o.begin), hi = std::min(begin + numel, o.begin + o.count);
    if (lo < hi && !(stage_ == 0 && fp32_model_))
      master_.narrow(0, lo - o.begin, hi - lo).copy_(block.narrow(0, lo - begin, hi - lo));
  });
}

std::int64_t DataParallel::accumulator_numel() const {
  if (stage_ == 2) return grad_shard_.numel();
  return grad32_.defined() ? grad32_.numel() : model_.padded_grads().numel();
}

void DataParallel::accumulate() {
  torch::NoGradGuard no_grad;
  const bool first = micro_++ == 0;
  if (stage_ == 2) {
    // Bucket k gathers elements [k*piece, (k+1)*piece) of every rank's shard,
    // so its reduce-scatter hands each rank the next piece of its own shard.
    const torch::Tensor& grads = model_.padded_grads();
    const std::int64_t shard = plan_.shard_numel, piece = bucket_out_.numel(), world = group_.size();
    for (std::int64_t k = 0; k < shard; k += piece) {
      const std::int64_t len = std::min(piece, shard - k);
      torch::Tensor in = bucket_in_.narrow(0, 0, len * world);
      for (std::int64_t q = 0; q < world; ++q) in.narrow(0, q * len, len).copy_(grads.narrow(0, q * shard + k, len));
      torch::Tensor mine = grad_shard_.narrow(0, k, len);
      if (first) {
        group_.comm()->reduce_scatter_sum(in, mine);
      } else {
        torch::Tensor out = bucket_out_.narrow(0, 0, len);
        group_.comm()->reduce_scatter_sum(in, out);
        mine.add_(out);
      }
    }
    model_.zero_grads();
    return;
  }
  if (grad32_.defined() && !model_.options().flat_grads) {  // each parameter's fresh gradient into the fp32 sum
    model_.move_grads_into(grad32_, first);
  } else if (grad32_.defined()) {  // a low-precision model: accumulate in fp32, one op per micro-batch
    const torch::Tensor src = stage_ == 0 ? model_.grads() : model_.padded_grads();
    if (first) grad32_.copy_(src);
    else grad32_.add_(src);
    model_.zero_grads();
  }
  // An fp32 model accumulates in its own gradient buffer (autograd adds into .grad).
}

torch::Tensor& DataParallel::reduce() {
  torch::NoGradGuard no_grad;
  if (stage_ == 2) return grad_shard_;
  if (stage_ == 1) {
    group_.comm()->reduce_scatter_sum(grad32_.defined() ? grad32_ : model_.padded_grads(), grad_shard_);
    return grad_shard_;
  }
  torch::Tensor& grad = grad32_.defined() ? grad32_ : model_.grads();
  group_.sum(grad);
  return grad;
}

namespace {

// Sum of squares of `g` without a gradient-sized temporary (square().sum()
// writes one: 5.4 GB for a 1.4B model). On CUDA a norm reduction reads it
// once; on the CPU pieces of 2^26 elements keep square().sum()'s order on
// models below that size, which the tests compare the other stages with
// (a norm reduction rounds differently).
torch::Tensor sum_of_squares(const torch::Tensor& g) {
  if (g.is_cuda()) return g.norm().square();
  constexpr std::int64_t kPiece = std::int64_t(1) << 26;
  if (g.numel() <= kPiece) return g.square().sum();
  torch::Tensor total = torch::zeros({}, g.options());
  for (std::int64_t at = 0; at < g.numel(); at += kPiece)
    total += g.narrow(0, at, std::min(kPiece, g.numel() - at)).square().sum();
  return total;
}

}  // namespace

torch::Tensor DataParallel::square_sum(const torch::Tensor& grad) const {
  if (stage_ > 0 || group_.size() == 1) return sum_of_squares(grad);
  // Every rank holds the whole reduced gradient: each counts its own part once.
  const FlatRange o = plan_.owned(group_.rank());
  return sum_of_squares(grad.narrow(0, o.begin, o.count));
}

bool DataParallel::wants_flat_grads(int stage, int world, torch::Dtype dtype) {
  // An fp32 model's flat buffer is the master gradient; stage 2 reduce-
  // scatters buckets cut from it.
  return dtype == torch::kFloat32 || (world > 1 && stage == 2);
}

void DataParallel::step(const torch::Tensor& grad, double lr) {
  optimizer_->step(grad, lr);
  publish();
}

void DataParallel::zero_grads() {
  model_.zero_grads();
  micro_ = 0;
}

void DataParallel::publish() {
  torch::NoGradGuard no_grad;
  if (stage_ == 0) {
    if (!fp32_model_) model_.load_flat(master_);
    return;
  }
  torch::Tensor& full = model_.padded_params();
  if (fp32_model_) {
    group_.comm()->all_gather(master_, full);
    return;
  }
  const torch::Tensor low = master_.to(full.scalar_type());
  torch::Tensor bytes = as_bytes(full);
  group_.comm()->all_gather(as_bytes(low), bytes);
}

std::vector<FlatRange> DataParallel::owned_ranges() const {
  if (group_.size() == 1) return {FlatRange{0, plan_.numel}};
  const FlatRange o = plan_.owned(group_.rank());
  if (o.count == 0) return {};
  return {o};
}

void DataParallel::save_state(const StateSink& sink, std::int64_t chunk) const {
  torch::NoGradGuard no_grad;
  for (const FlatRange& o : owned_ranges()) {
    // Where the range starts in this rank's tensors: the full vector, or the shard.
    const std::int64_t local = stage_ == 0 ? o.begin : o.begin - plan_.shard(group_.rank()).begin;
    for (std::int64_t c = 0; c < o.count; c += chunk) {
      const std::int64_t n = std::min(chunk, o.count - c);
      const torch::Tensor p = master_.narrow(0, local + c, n).to(torch::kCPU).contiguous();
      const torch::Tensor m = optimizer_->exp_avg().narrow(0, local + c, n).to(torch::kCPU).contiguous();
      const torch::Tensor v = optimizer_->exp_avg_sq().narrow(0, local + c, n).to(torch::kCPU).contiguous();
      sink({o.begin + c, n}, p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
    }
  }
}

void DataParallel::load_state(const StateSource& source, std::int64_t adam_steps, std::int64_t chunk) {
  torch::NoGradGuard no_grad;
  // Stage none holds the whole replicated state; zero1/2 their shard.
  const FlatRange o = stage_ == 0 ? FlatRange{0, plan_.numel} : plan_.owned(group_.rank());
  const std::int64_t local = stage_ == 0 ? 0 : o.begin - plan_.shard(group_.rank()).begin;
  if (stage_ > 0) {
    master_.zero_();
    optimizer_->exp_avg().zero_();
    optimizer_->exp_avg_sq().zero_();
  }
  const std::int64_t buf_numel = std::max<std::int64_t>(1, std::min(chunk, o.count));
  torch::Tensor p = torch::empty({buf_numel}, torch::kFloat32), m = torch::empty_like(p), v = torch::empty_like(p);
  for (std::int64_t c = 0; c < o.count; c += chunk) {
    const std::int64_t n = std::min(chunk, o.count - c);
    source({o.begin + c, n}, p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
    master_.narrow(0, local + c, n).copy_(p.narrow(0, 0, n));
    optimizer_->exp_avg().narrow(0, local + c, n).copy_(m.narrow(0, 0, n));
    optimizer_->exp_avg_sq().narrow(0, local + c, n).copy_(v.narrow(0, 0, n));
  }
  optimizer_->set_step_count(adam_steps);
  publish();
}

}  // namespace zinf::train
