// io: swap files hold what they are given, catch corruption, and clean up after the run.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/units.h"
#include "core/fs.h"
#include "io/aligned_buffer.h"
#include "io/bench.h"
#include "io/swap_file.h"
#include "io_test_util.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::io;
using zinf::test::random_bytes;
using zinf::test::TempDir;

using zinf::test::error_of;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("a swap directory per run and rank holds files named by what they hold, removed at the end") {
  TempDir root("zinf-swap");
  std::string path;
  {
    UringEngine engine(EngineOptions{64 * 1024, 4, false});
    SwapDir dir(root.path(), "run42", 3);
    path = dir.path();
    CHECK(path == root.path() + "/zinf-run42/rank3");
    CHECK(fs::is_directory(path));
    auto f = dir.create(engine, "optimizer.group003", 100000);
    CHECK(f->path() == path + "/optimizer.group003.swp");
    CHECK(std::filesystem::file_size(f->path()) == 102400);  // reserved, padded to 4096
    CHECK(contains(error_of([&] { dir.file_path("../escape"); }), "not allowed"));
    CHECK(contains(error_of([&] { dir.file_path(""); }), "not allowed"));
  }
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(root.path() + "/zinf-run42"));
}

TEST_CASE("swap files are kept when asked, and a leftover directory of the same run is emptied") {
  TempDir root("zinf-swap");
  UringEngine engine;
  {
    SwapDir dir(root.path(), "keepme", 0, /*keep=*/true);
    dir.create(engine, "params.block00", 4096);
  }
  CHECK(fs::exists(root.path() + "/zinf-keepme/rank0/params.block00.swp"));
  SwapDir again(root.path(), "keepme", 0);
  CHECK_FALSE(fs::exists(root.path() + "/zinf-keepme/rank0/params.block00.swp"));
}

TEST_CASE("tensors of odd sizes round-trip through a swap file at their slots") {
  TempDir root("zinf-swap");
  UringEngine engine(EngineOptions{16 * 1024, 8, false});
  SwapDir dir(root.path(), "rt", 0);
  const std::int64_t sizes[] = {3, 16383, 16385, 100001};
  std::int64_t total = 0;
  for (auto n : sizes) total += round_up(n, 16 * 1024);
  auto f = dir.create(engine, "flat", total);
  std::vector<Ticket> tickets;
  std::vector<std::vector<unsigned char>> src;
  std::int64_t off = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    src.push_back(random_bytes(static_cast<std::size_t>(sizes[i]), 100 + i));
    tickets.push_back(f->write(off, src.back().data(), sizes[i]));
    off += round_up(sizes[i], 16 * 1024);
  }
  for (Ticket t : tickets) engine.wait(t);
  off = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    AlignedBuffer back(sizes[i]);
    f->read_now(off, back.data(), sizes[i]);
    CHECK(std::memcmp(back.data(), src[i].data(), src[i].size()) == 0);
    off += round_up(sizes[i], 16 * 1024);
  }
}

