// zinf::tokenize — Hugging Face tokenizer.json: BPE model, normalizers,
// pre-tokenizers, added tokens, post-processors and decoders, following the
// tokenizers library's semantics (tokenizers/src/{models/bpe,normalizers,
// pre_tokenizers,processors,decoders,tokenizer/added_vocabulary.rs}).
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "tokenize/regex.h"
#include "tokenize/tokenizer.h"
#include "tokenize/utf8.h"

namespace zinf::tokenize {
namespace {

using json = nlohmann::json;
using Spans = std::vector<std::pair<std::size_t, std::size_t>>;

// Replaces every match of `re` in `s` by `content` (the Replace normalizer and
// decoder); `matches` is scratch space kept across calls.
void replace_matches(const Regex& re, const std::string& content, std::string& s, Spans& matches) {
  re.find_all(s, matches);
  if (matches.empty()) return;
  std::string out;
  std::size_t last = 0;
  for (const auto& [b, e] : matches) {
    out.append(s, last, b - last);
    out += content;
    last = e;
  }
  out.append(s, last, std::string::npos);
  s.swap(out);
}

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

[[noreturn]] void unsupported(const std::string& path, const std::string& what, const std::string& type,
                              const std::string& supported) {
  throw UsageError(path + ": unsupported " + what + " type '" + type + "'", "supported: " + supported);
}

std::string str_pattern(const json& p, const std::string& path, const std::string& what, bool* is_regex) {
  if (p.contains("String")) {
    *is_regex = false;
    return p.at("String").get<std::string>();
  }
  if (p.contains("Regex")) {
    *is_regex = true;
    return p.at("Regex").get<std::string>();
  }
  throw UsageError(path + ": " + what + " pattern must be {\"String\": ...} or {\"Regex\": ...}");
}

// ------------------------------------------------------------ normalizers
using Normalizer = std::function<void(std::string&)>;

std::string utf8proc_apply(const std::string& s, int options) {
  bool ascii = std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) return s;
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                              &out, static_cast<utf8proc_option_t>(options));
  if (n < 0) return s;
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return r;
}

Normalizer make_normalizer(const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = j.value("type", "");
  if (type == "NFC") return [](std::string& s) { s = utf8proc_apply(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE); };
  if (type == "NFD") return [](std::string& s) { s = utf8proc_apply(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE); };
  if (type == "NFKC")
    return [](std::string& s) { s = utf8proc_apply(s, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT); };
  if (type == "NFKD")
    return [](std::string& s) { s = utf8proc_apply(s, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT); };
  // Rust's char::to_lowercase, as the tokenizers library lowercases: the
  // simple mapping, but for U+0130 (capital I with dot), whose full
  // lowercase is two code points (SpecialCasing.txt's one unconditional case).
  if (type == "Lowercase")
    return [](std::string& s) {
      std::string out;
      out.reserve(s.size());
      for (std::size_t i = 0; i < s.size();) {
        const char32_t c = next_code_point(s, i);
        if (c == 0x130) {
          out += "i\xCC\x87";  // U+0069 U+0307
          continue;
        }
        append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      }
      s.swap(out);
    };
  if (type == "Prepend") {
    std::string pre = j.at("prepend").get<std::string>();
    return [pre](std::string& s) {
      if (!s.empty()) s.insert(0, pre);
    };
  }
  if (type == "Replace") {
    bool is_regex = false;
    std::string pat = str_pattern(j.at("pattern"), path, "Replace", &is_regex);
    auto re = std::make_shared<Regex>(is_regex ? pat : Regex::escape(pat), path + ": Replace normalizer");
    std::string content = j.at("content").get<std::string>();
    return [re, content](std::string& s) {
      Spans m;
      replace_matches(*re, content, s, m);
    };
  }
  if (type == "Sequence") {
    std::vector<Normalizer> parts;
    for (const auto& n : j.at("normalizers"))
      if (auto f = make_normalizer(n, path)) parts.push_back(f);
    return [parts](std::string& s) {
      for (const auto& f : parts) f(s);
    };
  }
  unsupported(path, "normalizer", type, "NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Sequence");
}

