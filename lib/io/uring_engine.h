// zinf::io — the asynchronous I/O engine.
// Implements: UringEngine, which moves flat byte ranges between host memory and
// files through io_uring. A request is cut into `block_size` pieces with up to
// `queue_depth` of them in flight across all requests; submit() returns at
// once and a background thread keeps the queue full, so callers overlap I/O
// with compute and wait (or poll) later. Any number of threads may submit and
// wait at the same time. Buffers of any alignment and size are accepted: the
// aligned part goes straight to the device, an unaligned head or an odd-sized
// tail goes through a small bounce block (files are padded to 4096 bytes).
// Optionally a request carries a CRC32C per 4096-byte page of the file: writes
// record them (computed by the worker while the device works), reads verify
// every page they touch in full, so no byte read back goes unchecked.
// Failures (EIO, ENOSPC, short reads, checksum mismatches) come back from
// wait()/poll() as zinf::Error naming the file, the offset and the sizes; a
// piece is retried at most 3 times on EAGAIN/EINTR and never otherwise.
// Counters say how many bytes moved and how long the device was busy. Where
// io_uring is unavailable (old kernel, container seccomp) the same pieces run
// as pread/pwrite on the worker thread, with one warning saying what it costs.
#pragma once

#include <cstdint>
#include <memory>

#include "io/file.h"

namespace zinf::io {

struct EngineOptions {
  std::int64_t block_size = 1 << 20;  // bytes per io_uring operation; positive multiple of 4096
  int queue_depth = 8;                // operations in flight, 1..1024
  bool single_submit = false;         // aio.single_submit: one io_uring_enter per operation instead of batches
};

enum class Op { kRead, kWrite };

struct Request {
  Op op = Op::kRead;
  const File* file = nullptr;  // must stay open until the request is waited for
  std::int64_t offset = 0;     // bytes into the file; multiple of 4096 on O_DIRECT files
  void* data = nullptr;        // host memory [bytes]; must stay valid until waited for
  std::int64_t bytes = 0;      // > 0
  // Optional CRC32C of each 4096-byte page the request touches, page i = file
  // bytes [offset + i*4096, offset + (i+1)*4096) as they are on disk (offset
  // must then be a multiple of 4096). A request ending inside a page writes
  // the rest of that page as zeros, so every page's content is known. Write:
  // page_crc[i] is recorded. Read: every page is verified in full (the part
  // past the request's end through the bounce block); a mismatch fails the
  // request naming the file and the page's offset.
  std::uint32_t* page_crc = nullptr;  // [ceil(bytes / 4096)]
};

using Ticket = std::uint64_t;

struct IoCounters {
  std::int64_t bytes_read = 0;     // payload bytes (padding excluded)
  std::int64_t bytes_written = 0;  // payload bytes
  std::int64_t requests = 0;       // completed submit() calls
  std::int64_t operations = 0;     // io_uring operations completed
  double busy_seconds = 0;         // wall time with at least one operation in flight
  // (bytes_read + bytes_written) / busy_seconds in GB/s (1e9 bytes); 0 when idle.
  double gbps() const { return busy_seconds > 0 ? double(bytes_read + bytes_written) / busy_seconds / 1e9 : 0.0; }
};

class UringEngine {
 public:
  // Sets up the ring and the worker thread. Throws zinf::Error (usage) when
  // the options are out of range.
  explicit UringEngine(EngineOptions options = {});
  // Waits for everything still in flight (buffers may not be freed under it).
  ~UringEngine();
  UringEngine(const UringEngine&) = delete;
  UringEngine& operator=(const UringEngine&) = delete;

  // Queues a request; returns at once. Throws for a malformed request (null
  // file or buffer, negative offset, misaligned offset on an O_DIRECT file).
  Ticket submit(const Request& request);
  Ticket read(const File& file, std::int64_t offset, void* data, std::int64_t bytes);
  Ticket write(const File& file, std::int64_t offset, const void* data, std::int64_t bytes);

  // Blocks until the request is done; throws its error. A ticket is consumed
  // by the wait (or poll) that reports it done; waiting twice is an error.
  void wait(Ticket ticket);
  // True (and consumed) when done; throws its error; false while in flight.
  bool poll(Ticket ticket);
  // Waits for every request not yet waited for; throws the first error.
  void wait_all();

  // Registers [data, data+bytes) as an io_uring fixed buffer, so requests
  // wholly inside it skip per-operation page pinning. Returns false when the
  // kernel refuses (RLIMIT_MEMLOCK, table full); requests still work.
  bool register_buffer(const void* data, std::int64_t bytes);
  // Unregisters; throws when requests using it are still in flight.
  void unregister_buffer(const void* data);

  IoCounters counters() const;
  const EngineOptions& options() const;
  // False when io_uring was unavailable and I/O runs as synchronous pread/pwrite.
  bool uses_io_uring() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zinf::io
