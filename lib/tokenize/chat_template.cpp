// zinf::tokenize — chat templates: the Jinja2-subset interpreter and the
// tokenizer_config.json loader (see chat_template.h for the subset).
#include "tokenize/chat_template.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "tokenize/utf8.h"

namespace zinf::tokenize {
namespace {

constexpr const char* kHint =
    "zinf renders the Jinja subset of chat templates listed in docs/data.md; write the example as \"prompt\" and "
    "\"completion\" instead, rendered with transformers' apply_chat_template";

// ---------------------------------------------------------------- values

struct Value;
using List = std::vector<Value>;

// A mapping with string keys, in insertion order (as a Python dict).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
};

struct Value {
  enum class T { kUndefined, kNone, kBool, kInt, kString, kList, kDict };
  T t = T::kUndefined;
  bool b = false;
  std::int64_t i = 0;
  std::string s;                // the string; for an undefined value, the name looked up
  std::shared_ptr<List> list;   // shared: values are copied freely, never changed
  std::shared_ptr<Dict> dict;   // shared; changed only when namespace is set
  bool namespace_ = false;      // namespace(): the one mapping {% set ns.x %} changes

  static Value undefined(std::string name) {
    Value v;
    v.s = std::move(name);
    return v;
  }
  static Value none() { return of(T::kNone); }
  static Value boolean(bool x) {
    Value v = of(T::kBool);
    v.b = x;
    return v;
  }
  static Value integer(std::int64_t x) {
    Value v = of(T::kInt);
    v.i = x;
    return v;
  }
  static Value str(std::string x) {
    Value v = of(T::kString);
    v.s = std::move(x);
    return v;
  }
  static Value of_list(List x) {
    Value v = of(T::kList);
    v.list = std::make_shared<List>(std::move(x));
    return v;
  }
  static Value of_dict(Dict x) {
    Value v = of(T::kDict);
    v.dict = std::make_shared<Dict>(std::move(x));
    return v;
  }
  bool numeric() const { return t == T::kInt || t == T::kBool; }
  std::int64_t number() const { return t == T::kBool ? std::int64_t(b) : i; }

 private:
  static Value of(T t) {
    Value v;
    v.t = t;
    return v;
  }
};

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

const char* type_name(const Value& v) {
  switch (v.t) {
    case Value::T::kUndefined: return "undefined";
    case Value::T::kNone: return "none";
    case Value::T::kBool: return "boolean";
    case Value::T::kInt: return "integer";
    case Value::T::kString: return "string";
    case Value::T::kList: return "list";
    case Value::T::kDict: return v.namespace_ ? "namespace" : "dict";
  }
  return "value";
}

bool truthy(const Value& v) {
  switch (v.t) {
    case Value::T::kUndefined:
    case Value::T::kNone: return false;
    case Value::T::kBool: return v.b;
    case Value::T::kInt: return v.i != 0;
    case Value::T::kString: return !v.s.empty();
    case Value::T::kList: return !v.list->empty();
    case Value::T::kDict: return !v.dict->items.empty();
  }
  return false;
}

// Python's ==: True == 1, and two undefined values are equal (Jinja's Undefined).
bool equal(const Value& a, const Value& b) {
  if (a.numeric() && b.numeric()) return a.number() == b.number();
  if (a.t != b.t) return false;
  switch (a.t) {
    case Value::T::kUndefined:
    case Value::T::kNone: return true;
    case Value::T::kString: return a.s == b.s;
    case Value::T::kList:
      if (a.list->size() != b.list->size()) return false;
      for (std::size_t k = 0; k < a.list->size(); ++k)
        if (!equal((*a.list)[k], (*b.list)[k])) return false;
      return true;
    case Value::T::kDict:
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* w = b.dict->find(k);
        if (!w || !equal(v, *w)) return false;
      }
      return true;
    default: return false;
  }
}

std::u32string code_points(const std::string& s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) out.push_back(next_code_point(s, i));
  return out;
}

std::string to_utf8(const std::u32string& cps) {
  std::string out;
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

// Python's str.isspace(), which str.strip() and Jinja's trim use.
bool py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// str.strip / lstrip / rstrip: `chars` (when given) instead of whitespace.
std::string py_strip(const std::string& s, bool left, bool right, const std::optional<std::string>& chars) {
  const std::u32string cps = code_points(s);
  const std::u32string set = chars ? code_points(*chars) : std::u32string();
  auto strip = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_space(c); };
  std::size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip(cps[b])) ++b;
  if (right)
    while (e > b && strip(cps[e - 1])) --e;
  return to_utf8(cps.substr(b, e - b));
}

bool cased(char32_t c) {
  const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}

enum class Case { kUpper, kLower, kTitle };

// Characters whose Python case change is not one code point for one (ß ->
// SS, ligatures, polytonic Greek, dotted I) or depends on context (final
// sigma): utf8proc's simple mappings would change them differently.
bool special_case(char32_t c) {
  return c == 0xdf || c == 0x130 || c == 0x149 || c == 0x1f0 || c == 0x390 || c == 0x3a3 || c == 0x3b0 ||
         c == 0x587 || (c >= 0x1e96 && c <= 0x1e9a) || (c >= 0x1f50 && c <= 0x1fff) || (c >= 0xfb00 && c <= 0xfb17);
}

// str.upper / lower / title, by the code point's simple case mapping; nullopt
// for a character special_case() names.
std::optional<std::string> change_case(const std::string& s, Case how) {
  std::u32string cps = code_points(s);
  if (std::any_of(cps.begin(), cps.end(), special_case)) return std::nullopt;
  bool prev_cased = false;
  for (char32_t& c : cps) {
    const auto cp = static_cast<utf8proc_int32_t>(c);
    const bool upper = how == Case::kUpper || (how == Case::kTitle && !prev_cased);
    const bool was_cased = cased(c);
    c = static_cast<char32_t>(upper ? utf8proc_toupper(cp) : utf8proc_tolower(cp));
    prev_cased = was_cased;
  }
  return to_utf8(cps);
}

// Python's json.dumps(ensure_ascii=False) of a string, as transformers' tojson.
void json_string(const std::string& s, std::string& out) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// ---------------------------------------------------------------- errors

