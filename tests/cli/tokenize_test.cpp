// cli: `zinf tokenize` on a small corpus (text files, a subdirectory, JSONL)
// with the committed GPT-2-style tokenizer fixture: the shards hold exactly
// tokenizer.encode(document) + EOS per document in input order, split as
// asked, with the document index and manifest to match; 1 and 4 threads
// write identical bytes; the bad-input errors; a killed run leaves only
// temporaries; and `zinf train --tokenizer`.
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/fs.h"
#include "data/shard_writer.h"
#include "data/token_file.h"
#include "support/test_util.h"
#include "tokenize/tokenizer.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

const std::string& kFixture = zinf::test::kGpt2TokenizerJson;

// The corpus, in the order zinf numbers its documents.
struct Corpus {
  TempDir dir{"zinf-tokenize"};
  std::vector<std::string> docs;
  std::string tokenizer;  // directory: the fixture + tokenizer_config.json naming EOS

  Corpus() {
    namespace sfs = std::filesystem;
    sfs::create_directories(dir.file("corpus/sub"));
    tokenizer = zinf::test::make_gpt2_tokenizer_dir(dir.file("tok"));
    docs.push_back("Hello world! This is the first document.\n");
    docs.push_back("  leading spaces, digits 12345 and\ttabs\n\nand lines  ");
    docs.push_back("The sub-directory's document.");
    write_text(dir.file("corpus/a.txt"), docs[0]);
    write_text(dir.file("corpus/b.txt"), docs[1]);
    write_text(dir.file("corpus/sub/c.txt"), docs[2]);
    std::string lines;
    for (const std::string d : {"json one", "caf\u00e9 \u65e5\u672c \U0001F600 emoji", "", "line \"four\"\nwith a newline",
                                "five", "six six six"}) {
      docs.push_back(d);
      lines += json{{"text", d}, {"id", docs.size()}}.dump() + "\n";
      if (docs.size() == 5) lines += "\n";  // a blank line is skipped, not a document
    }
    write_text(dir.file("d.jsonl"), lines);
  }
  std::vector<std::string> args(const std::string& out, std::vector<std::string> more) const {
    std::vector<std::string> a = {"tokenize", "--tokenizer", tokenizer, dir.file("corpus"), dir.file("d.jsonl"),
                                  "--output-dir", out};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

std::vector<std::int64_t> tokens_of(const std::string& spec) {
  const zinf::data::Tokens t = zinf::data::load_tokens(spec);
  std::vector<std::int64_t> v(static_cast<std::size_t>(t.size()));
  t.read(0, t.size(), v.data());
  return v;
}

}  // namespace

TEST_CASE("tokenize: shards hold encode(document) + EOS in input order, split and indexed as asked") {
  Corpus c;
  const auto tok = zinf::tokenize::load_tokenizer(c.tokenizer);
  REQUIRE(tok->eos_id());
  const std::string out = c.dir.file("out");
  const auto r = run_zinf(c.args(out, {"--val-docs", "2", "--threads", "2"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("throughput: 9 docs") != std::string::npos);
  CHECK(r.out.find("tokens/s") != std::string::npos);

  // Expected: every document encoded without special tokens, then EOS.
  std::vector<std::int64_t> val, train, starts;
  for (std::size_t i = 0; i < c.docs.size(); ++i) {
    std::vector<std::int64_t>& dst = i < 2 ? val : train;
    if (i >= 2) starts.push_back(static_cast<std::int64_t>(train.size()));
    for (std::uint32_t id : tok->encode(c.docs[i], false)) dst.push_back(id);
    dst.push_back(*tok->eos_id());
  }
  CHECK(tokens_of(out + "/val_000000.bin") == val);
  CHECK(tokens_of(out + "/train_000000.bin") == train);
  CHECK_FALSE(zinf::fs::exists(out + "/train_000001.bin"));

  const zinf::data::DocIndex idx = zinf::data::read_doc_index(out + "/train_000000.idx");
  CHECK(idx.starts == starts);
  CHECK(idx.tokens == static_cast<std::int64_t>(train.size()));
  CHECK(zinf::data::read_doc_index(out + "/val_000000.idx").starts == std::vector<std::int64_t>{0, std::int64_t(
                                                                          tok->encode(c.docs[0], false).size() + 1)});

  const json m = json::parse(read_text(out + "/manifest.json"));
  CHECK(m["documents"]["train"] == 7);
  CHECK(m["documents"]["val"] == 2);
  CHECK(m["tokens"]["train"] == train.size());
  CHECK(m["tokens"]["val"] == val.size());
  CHECK(m["tokenizer"]["vocab_size"] == 600);
  CHECK(m["tokenizer"]["eos_id"] == *tok->eos_id());
  CHECK(m["token_dtype"] == "uint16");
  CHECK(m["inputs"].size() == 4);
  CHECK(m["inputs"][3]["documents"] == 6);
  CHECK(m["shards"]["train"][0]["file"] == "train_000000.bin");
  for (const auto& e : std::filesystem::directory_iterator(out))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("tokenize: small shards split documents across files; 1 and 4 threads write the same bytes") {
  Corpus c;
  const std::string one = c.dir.file("one"), four = c.dir.file("four");
  const auto r1 = run_zinf(c.args(one, {"--val-fraction", "0.5", "--shard-tokens", "7", "--threads", "1"}));
  const auto r4 = run_zinf(c.args(four, {"--val-fraction", "0.5", "--shard-tokens", "7", "--threads", "4"}));
  INFO(r1.err, r4.err);
  REQUIRE(r1.exit_code == 0);
  REQUIRE(r4.exit_code == 0);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(one)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names.size() > 6);
  for (const std::string& n : names) {
    if (n == "manifest.json") continue;
    CHECK_MESSAGE(read_text(one + "/" + n) == read_text(four + "/" + n), n);
  }
  // --val-fraction 0.5: every 2nd document from document 0 (0, 2, 4, 6, 8).
  const json m = json::parse(read_text(one + "/manifest.json"));
  CHECK(m["documents"]["val"] == 5);
  CHECK(m["documents"]["train"] == 4);
  CHECK(m["split"]["k"] == 2);
  const auto tok = zinf::tokenize::load_tokenizer(c.tokenizer);
  std::vector<std::int64_t> train;
  for (std::size_t i = 1; i < c.docs.size(); i += 2) {
    for (std::uint32_t id : tok->encode(c.docs[i], false)) train.push_back(id);
    train.push_back(*tok->eos_id());
  }
  CHECK(tokens_of(one + "/train_*.bin") == train);
  for (const auto& s : m["shards"]["train"]) CHECK(s["tokens"].get<int>() <= 7);
  CHECK(m["shards"]["train"][1]["continues_previous"].is_boolean());
}

TEST_CASE("tokenize: a SentencePiece tokenizer.model writes encode(document) + </s>") {
  Corpus c;
  const std::string spm = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/llama2-spm";
  const auto tok = zinf::tokenize::load_tokenizer(spm);
  REQUIRE(tok->eos_id());
  const std::string out = c.dir.file("out");
  const auto r = run_zinf({"tokenize", "--tokenizer", spm, c.dir.file("corpus"), "-o", out, "--val-fraction", "0"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<std::int64_t> expect;
  for (std::size_t i = 0; i < 3; ++i) {
    for (std::uint32_t id : tok->encode(c.docs[i], false)) expect.push_back(id);
    expect.push_back(*tok->eos_id());
  }
  CHECK(tokens_of(out + "/train_000000.bin") == expect);
}

TEST_CASE("tokenize: a vocabulary beyond 16 bits writes uint32 shards") {
  Corpus c;
  json t = json::parse(read_text(kFixture));
  t["added_tokens"].push_back({{"id", 70000}, {"content", "<|big|>"}, {"single_word", false}, {"lstrip", false},
                               {"rstrip", false}, {"normalized", false}, {"special", true}});
  write_text(c.dir.file("big.json"), t.dump());
  write_text(c.dir.file("tokenizer_config.json"), R"({"eos_token": "<|big|>"})");
  const std::string out = c.dir.file("out");
  const auto r = run_zinf({"tokenize", "--tokenizer", c.dir.file("big.json"), c.dir.file("corpus/a.txt"), "-o", out,
                           "--val-fraction", "0"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string bin = read_text(out + "/train_000000.bin");
  std::int32_t magic = 0;
  std::memcpy(&magic, bin.data(), 4);
  CHECK(magic == 20240801);
  const std::vector<std::int64_t> ids = tokens_of(out + "/train_000000.bin");
  CHECK(ids.back() == 70000);
  CHECK(json::parse(read_text(out + "/manifest.json"))["token_dtype"] == "uint32");
}

TEST_CASE("tokenize: bad input fails with a clear message and leaves no shards") {
  Corpus c;
  const std::string out = c.dir.file("out");
  auto fails = [&](const std::vector<std::string>& a, const std::string& expect) {
    const auto r = run_zinf(a);
    INFO(r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find(expect) != std::string::npos);
  };
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("nope.txt"), "-o", out},
        "input '" + c.dir.file("nope.txt") + "' does not exist");

  write_text(c.dir.file("bad.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \"cut\n");
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("corpus"), c.dir.file("bad.jsonl"), "-o", out},
        c.dir.file("bad.jsonl") + ":2 is not valid JSON");
  write_text(c.dir.file("field.jsonl"), "{\"text\": \"fine\"}\n\n{\"content\": \"x\"}\n");
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("field.jsonl"), "-o", out},
        c.dir.file("field.jsonl") + ":3 has no field \"text\"");
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("field.jsonl"), "-o", out, "--text-field", "body"},
        ":1 has no field \"body\"");
  // Nothing of the failed runs looks complete.
  if (zinf::fs::exists(out))
    for (const auto& e : std::filesystem::directory_iterator(out)) FAIL_CHECK("left behind: " << e.path());

