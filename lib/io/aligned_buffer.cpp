// zinf::io — aligned host buffers (posix_memalign + optional cudaHostRegister).
#include "io/aligned_buffer.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/units.h"
#include "log/log.h"

#ifdef ZINF_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace zinf::io {

AlignedBuffer::AlignedBuffer(std::int64_t bytes, std::int64_t alignment, bool pin) : alignment_(alignment) {
  if (bytes <= 0)
    throw Error("aligned buffer of " + std::to_string(bytes) + " bytes requested", "ask for a positive size");
  if (alignment < 64 || (alignment & (alignment - 1)) != 0)
    throw Error("buffer alignment " + std::to_string(alignment) + " is not a power of two >= 64",
                "use 4096 (the O_DIRECT unit)");
  size_ = round_up(bytes, alignment);
  if (::posix_memalign(&data_, static_cast<std::size_t>(alignment), static_cast<std::size_t>(size_)) != 0) {
    data_ = nullptr;
    throw Error("cannot allocate " + format_bytes(double(size_)) + " of aligned host memory",
                "lower the offload buffer sizes (aio.block_size * aio.queue_depth, buffer_count) or free RAM");
  }
  std::memset(data_, 0, static_cast<std::size_t>(size_));
  if (!pin) return;
#ifdef ZINF_WITH_CUDA
  const cudaError_t rc = cudaHostRegister(data_, static_cast<std::size_t>(size_), cudaHostRegisterDefault);
  if (rc == cudaSuccess) {
    pinned_ = true;
  } else {
    (void)cudaGetLastError();  // clear the sticky error
    log::warn_once("io.pin", std::string("cannot pin host buffers (cudaHostRegister: ") + cudaGetErrorString(rc) +
                                 "); using pageable memory, so GPU copies go through a staging copy "
                                 "(about 3x slower). Raise `ulimit -l` or lower buffer sizes.");
  }
#else
  log::warn_once("io.pin", "pinned buffers requested but this build has no CUDA; using plain host memory");
#endif
}

AlignedBuffer::~AlignedBuffer() { release(); }

AlignedBuffer::AlignedBuffer(AlignedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      alignment_(other.alignment_),
      pinned_(std::exchange(other.pinned_, false)) {}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    alignment_ = other.alignment_;
    pinned_ = std::exchange(other.pinned_, false);
  }
  return *this;
}

void AlignedBuffer::release() {
  if (!data_) return;
#ifdef ZINF_WITH_CUDA
  if (pinned_) cudaHostUnregister(data_);
#endif
  std::free(data_);
  data_ = nullptr;
  size_ = 0;
  pinned_ = false;
}

}  // namespace zinf::io