// Line and column of a source offset, for messages.
std::string where(const std::string& src, std::size_t pos) {
  pos = std::min(pos, src.size());
  const std::size_t line = 1 + static_cast<std::size_t>(std::count(src.begin(), src.begin() + long(pos), '\n'));
  const std::size_t nl = pos == 0 ? std::string::npos : src.rfind('\n', pos - 1);
  const std::size_t col = 1 + (nl == std::string::npos ? pos : pos - nl - 1);
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

struct Source {
  std::string text;    // newlines normalized to \n, as Jinja's lexer does
  std::string origin;

  // A construct outside the subset.
  [[noreturn]] void unsupported(std::size_t pos, const std::string& what) const {
    throw UsageError(origin + ": the chat template uses " + what + " (" + where(text, pos) +
                         "), which zinf's chat template renderer does not support",
                     kHint);
  }
  // A template that is malformed or fails as Jinja would (a type error).
  [[noreturn]] void error(std::size_t pos, const std::string& what) const {
    throw UsageError(origin + ": chat template " + where(text, pos) + ": " + what, kHint);
  }
};

// ---------------------------------------------------------------- lexer

struct Tok {
  enum K { kText, kBlockBegin, kBlockEnd, kVarBegin, kVarEnd, kName, kString, kInt, kOp, kEof };
  K k = kEof;
  std::string v;        // text, name, string value or operator
  std::int64_t n = 0;   // integer value
  std::size_t pos = 0;  // offset in the source
};

bool blank_inline(const std::string& s) {  // spaces and tabs only (one line)
  return s.find_first_not_of(" \t\r\f\v") == std::string::npos;
}

bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Splits the source into text and tags, applying whitespace control as Jinja's
// lexer does with trim_blocks and lstrip_blocks: a block or comment tag alone
// on its line takes the line's indentation and its newline with it.
class Lexer {
 public:
  explicit Lexer(const Source& src) : src_(src), s_(src.text) {}

  std::vector<Tok> run() {
    std::size_t pos = 0;
    while (pos < s_.size()) {
      const std::size_t open = find_open(pos);
      std::string text = s_.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
      if (open == std::string::npos) {
        push_text(std::move(text), pos);
        break;
      }
      const char kind = s_[open + 1];
      const char sign = open + 2 < s_.size() ? s_[open + 2] : '\0';
      const bool has_sign = sign == '-' || (sign == '+' && kind != '{');
      if (sign == '-') {
        std::size_t e = text.size();
        while (e > 0 && ascii_space(text[e - 1])) --e;
        text.resize(e);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: a tag preceded on its line by whitespace only
        const std::size_t nl = text.rfind('\n');
        const std::size_t line = nl == std::string::npos ? 0 : nl + 1;
        const bool line_start = line > 0 || pos == 0 || s_[pos - 1] == '\n';
        if (line_start && blank_inline(text.substr(line))) text.resize(line);
      }
      push_text(std::move(text), pos);
      std::size_t p = open + 2 + (has_sign ? 1 : 0);
      if (kind == '#') {
        const std::size_t e = s_.find("#}", p);
        if (e == std::string::npos) src_.error(open, "a comment {# is never closed");
        pos = after_end(e + 2, e > p && s_[e - 1] == '-', e > p && s_[e - 1] == '+', true);
        continue;
      }
      out_.push_back({kind == '%' ? Tok::kBlockBegin : Tok::kVarBegin, {}, 0, open});
      pos = lex_tag(p, kind == '%', open);
    }
    out_.push_back({Tok::kEof, {}, 0, s_.size()});
    return std::move(out_);
  }

 private:
  std::size_t find_open(std::size_t from) const {
    for (std::size_t p = s_.find('{', from); p != std::string::npos; p = s_.find('{', p + 1))
      if (p + 1 < s_.size() && (s_[p + 1] == '{' || s_[p + 1] == '%' || s_[p + 1] == '#')) return p;
    return std::string::npos;
  }

  void push_text(std::string text, std::size_t pos) {
    if (!text.empty()) out_.push_back({Tok::kText, std::move(text), 0, pos});
  }

  // Where the text after a tag starts: `-` eats all the whitespace after it,
  // trim_blocks one newline after a block or comment (unless `+`).
  std::size_t after_end(std::size_t pos, bool minus, bool plus, bool block) const {
    if (minus) {
      while (pos < s_.size() && ascii_space(s_[pos])) ++pos;
    } else if (block && !plus && pos < s_.size() && s_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  std::size_t lex_tag(std::size_t p, bool block, std::size_t open) {
    int braces = 0;
    for (;;) {
      while (p < s_.size() && ascii_space(s_[p])) ++p;
      if (p >= s_.size()) src_.error(open, std::string("a tag ") + (block ? "{%" : "{{") + " is never closed");
      const char* ends[] = {block ? "-%}" : "-}}", block ? "+%}" : nullptr, block ? "%}" : "}}"};
      for (const char* e : ends) {
        if (!e || s_.compare(p, std::char_traits<char>::length(e), e) != 0) continue;
        if (!block && braces > 0 && e[0] == '}') break;  // a dict literal's closing brace
        const std::size_t len = std::char_traits<char>::length(e);
        out_.push_back({block ? Tok::kBlockEnd : Tok::kVarEnd, {}, 0, p});
        return after_end(p + len, e[0] == '-', e[0] == '+', block);
      }
      const char c = s_[p];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t e = p;
        while (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) ++e;
        out_.push_back({Tok::kName, s_.substr(p, e - p), 0, p});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        std::size_t e = p;
        while (e < s_.size() && std::isdigit(static_cast<unsigned char>(s_[e]))) ++e;
        if (e < s_.size() && (s_[e] == '.' || s_[e] == 'e' || s_[e] == 'E' || s_[e] == '_') && e + 1 < s_.size() &&
            std::isdigit(static_cast<unsigned char>(s_[e + 1])))
          src_.unsupported(p, "a float or grouped number literal");
        if (e - p > 18) src_.unsupported(p, "an integer literal this large");
        out_.push_back({Tok::kInt, {}, std::stoll(s_.substr(p, e - p)), p});
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                    "(",  ")",  "[",  "]",  "{",  "}",  ".", ",", ":", "|", "="};
        const char* found = nullptr;
        for (const char* op : ops)
          if (s_.compare(p, std::char_traits<char>::length(op), op) == 0) {
            found = op;
            break;
          }
        if (!found) src_.error(p, std::string("unexpected character '") + c + "' in a tag");
        if (found[0] == '{' && !found[1]) ++braces;
        if (found[0] == '}' && !found[1]) --braces;
        out_.push_back({Tok::kOp, found, 0, p});
        p += std::char_traits<char>::length(found);
      }
    }
  }

  // A string literal, unescaped as Jinja does (Python's unicode-escape).
  std::size_t lex_string(std::size_t p) {
    const char q = s_[p];
    std::string v;
    std::size_t i = p + 1;
    for (;; ++i) {
      if (i >= s_.size()) src_.error(p, "a string literal is never closed");
      const char c = s_[i];
      if (c == q) break;
      if (c != '\\') {
        v.push_back(c);
        continue;
      }
      if (++i >= s_.size()) src_.error(p, "a string literal is never closed");
      const char e = s_[i];
      auto hex = [&](int digits) {
        if (i + std::size_t(digits) >= s_.size()) src_.error(i, "a truncated \\x/\\u escape");
        const std::string h = s_.substr(i + 1, std::size_t(digits));
        if (h.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) src_.error(i, "a bad \\x/\\u escape");
        i += std::size_t(digits);
        append_utf8(v, static_cast<char32_t>(std::stoul(h, nullptr, 16)));
      };
      switch (e) {
        case 'n': v.push_back('\n'); break;
        case 't': v.push_back('\t'); break;
        case 'r': v.push_back('\r'); break;
        case 'a': v.push_back('\a'); break;
        case 'b': v.push_back('\b'); break;
        case 'f': v.push_back('\f'); break;
        case 'v': v.push_back('\v'); break;
        case '\\': v.push_back('\\'); break;
        case '\'': v.push_back('\''); break;
        case '"': v.push_back('"'); break;
        case '\n': break;  // a line continuation
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default:
          if (e >= '0' && e <= '7') src_.unsupported(i - 1, "an octal escape in a string");
          v.push_back('\\');  // Python keeps an unknown escape as it is
          v.push_back(e);
      }
    }
    out_.push_back({Tok::kString, std::move(v), 0, p});
    return i + 1;
  }

  const Source& src_;
  const std::string& s_;
  std::vector<Tok> out_;
};

// ---------------------------------------------------------------- syntax tree

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  enum K { kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kNot, kNeg, kBinary, kCompare, kCond,
           kList, kDict };
  K k;
  std::size_t pos;
  Value literal;                    // kLiteral
  std::string name;                 // name, attribute, filter, test or operator
  std::vector<ExprP> a;             // operands; for calls and filters the arguments after a[0]
  std::vector<std::string> kw;      // keyword names of call arguments ("" = positional), as a[1..]
  std::vector<std::string> ops;     // kCompare: the operators between a[k] and a[k + 1]
  bool negated = false;             // kTest: `is not`
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum K { kText, kOutput, kIf, kFor, kSet };
  K k = kText;
  std::size_t pos = 0;
  std::string text;                         // kText; kFor: the loop variable; kSet: the target
  std::string attr;                         // kSet: the namespace attribute, when set
  ExprP expr;                               // kOutput, kSet value, kFor iterable
  ExprP filter;                             // kFor: `if` condition
  std::vector<std::pair<ExprP, Body>> branches;  // kIf: conditions (null = else) and bodies
  Body body, else_body;                     // kFor
};

