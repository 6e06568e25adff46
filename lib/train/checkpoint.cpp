// zinf::train — checkpoint save, prune, load and export.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "model/layout.h"
#include "train/safetensors.h"

namespace zinf::train {
namespace {

using nlohmann::json;
namespace stdfs = std::filesystem;

constexpr const char* kTagPrefix = "global_step";
constexpr const char* kTmpPrefix = ".tmp-";

// Makes a rename or new file in `dir` durable.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::optional<std::int64_t> tag_step(const std::string& name) {
  if (!text::starts_with(name, kTagPrefix) || name.size() == std::string(kTagPrefix).size()) return std::nullopt;
  const std::string digits = name.substr(std::string(kTagPrefix).size());
  if (!std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
  return std::stoll(digits);
}

json spec_json(const ModelSpec& s) {
  return {{"name", s.name}, {"vocab_size", s.vocab_size}, {"seq_len", s.seq_len},
          {"hidden_size", s.hidden_size}, {"layers", s.layers}, {"heads", s.heads}};
}

ModelSpec spec_from(const json& j) {
  return ModelSpec{j.at("name").get<std::string>(), j.at("vocab_size").get<std::int64_t>(),
                   j.at("seq_len").get<std::int64_t>(), j.at("hidden_size").get<std::int64_t>(),
                   j.at("layers").get<std::int64_t>(), j.at("heads").get<std::int64_t>()};
}

}  // namespace

std::string checkpoint_tag(std::int64_t step) { return kTagPrefix + std::to_string(step); }

CheckpointDir::CheckpointDir(std::string dir, std::int64_t keep) : dir_(std::move(dir)), keep_(std::max<std::int64_t>(1, keep)) {
  fs::make_dirs(dir_);
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir_, ec))
    if (text::starts_with(e.path().filename().string(), kTmpPrefix)) fs::remove_all(e.path().string());
}

std::string CheckpointDir::save(const TrainerState& st, const ModelSpec& spec, const FlatState& t) {
  const std::string tag = checkpoint_tag(st.step);
  const std::string final_path = dir_ + "/" + tag;
  const std::string tmp = dir_ + "/" + kTmpPrefix + tag + "." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::make_dirs(tmp);

  json state = {{"step", st.step},
                {"adam_steps", st.adam_steps},
                {"dataset_tokens", st.dataset_tokens},
                {"tokens_seen", st.tokens_seen},
                {"seed", st.seed},
                {"data", {{"epoch", st.data.epoch}, {"position", st.data.position}}}};
  if (st.has_loss_scaler)
    state["loss_scaler"] = {{"scale", st.loss_scaler.scale},
                            {"iteration", st.loss_scaler.iteration},
                            {"last_overflow_iteration", st.loss_scaler.last_overflow_iteration},
                            {"hysteresis_left", st.loss_scaler.hysteresis_left}};
  const std::map<std::string, std::string> meta = {{"format", kCheckpointFormat},
                                                   {"version", std::to_string(kCheckpointVersion)},
                                                   {"model", spec_json(spec).dump()},
                                                   {"state", state.dump()}};
  const std::size_t bytes = std::size_t(t.numel) * sizeof(float);
  write_safetensors(tmp + "/" + kCheckpointFile,
                    {{"params", "F32", {t.numel}, t.params, bytes},
                     {"exp_avg", "F32", {t.numel}, t.exp_avg, bytes},
                     {"exp_avg_sq", "F32", {t.numel}, t.exp_avg_sq, bytes}},
                    meta);
  fsync_dir(tmp);
  fs::remove_all(final_path);  // re-saving a step (a resumed run's final save)
  if (::rename(tmp.c_str(), final_path.c_str()) != 0)
    throw Error("cannot rename checkpoint '" + tmp + "' to '" + final_path + "': " + errno_text(errno));
  fsync_dir(dir_);
  fs::write_file_atomic(dir_ + "/latest", tag);
  fsync_dir(dir_);
  prune();
  return final_path;
}

void CheckpointDir::prune() {
  std::vector<std::pair<std::int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir_, ec))
    if (auto step = tag_step(e.path().filename().string()); step && e.is_directory())
      found.emplace_back(*step, e.path().string());
  std::sort(found.begin(), found.end());
  const auto current = latest();
  for (std::size_t i = 0; i + std::size_t(keep_) < found.size(); ++i)
    if (!current || *current != found[i].second) fs::remove_all(found[i].second);
}

std::optional<std::string> CheckpointDir::latest() const {
  const std::string file = dir_ + "/latest";
  if (!fs::exists(file)) return std::nullopt;
  const std::string tag = text::trim(fs::read_file(file));
  const std::string path = dir_ + "/" + tag;
  if (!tag_step(tag) || !fs::exists(path + "/" + kCheckpointFile))
    throw Error("'" + file + "' names '" + tag + "', which is not a complete checkpoint in " + dir_,
                "delete the latest file to start over, or point it at an existing global_step<N> directory");
  return path;
}

