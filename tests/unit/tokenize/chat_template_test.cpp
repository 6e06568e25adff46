// Tests for zinf::tokenize chat templates: every fixture template
// (tests/data/hf/chat_templates/*, real tokenizer_config.json templates)
// renders every fixture conversation as transformers' apply_chat_template
// did (expected.json, made by render_expected.py), Jinja semantics the
// fixtures do not reach equal jinja2's (semantics.json), and unsupported
// syntax and raise_exception are errors that name what and where.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "core/error.h"
#include "tokenize/chat_template.h"

namespace {
using namespace zinf::tokenize;
using nlohmann::json;
const std::string kDir = std::string(ZINF_SOURCE_DIR) + "/tests/data/hf/chat_templates/";

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in);
  return json::parse(in);
}

// The error message (and hint) of rendering `source`, or "no error".
std::string failure(const std::string& source, const std::vector<ChatMessage>& msgs = {{"user", "hi"}}) {
  try {
    ChatTemplate t(source, "test.json", "<s>", "</s>");
    t.render(msgs, false);
  } catch (const zinf::Error& e) {
    CHECK(e.code() == zinf::ExitCode::kUsage);
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("chat template: every fixture conversation renders as transformers' apply_chat_template") {
  const json convs = read_json(kDir + "conversations.json").at("conversations");
  const json expected = read_json(kDir + "expected.json");
  CHECK(expected.at("renderer").get<std::string>().rfind("transformers", 0) == 0);
  int n = 0, errors = 0;
  for (const json& c : expected.at("cases")) {
    const std::string name = c.at("template");
    CAPTURE(name);
    CAPTURE(c.at("conversation").get<std::string>());
    const std::optional<ChatTemplate> t = load_chat_template(kDir + name);
    REQUIRE(t.has_value());
    std::vector<ChatMessage> msgs;
    for (const json& conv : convs)
      if (conv.at("name") == c.at("conversation"))
        for (const json& m : conv.at("messages")) msgs.push_back({m.at("role"), m.at("content")});
    REQUIRE(!msgs.empty());
    const bool gen = c.at("add_generation_prompt");
    if (c.contains("text")) {
      CHECK(t->render(msgs, gen) == c.at("text").get<std::string>());
    } else {
      std::string msg = "no error";
      try {
        t->render(msgs, gen);
      } catch (const zinf::Error& e) {
        msg = e.what();
      }
      CHECK(msg.find(c.at("error").get<std::string>()) != std::string::npos);
      ++errors;
    }
    ++n;
  }
  CHECK(n == 50);
  CHECK(errors == 6);  // Mistral's template refuses a system turn and two user turns in a row
}

TEST_CASE("chat template: loops, scopes, namespaces, whitespace control, filters and tests equal jinja2") {
  const std::vector<ChatMessage> msgs = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
  for (const json& c : read_json(kDir + "semantics.json").at("cases")) {
    const std::string source = c.at(0);
    CAPTURE(source);
    ChatTemplate t(source, "test.json", std::nullopt, std::nullopt);
    CHECK(t.render(msgs, false) == c.at(1).get<std::string>());
  }
}

TEST_CASE("chat template: unsupported syntax is an error naming the construct and its line and column") {
  std::string m = failure("ok\n  {% macro m() %}{% endmacro %}");
  CHECK(m.find("test.json: the chat template uses the {% macro %} tag (line 2, column 3)") != std::string::npos);
  m = failure("{{ messages | wordcount }}");
  CHECK(m.find("the filter |wordcount (line 1, column 13)") != std::string::npos);
  CHECK(failure("{{ 1.5 }}").find("a float") != std::string::npos);
  CHECK(failure("{{ strftime_now('%d %b %Y') }}").find("the function strftime_now()") != std::string::npos);
  CHECK(failure("{% for k, v in x %}{% endfor %}").find("unpacking several loop variables") != std::string::npos);
  CHECK(failure("{{ messages }}").find("printing a list") != std::string::npos);
  CHECK(failure("{{ 'stra\xc3\x9f" "e' | upper }}").find("cases specially") != std::string::npos);
  CHECK(failure("{% if true %}x").find("the template ends before {% endif %}") != std::string::npos);
  CHECK(failure("{{ 'a' + 1 }}").find("'+' between a string and a integer") != std::string::npos);
  CHECK(failure("{{ x.y }}").find("'x' is undefined (reading .y)") != std::string::npos);
}

TEST_CASE("chat template: raise_exception is an error carrying the template's message") {
  const std::string m = failure("{% if messages[0].role == 'user' %}{{ raise_exception('System role required') }}{% endif %}");
  CHECK(m.find("test.json: the chat template refused the conversation: System role required") != std::string::npos);
}

TEST_CASE("chat template: tokenizer_config.json's named-template list uses \"default\"; none is nullopt") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("zinf_chat_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const json& j) { std::ofstream(dir / "tokenizer_config.json") << j.dump(); };
  write({{"eos_token", {{"content", "<e>"}}},
         {"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}},
                                        {{"name", "default"}, {"template", "{{ messages[0].content }}{{ eos_token }}"}}})}});
  std::optional<ChatTemplate> t = load_chat_template(dir.string());
  REQUIRE(t.has_value());
  CHECK(t->render({{"user", "hi"}}, false) == "hi<e>");
  write({{"chat_template", json::array({{{"name", "tool_use"}, {"template", "T"}}})}});
  std::string m = "no error";
  try {
    load_chat_template((dir / "tokenizer.json").string());
  } catch (const zinf::Error& e) {
    m = e.what();
  }
  CHECK(m.find("lists templates (tool_use) but none named \"default\"") != std::string::npos);
  write({{"eos_token", "</s>"}});
  CHECK(!load_chat_template(dir.string()).has_value());
  fs::remove_all(dir);
}
