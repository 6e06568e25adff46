// zinf::offload — optimizer states in sub-groups.
// Implements: OptimizerStates, the fp32 master weights and Adam moments of a
// flat parameter range cut into sub-groups of at most sub_group_size
// elements (never across a block boundary), each sub-group one segment
// [master | m | v] of a FlatStore on CPU or NVMe — or, with NVMe and
// max_in_cpu, the first sub-groups in CPU memory and the rest on NVMe; and
// for_each(), the pipeline that hands sub-group k to an update function
// while the next NVMe sub-group is read and the previous one written back
// (three rotating pinned buffers; CPU sub-groups are updated in place, no
// copies), optionally reading each sub-group's gradient from a FlatStore of
// gradient segments (gradients on NVMe) alongside. auto_sub_group_size()
// picks the size DeepSpeed's "auto" means here: what fits a host budget.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "offload/flat_store.h"

namespace zinf::offload {

struct SubGroup {
  std::size_t block = 0;      // block it belongs to
  std::int64_t begin = 0;     // elements into the flat parameter range
  std::int64_t numel = 0;     // elements
};

// Cuts blocks (their element counts, in order) into sub-groups of at most
// `sub_group_size` elements (<= 0: one sub-group per block).
std::vector<SubGroup> make_sub_groups(const std::vector<std::int64_t>& block_numels, std::int64_t sub_group_size);

// The largest sub-group size whose three pipeline buffers (16 B per element:
// master, m, v, and the gradient) fit `host_budget_bytes`, clamped to
// [1M, 1G] elements, as DeepSpeed's default is 1e9.
std::int64_t auto_sub_group_size(std::int64_t host_budget_bytes);

class OptimizerStates {
 public:
  // tier kNvme with max_in_cpu > 0: sub-groups are kept in CPU memory, in
  // order, while their elements add up to at most max_in_cpu; the rest live
  // on NVMe.
  OptimizerStates(Tier tier, std::vector<SubGroup> groups, const NvmeBackend& backend = {}, bool pin = false,
                  std::int64_t max_in_cpu = 0);

  const std::vector<SubGroup>& groups() const { return groups_; }
  Tier tier() const { return tier_; }
  Tier tier_of(std::size_t k) const { return seg_[k].nvme ? Tier::kNvme : Tier::kCpu; }
  std::int64_t nvme_read_bytes() const;
  std::int64_t nvme_write_bytes() const;
  std::int64_t nvme_reserved_bytes() const;  // swap space held on disk

  // fn(k, master, m, v): update sub-group k in place ([groups()[k].numel]
  // fp32 each). On NVMe, reads of k+1 and write-back of k-1 are in flight
  // while fn(k) runs. `trace` (tests) records "read k", "update k", "write k",
  // "written k" in the order they happen.
  using UpdateFn = std::function<void(std::size_t k, float* master, float* m, float* v)>;
  void for_each(const UpdateFn& fn, std::vector<std::string>* trace = nullptr);
  // As for_each, with grad = sub-group k's segment of `grads` ([numel] fp32,
  // one segment per sub-group, read with the state), or null without it.
  using StepFn = std::function<void(std::size_t k, float* master, float* m, float* v, const float* grad)>;
  void for_each(const StepFn& fn, FlatStore* grads, std::vector<std::string>* trace = nullptr);

  // Streaming access (checkpoints): read_each hands sub-group k's state to
  // fn in order, read-only; write_each lets fn fill sub-group k, then stores
  // it. On NVMe both go through one buffer of the largest sub-group.
  using ReadFn = std::function<void(std::size_t k, const float* master, const float* m, const float* v)>;
  void read_each(const ReadFn& fn);
  void write_each(const UpdateFn& fn);
  // fn fills sub-group k's master, m and v ([numel] each), which are then stored.
  void write_group(std::size_t k, const std::function<void(float* master, float* m, float* v)>& fn);

  // Whole-state access for initialisation: copies between the store and flat
  // fp32 arrays [total numel] (any may be null: zeros / not wanted).
  void load(const float* master, const float* m, const float* v);
  void save(float* master, float* m, float* v);

  std::int64_t host_buffer_bytes() const;  // pipeline buffers (NVMe) or the store (CPU)

 private:
  struct Place {
    bool nvme = false;   // which store holds the sub-group
    std::size_t seg = 0; // its segment there
  };
  float* cpu_base(std::size_t k) const;
  Tier tier_;
  std::vector<SubGroup> groups_;
  std::vector<Place> seg_;                    // [groups]
  std::unique_ptr<FlatStore> cpu_, nvme_;     // either may be null
  std::vector<io::AlignedBuffer> ring_;       // [3] NVMe pipeline buffers: state, then gradient
  io::AlignedBuffer scratch_;                 // write_group's buffer for NVMe sub-groups
  std::int64_t ring_numel_ = 0;               // elements per ring buffer's sub-group
  std::int64_t grad_offset_ = 0;              // bytes: where a ring buffer's gradient starts
};

}  // namespace zinf::offload
