// plan: sizes whose products would overflow 64 bits, and inputs above the
// supported sizes, are usage errors naming the inputs, never negative bytes.
#include <doctest/doctest.h>

#include "core/error.h"
#include "plan/activations.h"
#include "plan/deepspeed_reference.h"
#include "plan/estimate.h"
#include "support/test_util.h"

using namespace zinf;
using namespace zinf::plan;

namespace {

bool has(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

Inputs gpt(const std::string& model, int gpus) {
  Inputs in;
  in.model = *find_model(model);
  in.params = in.model.parameter_count();
  in.seq_len = in.model.seq_len;
  in.gpus_per_node = gpus;
  return in;
}

}  // namespace

TEST_CASE("sizes whose products overflow 64 bits are usage errors naming the inputs, never negative bytes") {
  // activations: seq_len x micro-batch x hidden x ... beyond 2^63
  Inputs in = gpt("gpt2-small", 1);
  in.params = 1000000000000;
  in.model = shape_for_params(in.params, 50304, 1000000);
  in.seq_len = in.model.seq_len;
  in.micro_batch = 1000000;
  auto msg = test::error_of([&] { estimate(in); });
  CHECK(has(msg, "the activation bytes would overflow 64-bit integers (seq_len 1000000, micro-batch 1000000, hidden "));
  CHECK(has(msg, "use a smaller --batch-size or --seq-len"));
  ActivationInputs ai{in.model, in.micro_batch, in.seq_len, 2, Attention::kMaterialized, false};
  CHECK(has(test::error_of([&] { activation_bytes(ai); }), "the activation bytes would overflow"));

  // per-node totals: 2^50 parameters in one block on 2^20 ranks of one node
  // (each rank's fp32 initial weights of that block, summed over the node)
  in = gpt("gpt2-small", 1 << 20);
  in.params = kMaxParameters;
  in.model = shape_for_params(in.params, 50304, 2048);
  in.model.layers = 1;
  in.seq_len = 2048;
  msg = test::error_of([&] { estimate(in); });
  CHECK(has(msg, "for 1048576 ranks per node"));
  CHECK(has(msg, "would overflow 64-bit integers"));
}

TEST_CASE("estimate inputs above the supported sizes are refused naming the limit") {
  Inputs in = gpt("gpt2-small", 1);
  in.params = kMaxParameters + 1;
  CHECK(has(test::error_of([&] { estimate(in); }),
            "parameter count (--params) 1125899906842625 is above the largest supported 1125899906842624 (2^50)"));
  in = gpt("gpt2-small", 1);
  in.seq_len = 1000000000;
  CHECK(has(test::error_of([&] { estimate(in); }),
            "sequence length (--seq-len) 1000000000 is above the largest supported 16777216"));
  in = gpt("gpt2-small", 1);
  in.model.hidden_size = 9000000000;
  CHECK(has(test::error_of([&] { estimate(in); }),
            "hidden size (--hidden-size) 9000000000 is above the largest supported 1048576"));
  // one-element sub-groups of a 124M model: 124M sub-groups, refused before the planner lists them
  in = gpt("gpt2-small", 1);
  in.sub_group_size = 1;
  CHECK(has(test::error_of([&] { estimate(in); }),
            "zero_optimization.sub_group_size 1 cuts 124475904 parameters into more than 67108864 optimizer sub-groups"));
}

TEST_CASE("DeepSpeed's formulas in double precision: a size beyond int64 is refused, never cast to a negative") {
  const auto msg = test::error_of([] { deepspeed::zero2_model_states(kMaxParameters, 1 << 20, 1, true); });
  CHECK(has(msg, "DeepSpeed's ZeRO-2 CPU bytes is 7.08355e+21: not a size that fits 64-bit integers"));
  CHECK(has(test::error_of([] { deepspeed::zero3_model_states(kMaxParameters, 1, 1 << 20, 1, false, false, false); }),
            "DeepSpeed's ZeRO-3 CPU bytes is"));
  CHECK(deepspeed::zero2_model_states(1000000000, 8, 1, false).gpu_bytes > 0);
}
