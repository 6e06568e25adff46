// zinf::io — SwapFile (reserved, bounds-checked, checksummed) and SwapDir (per run and rank).
#include "io/swap_file.h"

#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "io/aligned_buffer.h"
#include "io/checksum.h"
#include "log/log.h"

namespace zinf::io {

// ---------------------------------------------------------------- SwapFile
SwapFile::SwapFile(UringEngine& engine, std::string path, std::int64_t bytes, SwapFileOptions options)
    : engine_(engine), bytes_(bytes), options_(options) {
  if (bytes <= 0)
    throw Error("swap file '" + path + "' of " + std::to_string(bytes) + " bytes requested",
                "size swap files from the tensors they hold (a positive byte count)");
  file_ = File::open(path, OpenMode::kCreate, options.direct);
  try {
    if (options.reserve) {
      file_.reserve(round_up(bytes, kDirectAlignment));
    } else if (::ftruncate(file_.fd(), round_up(bytes, kDirectAlignment)) != 0) {
      const int err = errno;
      throw Error("cannot size swap file '" + path + "': " + errno_text(err), io_error_hint(err));
    }
  } catch (const Error&) {
    file_.close();
    ::unlink(path.c_str());  // no empty file left behind by a failed reservation
    throw;
  }
  if (options.checksums) {
    // Reserved and never written reads back as zeros: every page starts known.
    static const std::uint32_t zero_page = crc32c_zeros(kCrcPageBytes);
    page_crc_.assign(static_cast<std::size_t>(round_up(bytes, kDirectAlignment) / kDirectAlignment), zero_page);
  }
}

Request SwapFile::request(Op op, std::int64_t offset, void* data, std::int64_t bytes) {
  const char* what = op == Op::kRead ? "read" : "write";
  if (bytes <= 0 || offset < 0 || offset > bytes_ - bytes) {
    throw Error(std::string(what) + " of " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                    " does not fit swap file '" + path() + "' of " + std::to_string(bytes_) + " bytes",
                "the buffer and the swap slot disagree on the size: a tensor must be read back into a buffer "
                "of the size it was written from, at the offset it was written to");
  }
  if (offset % kDirectAlignment != 0) {
    throw Error(std::string(what) + " at offset " + std::to_string(offset) + " of swap file '" + path() +
                    "' is not a multiple of 4096",
                "place tensors at offsets rounded up to 4096 bytes");
  }
  Request r{op, &file_, offset, data, bytes};
  if (!page_crc_.empty()) r.page_crc = page_crc_.data() + offset / kDirectAlignment;
  return r;
}

Ticket SwapFile::write(std::int64_t offset, const void* src, std::int64_t bytes) {
  return engine_.submit(request(Op::kWrite, offset, const_cast<void*>(src), bytes));
}

Ticket SwapFile::read(std::int64_t offset, void* dst, std::int64_t bytes) {
  return engine_.submit(request(Op::kRead, offset, dst, bytes));
}

void SwapFile::write_now(std::int64_t offset, const void* src, std::int64_t bytes) {
  engine_.wait(write(offset, src, bytes));
}

void SwapFile::read_now(std::int64_t offset, void* dst, std::int64_t bytes) {
  engine_.wait(read(offset, dst, bytes));
}

std::int64_t swap_checksum_host_bytes(std::int64_t swap_bytes) {
  if (swap_bytes <= 0) return 0;
  return round_up(swap_bytes, kDirectAlignment) / kDirectAlignment * std::int64_t(sizeof(std::uint32_t));
}

// ---------------------------------------------------------------- SwapDir
SwapDir::SwapDir(const std::string& root, const std::string& run_id, int rank, bool keep) : keep_(keep) {
  if (run_id.empty() || run_id.find('/') != std::string::npos)
    throw UsageError("swap run id '" + run_id + "' is empty or contains '/'");
  if (rank < 0) throw UsageError("swap directory for negative rank " + std::to_string(rank));
  run_dir_ = root + "/zinf-" + run_id;
  path_ = run_dir_ + "/rank" + std::to_string(rank);
  if (fs::exists(path_)) {
    log::warn("removing leftover swap directory '" + path_ + "' from an earlier run with the same id");
    fs::remove_all(path_);
  }
  fs::make_dirs(path_);
}

SwapDir::~SwapDir() {
  if (keep_) {
    log::info("keeping swap files in '" + path_ + "'");
    return;
  }
  fs::remove_all(path_);
  std::error_code ec;
  std::filesystem::remove(run_dir_, ec);  // only succeeds once every rank has cleaned up
}

std::string SwapDir::file_path(const std::string& name) const {
  const bool ok = !name.empty() && name != "." && name != ".." &&
                  name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                      std::string::npos;
  if (!ok)
    throw Error("swap file name '" + name + "' is not allowed",
                "use letters, digits, '.', '_' and '-' (what the file holds, e.g. optimizer.group003)");
  return path_ + "/" + name + ".swp";
}

std::unique_ptr<SwapFile> SwapDir::create(UringEngine& engine, const std::string& name, std::int64_t bytes,
                                          SwapFileOptions options) const {
  return std::make_unique<SwapFile>(engine, file_path(name), bytes, options);
}

std::string default_run_id() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  return std::string(stamp) + "-" + std::to_string(::getpid());
}

}  // namespace zinf::io
