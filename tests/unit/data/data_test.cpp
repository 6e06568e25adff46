// data: text, llm.c uint16/uint32 and nanoGPT token files; lists, directories
// and globs read as one sequence across files; a multi-GB file read without
// memory growing with it; split and vocabulary errors; and the deterministic,
// resumable sampler.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "core/error.h"
#include "data/sampler.h"
#include "data/token_file.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::data;

using zinf::test::error_of;

namespace {

// A text file of n bytes (i % 251) in `dir`, loaded.
Tokens byte_tokens(const test::TempDir& dir, std::size_t n, const std::string& name = "bytes.txt") {
  std::string text(n, '\0');
  for (std::size_t i = 0; i < n; ++i) text[i] = static_cast<char>(i % 251);
  test::write_text(dir.file(name), text);
  return load_tokens(dir.file(name));
}

std::vector<std::int64_t> all_of(const Tokens& t) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(t.size()));
  t.read(0, t.size(), v.data());
  return v;
}

// Resident memory of this process, from /proc/self/statm.
std::int64_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::int64_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

TEST_CASE("a text file is read as one token per byte") {
  test::TempDir dir;
  test::write_text(dir.file("a.txt"), "hi\xff");
  const Tokens t = load_tokens(dir.file("a.txt"));
  CHECK(t.format() == TokenFormat::kBytes);
  REQUIRE(t.size() == 3);
  CHECK(all_of(t) == std::vector<std::int64_t>{'h', 'i', 255});
  CHECK(t.max_id() == 255);
}

TEST_CASE("llm.c token files round-trip: uint16 (magic 20240520) and uint32 (magic 20240801)") {
  test::TempDir dir;
  write_token_file(dir.file("t16.bin"), std::vector<std::uint16_t>{1, 50000, 7});
  const Tokens a = load_tokens(dir.file("t16.bin"));
  CHECK(a.format() == TokenFormat::kLlmc);
  CHECK(a.shards().at(0).width == 2);
  CHECK(all_of(a) == std::vector<std::int64_t>{1, 50000, 7});
  CHECK(a.max_id() == 50000);

  // Llama-3's vocabulary does not fit 16 bits.
  write_token_file(dir.file("t32.bin"), std::vector<std::uint32_t>{128000, 5, 128255, 70000}, 4);
  const Tokens b = load_tokens(dir.file("t32.bin"));
  CHECK(b.shards().at(0).width == 4);
  CHECK(all_of(b) == std::vector<std::int64_t>{128000, 5, 128255, 70000});
  CHECK(b.max_id() == 128255);
  const std::string raw = test::read_text(dir.file("t32.bin"));
  std::int32_t header[3];
  std::memcpy(header, raw.data(), sizeof header);
  CHECK(header[0] == 20240801);
  CHECK(header[1] == 7);
  CHECK(header[2] == 4);
}

TEST_CASE("a nanoGPT train.bin (header-less uint16) is read when asked for, and named in the hint otherwise") {
  test::TempDir dir;
  const std::vector<std::uint16_t> ids{3, 65535, 0, 1, 2, 3, 4, 5};
  std::string raw(ids.size() * 2, '\0');
  std::memcpy(raw.data(), ids.data(), raw.size());
  test::write_text(dir.file("train.bin"), raw);
  const Tokens t = load_tokens(dir.file("train.bin"), TokenFormat::kNanoGpt);
  CHECK(t.format() == TokenFormat::kNanoGpt);
  CHECK(all_of(t) == std::vector<std::int64_t>(ids.begin(), ids.end()));
  CHECK(error_of([&] { load_tokens(dir.file("train.bin")); }).find("--data-format nanogpt") != std::string::npos);
  test::write_text(dir.file("odd.bin"), "abc");
  CHECK(error_of([&] { load_tokens(dir.file("odd.bin"), TokenFormat::kNanoGpt); })
            .find("not a whole number of uint16 tokens") != std::string::npos);
  CHECK(parse_token_format("nanogpt") == TokenFormat::kNanoGpt);
  CHECK(error_of([&] { parse_token_format("npy"); }).find("allowed: detect") != std::string::npos);
}

