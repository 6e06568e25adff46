// zinf::tokenize — PCRE2-backed Regex.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenize/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenize/utf8.h"

namespace zinf::tokenize {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
};

namespace {
// One match-data block per thread, grown as needed.
struct MatchData {
  pcre2_match_data* data = nullptr;
  ~MatchData() {
    if (data != nullptr) pcre2_match_data_free(data);
  }
};
pcre2_match_data* thread_match_data() {
  thread_local MatchData md;
  if (md.data == nullptr) md.data = pcre2_match_data_create(16, nullptr);
  return md.data;
}
}  // namespace

Regex::Regex(const std::string& pattern, const std::string& what) : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw UsageError(what + ": regular expression '" + pattern + "' does not compile at offset " +
                         std::to_string(offset) + ": " + reinterpret_cast<const char*>(buf),
                     "use a PCRE/Oniguruma-compatible pattern");
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  if (impl_ && impl_->code != nullptr) pcre2_code_free(impl_->code);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  out.clear();
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  while (start <= text.size()) {
    const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, md, nullptr)
                              : pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const std::size_t b = ov[0], e = ov[1];
    if (e == b) {
      // An empty match: skip one character, as the tokenizers library does.
      if (b >= text.size()) break;
      start = b + utf8_len(static_cast<unsigned char>(text[b]));
      continue;
    }
    out.emplace_back(b, e);
    start = e;
  }
}

std::string Regex::escape(const std::string& literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#&~").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace zinf::tokenize