// ---------------------------------------------------------------- parser

class Parser {
 public:
  Parser(const Source& src, std::vector<Tok> toks) : src_(src), t_(std::move(toks)) {}

  Body parse_template() {
    std::string stop;
    Body b = parse_body({}, stop);
    return b;
  }

 private:
  const Tok& peek(std::size_t ahead = 0) const { return t_[std::min(i_ + ahead, t_.size() - 1)]; }
  const Tok& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool is_op(const char* op, std::size_t ahead = 0) const {
    return peek(ahead).k == Tok::kOp && peek(ahead).v == op;
  }
  bool is_name(const char* name, std::size_t ahead = 0) const {
    return peek(ahead).k == Tok::kName && peek(ahead).v == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) src_.error(peek().pos, std::string("expected '") + op + "'");
    ++i_;
  }
  void expect_block_end() {
    if (peek().k != Tok::kBlockEnd) src_.error(peek().pos, "expected the end of the tag, '%}'");
    ++i_;
  }
  std::string expect_name() {
    if (peek().k != Tok::kName) src_.error(peek().pos, "expected a name");
    return next().v;
  }

  // Nodes up to a block tag whose name is in `stops` (left after that name).
  Body parse_body(const std::vector<std::string>& stops, std::string& stop) {
    Body out;
    for (;;) {
      const Tok& t = peek();
      if (t.k == Tok::kEof) {
        if (!stops.empty()) src_.error(t.pos, "the template ends before {% " + stops.back() + " %}");
        return out;
      }
      if (t.k == Tok::kText) {
        Node n;
        n.k = Node::kText;
        n.pos = t.pos;
        n.text = t.v;
        out.push_back(std::move(n));
        ++i_;
      } else if (t.k == Tok::kVarBegin) {
        ++i_;
        Node n;
        n.k = Node::kOutput;
        n.pos = t.pos;
        n.expr = parse_expr();
        if (peek().k != Tok::kVarEnd) src_.error(peek().pos, "expected the end of the output, '}}'");
        ++i_;
        out.push_back(std::move(n));
      } else if (t.k == Tok::kBlockBegin) {
        const Tok& name = peek(1);
        if (name.k != Tok::kName) src_.error(name.pos, "expected a tag name after {%");
        if (std::find(stops.begin(), stops.end(), name.v) != stops.end()) {
          i_ += 2;
          stop = name.v;
          return out;
        }
        Tok tag = name;  // errors point at the tag's {%
        tag.pos = t.pos;
        i_ += 2;
        parse_statement(tag, out);
      } else {
        src_.error(t.pos, "unexpected '" + t.v + "'");
      }
    }
  }

  void parse_statement(const Tok& name, Body& out) {
    const std::string& tag = name.v;
    if (tag == "if") {
      Node n;
        n.k = Node::kIf;
      n.pos = name.pos;
      ExprP cond = parse_expr();
      for (;;) {
        expect_block_end();
        std::string stop;
        Body b = parse_body({"elif", "else", "endif"}, stop);
        n.branches.emplace_back(std::move(cond), std::move(b));
        if (stop == "endif") break;
        if (stop == "else") {
          expect_block_end();
          Body e = parse_body({"endif"}, stop);
          n.branches.emplace_back(nullptr, std::move(e));
          break;
        }
        cond = parse_expr();
      }
      expect_block_end();
      out.push_back(std::move(n));
    } else if (tag == "for") {
      Node n;
        n.k = Node::kFor;
      n.pos = name.pos;
      n.text = expect_name();
      if (is_op(",")) src_.unsupported(peek().pos, "unpacking several loop variables ({% for a, b in ... %})");
      if (!is_name("in")) src_.error(peek().pos, "expected 'in' in {% for %}");
      ++i_;
      n.expr = parse_or();  // not a conditional: a following `if` filters the items
      if (is_name("if")) {
        ++i_;
        n.filter = parse_expr();
      }
      if (is_name("recursive")) src_.unsupported(peek().pos, "a recursive loop");
      expect_block_end();
      std::string stop;
      n.body = parse_body({"else", "endfor"}, stop);
      if (stop == "else") {
        expect_block_end();
        n.else_body = parse_body({"endfor"}, stop);
      }
      expect_block_end();
      out.push_back(std::move(n));
    } else if (tag == "set") {
      Node n;
        n.k = Node::kSet;
      n.pos = name.pos;
      n.text = expect_name();
      if (is_op(".")) {
        ++i_;
        n.attr = expect_name();
      }
      if (is_op(",")) src_.unsupported(peek().pos, "assigning several names in one {% set %}");
      if (peek().k == Tok::kBlockEnd) src_.unsupported(name.pos, "a block {% set %}...{% endset %}");
      expect_op("=");
      n.expr = parse_expr();
      expect_block_end();
      out.push_back(std::move(n));
    } else if (tag == "generation") {
      // transformers' tag marking the assistant's tokens: renders its body
      expect_block_end();
      std::string stop;
      Body b = parse_body({"endgeneration"}, stop);
      expect_block_end();
      for (Node& x : b) out.push_back(std::move(x));
    } else if (tag == "elif" || tag == "else" || tag.rfind("end", 0) == 0) {
      src_.error(name.pos, "{% " + tag + " %} without its opening tag");
    } else {
      src_.unsupported(name.pos, "the {% " + tag + " %} tag");
    }
  }

  static ExprP make(Expr::K k, std::size_t pos) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->pos = pos;
    return e;
  }
  static ExprP binary(std::string op, ExprP l, ExprP r, std::size_t pos) {
    ExprP e = make(Expr::kBinary, pos);
    e->name = std::move(op);
    e->a.push_back(std::move(l));
    e->a.push_back(std::move(r));
    return e;
  }

  ExprP parse_expr() {
    const std::size_t pos = peek().pos;
    ExprP e = parse_or();
    if (!is_name("if")) return e;
    ++i_;
    ExprP c = make(Expr::kCond, pos);
    c->a.push_back(std::move(e));
    c->a.push_back(parse_or());
    if (is_name("else")) {
      ++i_;
      c->a.push_back(parse_expr());
    }
    return c;
  }
  ExprP parse_or() {
    ExprP l = parse_and();
    while (is_name("or")) {
      const std::size_t pos = next().pos;
      l = binary("or", std::move(l), parse_and(), pos);
    }
    return l;
  }
  ExprP parse_and() {
    ExprP l = parse_not();
    while (is_name("and")) {
      const std::size_t pos = next().pos;
      l = binary("and", std::move(l), parse_not(), pos);
    }
    return l;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      ExprP e = make(Expr::kNot, next().pos);
      e->a.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    const std::size_t pos = peek().pos;
    ExprP first = parse_math1();
    ExprP c;
    for (;;) {
      std::string op;
      if (peek().k == Tok::kOp && (peek().v == "==" || peek().v == "!=" || peek().v == "<" || peek().v == ">" ||
                                   peek().v == "<=" || peek().v == ">=")) {
        op = next().v;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        break;
      }
      if (!c) {
        c = make(Expr::kCompare, pos);
        c->a.push_back(std::move(first));
      }
      c->ops.push_back(op);
      c->a.push_back(parse_math1());
    }
    return c ? std::move(c) : std::move(first);
  }
  ExprP parse_math1() {
    ExprP l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Tok& t = next();
      l = binary(t.v, std::move(l), parse_concat(), t.pos);
    }
    return l;
  }
  ExprP parse_concat() {
    ExprP l = parse_math2();
    while (is_op("~")) {
      const std::size_t pos = next().pos;
      l = binary("~", std::move(l), parse_math2(), pos);
    }
    return l;
  }
  ExprP parse_math2() {
    ExprP l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Tok& t = next();
      l = binary(t.v, std::move(l), parse_pow(), t.pos);
    }
    return l;
  }
  ExprP parse_pow() {
    ExprP l = parse_unary(true);
    if (is_op("**")) src_.unsupported(peek().pos, "the ** operator");
    return l;
  }
  ExprP parse_unary(bool with_filter) {
    ExprP e;
    if (is_op("-")) {
      e = make(Expr::kNeg, next().pos);
      e->a.push_back(parse_unary(false));
    } else if (is_op("+")) {
      ++i_;
      e = parse_unary(false);
    } else {
      e = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filters(std::move(e)) : std::move(e);
  }
  ExprP parse_primary() {
    const Tok& t = peek();
    if (t.k == Tok::kName) {
      ++i_;
      ExprP e = make(Expr::kLiteral, t.pos);
      if (t.v == "true" || t.v == "True") e->literal = Value::boolean(true);
      else if (t.v == "false" || t.v == "False") e->literal = Value::boolean(false);
      else if (t.v == "none" || t.v == "None") e->literal = Value::none();
      else {
        e->k = Expr::kName;
        e->name = t.v;
      }
      return e;
    }
    if (t.k == Tok::kString) {
      std::string s;
      while (peek().k == Tok::kString) s += next().v;  // adjacent literals join, as in Jinja
      ExprP e = make(Expr::kLiteral, t.pos);
      e->literal = Value::str(std::move(s));
      return e;
    }
    if (t.k == Tok::kInt) {
      ++i_;
      ExprP e = make(Expr::kLiteral, t.pos);
      e->literal = Value::integer(t.n);
      return e;
    }
    if (is_op("(")) {
      ++i_;
      ExprP e = parse_expr();
      if (is_op(",")) src_.unsupported(peek().pos, "a tuple");
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ExprP e = make(Expr::kList, next().pos);
      while (!is_op("]")) {
        e->a.push_back(parse_expr());
        if (!is_op(",")) break;
        ++i_;
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      ExprP e = make(Expr::kDict, next().pos);
      while (!is_op("}")) {
        e->a.push_back(parse_expr());
        expect_op(":");
        e->a.push_back(parse_expr());
        if (!is_op(",")) break;
        ++i_;
      }
      expect_op("}");
      return e;
    }
    src_.error(t.pos, t.k == Tok::kOp ? "unexpected '" + t.v + "'" : std::string("expected an expression"));
  }
  ExprP parse_postfix(ExprP e) {
    for (;;) {
      if (is_op(".")) {
        ExprP a = make(Expr::kAttr, next().pos);
        a->name = expect_name();
        a->a.push_back(std::move(e));
        e = std::move(a);
      } else if (is_op("[")) {
        const std::size_t pos = next().pos;
        ExprP parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!is_op(":") && !is_op("]")) parts[k] = parse_expr();
          if (!is_op(":") || k == 2) break;
          ++i_;
          slice = true;
        }
        expect_op("]");
        ExprP s = make(slice ? Expr::kSlice : Expr::kItem, pos);
        s->a.push_back(std::move(e));
        if (!slice && !parts[0]) src_.error(pos, "an empty subscript []");
        for (int k = 0; k < (slice ? 3 : 1); ++k) s->a.push_back(std::move(parts[k]));
        e = std::move(s);
      } else if (is_op("(")) {
        ExprP c = make(Expr::kCall, peek().pos);
        c->a.push_back(std::move(e));
        c->kw.emplace_back();
        parse_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  // `(a, b, k=v)` into e.a[1..] and e.kw[1..].
  void parse_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      std::string kw;
      if (peek().k == Tok::kName && is_op("=", 1)) {
        kw = next().v;
        ++i_;
      }
      e.kw.push_back(kw);
      e.a.push_back(parse_expr());
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")");
  }
  ExprP parse_filters(ExprP e) {
    for (;;) {
      if (is_op("|")) {
        ExprP f = make(Expr::kFilter, next().pos);
        f->name = expect_name();
        f->a.push_back(std::move(e));
        f->kw.emplace_back();
        if (is_op("(")) parse_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        ExprP t = make(Expr::kTest, next().pos);
        if (is_name("not")) {
          ++i_;
          t->negated = true;
        }
        t->name = expect_name();
        t->a.push_back(std::move(e));
        t->kw.emplace_back();
        if (is_op("(")) parse_args(*t);
        else if (peek().k == Tok::kString || peek().k == Tok::kInt)
          src_.unsupported(peek().pos, "a test argument without parentheses");
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  const Source& src_;
  std::vector<Tok> t_;
  std::size_t i_ = 0;
};

}  // namespace

// ---------------------------------------------------------------- evaluation

struct ChatTemplate::Program {
  Source src;
  Body body;
  std::optional<std::string> bos, eos;
};

namespace {

class Renderer {
 public:
  explicit Renderer(const Source& src) : src_(src) {}

  void render(const Body& body, std::vector<Dict>& frames, std::string& out) {
    frames_ = &frames;
    run(body, out);
  }

 private:
  void run(const Body& body, std::string& out) {
    for (const Node& n : body) {
      switch (n.k) {
        case Node::kText: out += n.text; break;
        case Node::kOutput: out += to_string(eval(*n.expr), n.pos); break;
        case Node::kIf:
          for (const auto& [cond, b] : n.branches)
            if (!cond || truthy(eval(*cond))) {
              run(b, out);
              break;
            }
          break;
        case Node::kFor: run_for(n, out); break;
        case Node::kSet: run_set(n); break;
      }
    }
  }

  // A fresh scope per iteration, as Jinja's: what the body sets is gone at
  // the next item and after the loop (a namespace is how state crosses).
  void run_for(const Node& n, std::string& out) {
    const Value it = eval(*n.expr);
    List items;
    if (it.t == Value::T::kList) items = *it.list;
    else if (it.t == Value::T::kDict)
      for (const auto& kv : it.dict->items) items.push_back(Value::str(kv.first));
    else if (it.t != Value::T::kUndefined)
      src_.unsupported(n.expr->pos, std::string("a loop over a ") + type_name(it));
    if (n.filter) {
      List kept;
      for (const Value& v : items) {
        frames_->push_back({});
        frames_->back().set(n.text, v);
        const bool keep = truthy(eval(*n.filter));
        frames_->pop_back();
        if (keep) kept.push_back(v);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      run(n.else_body, out);
      return;
    }
    const auto len = static_cast<std::int64_t>(items.size());
    for (std::int64_t k = 0; k < len; ++k) {
      Dict loop;
      loop.set("index", Value::integer(k + 1));
      loop.set("index0", Value::integer(k));
      loop.set("first", Value::boolean(k == 0));
      loop.set("last", Value::boolean(k == len - 1));
      loop.set("length", Value::integer(len));
      loop.set("revindex", Value::integer(len - k));
      loop.set("revindex0", Value::integer(len - k - 1));
      loop.set("previtem", k > 0 ? items[std::size_t(k - 1)] : Value::undefined("loop.previtem"));
      loop.set("nextitem", k + 1 < len ? items[std::size_t(k + 1)] : Value::undefined("loop.nextitem"));
      frames_->push_back({});
      frames_->back().set(n.text, items[std::size_t(k)]);
      frames_->back().set("loop", Value::of_dict(std::move(loop)));
      run(n.body, out);
      frames_->pop_back();
    }
  }

  void run_set(const Node& n) {
    Value v = eval(*n.expr);
    if (n.attr.empty()) {
      frames_->back().set(n.text, std::move(v));
      return;
    }
    const Value target = lookup(n.text);
    if (target.t != Value::T::kDict || !target.namespace_)
      src_.error(n.pos, "{% set " + n.text + "." + n.attr + " %} needs a namespace(), and " + n.text + " is a " +
                            type_name(target));
    target.dict->set(n.attr, std::move(v));
  }

  Value lookup(const std::string& name) const {
    for (auto f = frames_->rbegin(); f != frames_->rend(); ++f)
      if (const Value* v = f->find(name)) return *v;
    return Value::undefined(name);
  }

  std::string to_string(const Value& v, std::size_t pos) const {
    switch (v.t) {
      case Value::T::kUndefined: return {};
      case Value::T::kNone: return "None";
      case Value::T::kBool: return v.b ? "True" : "False";
      case Value::T::kInt: return std::to_string(v.i);
      case Value::T::kString: return v.s;
      default: src_.unsupported(pos, std::string("printing a ") + type_name(v) + " (Jinja prints its Python repr)");
    }
  }

  std::string need_string(const Value& v, std::size_t pos, const std::string& what) const {
    if (v.t == Value::T::kString) return v.s;
    if (v.t == Value::T::kUndefined) src_.error(pos, "'" + v.s + "' is undefined (" + what + ")");
    src_.error(pos, what + " needs a string, not a " + type_name(v));
  }

  std::int64_t need_int(const Value& v, std::size_t pos, const std::string& what) const {
    if (v.numeric()) return v.number();
    if (v.t == Value::T::kUndefined) src_.error(pos, "'" + v.s + "' is undefined (" + what + ")");
    src_.error(pos, what + " needs an integer, not a " + type_name(v));
  }

  Value eval(const Expr& e) {
    switch (e.k) {
      case Expr::kLiteral: return e.literal;
      case Expr::kName: return lookup(e.name);
      case Expr::kAttr: return attribute(eval(*e.a[0]), e.name, e.pos);
      case Expr::kItem: return item(eval(*e.a[0]), eval(*e.a[1]), e.pos);
      case Expr::kSlice: return slice(e);
      case Expr::kCall: return call(e);
      case Expr::kFilter: return filter(e);
      case Expr::kTest: return Value::boolean(test(e) != e.negated);
      case Expr::kNot: return Value::boolean(!truthy(eval(*e.a[0])));
      case Expr::kNeg: return Value::integer(-need_int(eval(*e.a[0]), e.pos, "unary minus"));
      case Expr::kBinary: return binary(e);
      case Expr::kCompare: {
        Value l = eval(*e.a[0]);
        for (std::size_t k = 0; k < e.ops.size(); ++k) {
          Value r = eval(*e.a[k + 1]);
          if (!compare(e.ops[k], l, r, e.pos)) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
      case Expr::kCond:
        if (truthy(eval(*e.a[1]))) return eval(*e.a[0]);
        return e.a.size() > 2 ? eval(*e.a[2]) : Value::undefined("the else of an if-expression");
      case Expr::kList: {
        List l;
        for (const ExprP& x : e.a) l.push_back(eval(*x));
        return Value::of_list(std::move(l));
      }
      case Expr::kDict: {
        Dict d;
        for (std::size_t k = 0; k + 1 < e.a.size(); k += 2)
          d.set(need_string(eval(*e.a[k]), e.a[k]->pos, "a dict key"), eval(*e.a[k + 1]));
        return Value::of_dict(std::move(d));
      }
    }
    src_.error(e.pos, "an unknown expression");
  }

  // a.b on a mapping (a missing key is undefined, as in Jinja); a method of a
  // string or list is only reachable through a call.
  Value attribute(const Value& obj, const std::string& name, std::size_t pos) const {
    if (obj.t == Value::T::kDict) {
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(name);
    }
    if (obj.t == Value::T::kUndefined) src_.error(pos, "'" + obj.s + "' is undefined (reading ." + name + ")");
    src_.unsupported(pos, "the attribute ." + name + " of a " + type_name(obj));
  }

  // Python's index into a sequence of n: negative from the end; nullopt outside.
  static std::optional<std::size_t> index_of(std::int64_t k, std::size_t n) {
    if (k < 0) k += static_cast<std::int64_t>(n);
    if (k < 0 || k >= static_cast<std::int64_t>(n)) return std::nullopt;
    return static_cast<std::size_t>(k);
  }

  Value item(const Value& obj, const Value& key, std::size_t pos) const {
    if (obj.t == Value::T::kDict) {
      if (key.t != Value::T::kString) return Value::undefined("a non-string key");
      const Value* v = obj.dict->find(key.s);
      return v ? *v : Value::undefined(key.s);
    }
    if (obj.t == Value::T::kList || obj.t == Value::T::kString) {
      const std::int64_t k = need_int(key, pos, "a subscript");
      if (obj.t == Value::T::kList) {
        const auto at = index_of(k, obj.list->size());
        return at ? (*obj.list)[*at] : Value::undefined("an index out of range");
      }
      const std::u32string cps = code_points(obj.s);
      const auto at = index_of(k, cps.size());
      return at ? Value::str(to_utf8(cps.substr(*at, 1))) : Value::undefined("an index out of range");
    }
    if (obj.t == Value::T::kUndefined) src_.error(pos, "'" + obj.s + "' is undefined (subscripted)");
    src_.unsupported(pos, std::string("a subscript of a ") + type_name(obj));
  }

  // Python's seq[start:stop:step].
  Value slice(const Expr& e) {
    const Value obj = eval(*e.a[0]);
    std::optional<std::int64_t> part[3];
    for (int k = 0; k < 3; ++k)
      if (e.a[std::size_t(k) + 1]) {
        const Value v = eval(*e.a[std::size_t(k) + 1]);
        if (v.t != Value::T::kNone) part[k] = need_int(v, e.pos, "a slice bound");
      }
    const std::int64_t step = part[2].value_or(1);
    if (step == 0) src_.error(e.pos, "a slice step of 0");
    std::u32string cps;
    if (obj.t == Value::T::kString) cps = code_points(obj.s);
    else if (obj.t != Value::T::kList) src_.unsupported(e.pos, std::string("a slice of a ") + type_name(obj));
    const auto n = static_cast<std::int64_t>(obj.t == Value::T::kList ? obj.list->size() : cps.size());
    auto clamp = [&](std::optional<std::int64_t> v, std::int64_t dflt) {
      if (!v) return dflt;
      std::int64_t x = *v < 0 ? *v + n : *v;
      return step > 0 ? std::clamp<std::int64_t>(x, 0, n) : std::clamp<std::int64_t>(x, -1, n - 1);
    };
    const std::int64_t start = clamp(part[0], step > 0 ? 0 : n - 1);
    const std::int64_t stop = clamp(part[1], step > 0 ? n : -1);
    List l;
    std::u32string s;
    for (std::int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (obj.t == Value::T::kList) l.push_back((*obj.list)[std::size_t(k)]);
      else s.push_back(cps[std::size_t(k)]);
    }
    return obj.t == Value::T::kList ? Value::of_list(std::move(l)) : Value::str(to_utf8(s));
  }

  // The arguments of a call or filter (a[1..]): positional, then by keyword.
  struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
  };
  Args args_of(const Expr& e) {
    Args r;
    for (std::size_t k = 1; k < e.a.size(); ++k) {
      Value v = eval(*e.a[k]);
      if (e.kw[k].empty()) r.pos.push_back(std::move(v));
      else r.kw.emplace_back(e.kw[k], std::move(v));
    }
    return r;
  }
  void arity(const Expr& e, const Args& a, std::size_t lo, std::size_t hi, const std::string& what) const {
    if (!a.kw.empty()) src_.unsupported(e.pos, "keyword arguments to " + what);
    if (a.pos.size() < lo || a.pos.size() > hi)
      src_.error(e.pos, what + " takes " + std::to_string(lo) + (hi != lo ? ".." + std::to_string(hi) : "") +
                            " arguments, not " + std::to_string(a.pos.size()));
  }

  std::string cased_text(const std::string& s, Case how, const Expr& e, const Args& a, const std::string& what) const {
    arity(e, a, 0, 0, what);
    std::optional<std::string> r = change_case(s, how);
    if (!r) src_.unsupported(e.pos, what + " of a text with a character Python cases specially (sharp s, ligatures, final sigma)");
    return *r;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.a[0];
    if (callee.k == Expr::kName) {
      const std::string& f = callee.name;
      if (f == "raise_exception") {
        const Args a = args_of(e);
        arity(e, a, 1, 1, "raise_exception()");
        throw UsageError(src_.origin + ": the chat template refused the conversation: " + to_string(a.pos[0], e.pos),
                         "the conversation breaks a rule of the model's chat template (" + where(src_.text, e.pos) +
                             "); fix the conversation");
      }
      if (f == "namespace") {
        const Args a = args_of(e);
        if (!a.pos.empty()) src_.unsupported(e.pos, "positional arguments to namespace()");
        Dict d;
        for (const auto& [k, v] : a.kw) d.set(k, v);
        Value v = Value::of_dict(std::move(d));
        v.namespace_ = true;
        return v;
      }
      if (f == "range") {
        const Args a = args_of(e);
        arity(e, a, 1, 3, "range()");
        std::int64_t lo = 0, hi, step = 1;
        if (a.pos.size() == 1) hi = need_int(a.pos[0], e.pos, "range()");
        else {
          lo = need_int(a.pos[0], e.pos, "range()");
          hi = need_int(a.pos[1], e.pos, "range()");
          if (a.pos.size() == 3) step = need_int(a.pos[2], e.pos, "range()");
        }
        if (step == 0) src_.error(e.pos, "range() with a step of 0");
        List l;
        for (std::int64_t k = lo; step > 0 ? k < hi : k > hi; k += step) l.push_back(Value::integer(k));
        return Value::of_list(std::move(l));
      }
      src_.unsupported(e.pos, "the function " + f + "()");
    }
    if (callee.k != Expr::kAttr) src_.unsupported(e.pos, "calling an expression that is not a function or method");
    const Value obj = eval(*callee.a[0]);
    const std::string& m = callee.name;
    const Args a = args_of(e);
    if (obj.t == Value::T::kString) {
      const std::string what = "str." + m + "()";
      if (m == "strip" || m == "lstrip" || m == "rstrip") {
        arity(e, a, 0, 1, what);
        std::optional<std::string> chars;
        if (!a.pos.empty() && a.pos[0].t != Value::T::kNone) chars = need_string(a.pos[0], e.pos, what);
        return Value::str(py_strip(obj.s, m != "rstrip", m != "lstrip", chars));
      }
      if (m == "startswith" || m == "endswith") {
        arity(e, a, 1, 1, what);
        const std::string x = need_string(a.pos[0], e.pos, what);
        const bool r = x.size() <= obj.s.size() &&
                       (m == "startswith" ? obj.s.compare(0, x.size(), x) == 0
                                          : obj.s.compare(obj.s.size() - x.size(), x.size(), x) == 0);
        return Value::boolean(r);
      }
      if (m == "upper" || m == "lower" || m == "title")
        return Value::str(cased_text(obj.s, m == "upper" ? Case::kUpper : m == "lower" ? Case::kLower : Case::kTitle, e,
                                     a, what));
      if (m == "replace") {
        arity(e, a, 2, 2, what);
        const std::string from = need_string(a.pos[0], e.pos, what), to = need_string(a.pos[1], e.pos, what);
        if (from.empty()) src_.unsupported(e.pos, "str.replace() of an empty string");
        std::string r;
        std::size_t at = 0;
        for (std::size_t f = obj.s.find(from); f != std::string::npos; f = obj.s.find(from, at)) {
          r.append(obj.s, at, f - at).append(to);
          at = f + from.size();
        }
        return Value::str(r.append(obj.s, at, std::string::npos));
      }
    } else if (obj.t == Value::T::kDict && !obj.dict->find(m)) {
      if (m == "get") {
        arity(e, a, 1, 2, "dict.get()");
        const Value* v = obj.dict->find(need_string(a.pos[0], e.pos, "dict.get()"));
        return v ? *v : a.pos.size() > 1 ? a.pos[1] : Value::none();
      }
    } else if (obj.t == Value::T::kUndefined) {
      src_.error(e.pos, "'" + obj.s + "' is undefined (calling ." + m + "())");
    }
    src_.unsupported(e.pos, std::string("the method .") + m + "() of a " + type_name(obj));
  }

  Value filter(const Expr& e) {
    const Value v = eval(*e.a[0]);
    const Args a = args_of(e);
    const std::string& f = e.name;
    const std::string what = "the filter " + f;
    if (f == "trim") {
      arity(e, a, 0, 1, what);
      std::optional<std::string> chars;
      if (!a.pos.empty() && a.pos[0].t != Value::T::kNone) chars = need_string(a.pos[0], e.pos, what);
      return Value::str(py_strip(to_string(v, e.pos), true, true, chars));
    }
    if (f == "length" || f == "count") {
      arity(e, a, 0, 0, what);
      switch (v.t) {
        case Value::T::kUndefined: return Value::integer(0);
        case Value::T::kString: return Value::integer(static_cast<std::int64_t>(code_points(v.s).size()));
        case Value::T::kList: return Value::integer(static_cast<std::int64_t>(v.list->size()));
        case Value::T::kDict: return Value::integer(static_cast<std::int64_t>(v.dict->items.size()));
        default: src_.error(e.pos, std::string("the length of a ") + type_name(v));
      }
    }
    if (f == "string") {
      arity(e, a, 0, 0, what);
      return Value::str(to_string(v, e.pos));
    }
    if (f == "upper" || f == "lower")
      return Value::str(cased_text(to_string(v, e.pos), f == "upper" ? Case::kUpper : Case::kLower, e, a, what));
    if (f == "first" || f == "last") {
      arity(e, a, 0, 0, what);
      if (v.t == Value::T::kList) {
        if (v.list->empty()) return Value::undefined("the " + f + " item of an empty list");
        return f == "first" ? v.list->front() : v.list->back();
      }
      if (v.t == Value::T::kString) {
        const std::u32string cps = code_points(v.s);
        if (cps.empty()) return Value::undefined("the " + f + " character of an empty string");
        return Value::str(to_utf8(cps.substr(f == "first" ? 0 : cps.size() - 1, 1)));
      }
      src_.unsupported(e.pos, what + " of a " + type_name(v));
    }
    if (f == "tojson") {
      int indent = -1;
      if (!a.pos.empty()) src_.unsupported(e.pos, "positional arguments to tojson");
      for (const auto& [k, x] : a.kw) {
        if (k != "indent") src_.unsupported(e.pos, "tojson(" + k + "=...)");
        if (x.t != Value::T::kNone) indent = static_cast<int>(need_int(x, e.pos, "tojson(indent=)"));
      }
      std::string out;
      dump_json(v, indent, 0, e.pos, out);
      return Value::str(std::move(out));
    }
    src_.unsupported(e.pos, "the filter |" + f);
  }

  // Python's json.dumps(ensure_ascii=False[, indent]), transformers' tojson.
  void dump_json(const Value& v, int indent, int level, std::size_t pos, std::string& out) const {
    auto newline = [&](int lvl) {
      if (indent < 0) return;
      out.push_back('\n');
      out.append(std::size_t(indent) * std::size_t(lvl), ' ');
    };
    const char* sep = indent < 0 ? ", " : ",";
    switch (v.t) {
      case Value::T::kNone: out += "null"; return;
      case Value::T::kBool: out += v.b ? "true" : "false"; return;
      case Value::T::kInt: out += std::to_string(v.i); return;
      case Value::T::kString: json_string(v.s, out); return;
      case Value::T::kList:
        if (v.list->empty()) {
          out += "[]";
          return;
        }
        out.push_back('[');
        for (std::size_t k = 0; k < v.list->size(); ++k) {
          if (k) out += sep;
          newline(level + 1);
          dump_json((*v.list)[k], indent, level + 1, pos, out);
        }
        newline(level);
        out.push_back(']');
        return;
      case Value::T::kDict:
        if (v.dict->items.empty()) {
          out += "{}";
          return;
        }
        out.push_back('{');
        for (std::size_t k = 0; k < v.dict->items.size(); ++k) {
          if (k) out += sep;
          newline(level + 1);
          json_string(v.dict->items[k].first, out);
          out += ": ";
          dump_json(v.dict->items[k].second, indent, level + 1, pos, out);
        }
        newline(level);
        out.push_back('}');
        return;
      case Value::T::kUndefined: src_.error(pos, "tojson of '" + v.s + "', which is undefined");
    }
  }

  bool test(const Expr& e) {
    const Value v = eval(*e.a[0]);
    const Args a = args_of(e);
    const std::string& t = e.name;
    const std::string what = "the test " + t;
    if (t == "divisibleby") {
      arity(e, a, 1, 1, what);
      const std::int64_t d = need_int(a.pos[0], e.pos, what);
      if (d == 0) src_.error(e.pos, "divisibleby(0)");
      return need_int(v, e.pos, what) % d == 0;
    }
    arity(e, a, 0, 0, what);
    if (t == "defined") return v.t != Value::T::kUndefined;
    if (t == "undefined") return v.t == Value::T::kUndefined;
    if (t == "none") return v.t == Value::T::kNone;
    if (t == "string") return v.t == Value::T::kString;
    if (t == "number") return v.numeric();
    if (t == "integer") return v.t == Value::T::kInt;
    if (t == "boolean") return v.t == Value::T::kBool;
    if (t == "true") return v.t == Value::T::kBool && v.b;
    if (t == "false") return v.t == Value::T::kBool && !v.b;
    if (t == "mapping") return v.t == Value::T::kDict;
    if (t == "sequence" || t == "iterable")
      return v.t == Value::T::kString || v.t == Value::T::kList || v.t == Value::T::kDict;
    if (t == "odd" || t == "even") return (need_int(v, e.pos, what) % 2 != 0) == (t == "odd");
    src_.unsupported(e.pos, "the test 'is " + t + "'");
  }

  bool compare(const std::string& op, const Value& l, const Value& r, std::size_t pos) const {
    if (op == "==") return equal(l, r);
    if (op == "!=") return !equal(l, r);
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r.t == Value::T::kString) found = r.s.find(need_string(l, pos, "'in' a string")) != std::string::npos;
      else if (r.t == Value::T::kList)
        found = std::any_of(r.list->begin(), r.list->end(), [&](const Value& x) { return equal(l, x); });
      else if (r.t == Value::T::kDict) found = l.t == Value::T::kString && r.dict->find(l.s) != nullptr;
      else if (r.t != Value::T::kUndefined) src_.error(pos, std::string("'in' a ") + type_name(r));
      return found == (op == "in");
    }
    int c;
    if (l.numeric() && r.numeric()) c = l.number() < r.number() ? -1 : l.number() > r.number() ? 1 : 0;
    else if (l.t == Value::T::kString && r.t == Value::T::kString) c = l.s.compare(r.s);  // UTF-8: code point order
    else src_.error(pos, "'" + op + "' between a " + type_name(l) + " and a " + type_name(r));
    if (op == "<") return c < 0;
    if (op == ">") return c > 0;
    if (op == "<=") return c <= 0;
    return c >= 0;
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and" || op == "or") {  // Python's: the deciding operand, not a bool
      Value l = eval(*e.a[0]);
      if (truthy(l) == (op == "or")) return l;
      return eval(*e.a[1]);
    }
    const Value l = eval(*e.a[0]), r = eval(*e.a[1]);
    if (op == "~") return Value::str(to_string(l, e.pos) + to_string(r, e.pos));
    for (const Value* v : {&l, &r})
      if (v->t == Value::T::kUndefined) src_.error(e.pos, "'" + v->s + "' is undefined (an operand of " + op + ")");
    if (op == "+") {
      if (l.numeric() && r.numeric()) return Value::integer(l.number() + r.number());
      if (l.t == Value::T::kString && r.t == Value::T::kString) return Value::str(l.s + r.s);
      if (l.t == Value::T::kList && r.t == Value::T::kList) {
        List x = *l.list;
        x.insert(x.end(), r.list->begin(), r.list->end());
        return Value::of_list(std::move(x));
      }
    } else if (op == "*" && l.t == Value::T::kString && r.numeric()) {
      std::string x;
      for (std::int64_t k = 0; k < r.number(); ++k) x += l.s;
      return Value::str(std::move(x));
    } else if (op == "/") {
      src_.unsupported(e.pos, "the / operator (it gives a float)");
    } else if (l.numeric() && r.numeric()) {
      const std::int64_t x = l.number(), y = r.number();
      if (op == "-") return Value::integer(x - y);
      if (op == "*") return Value::integer(x * y);
      if (y == 0) src_.error(e.pos, "division by zero");
      std::int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors
        --q;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    src_.error(e.pos, "'" + op + "' between a " + type_name(l) + " and a " + type_name(r));
  }

  const Source& src_;
  std::vector<Dict>* frames_ = nullptr;
};

}  // namespace

// ---------------------------------------------------------------- ChatTemplate

ChatTemplate::ChatTemplate(const std::string& source, std::string origin, std::optional<std::string> bos_token,
                           std::optional<std::string> eos_token)
    : program_(std::make_unique<Program>()), origin_(std::move(origin)) {
  // Jinja's lexer: \r\n and \r become \n, and one trailing newline goes
  // (keep_trailing_newline=False).
  std::string text;
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      text.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      text.push_back(source[i]);
    }
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  program_->src = {std::move(text), origin_};
  program_->body = Parser(program_->src, Lexer(program_->src).run()).parse_template();
  program_->bos = std::move(bos_token);
  program_->eos = std::move(eos_token);
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  List msgs;
  for (const ChatMessage& m : messages) {
    Dict d;
    d.set("role", Value::str(m.role));
    d.set("content", Value::str(m.content));
    msgs.push_back(Value::of_dict(std::move(d)));
  }
  // What transformers passes: the conversation, no tools or documents, the
  // flag, and the special tokens the tokenizer has.
  std::vector<Dict> frames(1);
  Dict& ctx = frames.front();
  ctx.set("messages", Value::of_list(std::move(msgs)));
  ctx.set("tools", Value::none());
  ctx.set("documents", Value::none());
  ctx.set("add_generation_prompt", Value::boolean(add_generation_prompt));
  if (program_->bos) ctx.set("bos_token", Value::str(*program_->bos));
  if (program_->eos) ctx.set("eos_token", Value::str(*program_->eos));
  std::string out;
  Renderer(program_->src).render(program_->body, frames, out);
  return out;
}

// ---------------------------------------------------------------- loading

std::optional<ChatTemplate> load_chat_template(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(dir_or_file);
  const fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
  const fs::path config = (dir.empty() ? fs::path(".") : dir) / "tokenizer_config.json";
  std::ifstream in(config);
  if (!in) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(config.string() + " is not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("chat_template") || j["chat_template"].is_null()) return std::nullopt;
  const nlohmann::json& t = j["chat_template"];
  std::string source;
  if (t.is_string()) {
    source = t.get<std::string>();
  } else if (t.is_array()) {
    // transformers' named templates: apply_chat_template uses "default"
    std::string names;
    for (const auto& e : t) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
          !e["template"].is_string())
        throw UsageError(config.string() + ": \"chat_template\" is a list whose entries are not {\"name\", \"template\"}");
      if (e["name"] == "default") source = e["template"].get<std::string>();
      names += (names.empty() ? "" : ", ") + e["name"].get<std::string>();
    }
    if (source.empty())
      throw UsageError(config.string() + ": \"chat_template\" lists templates (" + names + ") but none named \"default\"",
                       "transformers applies the \"default\" one; add it, or write the examples as prompt/completion");
  } else {
    throw UsageError(config.string() + ": \"chat_template\" is a " + std::string(t.type_name()) +
                     ", not a string or a list of named templates");
  }
  auto token = [&](const char* key) -> std::optional<std::string> {
    if (!j.contains(key)) return std::nullopt;
    const nlohmann::json& v = j[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  return ChatTemplate(source, config.string(), token("bos_token"), token("eos_token"));
}

}  // namespace zinf::tokenize
