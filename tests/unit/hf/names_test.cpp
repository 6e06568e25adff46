// Tests for zinf::hf's GPT-2 name rules: prefix added only when missing,
// mask buffers recognised, exactly the four Conv1D weights transposed.
#include "hf/names.h"

#include <doctest/doctest.h>

using namespace zinf::hf;

TEST_CASE("hf names: GPT-2 prefix, buffers and Conv1D weights") {
  CHECK(gpt2_param_name("h.0.ln_1.weight") == "transformer.h.0.ln_1.weight");
  CHECK(gpt2_param_name("wte.weight") == "transformer.wte.weight");
  CHECK(gpt2_param_name("transformer.ln_f.bias") == "transformer.ln_f.bias");
  CHECK(gpt2_param_name("lm_head.weight") == "lm_head.weight");
  CHECK(gpt2_is_buffer("transformer.h.3.attn.bias"));
  CHECK(gpt2_is_buffer("h.3.attn.masked_bias"));
  CHECK_FALSE(gpt2_is_buffer("transformer.h.3.attn.c_attn.bias"));
  CHECK(gpt2_is_conv1d_weight("transformer.h.0.attn.c_attn.weight"));
  CHECK(gpt2_is_conv1d_weight("transformer.h.1.attn.c_proj.weight"));
  CHECK(gpt2_is_conv1d_weight("transformer.h.0.mlp.c_fc.weight"));
  CHECK(gpt2_is_conv1d_weight("transformer.h.0.mlp.c_proj.weight"));
  CHECK_FALSE(gpt2_is_conv1d_weight("transformer.h.0.mlp.c_proj.bias"));
  CHECK_FALSE(gpt2_is_conv1d_weight("transformer.h.0.ln_1.weight"));
  CHECK_FALSE(gpt2_is_conv1d_weight("transformer.wte.weight"));
}
