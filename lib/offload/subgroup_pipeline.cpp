// zinf::offload — optimizer states in sub-groups.
#include "offload/subgroup_pipeline.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace zinf::offload {

std::vector<SubGroup> make_sub_groups(const std::vector<std::int64_t>& block_numels, std::int64_t sub_group_size) {
  std::vector<SubGroup> groups;
  std::int64_t cursor = 0;
  for (std::size_t b = 0; b < block_numels.size(); ++b) {
    const std::int64_t n = block_numels[b];
    const std::int64_t step = sub_group_size > 0 ? sub_group_size : std::max<std::int64_t>(n, 1);
    for (std::int64_t off = 0; off < n; off += step) groups.push_back({b, cursor + off, std::min(step, n - off)});
    cursor += n;
  }
  return groups;
}

std::int64_t auto_sub_group_size(std::int64_t host_budget_bytes) {
  const std::int64_t fit = host_budget_bytes / (3 * 16);
  return std::clamp<std::int64_t>(fit, std::int64_t(1) << 20, std::int64_t(1) << 30);
}

OptimizerStates::OptimizerStates(Tier tier, std::vector<SubGroup> groups, const NvmeBackend& backend, bool pin,
                                 std::int64_t max_in_cpu)
    : tier_(tier), groups_(std::move(groups)) {
  if (tier == Tier::kDevice) throw Error("optimizer states on the device are the engine's own tensors, not a store");
  std::vector<std::int64_t> cpu_bytes, nvme_bytes;
  std::int64_t in_cpu = 0;
  for (const auto& g : groups_) {
    const bool cpu = tier == Tier::kCpu || in_cpu + g.numel <= max_in_cpu;
    if (cpu && tier == Tier::kNvme) in_cpu += g.numel;
    auto& list = cpu ? cpu_bytes : nvme_bytes;
    seg_.push_back({!cpu, list.size()});
    list.push_back(3 * 4 * g.numel);
    if (!cpu) ring_numel_ = std::max(ring_numel_, g.numel);
  }
  if (!cpu_bytes.empty()) cpu_ = std::make_unique<FlatStore>("optimizer-cpu", Tier::kCpu, cpu_bytes, NvmeBackend{}, false);
  if (!nvme_bytes.empty()) {
    nvme_ = std::make_unique<FlatStore>("optimizer", Tier::kNvme, nvme_bytes, backend, pin);
    // state [12 B per element], then (at a 4096-aligned offset, for O_DIRECT)
    // the gradient [4 B] of the largest NVMe sub-group
    grad_offset_ = (12 * ring_numel_ + io::kDirectAlignment - 1) / io::kDirectAlignment * io::kDirectAlignment;
    for (int i = 0; i < 3; ++i) ring_.emplace_back(grad_offset_ + 4 * ring_numel_, io::kDirectAlignment, pin);
  }
}

std::int64_t OptimizerStates::host_buffer_bytes() const {
  std::int64_t t = cpu_ ? cpu_->resident_host_bytes() : 0;
  for (const auto& b : ring_) t += b.size();
  return t;
}

std::int64_t OptimizerStates::nvme_read_bytes() const { return nvme_ ? nvme_->nvme_read_bytes() : 0; }
std::int64_t OptimizerStates::nvme_write_bytes() const { return nvme_ ? nvme_->nvme_write_bytes() : 0; }
std::int64_t OptimizerStates::nvme_reserved_bytes() const { return nvme_ ? nvme_->reserved_bytes() : 0; }

float* OptimizerStates::cpu_base(std::size_t k) const { return reinterpret_cast<float*>(cpu_->host(seg_[k].seg)); }

void OptimizerStates::for_each(const UpdateFn& fn, std::vector<std::string>* trace) {
  for_each([&](std::size_t k, float* w, float* m, float* v, const float*) { fn(k, w, m, v); }, nullptr, trace);
}

