// zinf::hf — the safetensors file format, by hand.
// Implements: SafetensorsWriter, write_safetensors() and SafetensorsReader for
// Hugging Face's format: an 8-byte little-endian header length, a JSON header
// mapping each tensor name to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" map of strings), then the raw little-endian data. The writer
// computes the header from the tensors' shapes up front, so data can arrive
// in pieces, in any order, at known offsets (pwrite): a 40 GB tensor streams
// through a small buffer and never sits in memory. Files are written to a
// temporary name, checked complete, fsynced and renamed; metadata known only
// once the data is written (checksums) replaces the header's before the
// commit, at the same length. The reader checks
// the header length, every offset and the total against the file size before
// trusting them, and reads any element range (pread). No LibTorch here.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace zinf::hf {

struct TensorView {
  std::string name;
  std::string dtype;                // "F32", "BF16", "F16", "I64", ...
  std::vector<std::int64_t> shape;
  const void* data = nullptr;       // [nbytes] little-endian
  std::size_t nbytes = 0;
};

// A tensor of a file being written: name, dtype and shape, no data yet.
struct TensorSpec {
  std::string name;
  std::string dtype;                // "F32", "BF16", ...
  std::vector<std::int64_t> shape;
};

// Bytes per element of a safetensors dtype; throws for unknown names.
std::size_t dtype_size(const std::string& dtype);

// Streams one safetensors file: the constructor lays the tensors out back to
// back in the given order, writes the header and opens `path`.tmp.<pid>;
// write() puts bytes at an offset of the data section (tensor i starts at
// data_offset(i)); commit() checks that as many bytes arrived as the data
// section holds, fsyncs and renames the file to `path`. set_metadata() before
// commit() rewrites the header with new metadata of no greater length (padded
// with spaces to the length written first), for values of a fixed width that
// are known only once the data is in, such as checksums. Destroyed without
// commit() (an exception on the way), the temporary file is removed and
// `path` is untouched.
class SafetensorsWriter {
 public:
  SafetensorsWriter(std::string path, const std::vector<TensorSpec>& tensors,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes `nbytes` from `data` at byte `offset` of the data section.
  void write(std::int64_t offset, const void* data, std::size_t nbytes);
  std::int64_t data_offset(std::size_t index) const { return begin_.at(index); }  // bytes
  std::int64_t data_bytes() const { return begin_.back(); }
  void set_metadata(const std::map<std::string, std::string>& metadata);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  std::vector<TensorSpec> tensors_;
  std::int64_t data_start_ = 0;          // bytes, 8 + header length
  std::vector<std::int64_t> begin_;      // [tensors + 1] data offsets, bytes
  std::int64_t written_ = 0;             // data bytes written so far
};

// Writes the whole file at once (SafetensorsWriter with one write per tensor).
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

}  // namespace zinf::hf
