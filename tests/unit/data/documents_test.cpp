// unit/data: documents and fine-tuning examples — the .idx prompt lengths
// (version 2) and their reader, a dataset's document table across shards,
// document-aware windows (padding, long documents cut, examples truncated),
// prompt targets masked in every window mode, the document-snapped split,
// resuming a documents-mode sampler, and packed windows (best-fit
// decreasing, positions restarting at each document, padding a run of its
// own, every document once per epoch, exact resume).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/targets.h"
#include "data/sampler.h"
#include "data/shard_writer.h"
#include "data/token_file.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::data;
using zinf::test::error_of;
using zinf::test::read_text;
using zinf::test::TempDir;

namespace {

std::vector<std::uint32_t> range_ids(std::uint32_t from, std::uint32_t count) {
  std::vector<std::uint32_t> v(count);
  for (std::uint32_t i = 0; i < count; ++i) v[i] = from + i;
  return v;
}

// Ids 0..n-1 in memory, with documents at `starts` (prompt lengths `prompts`).
Tokens in_memory(std::uint32_t n, const std::vector<std::int64_t>& starts, const std::vector<std::int64_t>& prompts) {
  std::vector<Document> docs;
  for (std::size_t k = 0; k < starts.size(); ++k) docs.push_back({starts[k], prompts.empty() ? 0 : prompts[k]});
  return tokens_in_memory("mem", range_ids(0, n), docs);
}

std::vector<std::int64_t> row(const std::vector<std::int64_t>& v, std::int64_t r, std::int64_t cols) {
  return {v.begin() + r * cols, v.begin() + (r + 1) * cols};
}

constexpr std::int64_t X = kIgnoreTarget;

}  // namespace

TEST_CASE("the document index records prompt lengths (version 2) only when a document has one") {
  TempDir dir("zinf-docs");
  {
    ShardWriter w(dir.file("plain"), 2, 100);
    w.add_document(range_ids(1, 5));
    w.add_document(range_ids(1, 3));
    w.commit();
  }
  const DocIndex plain = read_doc_index(dir.file("plain_000000.idx"));
  CHECK(plain.starts == std::vector<std::int64_t>{0, 5});
  CHECK(plain.prompts.empty());
  CHECK_FALSE(doc_index_has_prompts(dir.file("plain_000000.idx")));
  {
    std::ifstream in(dir.file("plain_000000.idx"), std::ios::binary);
    std::int64_t head[2] = {};
    in.read(reinterpret_cast<char*>(head), sizeof head);
    CHECK(head[1] == kDocIndexVersion);  // a corpus without examples stays version 1
  }

  {
    ShardWriter w(dir.file("sft"), 2, 6);  // 6 tokens a shard: the second example continues in shard 1
    w.add_document(range_ids(10, 4), 2);
    w.add_document(range_ids(20, 5), 3);
    w.add_document(range_ids(30, 2), 0);
    w.commit();
  }
  const DocIndex s0 = read_doc_index(dir.file("sft_000000.idx"));
  CHECK(s0.starts == std::vector<std::int64_t>{0, 4});
  CHECK(s0.prompts == std::vector<std::int64_t>{2, 3});
  CHECK(doc_index_has_prompts(dir.file("sft_000000.idx")));
  const DocIndex s1 = read_doc_index(dir.file("sft_000001.idx"));
  CHECK(s1.continues);
  CHECK(s1.starts == std::vector<std::int64_t>{3});

  // The dataset's document table, across the shard boundary.
  const Tokens t = load_tokens(dir.file("sft_000000.bin") + "," + dir.file("sft_000001.bin"));
  CHECK(t.has_prompts());
  const std::vector<Document>& docs = t.documents();
  REQUIRE(docs.size() == 3);
  CHECK(docs[0].start == 0);
  CHECK(docs[0].prompt == 2);
  CHECK(docs[1].start == 4);
  CHECK(docs[1].prompt == 3);
  CHECK(docs[2].start == 9);
  CHECK(docs[2].prompt == 0);

  // An index that says 2 documents but holds 3 entries with version 2 is refused.
  std::string bytes = fs::read_file(dir.file("sft_000000.idx"));
  bytes.resize(bytes.size() - 8);
  test::write_text(dir.file("bad.idx"), bytes);
  CHECK(error_of([&] { read_doc_index(dir.file("bad.idx")); }).find("2 per document") != std::string::npos);
}

