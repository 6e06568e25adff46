// zinf::io — sequential bandwidth probe and the aio sweep.
#include "io/bench.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/units.h"
#include "io/aligned_buffer.h"
#include "io/file.h"
#include "io/uring_engine.h"

namespace zinf::io {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Removes the probe file however the benchmark ends.
struct Unlink {
  std::string path;
  ~Unlink() { ::unlink(path.c_str()); }
};

}  // namespace

BenchResult bench_sequential(const BenchOptions& o) {
  if (o.bytes < o.block_size)
    throw UsageError("benchmark size " + format_bytes(double(o.bytes)) + " is smaller than the block size " +
                         format_bytes(double(o.block_size)),
                     "use a benchmark size of at least one block (--bench-size-mb)");
  UringEngine engine(EngineOptions{o.block_size, o.queue_depth, false});
  const std::string path = o.dir + "/.zinf-bench." + std::to_string(::getpid()) + ".tmp";
  Unlink cleanup{path};
  File file = File::open(path, OpenMode::kCreate, o.direct);
  const std::int64_t total = round_up(o.bytes, kDirectAlignment);
  file.reserve(total);

  // One staging buffer of 2 x block_size x queue_depth (at least 8 MiB, at
  // most the file) is reused by every request: memory stays small for big
  // files, and all requests are queued at once so the pipeline never drains.
  const std::int64_t stage = std::min(total, std::max<std::int64_t>(8 * kMiB, 2 * o.block_size * o.queue_depth));
  AlignedBuffer buf(stage);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;  // splitmix64: incompressible bytes, cheap to make
  for (std::int64_t i = 0; i < buf.size() / 8; ++i) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    buf.as<std::uint64_t>()[i] = z ^ (z >> 31);
  }
  BenchResult r;
  r.bytes = total;
  r.direct = file.direct();
  r.registered = o.register_buffers && engine.register_buffer(buf.data(), buf.size());

  std::vector<std::uint32_t> crc(o.checksums ? static_cast<std::size_t>(total / kDirectAlignment) : 0);
  auto run = [&](Op op) {
    for (std::int64_t off = 0; off < total; off += stage) {
      Request req{op, &file, off, buf.data(), std::min(stage, total - off)};
      if (o.checksums) req.page_crc = crc.data() + off / kDirectAlignment;
      engine.submit(req);
    }
    engine.wait_all();
  };

  auto t0 = Clock::now();
  run(Op::kWrite);
  file.sync();
  r.write_seconds = seconds_since(t0);
  if (!file.direct()) ::posix_fadvise(file.fd(), 0, 0, POSIX_FADV_DONTNEED);  // read from the disk, not the cache
  // With checksums, concurrent reads land in the shared staging buffer, but every
  // request carries the same bytes at the same positions, so verification holds.
  t0 = Clock::now();
  run(Op::kRead);
  r.read_seconds = seconds_since(t0);
  r.write_gbps = double(total) / r.write_seconds / 1e9;
  r.read_gbps = double(total) / r.read_seconds / 1e9;
  if (r.registered) engine.unregister_buffer(buf.data());
  return r;
}

std::vector<std::int64_t> default_tune_block_sizes() { return {256 * kKiB, 1 * kMiB, 4 * kMiB}; }
std::vector<int> default_tune_queue_depths() { return {4, 8, 16, 32}; }

TuneResult tune(const BenchOptions& base, const std::vector<std::int64_t>& block_sizes,
                const std::vector<int>& queue_depths) {
  TuneResult t;
  auto score = [](const TunePoint& p) {
    return p.read_gbps > 0 && p.write_gbps > 0 ? 2.0 / (1.0 / p.read_gbps + 1.0 / p.write_gbps) : 0.0;
  };
  for (std::int64_t bs : block_sizes) {
    for (int qd : queue_depths) {
      BenchOptions o = base;
      o.block_size = bs;
      o.queue_depth = qd;
      o.bytes = std::max(base.bytes, bs);
      const BenchResult r = bench_sequential(o);
      t.points.push_back(TunePoint{bs, qd, r.write_gbps, r.read_gbps});
    }
  }
  double top = 0;
  for (const auto& p : t.points) top = std::max(top, score(p));
  bool have = false;
  for (const auto& p : t.points) {
    if (score(p) < 0.97 * top) continue;
    if (!have || p.block_size * p.queue_depth < t.best.block_size * t.best.queue_depth) t.best = p;
    have = true;
  }
  return t;
}

}  // namespace zinf::io
