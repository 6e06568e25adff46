// zinf::core — pieces of the flat fp32 training state, passed by range.
// Implements: FlatRange (a run of elements of the model's flat parameter
// vector, the order of model::model_layout) and the two callbacks through which
// the training state moves between its owner and a file without ever being
// materialised whole: a StateSink receives pieces (checkpoint save, model
// export), a StateSource fills them (resume). Whoever owns the state (the
// ZeRO engine, a rank's optimizer shard, the stage-none trainer) streams it in
// pieces the size of its own buffers, so memory stays bounded by those
// buffers, never by the model. Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace zinf {

struct FlatRange {
  std::int64_t begin = 0;  // elements into the flat parameter vector
  std::int64_t count = 0;  // elements
  std::int64_t end() const { return begin + count; }
};

// Receives [count] fp32 values of each of master weights, Adam m and Adam v
// for `range`. Pieces arrive in increasing `begin` order and never overlap;
// pointers are valid only during the call.
using StateSink = std::function<void(const FlatRange& range, const float* master, const float* m, const float* v)>;

// Fills [count] fp32 values of master weights, m and v for `range` (a null
// pointer: that tensor is not wanted). Called for any ranges the state's
// owner holds, in increasing order.
using StateSource = std::function<void(const FlatRange& range, float* master, float* m, float* v)>;

// The parts of `ranges` (sorted, disjoint) that lie inside `window`, shifted
// so that window.begin is element 0: a model-wide list of ranges seen from
// one rank's shard or one optimizer sub-group.
inline std::vector<FlatRange> clip_ranges(const std::vector<FlatRange>& ranges, const FlatRange& window) {
  std::vector<FlatRange> out;
  for (const auto& r : ranges) {
    const std::int64_t b = r.begin > window.begin ? r.begin : window.begin;
    const std::int64_t e = r.end() < window.end() ? r.end() : window.end();
    if (b < e) out.push_back({b - window.begin, e - b});
  }
  return out;
}

// The elements of [0, n) outside `ranges` (sorted, disjoint), as sorted runs.
inline std::vector<FlatRange> complement_ranges(const std::vector<FlatRange>& ranges, std::int64_t n) {
  std::vector<FlatRange> out;
  std::int64_t at = 0;
  for (const auto& r : ranges) {
    if (r.begin > at) out.push_back({at, (r.begin < n ? r.begin : n) - at});
    if (r.end() > at) at = r.end();
    if (at >= n) break;
  }
  if (at < n) out.push_back({at, n - at});
  return out;
}

// Total elements of `ranges`.
inline std::int64_t total_count(const std::vector<FlatRange>& ranges) {
  std::int64_t n = 0;
  for (const auto& r : ranges) n += r.count;
  return n;
}

}  // namespace zinf