TEST_CASE("context runs: index version 3 records them where their document starts; the sampler never trains them") {
  TempDir dir("zinf-docs");
  {
    ShardWriter w(dir.file("conv"), 2, 8);
    w.add_document(range_ids(100, 6), 2, {{4, 1}});          // tokens 0..5
    w.add_document(range_ids(200, 9), 2, {{3, 2}, {7, 1}});  // tokens 6..14: 6, 7 in shard 0, the rest in shard 1
    w.commit();
  }
  const DocIndex first = read_doc_index(dir.file("conv_000000.idx"));
  REQUIRE(first.context.size() == 3);
  CHECK(first.context[1].document == 1);
  CHECK(first.context[1].offset == 3);
  CHECK(first.context[2].count == 1);
  CHECK(read_doc_index(dir.file("conv_000001.idx")).context.empty());
  const Tokens t = load_tokens(dir.file("conv_000000.bin") + "," + dir.file("conv_000001.bin"));
  REQUIRE(t.has_prompts());
  const std::vector<Span>& runs = t.context_runs();
  REQUIRE(runs.size() == 3);
  CHECK(runs[0].begin == 4);
  CHECK(runs[1].begin == 9);
  CHECK(runs[1].count == 2);
  CHECK(runs[2].begin == 13);
  Sampler s(t, {0, 15}, 10, 1, /*shuffle=*/false, Windows::kDocuments);
  const Batch b = s.next(2);
  CHECK(row(b.targets, 0, 10) == std::vector<std::int64_t>{X, 102, 103, X, 105, X, X, X, X, X});
  CHECK(row(b.targets, 1, 10) == std::vector<std::int64_t>{X, 202, X, X, 205, 206, X, 208, X, X});

  // Runs that overlap are refused, naming the index and the run: run 1's
  // offset (the fifth int64 from the end) 3 -> 9, past run 2's 7.
  std::string bytes = read_text(dir.file("conv_000000.idx"));
  std::int64_t offset = 0;
  std::memcpy(&offset, bytes.data() + bytes.size() - 5 * 8, 8);
  CHECK(offset == 3);
  const std::int64_t overlapping = 9;
  std::memcpy(&bytes[bytes.size() - 5 * 8], &overlapping, 8);
  test::write_text(dir.file("conv_000000.idx"), bytes);
  CHECK(error_of([&] { read_doc_index(dir.file("conv_000000.idx")); }).find("context run 2") != std::string::npos);
}

TEST_CASE("document-aware windows start at documents, pad short ones and cut long ones") {
  // Documents [0,3) [3,12) [12,14) [14,15): seq_len 4 gives windows
  // [0,3) (padded), [3,8), [7,12), [12,14) (padded); the 1-token document has no target.
  const Tokens t = in_memory(15, {0, 3, 12, 14}, {});
  CHECK_FALSE(t.has_prompts());
  Sampler s(t, {0, 15}, 4, 7, /*shuffle=*/false, Windows::kDocuments);
  CHECK(s.windows_per_epoch() == 4);
  const Batch b = s.next(4);
  CHECK(row(b.inputs, 0, 4) == std::vector<std::int64_t>{0, 1, 2, 2});
  CHECK(row(b.targets, 0, 4) == std::vector<std::int64_t>{1, 2, X, X});
  CHECK(row(b.inputs, 1, 4) == std::vector<std::int64_t>{3, 4, 5, 6});
  CHECK(row(b.targets, 1, 4) == std::vector<std::int64_t>{4, 5, 6, 7});
  CHECK(row(b.inputs, 2, 4) == std::vector<std::int64_t>{7, 8, 9, 10});
  CHECK(row(b.targets, 2, 4) == std::vector<std::int64_t>{8, 9, 10, 11});
  CHECK(row(b.targets, 3, 4) == std::vector<std::int64_t>{13, X, X, X});
  CHECK(trained_targets(b) == 2 + 4 + 4 + 1);

  // Shuffled: every window once per epoch, whatever the order.
  Sampler sh(t, {0, 15}, 4, 7, /*shuffle=*/true, Windows::kDocuments);
  std::vector<std::int64_t> firsts;
  const Batch e = sh.next(4);
  for (int r = 0; r < 4; ++r) firsts.push_back(e.inputs[std::size_t(r * 4)]);
  std::sort(firsts.begin(), firsts.end());
  CHECK(firsts == std::vector<std::int64_t>{0, 3, 7, 12});
}

