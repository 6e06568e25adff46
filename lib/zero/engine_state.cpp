// zinf::zero — the offload engine's state in and out: streamed by range, or whole for one rank.
#include <cstring>

#include "core/error.h"
#include "zero/engine_impl.h"

namespace zinf::zero {

std::vector<FlatRange> OffloadEngine::owned_ranges() const {
  std::vector<FlatRange> out;
  for (const BlockPart& p : impl_->parts) {
    if (p.own_count == 0) continue;
    const FlatRange r{p.offset + p.own_begin, p.own_count};
    if (!out.empty() && out.back().end() == r.begin) out.back().count += r.count;  // adjacent: one range
    else out.push_back(r);
  }
  return out;
}

void OffloadEngine::save_state(const StateSink& sink) {
  auto& e = *impl_;
  e.finish_update();
  if (e.opt.optimizer_home == Tier::kDevice) {
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      const BlockPart& p = e.parts[b];
      if (p.own_count == 0) continue;
      const torch::Tensor w = e.dev_master[b].cpu(), m = e.dev_m[b].cpu(), v = e.dev_v[b].cpu();
      sink({p.offset + p.own_begin, p.own_count}, w.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
    }
    return;
  }
  const auto& groups = e.states->groups();
  e.states->read_each([&](std::size_t k, const float* w, const float* m, const float* v) {
    const BlockPart& p = e.parts[groups[k].block];
    sink({p.offset + p.own_begin + (groups[k].begin - p.owned_offset), groups[k].numel}, w, m, v);
  });
}

void OffloadEngine::load_state(const StateSource& source, std::int64_t step) {
  auto& e = *impl_;
  e.finish_update();
  e.wait_for_gradients(false);  // what accumulated is discarded
  e.drop_prefetches();
  torch::NoGradGuard no_grad;
  if (e.opt.optimizer_home == Tier::kDevice) {
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      const BlockPart& p = e.parts[b];
      if (p.own_count == 0) continue;
      torch::Tensor w = torch::empty({p.own_count}, torch::kFloat32), m = torch::empty_like(w), v = torch::empty_like(w);
      source({p.offset + p.own_begin, p.own_count}, w.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>());
      e.dev_master[b].copy_(w);
      e.dev_m[b].copy_(m);
      e.dev_v[b].copy_(v);
      e.write_home_params(b, 0, w.data_ptr<float>(), p.own_count);
    }
  } else {
    const auto& groups = e.states->groups();
    e.states->write_each([&](std::size_t k, float* w, float* m, float* v) {
      const auto& g = groups[k];
      const BlockPart& p = e.parts[g.block];
      const std::int64_t at = g.begin - p.owned_offset;
      source({p.offset + p.own_begin + at, g.numel}, w, m, v);
      e.write_home_params(g.block, at, w, g.numel);
    });
  }
  // Whole blocks on every device: each rank wrote its own part; gather the rest.
  if (e.world > 1 && !e.sharded_params)
    for (std::size_t b = 0; b < e.blocks.size(); ++b) {
      torch::Tensor mine = e.device_params[b].narrow(0, std::int64_t(e.rank) * e.parts[b].shard, e.parts[b].shard).clone();
      e.opt.comm->all_gather(mine, e.device_params[b]);
    }
  e.reset_step_gradients();
  e.step = step;
}

// ---------------------------------------------------------------- one rank, whole tensors

namespace {
void require_one_rank(const OffloadEngine::Impl& e, const char* what) {
  if (e.world > 1)
    throw Error(std::string(what) + " copies the whole state, which no rank of " + std::to_string(e.world) + " holds",
                "stream it by range: save_state() / load_state() with owned_ranges()");
}
}  // namespace

EngineState OffloadEngine::state() {
  require_one_rank(*impl_, "state()");
  EngineState s;
  for (torch::Tensor* t : {&s.master, &s.exp_avg, &s.exp_avg_sq}) *t = torch::empty({impl_->numel}, torch::kFloat32);
  save_state([&](const FlatRange& r, const float* w, const float* m, const float* v) {
    std::memcpy(s.master.data_ptr<float>() + r.begin, w, sizeof(float) * r.count);
    std::memcpy(s.exp_avg.data_ptr<float>() + r.begin, m, sizeof(float) * r.count);
    std::memcpy(s.exp_avg_sq.data_ptr<float>() + r.begin, v, sizeof(float) * r.count);
  });
  s.step = impl_->step;
  return s;
}

torch::Tensor OffloadEngine::master_weights() {
  require_one_rank(*impl_, "master_weights()");
  torch::Tensor out = torch::empty({impl_->numel}, torch::kFloat32);
  save_state([&](const FlatRange& r, const float* w, const float*, const float*) {
    std::memcpy(out.data_ptr<float>() + r.begin, w, sizeof(float) * r.count);
  });
  return out;
}

void OffloadEngine::load_state(const EngineState& s) {
  require_one_rank(*impl_, "load_state(EngineState)");
  const std::int64_t n = impl_->numel;
  for (const torch::Tensor* t : {&s.master, &s.exp_avg, &s.exp_avg_sq})
    if (!t->defined() || t->numel() != n || t->scalar_type() != torch::kFloat32)
      throw Error("optimizer state of " + std::to_string(t->defined() ? t->numel() : 0) +
                      " elements does not fit this model's " + std::to_string(n) + " parameters",
                  "resume from a checkpoint written for the same model");
  const torch::Tensor w = s.master.contiguous().cpu(), m = s.exp_avg.contiguous().cpu(), v = s.exp_avg_sq.contiguous().cpu();
  load_state(
      [&](const FlatRange& r, float* wd, float* md, float* vd) {
        if (wd) std::memcpy(wd, w.data_ptr<float>() + r.begin, sizeof(float) * r.count);
        if (md) std::memcpy(md, m.data_ptr<float>() + r.begin, sizeof(float) * r.count);
        if (vd) std::memcpy(vd, v.data_ptr<float>() + r.begin, sizeof(float) * r.count);
      },
      s.step);
}

torch::Tensor OffloadEngine::parameters() {
  auto& e = *impl_;
  e.finish_update();
  e.drop_prefetches();
  torch::NoGradGuard no_grad;
  torch::Tensor out = torch::empty({e.numel}, torch::kFloat32);
  for (std::size_t b = 0; b < e.blocks.size(); ++b) {
    torch::Tensor dev;
    if (!e.fetch_needed()) {
      dev = e.device_params[b].narrow(0, 0, e.parts[b].numel);
    } else {
      const auto f = e.start_fetch(b);
      f->done.get();
      dev = f->full;
#ifdef ZINF_WITH_CUDA
      if (e.is_cuda() && f->ready) f->ready->block(c10::cuda::getCurrentCUDAStream());
#endif
    }
    out.narrow(0, e.parts[b].offset, e.parts[b].numel).copy_(dev.to(torch::kCPU, torch::kFloat32));
  }
  return out;
}

}  // namespace zinf::zero
