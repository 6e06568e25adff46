// cli: fine-tuning data — JSONL prompt/completion examples, with the
// committed GPT-2-style tokenizer fixture: the loss counts completions only
// (a fixed answer after random prompts is learned; the same lines as plain
// text are not), every ZeRO path gives stage none's losses on padded,
// masked windows with gradient accumulation, `zinf tokenize` records the
// prompts in its index so training on its shards equals training on the
// JSONL, chat "messages" rendered by a ChatML template train and record the
// rendered prompt's length, and a line with chat messages but no template, a
// conversation not ending with the assistant or a line without the fields is
// refused.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "data/shard_writer.h"
#include "support/run_metrics.h"
#include "support/test_util.h"
#include "tokenize/tokenizer.h"

using nlohmann::json;
using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

// A tokenizer directory (the fixture + EOS) and 300 examples: a random
// question of Greek letters, always answered " yes".
struct Examples {
  TempDir dir{"zinf-finetune"};
  std::string tokenizer;
  std::vector<std::pair<std::string, std::string>> pairs;

  Examples() {
    tokenizer = zinf::test::make_gpt2_tokenizer_dir(dir.file("tok"));
    const std::vector<std::string> words = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
                                            "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma"};
    std::mt19937 rng(5);
    std::string sft, text;
    for (int i = 0; i < 300; ++i) {
      std::string q = "Q:";
      for (int w = 0, n = 4 + int(rng() % 5); w < n; ++w) q += " " + words[rng() % words.size()];
      pairs.push_back({q + "\nA:", " yes"});
      sft += json{{"prompt", pairs.back().first}, {"completion", pairs.back().second}}.dump() + "\n";
      text += json{{"text", pairs.back().first + pairs.back().second}}.dump() + "\n";
    }
    write_text(dir.file("sft.jsonl"), sft);
    write_text(dir.file("text.jsonl"), text);
  }

  // `zinf tokenize` of dir/NAME into dir/shards without validation, which
  // reports `examples` fine-tuning examples: the train shard's index.
  zinf::data::DocIndex tokenize(const std::string& name, std::int64_t examples) const {
    const auto r = run_zinf({"tokenize", "--tokenizer", tokenizer, dir.file(name), "--output-dir", dir.file("shards"),
                             "--val-fraction", "0"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("fine-tuning examples: " + std::to_string(examples)) != std::string::npos);
    zinf::data::DocIndex idx = zinf::data::read_doc_index(dir.file("shards/train_000000.idx"));
    REQUIRE(idx.prompts.size() == std::size_t(examples));
    return idx;
  }

  // A saved 2-step run on sft.jsonl, for zinf eval: its output directory dir/NAME.
  std::string trained_run(const std::string& name) const {
    std::vector<std::string> a = train(dir.file("sft.jsonl"), dir.file(name), 2);
    a.erase(std::find(a.begin(), a.end(), "--no-save"));
    const auto t = run_zinf(a);
    INFO(t.err);
    REQUIRE(t.exit_code == 0);
    return dir.file(name);
  }

  std::vector<std::string> train(const std::string& data, const std::string& out, int steps,
                                 std::vector<std::string> more = {}, int batch = 8) const {
    std::vector<std::string> a = {"train", "--device", "cpu", "--tokenizer", tokenizer, "--dataset-file", data,
                                  "--vocab-size", "640", "--hidden-size", "64", "--layers", "2", "--heads", "4",
                                  "--seq-len", "64", "--batch-size", std::to_string(batch), "--steps", std::to_string(steps),
                                  "--lr", "3e-3", "--output-dir", out, "--no-save"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
};

using zinf::test::step_losses;

double final_loss(const zinf::test::RunResult& r) {
  return json::parse(r.out.substr(r.out.find('{'))).at("final_loss").get<double>();
}

// Trains sft.jsonl for `steps` steps at each of `stages` ("none" first;
// "infinity-cpu" is the preset, the others --zero-stage) with `more` flags,
// micro-batch `batch` and a loss every step, runs `check` on each run, and
// checks every stage's losses against stage none's within 1e-5 relative.
void check_stages_agree(const Examples& e, const std::vector<std::string>& stages, const std::vector<std::string>& more,
                        int steps, int batch, const std::string& tag,
                        const std::function<void(const zinf::test::RunResult&)>& check = {}) {
  std::vector<double> none;
  for (const std::string& stage : stages) {
    std::vector<std::string> extra = more;
    extra.insert(extra.end(), {"--log-every", "1"});
    if (stage == "infinity-cpu") extra.insert(extra.end(), {"--preset", "infinity-cpu"});
    else extra.insert(extra.end(), {"--zero-stage", stage});
    const std::string out = e.dir.file(tag + "-" + stage);
    const auto r = run_zinf(e.train(e.dir.file("sft.jsonl"), out, steps, extra, batch), {{"OMP_NUM_THREADS", "1"}});
    INFO(stage, r.err);
    REQUIRE(r.exit_code == 0);
    if (check) check(r);
    const std::vector<double> l = step_losses(out);
    REQUIRE(l.size() == std::size_t(steps));
    if (stage == "none") {
      none = l;
      continue;
    }
    for (std::size_t i = 0; i < l.size(); ++i) CHECK(std::abs(l[i] - none[i]) <= 1e-5 * std::abs(none[i]));
  }
}

}  // namespace

TEST_CASE("fine-tuning examples: the loss counts completions only, so a fixed answer to random prompts is learned") {
  Examples e;
  const auto sft = run_zinf(e.train(e.dir.file("sft.jsonl"), e.dir.file("sft"), 40), {{"OMP_NUM_THREADS", "1"}});
  INFO(sft.err);
  REQUIRE(sft.exit_code == 0);
  CHECK(sft.err.find("cut by documents; fine-tuning examples: the loss counts completion tokens only") !=
        std::string::npos);
  CHECK(sft.err.find("longer than seq_len") == std::string::npos);  // nothing truncated at seq 64
  // The same lines as plain text: the random prompt words are targets too.
  const auto text = run_zinf(e.train(e.dir.file("text.jsonl"), e.dir.file("text"), 40), {{"OMP_NUM_THREADS", "1"}});
  INFO(text.err);
  REQUIRE(text.exit_code == 0);
  CHECK(final_loss(sft) < 0.6);
  CHECK(final_loss(text) > 2.0);
}

TEST_CASE("fine-tuning examples: zero1, zero3 and infinity-cpu give stage none's losses with grad-accum 2") {
  Examples e;
  check_stages_agree(e, {"none", "zero1", "zero3", "infinity-cpu"}, {"--grad-accum", "2"}, 6, 3, "run");
}

TEST_CASE("zinf tokenize records each example's prompt; training on its shards equals training on the JSONL") {
  Examples e;
  const zinf::data::DocIndex idx = e.tokenize("sft.jsonl", 300);
  const auto t = zinf::tokenize::load_tokenizer(e.tokenizer);
  for (std::size_t k : {std::size_t(0), std::size_t(17), std::size_t(299)}) {
    const std::int64_t prompt = std::int64_t(t->encode(e.pairs[k].first, false).size());
    const std::int64_t whole = prompt + std::int64_t(t->encode(e.pairs[k].second, false).size()) + 1;  // + EOS
    CHECK(idx.prompts[k] == prompt);
    const std::int64_t next = k + 1 < idx.starts.size() ? idx.starts[k + 1] : idx.tokens;
    CHECK(next - idx.starts[k] == whole);
  }
  write_text(e.dir.file("no-val.json"), R"({"zinf": {"data": {"val_fraction": 0}}})");
  const std::vector<std::string> flat = {"--log-every", "1", "--config", e.dir.file("no-val.json")};
  const auto shards = run_zinf(e.train(e.dir.file("shards/train_000000.bin"), e.dir.file("a"), 5, flat));
  const auto jsonl = run_zinf(e.train(e.dir.file("sft.jsonl"), e.dir.file("b"), 5, flat));
  INFO(shards.err, jsonl.err);
  REQUIRE(shards.exit_code == 0);
  REQUIRE(jsonl.exit_code == 0);
  CHECK(step_losses(e.dir.file("a")) == step_losses(e.dir.file("b")));
}

TEST_CASE("zinf eval on fine-tuning examples scores the completions only, one document window each") {
  Examples e;
  const std::string run = e.trained_run("run");
  const auto r = run_zinf({"eval", run, "--device", "cpu", "--dataset-file", e.dir.file("sft.jsonl"),
                           "--tokenizer", e.tokenizer, "--seq-len", "64", "--batch-size", "16"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json j = json::parse(r.out.substr(r.out.find('{')));
  const auto tok = zinf::tokenize::load_tokenizer(e.tokenizer);
  const std::int64_t per_example = std::int64_t(tok->encode(" yes", false).size()) + 1;  // + EOS
  CHECK(j["windows"].get<std::int64_t>() == 300);
  CHECK(j["tokens"].get<std::int64_t>() == 300 * per_example);
  CHECK(std::isfinite(j["loss"].get<double>()));
}

TEST_CASE("packed windows: zinf eval scores every example as document windows do, in fewer windows; stages agree") {
  Examples e;
  const std::string run = e.trained_run("run");
  json eval[2];
  for (int packed = 0; packed < 2; ++packed) {
    const auto r = run_zinf({"eval", run, "--device", "cpu", "--dataset-file", e.dir.file("sft.jsonl"),
                             "--tokenizer", e.tokenizer, "--seq-len", "64", "--batch-size", "16", "--data-windows",
                             packed ? "packed" : "documents"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    eval[packed] = json::parse(r.out.substr(r.out.find('{')));
  }
  // Each example alone in its window, or (20-30 tokens each at seq-len 64)
  // two to a window, attending only to itself: the same targets and loss.
  CHECK(eval[0]["windows"].get<std::int64_t>() == 300);
  CHECK(eval[1]["windows"].get<std::int64_t>() <= 150);
  CHECK(eval[1]["tokens"] == eval[0]["tokens"]);
  CHECK(eval[1]["loss"].get<double>() == doctest::Approx(eval[0]["loss"].get<double>()).epsilon(1e-5));

  // The window mode is part of the checkpoint's data fingerprint: the run
  // (document windows) does not resume as packed.
  std::vector<std::string> resume = e.train(e.dir.file("sft.jsonl"), run, 3, {"--resume", "--data-windows", "packed"});
  resume.erase(std::find(resume.begin(), resume.end(), "--no-save"));
  const auto refused = run_zinf(resume);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("dataset: the checkpoint's") != std::string::npos);

  check_stages_agree(e, {"none", "infinity-cpu"}, {"--grad-accum", "2", "--data-windows", "packed"}, 4, 2, "packed",
                     [](const zinf::test::RunResult& r) {
                       CHECK(r.err.find("cut by packed (") != std::string::npos);
                       CHECK(r.err.find("% of positions hold tokens); fine-tuning examples") != std::string::npos);
                     });
}

TEST_CASE("chat messages: every assistant reply of a ChatML conversation trains; the index records the turns between as context") {
  Examples e;
  // The fixture's ChatML template beside the tokenizer (EOS stays GPT-2's,
  // which the template never writes: the reply ends with <|im_end|>).
  json cfg = json::parse(read_text(std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/chat_templates/chatml/tokenizer_config.json"));
  cfg["eos_token"] = "<|endoftext|>";
  write_text(e.dir.file("tok/tokenizer_config.json"), cfg.dump());
  std::string lines;
  // Each line's rendered pieces: (text, trained).
  std::vector<std::vector<std::pair<std::string, bool>>> pieces;
  for (std::size_t k = 0; k < 40; ++k) {
    const std::string q = e.pairs[k].first;
    json msgs = json::array();
    std::vector<std::pair<std::string, bool>> p;
    if (k % 3 == 0) {  // a system turn and an earlier exchange: its reply trains too
      msgs.push_back({{"role", "system"}, {"content", "Be brief."}});
      msgs.push_back({{"role", "user"}, {"content", "hi"}});
      msgs.push_back({{"role", "assistant"}, {"content", "hello"}});
      p.push_back({"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
                   false});
      p.push_back({"hello<|im_end|>\n", true});
    }
    msgs.push_back({{"role", "user"}, {"content", q}});
    msgs.push_back({{"role", "assistant"}, {"content", "yes"}});
    p.push_back({"<|im_start|>user\n" + q + "<|im_end|>\n<|im_start|>assistant\n", false});
    p.push_back({"yes<|im_end|>\n", true});
    pieces.push_back(p);
    lines += json{{"messages", msgs}}.dump() + "\n";
  }
  write_text(e.dir.file("chat.jsonl"), lines);
  const auto run = run_zinf(e.train(e.dir.file("chat.jsonl"), e.dir.file("c"), 3), {{"OMP_NUM_THREADS", "1"}});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.err.find("fine-tuning examples: the loss counts completion tokens only") != std::string::npos);
  CHECK(run.err.find("train only their last assistant reply") == std::string::npos);

  const zinf::data::DocIndex idx = e.tokenize("chat.jsonl", 40);
  const auto t = zinf::tokenize::load_tokenizer(e.tokenizer);
  std::size_t run_index = 0;
  for (std::size_t k = 0; k < 40; ++k) {
    CAPTURE(k);
    std::int64_t at = 0;
    for (std::size_t i = 0; i < pieces[k].size(); ++i) {
      const auto n = std::int64_t(t->encode(pieces[k][i].first, false).size());
      if (i == 0) {
        CHECK(idx.prompts[k] == n);  // the first context piece is the prompt
      } else if (!pieces[k][i].second) {  // a later user turn: a context run of this document
        REQUIRE(run_index < idx.context.size());
        const zinf::data::ContextRun& r = idx.context[run_index++];
        CHECK(r.document == std::int64_t(k));
        CHECK(r.offset == at);
        CHECK(r.count == n);
      }
      at += n;
    }
    const std::int64_t next = k + 1 < idx.starts.size() ? idx.starts[k + 1] : idx.tokens;
    CHECK(next - idx.starts[k] == at);  // no EOS added
  }
  CHECK(run_index == idx.context.size());
  CHECK(idx.context.size() == 14);  // lines 0, 3, ..., 39
}

TEST_CASE("chat messages: a template that rewrites earlier replies trains only the last one, and says so") {
  Examples e;
  // Earlier replies render as "(earlier)" once another message follows: the
  // first reply cannot be cut from the whole conversation's text.
  const std::string tmpl =
      "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}<|im_start|>assistant\n(earlier)"
      "<|im_end|>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
  write_text(e.dir.file("tok/tokenizer_config.json"),
             json{{"chat_template", tmpl}, {"eos_token", "<|endoftext|>"}}.dump());
  const json msgs = json::array({{{"role", "user"}, {"content", "hi"}},
                                 {{"role", "assistant"}, {"content", "hello"}},
                                 {{"role", "user"}, {"content", "bye"}},
                                 {{"role", "assistant"}, {"content", "ciao"}}});
  write_text(e.dir.file("chat.jsonl"), json{{"messages", msgs}}.dump() + "\n" + json{{"messages", msgs}}.dump() + "\n");
  const auto r = run_zinf({"tokenize", "--tokenizer", e.tokenizer, e.dir.file("chat.jsonl"), "--output-dir",
                           e.dir.file("shards"), "--val-fraction", "0"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("2 conversations train only their last assistant reply") != std::string::npos);
  const zinf::data::DocIndex idx = zinf::data::read_doc_index(e.dir.file("shards/train_000000.idx"));
  const auto t = zinf::tokenize::load_tokenizer(e.tokenizer);
  const std::string prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n(earlier)<|im_end|>\n"
                             "<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\n";
  CHECK(idx.context.empty());
  REQUIRE(idx.prompts.size() == 2);
  CHECK(idx.prompts[0] == std::int64_t(t->encode(prompt, false).size()));
}

TEST_CASE("fine-tuning data: chat messages, a line without the fields and an unknown window mode are refused") {
  Examples e;
  write_text(e.dir.file("chat.jsonl"),
             R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})" "\n");
  const auto chat = run_zinf(e.train(e.dir.file("chat.jsonl"), e.dir.file("c"), 1));
  CHECK(chat.exit_code == 2);
  CHECK(chat.err.find("chat.jsonl:1 holds chat \"messages\", but the tokenizer") != std::string::npos);
  CHECK(chat.err.find("has no chat template") != std::string::npos);
  write_text(e.dir.file("ask.jsonl"), R"({"messages": [{"role": "user", "content": "hi"}]})" "\n");
  const auto ask = run_zinf(e.train(e.dir.file("ask.jsonl"), e.dir.file("a"), 1));
  CHECK(ask.exit_code == 2);
  CHECK(ask.err.find("ask.jsonl:1: the last message is from \"user\", not \"assistant\"") != std::string::npos);
  write_text(e.dir.file("half.jsonl"), R"({"prompt": "a"})" "\n" R"({"prompt": "b", "completion": 3})" "\n");
  const auto half = run_zinf(e.train(e.dir.file("half.jsonl"), e.dir.file("h"), 1));
  CHECK(half.exit_code == 2);
  CHECK(half.err.find("half.jsonl:1 has no field \"text\", nor \"prompt\" and \"completion\"") != std::string::npos);
  const auto windows = run_zinf(e.train(e.dir.file("sft.jsonl"), e.dir.file("w"), 1, {"--data-windows", "rows"}));
  CHECK(windows.exit_code == 2);
  CHECK(windows.err.find("'rows'") != std::string::npos);
  CHECK(windows.err.find("documents") != std::string::npos);
  CHECK(windows.err.find("packed") != std::string::npos);
}