// --------------------------------------------------------- pre-tokenizers
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `piece` at the regex matches, combining pieces per `behavior`
// (the library's SplitDelimiterBehavior); empty pieces are dropped.
void split_piece(const std::string& piece, const Regex& re, Behavior behavior, bool invert,
                 std::vector<std::string>& out) {
  Spans m;
  re.find_all(piece, m);
  struct Part { std::size_t b, e; bool match; };
  std::vector<Part> parts;
  std::size_t last = 0;
  for (auto& [b, e] : m) {
    if (b > last) parts.push_back({last, b, invert});
    parts.push_back({b, e, !invert});
    last = e;
  }
  if (last < piece.size()) parts.push_back({last, piece.size(), invert});
  std::vector<Part> res;
  switch (behavior) {
    case Behavior::kRemoved:
      for (auto& p : parts)
        if (!p.match) res.push_back(p);
      break;
    case Behavior::kIsolated: res = parts; break;
    case Behavior::kMergedWithPrevious: {
      bool prev = false;
      for (auto& p : parts) {
        if (p.match && !prev && !res.empty()) res.back().e = p.e;
        else res.push_back(p);
        prev = p.match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->match && !prev && !res.empty()) res.back().b = it->b;
        else res.push_back(*it);
        prev = it->match;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case Behavior::kContiguous: {
      bool first = true, prev = false;
      for (auto& p : parts) {
        if (!first && p.match == prev) res.back().e = p.e;
        else res.push_back(p);
        prev = p.match;
        first = false;
      }
      break;
    }
  }
  for (auto& p : res)
    if (p.e > p.b) out.emplace_back(piece, p.b, p.e - p.b);
}

// A pre-tokenizer maps the pieces of one segment to finer pieces; `first`
// says whether the segment starts the text (Metaspace's prepend_scheme first).
using PreTokenizer = std::function<void(std::vector<std::string>&, bool first)>;

Behavior behavior_of(const std::string& b, const std::string& path) {
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  throw UsageError(path + ": unknown Split behavior '" + b + "'",
                   "allowed: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

PreTokenizer regex_split(std::shared_ptr<Regex> re, Behavior behavior, bool invert) {
  return [re, behavior, invert](std::vector<std::string>& pieces, bool) {
    std::vector<std::string> out;
    for (const auto& p : pieces) split_piece(p, *re, behavior, invert, out);
    pieces.swap(out);
  };
}

// Tokenizer::splits_after_newline for a tokenizer.json: char-local
// normalizers, and pre-tokenizers that split by the GPT-2, Llama-3 or Qwen2
// patterns (isolated), whose matches end at such a newline and never look
// past it, with no prefix space or Metaspace; then every BPE word lies on one
// side of the cut. (Without a splitting pre-tokenizer BPE merges across it.)
bool normalizer_is_local(const json& j) {
  if (j.is_null()) return true;
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& n : j.at("normalizers"))
      if (!normalizer_is_local(n)) return false;
    return true;
  }
  return type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD" || type == "Lowercase";
}

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// 1: splits at such newlines; 0: passes pieces on whole (ByteLevel without
// its regex, no prefix space); -1: may join or look across them.
int pre_tokenizer_kind(const json& j) {
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") {
    if (j.value("add_prefix_space", true)) return -1;
    return j.value("use_regex", true) ? 1 : 0;
  }
  if (type == "Split") {
    const json& pat = j.at("pattern");
    if (!pat.contains("Regex") || !pat["Regex"].is_string() || j.value("invert", false) ||
        j.value("behavior", "") != "Isolated")
      return -1;
    const std::string re = pat["Regex"].get<std::string>();
    return re == kGpt2Pattern || re == kLlama3Pattern || re == kQwen2Pattern ? 1 : -1;
  }
  if (type == "Sequence") {
    int kind = 0;
    for (const auto& p : j.at("pretokenizers")) {
      const int k = pre_tokenizer_kind(p);
      if (k < 0) return -1;
      kind = std::max(kind, k);
    }
    return kind;
  }
  return -1;
}

