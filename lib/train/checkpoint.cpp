// zinf::train — sharded checkpoint save, prune, read and export.
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
constexpr const char* kTensorNames[3] = {"params", "exp_avg", "exp_avg_sq"};

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

// True when `dir` holds a complete checkpoint of either version.
bool is_checkpoint(const std::string& dir) {
  return fs::exists(dir + "/" + kCheckpointMetaFile) || fs::exists(dir + "/" + kCheckpointV1File);
}

// The checkpoint `dir`/latest names; nullopt without a latest file; throws
// when it names something that is not a complete checkpoint.
std::optional<std::string> latest_in(const std::string& dir) {
  const std::string file = dir + "/latest";
  if (!fs::exists(file)) return std::nullopt;
  const std::string tag = text::trim(fs::read_file(file));
  const std::string path = dir + "/" + tag;
  if (!tag_step(tag) || !is_checkpoint(path))
    throw Error("'" + file + "' names '" + tag + "', which is not a complete checkpoint in " + dir,
                "delete the latest file to start over, or point it at an existing global_step<N> directory");
  return path;
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

json state_json(const TrainerState& st) {
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
  return state;
}

TrainerState state_from(const json& s) {
  TrainerState st;
  st.step = s.at("step").get<std::int64_t>();
  st.adam_steps = s.at("adam_steps").get<std::int64_t>();
  st.dataset_tokens = s.at("dataset_tokens").get<std::int64_t>();
  st.tokens_seen = s.at("tokens_seen").get<std::int64_t>();
  st.seed = s.at("seed").get<std::uint64_t>();
  st.data.epoch = s.at("data").at("epoch").get<std::int64_t>();
  st.data.position = s.at("data").at("position").get<std::int64_t>();
  if (s.contains("loss_scaler")) {
    const json& l = s.at("loss_scaler");
    st.has_loss_scaler = true;
    st.loss_scaler = {l.at("scale").get<double>(), l.at("iteration").get<std::int64_t>(),
                      l.at("last_overflow_iteration").get<std::int64_t>(), l.at("hysteresis_left").get<std::int64_t>()};
  }
  return st;
}

json ranges_json(const std::vector<FlatRange>& ranges) {
  json out = json::array();
  for (const auto& r : ranges) out.push_back({r.begin, r.count});
  return out;
}

// Writes one rank's shard file: `shard.ranges`' master weights and moments,
// as shard.stream delivers them, at their offsets in the file.
void write_shard(const std::string& path, int rank, int world, const TrainerState& st, std::int64_t numel,
                 const ShardContent& shard) {
  const std::vector<FlatRange>& ranges = shard.ranges;
  std::vector<std::int64_t> local(ranges.size() + 1, 0);  // [ranges + 1] element offsets into the shard's tensors
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const FlatRange& r = ranges[i];
    if (r.count < 0 || r.begin < (i ? ranges[i - 1].end() : 0) || r.end() > numel)
      throw Error("rank " + std::to_string(rank) + "'s checkpoint ranges are not increasing, disjoint ranges within the " +
                  std::to_string(numel) + "-element model: range " + std::to_string(i) + " is [" +
                  std::to_string(r.begin) + ", " + std::to_string(r.end()) + ")");
    local[i + 1] = local[i] + r.count;
  }
  const std::int64_t count = local.back();
  std::vector<TensorSpec> specs;
  for (const char* name : kTensorNames) specs.push_back({name, "F32", {count}});
  SafetensorsWriter writer(path, specs,
                           {{"format", kShardFormat},
                            {"version", std::to_string(kCheckpointVersion)},
                            {"rank", std::to_string(rank)},
                            {"world_size", std::to_string(world)},
                            {"step", std::to_string(st.step)},
                            {"numel", std::to_string(numel)},
                            {"ranges", ranges_json(ranges).dump()}});
  std::size_t at = 0;  // pieces arrive in increasing order: the range search only moves forward
  shard.stream([&](const FlatRange& piece, const float* master, const float* m, const float* v) {
    const float* src[3] = {master, m, v};
    std::int64_t b = piece.begin;
    const std::int64_t e = piece.end();
    while (b < e) {
      while (at < ranges.size() && ranges[at].end() <= b) ++at;
      if (at == ranges.size() || ranges[at].begin > b)
        throw Error("rank " + std::to_string(rank) + " streamed elements [" + std::to_string(b) + ", " +
                    std::to_string(e) + ") into its checkpoint shard, outside the ranges it owns (or out of order)");
      const std::int64_t n = std::min(e, ranges[at].end()) - b;
      const std::int64_t into = local[at] + (b - ranges[at].begin);
      for (int t = 0; t < 3; ++t)
        writer.write(writer.data_offset(std::size_t(t)) + into * 4, src[t] + (b - piece.begin), std::size_t(n) * 4);
      b += n;
    }
  });
  writer.commit();
}

