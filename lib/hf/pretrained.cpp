// zinf::hf — reading a Hugging Face model directory's weights (single file or sharded).
#include "hf/pretrained.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "hf/dtype.h"
#include "hf/names.h"
#include "hf/safetensors.h"

namespace zinf::hf {
namespace {

using json = nlohmann::json;

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The shard of each tensor, from model.safetensors.index.json's weight_map.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path);
  if (!in) throw UsageError("cannot read " + index_path, "a sharded Hugging Face model directory holds its index");
  std::stringstream text;
  text << in.rdbuf();
  json j;
  try {
    j = json::parse(text.str());
  } catch (const json::exception& e) {
    throw UsageError(index_path + " is not valid JSON: " + e.what(), "the index transformers writes next to the shards");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw UsageError(index_path + " has no weight_map object", "{\"metadata\": {...}, \"weight_map\": {tensor: file}}");
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().empty() || file.get<std::string>().find('/') != std::string::npos)
      throw UsageError(index_path + ": weight_map['" + name + "'] is " + file.dump() + ", not a file name",
                       "the name of a .safetensors file in the same directory");
    map[name] = file.get<std::string>();
  }
  return map;
}

// Tensors in files that are not parameters: GPT-2's attention masks, rotary
// inverse frequencies older Llama checkpoints saved.
bool is_buffer(const std::string& model_type, const std::string& name) {
  if (model_type == "gpt2" && gpt2_is_buffer(name)) return true;
  return ends_with(name, ".rotary_emb.inv_freq");
}

}  // namespace

PretrainedWeights::~PretrainedWeights() = default;

PretrainedWeights::PretrainedWeights(const std::string& dir, const std::string& model_type, bool tied,
                                     const std::vector<ExpectedTensor>& params)
    : dir_(dir) {
  const bool gpt2 = model_type == "gpt2";
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  // Each file tensor's zinf name -> (file, its name there).
  std::map<std::string, std::pair<std::size_t, std::string>> found;
  auto open = [&](const std::string& file) -> std::size_t {
    for (std::size_t i = 0; i < file_names_.size(); ++i)
      if (file_names_[i] == file) return i;
    const std::string path = dir + "/" + file;
    if (!fs::exists(path)) throw UsageError(path + " is missing", "the model's files are incomplete; download it again");
    files_.push_back(std::make_unique<SafetensorsReader>(path));
    file_names_.push_back(file);
    return files_.size() - 1;
  };
  auto add = [&](const std::string& name, std::size_t file) {
    if (is_buffer(model_type, name)) return;
    const std::string zname = gpt2 ? gpt2_param_name(name) : name;
    if (tied && zname == "lm_head.weight") return;  // the embedding, saved twice
    if (!found.emplace(zname, std::make_pair(file, name)).second)
      throw UsageError("tensor '" + name + "' appears twice in " + dir + " (" + file_names_[found[zname].first] +
                           " and " + file_names_[file] + ")",
                       "a model directory holds each tensor once");
  };
  if (fs::exists(index)) {
    const auto map = read_weight_map(index);
    for (const auto& [name, file] : map) {
      const std::size_t f = open(file);
      if (!files_[f]->tensors().count(name))
        throw UsageError(index + " puts tensor '" + name + "' in " + file + ", which does not hold it",
                         "the index and the shards come from different saves; download the model again");
      add(name, f);
    }
  } else if (fs::exists(single)) {
    const std::size_t f = open("model.safetensors");
    for (const auto& [name, entry] : files_[f]->tensors()) add(name, f);
  } else {
    throw UsageError(dir + " has neither model.safetensors nor model.safetensors.index.json",
                     "a Hugging Face model directory saved with safetensors (save_pretrained(..., "
                     "safe_serialization=True)); .bin (pickle) weights are not read");
  }

  std::set<std::string> used;
  for (const auto& p : params) {
    const auto it = found.find(p.name);
    if (it == found.end())
      throw UsageError(dir + " has no tensor '" + p.name + "' (shape " + shape_text(p.shape) + ")",
                       "the directory's weights do not match its config.json, or the run changes the model's "
                       "dimensions (--layers, --hidden-size, ...): drop those flags");
    const SafetensorsReader& file = *files_[it->second.first];
    const std::string& tensor = it->second.second;
    const SafetensorsReader::Entry& e = file.entry(tensor);
    Source src;
    src.file = &file;
    src.tensor = tensor;
    src.shape = p.shape;
    src.transposed = gpt2 && p.shape.size() == 2 && gpt2_is_conv1d_weight(p.name);
    const std::string where = "tensor '" + tensor + "' in " + dir + "/" + file_names_[it->second.first];
    src.dtype = int(dtype_of(e.dtype, where));
    std::vector<std::int64_t> want = p.shape;
    if (src.transposed) std::swap(want[0], want[1]);
    if (e.shape != want)
      throw UsageError(where + " has shape " + shape_text(e.shape) + ", the model expects " + shape_text(want),
                       "the directory's weights do not match its config.json, or the run changes the model's "
                       "dimensions: drop those flags");
    used.insert(p.name);
    sources_.push_back(std::move(src));
  }
  for (const auto& [zname, where] : found)
    if (!used.count(zname))
      throw UsageError("tensor '" + where.second + "' in " + dir + "/" + file_names_[where.first] +
                           " is not a parameter of the " + model_type + " model its config.json describes",
                       "the weights and config.json come from different models");
}

void PretrainedWeights::read(std::size_t index, std::int64_t first, std::int64_t count, float* dst) const {
  const Source& s = sources_.at(index);
  const Dtype dtype = Dtype(s.dtype);
  const auto es = std::int64_t(element_bytes(dtype));
  if (!s.transposed) {
    // Straight ranges, converted through a bounded buffer (F32 reads straight into dst).
    constexpr std::int64_t kPiece = std::int64_t(1) << 22;  // elements
    std::vector<unsigned char> raw(dtype == Dtype::kF32 ? 0 : std::size_t(std::min(count, kPiece) * es));
    for (std::int64_t done = 0; done < count; done += kPiece) {
      const std::int64_t n = std::min(kPiece, count - done);
      if (dtype == Dtype::kF32) {
        s.file->read_range(s.tensor, first + done, n, dst + done);
      } else {
        s.file->read_range(s.tensor, first + done, n, raw.data());
        to_float(dtype, raw.data(), dst + done, std::size_t(n));
      }
    }
    return;
  }
  // Conv1D [in, out] in the file, [out, in] here: element (o, i) is the
  // file's i * out + o. A whole GPT-2 matrix is small next to its model.
  const std::int64_t out = s.shape[0], in = s.shape[1];
  std::vector<float> whole(std::size_t(out * in));
  std::vector<unsigned char> raw(dtype == Dtype::kF32 ? 0 : std::size_t(out * in * es));
  if (dtype == Dtype::kF32) {
    s.file->read_range(s.tensor, 0, out * in, whole.data());
  } else {
    s.file->read_range(s.tensor, 0, out * in, raw.data());
    to_float(dtype, raw.data(), whole.data(), whole.size());
  }
  for (std::int64_t k = 0; k < count; ++k) {
    const std::int64_t e = first + k, o = e / in, i = e % in;
    dst[k] = whole[std::size_t(i * out + o)];
  }
}

}  // namespace zinf::hf
