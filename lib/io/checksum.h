// zinf::io — checksums for swap data.
// Implements: CRC32C (Castagnoli, the checksum of ext4, iSCSI and NVMe), with
// the SSE4.2 instruction where the CPU has it and a table otherwise. Used per
// aio.block_size block of swap files to catch data that comes back different
// from what was written.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zinf::io {

// CRC32C of `bytes` bytes at `data`, continuing from `crc` (0 to start).
// crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t bytes, std::uint32_t crc = 0);

// The same value from the table-driven code alone (for tests and benchmarks).
std::uint32_t crc32c_portable(const void* data, std::size_t bytes, std::uint32_t crc = 0);

// True when crc32c uses the hardware instruction on this CPU.
bool crc32c_hardware();

}  // namespace zinf::io