TEST_CASE("a truncated .bin names the header count and the file size; a wrong magic or version is refused") {
  test::TempDir dir;
  write_token_file(dir.file("t.bin"), std::vector<std::uint16_t>{1, 2, 3, 4});
  std::string raw = test::read_text(dir.file("t.bin"));
  test::write_text(dir.file("t.bin"), raw.substr(0, raw.size() - 2));
  const std::string msg = error_of([&] { load_tokens(dir.file("t.bin")); });
  CHECK(msg.find("header says 4 tokens of 2 bytes") != std::string::npos);
  CHECK(msg.find("file is 1030 bytes") != std::string::npos);

  test::write_text(dir.file("m.bin"), std::string(2048, 'x'));
  CHECK(error_of([&] { load_tokens(dir.file("m.bin")); }).find("magic") != std::string::npos);
  write_token_file(dir.file("v.bin"), std::vector<std::uint32_t>{1, 2}, 4);
  raw = test::read_text(dir.file("v.bin"));
  raw[4] = 6;  // version 6 with the uint32 magic
  test::write_text(dir.file("v.bin"), raw);
  CHECK(error_of([&] { load_tokens(dir.file("v.bin")); }).find("version 6, expected 7") != std::string::npos);
}

TEST_CASE("missing and empty dataset files give clear errors") {
  test::TempDir dir;
  CHECK(error_of([&] { load_tokens(dir.file("nope.txt")); }).find("does not exist") != std::string::npos);
  test::write_text(dir.file("empty.txt"), "");
  CHECK(error_of([&] { load_tokens(dir.file("empty.txt")); }).find("is empty") != std::string::npos);
  CHECK(error_of([&] { load_tokens(dir.file("*.nothing")); }).find("matches no file") != std::string::npos);
  std::filesystem::create_directories(dir.file("void"));
  CHECK(error_of([&] { load_tokens(dir.file("void")); }).find("holds no files") != std::string::npos);
  CHECK(error_of([&] { load_tokens(dir.file("empty.txt") + ",,x"); }).find("empty entry") != std::string::npos);
}

TEST_CASE("a list, a directory and a glob are one sequence, files in name order, read across file boundaries") {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("shards"));
  write_token_file(dir.file("shards/b_001.bin"), std::vector<std::uint16_t>{10, 11, 12});
  write_token_file(dir.file("shards/a_000.bin"), std::vector<std::uint16_t>{1, 2});
  write_token_file(dir.file("shards/c_002.bin"), std::vector<std::uint32_t>{70000, 70001}, 4);
  const std::vector<std::int64_t> expected{1, 2, 10, 11, 12, 70000, 70001};
  for (const std::string& spec : {dir.file("shards"), dir.file("shards/*.bin"),
                                  dir.file("shards/a_000.bin") + "," + dir.file("shards/b_001.bin") + ", " +
                                      dir.file("shards/c_002.bin")}) {
    CAPTURE(spec);
    const Tokens t = load_tokens(spec);
    CHECK(t.shards().size() == 3);
    CHECK(t.size() == 7);
    CHECK(all_of(t) == expected);
    std::vector<std::int64_t> mid(4);
    t.read(1, 4, mid.data());  // spans all three files
    CHECK(mid == std::vector<std::int64_t>{2, 10, 11, 12});
    CHECK(t.max_id() == 70001);
  }
  test::write_text(dir.file("shards/notes.txt"), "text");
  CHECK(error_of([&] { load_tokens(dir.file("shards")); }).find("mixes text") != std::string::npos);
}

TEST_CASE("the fingerprint changes with the data and stays for the same data") {
  test::TempDir dir;
  const Tokens a = byte_tokens(dir, 5000, "a.txt");
  const Tokens same = byte_tokens(dir, 5000, "b.txt");
  CHECK(a.fingerprint_bytes() == same.fingerprint_bytes());
  std::string text = test::read_text(dir.file("b.txt"));
  text[4999] = 'x';
  test::write_text(dir.file("c.txt"), text);
  CHECK(load_tokens(dir.file("c.txt")).fingerprint_bytes() != a.fingerprint_bytes());
}

