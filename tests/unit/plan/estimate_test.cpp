// plan: partitioning, activation arithmetic, tiers and overheads of the estimate.
#include <doctest/doctest.h>

#include "core/error.h"
#include "plan/activations.h"
#include "plan/estimate.h"

using namespace zinf;
using namespace zinf::plan;

namespace {

Option find(const std::string& name) {
  for (const auto& o : standard_options())
    if (o.name == name) return o;
  FAIL("no option " << name);
  return {};
}

Inputs gpt(const std::string& model, int gpus, int nodes = 1) {
  Inputs in;
  in.model = *find_model(model);
  in.params = in.model.parameter_count();
  in.seq_len = in.model.seq_len;
  in.micro_batch = 1;
  in.gpus_per_node = gpus;
  in.nodes = nodes;
  return in;
}

std::int64_t item(const std::vector<Item>& items, const std::string& prefix) {
  for (const auto& i : items)
    if (i.what.rfind(prefix, 0) == 0) return i.bytes;
  return -1;
}

}  // namespace

TEST_CASE("standard options run fastest first, from none to infinity on NVMe") {
  const auto& o = standard_options();
  REQUIRE(o.size() == 8);
  CHECK(o.front().name == "none");
  CHECK(o[4].name == "zero3+cpu-optimizer");
  CHECK(o.back().name == "infinity-nvme");
  CHECK(o.back().offload_param == config::Device::kNvme);
  CHECK(o.back().offload_optimizer == config::Device::kNvme);
}

TEST_CASE("optimizer states are split across every rank of every node") {
  Inputs one = gpt("6.7b", 1), eight = gpt("6.7b", 8), two_nodes = gpt("6.7b", 8, 2);
  const std::int64_t P = one.params;
  const auto m1 = estimate_option(one, find("zero1")), m8 = estimate_option(eight, find("zero1")),
             m16 = estimate_option(two_nodes, find("zero1"));
  CHECK(item(m1.gpu, "Adam moments") == 8 * P);
  CHECK(item(m8.gpu, "Adam moments") == 8 * ((P + 7) / 8));
  CHECK(item(m16.gpu, "Adam moments") == 8 * ((P + 15) / 16));
  // Stage 1 keeps full 16-bit parameters and gradients on every GPU.
  CHECK(item(m8.gpu, "bf16 parameters") == 2 * P);
  CHECK(item(m8.gpu, "bf16 gradients") == 2 * P);
  // Stage 3 splits the parameters too, and keeps no full gradient buffer.
  const auto z3 = estimate_option(eight, find("zero3"));
  CHECK(item(z3.gpu, "bf16 parameters (partition)") == 2 * ((P + 7) / 8));
  CHECK(item(z3.gpu, "bf16 gradients") == -1);
}

TEST_CASE("stage 0 in mixed precision needs 20 bytes per parameter of model state") {
  const Inputs in = gpt("1b", 1);
  CHECK(estimate_option(in, find("none")).model_state_gpu_bytes == 20 * in.params);
}

TEST_CASE("fp32 training keeps no separate master copy where the optimizer runs next to the parameters") {
  Inputs in = gpt("gpt2-small", 1);
  in.precision = config::Precision::kFp32;
  in.target = Target::kCpu;
  const Need none = estimate_option(in, find("none"));
  CHECK(none.gpu_bytes == 0);
  CHECK(none.model_state_cpu_bytes == 16 * in.params);  // parameters, gradients, m, v
  CHECK(item(none.cpu, "fp32 master") == -1);
  // Parameters on NVMe are fp32 and are the master themselves.
  const Need nvme = estimate_option(in, find("infinity-nvme"));
  CHECK(item(nvme.nvme, "fp32 parameters") >= 4 * in.params);
  CHECK(item(nvme.nvme, "fp32 master") == -1);
}

