// io: the io_uring engine moves bytes exactly, concurrently, and fails loudly.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "core/units.h"
#include "io/aligned_buffer.h"
#include "io/checksum.h"
#include "io/file.h"
#include "io/uring_engine.h"
#include "io_test_util.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::io;
using zinf::test::random_bytes;
using zinf::test::ScopedFault;
using zinf::test::ScopedMount;
using zinf::test::TempDir;

using zinf::test::error_of;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("crc32c matches the Castagnoli check value and is incremental") {
  const char* s = "123456789";
  CHECK(crc32c(s, 9) == 0xE3069283u);
  CHECK(crc32c(s + 4, 5, crc32c(s, 4)) == 0xE3069283u);
  CHECK(crc32c(s, 0) == 0u);
  const auto data = random_bytes(100003, 7);
  const std::uint32_t whole = crc32c(data.data(), data.size());
  CHECK(crc32c(data.data() + 777, data.size() - 777, crc32c(data.data(), 777)) == whole);
}

TEST_CASE("the hardware crc32c (three interleaved streams) agrees with the table code at every span length") {
  CHECK(crc32c_portable("123456789", 9) == 0xE3069283u);
  if (!crc32c_hardware()) MESSAGE("no SSE4.2 here: both sides are the table code");
  const auto data = random_bytes(3 * 8192 * 2 + 3 * 256 + 77, 13);
  const std::size_t lengths[] = {0, 1, 7, 8, 9, 255, 767, 768, 769, 3 * 256 + 8, 24575, 24576, 24577,
                                 3 * 8192 + 3 * 256 + 15, data.size()};
  for (std::size_t n : lengths) {
    for (std::size_t misalign : {0, 1, 3}) {
      if (n + misalign > data.size()) continue;
      CAPTURE(n);
      CAPTURE(misalign);
      CHECK(crc32c(data.data() + misalign, n, 0x1234u) == crc32c_portable(data.data() + misalign, n, 0x1234u));
    }
  }
}

TEST_CASE("page crc32c (three pages interleaved) equals crc32c of each page, and zero runs extend a crc") {
  const auto data = random_bytes(8 * kCrcPageBytes + 3, 21);
  for (std::size_t pages = 0; pages <= 8; ++pages) {
    for (std::size_t misalign : {0, 3}) {
      CAPTURE(pages);
      CAPTURE(misalign);
      std::vector<std::uint32_t> out(pages + 1, 0xDEADBEEFu);
      crc32c_pages(data.data() + misalign, pages, out.data());
      for (std::size_t i = 0; i < pages; ++i)
        CHECK(out[i] == crc32c(data.data() + misalign + i * kCrcPageBytes, kCrcPageBytes));
      CHECK(out[pages] == 0xDEADBEEFu);  // writes exactly `pages` values
    }
  }
  const std::vector<unsigned char> zeros(3 * kCrcPageBytes + 5, 0);
  for (std::size_t n : {std::size_t(0), std::size_t(1), kCrcPageBytes - 1, kCrcPageBytes, zeros.size()}) {
    CAPTURE(n);
    CHECK(crc32c_zeros(n) == crc32c(zeros.data(), n));
    CHECK(crc32c_zeros(n, crc32c(data.data(), 100)) ==
          crc32c(zeros.data(), n, crc32c(data.data(), 100)));
  }
}

TEST_CASE("aligned buffers round their size up to the alignment and start aligned, zeroed") {
  AlignedBuffer b(1000);
  CHECK(b.size() == 4096);
  CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == 0);
  CHECK(b.as<unsigned char>()[4095] == 0);
  AlignedBuffer moved = std::move(b);
  CHECK(b.empty());
  CHECK(moved.size() == 4096);
  CHECK_THROWS_AS(AlignedBuffer(0), Error);
  CHECK(contains(error_of([] { AlignedBuffer(64, 100); }), "power of two"));
}

TEST_CASE("engine options out of range are usage errors naming the allowed values") {
  CHECK(contains(error_of([] { UringEngine e(EngineOptions{1000, 8, false}); }), "multiple of 4096"));
  CHECK(contains(error_of([] { UringEngine e(EngineOptions{4096, 0, false}); }), "1..1024"));
  CHECK(contains(error_of([] { UringEngine e(EngineOptions{4096, 2000, false}); }), "1..1024"));
}