PreTokenizer make_pre_tokenizer(const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") {
    const bool prefix = j.value("add_prefix_space", true);
    const bool use_regex = j.value("use_regex", true);
    auto re = use_regex ? std::make_shared<Regex>(kGpt2Pattern, path + ": ByteLevel") : nullptr;
    return [prefix, re](std::vector<std::string>& pieces, bool) {
      const auto& table = byte_to_unicode();
      std::vector<std::string> split;
      for (auto& p : pieces) {
        if (prefix && (p.empty() || p[0] != ' ')) p.insert(0, " ");
        if (re) split_piece(p, *re, Behavior::kIsolated, false, split);
        else if (!p.empty()) split.push_back(std::move(p));
      }
      for (auto& p : split) {
        std::string mapped;
        mapped.reserve(p.size() * 2);
        for (unsigned char c : p) mapped += table[c];
        p.swap(mapped);
      }
      pieces.swap(split);
    };
  }
  if (type == "Split") {
    bool is_regex = false;
    std::string pat = str_pattern(j.at("pattern"), path, "Split", &is_regex);
    auto re = std::make_shared<Regex>(is_regex ? pat : Regex::escape(pat), path + ": Split pre-tokenizer");
    return regex_split(re, behavior_of(j.at("behavior").get<std::string>(), path), j.value("invert", false));
  }
  if (type == "Digits") {
    const bool individual = j.value("individual_digits", false);
    auto re = std::make_shared<Regex>(individual ? "\\p{N}" : "\\p{N}+", path + ": Digits");
    return regex_split(re, Behavior::kIsolated, false);
  }
  if (type == "Whitespace") return regex_split(std::make_shared<Regex>("\\w+|[^\\w\\s]+", path), Behavior::kIsolated, false);
  if (type == "WhitespaceSplit") return regex_split(std::make_shared<Regex>("\\s+", path), Behavior::kRemoved, false);
  if (type == "Metaspace") {
    const std::string rep = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme != "always" && scheme != "first" && scheme != "never")
      throw UsageError(path + ": Metaspace prepend_scheme '" + scheme + "'", "allowed: always, first, never");
    const bool split = j.value("split", true);
    auto re = std::make_shared<Regex>(Regex::escape(rep), path);
    return [rep, scheme, split, re](std::vector<std::string>& pieces, bool first) {
      std::vector<std::string> out;
      for (std::size_t k = 0; k < pieces.size(); ++k) {
        std::string s;
        for (char c : pieces[k]) {
          if (c == ' ') s += rep;
          else s.push_back(c);
        }
        const bool prepend = scheme == "always" || (scheme == "first" && first && k == 0);
        if (prepend && s.compare(0, rep.size(), rep) != 0) s.insert(0, rep);
        if (split) split_piece(s, *re, Behavior::kMergedWithNext, false, out);
        else if (!s.empty()) out.push_back(std::move(s));
      }
      pieces.swap(out);
    };
  }
  if (type == "Sequence") {
    std::vector<PreTokenizer> parts;
    for (const auto& p : j.at("pretokenizers"))
      if (auto f = make_pre_tokenizer(p, path)) parts.push_back(f);
    return [parts](std::vector<std::string>& pieces, bool first) {
      for (const auto& f : parts) f(pieces, first);
    };
  }
  unsupported(path, "pre_tokenizer", type, "ByteLevel, Split, Digits, Metaspace, Whitespace, WhitespaceSplit, Sequence");
}

// --------------------------------------------------------------- decoders
using Decoder = std::function<void(std::vector<std::string>&)>;

