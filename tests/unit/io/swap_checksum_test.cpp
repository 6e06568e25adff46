// io: every byte read back from a swap file is verified against what was
// written, at the default block size and every alignment: corruption of any
// page (written whole, as a tail, or never written) is an error naming the
// file and the page's offset, whatever the write and read piece splits.
#include <doctest/doctest.h>

#include <exception>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/aligned_buffer.h"
#include "io/swap_file.h"
#include "io_test_util.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::io;
using zinf::test::error_of;
using zinf::test::random_bytes;
using zinf::test::TempDir;

namespace {

constexpr std::int64_t kPage = 4096;
constexpr std::int64_t kMiB = 1 << 20;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// What `dd if=/dev/zero of=FILE bs=4096 count=N seek=S conv=notrunc` does:
// zeros written behind the engine's back, through the page cache.
void zero_behind(const std::string& path, std::int64_t offset, std::int64_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  const std::vector<char> zeros(static_cast<std::size_t>(bytes), 0);
  REQUIRE(::pwrite(fd, zeros.data(), zeros.size(), offset) == static_cast<ssize_t>(bytes));
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
}

// One byte flipped behind the engine's back.
void flip_behind(const std::string& path, std::int64_t offset) {
  const int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char byte = 0;
  REQUIRE(::pread(fd, &byte, 1, offset) == 1);
  byte ^= 0x5A;
  REQUIRE(::pwrite(fd, &byte, 1, offset) == 1);
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
}

// Moves [offset, offset + bytes) in pieces of `piece` bytes (the last one
// shorter). Every piece is waited for before the first error is rethrown:
// the caller frees `data` next, and a piece still in flight (or having its
// pages checksummed) would read freed memory.
void in_pieces(SwapFile& f, Op op, std::int64_t offset, unsigned char* data, std::int64_t bytes, std::int64_t piece) {
  std::vector<Ticket> tickets;
  for (std::int64_t at = 0; at < bytes; at += piece) {
    const std::int64_t n = std::min(piece, bytes - at);
    tickets.push_back(op == Op::kWrite ? f.write(offset + at, data + at, n) : f.read(offset + at, data + at, n));
  }
  std::exception_ptr first;
  for (Ticket t : tickets) {
    try {
      f.engine().wait(t);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace

TEST_CASE("at the default 1 MiB block size, corrupting any page is caught whatever the piece splits") {
  TempDir root("zinf-crc");
  UringEngine engine;  // defaults: aio.block_size 1 MiB
  REQUIRE(engine.options().block_size == kMiB);
  SwapDir dir(root.path(), "crc", 0);
  // A segment as FlatStore places it: at a 4096-byte offset that is not a
  // block boundary, with a length that ends inside a page.
  const std::int64_t seg_offset = 3 * kPage;
  const std::int64_t seg_bytes = 3 * kMiB + 5 * kPage + 1234;
  const auto src = random_bytes(static_cast<std::size_t>(seg_bytes), 77);
  struct Case {
    const char* name;
    std::int64_t write_piece, read_piece;
    std::int64_t corrupt_at;  // file offset, a page
    bool zeros;               // dd-style zero page, else one flipped byte
  };
  const std::int64_t aligned = 2 * kMiB;                  // on a block boundary
  const std::int64_t unaligned = kMiB + 37 * kPage;       // inside a block
  const std::int64_t tail = seg_offset + seg_bytes / kPage * kPage;  // the segment's last, partial page
  const Case cases[] = {
      {"whole writes, whole read, block-aligned zeros", seg_bytes, seg_bytes, aligned, true},
      {"whole writes, whole read, unaligned zeros", seg_bytes, seg_bytes, unaligned, true},
      {"3-page writes, whole read, block-aligned", 3 * kPage, seg_bytes, aligned, false},
      {"whole write, 5-page reads, unaligned", seg_bytes, 5 * kPage, unaligned, false},
      {"1 MiB + 1 page writes, 7-page reads, block-aligned zeros", kMiB + kPage, 7 * kPage, aligned, true},
      {"7-page writes, 1 MiB reads, unaligned zeros", 7 * kPage, kMiB, unaligned, true},
      {"whole write, whole read, corrupt tail page", seg_bytes, seg_bytes, tail, false},
      {"3-page writes, 2-page reads, corrupt tail page", 3 * kPage, 2 * kPage, tail, false},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto f = dir.create(engine, "optimizer", seg_offset + seg_bytes + kPage);
    std::vector<unsigned char> data(src);
    in_pieces(*f, Op::kWrite, seg_offset, data.data(), seg_bytes, c.write_piece);
    AlignedBuffer back(seg_bytes);
    in_pieces(*f, Op::kRead, seg_offset, back.as<unsigned char>(), seg_bytes, c.read_piece);  // clean: passes
    CHECK(std::memcmp(back.data(), src.data(), src.size()) == 0);
    if (c.zeros)
      zero_behind(f->path(), c.corrupt_at, kPage);
    else
      flip_behind(f->path(), c.corrupt_at + 100);
    const std::string e =
        error_of([&] { in_pieces(*f, Op::kRead, seg_offset, back.as<unsigned char>(), seg_bytes, c.read_piece); });
    CHECK(contains(e, "checksum mismatch reading "));
    CHECK(contains(e, "bytes from '" + f->path() + "' at offset " + std::to_string(c.corrupt_at) + ":"));
    CHECK(contains(e, "resume from the last checkpoint"));
    if (c.corrupt_at == tail) CHECK(contains(e, "reading " + std::to_string(seg_bytes % kPage) + " bytes"));
  }
}

TEST_CASE("a read that covers part of a page written whole still verifies the whole page") {
  for (bool direct : {true, false}) {
    CAPTURE(direct);
    TempDir root("zinf-crc");
    UringEngine engine;
    SwapDir dir(root.path(), "part", 0);
    SwapFileOptions o;
    o.direct = direct;
    auto f = dir.create(engine, "params", 3 * kPage, o);
    const auto src = random_bytes(3 * kPage, 5);
    f->write_now(0, src.data(), 3 * kPage);
    AlignedBuffer back(3 * kPage);
    f->read_now(0, back.data(), 5000);  // page 1 read as a 904-byte prefix: clean
    CHECK(std::memcmp(back.data(), src.data(), 5000) == 0);
    flip_behind(f->path(), kPage + 3000);  // inside page 1, past what that read returns
    std::string e = error_of([&] { f->read_now(0, back.data(), 5000); });
    CHECK(contains(e, "checksum mismatch reading 904 bytes from '" + f->path() + "' at offset 4096"));
    e = error_of([&] { f->read_now(kPage, back.data(), 100); });
    CHECK(contains(e, "checksum mismatch reading 100 bytes from '" + f->path() + "' at offset 4096"));
    f->read_now(2 * kPage, back.data(), kPage);  // the pages around it are still good
  }
}

TEST_CASE("pages never written read back as verified zeros, and a change to them is caught") {
  TempDir root("zinf-crc");
  UringEngine engine;
  SwapDir dir(root.path(), "fresh", 0);
  auto f = dir.create(engine, "gradients", 2 * kMiB + 100);
  AlignedBuffer back(2 * kMiB + 100);
  f->read_now(0, back.data(), 2 * kMiB + 100);
  const auto* b = back.as<unsigned char>();
  CHECK(std::all_of(b, b + 2 * kMiB + 100, [](unsigned char v) { return v == 0; }));
  flip_behind(f->path(), kMiB + 5 * kPage + 1);
  const std::string e = error_of([&] { f->read_now(0, back.data(), 2 * kMiB + 100); });
  CHECK(contains(e, "checksum mismatch reading 4096 bytes from '" + f->path() + "' at offset " +
                        std::to_string(kMiB + 5 * kPage)));
}

TEST_CASE("the checksum table costs 4 bytes of host memory per 4096-byte page of swap") {
  CHECK(swap_checksum_host_bytes(0) == 0);
  CHECK(swap_checksum_host_bytes(1) == 4);
  CHECK(swap_checksum_host_bytes(4096) == 4);
  CHECK(swap_checksum_host_bytes(4097) == 8);
  CHECK(swap_checksum_host_bytes(std::int64_t(1) << 30) == std::int64_t(1) << 20);
}