TEST_CASE("random data of odd sizes round-trips through O_DIRECT files, aligned or not") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{64 * 1024, 4, false});
  File f = File::open(dir.file("odd.bin"), OpenMode::kCreate);
  CHECK(f.direct());
  const std::int64_t sizes[] = {1, 4095, 4097, 65536, 65537, 3 * 1024 * 1024 + 123};
  std::int64_t offset = 0;
  std::uint64_t seed = 1;
  for (std::int64_t n : sizes) {
    CAPTURE(n);
    const auto src = random_bytes(static_cast<std::size_t>(n), seed++);
    // Aligned source buffer (the fast path) for even seeds, a misaligned std::vector otherwise.
    AlignedBuffer aligned(n);
    std::memcpy(aligned.data(), src.data(), src.size());
    const void* from = (seed % 2 == 0) ? aligned.data() : static_cast<const void*>(src.data());
    engine.wait(engine.write(f, offset, from, n));
    std::vector<unsigned char> back(static_cast<std::size_t>(n) + 1, 0xEE);
    engine.wait(engine.read(f, offset, back.data() + 1, n));  // +1: never aligned
    CHECK(std::memcmp(back.data() + 1, src.data(), src.size()) == 0);
    AlignedBuffer into(n);
    engine.wait(engine.read(f, offset, into.data(), n));
    CHECK(std::memcmp(into.data(), src.data(), src.size()) == 0);
    offset += round_up(n, 4096);
  }
  const IoCounters c = engine.counters();
  std::int64_t total = 0;
  for (std::int64_t n : sizes) total += n;
  CHECK(c.bytes_written == total);
  CHECK(c.bytes_read == 2 * total);
  CHECK(c.requests == 3 * 6);
  CHECK(c.busy_seconds > 0);
  CHECK(c.gbps() > 0);
}

TEST_CASE("many requests from several threads are in flight at once and all land correctly") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{32 * 1024, 16, false});
  constexpr int kThreads = 4, kRequests = 12;
  constexpr std::int64_t kBytes = 200 * 1024 + 8;  // not a multiple of the block size
  constexpr std::int64_t kSlot = 256 * 1024;
  File f = File::open(dir.file("shared.bin"), OpenMode::kCreate);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<AlignedBuffer> bufs;
      std::vector<Ticket> tickets;
      for (int i = 0; i < kRequests; ++i) {
        bufs.emplace_back(kBytes);
        const auto src = random_bytes(kBytes, std::uint64_t(t * 100 + i));
        std::memcpy(bufs.back().data(), src.data(), src.size());
        tickets.push_back(engine.write(f, (t * kRequests + i) * kSlot, bufs.back().data(), kBytes));
      }
      for (Ticket k : tickets) engine.wait(k);
      tickets.clear();
      std::vector<AlignedBuffer> back;
      for (int i = 0; i < kRequests; ++i) {
        back.emplace_back(kBytes);
        tickets.push_back(engine.read(f, (t * kRequests + i) * kSlot, back.back().data(), kBytes));
      }
      for (int i = kRequests - 1; i >= 0; --i) {  // wait out of order
        engine.wait(tickets[static_cast<std::size_t>(i)]);
        const auto src = random_bytes(kBytes, std::uint64_t(t * 100 + i));
        if (std::memcmp(back[static_cast<std::size_t>(i)].data(), src.data(), src.size()) != 0) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(engine.counters().bytes_written == kThreads * kRequests * kBytes);
  CHECK(engine.counters().requests == 2 * kThreads * kRequests);
}

TEST_CASE("poll reports progress without blocking, and a ticket is reported once") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{1 << 20, 4, false});
  File f = File::open(dir.file("poll.bin"), OpenMode::kCreate);
  AlignedBuffer buf(8 << 20);
  const Ticket t = engine.write(f, 0, buf.data(), buf.size());
  int polls = 0;
  while (!engine.poll(t)) {
    ++polls;
    std::this_thread::yield();
  }
  CHECK(engine.counters().bytes_written == buf.size());
  CHECK(contains(error_of([&] { engine.wait(t); }), "already waited for"));
  engine.write(f, 0, buf.data(), 4096);
  engine.write(f, 4096, buf.data(), 4096);
  engine.wait_all();
  CHECK(engine.counters().requests == 3);
}

TEST_CASE("requests wholly inside a registered buffer use fixed buffers and round-trip") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{128 * 1024, 8, false});
  File f = File::open(dir.file("fixed.bin"), OpenMode::kCreate);
  AlignedBuffer buf(1 << 20);
  const auto src = random_bytes(static_cast<std::size_t>(buf.size()), 3);
  std::memcpy(buf.data(), src.data(), src.size());
  const bool registered = engine.register_buffer(buf.data(), buf.size());
  if (!registered) MESSAGE("io_uring refused buffer registration here; testing the unregistered path");
  engine.wait(engine.write(f, 0, buf.data(), buf.size()));
  std::memset(buf.data(), 0, static_cast<std::size_t>(buf.size()));
  engine.wait(engine.read(f, 0, buf.data(), buf.size() - 100));  // odd tail goes through a bounce block
  CHECK(std::memcmp(buf.data(), src.data(), src.size() - 100) == 0);
  engine.unregister_buffer(buf.data());
}

