// zinf::core — LibTorch version compatibility.
// Implements: the few calls whose spelling differs between LibTorch 1.13
// (Debian's libtorch-dev, CI) and LibTorch 2.x (GPU hosts). Include this only
// from files that already need <torch/torch.h>; the core target does not link
// Torch, this header is used by the modules that do.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#include <string>

namespace zinf::compat {

constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
constexpr int kTorchMinor = TORCH_VERSION_MINOR;

inline std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// True when at::scaled_dot_product_attention exists (LibTorch >= 2.0).
constexpr bool kHasScaledDotProductAttention = TORCH_VERSION_MAJOR >= 2;

}  // namespace zinf::compat