Decoder make_decoder(const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = j.value("type", "");
  if (type == "ByteLevel")
    return [](std::vector<std::string>& toks) {
      std::string bytes;
      for (const auto& t : toks) {
        std::string b;
        bool ok = true;
        for (std::size_t i = 0; i < t.size();) {
          const int v = unicode_to_byte(next_code_point(t, i));
          if (v < 0) { ok = false; break; }
          b.push_back(static_cast<char>(v));
        }
        bytes += ok ? b : t;
      }
      toks.assign(1, repair_utf8(bytes));
    };
  if (type == "ByteFallback")
    return [](std::vector<std::string>& toks) {
      std::vector<std::string> out;
      std::string pending;
      std::size_t pending_n = 0;
      auto flush = [&] {
        if (pending_n == 0) return;
        std::size_t bad = 0;
        std::string fixed = repair_utf8(pending, &bad);
        if (bad == 0) out.push_back(fixed);
        else
          for (std::size_t k = 0; k < pending_n; ++k) out.emplace_back("\xEF\xBF\xBD");
        pending.clear();
        pending_n = 0;
      };
      for (auto& t : toks) {
        if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
          pending.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          ++pending_n;
        } else {
          flush();
          out.push_back(t);
        }
      }
      flush();
      toks.swap(out);
    };
  if (type == "Fuse")
    return [](std::vector<std::string>& toks) {
      std::string all;
      for (auto& t : toks) all += t;
      toks.assign(1, all);
    };
  if (type == "Replace") {
    bool is_regex = false;
    std::string pat = str_pattern(j.at("pattern"), path, "Replace decoder", &is_regex);
    auto re = std::make_shared<Regex>(is_regex ? pat : Regex::escape(pat), path + ": Replace decoder");
    std::string content = j.at("content").get<std::string>();
    return [re, content](std::vector<std::string>& toks) {
      Spans m;
      for (auto& s : toks) replace_matches(*re, content, s, m);
    };
  }
  if (type == "Strip") {
    const std::string content = j.at("content").get<std::string>();
    const std::size_t start = j.value("start", 0), stop = j.value("stop", 0);
    return [content, start, stop](std::vector<std::string>& toks) {
      for (auto& s : toks) {
        std::size_t b = 0, n = 0;
        while (n < start && s.compare(b, content.size(), content) == 0 && b < s.size()) { b += content.size(); ++n; }
        std::size_t e = s.size();
        n = 0;
        while (n < stop && e >= b + content.size() && s.compare(e - content.size(), content.size(), content) == 0) { e -= content.size(); ++n; }
        s = s.substr(b, e - b);
      }
    };
  }
  if (type == "Metaspace") {
    const std::string rep = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.value("prepend_scheme", std::string());
    if (scheme.empty()) scheme = j.value("add_prefix_space", true) ? "always" : "never";
    return [rep, scheme](std::vector<std::string>& toks) {
      for (std::size_t k = 0; k < toks.size(); ++k) {
        std::string out;
        const std::string& s = toks[k];
        for (std::size_t i = 0; i < s.size();) {
          if (s.compare(i, rep.size(), rep) == 0) { out.push_back(' '); i += rep.size(); }
          else out.push_back(s[i++]);
        }
        if (k == 0 && scheme != "never" && !out.empty() && out[0] == ' ') out.erase(0, 1);
        toks[k] = out;
      }
    };
  }
  if (type == "Sequence") {
    std::vector<Decoder> parts;
    for (const auto& d : j.at("decoders"))
      if (auto f = make_decoder(d, path)) parts.push_back(f);
    return [parts](std::vector<std::string>& toks) {
      for (const auto& f : parts) f(toks);
    };
  }
  unsupported(path, "decoder", type, "ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, Sequence");
}

// -------------------------------------------------------------------- BPE
std::atomic<std::uint64_t> g_model_serial{1};

struct Bpe {
  std::unordered_map<std::string, std::uint32_t> vocab;
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> merges;  // (a,b) -> (rank, new id)
  std::optional<std::uint32_t> unk;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::string prefix, suffix;
  std::uint64_t serial = g_model_serial++;

  static std::uint64_t key(std::uint32_t a, std::uint32_t b) { return (std::uint64_t{a} << 32) | b; }

  struct Symbol { std::uint32_t id; int prev, next; bool alive; };

