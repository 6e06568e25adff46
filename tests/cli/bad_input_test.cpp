// CLI: bad input is refused with exit code 2 and a message that names it:
// configuration files nested too deep, sizes whose products overflow,
// misspelt keys attributed to the file they came from; and every flag that
// an error hint names is one the binary accepts.
#include <doctest/doctest.h>

#include <cctype>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/test_util.h"

using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// Every "--flag" token in `text`.
std::set<std::string> flags_in(const std::string& text) {
  static const std::regex flag("--[a-z][a-z0-9-]*");
  std::set<std::string> out;
  for (std::sregex_iterator it(text.begin(), text.end(), flag), end; it != end; ++it) out.insert(it->str());
  return out;
}

// The flags `zinf --help` and `zinf <cmd> --help` list, for every subcommand.
std::set<std::string> flags_of_all_commands() {
  std::set<std::string> out;
  for (const char* cmd : {"", "train", "estimate", "validate-nvme", "config", "launch", "report", "export", "tokenize", "eval", "generate"}) {
    const auto r = *cmd ? run_zinf({cmd, "--help"}) : run_zinf({"--help"});
    REQUIRE_MESSAGE(r.exit_code == 0, cmd);
    const auto f = flags_in(r.out);
    out.insert(f.begin(), f.end());
  }
  return out;
}

// The string literals of one C++ source (comments and character literals
// skipped; raw strings are taken whole).
std::vector<std::string> string_literals(const std::string& src) {
  std::vector<std::string> out;
  auto word_char = [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; };
  for (std::size_t i = 0; i < src.size(); ++i) {
    const char c = src[i];
    const bool after_word = i > 0 && word_char(src[i - 1]);
    if (c == '/' && i + 1 < src.size() && src[i + 1] == '/') {
      i = src.find('\n', i);
      if (i == std::string::npos) break;
    } else if (c == '/' && i + 1 < src.size() && src[i + 1] == '*') {
      i = src.find("*/", i + 2);
      if (i == std::string::npos) break;
      ++i;
    } else if (c == '\'' && !after_word) {  // not a digit separator
      for (++i; i < src.size() && src[i] != '\''; ++i)
        if (src[i] == '\\') ++i;
    } else if (c == 'R' && !after_word && i + 1 < src.size() && src[i + 1] == '"') {
      const std::size_t open = src.find('(', i);
      const std::string close = ")" + src.substr(i + 2, open - i - 2) + "\"";
      const std::size_t end = src.find(close, open);
      if (end == std::string::npos) break;
      out.push_back(src.substr(open + 1, end - open - 1));
      i = end + close.size() - 1;
    } else if (c == '"') {
      std::string lit;
      for (++i; i < src.size() && src[i] != '"'; ++i) {
        if (src[i] == '\\') lit += src[i++];
        lit += src[i];
      }
      out.push_back(lit);
    }
  }
  return out;
}

// The string literals of the C++ sources under `dir`, with their files.
std::vector<std::pair<std::string, std::string>> literals_under(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || (ext != ".cpp" && ext != ".h")) continue;
    for (auto& lit : string_literals(read_text(entry.path().string())))
      out.push_back({entry.path().string(), std::move(lit)});
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------ hints

TEST_CASE("bad input: the --strict-nvme failure's hint names a flag zinf train accepts") {
  TempDir dir("zinf-cli-bad");
  write_text(dir.file("blocker"), "a file where the swap directory should be");
  const auto r = run_zinf({"train", "--device", "cpu", "--model", "tiny", "--seq-len", "32", "--batch-size", "2",
                           "--steps", "1", "--output-dir", dir.file("out"), "--zero-stage", "infinity",
                           "--nvme-offload-path", dir.file("blocker/swap"), "--strict-nvme"});
  CHECK(r.exit_code == 3);
  REQUIRE(has(r.err, "NVMe offload is unusable"));
  CHECK(has(r.err, "--nvme-offload-path"));
  const auto help = run_zinf({"train", "--help"});
  REQUIRE(help.exit_code == 0);
  const auto accepted = flags_in(help.out);
  const auto named = flags_in(r.err);
  CHECK(!named.empty());
  for (const auto& f : named) {
    CAPTURE(f);
    CHECK(accepted.count(f) == 1);
  }
}

TEST_CASE("bad input: zinf train --optimize names train's flags, and estimate's only as zinf estimate's") {
  TempDir dir("zinf-cli-bad");
  // 3.3e12 parameters on a CPU: no memory holds it, and without an NVMe path its space is unknown
  const auto r = run_zinf({"train", "--optimize", "--hidden-size", "65536", "--layers", "64", "--heads", "64",
                           "--device", "cpu", "--steps", "1", "--output-dir", dir.file("out")});
  CAPTURE(r.err);
  REQUIRE(r.exit_code == 3);
  std::string own = r.err, estimate;
  for (std::size_t at; (at = own.find("(zinf estimate ")) != std::string::npos;) {
    const std::size_t end = own.find(')', at);
    estimate += own.substr(at, end - at);
    own.erase(at, end - at);
  }
  const auto train_flags = flags_in(run_zinf({"train", "--help"}).out);
  const auto estimate_flags = flags_in(run_zinf({"estimate", "--help"}).out);
  for (const auto& f : flags_in(own)) {
    CAPTURE(f);
    CHECK(train_flags.count(f) == 1);
  }
  for (const auto& f : flags_in(estimate)) {
    CAPTURE(f);
    CHECK(estimate_flags.count(f) == 1);
  }
}

