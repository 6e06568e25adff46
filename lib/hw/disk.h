// zinf::hw — the disk behind a path.
// Implements: DiskInfo for a directory: filesystem type (from mountinfo, or
// the statfs magic number), mount point and source, the block device behind
// it (major:minor -> /sys/dev/block, walked up to the whole disk for
// partitions), whether it is rotational, its logical block size, and free and
// total space. Used by `zinf validate-nvme` and `zinf report`.
#pragma once

#include <cstdint>
#include <string>

namespace zinf::hw {

struct DiskInfo {
  std::string path;                   // the path asked about, or its nearest existing ancestor
  std::string filesystem;             // "ext4", "xfs", "tmpfs", ...; "unknown" when not found
  std::string mount_point;            // "/", "/mnt/nvme"
  std::string mount_source;           // "/dev/nvme0n1p2", "tmpfs", "server:/export"
  std::string block_device;           // whole-disk kernel name ("nvme0n1", "sda"); empty when none
  int rotational = -1;                // 1 spinning disk, 0 solid state, -1 unknown (no block device)
  std::int64_t logical_block_size = 0;  // bytes; 0 unknown
  std::int64_t free_bytes = 0;        // available to an unprivileged writer
  std::int64_t total_bytes = 0;
};

// Facts about the filesystem and disk holding `path` (which need not exist:
// its nearest existing ancestor is examined). Never throws for missing
// facts; throws zinf::Error when nothing at all can be stat'ed.
DiskInfo describe_disk(const std::string& path);

// "ext4" for EXT4_SUPER_MAGIC, ...; "unknown (0x...)" otherwise.
std::string filesystem_name(std::int64_t statfs_magic);

}  // namespace zinf::hw