std::string resolve_checkpoint(const std::string& path) {
  if (fs::exists(path + "/" + kCheckpointFile)) return path;
  for (const std::string& dir : {path, path + "/checkpoints"})
    if (fs::exists(dir + "/latest")) {
      if (auto p = CheckpointDir(dir, 1 << 30).latest()) return *p;
    }
  throw UsageError("'" + path + "' is not a zinf checkpoint",
                   "give a checkpoint directory (holding " + std::string(kCheckpointFile) +
                       "), a checkpoints/ directory with a `latest` file, or a training output directory");
}

CheckpointInfo read_checkpoint_info(const std::string& dir) {
  const std::string file = dir + "/" + kCheckpointFile;
  SafetensorsReader r(file);
  const auto& meta = r.metadata();
  auto get = [&](const std::string& key) -> std::string {
    auto it = meta.find(key);
    if (it == meta.end())
      throw UsageError("'" + file + "' lacks the metadata entry '" + key + "'",
                       "this safetensors file was not written by zinf train");
    return it->second;
  };
  if (get("format") != kCheckpointFormat)
    throw UsageError("'" + file + "' has format '" + get("format") + "', expected '" + kCheckpointFormat + "'");
  if (get("version") != std::to_string(kCheckpointVersion))
    throw UsageError("'" + file + "' is checkpoint version " + get("version") + ", this build reads version " +
                         std::to_string(kCheckpointVersion),
                     "use the zinf version that wrote it to export the weights");
  CheckpointInfo info;
  info.path = dir;
  try {
    info.spec = spec_from(json::parse(get("model")));
    const json s = json::parse(get("state"));
    info.state.step = s.at("step").get<std::int64_t>();
    info.state.adam_steps = s.at("adam_steps").get<std::int64_t>();
    info.state.dataset_tokens = s.at("dataset_tokens").get<std::int64_t>();
    info.state.tokens_seen = s.at("tokens_seen").get<std::int64_t>();
    info.state.seed = s.at("seed").get<std::uint64_t>();
    info.state.data.epoch = s.at("data").at("epoch").get<std::int64_t>();
    info.state.data.position = s.at("data").at("position").get<std::int64_t>();
    if (s.contains("loss_scaler")) {
      const json& l = s.at("loss_scaler");
      info.state.has_loss_scaler = true;
      info.state.loss_scaler = {l.at("scale").get<double>(), l.at("iteration").get<std::int64_t>(),
                                l.at("last_overflow_iteration").get<std::int64_t>(),
                                l.at("hysteresis_left").get<std::int64_t>()};
    }
  } catch (const nlohmann::json::exception& e) {
    throw UsageError("'" + file + "' has unreadable metadata: " + e.what());
  }
  info.numel = info.spec.parameter_count();
  for (const char* name : {"params", "exp_avg", "exp_avg_sq"}) {
    const auto& e = r.entry(name);
    if (e.dtype != "F32" || e.end - e.begin != info.numel * 4)
      throw UsageError("'" + file + "' tensor '" + name + "' is " + std::to_string(e.end - e.begin) + " bytes of " +
                       e.dtype + ", the model's " + std::to_string(info.numel) + " parameters need " +
                       std::to_string(info.numel * 4) + " bytes of F32");
  }
  return info;
}

void read_checkpoint_tensors(const CheckpointInfo& info, float* params, float* exp_avg, float* exp_avg_sq) {
  SafetensorsReader r(info.path + "/" + kCheckpointFile);
  const std::size_t bytes = std::size_t(info.numel) * sizeof(float);
  if (params) r.read("params", params, bytes);
  if (exp_avg) r.read("exp_avg", exp_avg, bytes);
  if (exp_avg_sq) r.read("exp_avg_sq", exp_avg_sq, bytes);
}

void write_model_safetensors(const std::string& path, const ModelSpec& spec, const float* params) {
  std::vector<TensorView> views;
  for (const auto& block : model::gpt_layout(spec))
    for (const auto& p : block.params)
      views.push_back({p.name, "F32", p.shape, params + p.offset, std::size_t(p.numel) * sizeof(float)});
  write_safetensors(path, views,
                    {{"format", "pt"},
                     {"producer", "zinf"},
                     {"architecture", "gpt2 (pre-LayerNorm decoder, tanh GELU, nanoGPT parameter names)"},
                     {"tied", "lm_head.weight = transformer.wte.weight"},
                     {"model", spec_json(spec).dump()}});
}

std::string export_checkpoint(const std::string& path, const std::string& out) {
  const CheckpointInfo info = read_checkpoint_info(resolve_checkpoint(path));
  std::vector<float> params(static_cast<std::size_t>(info.numel));
  read_checkpoint_tensors(info, params.data(), nullptr, nullptr);
  write_model_safetensors(out, info.spec, params.data());
  return info.path;
}

}  // namespace zinf::train
