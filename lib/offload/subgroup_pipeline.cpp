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

namespace {
std::vector<std::int64_t> segment_bytes(const std::vector<SubGroup>& groups) {
  std::vector<std::int64_t> bytes;
  for (const auto& g : groups) bytes.push_back(3 * 4 * g.numel);
  return bytes;
}
}  // namespace

OptimizerStates::OptimizerStates(Tier tier, std::vector<SubGroup> groups, const NvmeBackend& backend, bool pin)
    : groups_(std::move(groups)),
      store_(std::make_unique<FlatStore>("optimizer", tier, segment_bytes(groups_), backend, pin)) {
  if (tier == Tier::kNvme) {
    std::int64_t largest = 1;
    for (const auto& g : groups_) largest = std::max(largest, 12 * g.numel);
    for (int i = 0; i < 3; ++i) ring_.emplace_back(largest, io::kDirectAlignment, pin);
  }
}

std::int64_t OptimizerStates::host_buffer_bytes() const {
  std::int64_t t = store_->resident_host_bytes();
  for (const auto& b : ring_) t += b.size();
  return t;
}

void OptimizerStates::for_each(const UpdateFn& fn, std::vector<std::string>* trace) {
  auto note = [&](const char* what, std::size_t k) {
    if (trace) trace->push_back(std::string(what) + " " + std::to_string(k));
  };
  const std::size_t n = groups_.size();
  if (store_->tier() == Tier::kCpu) {
    for (std::size_t k = 0; k < n; ++k) {
      float* base = reinterpret_cast<float*>(store_->host(k));
      const std::int64_t c = groups_[k].numel;
      note("update", k);
      fn(k, base, base + c, base + 2 * c);
    }
    return;
  }
  // NVMe: buffer k % 3 holds sub-group k from its read until its write lands.
  std::vector<io::Ticket> reads(n, 0), writes(n, 0);
  std::vector<bool> read_waited(n, false), write_waited(n, false);
  auto finish_write = [&](std::size_t k) {
    if (!write_waited[k]) {
      store_->wait(writes[k]);
      write_waited[k] = true;
      note("written", k);
    }
  };
  try {
    if (n > 0) {
      note("read", 0);
      reads[0] = store_->read(0, ring_[0].data());
    }
    for (std::size_t k = 0; k < n; ++k) {
      if (k + 1 < n) {
        if (k + 1 >= 3) finish_write(k + 1 - 3);  // its buffer is free again
        note("read", k + 1);
        reads[k + 1] = store_->read(k + 1, ring_[(k + 1) % 3].data());
      }
      read_waited[k] = true;
      store_->wait(reads[k]);
      float* base = ring_[k % 3].as<float>();
      const std::int64_t c = groups_[k].numel;
      note("update", k);
      fn(k, base, base + c, base + 2 * c);
      note("write", k);
      writes[k] = store_->write(k, base);
    }
    for (std::size_t k = 0; k < n; ++k) finish_write(k);
  } catch (...) {
    // Leave no request in flight on buffers we own.
    for (std::size_t k = 0; k < n; ++k) {
      try {
        if (reads[k] && !read_waited[k]) store_->wait(reads[k]);
      } catch (...) {
      }
      try {
        if (writes[k] && !write_waited[k]) store_->wait(writes[k]);
      } catch (...) {
      }
    }
    throw;
  }
}

void OptimizerStates::write_each(const UpdateFn& fn) {
  io::AlignedBuffer tmp;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const std::int64_t c = groups_[k].numel;
    float* base;
    if (store_->tier() == Tier::kCpu) {
      base = reinterpret_cast<float*>(store_->host(k));
    } else {
      if (tmp.size() < 12 * c) tmp = io::AlignedBuffer(12 * c);
      base = tmp.as<float>();
    }
    fn(k, base, base + c, base + 2 * c);
    store_->wait(store_->write(k, base));
  }
}

void OptimizerStates::read_each(const ReadFn& fn) {
  io::AlignedBuffer tmp;
  for (std::size_t k = 0; k < groups_.size(); ++k) {
    const std::int64_t c = groups_[k].numel;
    const float* base;
    if (store_->tier() == Tier::kCpu) {
      base = reinterpret_cast<const float*>(store_->host(k));
    } else {
      if (tmp.size() < 12 * c) tmp = io::AlignedBuffer(12 * c);
      store_->wait(store_->read(k, tmp.data()));
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