TEST_CASE("prompt targets train nothing; an example keeps only its first window") {
  // Example [0,6) with prompt 3, example [6,16) with prompt 2 (longer than a window), text [16,20).
  const Tokens t = in_memory(20, {0, 6, 16}, {3, 2, 0});
  REQUIRE(t.has_prompts());
  Sampler docs(t, {0, 20}, 5, 1, /*shuffle=*/false, Windows::kDocuments);
  CHECK(docs.windows_per_epoch() == 3);
  CHECK(docs.truncated_documents() == 1);
  const Batch b = docs.next(3);
  CHECK(row(b.targets, 0, 5) == std::vector<std::int64_t>{X, X, 3, 4, 5});  // tokens 1, 2 are prompt
  CHECK(row(b.targets, 1, 5) == std::vector<std::int64_t>{X, 8, 9, 10, 11});  // token 7 is prompt
  CHECK(row(b.targets, 2, 5) == std::vector<std::int64_t>{17, 18, 19, X, X});

  // Stream windows cross documents; the prompts are masked all the same.
  Sampler stream(t, {0, 20}, 4, 1, /*shuffle=*/false, Windows::kStream);
  const Batch s = stream.next(4);
  CHECK(row(s.targets, 0, 4) == std::vector<std::int64_t>{X, X, 3, 4});
  CHECK(row(s.targets, 1, 4) == std::vector<std::int64_t>{5, X, X, 8});  // 6 and 7 are example 2's prompt
  CHECK(row(s.targets, 2, 4) == std::vector<std::int64_t>{9, 10, 11, 12});
}

TEST_CASE("with document windows the validation split starts at a document; the sampler resumes exactly") {
  const Tokens t = in_memory(100, {0, 30, 55, 80, 90}, {});
  const DataSplit stream = split_tokens(t, 0.15, 4, Windows::kStream);
  CHECK(stream.val.begin == 85);
  const DataSplit docs = split_tokens(t, 0.15, 4, Windows::kDocuments);
  CHECK(docs.val.begin == 80);  // 85 falls in the document starting at 80
  CHECK(docs.val.count == 20);

  Sampler a(t, docs.train, 8, 3, true, Windows::kDocuments);
  a.next(3);
  const SamplerState mid = a.state();
  const Batch want = a.next(5);
  Sampler b(t, docs.train, 8, 3, true, Windows::kDocuments);
  b.restore(mid);
  const Batch got = b.next(5);
  CHECK(got.inputs == want.inputs);
  CHECK(got.targets == want.targets);
}

TEST_CASE("document windows on token files without an index are refused, naming the file") {
  TempDir dir("zinf-docs");
  write_token_file(dir.file("plain.bin"), std::vector<std::uint16_t>(50, 3));
  const Tokens t = load_tokens(dir.file("plain.bin"));
  CHECK_FALSE(t.has_prompts());
  const std::string e = error_of([&] { Sampler(t, {0, 50}, 8, 1, true, Windows::kDocuments); });
  CHECK(e.find("plain.bin' has no document index") != std::string::npos);
  CHECK(error_of([] { parse_windows("rows"); }).find("allowed: stream") != std::string::npos);

  // Text files are a document each.
  test::write_text(dir.file("a.txt"), "abcdef");
  test::write_text(dir.file("b.txt"), "xyz");
  const Tokens text = load_tokens(dir.file("a.txt") + "," + dir.file("b.txt"));
  REQUIRE(text.documents().size() == 2);
  CHECK(text.documents()[1].start == 6);
}

