// bench/io_bench — sequential NVMe bandwidth of zinf's engine, and of a plain
// liburing reference loop, with the same file size, block size, queue depth
// and O_DIRECT, for comparison with fio (tools/bench_io.sh runs them side by side).
// Implements: `zinf_io_bench --dir D --size-mb N --bs BYTES --qd N [--runs R]
// [--mode engine|reference|crc] [--no-register] [--checksums]`: one line of
// results per run, "mode write_gbps W read_gbps R cpu_s_per_gb C".
#include <fcntl.h>
#include <sys/resource.h>
#include <liburing.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/aligned_buffer.h"
#include "io/bench.h"
#include "io/checksum.h"

namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- reference
// The simplest correct io_uring loop: one buffer per slot, refill on each
// completion. What fio's io_uring engine does, minus its options.
double reference_pass(int fd, bool write, std::int64_t bytes, std::int64_t bs, int qd) {
  io_uring ring;
  if (io_uring_queue_init(static_cast<unsigned>(qd), &ring, 0) != 0) throw std::runtime_error("io_uring_queue_init");
  zinf::io::AlignedBuffer buf(bs * qd);
  std::memset(buf.data(), 0x5A, static_cast<std::size_t>(buf.size()));
  std::int64_t next = 0, done = 0;
  int inflight = 0;
  const auto t0 = Clock::now();
  auto queue = [&](int slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    char* mem = buf.as<char>() + slot * bs;
    if (write)
      io_uring_prep_write(sqe, fd, mem, static_cast<unsigned>(bs), static_cast<__u64>(next));
    else
      io_uring_prep_read(sqe, fd, mem, static_cast<unsigned>(bs), static_cast<__u64>(next));
    io_uring_sqe_set_data64(sqe, static_cast<__u64>(slot));
    next += bs;
    ++inflight;
  };
  for (int s = 0; s < qd && next < bytes; ++s) queue(s);
  while (inflight > 0) {
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    unsigned head, n = 0;
    std::vector<int> free_slots;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->res != bs) throw std::runtime_error("reference I/O failed: res " + std::to_string(cqe->res));
      free_slots.push_back(static_cast<int>(io_uring_cqe_get_data64(cqe)));
      ++n;
    }
    io_uring_cq_advance(&ring, n);
    inflight -= static_cast<int>(n);
    done += n * bs;
    for (int s : free_slots)
      if (next < bytes) queue(s);
  }
  if (write) fdatasync(fd);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  io_uring_queue_exit(&ring);
  return double(done) / secs / 1e9;
}

void reference(const std::string& dir, std::int64_t bytes, std::int64_t bs, int qd, double& w, double& r) {
  const std::string path = dir + "/.zinf-ref-bench.tmp";
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_DIRECT, 0600);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  if (::fallocate(fd, 0, 0, bytes) != 0) throw std::runtime_error("fallocate: " + std::string(std::strerror(errno)));
  w = reference_pass(fd, true, bytes, bs, qd);
  r = reference_pass(fd, false, bytes, bs, qd);
  ::close(fd);
  ::unlink(path.c_str());
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// CRC32C throughput, hardware path vs table code, over 1 MiB pieces of `bytes`.
void crc_speed(std::int64_t bytes) {
  zinf::io::AlignedBuffer buf(bytes);
  for (std::int64_t i = 0; i < buf.size(); ++i) buf.as<unsigned char>()[i] = static_cast<unsigned char>(i * 131);
  auto measure = [&](auto fn) {
    const auto t0 = Clock::now();
    std::uint32_t c = 0;
    for (std::int64_t o = 0; o < buf.size(); o += 1 << 20) c ^= fn(buf.as<unsigned char>() + o, std::size_t(1) << 20);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    return std::make_pair(double(buf.size()) / s / 1e9, c);
  };
  const auto hw = measure([](const void* p, std::size_t n) { return zinf::io::crc32c(p, n); });
  const auto sw = measure([](const void* p, std::size_t n) { return zinf::io::crc32c_portable(p, n); });
  std::printf("crc32c %s %.2f GB/s, table %.2f GB/s, agree %s\n",
              zinf::io::crc32c_hardware() ? "sse4.2" : "table", hw.first, sw.first, hw.second == sw.second ? "yes" : "NO");
  // Per 4096-byte page, as swap files keep them: one crc32c call per page vs
  // crc32c_pages (three pages interleaved).
  constexpr std::size_t kPage = zinf::io::kCrcPageBytes;
  std::vector<std::uint32_t> out((std::size_t(1) << 20) / kPage);
  const auto each = measure([&](const void* p, std::size_t n) {
    for (std::size_t i = 0; i < n / kPage; ++i) out[i] = zinf::io::crc32c(static_cast<const char*>(p) + i * kPage, kPage);
    return out[0] ^ out.back();
  });
  const auto pages = measure([&](const void* p, std::size_t n) {
    zinf::io::crc32c_pages(p, n / kPage, out.data());
    return out[0] ^ out.back();
  });
  std::printf("crc32c per 4096-byte page: one call each %.2f GB/s, crc32c_pages %.2f GB/s, agree %s\n", each.first,
              pages.first, each.second == pages.second ? "yes" : "NO");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = ".", mode = "engine";
  std::int64_t size_mb = 1024, bs = 1 << 20;
  int qd = 8, runs = 3;
  bool reg = true, checksums = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--dir") dir = next();
    else if (a == "--size-mb") size_mb = std::atoll(next().c_str());
    else if (a == "--bs") bs = std::atoll(next().c_str());
    else if (a == "--qd") qd = std::atoi(next().c_str());
    else if (a == "--runs") runs = std::atoi(next().c_str());
    else if (a == "--mode") mode = next();
    else if (a == "--no-register") reg = false;
    else if (a == "--checksums") checksums = true;
    else {
      std::fprintf(stderr,
                   "usage: zinf_io_bench --dir D [--size-mb 1024] [--bs 1048576] [--qd 8] [--runs 3]\n"
                   "                     [--mode engine|reference|crc] [--no-register] [--checksums]\n");
      return 2;
    }
  }
  try {
    for (int k = 0; k < runs; ++k) {
      double w = 0, r = 0;
      const double cpu0 = cpu_seconds();
      if (mode == "crc") {
        crc_speed(size_mb << 20);
        continue;
      }
      if (mode == "reference") {
        reference(dir, size_mb << 20, bs, qd, w, r);
      } else {
        zinf::io::BenchOptions o;
        o.dir = dir;
        o.bytes = size_mb << 20;
        o.block_size = bs;
        o.queue_depth = qd;
        o.register_buffers = reg;
        o.checksums = checksums;
        const auto res = zinf::io::bench_sequential(o);
        w = res.write_gbps;
        r = res.read_gbps;
      }
      // CPU seconds (user + sys, all threads) per GB moved, write and read together.
      const double cpu_per_gb = (cpu_seconds() - cpu0) / (2.0 * double(size_mb << 20) / 1e9);
      std::printf("%s write_gbps %.3f read_gbps %.3f cpu_s_per_gb %.4f\n", mode.c_str(), w, r, cpu_per_gb);
      std::fflush(stdout);
    }
  } catch (const zinf::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
