// zinf::tokenize — choosing and opening a tokenizer; the SentencePiece one.
#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenize/tokenizer.h"
#include "tokenize/utf8.h"

namespace zinf::tokenize {
namespace {

namespace fs = std::filesystem;

class SpTokenizer final : public Tokenizer {
 public:
  explicit SpTokenizer(const std::string& path) {
    path_ = path;
    const auto st = sp_.Load(path);
    if (!st.ok())
      throw UsageError(path + " is not a SentencePiece model: " + st.ToString(), "give a tokenizer.model file");
    description_ = "tokenizer.model (SentencePiece, " + std::to_string(sp_.GetPieceSize()) + " ids)";
    if (sp_.bos_id() >= 0) bos_ = static_cast<std::uint32_t>(sp_.bos_id());
    if (sp_.eos_id() >= 0) eos_ = static_cast<std::uint32_t>(sp_.eos_id());
  }
  Ids encode(std::string_view text, bool add_special) const override {
    std::vector<int> ids;
    sp_.Encode(repair_utf8(text), &ids);
    Ids out;
    out.reserve(ids.size() + 1);
    if (add_special && bos_) out.push_back(*bos_);
    for (int id : ids) out.push_back(static_cast<std::uint32_t>(id));
    return out;
  }
  std::string decode(const Ids& ids) const override {
    std::vector<int> v(ids.begin(), ids.end());
    std::string out;
    sp_.Decode(v, &out);
    return out;
  }
  std::size_t vocab_size() const override { return static_cast<std::size_t>(sp_.GetPieceSize()); }
  std::optional<std::uint32_t> token_to_id(const std::string& token) const override {
    const int id = sp_.PieceToId(token);
    if (id < 0 || (id == sp_.unk_id() && sp_.IdToPiece(id) != token)) return std::nullopt;
    return static_cast<std::uint32_t>(id);
  }

 private:
  sentencepiece::SentencePieceProcessor sp_;
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
