// zinf::hf — safetensors writer and reader.
#include "hf/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace zinf::hf {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit

void write_all(int fd, const void* data, std::size_t n, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<std::size_t>(n, std::size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write '" + path + "': " + errno_text(errno),
                  errno == ENOSPC ? "free some space or choose another output directory" : "");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

Error bad_file(const std::string& path, const std::string& what) {
  return UsageError("'" + path + "' is not a valid safetensors file: " + what,
                    "the file is truncated or was not written by a safetensors writer; use another copy");
}

// The header text for `tensors` laid out back to back (data offsets into
// `begin`, [tensors + 1] bytes), padded with spaces to a multiple of 8.
std::string header_text(const std::string& path, const std::vector<TensorSpec>& tensors,
                        const std::map<std::string, std::string>& metadata, std::vector<std::int64_t>& begin) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::int64_t offset = 0;
  begin.assign(1, 0);
  for (const auto& t : tensors) {
    std::int64_t elems = 1;
    for (auto d : t.shape) {
      if (d < 0) throw Error("tensor '" + t.name + "' of '" + path + "' has a negative dimension");
      elems *= d;
    }
    const std::int64_t bytes = elems * std::int64_t(dtype_size(t.dtype));
    if (header.contains(t.name)) throw Error("tensor '" + t.name + "' appears twice in '" + path + "'");
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    begin.push_back(offset);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned, as the reference writer does
  return text;
}

}  // namespace

std::size_t dtype_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL") return 1;
  throw UsageError("unknown safetensors dtype '" + d + "'", "allowed: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL");
}

SafetensorsWriter::SafetensorsWriter(std::string path, const std::vector<TensorSpec>& tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp." + std::to_string(::getpid())), tensors_(tensors) {
  const std::string text = header_text(path_, tensors_, metadata, begin_);
  const std::uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  data_start_ = 8 + std::int64_t(n);

  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error("cannot write '" + path_ + "': " + errno_text(errno), "check that the directory exists and is writable");
  try {
    write_all(fd_, len, 8, path_);
    write_all(fd_, text.data(), text.size(), path_);
  } catch (...) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
}

void SafetensorsWriter::write(std::int64_t offset, const void* data, std::size_t nbytes) {
  if (fd_ < 0) throw Error("'" + path_ + "' was already committed");
  if (offset < 0 || offset + std::int64_t(nbytes) > data_bytes())
    throw Error("bytes [" + std::to_string(offset) + ", " + std::to_string(offset + std::int64_t(nbytes)) +
                ") are outside the " + std::to_string(data_bytes()) + "-byte data section of '" + path_ + "'");
  const char* p = static_cast<const char*>(data);
  std::int64_t at = data_start_ + offset;
  std::size_t left = nbytes;
  while (left > 0) {
    const ssize_t w = ::pwrite(fd_, p, std::min<std::size_t>(left, std::size_t(1) << 30), at);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write '" + path_ + "': " + errno_text(errno),
                  errno == ENOSPC ? "free some space or choose another output directory" : "");
    }
    p += w;
    at += w;
    left -= static_cast<std::size_t>(w);
  }
  written_ += std::int64_t(nbytes);
}

