// unit/data: a large text file is encoded in parallel pieces, cut after a
// newline between two ASCII non-space characters, when the tokenizer says
// such cuts change nothing (Tokenizer::splits_after_newline): the ids are
// those of the whole file, in one document, across shards; a tokenizer that
// does not allow it (a Prepend normalizer, no pre-tokenizer) reads the file whole.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "data/token_file.h"
#include "support/test_util.h"
#include "tokenize/tokenizer.h"

using namespace zinf;
using namespace zinf::data;

namespace {

// About 1.3 MB of varied text: words, digits, punctuation before newlines,
// blank lines, runs of spaces, non-ASCII letters and emoji.
std::string varied_text() {
  const std::vector<std::string> parts = {"The", "quick", "brown", "fox.", "jumps,", "über", "naïve", "日本語",
                                          "👋🏽", "1234567", "x**2", "(a)", "don't", "  ", "\t", "ΣΑΣ", "İstanbul"};
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < (std::size_t(1300) << 10)) {
    for (int w = 0, n = 3 + int(rng() % 12); w < n; ++w) text += (w ? " " : "") + parts[rng() % parts.size()];
    const unsigned r = rng() % 10;
    text += r < 6 ? "\n" : r < 8 ? "\n\n" : r < 9 ? " \n" : "\r\n";
  }
  return text;
}

const std::string kFixtures = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/";

}  // namespace

TEST_CASE("a large text file is encoded in pieces with the whole file's ids, where the tokenizer allows it") {
  test::TempDir dir("zinf-pieces");
  const std::string text = varied_text();
  test::write_text(dir.file("big.txt"), text);
  struct Case {
    const char* name;
    bool pieces;
  };
  for (const Case c : {Case{"gpt2", true}, Case{"llama3", true}, Case{"qwen2", true}, Case{"lowercase-added", true},
                       Case{"llama2-json", false}, Case{"metaspace-first", false}}) {
    CAPTURE(c.name);
    const auto tok = tokenize::load_tokenizer(kFixtures + c.name);
    CHECK(tok->splits_after_newline() == c.pieces);
    tokenize::Ids want = tok->encode(text, false);
    want.push_back(*tok->eos_id());
    EncodeOptions opts;
    opts.threads = 2;
    std::vector<std::uint32_t> got;
    std::int64_t calls = 0, documents = 0;
    const CorpusProgress p = encode_corpus(*tok, {{dir.file("big.txt"), false}}, opts,
                                           [&](std::int64_t index, std::size_t, const EncodedDocument& e) {
                                             ++calls;
                                             CHECK(index == 0);
                                             if (!e.continues) ++documents;
                                             got.insert(got.end(), e.ids.begin(), e.ids.end());
                                           });
    CHECK(documents == 1);
    CHECK(p.documents == 1);
    CHECK((p.pieces >= 2) == c.pieces);
    CHECK(calls == p.pieces + 1);
    CHECK(got == want);  // the same ids, EOS once at the end
  }
}

TEST_CASE("a text file in pieces lands as one document across shards, on disk and in memory") {
  test::TempDir dir("zinf-pieces");
  const std::string text = varied_text();
  test::write_text(dir.file("big.txt"), text);
  const auto tok = tokenize::load_tokenizer(kFixtures + "gpt2");
  tokenize::Ids want = tok->encode(text, false);
  want.push_back(*tok->eos_id());

  PrepareOptions opts;
  opts.output_dir = dir.file("shards");
  opts.val_fraction = 0;
  opts.shard_tokens = 100000;  // pieces and shards cut in different places
  const PrepareResult r = prepare_shards(*tok, {dir.file("big.txt")}, opts);
  CHECK(r.totals.pieces >= 2);
  REQUIRE(r.train.size() >= 3);
  CHECK(r.train_documents == 1);
  const Tokens shards = load_tokens(dir.file("shards/train_*.bin"));
  REQUIRE(shards.size() == std::int64_t(want.size()));
  std::vector<std::int64_t> ids(want.size());
  shards.read(0, shards.size(), ids.data());
  CHECK(std::equal(ids.begin(), ids.end(), want.begin()));
  CHECK(shards.documents().size() == 1);

  const Tokens memory = load_dataset(dir.file("big.txt"), TokenFormat::kAuto, kFixtures + "gpt2", std::int64_t(tok->vocab_size()));
  REQUIRE(memory.size() == shards.size());
  std::vector<std::int64_t> mem(want.size());
  memory.read(0, memory.size(), mem.data());
  CHECK(mem == ids);
  CHECK(memory.documents().size() == 1);
}
