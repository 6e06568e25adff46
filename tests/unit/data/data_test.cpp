// data: byte and .bin token files, split and vocabulary errors, and the
// deterministic, resumable sampler.
#include <doctest/doctest.h>

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

Tokens byte_tokens(std::size_t n) {
  Tokens t;
  t.path = "mem";
  for (std::size_t i = 0; i < n; ++i) t.ids.push_back(static_cast<std::uint16_t>(i % 251));
  t.max_id = 250;
  return t;
}

}  // namespace

TEST_CASE("a text file is read as one token per byte") {
  test::TempDir dir;
  test::write_text(dir.file("a.txt"), "hi\xff");
  const Tokens t = load_tokens(dir.file("a.txt"));
  CHECK(t.format == TokenFormat::kBytes);
  REQUIRE(t.ids.size() == 3);
  CHECK(t.ids[0] == 'h');
  CHECK(t.ids[2] == 255);
  CHECK(t.max_id == 255);
}

TEST_CASE("a .bin token file round-trips through the llm.c header") {
  test::TempDir dir;
  write_token_file(dir.file("t.bin"), {1, 50000, 7});
  const Tokens t = load_tokens(dir.file("t.bin"));
  CHECK(t.format == TokenFormat::kBin);
  CHECK(t.ids == std::vector<std::uint16_t>{1, 50000, 7});
  CHECK(t.max_id == 50000);
}

TEST_CASE("a truncated .bin names the header count and the file size") {
  test::TempDir dir;
  write_token_file(dir.file("t.bin"), {1, 2, 3, 4});
  std::string raw = test::read_text(dir.file("t.bin"));
  test::write_text(dir.file("t.bin"), raw.substr(0, raw.size() - 2));
  const std::string msg = error_of([&] { load_tokens(dir.file("t.bin")); });
  CHECK(msg.find("header says 4 tokens") != std::string::npos);
  CHECK(msg.find("file is 1030 bytes") != std::string::npos);
}

TEST_CASE("a .bin with a wrong magic is refused") {
  test::TempDir dir;
  test::write_text(dir.file("t.bin"), std::string(2048, 'x'));
  CHECK(error_of([&] { load_tokens(dir.file("t.bin")); }).find("magic") != std::string::npos);
}

TEST_CASE("missing and empty dataset files give clear errors") {
  test::TempDir dir;
  CHECK(error_of([&] { load_tokens(dir.file("nope.txt")); }).find("does not exist") != std::string::npos);
  test::write_text(dir.file("empty.txt"), "");
  CHECK(error_of([&] { load_tokens(dir.file("empty.txt")); }).find("is empty") != std::string::npos);
}

TEST_CASE("seq-len longer than the data is refused with the counts") {
  const Tokens t = byte_tokens(100);
  const std::string msg = error_of([&] { split_tokens(t, 0.0, 128); });
  CHECK(msg.find("seq-len 128 is longer than the data") != std::string::npos);
  CHECK(msg.find("100 bytes") != std::string::npos);
  CHECK(error_of([&] { split_tokens(t, 0.1, 20); }).find("validation split") != std::string::npos);
  const DataSplit s = split_tokens(byte_tokens(1000), 0.1, 20);
  CHECK(s.train.count == 900);
  CHECK(s.val.begin == 900);
  CHECK(s.val.count == 100);
}

TEST_CASE("a token id beyond the vocabulary is refused") {
  Tokens t = byte_tokens(10);
  t.max_id = 300;
  CHECK(error_of([&] { check_vocab(t, 256); }).find("token id 300") != std::string::npos);
  CHECK_NOTHROW(check_vocab(t, 301));
}

TEST_CASE("targets are the inputs shifted by one token") {
  const Tokens t = byte_tokens(1000);
  Sampler s(t.ids, {0, 1000}, 16, 1, true);
  const Batch b = s.next(3);
  REQUIRE(b.inputs.size() == 48);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 15; ++c) CHECK(b.targets[r * 16 + c] == b.inputs[r * 16 + c + 1]);
}

TEST_CASE("an epoch visits every window once, in a seed-dependent order") {
  const Tokens t = byte_tokens(16 * 50 + 1);
  Sampler a(t.ids, {0, 16 * 50 + 1}, 16, 7, true);
  Sampler b(t.ids, {0, 16 * 50 + 1}, 16, 8, true);
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
  const Tokens t = byte_tokens(5000);
  Sampler a(t.ids, {0, 5000}, 32, 42, true);
  for (int i = 0; i < 70; ++i) a.next(2);  // crosses an epoch boundary (156 windows)
  const SamplerState st = a.state();
  Sampler b(t.ids, {0, 5000}, 32, 42, true);
  b.restore(st);
  for (int i = 0; i < 100; ++i) CHECK(a.next(2).inputs == b.next(2).inputs);
}