TEST_CASE("NVMe holds 16-bit parameters and the fp32 master and moments, in whole aio blocks per rank") {
  Inputs in = gpt("6.7b", 8);
  const std::int64_t Pn = (in.params + 7) / 8;
  const std::int64_t blk = in.aio_block_size;
  auto rounded = [&](std::int64_t b) { return (b + blk - 1) / blk * blk; };
  const Need n = estimate_option(in, find("infinity-nvme"));
  CHECK(n.nvme_bytes == 8 * (rounded(2 * Pn) + rounded(4 * Pn) + rounded(8 * Pn)));
  CHECK(n.nvme_bytes % blk == 0);
  // The fp32 gradient partition stays in pinned CPU memory unless asked onto NVMe too.
  CHECK(item(n.cpu, "fp32 gradients") == 8 * 4 * Pn);
  in.offload_gradients_nvme = true;
  const Need g = estimate_option(in, find("infinity-nvme"));
  CHECK(item(g.cpu, "fp32 gradients") == -1);
  CHECK(g.nvme_bytes == n.nvme_bytes + 8 * rounded(4 * Pn));
  // Nothing on NVMe without NVMe offload.
  CHECK(estimate_option(in, find("infinity-cpu")).nvme_bytes == 0);
}

TEST_CASE("offload buffers are sized from the configuration") {
  Inputs in = gpt("6.7b", 1);
  CHECK(item(estimate_option(in, find("zero2")).gpu, "gradient reduce buckets") == 2 * 4096 * 4096 * 2);  // auto: h^2
  CHECK(item(estimate_option(in, find("infinity-nvme")).cpu, "parameter swap buffers") ==
        5 * largest_block_params(in.model) * 2);  // auto: the largest block
  in.param_buffer_count = 5;
  in.param_buffer_size = 100000000;
  in.sub_group_size = 200000000;
  const Need n = estimate_option(in, find("infinity-nvme"));
  CHECK(item(n.cpu, "parameter swap buffers") == 5 * 100000000LL * 2);
  CHECK(item(n.cpu, "optimizer sub-group buffers") == 3 * 200000000LL * 16);
  // A partition smaller than one sub-group needs one sub-group buffer of its size.
  in.sub_group_size = 1000000000000LL;
  CHECK(item(estimate_option(in, find("infinity-nvme")).cpu, "optimizer sub-group buffers") == in.params * 16);
}

TEST_CASE("stage 3 gathers the largest block twice (current and prefetched) plus its gradients") {
  CHECK(largest_block_params(*find_model("gpt2-small")) == (50304 + 1024) * 768);  // the embedding outweighs a block
  const Inputs in = gpt("13b", 8);
  const std::int64_t L = largest_block_params(in.model);
  CHECK(L == in.model.block_parameter_count());  // a 13b block outweighs the embedding
  const Need n = estimate_option(in, find("zero3"));
  CHECK(item(n.gpu, "gathered block parameters") == 2 * L * 2);
  CHECK(item(n.gpu, "block gradients") == L * 2);
}

TEST_CASE("per-GPU fixed overhead is the CUDA context; CPU runs have none on a GPU") {
  Inputs in = gpt("tiny", 1);
  CHECK(item(estimate_option(in, find("none")).gpu, "CUDA context") == kCudaContextBytes);
  in.target = Target::kCpu;
  const Need cpu = estimate_option(in, find("none"));
  CHECK(cpu.gpu.empty());
  CHECK(item(cpu.cpu, "LibTorch runtime") == kHostRuntimeBytesCpu);
}

TEST_CASE("host runtime and per-rank CPU state scale with GPUs per node, not with nodes") {
  const Need a = estimate_option(gpt("1b", 4, 1), find("zero3+cpu-optimizer"));
  const Need b = estimate_option(gpt("1b", 4, 2), find("zero3+cpu-optimizer"));
  CHECK(item(a.cpu, "LibTorch runtime") == 4 * kHostRuntimeBytesCuda);
  CHECK(item(b.cpu, "LibTorch runtime") == 4 * kHostRuntimeBytesCuda);
  CHECK(b.model_state_cpu_bytes * 2 == doctest::Approx(a.model_state_cpu_bytes).epsilon(1e-6));
}

