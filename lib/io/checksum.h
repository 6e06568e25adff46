// zinf::io — checksums for swap data.
// Implements: CRC32C (Castagnoli, the checksum of ext4, iSCSI and NVMe), with
// the SSE4.2 instruction where the CPU has it and a table otherwise, for one
// span or for a run of 4096-byte pages at once (three pages interleaved on the
// hardware path). Swap files keep one per page to catch data that comes back
// different from what was written.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zinf::io {

// CRC32C of `bytes` bytes at `data`, continuing from `crc` (0 to start).
// crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(const void* data, std::size_t bytes, std::uint32_t crc = 0);

// Bytes per page of crc32c_pages (the O_DIRECT unit, io::kDirectAlignment).
constexpr std::size_t kCrcPageBytes = 4096;

// out[i] = crc32c of page i, bytes [i*4096, (i+1)*4096) at `data`, i < pages.
void crc32c_pages(const void* data, std::size_t pages, std::uint32_t* out);

// crc32c continued over `zeros` zero bytes: crc32c_zeros(crc32c(a, n), z) is
// the CRC of `a` followed by z zero bytes.
std::uint32_t crc32c_zeros(std::size_t zeros, std::uint32_t crc = 0);

// The same value from the table-driven code alone (for tests and benchmarks).
std::uint32_t crc32c_portable(const void* data, std::size_t bytes, std::uint32_t crc = 0);

// True when crc32c uses the hardware instruction on this CPU.
bool crc32c_hardware();

}  // namespace zinf::io