void OptimizerStates::for_each(const StepFn& fn, FlatStore* grads, std::vector<std::string>* trace) {
  auto note = [&](const char* what, std::size_t k) {
    if (trace) trace->push_back(std::string(what) + " " + std::to_string(k));
  };
  const std::size_t n = groups_.size();
  // NVMe sub-groups in order; the i-th of them uses ring buffer i % 3 from its
  // read until its write lands.
  std::vector<std::size_t> on_nvme;
  for (std::size_t k = 0; k < n; ++k)
    if (seg_[k].nvme) on_nvme.push_back(k);
  const std::size_t m = on_nvme.size();
  std::vector<io::Ticket> reads(m, 0), grad_reads(m, 0), writes(m, 0);
  std::vector<bool> read_waited(m, false), write_waited(m, false);
  auto grad_of = [&](std::size_t i) { return reinterpret_cast<float*>(ring_[i % 3].bytes() + grad_offset_); };
  auto finish_write = [&](std::size_t i) {
    if (!write_waited[i]) {
      nvme_->wait(writes[i]);
      write_waited[i] = true;
      note("written", on_nvme[i]);
    }
  };
  auto start_read = [&](std::size_t i) {
    if (i >= 3) finish_write(i - 3);  // its buffer is free again
    note("read", on_nvme[i]);
    reads[i] = nvme_->read(seg_[on_nvme[i]].seg, ring_[i % 3].data());
    if (grads) grad_reads[i] = grads->read(on_nvme[i], grad_of(i));
  };
  auto wait_all = [&] {
    for (std::size_t i = 0; i < m; ++i) {
      try {
        if (reads[i] && !read_waited[i]) nvme_->wait(reads[i]);
        if (grad_reads[i] && !read_waited[i]) grads->wait(grad_reads[i]);
      } catch (...) {
      }
      try {
        if (writes[i] && !write_waited[i]) nvme_->wait(writes[i]);
      } catch (...) {
      }
    }
  };
  io::AlignedBuffer cpu_grad;  // gradients of a CPU sub-group read from `grads`
  try {
    std::size_t next = 0;  // NVMe sub-groups [0, next) have their reads issued
    if (m > 0) start_read(next++);
    std::size_t i = 0;     // index of the next NVMe sub-group to update
    for (std::size_t k = 0; k < n; ++k) {
      const std::int64_t c = groups_[k].numel;
      if (!seg_[k].nvme) {
        float* base = cpu_base(k);
        const float* g = nullptr;
        if (grads) {
          if (cpu_grad.size() < 4 * c) cpu_grad = io::AlignedBuffer(4 * c);
          grads->wait(grads->read(k, cpu_grad.data()));
          g = cpu_grad.as<float>();
        }
        note("update", k);
        fn(k, base, base + c, base + 2 * c, g);
        continue;
      }
      if (next == i + 1 && next < m) start_read(next++);  // read one ahead while this one updates
      read_waited[i] = true;
      nvme_->wait(reads[i]);
      if (grads) grads->wait(grad_reads[i]);
      float* base = ring_[i % 3].as<float>();
      note("update", k);
      fn(k, base, base + c, base + 2 * c, grads ? grad_of(i) : nullptr);
      note("write", k);
      writes[i] = nvme_->write(seg_[k].seg, base);
      ++i;
    }
    for (std::size_t j = 0; j < m; ++j) finish_write(j);
  } catch (...) {
    wait_all();  // leave no request in flight on buffers we own
    throw;
  }
}

void OptimizerStates::write_group(std::size_t k, const std::function<void(float*, float*, float*)>& fn) {
  const std::int64_t c = groups_.at(k).numel;
  if (!seg_[k].nvme) {
    float* base = cpu_base(k);
    fn(base, base + c, base + 2 * c);
    return;
  }
  if (scratch_.size() < 12 * c) scratch_ = io::AlignedBuffer(12 * c);
  float* base = scratch_.as<float>();
  fn(base, base + c, base + 2 * c);
  nvme_->wait(nvme_->write(seg_[k].seg, base));
}

void OptimizerStates::write_each(const UpdateFn& fn) {
  for (std::size_t k = 0; k < groups_.size(); ++k)
    write_group(k, [&](float* w, float* m, float* v) { fn(k, w, m, v); });
}

void OptimizerStates::read_each(const ReadFn& fn) {
  io::AlignedBuffer tmp;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const std::int64_t c = groups_[k].numel;
    const float* base;
    if (!seg_[k].nvme) {
      base = cpu_base(k);
    } else {
      if (tmp.size() < 12 * c) tmp = io::AlignedBuffer(12 * c);
      nvme_->wait(nvme_->read(seg_[k].seg, tmp.data()));
      base = tmp.as<float>();
    }
    fn(k, base, base + c, base + 2 * c);
  }
}

void OptimizerStates::load(const float* master, const float* m, const float* v) {
  const float* src[3] = {master, m, v};
  write_each([&](std::size_t k, float* mw, float* mm, float* vv) {
    const auto& g = groups_[k];
    float* dst[3] = {mw, mm, vv};
    for (int i = 0; i < 3; ++i) {
      if (src[i])
        std::memcpy(dst[i], src[i] + g.begin, sizeof(float) * g.numel);
      else
        std::memset(dst[i], 0, sizeof(float) * g.numel);
    }
  });
}

void OptimizerStates::save(float* master, float* m, float* v) {
  float* dst[3] = {master, m, v};
  read_each([&](std::size_t k, const float* mw, const float* mm, const float* vv) {
    const auto& g = groups_[k];
    const float* src[3] = {mw, mm, vv};
    for (int i = 0; i < 3; ++i)
      if (dst[i]) std::memcpy(dst[i] + g.begin, src[i], sizeof(float) * g.numel);
  });
}

}  // namespace zinf::offload