TEST_CASE("a 5 GiB token file (2.7e9 tokens, past 32-bit counts) is read without memory growing with it") {
  test::TempDir dir;
  const std::string path = dir.file("big.bin");
  const std::int64_t bytes = std::int64_t(5) << 30;
  {
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, bytes) == 0);  // sparse: zeros, no disk space
    const std::uint16_t last[2] = {4242, 77};
    REQUIRE(::pwrite(fd, last, sizeof last, bytes - 4) == 4);
    ::close(fd);
  }
  const std::int64_t before = rss_bytes();
  const Tokens t = load_tokens(path, TokenFormat::kNanoGpt);
  CHECK(t.size() == bytes / 2);
  CHECK(t.size() > (std::int64_t(1) << 31));
  CHECK(t.max_id() == 4242);  // a pass over all 5 GiB
  Sampler s(t, {0, t.size()}, 1024, 3, true);
  for (int i = 0; i < 200; ++i) s.next(8);
  std::vector<std::int64_t> tail(2);
  t.read(t.size() - 2, 2, tail.data());
  CHECK(tail == std::vector<std::int64_t>{4242, 77});
  const std::int64_t grown = rss_bytes() - before;
  MESSAGE("RSS grew by " << grown / 1024 << " KiB reading a " << (bytes >> 20) << " MiB file");
  CHECK(grown < bytes / 100);  // the sampler's window order (4 B per window) and little else
}

TEST_CASE("seq-len longer than the data is refused with the counts") {
  test::TempDir dir;
  const Tokens t = byte_tokens(dir, 100);
  const std::string msg = error_of([&] { split_tokens(t, 0.0, 128); });
  CHECK(msg.find("seq-len 128 is longer than the data") != std::string::npos);
  CHECK(msg.find("100 bytes") != std::string::npos);
  CHECK(error_of([&] { split_tokens(t, 0.1, 20); }).find("validation split") != std::string::npos);
  const DataSplit s = split_tokens(byte_tokens(dir, 1000, "k.txt"), 0.1, 20);
  CHECK(s.train.count == 900);
  CHECK(s.val.begin == 900);
  CHECK(s.val.count == 100);
}

TEST_CASE("a token id beyond the vocabulary is refused") {
  test::TempDir dir;
  write_token_file(dir.file("t.bin"), std::vector<std::uint16_t>{1, 300, 2});
  const Tokens t = load_tokens(dir.file("t.bin"));
  CHECK(error_of([&] { check_vocab(t, 256); }).find("token id 300") != std::string::npos);
  CHECK_NOTHROW(check_vocab(t, 301));
}

TEST_CASE("targets are the inputs shifted by one token") {
  test::TempDir dir;
  const Tokens t = byte_tokens(dir, 1000);
  Sampler s(t, {0, 1000}, 16, 1, true);
  const Batch b = s.next(3);
  REQUIRE(b.inputs.size() == 48);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 15; ++c) CHECK(b.targets[r * 16 + c] == b.inputs[r * 16 + c + 1]);
}

TEST_CASE("an epoch visits every window once, in a seed-dependent order") {
  test::TempDir dir;
  const Tokens t = byte_tokens(dir, 16 * 50 + 1);
  Sampler a(t, {0, 16 * 50 + 1}, 16, 7, true);
  Sampler b(t, {0, 16 * 50 + 1}, 16, 8, true);
  CHECK(a.windows_per_epoch() == 50);
  std::set<std::int64_t> starts;
  std::vector<std::int64_t> first_a, first_b;
  for (int i = 0; i < 50; ++i) {
    const Batch x = a.next(1);
    starts.insert(x.inputs[0] + 1000 * (x.inputs[1]));
    first_a.push_back(x.inputs[0]);
    first_b.push_back(b.next(1).inputs[0]);
  }
  CHECK(starts.size() == 50);
  CHECK(first_a != first_b);
  CHECK(a.state().epoch == 0);
  a.next(1);
  CHECK(a.state().epoch == 1);
}

TEST_CASE("a restored sampler continues with exactly the same batches") {
  test::TempDir dir;
  const Tokens t = byte_tokens(dir, 5000);
  Sampler a(t, {0, 5000}, 32, 42, true);
  for (int i = 0; i < 70; ++i) a.next(2);  // crosses an epoch boundary (156 windows)
  const SamplerState st = a.state();
  Sampler b(t, {0, 5000}, 32, 42, true);
  b.restore(st);
  for (int i = 0; i < 100; ++i) CHECK(a.next(2).inputs == b.next(2).inputs);
}
