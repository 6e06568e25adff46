// zinf::io — aligned host buffers.
// Implements: AlignedBuffer, a move-only block of host memory whose start and
// size are multiples of an alignment (4096 by default, what O_DIRECT needs on
// every disk we meet), zero-filled, optionally page-locked for fast GPU copies
// (cudaHostRegister in CUDA builds; a warning and plain memory otherwise).
// Its size fits itself to what it must hold: ask for 1000 bytes, get 4096.
#pragma once

#include <cstddef>
#include <cstdint>

namespace zinf::io {

constexpr std::int64_t kDirectAlignment = 4096;  // bytes: O_DIRECT offset/length/address unit

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `bytes` > 0 is rounded up to `alignment` (a power of two >= 64).
  // `pin`: page-lock for DMA (CUDA builds); falls back to plain memory with
  // one warning when pinning is unavailable or refused.
  explicit AlignedBuffer(std::int64_t bytes, std::int64_t alignment = kDirectAlignment, bool pin = false);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& other) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() const { return data_; }
  std::byte* bytes() const { return static_cast<std::byte*>(data_); }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  std::int64_t size() const { return size_; }            // bytes, multiple of alignment()
  std::int64_t alignment() const { return alignment_; }  // bytes
  bool pinned() const { return pinned_; }
  bool empty() const { return data_ == nullptr; }

 private:
  void release();
  void* data_ = nullptr;
  std::int64_t size_ = 0;
  std::int64_t alignment_ = kDirectAlignment;
  bool pinned_ = false;
};

}  // namespace zinf::io