TEST_CASE("a misaligned offset on an O_DIRECT file is refused with the fix") {
  TempDir dir("zinf-io");
  UringEngine engine;
  File f = File::open(dir.file("a.bin"), OpenMode::kCreate);
  char b[10];
  const std::string e = error_of([&] { engine.write(f, 100, b, 10); });
  CHECK(contains(e, "offset 100"));
  CHECK(contains(e, "multiple of 4096"));
  CHECK(contains(error_of([&] { engine.write(f, 0, nullptr, 10); }), "no buffer"));
}

TEST_CASE("where O_DIRECT is refused, files fall back to buffered I/O and still round-trip") {
  TempDir dir("zinf-io");
  SUBCASE("refusal injected at open") {
    ScopedFault fault([](testing::FaultSite site, const std::string&, std::int64_t) {
      return site == testing::FaultSite::kOpenDirect ? EINVAL : 0;
    });
    File f = File::open(dir.file("buffered.bin"), OpenMode::kCreate);
    CHECK_FALSE(f.direct());
    CHECK(contains(f.why_buffered(), "EINVAL"));
    UringEngine engine(EngineOptions{8192, 4, false});
    const auto src = random_bytes(30001, 11);
    engine.wait(engine.write(f, 7, src.data(), 30001));  // any offset works without O_DIRECT
    std::vector<unsigned char> back(30001);
    engine.wait(engine.read(f, 7, back.data(), 30001));
    CHECK(back == src);
    CHECK(f.size() == 30008);  // no padding on buffered files
    const std::string strict =
        error_of([&] { File::open(dir.file("strict.bin"), OpenMode::kCreate, true, /*allow_buffered=*/false); });
    CHECK(contains(strict, "refuses O_DIRECT"));
  }
  SUBCASE("a real filesystem without O_DIRECT (ramfs)") {
    const std::string mnt = dir.file("ramfs");
    std::filesystem::create_directory(mnt);
    ScopedMount m(mnt, "ramfs", nullptr);
    if (!m.ok()) {
      MESSAGE("skipped: cannot mount ramfs here (needs root / CAP_SYS_ADMIN); the injected refusal covers it");
      return;
    }
    File f = File::open(mnt + "/x.bin", OpenMode::kCreate);
    CHECK_FALSE(f.direct());
    UringEngine engine(EngineOptions{4096, 2, false});
    const auto src = random_bytes(10000, 5);
    engine.wait(engine.write(f, 0, src.data(), 10000));
    std::vector<unsigned char> back(10000);
    engine.wait(engine.read(f, 0, back.data(), 10000));
    CHECK(back == src);
  }
}

TEST_CASE("without io_uring the engine falls back to pread/pwrite and still round-trips and fails loudly") {
  TempDir dir("zinf-io");
  ScopedFault fault([](testing::FaultSite site, const std::string&, std::int64_t off) {
    if (site == testing::FaultSite::kRingSetup) return EPERM;  // what a seccomp filter answers
    return site == testing::FaultSite::kRead && off == 12288 ? EIO : 0;
  });
  UringEngine engine(EngineOptions{4096, 8, false});
  CHECK_FALSE(engine.uses_io_uring());
  File f = File::open(dir.file("sync.bin"), OpenMode::kCreate);
  const auto src = random_bytes(10001, 21);
  engine.wait(engine.write(f, 0, src.data(), 10001));
  std::vector<unsigned char> back(10001);
  engine.wait(engine.read(f, 0, back.data(), 10001));
  CHECK(back == src);
  CHECK(engine.counters().bytes_read == 10001);
  AlignedBuffer big(16384);
  engine.wait(engine.write(f, 0, big.data(), 16384));
  CHECK(contains(error_of([&] { engine.wait(engine.read(f, 0, big.data(), 16384)); }), "offset 12288 failed"));
  CHECK_FALSE(engine.register_buffer(big.data(), big.size()));
}

