// zinf::offload — flat buffers at their home tier.
// Implements: FlatStore, a list of segments (one per block or sub-group) of
// raw bytes whose home is pinned CPU memory (one aligned buffer, segments
// back to back at 64-byte offsets) or NVMe (one io::SwapFile in the run's
// SwapDir, segments at 4096-byte offsets, space reserved at construction so a
// disk that cannot hold the run fails at start). Reads and writes of a
// segment are asynchronous on NVMe (io_uring) and immediate on CPU; both
// return a ticket to wait on, so callers write one pipeline for both tiers.
// Counters say how many bytes went to and from NVMe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/swap_file.h"
#include "io/uring_engine.h"
#include "core/tier.h"

namespace zinf::offload {

// Where NVMe stores put their swap files. Both must outlive the stores.
struct NvmeBackend {
  io::UringEngine* engine = nullptr;
  const io::SwapDir* dir = nullptr;
  io::SwapFileOptions file_options;
};

class FlatStore {
 public:
  // `name` names the swap file ("params", "optimizer"); [A-Za-z0-9._-].
  // tier kCpu: `pin` page-locks the buffer (CUDA builds). tier kNvme: needs
  // backend.engine and backend.dir. kDevice is not a FlatStore's tier.
  FlatStore(std::string name, Tier tier, const std::vector<std::int64_t>& segment_bytes,
            const NvmeBackend& backend = {}, bool pin = false);
  FlatStore(const FlatStore&) = delete;
  FlatStore& operator=(const FlatStore&) = delete;

  const std::string& name() const { return name_; }
  Tier tier() const { return tier_; }
  std::size_t size() const { return bytes_.size(); }
  std::int64_t bytes(std::size_t seg) const { return bytes_.at(seg); }
  std::int64_t total_bytes() const;         // payload bytes of all segments
  std::int64_t resident_host_bytes() const; // host memory this store holds

  // kCpu only: the segment's memory (throws for kNvme).
  std::byte* host(std::size_t seg) const;

  // Copies the segment into / out of host memory `buf` (bytes(seg) bytes).
  // kNvme: asynchronous, wait() before touching buf; kCpu: done on return
  // (the ticket is 0). Callers must not overlap a read and a write of the
  // same segment.
  io::Ticket read(std::size_t seg, void* buf);
  io::Ticket write(std::size_t seg, const void* buf);
  // Bytes [offset, offset + bytes) of the segment; on NVMe `offset` is a
  // multiple of 4096 and, unless the piece ends the segment, so is `bytes`
  // (O_DIRECT rounds the length up), so pieces of one segment never overlap.
  io::Ticket read(std::size_t seg, std::int64_t offset, std::int64_t bytes, void* buf);
  io::Ticket write(std::size_t seg, std::int64_t offset, std::int64_t bytes, const void* buf);
  void wait(io::Ticket ticket);

  std::int64_t nvme_read_bytes() const { return nvme_read_.load(); }
  std::int64_t nvme_write_bytes() const { return nvme_write_.load(); }
  std::string file_path() const;  // "" for kCpu
  std::int64_t reserved_bytes() const;  // bytes reserved on disk (kNvme), 0 for kCpu

 private:
  void check_piece(const char* what, std::size_t seg, std::int64_t offset, std::int64_t bytes) const;
  std::string name_;
  Tier tier_;
  std::vector<std::int64_t> bytes_;    // [segments] payload bytes
  std::vector<std::int64_t> offset_;   // [segments] bytes into the host buffer / swap file
  io::AlignedBuffer host_;             // kCpu
  NvmeBackend backend_;
  std::unique_ptr<io::SwapFile> file_; // kNvme
  std::atomic<std::int64_t> nvme_read_{0}, nvme_write_{0};
};

}  // namespace zinf::offload
