// Tests for zinf::tokenize: every fixture tokenizer's ids, ids with special
// tokens and decoded bytes equal the tokenizers library's (0.23.2) / SentencePiece's
// (tests/data/hf/tokenizers/*/expected.json), UTF-8 repair, and bad input.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"
#include "tokenize/tokenizer.h"
#include "tokenize/utf8.h"

namespace {
using namespace zinf::tokenize;
const std::string kDir = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/tokenizers/";

std::string unhex(const std::string& h) {
  std::string s;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) s.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return s;
}

void check_fixture(const std::string& name, int cases = 25) {
  auto tok = load_tokenizer(kDir + name);
  std::ifstream in(kDir + name + "/expected.json");
  const auto e = nlohmann::json::parse(in);
  int n = 0;
  for (const auto& c : e.at("cases")) {
    const std::string text = unhex(c.at("utf8_hex").get<std::string>());
    CAPTURE(name);
    CAPTURE(text);
    const auto ids = c.at("ids").get<Ids>();
    CHECK(tok->encode(text, false) == ids);
    CHECK(tok->encode(text, true) == c.at("ids_special").get<Ids>());
    CHECK(tok->decode(ids) == unhex(c.at("decoded_hex").get<std::string>()));
    ++n;
  }
  CHECK(n == cases);
}
}  // namespace

TEST_CASE("tokenize: gpt2 fixture equals the tokenizers library") { check_fixture("gpt2"); }
TEST_CASE("tokenize: llama3 fixture equals the tokenizers library") { check_fixture("llama3"); }
TEST_CASE("tokenize: qwen2 fixture equals the tokenizers library") { check_fixture("qwen2"); }
TEST_CASE("tokenize: llama2-json fixture equals the tokenizers library") { check_fixture("llama2-json"); }
TEST_CASE("tokenize: llama2-spm fixture equals SentencePiece") { check_fixture("llama2-spm"); }
// Lowercase with full case mapping (U+0130 -> "i\u0307"), added tokens matched
// in the normalized text (normalized: true) or in the raw text, single_word.
TEST_CASE("tokenize: lowercase-added fixture equals the tokenizers library") { check_fixture("lowercase-added", 30); }
// Metaspace prepend_scheme "first": the dummy prefix on the text's first piece only.
TEST_CASE("tokenize: metaspace-first fixture equals the tokenizers library") { check_fixture("metaspace-first", 30); }

TEST_CASE("tokenize: invalid UTF-8 becomes U+FFFD per maximal subpart, as Python's errors=replace") {
  std::size_t n = 0;
  CHECK(repair_utf8("bad \xff\xfe bytes", &n) == "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
  CHECK(n == 2);
  CHECK(repair_utf8("t \xe6\x97", &n) == "t \xEF\xBF\xBD");
  CHECK(n == 1);
  CHECK(repair_utf8("\xed\xa0\x80", &n) == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate: 3
  CHECK(repair_utf8("ok \xc3\xa9", &n) == "ok \xc3\xa9");
  CHECK(n == 0);
}

TEST_CASE("tokenize: bad tokenizer files are usage errors naming the file and what is allowed") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("zinf_tok_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir / name) << body;
    return (dir / name).string();
  };
  auto message = [](const std::string& p) -> std::string {
    try {
      load_tokenizer(p);
    } catch (const zinf::Error& e) {
      CHECK(e.code() == zinf::ExitCode::kUsage);
      return std::string(e.what()) + " | " + e.hint();
    }
    return "no error";
  };
  const std::string wp = write("wp.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  std::string m = message(wp);
  CHECK(m.find("WordPiece") != std::string::npos);
  CHECK(m.find("BPE") != std::string::npos);
  CHECK(m.find("wp.json") != std::string::npos);
  const std::string bad = write("bad.json", "{\"model\": ");
  m = message(bad);
  CHECK(m.find("bad.json is not valid JSON") != std::string::npos);
  const std::string pre = write("pre.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "pre_tokenizer": {"type": "CharDelimiterSplit", "delimiter": " "}})");
  m = message(pre);
  CHECK(m.find("CharDelimiterSplit") != std::string::npos);
  CHECK(m.find("ByteLevel") != std::string::npos);
  m = message((dir / "missing").string());
  CHECK(m.find("does not exist") != std::string::npos);
  m = message(dir.string());  // a directory without tokenizer files
  CHECK(m.find("no tokenizer.json or tokenizer.model") != std::string::npos);
  fs::remove_all(dir);
}