  json t = json::parse(read_text(kFixture));
  t["model"]["type"] = "WordPiece";
  std::filesystem::create_directories(c.dir.file("wp"));
  write_text(c.dir.file("wp/tokenizer.json"), t.dump());
  fails({"tokenize", "--tokenizer", c.dir.file("wp"), c.dir.file("corpus"), "-o", out},
        "unsupported model type 'WordPiece'");

  json noeos = json::parse(read_text(kFixture));
  noeos["added_tokens"][0]["content"] = "<|pad|>";
  noeos["model"]["vocab"]["<|pad|>"] = 0;
  noeos["model"]["vocab"].erase("<|endoftext|>");
  std::filesystem::create_directories(c.dir.file("noeos"));
  write_text(c.dir.file("noeos/tokenizer.json"), noeos.dump());
  fails({"tokenize", "--tokenizer", c.dir.file("noeos"), c.dir.file("corpus"), "-o", out}, "--no-eos");
  const auto ok = run_zinf({"tokenize", "--tokenizer", c.dir.file("noeos"), c.dir.file("corpus"), "-o", out,
                            "--no-eos", "--val-fraction", "0"});
  CHECK(ok.exit_code == 0);

  write_text(c.dir.file("a-file"), "x");
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("corpus"), "-o", c.dir.file("a-file/out")},
        "cannot create directory '" + c.dir.file("a-file/out") + "'");
  fails({"tokenize", "--tokenizer", c.tokenizer, c.dir.file("corpus"), "-o", out, "--val-docs", "3"},
        "no documents left for training");
}