void SafetensorsWriter::set_metadata(const std::map<std::string, std::string>& metadata) {
  if (fd_ < 0) throw Error("'" + path_ + "' was already committed");
  std::vector<std::int64_t> begin;
  std::string text = header_text(path_, tensors_, metadata, begin);
  const std::size_t n = std::size_t(data_start_ - 8);
  if (text.size() > n)
    throw Error("the new header of '" + path_ + "' is " + std::to_string(text.size()) + " bytes, longer than the " +
                std::to_string(n) + " bytes written first");
  text.append(n - text.size(), ' ');
  std::size_t done = 0;
  while (done < n) {
    const ssize_t w = ::pwrite(fd_, text.data() + done, n - done, off_t(8 + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw Error("cannot write '" + path_ + "': " + errno_text(errno));
    done += std::size_t(w);
  }
}

void SafetensorsWriter::commit() {
  if (fd_ < 0) throw Error("'" + path_ + "' was already committed");
  if (written_ != data_bytes())
    throw Error("'" + path_ + "' got " + std::to_string(written_) + " of its " + std::to_string(data_bytes()) +
                " data bytes");
  if (::fsync(fd_) != 0) throw Error("cannot flush '" + path_ + "': " + errno_text(errno));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error("cannot close '" + path_ + "': " + errno_text(err));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw Error("cannot rename '" + tmp_ + "' to '" + path_ + "': " + errno_text(err));
  }
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) {
    std::int64_t elems = 1;
    for (auto d : t.shape) elems *= d;
    if (std::size_t(elems) * dtype_size(t.dtype) != t.nbytes)
      throw Error("tensor '" + t.name + "' has " + std::to_string(t.nbytes) + " bytes but shape and dtype " + t.dtype +
                  " need " + std::to_string(std::size_t(elems) * dtype_size(t.dtype)));
    specs.push_back({t.name, t.dtype, t.shape});
  }
  SafetensorsWriter w(path, specs, metadata);
  for (std::size_t i = 0; i < tensors.size(); ++i) w.write(w.data_offset(i), tensors[i].data, tensors[i].nbytes);
  w.commit();
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    throw Error("cannot open '" + path + "': " + errno_text(errno), errno == ENOENT ? "check the path" : "");
  struct stat st {};
  ::fstat(fd_, &st);
  const std::int64_t size = st.st_size;
  try {
    unsigned char len[8];
    if (size < 8 || ::pread(fd_, len, 8, 0) != 8)
      throw bad_file(path, "it is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
    std::uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= std::uint64_t(len[i]) << (8 * i);
    if (n > std::uint64_t(kMaxHeaderBytes) || std::int64_t(n) > size - 8)
      throw bad_file(path, "header length " + std::to_string(n) + " does not fit the file size " + std::to_string(size));
    std::string text(n, '\0');
    if (::pread(fd_, text.data(), n, 8) != ssize_t(n)) throw bad_file(path, "cannot read the header");
    data_start_ = 8 + std::int64_t(n);
    // JSON text never holds a NUL byte, and the parser would take one for the end.
    if (const auto nul = text.find('\0'); nul != std::string::npos)
      throw bad_file(path, "its header holds a NUL byte at offset " + std::to_string(8 + nul));
    json header;
    try {
      header = json::parse(text);
    } catch (const json::parse_error& e) {  // its text may quote a long stretch of whatever the header holds
      throw bad_file(path, "header is not JSON (syntax error at byte " + std::to_string(8 + e.byte - 1) + ")");
    } catch (const json::exception&) {
      throw bad_file(path, "header is not JSON (a number out of range)");
    }
    if (!header.is_object()) throw bad_file(path, "header is not a JSON object");
    const std::int64_t data_size = size - data_start_;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it->is_object()) throw bad_file(path, "__metadata__ is not a JSON object");
        for (auto m = it->begin(); m != it->end(); ++m)
          if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
        continue;
      }
      Entry e;
      try {
        e.dtype = it->at("dtype").get<std::string>();
        e.shape = it->at("shape").get<std::vector<std::int64_t>>();
        e.begin = it->at("data_offsets").at(0).get<std::int64_t>();
        e.end = it->at("data_offsets").at(1).get<std::int64_t>();
      } catch (const std::exception&) {
        throw bad_file(path, "entry '" + it.key() + "' lacks dtype, shape or data_offsets");
      }
      std::int64_t elems = 1;
      for (auto d : e.shape) {  // -1: negative, or more elements than the file has bytes
        if (d < 0 || (d > 0 && elems > size / d)) {
          elems = -1;
          break;
        }
        elems *= d;
      }
      std::int64_t es = 0;
      try {
        es = std::int64_t(dtype_size(e.dtype));
      } catch (const Error& bad) {
        throw bad_file(path, "tensor '" + it.key() + "': " + bad.what());
      }
      if (elems < 0 || e.begin < 0 || e.end < e.begin || e.end > data_size || e.end - e.begin != elems * es)
        throw bad_file(path, "tensor '" + it.key() + "' spans bytes [" + std::to_string(e.begin) + ", " +
                                 std::to_string(e.end) + ") of a " + std::to_string(data_size) +
                                 "-byte data section, for " + std::to_string(elems) + " x " + e.dtype);
      tensors_[it.key()] = e;
    }
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

SafetensorsReader::~SafetensorsReader() {
  if (fd_ >= 0) ::close(fd_);
}

const SafetensorsReader::Entry& SafetensorsReader::entry(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw UsageError("'" + path_ + "' has no tensor named '" + name + "'");
  return it->second;
}

void SafetensorsReader::read(const std::string& name, void* dst, std::size_t nbytes) const {
  const Entry& e = entry(name);
  if (std::int64_t(nbytes) != e.end - e.begin)
    throw Error("tensor '" + name + "' in '" + path_ + "' is " + std::to_string(e.end - e.begin) + " bytes, expected " +
                    std::to_string(nbytes),
                "the file was written for a different model size");
  read_range(name, 0, std::int64_t(nbytes / dtype_size(e.dtype)), dst);
}

void SafetensorsReader::read_range(const std::string& name, std::int64_t first, std::int64_t count, void* dst) const {
  const Entry& e = entry(name);
  const auto es = std::int64_t(dtype_size(e.dtype));
  if (first < 0 || count < 0 || e.begin + (first + count) * es > e.end)
    throw Error("elements [" + std::to_string(first) + ", " + std::to_string(first + count) + ") are outside tensor '" +
                name + "' in '" + path_ + "'");
  char* p = static_cast<char*>(dst);
  std::int64_t off = data_start_ + e.begin + first * es, left = count * es;
  while (left > 0) {
    const ssize_t r = ::pread(fd_, p, std::size_t(std::min<std::int64_t>(left, std::int64_t(1) << 30)), off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw Error("cannot read tensor '" + name + "' from '" + path_ + "': " + (r < 0 ? errno_text(errno) : "unexpected end of file"));
    p += r;
    off += r;
    left -= r;
  }
}

}  // namespace zinf::hf