Error with_rank(const Error& e, int rank, int world) {
  return Error("rank " + std::to_string(rank) + " of " + std::to_string(world) + "'s checkpoint shard: " + e.what(),
               e.hint().empty() ? "the checkpoint is damaged: resume from an earlier global_step<N> (write its name "
                                  "into checkpoints/latest) or restore the file"
                                : e.hint(),
               e.code());
}

}  // namespace

std::string checkpoint_tag(std::int64_t step) { return kTagPrefix + std::to_string(step); }
std::string shard_file_name(int rank) { return "state.rank" + std::to_string(rank) + ".safetensors"; }

// ------------------------------------------------------------ saving

CheckpointDir::CheckpointDir(std::string dir, std::int64_t keep, CheckpointGroup group)
    : dir_(std::move(dir)), keep_(std::max<std::int64_t>(1, keep)), group_(std::move(group)) {
  if (group_.world_size > 1 && !group_.barrier)
    throw Error("a checkpoint saved by " + std::to_string(group_.world_size) + " ranks needs a barrier");
  fs::make_dirs(dir_);
  if (group_.rank != 0) return;
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(dir_, ec))
    if (text::starts_with(e.path().filename().string(), kTmpPrefix)) fs::remove_all(e.path().string());
}

std::string CheckpointDir::save(const TrainerState& st, const ModelSpec& spec, const ShardContent& shard) {
  const auto barrier = [&] {
    if (group_.barrier) group_.barrier();
  };
  const std::string tag = checkpoint_tag(st.step);
  const std::string final_path = dir_ + "/" + tag;
  // One name for every rank: they all write into it.
  const std::string tmp = dir_ + "/" + kTmpPrefix + tag;
  if (group_.rank == 0) {
    fs::remove_all(tmp);
    fs::make_dirs(tmp);
  }
  barrier();  // the directory exists and is empty
  const std::int64_t numel = spec.parameter_count();
  // A full disk (or any failure, here or on a peer) before the commit gives
  // back what the unfinished checkpoint holds; `latest` still names the
  // previous one.
  try {
    write_shard(tmp + "/" + shard_file_name(group_.rank), group_.rank, group_.world_size, st, numel, shard);
    barrier();  // every shard is on disk
    if (group_.rank == 0) {
      json shards = json::array();
      for (int r = 0; r < group_.world_size; ++r) shards.push_back(shard_file_name(r));
      const json meta = {{"format", kCheckpointFormat}, {"version", kCheckpointVersion},
                         {"world_size", group_.world_size}, {"numel", numel},
                         {"model", spec_json(spec)},        {"state", state_json(st)},
                         {"shards", shards}};
      fs::write_file_atomic(tmp + "/" + kCheckpointMetaFile, meta.dump(2) + "\n");
      fsync_dir(tmp);
    }
  } catch (...) {
    if (group_.rank == 0) {
      try {
        fs::remove_all(tmp);
      } catch (...) {  // the original error is the one to report
      }
    } else {
      ::unlink((tmp + "/" + shard_file_name(group_.rank)).c_str());
    }
    throw;
  }
  if (group_.rank == 0) {
    fs::remove_all(final_path);  // re-saving a step (a resumed run's final save); `latest` does not name it
    if (::rename(tmp.c_str(), final_path.c_str()) != 0)
      throw Error("cannot rename checkpoint '" + tmp + "' to '" + final_path + "': " + errno_text(errno));
    fsync_dir(dir_);
    fs::write_file_atomic(dir_ + "/latest", tag);
    fsync_dir(dir_);
    prune();
  }
  barrier();  // committed: no rank goes on before `latest` names it
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

std::optional<std::string> CheckpointDir::latest() const { return latest_in(dir_); }

std::string resolve_checkpoint(const std::string& path) {
  if (is_checkpoint(path)) return path;
  for (const std::string& dir : {path, path + "/checkpoints"})
    if (fs::exists(dir + "/latest")) {
      if (auto p = latest_in(dir)) return *p;
    }
  throw UsageError("'" + path + "' is not a zinf checkpoint",
                   "give a checkpoint directory (holding " + std::string(kCheckpointMetaFile) + " or " +
                       kCheckpointV1File + "), a checkpoints/ directory with a `latest` file, or a training output "
                       "directory");
}

// ------------------------------------------------------------ reading

struct CheckpointReader::Shard {
  std::string file;
  std::unique_ptr<SafetensorsReader> reader;
};

CheckpointReader::CheckpointReader(const std::string& dir) {
  info_.path = dir;
  const std::string meta_file = dir + "/" + kCheckpointMetaFile;
  if (fs::exists(meta_file)) {
    // ---- version 2: checkpoint.json and one shard file per rank
    try {
      const json meta = json::parse(fs::read_file(meta_file));
      if (meta.value("format", "") != kCheckpointFormat)
        throw UsageError("'" + meta_file + "' has format '" + meta.value("format", "") + "', expected '" +
                         kCheckpointFormat + "'");
      info_.version = meta.at("version").get<int>();
      if (info_.version != kCheckpointVersion)
        throw UsageError("'" + meta_file + "' is checkpoint version " + std::to_string(info_.version) +
                             ", this build reads versions 1 and " + std::to_string(kCheckpointVersion),
                         "use the zinf version that wrote it to export the weights");
      info_.world_size = meta.at("world_size").get<int>();
      info_.numel = meta.at("numel").get<std::int64_t>();
      info_.spec = spec_from(meta.at("model"));
      info_.state = state_from(meta.at("state"));
    } catch (const nlohmann::json::exception& e) {
      throw UsageError("'" + meta_file + "' is unreadable: " + e.what(),
                       "the checkpoint is damaged: resume from an earlier global_step<N>");
    }
    if (info_.world_size < 1 || info_.numel != info_.spec.parameter_count())
      throw UsageError("'" + meta_file + "' says " + std::to_string(info_.world_size) + " ranks and " +
                       std::to_string(info_.numel) + " elements, but its model has " +
                       std::to_string(info_.spec.parameter_count()) + " parameters");
    for (int r = 0; r < info_.world_size; ++r) {
      auto shard = std::make_unique<Shard>();
      shard->file = dir + "/" + shard_file_name(r);
      if (!fs::exists(shard->file))
        throw UsageError("checkpoint " + dir + " lacks the shard file of rank " + std::to_string(r) + " of " +
                             std::to_string(info_.world_size) + ": '" + shard->file + "' does not exist",
                         "the checkpoint is incomplete: resume from an earlier global_step<N> (write its name into "
                         "checkpoints/latest) or restore the file");
      std::vector<FlatRange> ranges;
      try {
        shard->reader = std::make_unique<SafetensorsReader>(shard->file);
        const auto& md = shard->reader->metadata();
        auto get = [&](const char* key) -> std::string {
          const auto it = md.find(key);
          if (it == md.end()) throw UsageError("'" + shard->file + "' lacks the metadata entry '" + key + "'");
          return it->second;
        };
        if (get("format") != kShardFormat || get("rank") != std::to_string(r) ||
            get("world_size") != std::to_string(info_.world_size) || get("step") != std::to_string(info_.state.step))
          throw UsageError("'" + shard->file + "' is the shard of rank " + get("rank") + " of " + get("world_size") +
                           " at step " + get("step") + " (format '" + get("format") + "'), but " + meta_file +
                           " expects rank " + std::to_string(r) + " of " + std::to_string(info_.world_size) +
                           " at step " + std::to_string(info_.state.step));
        try {
          for (const auto& pair : json::parse(get("ranges")))
            ranges.push_back({pair.at(0).get<std::int64_t>(), pair.at(1).get<std::int64_t>()});
        } catch (const nlohmann::json::exception& e) {
          throw UsageError("'" + shard->file + "' has unreadable ranges: " + e.what());
        }
        const std::int64_t count = total_count(ranges);
        for (const char* name : kTensorNames) {
          const auto& e = shard->reader->entry(name);
          if (e.dtype != "F32" || e.end - e.begin != count * 4)
            throw UsageError("'" + shard->file + "' tensor '" + name + "' is " + std::to_string(e.end - e.begin) +
                             " bytes of " + e.dtype + ", its ranges need " + std::to_string(count * 4) +
                             " bytes of F32");
        }
      } catch (const Error& e) {
        throw with_rank(e, r, info_.world_size);
      }
      std::int64_t local = 0;
      for (const FlatRange& range : ranges) {
        pieces_.push_back({range, shards_.size(), local});
        local += range.count;
      }
      shards_.push_back(std::move(shard));
    }
  } else {
    // ---- version 1: one state.safetensors with everything
    const std::string file = dir + "/" + kCheckpointV1File;
    auto shard = std::make_unique<Shard>();
    shard->file = file;
    shard->reader = std::make_unique<SafetensorsReader>(file);
    const auto& meta = shard->reader->metadata();
    auto get = [&](const std::string& key) -> std::string {
      auto it = meta.find(key);
      if (it == meta.end())
        throw UsageError("'" + file + "' lacks the metadata entry '" + key + "'",
                         "this safetensors file was not written by zinf train");
      return it->second;
    };
    if (get("format") != kCheckpointFormat)
      throw UsageError("'" + file + "' has format '" + get("format") + "', expected '" + kCheckpointFormat + "'");
    if (get("version") != "1")
      throw UsageError("'" + file + "' is checkpoint version " + get("version") +
                           ", this build reads versions 1 and " + std::to_string(kCheckpointVersion),
                       "use the zinf version that wrote it to export the weights");
    info_.version = 1;
    try {
      info_.spec = spec_from(json::parse(get("model")));
      info_.state = state_from(json::parse(get("state")));
    } catch (const nlohmann::json::exception& e) {
      throw UsageError("'" + file + "' has unreadable metadata: " + e.what());
    }
    info_.numel = info_.spec.parameter_count();
    for (const char* name : kTensorNames) {
      const auto& e = shard->reader->entry(name);
      if (e.dtype != "F32" || e.end - e.begin != info_.numel * 4)
        throw UsageError("'" + file + "' tensor '" + name + "' is " + std::to_string(e.end - e.begin) + " bytes of " +
                         e.dtype + ", the model's " + std::to_string(info_.numel) + " parameters need " +
                         std::to_string(info_.numel * 4) + " bytes of F32");
    }
    pieces_.push_back({{0, info_.numel}, 0, 0});
    shards_.push_back(std::move(shard));
  }
  // The shards must tile the flat vector: every element exactly once.
  std::sort(pieces_.begin(), pieces_.end(), [](const Piece& a, const Piece& b) { return a.range.begin < b.range.begin; });
  std::int64_t cursor = 0;
  for (const Piece& p : pieces_) {
    if (p.range.count == 0) continue;
    if (p.range.begin != cursor)
      throw UsageError("checkpoint " + dir + "'s shards " +
                           (p.range.begin > cursor ? "leave elements [" + std::to_string(cursor) + ", " +
                                                         std::to_string(p.range.begin) + ") unowned"
                                                   : "both hold element " + std::to_string(p.range.begin)) +
                           " (" + shards_[p.shard]->file + ")",
                       "the checkpoint is damaged: resume from an earlier global_step<N>");
    cursor = p.range.end();
  }
  if (cursor != info_.numel)
    throw UsageError("checkpoint " + dir + "'s shards hold elements [0, " + std::to_string(cursor) + ") of " +
                         std::to_string(info_.numel),
                     "the checkpoint is damaged: resume from an earlier global_step<N>");
  pieces_.erase(std::remove_if(pieces_.begin(), pieces_.end(), [](const Piece& p) { return p.range.count == 0; }),
                pieces_.end());
}

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::read(const FlatRange& range, float* master, float* m, float* v) const {
  if (range.begin < 0 || range.count < 0 || range.end() > info_.numel)
    throw Error("elements [" + std::to_string(range.begin) + ", " + std::to_string(range.end()) +
                ") are outside checkpoint " + info_.path + "'s " + std::to_string(info_.numel));
  float* dst[3] = {master, m, v};
  // The piece holding range.begin: the last one that starts at or before it.
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), range.begin,
                             [](std::int64_t b, const Piece& p) { return b < p.range.begin; });
  std::int64_t b = range.begin;
  for (--it; b < range.end(); ++it) {
    const std::int64_t n = std::min(range.end(), it->range.end()) - b;
    const Shard& shard = *shards_[it->shard];
    for (int t = 0; t < 3; ++t)
      if (dst[t]) shard.reader->read_range(kTensorNames[t], it->local + (b - it->range.begin), n, dst[t] + (b - range.begin));
    b += n;
  }
}

