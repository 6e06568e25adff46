// Test support for suites that include LibTorch: Debian's LibTorch pulls in
// glog, whose CHECK/CHECK_EQ/... macros would silently replace doctest's.
// Include this after the LibTorch-using headers and instead of doctest.h.
#pragma once

#include <torch/torch.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LE
#undef CHECK_LT
#undef CHECK_GE
#undef CHECK_GT
#undef CHECK_NOTNULL
#undef CHECK_STREQ
#undef CHECK_STRNE
#undef CHECK_STRCASEEQ
#undef CHECK_STRCASENE
#undef CHECK_NEAR
#undef CHECK_DOUBLE_EQ
#undef CHECK_INDEX
#undef CHECK_BOUND
#undef CHECK_OP
#include <doctest/doctest.h>