TEST_CASE("a corrupted byte on disk is caught by the checksum, naming file and offset") {
  TempDir root("zinf-swap");
  UringEngine engine(EngineOptions{64 * 1024, 4, false});
  SwapDir dir(root.path(), "crc", 0);
  auto f = dir.create(engine, "optimizer.group000", 300000);
  const auto src = random_bytes(300000, 9);
  f->write_now(0, src.data(), 300000);
  AlignedBuffer back(300000);
  f->read_now(0, back.data(), 300000);  // clean read passes
  // Flip one byte in the third block behind the engine's back.
  const int fd = ::open(f->path().c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char byte = 0;
  REQUIRE(::pread(fd, &byte, 1, 2 * 65536 + 17) == 1);
  byte ^= 0x40;
  REQUIRE(::pwrite(fd, &byte, 1, 2 * 65536 + 17) == 1);
  ::fsync(fd);
  ::close(fd);
  const std::string e = error_of([&] { f->read_now(0, back.data(), 300000); });
  CHECK(contains(e, "checksum mismatch"));
  CHECK(contains(e, f->path()));
  CHECK(contains(e, "offset 131072"));
  CHECK(contains(e, "4096 bytes"));
  // Without checksums the same corruption goes unnoticed (the option is honest).
  SwapFileOptions off;
  off.checksums = false;
  auto g = dir.create(engine, "nocrc", 4096, off);
  g->write_now(0, src.data(), 4096);
  g->read_now(0, back.data(), 4096);
}

TEST_CASE("a swap file truncated behind the engine's back gives a short read, not garbage") {
  TempDir root("zinf-swap");
  UringEngine engine(EngineOptions{64 * 1024, 4, false});
  SwapDir dir(root.path(), "trunc", 0);
  auto f = dir.create(engine, "params", 200000);
  const auto src = random_bytes(200000, 1);
  f->write_now(0, src.data(), 200000);
  REQUIRE(::truncate(f->path().c_str(), 65536) == 0);
  AlignedBuffer back(200000);
  const std::string e = error_of([&] { f->read_now(0, back.data(), 200000); });
  CHECK(contains(e, "short read"));
  CHECK(contains(e, f->path()));
}

TEST_CASE("buffer and slot size disagreements are errors with the sizes, not aborts") {
  TempDir root("zinf-swap");
  UringEngine engine;
  SwapDir dir(root.path(), "sz", 0);
  auto f = dir.create(engine, "grads", 10000);
  AlignedBuffer buf(20000);
  std::string e = error_of([&] { f->read(0, buf.data(), 20000); });
  CHECK(contains(e, "read of 20000 bytes at offset 0 does not fit swap file"));
  CHECK(contains(e, "of 10000 bytes"));
  e = error_of([&] { f->write(8192, buf.data(), 4096); });
  CHECK(contains(e, "offset 8192"));
  e = error_of([&] { f->write(100, buf.data(), 10); });
  CHECK(contains(e, "not a multiple of 4096"));
  CHECK(contains(error_of([&] { dir.create(engine, "empty", 0); }), "positive"));
}

TEST_CASE("a swap file that does not fit is refused at creation with free and needed space") {
  TempDir root("zinf-swap");
  UringEngine engine;
  SwapDir dir(root.path(), "huge", 0);
  // An exabyte does not fit anywhere: fallocate fails up front (EFBIG or ENOSPC).
  const std::string e = error_of([&] { dir.create(engine, "too.big", std::int64_t(1) << 60); });
  CHECK(contains(e, "cannot reserve"));
  CHECK(contains(e, "free"));
  CHECK_FALSE(fs::exists(dir.file_path("too.big")));  // no empty file left behind
}

TEST_CASE("the bandwidth probe measures both directions and leaves nothing behind") {
  TempDir root("zinf-swap");
  BenchOptions o;
  o.dir = root.path();
  o.bytes = 8 << 20;
  o.block_size = 256 * 1024;
  o.queue_depth = 4;
  o.checksums = true;
  const BenchResult r = bench_sequential(o);
  CHECK(r.write_gbps > 0);
  CHECK(r.read_gbps > 0);
  CHECK(r.bytes == (8 << 20));
  CHECK(r.direct);
  CHECK(std::filesystem::is_empty(root.path()));
  o.bytes = 4096;
  CHECK(contains(error_of([&] { bench_sequential(o); }), "smaller than the block size"));
}

TEST_CASE("tuning sweeps every block size and queue depth and picks a measured point") {
  TempDir root("zinf-swap");
  BenchOptions o;
  o.dir = root.path();
  o.bytes = 2 << 20;
  const TuneResult t = tune(o, {64 * 1024, 256 * 1024}, {2, 4});
  REQUIRE(t.points.size() == 4);
  CHECK(t.points[0].block_size == 64 * 1024);
  CHECK(t.points[3].queue_depth == 4);
  bool found = false;
  for (const auto& p : t.points) found |= p.block_size == t.best.block_size && p.queue_depth == t.best.queue_depth;
  CHECK(found);
}
