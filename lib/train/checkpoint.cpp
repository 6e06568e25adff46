// zinf::train — sharded checkpoint save, prune, read (verified) and export.
#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/text.h"
#include "io/checksum.h"
#include "log/log.h"
#include "model/layout.h"
#include "hf/hf_config_writer.h"
#include "hf/names.h"
#include "hf/safetensors.h"

namespace zinf::train {

using hf::SafetensorsReader;
using hf::SafetensorsWriter;
using hf::TensorSpec;

namespace {

using nlohmann::json;
namespace stdfs = std::filesystem;

constexpr const char* kTagPrefix = "global_step";
constexpr const char* kTmpPrefix = ".tmp-";
constexpr const char* kTensorNames[3] = {"params", "exp_avg", "exp_avg_sq"};
constexpr const char* kDamagedHint =
    "the checkpoint is damaged: resume from an earlier global_step<N> (write its name into checkpoints/latest) or "
    "restore the file";
constexpr std::size_t kMaxLatestBytes = 4096;  // a `latest` file names one directory

// ------------------------------------------------------------ small helpers

// 8 lowercase hex digits.
std::string hex8(std::uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// `text` quoted for a message: at most `max` bytes, unprintable ones as \xNN.
std::string quoted(const std::string& text, std::size_t max = 64) {
  std::string out = "'";
  for (std::size_t i = 0; i < std::min(max, text.size()); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  out += "'";
  if (text.size() > max) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

// What hex8 wrote (lowercase only: a flipped case bit is a changed file).
std::optional<std::uint32_t> parse_hex8(const std::string& text) {
  const auto digit = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  if (text.size() != 8 || !std::all_of(text.begin(), text.end(), digit)) return std::nullopt;
  return std::uint32_t(std::stoul(text, nullptr, 16));
}

// JSON as its checksum sees it: compact, keys sorted (nlohmann's order).
std::string canonical(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Error corrupt(const std::string& what, const std::string& hint = kDamagedHint) {
  return UsageError("corrupt checkpoint: " + what, hint);
}

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
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return std::nullopt;
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
  const std::string hint = "delete the latest file to start over, or write the name of an existing global_step<N> "
                           "directory into it";
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || std::size_t(st.st_size) > kMaxLatestBytes))
    throw UsageError("'" + file + "' is " +
                         (S_ISREG(st.st_mode) ? std::to_string(st.st_size) + " bytes" : std::string("not a file")) +
                         ", not the name of a checkpoint (global_step<N>)",
                     hint);
  const std::string raw = fs::read_file(file);
  const std::string tag = text::trim(raw);
  if (!tag_step(tag))
    throw UsageError("'" + file + "' should name a global_step<N> directory, it holds " + quoted(raw), hint);
  const std::string path = dir + "/" + tag;
  if (!is_checkpoint(path))
    throw UsageError("'" + file + "' names '" + tag + "', which is not a complete checkpoint in " + dir, hint);
  return path;
}

json spec_json(const ModelSpec& s) {
  return {{"name", s.name},
          {"vocab_size", s.vocab_size},
          {"seq_len", s.seq_len},
          {"hidden_size", s.hidden_size},
          {"layers", s.layers},
          {"heads", s.heads},
          {"model_type", s.model_type},
          {"kv_heads", s.kv_heads},
          {"intermediate_size", s.intermediate_size},
          {"head_dim", s.head_dim},
          {"max_positions", s.max_positions},
          {"norm_eps", s.norm_eps},
          {"rope_theta", s.rope_theta},
          {"rope_scaling",
           {{"type", s.rope_scaling.type},
            {"factor", s.rope_scaling.factor},
            {"low_freq_factor", s.rope_scaling.low_freq_factor},
            {"high_freq_factor", s.rope_scaling.high_freq_factor},
            {"original_max_position", s.rope_scaling.original_max_position}}},
          {"tied_embeddings", s.tied_embeddings},
          {"attention_bias", s.attention_bias},
          {"bos_token_id", s.bos_token_id},
          {"eos_token_id", s.eos_token_id},
          {"sliding_window", s.sliding_window}};
}

// Checkpoints written before zinf knew several architectures hold only the
// six GPT-2 dimensions: the defaults below are that decoder.
ModelSpec spec_from(const json& j) {
  ModelSpec s{j.at("name").get<std::string>(), j.at("vocab_size").get<std::int64_t>(),
              j.at("seq_len").get<std::int64_t>(), j.at("hidden_size").get<std::int64_t>(),
              j.at("layers").get<std::int64_t>(), j.at("heads").get<std::int64_t>()};
  s.model_type = j.value("model_type", s.model_type);
  s.kv_heads = j.value("kv_heads", s.kv_heads);
  s.intermediate_size = j.value("intermediate_size", s.intermediate_size);
  s.head_dim = j.value("head_dim", s.head_dim);
  s.max_positions = j.value("max_positions", s.max_positions);
  s.norm_eps = j.value("norm_eps", s.norm_eps);
  s.rope_theta = j.value("rope_theta", s.rope_theta);
  if (j.contains("rope_scaling")) {
    const json& r = j.at("rope_scaling");
    s.rope_scaling.type = r.value("type", s.rope_scaling.type);
    s.rope_scaling.factor = r.value("factor", s.rope_scaling.factor);
    s.rope_scaling.low_freq_factor = r.value("low_freq_factor", s.rope_scaling.low_freq_factor);
    s.rope_scaling.high_freq_factor = r.value("high_freq_factor", s.rope_scaling.high_freq_factor);
    s.rope_scaling.original_max_position = r.value("original_max_position", s.rope_scaling.original_max_position);
  }
  s.tied_embeddings = j.value("tied_embeddings", s.tied_embeddings);
  s.attention_bias = j.value("attention_bias", s.attention_bias);
  s.bos_token_id = j.value("bos_token_id", s.bos_token_id);
  s.eos_token_id = j.value("eos_token_id", s.eos_token_id);
  s.sliding_window = j.value("sliding_window", s.sliding_window);
  return s;
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
  const DataShape& d = st.shape;
  state["dataset"] = {{"path", d.dataset_path}, {"tokens", st.dataset_tokens}, {"crc32c", hex8(d.dataset_crc32c)}};
  state["batch"] = {{"micro_batch", d.micro_batch}, {"grad_accum", d.grad_accum}, {"world_size", d.world_size},
                    {"global_batch", d.global_batch()}};
  if (!st.precision.empty()) state["precision"] = st.precision;
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
  st.precision = s.value("precision", std::string());  // absent before the HF export
  if (s.contains("dataset")) {  // version 3
    const json& d = s.at("dataset");
    st.shape.dataset_path = d.at("path").get<std::string>();
    const auto crc = parse_hex8(d.at("crc32c").get<std::string>());
    if (!crc) throw std::invalid_argument("state.dataset.crc32c is not 8 hex digits");
    st.shape.dataset_crc32c = *crc;
    const json& b = s.at("batch");
    st.shape.micro_batch = b.at("micro_batch").get<std::int64_t>();
    st.shape.grad_accum = b.at("grad_accum").get<std::int64_t>();
    st.shape.world_size = b.at("world_size").get<std::int64_t>();
  }
  return st;
}

json ranges_json(const std::vector<FlatRange>& ranges) {
  json out = json::array();
  for (const auto& r : ranges) out.push_back({r.begin, r.count});
  return out;
}

// ------------------------------------------------------------ checksums

// The CRC32C of each `chunk` bytes of one tensor's data, fed in order.
class ChunkCrcs {
 public:
  explicit ChunkCrcs(std::int64_t chunk) : chunk_(chunk) {}
  void add(const void* data, std::int64_t bytes) {
    const char* p = static_cast<const char*>(data);
    while (bytes > 0) {
      const std::int64_t n = std::min(bytes, chunk_ - filled_);
      crc_ = io::crc32c(p, std::size_t(n), crc_);
      p += n;
      bytes -= n;
      if ((filled_ += n) == chunk_) flush();
    }
  }
  // The CRCs of every chunk, the last one possibly short.
  const std::vector<std::uint32_t>& finish() {
    if (filled_ > 0) flush();
    return crcs_;
  }

 private:
  void flush() {
    crcs_.push_back(crc_);
    crc_ = 0;
    filled_ = 0;
  }
  std::int64_t chunk_, filled_ = 0;
  std::uint32_t crc_ = 0;
  std::vector<std::uint32_t> crcs_;
};

std::int64_t chunk_count(std::int64_t bytes, std::int64_t chunk) { return (bytes + chunk - 1) / chunk; }

std::string crc_list(const std::vector<std::uint32_t>& crcs) {
  std::string out;
  for (std::size_t i = 0; i < crcs.size(); ++i) out += (i ? "," : "") + hex8(crcs[i]);
  return out;
}

// `count` CRCs written by crc_list; nullopt when `text` is not that.
std::optional<std::vector<std::uint32_t>> parse_crc_list(const std::string& text, std::int64_t count) {
  std::vector<std::uint32_t> crcs;
  if (std::int64_t(text.size()) != std::max<std::int64_t>(0, 9 * count - 1)) return std::nullopt;
  for (std::int64_t i = 0; i < count; ++i) {
    if (i > 0 && text[std::size_t(9 * i - 1)] != ',') return std::nullopt;
    const auto crc = parse_hex8(text.substr(std::size_t(9 * i), 8));
    if (!crc) return std::nullopt;
    crcs.push_back(*crc);
  }
  return crcs;
}

std::string crc_key(int tensor) { return std::string("crc32c.") + kTensorNames[tensor]; }
constexpr const char* kHeaderCrcKey = "header_crc32c";
constexpr const char* kChunkBytesKey = "crc32c_chunk_bytes";

// The checksum of a shard header's content: every tensor's dtype, shape and
// data offsets and every metadata entry but header_crc32c, as compact JSON.
std::uint32_t header_crc(const std::map<std::string, SafetensorsReader::Entry>& tensors,
                         std::map<std::string, std::string> metadata) {
  metadata.erase(kHeaderCrcKey);
  json content = {{"metadata", metadata}, {"tensors", json::object()}};
  for (const auto& [name, e] : tensors) content["tensors"][name] = {e.dtype, e.shape, e.begin, e.end};
  const std::string text = canonical(content);
  return io::crc32c(text.data(), text.size());
}

// checkpoint.json's "crc32c": the checksum of the rest of it, as compact JSON.
std::uint32_t json_crc(json meta) {
  meta.erase("crc32c");
  const std::string text = canonical(meta);
  return io::crc32c(text.data(), text.size());
}

// ------------------------------------------------------------ writing

// Writes one rank's shard file: `shard.ranges`' master weights and moments,
// as shard.stream delivers them, at their offsets in the file, and the
// CRC32C of every `chunk_bytes` of each tensor, computed as the pieces pass.
void write_shard(const std::string& path, int rank, int world, const TrainerState& st, std::int64_t numel,
                 const ShardContent& shard, std::int64_t chunk_bytes) {
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
  std::map<std::string, std::string> metadata = {{"format", kShardFormat},
                                                 {"version", std::to_string(kCheckpointVersion)},
                                                 {"rank", std::to_string(rank)},
                                                 {"world_size", std::to_string(world)},
                                                 {"step", std::to_string(st.step)},
                                                 {"numel", std::to_string(numel)},
                                                 {"ranges", ranges_json(ranges).dump()},
                                                 {kChunkBytesKey, std::to_string(chunk_bytes)},
                                                 {kHeaderCrcKey, hex8(0)}};
  // Placeholders of the final width: the header's size is fixed before the data.
  const std::vector<std::uint32_t> zeros(std::size_t(chunk_count(count * 4, chunk_bytes)), 0);
  for (int t = 0; t < 3; ++t) metadata[crc_key(t)] = crc_list(zeros);
  SafetensorsWriter writer(path, specs, metadata);
  std::vector<ChunkCrcs> crcs(3, ChunkCrcs(chunk_bytes));
  std::int64_t next = 0;  // the shard element the next piece must start at: the CRCs run in order
  std::size_t at = 0;     // pieces arrive in increasing order: the range search only moves forward
  shard.stream([&](const FlatRange& piece, const float* master, const float* m, const float* v) {
    const float* src[3] = {master, m, v};
    std::int64_t b = piece.begin;
    const std::int64_t e = piece.end();
    while (b < e) {
      while (at < ranges.size() && ranges[at].end() <= b) ++at;
      const std::int64_t into = at < ranges.size() ? local[at] + (b - ranges[at].begin) : -1;
      if (at == ranges.size() || ranges[at].begin > b || into != next)
        throw Error("rank " + std::to_string(rank) + " streamed elements [" + std::to_string(b) + ", " +
                    std::to_string(e) + ") into its checkpoint shard, outside the ranges it owns (or out of order)");
      const std::int64_t n = std::min(e, ranges[at].end()) - b;
      for (int t = 0; t < 3; ++t) {
        const float* p = src[t] + (b - piece.begin);
        writer.write(writer.data_offset(std::size_t(t)) + into * 4, p, std::size_t(n) * 4);
        crcs[std::size_t(t)].add(p, n * 4);
      }
      b += n;
      next += n;
    }
  });
  for (int t = 0; t < 3; ++t) metadata[crc_key(t)] = crc_list(crcs[std::size_t(t)].finish());
  std::map<std::string, SafetensorsReader::Entry> entries;
  for (std::size_t t = 0; t < 3; ++t)
    entries[kTensorNames[t]] = {"F32", {count}, writer.data_offset(t), writer.data_offset(t + 1)};
  metadata[kHeaderCrcKey] = hex8(header_crc(entries, metadata));
  writer.set_metadata(metadata);
  writer.commit();
}

// "corrupt checkpoint: rank r of w's checkpoint shard: <what e says>".
Error with_rank(const Error& e, int rank, int world) {
  const std::string prefix = "corrupt checkpoint: ", what = e.what();
  return Error(prefix + "rank " + std::to_string(rank) + " of " + std::to_string(world) + "'s checkpoint shard: " +
                   (text::starts_with(what, prefix) ? what.substr(prefix.size()) : what),
               e.hint().empty() ? kDamagedHint : e.hint(), e.code());
}

}  // namespace

std::string checkpoint_tag(std::int64_t step) { return kTagPrefix + std::to_string(step); }

std::vector<std::string> resume_mismatches(const TrainerState& saved, const TrainerState& now) {
  std::vector<std::string> out;
  const DataShape &a = saved.shape, &b = now.shape;
  const std::string where = a.dataset_path.empty() ? "" : " ('" + a.dataset_path + "')";
  if (saved.dataset_tokens != now.dataset_tokens)
    out.push_back("dataset: the checkpoint's" + where + " has " + std::to_string(saved.dataset_tokens) +
                  " tokens, this run's ('" + b.dataset_path + "') " + std::to_string(now.dataset_tokens));
  else if (a.micro_batch > 0 && a.dataset_crc32c != b.dataset_crc32c)
    out.push_back("dataset: the checkpoint's" + where + " and this run's ('" + b.dataset_path + "') both have " +
                  std::to_string(now.dataset_tokens) + " tokens, but other ones (CRC32C " + hex8(a.dataset_crc32c) +
                  " and " + hex8(b.dataset_crc32c) + ")");
  const auto shape = [](const DataShape& d) {
    return "micro-batch " + std::to_string(d.micro_batch) + " x grad-accum " + std::to_string(d.grad_accum) + " x " +
           std::to_string(d.world_size) + (d.world_size == 1 ? " rank" : " ranks") + " = " +
           std::to_string(d.global_batch()) + " sequences per step";
  };
  if (a.micro_batch > 0 && a.global_batch() != b.global_batch())
    out.push_back("global batch: the checkpoint's run had " + shape(a) + ", this run has " + shape(b));
  return out;
}
std::string shard_file_name(int rank) { return "state.rank" + std::to_string(rank) + ".safetensors"; }

// ------------------------------------------------------------ saving

CheckpointDir::CheckpointDir(std::string dir, std::int64_t keep, CheckpointGroup group, std::int64_t checksum_chunk_bytes)
    : dir_(std::move(dir)),
      keep_(std::max<std::int64_t>(1, keep)),
      group_(std::move(group)),
      chunk_bytes_(checksum_chunk_bytes) {
  if (group_.world_size > 1 && !group_.barrier)
    throw Error("a checkpoint saved by " + std::to_string(group_.world_size) + " ranks needs a barrier");
  if (chunk_bytes_ <= 0 || chunk_bytes_ % 4 != 0)
    throw Error("checkpoint checksum chunks of " + std::to_string(chunk_bytes_) +
                " bytes: they must be a positive multiple of 4");
  // Made by the first save: a run that never saves (--no-save) leaves no empty directory.
  if (group_.rank != 0 || !fs::exists(dir_)) return;
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
    write_shard(tmp + "/" + shard_file_name(group_.rank), group_.rank, group_.world_size, st, numel, shard,
                chunk_bytes_);
    barrier();  // every shard is on disk
    if (group_.rank == 0) {
      json shards = json::array();
      for (int r = 0; r < group_.world_size; ++r) shards.push_back(shard_file_name(r));
      json meta = {{"format", kCheckpointFormat}, {"version", kCheckpointVersion},
                   {"world_size", group_.world_size}, {"numel", numel},
                   {"model", spec_json(spec)},        {"state", state_json(st)},
                   {"shards", shards}};
      meta["crc32c"] = hex8(json_crc(meta));
      fs::write_file_atomic(tmp + "/" + kCheckpointMetaFile,
                            meta.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
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
  std::int64_t chunk_bytes = 0;                // bytes per CRC; 0: no checksums (versions 1 and 2)
  std::vector<std::uint32_t> crcs[3];          // [chunks] per tensor
  std::int64_t bytes = 0;                      // of each tensor's data
};

// The chunk of each tensor a read last started or ended inside, verified, so
// reads in pieces smaller than a chunk read and check it once.
struct CheckpointReader::ChunkCache {
  std::mutex mu;
  struct Entry {
    std::size_t shard = 0;
    std::int64_t chunk = -1;  // -1: empty
    std::vector<char> bytes;
  } tensor[3];
};

namespace {

// Checks a shard's header checksum and reads its chunk CRCs (version 3).
void read_checksums(const SafetensorsReader& reader, const std::string& file, std::int64_t count,
                    std::int64_t& chunk_bytes, std::vector<std::uint32_t> (&crcs)[3]) {
  const auto& md = reader.metadata();
  const auto value = [&](const std::string& key) -> const std::string& {
    const auto it = md.find(key);
    if (it == md.end()) throw corrupt("'" + file + "' lacks the metadata entry '" + key + "'");
    return it->second;
  };
  const auto recorded = parse_hex8(value(kHeaderCrcKey));
  const std::uint32_t actual = header_crc(reader.tensors(), md);
  if (!recorded || *recorded != actual)
    throw corrupt("the header of '" + file + "' does not match its checksum (CRC32C " + hex8(actual) +
                  ", recorded " + quoted(value(kHeaderCrcKey), 16) + ")");
  const std::string& chunk = value(kChunkBytesKey);
  chunk_bytes = chunk.size() <= 12 && !chunk.empty() && std::all_of(chunk.begin(), chunk.end(), ::isdigit)
                    ? std::stoll(chunk)
                    : 0;
  if (chunk_bytes <= 0 || chunk_bytes % 4 != 0)
    throw corrupt("'" + file + "' has " + kChunkBytesKey + " " + quoted(chunk) + ", not a positive multiple of 4");
  for (int t = 0; t < 3; ++t) {
    const std::int64_t chunks = chunk_count(count * 4, chunk_bytes);
    auto list = parse_crc_list(value(crc_key(t)), chunks);
    if (!list)
      throw corrupt("'" + file + "' tensor '" + kTensorNames[t] + "': " + crc_key(t) + " is not " +
                    std::to_string(chunks) + " CRC32C values");
    crcs[t] = std::move(*list);
  }
}

// Throws when `count` floats of tensor t at shard element `first` hold a
// NaN or an Inf (or, for exp_avg_sq, a negative value).
void check_finite(const float* v, std::int64_t count, int t, const std::string& file, std::int64_t first) {
  for (std::int64_t i = 0; i < count; ++i)
    if (!std::isfinite(v[i]) || (t == 2 && v[i] < 0))
      throw corrupt("'" + file + "' tensor '" + kTensorNames[t] + "' holds " +
                        (std::isnan(v[i]) ? std::string("NaN") : std::isinf(v[i]) ? "Inf" : std::to_string(v[i])) +
                        " at element " + std::to_string(first + i) +
                        (t == 2 ? " (a squared-gradient average must be finite and not negative)" : ""),
                    "a training state must be finite: resume from an earlier global_step<N> (write its name into "
                    "checkpoints/latest) or restore the file");
}

Error chunk_mismatch(const std::string& file, int t, std::int64_t chunk, std::int64_t chunk_bytes, std::int64_t bytes,
                     std::uint32_t actual, std::uint32_t recorded) {
  return corrupt("'" + file + "' tensor '" + kTensorNames[t] + "' does not match its checksum in chunk " +
                 std::to_string(chunk) + " (bytes [" + std::to_string(chunk * chunk_bytes) + ", " +
                 std::to_string(std::min(bytes, (chunk + 1) * chunk_bytes)) + ") of its data): CRC32C " +
                 hex8(actual) + ", recorded " + hex8(recorded));
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& dir) : cache_(std::make_unique<ChunkCache>()) {
  info_.path = dir;
  const std::string meta_file = dir + "/" + kCheckpointMetaFile;
  if (fs::exists(meta_file)) {
    // ---- versions 2 and 3: checkpoint.json and one shard file per rank
    try {
      const std::string text = fs::read_file(meta_file);
      if (text.find('\0') != std::string::npos) throw corrupt("'" + meta_file + "' holds a NUL byte");
      const json meta = json::parse(text);
      if (!meta.is_object()) throw corrupt("'" + meta_file + "' is not a JSON object");
      // Checked before anything in it is believed; a version 2 file has none.
      if (meta.contains("crc32c")) {
        const auto recorded = meta.at("crc32c").is_string() ? parse_hex8(meta.at("crc32c").get<std::string>())
                                                             : std::nullopt;
        const std::uint32_t actual = json_crc(meta);
        if (!recorded || *recorded != actual)
          throw corrupt("'" + meta_file + "' does not match its checksum (CRC32C " + hex8(actual) + ", recorded " +
                        quoted(canonical(meta.at("crc32c")), 16) + ")");
      }
      if (meta.value("format", "") != kCheckpointFormat)
        throw UsageError("'" + meta_file + "' has format " + quoted(canonical(meta.value("format", json("")))) +
                         ", expected '" + kCheckpointFormat + "'");
      info_.version = meta.at("version").get<int>();
      if (info_.version != 2 && info_.version != kCheckpointVersion)
        throw UsageError("'" + meta_file + "' is checkpoint version " + std::to_string(info_.version) +
                             ", this build reads versions 1 to " + std::to_string(kCheckpointVersion),
                         "use the zinf version that wrote it to export the weights");
      if (info_.version >= 3 && !meta.contains("crc32c"))
        throw corrupt("'" + meta_file + "' lacks its checksum (crc32c), which version " +
                      std::to_string(info_.version) + " records");
      info_.world_size = meta.at("world_size").get<int>();
      info_.numel = meta.at("numel").get<std::int64_t>();
      info_.spec = spec_from(meta.at("model"));
      info_.state = state_from(meta.at("state"));
    } catch (const nlohmann::json::exception& e) {
      throw corrupt("'" + meta_file + "' is unreadable: " + quoted(e.what(), 200));
    } catch (const std::invalid_argument& e) {
      throw corrupt("'" + meta_file + "' is unreadable: " + e.what());
    }
    if (info_.world_size < 1 || info_.numel != info_.spec.parameter_count())
      throw corrupt("'" + meta_file + "' says " + std::to_string(info_.world_size) + " ranks and " +
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
        if (info_.version >= 3) {
          for (const char* name : kTensorNames) shard->reader->entry(name);  // present, before the checksum names them
          read_checksums(*shard->reader, shard->file, (shard->reader->entry(kTensorNames[0]).end -
                                                       shard->reader->entry(kTensorNames[0]).begin) / 4,
                         shard->chunk_bytes, shard->crcs);
        }
        if (get("format") != kShardFormat || get("version") != std::to_string(info_.version) ||
            get("rank") != std::to_string(r) || get("world_size") != std::to_string(info_.world_size) ||
            get("step") != std::to_string(info_.state.step))
          throw UsageError("'" + shard->file + "' is the version " + quoted(get("version"), 8) + " shard of rank " +
                           get("rank") + " of " + get("world_size") + " at step " + get("step") + " (format '" +
                           get("format") + "'), but " + meta_file + " expects version " +
                           std::to_string(info_.version) + ", rank " + std::to_string(r) + " of " +
                           std::to_string(info_.world_size) + " at step " + std::to_string(info_.state.step));
        try {
          for (const auto& pair : json::parse(get("ranges")))
            ranges.push_back({pair.at(0).get<std::int64_t>(), pair.at(1).get<std::int64_t>()});
        } catch (const nlohmann::json::exception& e) {
          throw UsageError("'" + shard->file + "' has unreadable ranges: " + quoted(e.what(), 200));
        }
        const std::int64_t count = total_count(ranges);
        for (const char* name : kTensorNames) {
          const auto& e = shard->reader->entry(name);
          if (e.dtype != "F32" || e.end - e.begin != count * 4)
            throw UsageError("'" + shard->file + "' tensor '" + name + "' is " + std::to_string(e.end - e.begin) +
                             " bytes of " + e.dtype + ", its ranges need " + std::to_string(count * 4) +
                             " bytes of F32");
        }
        shard->bytes = count * 4;
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
    try {
      shard->reader = std::make_unique<SafetensorsReader>(file);
    } catch (const Error& e) {
      throw corrupt(e.what(), e.hint());
    }
    const auto& meta = shard->reader->metadata();
    auto get = [&](const std::string& key) -> std::string {
      auto it = meta.find(key);
      if (it == meta.end())
        throw UsageError("'" + file + "' lacks the metadata entry '" + key + "'",
                         "this safetensors file was not written by zinf train");
      return it->second;
    };
    if (get("format") != kCheckpointFormat)
      throw UsageError("'" + file + "' has format " + quoted(get("format")) + ", expected '" + kCheckpointFormat + "'");
    if (get("version") != "1")
      throw UsageError("'" + file + "' is checkpoint version " + quoted(get("version"), 8) +
                           ", this build reads versions 1 to " + std::to_string(kCheckpointVersion),
                       "use the zinf version that wrote it to export the weights");
    info_.version = 1;
    try {
      info_.spec = spec_from(json::parse(get("model")));
      info_.state = state_from(json::parse(get("state")));
    } catch (const nlohmann::json::exception& e) {
      throw corrupt("'" + file + "' has unreadable metadata: " + quoted(e.what(), 200));
    } catch (const std::invalid_argument& e) {
      throw corrupt("'" + file + "' has unreadable metadata: " + e.what());
    }
    info_.numel = info_.spec.parameter_count();
    for (const char* name : kTensorNames) {
      const auto& e = shard->reader->entry(name);
      if (e.dtype != "F32" || e.end - e.begin != info_.numel * 4)
        throw corrupt("'" + file + "' tensor '" + name + "' is " + std::to_string(e.end - e.begin) + " bytes of " +
                      e.dtype + ", the model's " + std::to_string(info_.numel) + " parameters need " +
                      std::to_string(info_.numel * 4) + " bytes of F32");
    }
    shard->bytes = info_.numel * 4;
    pieces_.push_back({{0, info_.numel}, 0, 0});
    shards_.push_back(std::move(shard));
  }
  if (info_.version < 3)
    log::warn_once("train.checkpoint.no_checksums", "checkpoint " + dir + " is format version " +
                                                        std::to_string(info_.version) +
                                                        ": no checksums recorded, its data is read unverified");
  // The shards must tile the flat vector: every element exactly once.
  std::sort(pieces_.begin(), pieces_.end(), [](const Piece& a, const Piece& b) { return a.range.begin < b.range.begin; });
  std::int64_t cursor = 0;
  for (const Piece& p : pieces_) {
    if (p.range.count == 0) continue;
    if (p.range.begin != cursor)
      throw corrupt("checkpoint " + dir + "'s shards " +
                    (p.range.begin > cursor ? "leave elements [" + std::to_string(cursor) + ", " +
                                                  std::to_string(p.range.begin) + ") unowned"
                                            : "both hold element " + std::to_string(p.range.begin)) +
                    " (" + shards_[p.shard]->file + ")");
    cursor = p.range.end();
  }
  if (cursor != info_.numel)
    throw corrupt("checkpoint " + dir + "'s shards hold elements [0, " + std::to_string(cursor) + ") of " +
                  std::to_string(info_.numel));
  pieces_.erase(std::remove_if(pieces_.begin(), pieces_.end(), [](const Piece& p) { return p.range.count == 0; }),
                pieces_.end());
}

CheckpointReader::~CheckpointReader() = default;

void CheckpointReader::read_tensor(std::size_t s, int t, std::int64_t first, std::int64_t count, float* dst) const {
  const Shard& shard = *shards_[s];
  const char* name = kTensorNames[t];
  if (shard.chunk_bytes == 0) {
    shard.reader->read_range(name, first, count, dst);
  } else {
    // Whole chunks are read in place and checked there; a chunk the range
    // starts or ends inside is read whole into the cache, checked, copied from.
    const std::int64_t chunk = shard.chunk_bytes, end = (first + count) * 4;
    char* out = reinterpret_cast<char*>(dst);
    for (std::int64_t b = first * 4; b < end;) {
      const std::int64_t k = b / chunk, cb = k * chunk, ce = std::min(shard.bytes, cb + chunk);
      const std::int64_t n = std::min(end, ce) - b;
      const std::uint32_t recorded = shard.crcs[t][std::size_t(k)];
      if (b == cb && n == ce - cb) {
        shard.reader->read_range(name, cb / 4, n / 4, out);
        const std::uint32_t actual = io::crc32c(out, std::size_t(n));
        if (actual != recorded) throw chunk_mismatch(shard.file, t, k, chunk, shard.bytes, actual, recorded);
      } else {
        std::lock_guard<std::mutex> lock(cache_->mu);
        ChunkCache::Entry& c = cache_->tensor[t];
        if (c.shard != s || c.chunk != k) {
          c.chunk = -1;
          c.bytes.resize(std::size_t(ce - cb));
          shard.reader->read_range(name, cb / 4, (ce - cb) / 4, c.bytes.data());
          const std::uint32_t actual = io::crc32c(c.bytes.data(), c.bytes.size());
          if (actual != recorded) throw chunk_mismatch(shard.file, t, k, chunk, shard.bytes, actual, recorded);
          c.shard = s;
          c.chunk = k;
        }
        std::memcpy(out, c.bytes.data() + (b - cb), std::size_t(n));
      }
      out += n;
      b += n;
    }
  }
  check_finite(dst, count, t, shard.file, first);
}

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
    for (int t = 0; t < 3; ++t)
      if (dst[t]) read_tensor(it->shard, t, it->local + (b - it->range.begin), n, dst[t] + (b - range.begin));
    b += n;
  }
}

StateSource CheckpointReader::source() const {
  return [this](const FlatRange& range, float* master, float* m, float* v) { read(range, master, m, v); };
}

std::vector<std::string> CheckpointReader::files() const {
  std::vector<std::string> out;
  if (info_.version >= 2) out.push_back(info_.path + "/" + kCheckpointMetaFile);
  for (const auto& shard : shards_) out.push_back(shard->file);
  return out;
}

CheckpointInfo read_checkpoint_info(const std::string& dir) { return CheckpointReader(dir).info(); }

// ------------------------------------------------------------ export

hf::Dtype export_dtype(const std::string& name) {
  if (name == "bf16") return hf::Dtype::kBF16;
  if (name == "fp16") return hf::Dtype::kF16;
  if (name == "fp32") return hf::Dtype::kF32;
  throw UsageError("dtype '" + name + "' is not supported for an exported model", "use one of: bf16, fp16, fp32");
}

hf::ShardPlan write_hf_model(const std::string& out_dir, const ModelSpec& spec, hf::Dtype dtype,
                             const ExportOptions& options,
                             const std::function<void(const FlatRange&, float*)>& read_master, std::int64_t chunk) {
  const bool gpt2 = spec.architecture() == Architecture::kGpt2;
  std::vector<model::ParamInfo> params;
  std::vector<char> transposed;  // [params] GPT-2 Conv1D weights, stored [in, out] by HF
  hf::ModelDir dir;
  std::int64_t widest = 1;       // elements of the longest row of any parameter
  for (const auto& block : model::model_layout(spec))
    for (const auto& p : block.params) {
      const bool t = gpt2 && hf::gpt2_is_conv1d_weight(p.name);
      if (t && p.shape.size() != 2) throw Error("GPT-2 Conv1D weight '" + p.name + "' is not a matrix");
      dir.tensors.push_back({p.name, hf::dtype_name(dtype), t ? std::vector<std::int64_t>{p.shape[1], p.shape[0]}
                                                               : p.shape});
      widest = std::max(widest, p.shape.empty() ? 1 : p.shape.back());
      params.push_back(p);
      transposed.push_back(t);
    }
  dir.files["config.json"] = hf::hf_config_json(spec, hf::dtype_name(dtype));
  if (spec.bos_token_id >= 0 || spec.eos_token_id >= 0)
    dir.files["generation_config.json"] = hf::generation_config_json(spec);
  dir.max_shard_bytes = options.max_shard_bytes;
  dir.replace = options.replace;
  chunk = std::max(chunk, widest);  // a tile holds at least one whole row
  std::vector<float> buf, column;
  dir.source = [&](std::size_t i, const hf::TensorSink& sink) {
    const model::ParamInfo& p = params[i];
    buf.resize(std::size_t(std::min(chunk, std::max<std::int64_t>(1, p.numel))));
    if (!transposed[i]) {
      for (std::int64_t b = 0; b < p.numel; b += chunk) {
        const std::int64_t n = std::min(chunk, p.numel - b);
        read_master({p.offset + b, n}, buf.data());
        sink(b, n, buf.data());
      }
      return;
    }
    // zinf [out, in] -> HF [in, out]: a tile of whole zinf rows [o0, o0 + k)
    // is contiguous in the flat vector; its column c is HF row c's elements
    // [o0, o0 + k).
    const std::int64_t rows = p.shape[0], cols = p.shape[1], k = std::max<std::int64_t>(1, chunk / cols);
    column.resize(std::size_t(std::min(k, rows)));
    for (std::int64_t o0 = 0; o0 < rows; o0 += k) {
      const std::int64_t n = std::min(k, rows - o0);
      read_master({p.offset + o0 * cols, n * cols}, buf.data());
      for (std::int64_t c = 0; c < cols; ++c) {
        for (std::int64_t r = 0; r < n; ++r) column[std::size_t(r)] = buf[std::size_t(r * cols + c)];
        sink(c * rows + o0, n, column.data());
      }
    }
  };
  return hf::write_model_dir(out_dir, dir);
}

std::string export_checkpoint(const std::string& path, const std::string& out_dir, const ExportOptions& options) {
  const std::string checkpoint = resolve_checkpoint(path);
  if (!options.replace) hf::check_model_dir_target(out_dir);  // before the checkpoint is opened
  if (!options.dtype.empty()) export_dtype(options.dtype);  // a bad --dtype before any reading
  const CheckpointReader reader(checkpoint);
  const std::string& recorded = reader.info().state.precision;
  const std::string name = !options.dtype.empty() ? options.dtype : recorded.empty() ? "fp32" : recorded;
  write_hf_model(out_dir, reader.info().spec, export_dtype(name), options,
                 [&](const FlatRange& r, float* dst) { reader.read(r, dst, nullptr, nullptr); });
  return reader.info().path;
}

}  // namespace zinf::train
