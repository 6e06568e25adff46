// hw: the disk behind a path is named correctly (filesystem, device, free space).
#include <doctest/doctest.h>

#include "core/error.h"
#include "hw/disk.h"
#include "support/test_util.h"

using namespace zinf;

TEST_CASE("statfs magic numbers map to filesystem names") {
  CHECK(hw::filesystem_name(0xEF53) == "ext4");
  CHECK(hw::filesystem_name(0x58465342) == "xfs");
  CHECK(hw::filesystem_name(0x01021994) == "tmpfs");
  CHECK(hw::filesystem_name(0x12345) == "unknown (0x12345)");
}

TEST_CASE("a path in memory has a filesystem but no block device") {
  const hw::DiskInfo d = hw::describe_disk("/dev/shm");
  CHECK(d.filesystem == "tmpfs");
  CHECK(d.mount_point == "/dev/shm");
  CHECK(d.block_device.empty());
  CHECK(d.rotational == -1);
  CHECK(d.total_bytes > 0);
}

TEST_CASE("a path that does not exist yet is described by its nearest existing ancestor") {
  zinf::test::TempDir dir("zinf-disk");
  const hw::DiskInfo d = hw::describe_disk(dir.path() + "/not/yet/there");
  CHECK(d.path == dir.path());
  CHECK(d.free_bytes > 0);
  CHECK(d.free_bytes <= d.total_bytes);
  CHECK(!d.filesystem.empty());
  CHECK(d.filesystem != "unknown");
  // A disk-backed temp dir has a block device with a known rotational flag and block size.
  if (!d.block_device.empty()) {
    CHECK(d.rotational >= 0);
    CHECK(d.logical_block_size >= 512);
  }
}