TEST_CASE("a short read names the file, the offset and how much was there") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{4096, 4, false});
  File f = File::open(dir.file("short.bin"), OpenMode::kCreate);
  AlignedBuffer buf(16384);
  engine.wait(engine.write(f, 0, buf.data(), 8192));
  const std::string e = error_of([&] { engine.wait(engine.read(f, 0, buf.data(), 16384)); });
  CHECK(contains(e, "short read"));
  CHECK(contains(e, dir.file("short.bin")));
  CHECK(contains(e, "offset 8192"));
  CHECK(contains(e, "truncated"));
  // A file that ends inside a block (written by someone else, not padded) is a short read too.
  zinf::test::write_text(dir.file("odd.bin"), std::string(5000, 'z'));
  File g = File::open(dir.file("odd.bin"), OpenMode::kRead);
  REQUIRE(g.direct());
  const std::string odd = error_of([&] { engine.wait(engine.read(g, 0, buf.data(), 8192)); });
  CHECK(contains(odd, "short read"));
  CAPTURE(odd);
  CHECK(contains(odd, "at offset 4096: the file ends after 904 of the 4096 bytes"));
  // Asking for exactly what is there works, although O_DIRECT reads whole blocks.
  engine.wait(engine.read(g, 0, buf.data(), 5000));
  CHECK(buf.as<char>()[4999] == 'z');
}

TEST_CASE("EIO and ENOSPC from the device come back as errors with file, offset and a hint") {
  TempDir dir("zinf-io");
  UringEngine engine(EngineOptions{4096, 4, false});
  File f = File::open(dir.file("faulty.bin"), OpenMode::kCreate);
  AlignedBuffer buf(65536);
  engine.wait(engine.write(f, 0, buf.data(), buf.size()));
  {
    ScopedFault fault([](testing::FaultSite site, const std::string&, std::int64_t off) {
      return site == testing::FaultSite::kRead && off == 8192 ? EIO : 0;
    });
    const std::string e = error_of([&] { engine.wait(engine.read(f, 0, buf.data(), buf.size())); });
    CHECK(contains(e, "read of 4096 bytes in '" + dir.file("faulty.bin") + "' at offset 8192 failed"));
    CHECK(contains(e, "EIO"));
    CHECK(contains(e, "dmesg"));
  }
  {
    ScopedFault fault([](testing::FaultSite site, const std::string&, std::int64_t off) {
      return site == testing::FaultSite::kWrite && off >= 16384 ? ENOSPC : 0;
    });
    const std::string e = error_of([&] { engine.wait(engine.write(f, 0, buf.data(), buf.size())); });
    CHECK(contains(e, "offset 16384"));
    CHECK(contains(e, "ENOSPC"));
    CHECK(contains(e, "disk is full"));
  }
  // The engine is still usable after failures.
  engine.wait(engine.read(f, 0, buf.data(), buf.size()));
}

TEST_CASE("a full filesystem fails the write with ENOSPC naming the file (tiny tmpfs)") {
  TempDir dir("zinf-io");
  const std::string mnt = dir.file("tiny");
  std::filesystem::create_directory(mnt);
  ScopedMount m(mnt, "tmpfs", "size=256k");
  if (!m.ok()) {
    MESSAGE("skipped: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN); injected ENOSPC covers it");
    return;
  }
  UringEngine engine(EngineOptions{64 * 1024, 4, false});
  File f = File::open(mnt + "/big.bin", OpenMode::kCreate);
  AlignedBuffer buf(1 << 20);
  const std::string e = error_of([&] { engine.wait(engine.write(f, 0, buf.data(), buf.size())); });
  CHECK(contains(e, mnt + "/big.bin"));
  CHECK(contains(e, "ENOSPC"));
  File g = File::open(mnt + "/reserved.bin", OpenMode::kCreate);
  const std::string r = error_of([&] { g.reserve(1 << 20); });
  CHECK(contains(r, "cannot reserve"));
  CHECK(contains(r, "ENOSPC"));
  CHECK(contains(r, "free"));
}

TEST_CASE("space reservation beyond the file size limit fails at once with EFBIG") {
  TempDir dir("zinf-io");
  File f = File::open(dir.file("limited.bin"), OpenMode::kCreate);
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 1 << 20;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  const std::string e = error_of([&] { f.reserve(8 << 20); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  CHECK(contains(e, "cannot reserve"));
  CHECK(contains(e, dir.file("limited.bin")));
  CHECK(contains(e, "EFBIG"));
  CHECK(contains(e, "ulimit -f"));
}

TEST_CASE("opening a missing file says which and why") {
  const std::string e = error_of([] { File::open("/nonexistent-zinf/x.swp", OpenMode::kRead); });
  CHECK(contains(e, "/nonexistent-zinf/x.swp"));
  CHECK(contains(e, "ENOENT"));
}