TEST_CASE("packed windows: best fit decreasing, positions restart at each document, padding is a run of its own") {
  // Documents A [0,4) B [4,13) C [13,19) D [19,22) E [22,24) F [24,25):
  // 3, 8, 5, 2, 1 and 0 next-token pairs. seq_len 8, longest first:
  // B fills window 0; C opens window 1 and A fills its 3 free places; D
  // opens window 2 and E joins it. Within a window, file order.
  const Tokens t = in_memory(25, {0, 4, 13, 19, 22, 24}, {});
  Sampler s(t, {0, 25}, 8, 7, /*shuffle=*/false, Windows::kPacked);
  CHECK(s.windows_per_epoch() == 3);
  CHECK(s.packed_fill() == doctest::Approx(19.0 / 24.0));
  const Batch b = s.next(3);
  REQUIRE(b.positions.size() == b.inputs.size());
  CHECK(row(b.inputs, 0, 8) == std::vector<std::int64_t>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(row(b.targets, 0, 8) == std::vector<std::int64_t>{5, 6, 7, 8, 9, 10, 11, 12});
  CHECK(row(b.positions, 0, 8) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(row(b.inputs, 1, 8) == std::vector<std::int64_t>{0, 1, 2, 13, 14, 15, 16, 17});
  CHECK(row(b.targets, 1, 8) == std::vector<std::int64_t>{1, 2, 3, 14, 15, 16, 17, 18});
  CHECK(row(b.positions, 1, 8) == std::vector<std::int64_t>{0, 1, 2, 0, 1, 2, 3, 4});
  CHECK(row(b.inputs, 2, 8) == std::vector<std::int64_t>{19, 20, 22, 23, 23, 23, 23, 23});
  CHECK(row(b.targets, 2, 8) == std::vector<std::int64_t>{20, 21, 23, X, X, X, X, X});
  CHECK(row(b.positions, 2, 8) == std::vector<std::int64_t>{0, 1, 0, 0, 1, 2, 3, 4});
  CHECK(trained_targets(b) == 19);

  // The other modes leave positions empty.
  Sampler docs(t, {0, 25}, 8, 7, false, Windows::kDocuments);
  CHECK(docs.windows_per_epoch() == 5);
  CHECK(docs.next(1).positions.empty());
  CHECK(parse_windows("packed") == Windows::kPacked);
  CHECK(std::string(windows_name(Windows::kPacked)) == "packed");
}

TEST_CASE("packed windows mask prompts, cut long documents and keep only an example's first window") {
  // Example [0,6) prompt 2; text [6,20) (13 pairs: windows of 6 and 6, then
  // 1 pair); example [20,30) prompt 3 (9 pairs: only its first 6 train).
  const Tokens t = in_memory(30, {0, 6, 20}, {2, 0, 3});
  Sampler s(t, {0, 30}, 6, 1, /*shuffle=*/false, Windows::kPacked);
  CHECK(s.truncated_documents() == 1);
  // Pieces: example 1 (5 pairs), text (6, 6, 1), example 2 (6): four windows.
  CHECK(s.windows_per_epoch() == 4);
  const Batch b = s.next(4);
  std::vector<std::int64_t> trained;
  for (std::size_t i = 0; i < b.targets.size(); ++i)
    if (b.targets[i] != X) trained.push_back(b.targets[i]);
  std::sort(trained.begin(), trained.end());
  // Prompt tokens 1 (example 1) and 21, 22 (example 2) train nothing;
  // example 2 stops at token 26 (its first window: inputs 20..25).
  std::vector<std::int64_t> want = {2, 3, 4, 5};
  for (std::int64_t i = 7; i <= 19; ++i) want.push_back(i);
  for (std::int64_t i = 23; i <= 26; ++i) want.push_back(i);
  CHECK(trained == want);
}

TEST_CASE("shuffled packed windows cover every document once per epoch and resume exactly") {
  std::vector<std::int64_t> starts;
  for (std::int64_t at = 0, len = 2; at < 400; at += len, len = len % 13 + 2) starts.push_back(at);
  const Tokens t = in_memory(400, starts, {});
  const DataSplit split = split_tokens(t, 0.1, 16, Windows::kPacked);
  CHECK(*std::find(starts.begin(), starts.end(), split.val.begin) == split.val.begin);  // at a document start
  Sampler a(t, split.train, 16, 3, /*shuffle=*/true, Windows::kPacked);
  const std::int64_t n = a.windows_per_epoch();
  const Batch epoch = a.next(n);
  std::vector<std::int64_t> seen;
  for (std::size_t i = 0; i < epoch.targets.size(); ++i)
    if (epoch.targets[i] != X) seen.push_back(epoch.targets[i]);
  std::sort(seen.begin(), seen.end());
  std::vector<std::int64_t> want;  // every token of the training split but each document's first
  for (std::int64_t g = 1; g < split.train.count; ++g)
    if (std::find(starts.begin(), starts.end(), g) == starts.end()) want.push_back(g);
  CHECK(seen == want);

  a.next(2);
  const SamplerState mid = a.state();
  const Batch next = a.next(5);
  Sampler b(t, split.train, 16, 3, true, Windows::kPacked);
  b.restore(mid);
  const Batch again = b.next(5);
  CHECK(again.inputs == next.inputs);
  CHECK(again.targets == next.targets);
  CHECK(again.positions == next.positions);
}
