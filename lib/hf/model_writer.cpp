// zinf::hf — shard planning and the model directory writer.
#include "hf/model_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/fs.h"
#include "hf/dtype.h"

namespace zinf::hf {
namespace {

using nlohmann::json;
namespace stdfs = std::filesystem;

std::string shard_name(std::size_t k, std::size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, n);
  return buf;
}

std::int64_t elements(const TensorSpec& t) {
  std::int64_t n = 1;
  for (std::int64_t d : t.shape) n *= d;
  return n;
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// `path` without trailing slashes ("out/" -> "out"; "/" stays).
std::string trimmed(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Writes one shard: its tensors' data from `dir.source`, converted.
void write_shard(const std::string& path, const ModelDir& dir, const std::vector<std::size_t>& members,
                 std::vector<unsigned char>& buf) {
  std::vector<TensorSpec> specs;
  for (std::size_t i : members) specs.push_back(dir.tensors[i]);
  SafetensorsWriter writer(path, specs, {{"format", "pt"}});
  for (std::size_t local = 0; local < members.size(); ++local) {
    const TensorSpec& t = specs[local];
    const Dtype dtype = dtype_of(t.dtype, "tensor '" + t.name + "'");
    const std::int64_t esize = std::int64_t(element_bytes(dtype)), numel = elements(t);
    const std::int64_t base = writer.data_offset(local);
    const std::int64_t step = std::max<std::int64_t>(1, std::int64_t(buf.size()) / esize);
    std::int64_t received = 0;
    dir.source(members[local], [&](std::int64_t first, std::int64_t count, const float* src) {
      if (first < 0 || count < 0 || first + count > numel)
        throw Error("elements [" + std::to_string(first) + ", " + std::to_string(first + count) + ") of tensor '" +
                    t.name + "' are outside its " + std::to_string(numel));
      for (std::int64_t b = 0; b < count; b += step) {
        const std::int64_t n = std::min(step, count - b);
        if (dtype == Dtype::kF32) {
          writer.write(base + (first + b) * esize, src + b, std::size_t(n * esize));
        } else {
          from_float(dtype, src + b, buf.data(), std::size_t(n));
          writer.write(base + (first + b) * esize, buf.data(), std::size_t(n * esize));
        }
      }
      received += count;
    });
    if (received != numel)
      throw Error("tensor '" + t.name + "' received " + std::to_string(received) + " of its " +
                  std::to_string(numel) + " elements");
  }
  writer.commit();
}

}  // namespace

std::int64_t tensor_bytes(const TensorSpec& t) { return elements(t) * std::int64_t(dtype_size(t.dtype)); }

ShardPlan plan_shards(const std::vector<TensorSpec>& tensors, std::int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0)
    throw UsageError("a maximum shard size of " + std::to_string(max_shard_bytes) + " bytes", "a positive size");
  ShardPlan plan;
  std::set<std::string> seen;
  std::vector<std::size_t> current;
  std::int64_t current_bytes = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!seen.insert(tensors[i].name).second) throw Error("tensor '" + tensors[i].name + "' appears twice");
    const std::int64_t bytes = tensor_bytes(tensors[i]);
    plan.total_bytes += bytes;
    plan.total_parameters += elements(tensors[i]);
    if (bytes > max_shard_bytes) {  // alone, before the shard being filled (as huggingface_hub does)
      plan.tensors.push_back({i});
      continue;
    }
    if (current_bytes + bytes > max_shard_bytes) {
      plan.tensors.push_back(std::move(current));
      current = {};
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += bytes;
  }
  if (!current.empty() || plan.tensors.empty()) plan.tensors.push_back(std::move(current));
  const std::size_t n = plan.tensors.size();
  for (std::size_t k = 0; k < n; ++k) plan.files.push_back(n == 1 ? "model.safetensors" : shard_name(k + 1, n));
  return plan;
}

std::string shard_index_json(const std::vector<TensorSpec>& tensors, const ShardPlan& plan) {
  json map = json::object();
  for (std::size_t k = 0; k < plan.files.size(); ++k)
    for (std::size_t i : plan.tensors[k]) map[tensors[i].name] = plan.files[k];
  const json index = {{"metadata", {{"total_parameters", plan.total_parameters}, {"total_size", plan.total_bytes}}},
                      {"weight_map", map}};
  return index.dump(2) + "\n";
}

void check_model_dir_target(const std::string& out_dir) {
  const std::string out = trimmed(out_dir);
  struct stat st {};
  if (::stat(out.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode))
    throw UsageError("'" + out + "' exists and is not a directory: a Hugging Face model is a directory",
                     "name a new directory (or remove the file)");
  std::error_code ec;
  if (stdfs::directory_iterator(out, ec) != stdfs::directory_iterator() || ec)
    throw UsageError("'" + out + "' already exists and is not empty; zinf does not write a model over it",
                     "name a new directory, or remove this one first");
}

ShardPlan write_model_dir(const std::string& out_dir, const ModelDir& dir) {
  const std::string out = trimmed(out_dir);
  if (!dir.replace) check_model_dir_target(out);
  const ShardPlan plan = plan_shards(dir.tensors, dir.max_shard_bytes);
  for (const auto& [name, text] : dir.files)
    if (name == kIndexFile || std::find(plan.files.begin(), plan.files.end(), name) != plan.files.end())
      throw Error("extra file '" + name + "' would replace one of the model's own files");
  const std::string parent = stdfs::path(out).parent_path().string();
  if (!parent.empty()) fs::make_dirs(parent);
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::make_dirs(tmp);
  try {
    std::vector<unsigned char> buf(std::size_t(std::max<std::int64_t>(16, dir.buffer_bytes)));
    for (std::size_t k = 0; k < plan.files.size(); ++k) write_shard(tmp + "/" + plan.files[k], dir, plan.tensors[k], buf);
    if (plan.sharded()) fs::write_file_atomic(tmp + "/" + kIndexFile, shard_index_json(dir.tensors, plan));
    for (const auto& [name, text] : dir.files) fs::write_file_atomic(tmp + "/" + name, text);
    fsync_path(tmp);
    const std::string old = out + ".old." + std::to_string(::getpid());
    if (dir.replace && fs::exists(out)) {
      fs::remove_all(old);
      if (::rename(out.c_str(), old.c_str()) != 0)
        throw Error("cannot move the previous '" + out + "' aside: " + std::strerror(errno),
                    "check that its directory is writable");
    } else {
      check_model_dir_target(out);  // nothing appeared there meanwhile
    }
    if (::rename(tmp.c_str(), out.c_str()) != 0) {
      const int err = errno;
      if (dir.replace && fs::exists(old)) ::rename(old.c_str(), out.c_str());  // the previous model back
      throw Error("cannot rename '" + tmp + "' to '" + out + "': " + std::strerror(err),
                  err == ENOTEMPTY || err == EEXIST ? "another process wrote into it meanwhile; name a new directory"
                                                    : "check that the directory is writable");
    }
    fsync_path(parent.empty() ? "." : parent);
    fs::remove_all(old);
  } catch (...) {
    try {
      fs::remove_all(tmp);
    } catch (...) {  // the original error is the one to report
    }
    throw;
  }
  return plan;
}

}  // namespace zinf::hf
