// zinf::offload — flat buffers at their home tier.
#include "offload/flat_store.h"

#include <cstring>

#include "core/error.h"

namespace zinf::offload {

namespace {
std::int64_t round_up(std::int64_t v, std::int64_t a) { return (v + a - 1) / a * a; }
}  // namespace

FlatStore::FlatStore(std::string name, Tier tier, const std::vector<std::int64_t>& segment_bytes,
                     const NvmeBackend& backend, bool pin)
    : name_(std::move(name)), tier_(tier), bytes_(segment_bytes), backend_(backend) {
  if (tier == Tier::kDevice)
    throw Error("flat store '" + name_ + "' cannot live on the device tier", "the engine keeps device buffers itself");
  const std::int64_t align = tier == Tier::kNvme ? io::kDirectAlignment : 64;
  std::int64_t cursor = 0;
  for (std::int64_t b : bytes_) {
    if (b < 0) throw Error("flat store '" + name_ + "': negative segment size " + std::to_string(b));
    offset_.push_back(cursor);
    cursor = round_up(cursor + b, align);
  }
  const std::int64_t total = std::max<std::int64_t>(cursor, align);
  if (tier == Tier::kCpu) {
    host_ = io::AlignedBuffer(total, io::kDirectAlignment, pin);
  } else {
    if (!backend.engine || !backend.dir)
      throw Error("flat store '" + name_ + "' is on NVMe but has no swap directory", "this is a bug in the caller");
    file_ = backend.dir->create(*backend.engine, name_, total, backend.file_options);
  }
}

std::int64_t FlatStore::total_bytes() const {
  std::int64_t t = 0;
  for (std::int64_t b : bytes_) t += b;
  return t;
}

std::int64_t FlatStore::resident_host_bytes() const { return tier_ == Tier::kCpu ? host_.size() : 0; }

std::byte* FlatStore::host(std::size_t seg) const {
  if (tier_ != Tier::kCpu) throw Error("flat store '" + name_ + "' lives on NVMe; read it into a buffer first");
  return host_.bytes() + offset_.at(seg);
}

io::Ticket FlatStore::read(std::size_t seg, void* buf) { return read(seg, 0, bytes_.at(seg), buf); }
io::Ticket FlatStore::write(std::size_t seg, const void* buf) { return write(seg, 0, bytes_.at(seg), buf); }

void FlatStore::check_piece(const char* what, std::size_t seg, std::int64_t offset, std::int64_t bytes) const {
  const std::int64_t n = bytes_.at(seg);
  const bool aligned = tier_ == Tier::kCpu ||
                       (offset % io::kDirectAlignment == 0 && (offset + bytes == n || bytes % io::kDirectAlignment == 0));
  if (offset < 0 || bytes < 0 || offset + bytes > n || !aligned)
    throw Error(std::string(what) + " of bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                    ") of segment " + std::to_string(seg) + " of '" + name_ + "' (" + std::to_string(n) +
                    " bytes) is out of range or not 4096-aligned",
                "this is a bug in the caller: pieces of NVMe segments start and end on 4096-byte boundaries");
}

io::Ticket FlatStore::read(std::size_t seg, std::int64_t offset, std::int64_t bytes, void* buf) {
  check_piece("read", seg, offset, bytes);
  if (bytes == 0) return 0;
  if (tier_ == Tier::kCpu) {
    if (buf != host(seg) + offset) std::memcpy(buf, host(seg) + offset, static_cast<std::size_t>(bytes));
    return 0;
  }
  nvme_read_ += bytes;
  return file_->read(offset_[seg] + offset, buf, bytes);
}

io::Ticket FlatStore::write(std::size_t seg, std::int64_t offset, std::int64_t bytes, const void* buf) {
  check_piece("write", seg, offset, bytes);
  if (bytes == 0) return 0;
  if (tier_ == Tier::kCpu) {
    if (buf != host(seg) + offset) std::memcpy(host(seg) + offset, buf, static_cast<std::size_t>(bytes));
    return 0;
  }
  nvme_write_ += bytes;
  return file_->write(offset_[seg] + offset, buf, bytes);
}

std::int64_t FlatStore::reserved_bytes() const { return file_ ? round_up(file_->size(), io::kDirectAlignment) : 0; }

void FlatStore::wait(io::Ticket ticket) {
  if (ticket != 0) backend_.engine->wait(ticket);
}

std::string FlatStore::file_path() const { return file_ ? file_->path() : std::string(); }

}  // namespace zinf::offload