StateSource CheckpointReader::source() const {
  return [this](const FlatRange& range, float* master, float* m, float* v) { read(range, master, m, v); };
}

CheckpointInfo read_checkpoint_info(const std::string& dir) { return CheckpointReader(dir).info(); }

// ------------------------------------------------------------ export

void write_model_safetensors(const std::string& path, const ModelSpec& spec,
                             const std::function<void(const FlatRange&, float*)>& read_master, std::int64_t chunk) {
  std::vector<TensorSpec> tensors;
  std::int64_t cursor = 0;
  for (const auto& block : model::gpt_layout(spec))
    for (const auto& p : block.params) {
      // The data section is the flat vector itself: the layout has no gaps.
      if (p.offset != cursor)
        throw Error("parameter '" + p.name + "' starts at element " + std::to_string(p.offset) + ", not " +
                    std::to_string(cursor) + ": the flat layout has a gap");
      tensors.push_back({p.name, "F32", p.shape});
      cursor += p.numel;
    }
  SafetensorsWriter writer(path, tensors,
                           {{"format", "pt"},
                            {"producer", "zinf"},
                            {"architecture", "gpt2 (pre-LayerNorm decoder, tanh GELU, nanoGPT parameter names)"},
                            {"tied", "lm_head.weight = transformer.wte.weight"},
                            {"model", spec_json(spec).dump()}});
  std::vector<float> buf(std::size_t(std::max<std::int64_t>(1, std::min(chunk, cursor))));
  for (std::int64_t b = 0; b < cursor; b += std::int64_t(buf.size())) {
    const FlatRange r{b, std::min<std::int64_t>(std::int64_t(buf.size()), cursor - b)};
    read_master(r, buf.data());
    writer.write(b * 4, buf.data(), std::size_t(r.count) * 4);
  }
  writer.commit();
}

std::string export_checkpoint(const std::string& path, const std::string& out) {
  const CheckpointReader reader(resolve_checkpoint(path));
  write_model_safetensors(out, reader.info().spec,
                          [&](const FlatRange& r, float* dst) { reader.read(r, dst, nullptr, nullptr); });
  return reader.info().path;
}

}  // namespace zinf::train