TEST_CASE("activations per block follow Korthikanti et al. without dropout") {
  ActivationInputs ai;
  ai.model = ModelSpec{"t", 50304, 1024, 768, 12, 12};
  ai.micro_batch = 2;
  ai.seq_len = 128;
  ai.dtype_bytes = 2;
  ai.attention = Attention::kMaterialized;
  const std::int64_t s = 128, b = 2, h = 768, a = 12;
  const ActivationBytes full = activation_bytes(ai);
  // 34 + 5as/h bytes per s*b*h with dropout; zinf has none: 32 + 2as/h.
  CHECK(full.per_block == s * b * h * 32 + 2 * a * s * s * b);
  CHECK(full.blocks == 12 * full.per_block);
  CHECK(full.recompute == 0);
  CHECK(full.head == 2 * s * b * h * 2 + s * b * 50304 * (2 + 4 + 4));

  ai.attention = Attention::kFlash;  // no a*s*s scores; a fp32 log-sum-exp per row
  CHECK(activation_bytes(ai).per_block == s * b * h * 32 + 4 * a * s * b);

  ai.checkpointing = true;  // only block inputs, plus one block rebuilt in backward
  const ActivationBytes ckpt = activation_bytes(ai);
  CHECK(ckpt.blocks == 12 * s * b * h * 2);
  CHECK(ckpt.recompute == ckpt.per_block);
  CHECK(ckpt.total() < full.total());

  ai.dtype_bytes = 4;  // fp32 doubles the 16-bit terms
  CHECK(activation_bytes(ai).blocks == 2 * ckpt.blocks);
}

TEST_CASE("stage 3 always checkpoints: the activation flag changes nothing there") {
  Inputs in = gpt("gpt2-small", 1);
  in.activation_checkpointing = false;
  const auto off = estimate_option(in, find("zero3"));
  const auto none_off = estimate_option(in, find("none"));
  in.activation_checkpointing = true;
  CHECK(estimate_option(in, find("zero3")).gpu_bytes == off.gpu_bytes);
  CHECK(estimate_option(in, find("none")).gpu_bytes < none_off.gpu_bytes);
}

TEST_CASE("a bare parameter count gets GPT-3's shape") {
  const ModelSpec m = shape_for_params(175000000000LL, 50304, 2048);
  CHECK(m.hidden_size == 12288);
  CHECK(m.layers == 96);
  CHECK(m.heads == 96);
  const ModelSpec small = shape_for_params(1000, 256, 16);
  CHECK(small.hidden_size == 128);
  CHECK(small.layers >= 1);
}

TEST_CASE("parameter counts parse with K/M/B/T suffixes and reject junk") {
  CHECK(parse_param_count("175B") == 175000000000LL);
  CHECK(parse_param_count("6.7b") == 6700000000LL);
  CHECK(parse_param_count("1.3e9") == 1300000000LL);
  CHECK(parse_param_count("124439808") == 124439808LL);
  CHECK(parse_param_count("350M") == 350000000LL);
  CHECK_FALSE(parse_param_count("0"));
  CHECK_FALSE(parse_param_count("-5"));
  CHECK_FALSE(parse_param_count("lots"));
  CHECK_FALSE(parse_param_count("B"));
}

TEST_CASE("estimate rejects non-positive counts naming the flag") {
  Inputs in = gpt("tiny", 1);
  in.gpus_per_node = 0;
  CHECK_THROWS_WITH_AS(estimate(in), "GPUs per node (--gpus) is 0: must be at least 1", Error);
  in = gpt("tiny", 1);
  in.nodes = -1;
  CHECK_THROWS_WITH_AS(estimate(in), "nodes (--nodes) is -1: must be at least 1", Error);
  in = gpt("tiny", 1);
  in.micro_batch = 0;
  CHECK_THROWS_WITH_AS(estimate(in), "micro-batch (--batch-size) is 0: must be at least 1", Error);
  in = gpt("tiny", 1);
  in.seq_len = 0;
  try {
    estimate(in);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    CHECK(std::string(e.what()).find("--seq-len") != std::string::npos);
  }
}

TEST_CASE("option_from names a configuration's stage and offload") {
  config::Settings s;
  s.zero_stage = 3;
  s.offload_param.device = config::Device::kNvme;
  s.offload_optimizer.device = config::Device::kNvme;
  CHECK(option_from(s).name == "infinity-nvme");
  s.zero_stage = 2;
  s.offload_param.device = config::Device::kNone;
  s.offload_optimizer.device = config::Device::kCpu;
  const Option o = option_from(s);
  CHECK(o.name == "zero2+cpu-optimizer");
  CHECK(o.zero_stage == 2);
}