  void merge_word(const std::string& w, Ids& out) const {
    if (ignore_merges) {
      auto it = vocab.find(w);
      if (it != vocab.end()) { out.push_back(it->second); return; }
    }
    thread_local std::vector<Symbol> syms;
    syms.clear();
    bool last_unk = false;
    std::string buf;
    for (std::size_t i = 0; i < w.size();) {
      const std::size_t len = utf8_len(static_cast<unsigned char>(w[i]));
      const bool first = i == 0, last = i + len >= w.size();
      buf.assign(first ? "" : prefix);
      buf.append(w, i, len);
      if (last) buf += suffix;
      auto it = vocab.find(buf);
      if (it != vocab.end()) {
        syms.push_back({it->second, 0, 0, true});
        last_unk = false;
      } else {
        bool done = false;
        if (byte_fallback) {
          std::vector<std::uint32_t> bytes;
          char hex[8];
          for (std::size_t k = 0; k < len; ++k) {
            std::snprintf(hex, sizeof hex, "<0x%02X>", static_cast<unsigned char>(w[i + k]));
            auto b = vocab.find(hex);
            if (b == vocab.end()) break;
            bytes.push_back(b->second);
          }
          if (bytes.size() == len) {
            for (auto id : bytes) syms.push_back({id, 0, 0, true});
            done = true;
            last_unk = false;
          }
        }
        if (!done && unk) {
          if (!(fuse_unk && last_unk)) syms.push_back({*unk, 0, 0, true});
          last_unk = true;
        }
      }
      i += len;
    }
    const int n = static_cast<int>(syms.size());
    for (int k = 0; k < n; ++k) { syms[k].prev = k - 1; syms[k].next = k + 1 < n ? k + 1 : -1; }
    struct Cand { std::uint32_t rank; int pos; std::uint32_t new_id; };
    auto cmp = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> heap(cmp);
    auto push = [&](int p) {
      if (p < 0 || syms[p].next < 0) return;
      auto it = merges.find(key(syms[p].id, syms[syms[p].next].id));
      if (it != merges.end()) heap.push({it->second.first, p, it->second.second});
    };
    for (int k = 0; k + 1 < n; ++k) push(k);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Symbol& s = syms[c.pos];
      if (!s.alive || s.next < 0) continue;
      auto it = merges.find(key(s.id, syms[s.next].id));
      if (it == merges.end() || it->second.second != c.new_id) continue;
      Symbol& r = syms[s.next];
      s.id = c.new_id;
      r.alive = false;
      s.next = r.next;
      if (r.next >= 0) syms[r.next].prev = c.pos;
      push(s.prev);
      push(c.pos);
    }
    for (int k = n > 0 ? 0 : -1; k >= 0; k = syms[k].next) out.push_back(syms[k].id);
  }

  // Merges with a per-thread cache of pre-token words.
  void tokenize(const std::string& w, Ids& out) const {
    struct Cache { std::uint64_t owner = 0; std::unordered_map<std::string, Ids> map; };
    thread_local Cache cache;
    if (cache.owner != serial) { cache.map.clear(); cache.owner = serial; }
    auto it = cache.map.find(w);
    if (it != cache.map.end()) { out.insert(out.end(), it->second.begin(), it->second.end()); return; }
    Ids ids;
    merge_word(w, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (w.size() < 256) {
      if (cache.map.size() > (1u << 20)) cache.map.clear();
      cache.map.emplace(w, std::move(ids));
    }
  }
};

struct AddedToken {
  std::string content;
  std::uint32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
  std::string match;  // what is matched and decoded: content, normalized when `normalized`
};

