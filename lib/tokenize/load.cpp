// zinf::tokenize — choosing and opening a tokenizer; the SentencePiece one
// (libsentencepiece through sentencepiece_shim, loaded on first use).
#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "tokenize/tokenizer.h"
#include "tokenize/utf8.h"

namespace zinf::tokenize {
namespace {

namespace fs = std::filesystem;

// The SentencePiece shim (sentencepiece_shim.cpp), loaded once: beside the
// binary, else where the build put it.
struct SentencePieceApi {
  void* (*load)(const char*, char*, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  int (*fact)(void*, int) = nullptr;
  long (*encode)(void*, const char*, std::size_t, int*, std::size_t) = nullptr;
  long (*decode)(void*, const int*, std::size_t, char*, std::size_t) = nullptr;
  int (*piece_to_id)(void*, const char*) = nullptr;
  long (*id_to_piece)(void*, int, char*, std::size_t) = nullptr;
  std::string error;  // why it could not be loaded
};

const SentencePieceApi& sentencepiece_api() {
  static const SentencePieceApi api = [] {
    SentencePieceApi a;
    std::vector<std::string> candidates;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) candidates.push_back((exe.parent_path() / "libzinf_sentencepiece.so").string());
    candidates.push_back(ZINF_SENTENCEPIECE_SHIM);
    void* lib = nullptr;
    for (const auto& c : candidates) {
      if (!fs::exists(c, ec)) continue;
      lib = ::dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (lib) break;
      a.error += std::string(a.error.empty() ? "" : "; ") + ::dlerror();
    }
    if (!lib) {
      if (a.error.empty()) a.error = "libzinf_sentencepiece.so is not beside the zinf binary nor at " ZINF_SENTENCEPIECE_SHIM;
      return a;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (!fn) a.error = std::string("libzinf_sentencepiece.so lacks ") + name;
    };
    sym(a.load, "zinf_sp_load");
    sym(a.free, "zinf_sp_free");
    sym(a.fact, "zinf_sp_fact");
    sym(a.encode, "zinf_sp_encode");
    sym(a.decode, "zinf_sp_decode");
    sym(a.piece_to_id, "zinf_sp_piece_to_id");
    sym(a.id_to_piece, "zinf_sp_id_to_piece");
    return a;
  }();
  return api;
}

class SpTokenizer final : public Tokenizer {
 public:
  explicit SpTokenizer(const std::string& path) : api_(sentencepiece_api()) {
    path_ = path;
    if (!api_.error.empty())
      throw Error("cannot read " + path + ": SentencePiece support is not available (" + api_.error + ")",
                  "reinstall zinf with libzinf_sentencepiece.so beside the binary, or use a tokenizer.json");
    char err[512] = {0};
    sp_ = api_.load(path.c_str(), err, sizeof err);
    if (!sp_) throw UsageError(path + " is not a SentencePiece model: " + err, "give a tokenizer.model file");
    pieces_ = api_.fact(sp_, 0);
    description_ = "tokenizer.model (SentencePiece, " + std::to_string(pieces_) + " ids)";
    if (const int bos = api_.fact(sp_, 1); bos >= 0) bos_ = static_cast<std::uint32_t>(bos);
    if (const int eos = api_.fact(sp_, 2); eos >= 0) eos_ = static_cast<std::uint32_t>(eos);
    unk_ = api_.fact(sp_, 3);
  }
  ~SpTokenizer() override { api_.free(sp_); }
  SpTokenizer(const SpTokenizer&) = delete;
  SpTokenizer& operator=(const SpTokenizer&) = delete;

