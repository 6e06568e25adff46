// zinf::train — the safetensors file format, by hand.
// Implements: write_safetensors() and SafetensorsReader for Hugging Face's
// format: an 8-byte little-endian header length, a JSON header mapping each
// tensor name to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" map of strings), then the raw little-endian data. Files are
// written to a temporary name, fsynced and renamed. The reader checks the
// header length, every offset and the total against the file size before
// trusting them, and reads tensors one at a time (pread), so multi-GB files
// never sit in memory twice. No LibTorch here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace zinf::train {

struct TensorView {
  std::string name;
  std::string dtype;                // "F32", "BF16", "F16", "I64", ...
  std::vector<std::int64_t> shape;
  const void* data = nullptr;       // [nbytes] little-endian
  std::size_t nbytes = 0;
};

// Bytes per element of a safetensors dtype; throws for unknown names.
std::size_t dtype_size(const std::string& dtype);

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

class SafetensorsReader {
 public:
  struct Entry {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::int64_t begin = 0, end = 0;  // bytes, relative to the data section
  };

  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::map<std::string, Entry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const Entry& entry(const std::string& name) const;  // throws naming the file and the tensor
  // Reads tensor `name` into dst ([nbytes] bytes, must equal the tensor's size).
  void read(const std::string& name, void* dst, std::size_t nbytes) const;
  // Reads elements [first, first + count) of a 1-D or any tensor (flat order).
  void read_range(const std::string& name, std::int64_t first, std::int64_t count, void* dst) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::int64_t data_start_ = 0;  // bytes, 8 + header length
  std::map<std::string, Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace zinf::train