TEST_CASE("tokenize: a run killed mid-way leaves only .tmp files, nothing that looks complete") {
  Corpus c;
  std::string lines;  // ~60k small documents: several batches of 16384
  for (int i = 0; lines.size() < (std::size_t(6) << 20); ++i)
    lines += json{{"text", "Document number " + std::to_string(i) + " is short but not empty, " +
                               std::to_string(i * 7919 % 100003) + "."}}.dump() + "\n";
  write_text(c.dir.file("many.jsonl"), lines);
  const std::string out = c.dir.file("out");
  zinf::test::Background bg;
  zinf::test::start_zinf(bg, c.dir.file("t.out"), c.dir.file("t.err"),
                         {"tokenize", "--tokenizer", c.tokenizer, c.dir.file("many.jsonl"), "-o", out, "--threads", "1",
                          "--val-fraction", "0.01"});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!zinf::fs::exists(out + "/train_000000.bin.tmp") && !bg.wait_exit(std::chrono::milliseconds(0)) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (bg.wait_exit(std::chrono::milliseconds(0))) {
    MESSAGE("the run finished before it could be killed; nothing to check");
    return;
  }
  ::kill(bg.pid, SIGKILL);
  REQUIRE(bg.wait_exit(std::chrono::seconds(10)));
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(out)) left.push_back(e.path().filename().string());
  CHECK(!left.empty());
  for (const std::string& n : left) CHECK_MESSAGE(n.find(".tmp") != std::string::npos, n);
}

TEST_CASE("train --tokenizer encodes a text dataset with the tokenizer and checks the vocabulary") {
  Corpus c;
  std::string text;
  for (int i = 0; text.size() < 20000; ++i) text += "Document " + std::to_string(i) + " says hello to the world. ";
  write_text(c.dir.file("big.txt"), text);
  const std::vector<std::string> train = {"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32",
                                          "--batch-size", "2", "--steps", "2", "--dataset-file", c.dir.file("big.txt"),
                                          "--tokenizer", c.tokenizer, "--output-dir", c.dir.file("run"), "--no-save"};
  auto with_vocab = [&](const std::string& v) {
    std::vector<std::string> a = train;
    a.insert(a.end(), {"--vocab-size", v});
    return run_zinf(a, {{"OMP_NUM_THREADS", "1"}});
  };
  const auto r = with_vocab("640");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("step 2/2") != std::string::npos);

  const auto small = with_vocab("512");
  CHECK(small.exit_code == 2);
  CHECK(small.err.find("has 600 ids but the model's vocabulary has 512") != std::string::npos);
}