  Ids encode(std::string_view text, bool add_special) const override {
    const std::string fixed = repair_utf8(text);
    std::vector<int> ids(fixed.size() + 16);
    long n = api_.encode(sp_, fixed.data(), fixed.size(), ids.data(), ids.size());
    if (n > long(ids.size())) {
      ids.resize(std::size_t(n));
      n = api_.encode(sp_, fixed.data(), fixed.size(), ids.data(), ids.size());
    }
    if (n < 0) throw Error("SentencePiece could not encode a text with " + path_);
    Ids out;
    out.reserve(std::size_t(n) + 1);
    if (add_special && bos_) out.push_back(*bos_);
    for (long i = 0; i < n; ++i) out.push_back(static_cast<std::uint32_t>(ids[std::size_t(i)]));
    return out;
  }
  std::string decode(const Ids& ids) const override {
    const std::vector<int> v(ids.begin(), ids.end());
    std::string out(16 * v.size() + 16, '\0');
    long n = api_.decode(sp_, v.data(), v.size(), out.data(), out.size());
    if (n > long(out.size())) {
      out.resize(std::size_t(n));
      n = api_.decode(sp_, v.data(), v.size(), out.data(), out.size());
    }
    if (n < 0) throw Error("SentencePiece could not decode ids with " + path_);
    out.resize(std::size_t(n));
    return out;
  }
  std::size_t vocab_size() const override { return static_cast<std::size_t>(pieces_); }
  std::optional<std::uint32_t> token_to_id(const std::string& token) const override {
    const int id = api_.piece_to_id(sp_, token.c_str());
    if (id < 0 || (id == unk_ && piece(id) != token)) return std::nullopt;
    return static_cast<std::uint32_t>(id);
  }

 private:
  std::string piece(int id) const {
    std::string out(256, '\0');
    long n = api_.id_to_piece(sp_, id, out.data(), out.size());
    if (n > long(out.size())) {
      out.resize(std::size_t(n));
      n = api_.id_to_piece(sp_, id, out.data(), out.size());
    }
    out.resize(std::size_t(std::max(0L, n)));
    return out;
  }

  const SentencePieceApi& api_;
  void* sp_ = nullptr;
  int pieces_ = 0, unk_ = -1;
};

// bos/eos from tokenizer_config.json ("bos_token": "..." or {"content": ...})
// or config.json (bos_token_id, eos_token_id) beside the tokenizer.
void apply_config(Tokenizer& tok, const fs::path& dir) {
  using json = nlohmann::json;
  auto read = [](const fs::path& p) -> json {
    std::ifstream in(p);
    if (!in) return json();
    try {
      return json::parse(in);
    } catch (const json::exception& e) {
      throw UsageError(p.string() + " is not valid JSON: " + e.what());
    }
  };
  const json cfg = read(dir / "config.json");
  auto id_of = [&](const json& v) -> std::optional<std::uint32_t> {
    if (v.is_number_unsigned()) return v.get<std::uint32_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_unsigned()) return v[0].get<std::uint32_t>();
    return std::nullopt;
  };
  if (cfg.is_object()) {
    if (cfg.contains("bos_token_id"))
      if (auto id = id_of(cfg["bos_token_id"])) tok.set_bos(id);
    if (cfg.contains("eos_token_id"))
      if (auto id = id_of(cfg["eos_token_id"])) tok.set_eos(id);
  }
  const json tc = read(dir / "tokenizer_config.json");
  if (tc.is_object()) {
    auto name = [](const json& v) -> std::string {
      if (v.is_string()) return v.get<std::string>();
      if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
      return {};
    };
    if (tc.contains("bos_token"))
      if (auto id = tok.token_to_id(name(tc["bos_token"]))) tok.set_bos(id);
    if (tc.contains("eos_token"))
      if (auto id = tok.token_to_id(name(tc["eos_token"]))) tok.set_eos(id);
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path) { return std::make_unique<SpTokenizer>(path); }

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_or_file) {
  const fs::path p(dir_or_file);
  std::error_code ec;
  std::unique_ptr<Tokenizer> tok;
  fs::path dir;
  if (fs::is_directory(p, ec)) {
    dir = p;
    if (fs::exists(p / "tokenizer.json")) tok = load_hf_tokenizer_json((p / "tokenizer.json").string());
    else if (fs::exists(p / "tokenizer.model")) tok = load_sentencepiece((p / "tokenizer.model").string());
    else
      throw UsageError("no tokenizer.json or tokenizer.model in " + dir_or_file,
                       "give a Hugging Face model directory or a tokenizer file");
  } else if (fs::exists(p, ec)) {
    dir = p.parent_path();
    if (p.extension() == ".json") tok = load_hf_tokenizer_json(p.string());
    else tok = load_sentencepiece(p.string());
  } else {
    throw UsageError("tokenizer " + dir_or_file + " does not exist",
                     "give a directory holding tokenizer.json or tokenizer.model, or one of those files");
  }
  apply_config(*tok, dir.empty() ? fs::path(".") : dir);
  return tok;
}

}  // namespace zinf::tokenize