TEST_CASE("bad input: every --flag named in a message of lib/ or apps/ is a flag of some zinf subcommand") {
  const auto accepted = flags_of_all_commands();
  // Flags of other programs that hints tell people to use, and zinf launch's
  // hidden flag for the launchers it starts itself.
  const std::set<std::string> elsewhere = {"--nproc-per-node", "--security-opt", "--lifeline-stdin"};
  std::vector<std::pair<std::string, std::string>> literals;
  for (const char* dir : {"/lib", "/apps"}) {
    const auto found = literals_under(std::string(ZINF_SOURCE_DIR) + dir);
    literals.insert(literals.end(), found.begin(), found.end());
  }
  REQUIRE(literals.size() > 1000);
  for (const auto& [file, literal] : literals) {
    for (const auto& f : flags_in(literal)) {
      if (elsewhere.count(f)) continue;
      CAPTURE(file);
      CAPTURE(literal);
      CHECK_MESSAGE(accepted.count(f) == 1, f);
    }
  }
}

// ---------------------------------------------------------------- origins

TEST_CASE("bad input: zinf config names the file a misspelt section came from") {
  TempDir dir("zinf-cli-bad");
  write_text(dir.file("ds.json"), R"({"zero_optimization": {"offload_parm": {"device": "cpu"}}})");
  const auto r = run_zinf({"config", "--config", dir.file("ds.json")});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "unknown key 'zero_optimization.offload_parm' (in file " + dir.file("ds.json") + ")"));
  CHECK_FALSE(has(r.err, "(in default)"));
}

// ---------------------------------------------------------------- nesting

TEST_CASE("bad input: config files nested 50,000 levels deep exit 2 naming the file and the limit") {
  TempDir dir("zinf-cli-bad");
  const int n = 50000;
  std::string json;
  for (int i = 0; i < n; ++i) json += "{\"a\": ";
  json += "1" + std::string(n, '}');
  write_text(dir.file("deep.json"), json);
  write_text(dir.file("deep.yaml"), "zero_optimization: " + std::string(n, '[') + std::string(n, ']') + "\n");
  for (const char* cmd : {"config", "estimate"}) {
    for (const auto& [file, where] : std::vector<std::pair<std::string, std::string>>{
             {dir.file("deep.json"), dir.file("deep.json") + ":1:"}, {dir.file("deep.yaml"), dir.file("deep.yaml") + ":1:"}}) {
      CAPTURE(cmd);
      CAPTURE(file);
      const auto r = run_zinf({cmd, "--config", file});
      CHECK(r.exit_code == 2);
      CHECK(has(r.err, where));
      CHECK(has(r.err, "nested more than 64 levels deep"));
    }
  }
  // the same through ZINF_CONFIG, for zinf train
  const auto r = run_zinf({"train", "--output-dir", dir.file("out")}, {{"ZINF_CONFIG", dir.file("deep.json")}});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "nested more than 64 levels deep (at a.a.a.a.a.a.a.a...)"));
}

// ------------------------------------------------------------------ sizes

TEST_CASE("bad input: sizes too large for 64-bit arithmetic exit 2 naming the inputs, never a negative size") {
  auto r = run_zinf({"config", "--hidden-size", "9000000000", "--layers", "1", "--heads", "1"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "zinf.model.hidden_size = 9000000000: above the largest supported 1048576 (set by flag --hidden-size)"));
  CHECK(r.out.empty());

  r = run_zinf({"estimate", "--params", "1e12", "--seq-len", "1e9", "--batch-size", "1e9"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "zinf.model.seq_len = 1000000000: above the largest supported 16777216 (set by flag --seq-len)"));
  CHECK_FALSE(has(r.out, "-"));

  r = run_zinf({"estimate", "--params", "1e12", "--seq-len", "1e6", "--batch-size", "1e6", "--json"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "the activation bytes would overflow 64-bit integers (seq_len 1000000, micro-batch 1000000, hidden "));
  CHECK(r.out.empty());

  r = run_zinf({"estimate", "--params", "2e15"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "parameter count (--params) 2000000000000000 is above the largest supported 1125899906842624"));

  // at the largest count on many GPUs: sub-groups follow the --params model, and no size is negative
  r = run_zinf({"estimate", "--params", "1e15", "--gpus", "1024", "--device", "cuda", "--gpu-memory-gb", "80", "--json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK_FALSE(has(r.out, "\": -"));
}

// ------------------------------------------------------------------ files

TEST_CASE("bad input: --config /dev/zero exits 2 instead of reading forever") {
  const auto r = run_zinf({"config", "--config", "/dev/zero"});
  CHECK(r.exit_code == 2);
  CHECK(has(r.err, "config file '/dev/zero' holds more than the 16777216 bytes (16.00 MiB)"));
}
