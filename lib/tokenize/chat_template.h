// zinf::tokenize — chat templates: a conversation to text, as Hugging Face
// transformers' apply_chat_template(tokenize=False) renders it.
// Implements: load_chat_template(), which reads "chat_template" (a string, or
// the list of {"name", "template"} whose "default" entry is used) and the
// bos/eos token strings from the tokenizer_config.json beside a tokenizer, and
// ChatTemplate, an interpreter for the subset of Jinja2 that real chat
// templates use, rendering with transformers' settings (trim_blocks,
// lstrip_blocks, raise_exception, tools and documents set to none):
//   - {{ }} output, {% if/elif/else/endif %}, {% for x in xs [if c] %} with
//     {% else %} and loop.index/index0/first/last/length/revindex/revindex0/
//     previtem/nextitem, {% set x = e %}, {% set ns.attr = e %} on a
//     namespace(...), {# comments #}, whitespace control ({%- -%} {{- -}} {%+);
//   - literals (strings, integers, true/false/none, lists), + - * // % ~,
//     comparisons, in / not in, and/or/not, x if c else y, subscripts and
//     slices, attribute access;
//   - filters trim, length/count, tojson, string, upper, lower, first, last;
//     string methods strip/lstrip/rstrip/startswith/endswith/upper/lower/
//     title/replace, dict .get; range(); tests defined/undefined/none/string/
//     number/integer/boolean/true/false/mapping/sequence/iterable/odd/even/
//     divisibleby; raise_exception(msg).
// Anything else (macros, call blocks, float literals, other filters, ...) is a
// UsageError naming the construct and its line and column in the template, at
// load time when the parser meets it, else when it is evaluated: a template is
// never rendered differently from Jinja2.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace zinf::tokenize {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", ...
  std::string content;
};

class ChatTemplate {
 public:
  // Parses `source`; `origin` names it in errors (the tokenizer_config.json
  // path). An absent bos/eos token is undefined in the template, as in
  // transformers, which passes only the special tokens a tokenizer has.
  ChatTemplate(const std::string& source, std::string origin, std::optional<std::string> bos_token,
               std::optional<std::string> eos_token);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // The text of `messages` (add_generation_prompt: end with the header that
  // opens the assistant's turn). Throws UsageError for raise_exception (its
  // message) and for an unsupported construct met while rendering.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  const std::string& origin() const { return origin_; }

 private:
  struct Program;
  std::unique_ptr<Program> program_;
  std::string origin_;
};

// The chat template of the tokenizer at `dir_or_file` (what load_tokenizer
// takes): from tokenizer_config.json in the directory, or beside the file.
// nullopt when there is no such file or it has no "chat_template". Throws
// UsageError for a malformed file or template.
std::optional<ChatTemplate> load_chat_template(const std::string& dir_or_file);

}  // namespace zinf::tokenize