// Added tokens of one kind (matched in the raw text, or in the normalized
// text), indexed by first byte, longest first: leftmost-longest matching
// that tries only the tokens that can start at a position.
struct AddedMatcher {
  std::array<std::vector<std::size_t>, 256> by_first_byte;  // indices into the tokenizer's added tokens
  bool empty = true;
  void add(const std::vector<AddedToken>& all, std::size_t k) {
    if (all[k].match.empty()) return;
    auto& v = by_first_byte[static_cast<unsigned char>(all[k].match[0])];
    v.insert(std::upper_bound(v.begin(), v.end(), k,
                              [&](std::size_t a, std::size_t b) { return all[a].match.size() > all[b].match.size(); }),
             k);
    empty = false;
  }
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const json& j, const std::string& path) {
    path_ = path;
    const json& m = j.at("model");
    const std::string type = m.value("type", "BPE");
    if (type != "BPE") unsupported(path, "model", type, "BPE (tokenizer.json), SentencePiece (tokenizer.model)");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].get<double>() != 0.0)
      throw UsageError(path + ": BPE dropout is set", "dropout is a training-time option; use a tokenizer without it");
    std::size_t max_id = 0;
    for (auto& [tok, id] : m.at("vocab").items()) {
      const auto v = id.get<std::uint32_t>();
      bpe_.vocab.emplace(tok, v);
      max_id = std::max<std::size_t>(max_id, v);
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = bpe_.vocab.find(m["unk_token"].get<std::string>());
      if (it != bpe_.vocab.end()) bpe_.unk = it->second;
    }
    bpe_.fuse_unk = m.value("fuse_unk", false);
    bpe_.byte_fallback = m.value("byte_fallback", false);
    bpe_.ignore_merges = m.value("ignore_merges", false);
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string())
      bpe_.prefix = m["continuing_subword_prefix"].get<std::string>();
    if (m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string())
      bpe_.suffix = m["end_of_word_suffix"].get<std::string>();
    std::uint32_t rank = 0;
    for (const auto& mg : m.at("merges")) {
      std::string a, b;
      if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const auto sp = s.find(' ');
        if (sp == std::string::npos) throw UsageError(path + ": merge '" + s + "' is not two tokens separated by a space");
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        a = mg.at(0).get<std::string>();
        b = mg.at(1).get<std::string>();
      }
      auto ia = bpe_.vocab.find(a), ib = bpe_.vocab.find(b);
      std::string merged = a + (b.compare(0, bpe_.prefix.size(), bpe_.prefix) == 0 ? b.substr(bpe_.prefix.size()) : b);
      auto im = bpe_.vocab.find(merged);
      if (ia == bpe_.vocab.end() || ib == bpe_.vocab.end() || im == bpe_.vocab.end())
        throw UsageError(path + ": merge '" + a + " " + b + "' uses a token missing from the vocabulary");
      bpe_.merges.emplace(Bpe::key(ia->second, ib->second), std::make_pair(rank++, im->second));
    }
    id_to_token_.resize(max_id + 1);
    for (auto& [t, id] : bpe_.vocab) id_to_token_[id] = t;
    if (j.contains("added_tokens"))
      for (const auto& a : j["added_tokens"]) {
        AddedToken t{a.at("content").get<std::string>(), a.at("id").get<std::uint32_t>(), a.value("special", false),
                     a.value("lstrip", false), a.value("rstrip", false), a.value("single_word", false),
                     a.value("normalized", !a.value("special", false)), {}};
        if (t.id >= id_to_token_.size()) id_to_token_.resize(t.id + 1);
        added_by_id_[t.id] = added_.size();
        added_.push_back(t);
      }
    normalizer_ = make_normalizer(j.value("normalizer", json()), path);
    // As the tokenizers library: a normalized token is matched, and decoded,
    // as the normalizer writes its content; the others as written.
    for (AddedToken& t : added_) {
      t.match = t.content;
      if (t.normalized && normalizer_) normalizer_(t.match);
    }
    for (std::size_t k = 0; k < added_.size(); ++k) (added_[k].normalized ? normalized_added_ : raw_added_).add(added_, k);
    const json pre = j.value("pre_tokenizer", json());
    splits_after_newline_ = normalizer_is_local(j.value("normalizer", json())) && !pre.is_null() &&
                            pre_tokenizer_kind(pre) == 1 &&
                            std::none_of(added_.begin(), added_.end(), [](const AddedToken& t) {
                              return t.lstrip || t.match.find('\n') != std::string::npos;
                            });
    pre_ = make_pre_tokenizer(j.value("pre_tokenizer", json()), path);
    decoder_ = make_decoder(j.value("decoder", json()), path);
    parse_post(j.value("post_processor", json()), path);
    description_ = "tokenizer.json (BPE, " + std::to_string(vocab_size()) + " ids)";
    for (const char* name : {"<|endoftext|>", "<|end_of_text|>", "</s>"})
      if (auto id = token_to_id(name); id && !eos_) eos_ = id;
  }

  // As the tokenizers library's AddedVocabulary: tokens that are not
  // normalized are found in the raw text; each piece between them is
  // normalized, normalized tokens are found in it, and the rest is
  // pre-tokenized and BPE-encoded.
  Ids encode(std::string_view raw, bool add_special) const override {
    const std::string text = repair_utf8(raw);
    Ids ids;
    if (add_special) ids.insert(ids.end(), prefix_ids_.begin(), prefix_ids_.end());
    bool first = true;  // the next piece begins the text (Metaspace prepend_scheme "first")
    std::vector<std::string> pieces;
    auto encode_piece = [&](std::string s) {
      pieces.clear();
      if (!s.empty()) pieces.push_back(std::move(s));
      if (pre_) pre_(pieces, first);
      for (const auto& p : pieces) bpe_.tokenize(p, ids);
    };
    auto encode_raw = [&](std::size_t b, std::size_t e) {
      if (e <= b) return;
      std::string s = text.substr(b, e - b);
      if (normalizer_) normalizer_(s);
      if (normalized_added_.empty) {  // nothing to find in the normalized text: no second copy
        encode_piece(std::move(s));
        first = false;
        return;
      }
      split_added(s, normalized_added_, [&](std::size_t pb, std::size_t pe) {
        if (pe > pb) encode_piece(s.substr(pb, pe - pb));
        first = false;
      }, ids, first);
    };
    split_added(text, raw_added_, [&](std::size_t b, std::size_t e) { encode_raw(b, e); }, ids, first);
    if (add_special) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
    return ids;
  }

  std::string decode(const Ids& ids) const override {
    std::vector<std::string> toks;
    toks.reserve(ids.size());
    for (auto id : ids) {
      auto a = added_by_id_.find(id);
      if (a != added_by_id_.end()) toks.push_back(added_[a->second].match);
      else if (id < id_to_token_.size()) toks.push_back(id_to_token_[id]);
    }
    if (decoder_) decoder_(toks);
    else {
      std::string s;
      for (std::size_t k = 0; k < toks.size(); ++k) s += (k ? " " : "") + toks[k];
      return s;
    }
    std::string s;
    for (auto& t : toks) s += t;
    return s;
  }

  std::size_t vocab_size() const override { return id_to_token_.size(); }
  bool splits_after_newline() const override { return splits_after_newline_; }

  std::optional<std::uint32_t> token_to_id(const std::string& token) const override {
    for (const auto& a : added_)
      if (a.content == token || a.match == token) return a.id;
    auto it = bpe_.vocab.find(token);
    if (it == bpe_.vocab.end()) return std::nullopt;
    return it->second;
  }

 private:
  void parse_post(const json& p, const std::string& path) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
      for (const auto& q : p.at("processors")) parse_post(q, path);
      return;
    }
    if (type == "TemplateProcessing") {
      bool seen_a = false;
      for (const auto& piece : p.at("single")) {
        if (piece.contains("Sequence")) { seen_a = true; continue; }
        const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
        const auto& st = p.at("special_tokens").at(name);
        for (const auto& id : st.at("ids")) (seen_a ? suffix_ids_ : prefix_ids_).push_back(id.get<std::uint32_t>());
      }
      if (!prefix_ids_.empty()) bos_ = prefix_ids_.front();
      return;
    }
    if (type == "BertProcessing" || type == "RobertaProcessing") {
      prefix_ids_.push_back(p.at("cls").at(1).get<std::uint32_t>());
      suffix_ids_.push_back(p.at("sep").at(1).get<std::uint32_t>());
      bos_ = prefix_ids_.front();
      return;
    }
    unsupported(path, "post_processor", type, "ByteLevel, TemplateProcessing, BertProcessing, RobertaProcessing, Sequence");
  }

  Bpe bpe_;
  std::vector<std::string> id_to_token_;
  // Splits `s` at the tokens of `m`: `between(b, e)` for the text before
  // each token (possibly empty, and the rest after the last), the token's id
  // appended to `ids` in between; after a token `first` is false.
  template <typename Between>
  void split_added(const std::string& s, const AddedMatcher& m, Between&& between, Ids& ids, bool& first) const {
    std::size_t seg = 0;
    for (std::size_t i = 0; !m.empty && i < s.size();) {
      const AddedToken* hit = nullptr;
      std::size_t hb = i, he = i;
      for (const std::size_t k : m.by_first_byte[static_cast<unsigned char>(s[i])]) {
        const AddedToken* t = &added_[k];
        if (s.compare(i, t->match.size(), t->match) != 0) continue;
        std::size_t b = i, e = i + t->match.size();
        if (t->single_word) {
          auto word = [](unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; };
          if ((b > 0 && word(s[b - 1])) || (e < s.size() && word(s[e]))) continue;
        }
        if (t->lstrip) while (b > seg && is_ws(s[b - 1])) --b;
        if (t->rstrip) while (e < s.size() && is_ws(s[e])) ++e;
        hit = t;
        hb = b;
        he = e;
        break;
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      between(seg, hb);
      first = false;
      ids.push_back(hit->id);
      seg = i = he;
    }
    between(seg, s.size());
  }

  std::vector<AddedToken> added_;
  AddedMatcher raw_added_, normalized_added_;
  bool splits_after_newline_ = false;
  std::unordered_map<std::uint32_t, std::size_t> added_by_id_;
  Normalizer normalizer_;
  PreTokenizer pre_;
  Decoder decoder_;
  Ids prefix_ids_, suffix_ids_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot open tokenizer file " + path, "give a directory holding tokenizer.json or tokenizer.model, or one of those files");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UsageError(path + " is not valid JSON: " + e.what(), "give a Hugging Face tokenizer.json");
  }
  try {
    return std::make_unique<HfTokenizer>(j, path);
  } catch (const json::exception& e) {
    throw UsageError(path + ": malformed tokenizer.json: " + e.what(), "give a Hugging Face tokenizer.json");
  }
}

}  // namespace zinf::tokenize
