// zinf::io — bandwidth probe.
// Implements: sequential write and read bandwidth of a directory through the
// UringEngine with a given block size and queue depth (what `zinf
// validate-nvme --bench` reports, and what tools/bench_io.sh compares with
// fio), and a sweep over block sizes and queue depths that picks the aio
// settings to use (`--tune`, DeepSpeed's ds_nvme_tune).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zinf::io {

struct BenchOptions {
  std::string dir;                      // existing, writable directory; a temporary file goes there
  std::int64_t bytes = std::int64_t(1) << 30;  // file size, bytes
  std::int64_t block_size = 1 << 20;    // bytes per io_uring operation
  int queue_depth = 8;                  // operations in flight
  bool direct = true;                   // O_DIRECT (buffered when the filesystem refuses)
  bool register_buffers = true;         // io_uring fixed buffers
  bool checksums = false;               // CRC32C on write, verified on read
};

struct BenchResult {
  double write_gbps = 0;     // 1e9 bytes/s: first submit to fdatasync done
  double read_gbps = 0;      // 1e9 bytes/s: first submit to last completion (cold: O_DIRECT or cache dropped)
  double write_seconds = 0;
  double read_seconds = 0;
  std::int64_t bytes = 0;
  bool direct = true;        // false: O_DIRECT was refused and buffered I/O was measured
  bool registered = false;   // fixed buffers were in use
};

// Writes then reads a `bytes` file in `dir`, and removes it. Throws zinf::Error
// (naming the file) when the directory cannot take the file.
BenchResult bench_sequential(const BenchOptions& options);

struct TunePoint {
  std::int64_t block_size = 0;  // bytes
  int queue_depth = 0;
  double write_gbps = 0, read_gbps = 0;
};

struct TuneResult {
  std::vector<TunePoint> points;  // in sweep order
  TunePoint best;  // highest harmonic mean of read and write; within 3% of it, the least memory (bs*qd)
};

// Runs bench_sequential for every block size x queue depth.
TuneResult tune(const BenchOptions& base, const std::vector<std::int64_t>& block_sizes,
                const std::vector<int>& queue_depths);

// The sweep --tune uses by default: 256 KiB, 1 MiB, 4 MiB x 4, 8, 16, 32.
std::vector<std::int64_t> default_tune_block_sizes();
std::vector<int> default_tune_queue_depths();

}  // namespace zinf::io
