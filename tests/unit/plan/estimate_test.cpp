// plan: partitioning, activation arithmetic, tiers and overheads of the estimate.
#include <doctest/doctest.h>

#include "core/error.h"
#include "plan/activations.h"
#include "plan/estimate.h"
#include "plan/recommend.h"

using namespace zinf;
using namespace zinf::plan;

namespace {

Option find(const std::string& name) {
  for (const auto& o : standard_options())
    if (o.name == name) return o;
  FAIL("no option " << name);
  return {};
}

// A Llama-3-8B-like shape: grouped-query attention (32 query heads, 8
// key/value heads), an MLP of 3.5h, an untied head.
ModelSpec llama_8b() {
  ModelSpec m{"custom", 128256, 2048, 4096, 32, 32};
  m.model_type = "llama";
  m.kv_heads = 8;
  m.intermediate_size = 14336;
  m.tied_embeddings = false;
  return m;
}

Inputs from_spec(const ModelSpec& m, int gpus) {
  Inputs in;
  in.model = m;
  in.params = m.parameter_count();
  in.seq_len = m.seq_len;
  in.gpus_per_node = gpus;
  return in;
}

Inputs gpt(const std::string& model, int gpus, int nodes = 1) {
  Inputs in = from_spec(*find_model(model), gpus);
  in.nodes = nodes;
  return in;
}

// The CI accuracy run's shape (tests/cli/plan_accuracy_test.cpp): gpt2-small,
// fp32 on the CPU, micro-batch 2 of 128 tokens.
Inputs gpt2_small_ci() {
  Inputs in = gpt("gpt2-small", 1);
  in.precision = config::Precision::kFp32;
  in.target = Target::kCpu;
  in.seq_len = in.model.seq_len = 128;
  in.params = in.model.parameter_count();
  in.micro_batch = 2;
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
  CHECK(o.back().offload_param == Tier::kNvme);
  CHECK(o.back().offload_optimizer == Tier::kNvme);
}

TEST_CASE("a tier's need is its resident items plus its largest phase") {
  const std::vector<Item> items = {{"state", 100, Phase::kResident},
                                   {"initial weights", 40, Phase::kInit},
                                   {"activations", 30, Phase::kStep},
                                   {"more activations", 25, Phase::kStep},
                                   {"optimizer temporaries", 50, Phase::kOptimizer}};
  CHECK(peak_bytes(items) == 100 + 55);  // the step's two items together beat the others alone
  CHECK(peak_bytes({{"state", 7, Phase::kResident}}) == 7);
}

TEST_CASE("stages 0-2 shard master, gradient and moments over every rank of every node, as ShardPlan pads them") {
  Inputs one = gpt("6.7b", 1), eight = gpt("6.7b", 8), two_nodes = gpt("6.7b", 8, 2);
  const std::int64_t P = one.params;
  auto shard = [&](std::int64_t ranks) { return (((P + ranks - 1) / ranks) + 63) / 64 * 64; };
  const auto m1 = estimate_option(one, find("zero1")), m8 = estimate_option(eight, find("zero1")),
             m16 = estimate_option(two_nodes, find("zero1"));
  CHECK(item(m1.gpu, "AdamW moments") == 8 * P);  // one rank: every stage runs as none
  CHECK(item(m8.gpu, "AdamW moments") == 8 * shard(8));
  CHECK(item(m16.gpu, "AdamW moments") == 8 * shard(16));
  // Stage 1 keeps full 16-bit parameters on every GPU (padded to 8 shards) and
  // each parameter's gradient during backward, until it joins the fp32 sum.
  CHECK(item(m8.gpu, "bf16 parameters (flat model buffer)") == 2 * 8 * shard(8));
  CHECK(item(m8.gpu, "bf16 gradients (flat model buffer)") == -1);
  CHECK(item(m8.gpu, "bf16 gradients (each parameter's") == 2 * P);
  CHECK(item(m8.gpu, "fp32 gradient accumulator (padded)") == 4 * 8 * shard(8));
  // Stage 2 replaces the full fp32 accumulator by buckets of reduce_bucket_size (auto: hidden^2).
  const auto z2 = estimate_option(eight, find("zero2"));
  CHECK(item(z2.gpu, "fp32 gradient accumulator") == -1);
  CHECK(item(z2.gpu, "bf16 gradients (flat model buffer)") == 2 * 8 * shard(8));  // its buckets are cut from it
  const std::int64_t piece = 4096LL * 4096 / 8;
  CHECK(item(z2.gpu, "reduce-scatter bucket") == piece * 9 * 4);
  // Stage 3 runs in the engine: parameters split block by block, no flat model buffers.
  const auto z3 = estimate_option(eight, find("zero3"));
  CHECK(item(z3.gpu, "bf16 parameters (this rank's shards)") >= 2 * P / 8);
  CHECK(item(z3.gpu, "bf16 parameters (this rank's shards)") < 2 * P / 8 + 2 * 64 * 40);
  CHECK(item(z3.gpu, "bf16 gradients") == -1);
}

TEST_CASE("stage 0 in mixed precision needs 20 bytes per parameter of model state") {
  const Inputs in = gpt("1b", 1);
  CHECK(estimate_option(in, find("none")).model_state_gpu_bytes == 20 * in.params);
}

TEST_CASE("stage none on CPU peaks in the unfused AdamW step: 16 B/param resident plus two fp32 temporaries") {
  Inputs in = gpt2_small_ci();
  const Need none = estimate_option(in, find("none"));
  CHECK(none.gpu_bytes == 0);
  CHECK(none.model_state_cpu_bytes == 16 * in.params);  // parameters, gradients, m, v
  CHECK(item(none.cpu, "fp32 master") == -1);            // fp32 parameters are the master
  const std::int64_t padded = (in.params + 63) / 64 * 64;  // ShardPlan of one rank
  CHECK(none.cpu_bytes == 8 * padded + 8 * in.params + kHostRuntimeBytesCpu + 8 * in.params);
  // initialisation, one block at a time (the embedding, here): not at the peak
  CHECK(item(none.cpu, "initial fp32 weights of the largest block") == 4 * largest_block_params(in.model));
}

TEST_CASE("the engine's NVMe files are its segments: one per block and per sub-group, 4096-aligned") {
  Inputs in = gpt("gpt2-small", 1);
  in.precision = config::Precision::kFp32;
  in.target = Target::kCpu;
  in.sub_group_size = 1000000;  // rounded up to whole aio blocks of fp32: 1048576
  auto r4k = [](std::int64_t b) { return (b + 4095) / 4096 * 4096; };
  const ModelSpec& m = in.model;
  const std::int64_t emb = (m.vocab_size + m.seq_len) * m.hidden_size, blk = m.block_parameter_count(),
                     head = 2 * m.hidden_size;
  std::int64_t params = r4k(4 * emb) + m.layers * r4k(4 * blk) + r4k(4 * head), opt = 0, grads = 0;
  for (std::int64_t n : {emb, blk, head}) {
    const std::int64_t times = n == blk ? m.layers : 1;
    for (std::int64_t off = 0; off < n; off += 1048576) {
      const std::int64_t g = std::min<std::int64_t>(1048576, n - off);
      opt += times * r4k(12 * g);
      grads += times * r4k(4 * g);
    }
  }
  const Need n = estimate_option(in, find("infinity-nvme"));
  CHECK(item(n.nvme, "fp32 parameters") == params);
  CHECK(item(n.nvme, "fp32 master weights, Adam m, v") == opt);  // a separate fp32 master even in fp32
  CHECK(item(n.nvme, "fp32 gradients") == grads);                 // auto: gradients follow the NVMe optimizer
  CHECK(n.nvme_bytes == params + opt + grads);
  // Told to keep gradients in memory: a host buffer instead of grads.swp.
  in.gradients_nvme = false;
  const Need g = estimate_option(in, find("infinity-nvme"));
  CHECK(item(g.nvme, "fp32 gradients") == -1);
  CHECK(item(g.cpu, "fp32 gradients") == r4k(4 * in.params));
  CHECK(g.nvme_bytes == params + opt);
  // Parameters kept in CPU memory (max_in_cpu) leave the NVMe file, block by block in order.
  in.param_max_in_cpu = emb;
  CHECK(item(estimate_option(in, find("infinity-nvme")).nvme, "fp32 parameters") == params - r4k(4 * emb));
  // Nothing on NVMe without NVMe offload.
  CHECK(estimate_option(in, find("infinity-cpu")).nvme_bytes == 0);
}

TEST_CASE("offload buffers are sized with the engine's rules") {
  Inputs in = gpt("6.7b", 1);
  // auto fetch buffers: 8M elements (16 MiB of bf16), buffer_count of them
  CHECK(item(estimate_option(in, find("infinity-nvme")).cpu, "parameter fetch pool") == 5 * (16LL << 20));
  in.param_buffer_count = 2;
  in.param_buffer_size = 300000000;  // larger than any block: one block per buffer
  in.sub_group_size = 300000000;     // larger than any block: one sub-group per block
  const Need n = estimate_option(in, find("infinity-nvme"));
  const std::int64_t largest = largest_block_params(in.model);
  CHECK(item(n.cpu, "parameter fetch pool") == 2 * ((largest * 2 + 4095) / 4096 * 4096));
  CHECK(item(n.cpu, "optimizer pipeline buffers") == 3 * ((12 * largest + 4095) / 4096 * 4096 + 4 * largest));
  CHECK(item(n.cpu, "new-weights write pool") == 3 * ((2 * largest + 4095) / 4096 * 4096));
  // The optimizer in CPU memory needs no pipeline buffers, and the gradient stays in memory.
  const Need c = estimate_option(in, find("infinity-cpu"));
  CHECK(item(c.cpu, "optimizer pipeline buffers") == -1);
  CHECK(item(c.cpu, "bf16 gradients") > 0);  // grad_accum 1: the compute dtype, nothing accumulates
  in.grad_accum = 4;
  CHECK(item(estimate_option(in, find("infinity-cpu")).cpu, "fp32 gradients") > 0);
}

TEST_CASE("the engine's peak walks the calls: the head's backward with the tied embedding, at most four gradients in flight") {
  Inputs in = gpt2_small_ci();
  const std::int64_t emb = (in.model.vocab_size + 128) * in.model.hidden_size;
  CHECK(largest_block_params(in.model) == emb);                             // the embedding outweighs a block
  CHECK(largest_block_params(*find_model("13b")) == find_model("13b")->block_parameter_count());  // not at 13b
  const Need n = estimate_option(in, find("infinity-nvme"));
  // The head call gathers the final LayerNorm and the tied embedding, with block 11 prefetched.
  const std::int64_t gathered = item(n.cpu, "parameters gathered at the peak (backward of the head");
  CHECK(gathered > 4 * emb);
  CHECK(gathered < 4 * (emb + in.model.block_parameter_count() + 2 * in.model.hidden_size) + 1);
  CHECK(item(n.cpu, "block gradients being built") == (kBlockGradCopies * emb + 2 * in.model.hidden_size) * 4);
  // Nothing is handed off before the head's backward.
  CHECK(item(n.cpu, "gradients of the last blocks") <= 0);
  // With the optimizer on the device nothing waits for an offload job.
  Inputs gpu = gpt("gpt2-small", 1);
  CHECK(item(estimate_option(gpu, find("zero3")).gpu, "gradients of the last blocks") == -1);
  // On a GPU the same walk lands on the GPU: at most four calls' gradients in
  // flight (zero/engine_grads.cpp), never a copy of the model.
  Inputs big = gpt("6.7b", 1);
  const Need g = estimate_option(big, find("infinity-nvme"));
  const std::int64_t held = item(g.gpu, "gradients of the last blocks");
  const std::int64_t call = std::max(big.model.block_parameter_count(), largest_block_params(big.model)) * 2;
  CHECK(held <= 4 * (call + 2 * big.model.hidden_size * 2));
  CHECK(held < big.params / 4);
  CHECK(item(g.cpu, "block gradients being built") == -1);
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

TEST_CASE("a 16-bit stage-0 model's gradients peak at the end of backward, not on top of the activations") {
  auto phase_sum = [](const std::vector<Item>& items, Phase p) {
    std::int64_t n = 0;
    for (const auto& i : items)
      if (i.phase == p) n += i.bytes;
    return n;
  };
  Inputs in = from_spec(llama_8b(), 1);
  in.micro_batch = 2;
  const Need full = estimate_option(in, find("none"));
  const std::string grads = "bf16 gradients (each parameter's";
  REQUIRE(item(full.gpu, grads) == 2 * in.params);
  for (const auto& i : full.gpu)
    if (i.what.rfind(grads, 0) == 0) CHECK(i.phase == Phase::kBackwardEnd);
  // Activations of two 2048-token samples outweigh the 16 GB of gradients:
  // the forward/backward phase is the peak, and the gradients are not in it.
  const std::int64_t resident = phase_sum(full.gpu, Phase::kResident);
  CHECK(phase_sum(full.gpu, Phase::kStep) > 2 * in.params);
  CHECK(full.gpu_bytes == resident + phase_sum(full.gpu, Phase::kStep));
  // With checkpointing the activations shrink below the gradients, which
  // then set the peak.
  in.activation_checkpointing = true;
  in.micro_batch = 1;
  const Need ckpt = estimate_option(in, find("none"));
  CHECK(phase_sum(ckpt.gpu, Phase::kStep) < 2 * in.params);
  CHECK(ckpt.gpu_bytes == phase_sum(ckpt.gpu, Phase::kResident) + 2 * in.params);
  CHECK(std::string(phase_name(Phase::kBackwardEnd)) == "end of backward");
}

TEST_CASE("packed windows add one attention mask per forward: bool and an additive bias") {
  Inputs in = from_spec(llama_8b(), 1);
  in.micro_batch = 2;
  const Need plain = estimate_option(in, find("none"));
  in.packed = true;
  const Need packed = estimate_option(in, find("none"));
  const std::int64_t mask = 2 * 2048 * 2048 * (1 + 2);  // micro-batch x T x T x (bool + bf16)
  CHECK(item(packed.gpu, "packed rows") == mask);
  CHECK(packed.gpu_bytes == plain.gpu_bytes + mask);
  CHECK(item(estimate_option(in, find("zero3")).gpu, "packed rows") == mask);  // the engine's forward too
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

TEST_CASE("a Llama block keeps what its forward saves: fp32 RMSNorm inputs, q-wide K and V, the SwiGLU products") {
  ActivationInputs ai;
  ai.model = llama_8b();
  ai.micro_batch = 1;
  ai.seq_len = 2048;
  ai.dtype_bytes = 2;
  ai.attention = Attention::kFlash;
  ai.mean_keeps_input = true;  // LibTorch 1.13's mean() keeps x^2
  const std::int64_t N = 2048, s = 2048, h = 4096, a = 32, d = 128, q = a * d, f = 14336, V = 128256, dt = 2;
  const std::int64_t rms_norm = 4 * N * h + 4 * N * h + 4 * N + dt * N * h;  // fp32 input, x^2, row factor, normalised
  const std::int64_t attention = rms_norm + dt * N * h   // q/k/v in
                                 + dt * N * q            // Q after rotary
                                 + 2 * dt * N * q        // K and V repeated to 32 heads
                                 + dt * N * q            // SDPA output = o_proj in
                                 + 2 * dt * s * d        // rotary cos, sin
                                 + 4 * a * N;            // log-sum-exp
  const std::int64_t mlp = rms_norm + dt * N * h + 4 * dt * N * f;  // gate/up in; gate, SiLU, up, product
  const ActivationBytes flash = activation_bytes(ai);
  CHECK(flash.per_block == attention + mlp);
  CHECK(flash.per_block == 504643584);                // 481 MiB
  CHECK(flash.per_block > 1.8 * (s * h * 32 + 4 * a * s));  // GPT-2's 16sbh elements: 256 MiB
  CHECK(flash.blocks == 32 * flash.per_block);
  CHECK(flash.head == rms_norm + dt * N * h + N * V * (dt + 4 + 4));

  ai.attention = Attention::kMaterialized;  // the scores and the causal mask instead of the log-sum-exp
  CHECK(activation_bytes(ai).per_block == flash.per_block - 4 * a * N + dt * a * s * s + s * s);

  // The key/value width does not matter (repeat_interleave copies K and V to
  // every query head); the query width and the MLP width do.
  ActivationInputs lt2 = ai;  // LibTorch 2: mean()'s backward keeps no x^2, one per RMSNorm
  lt2.mean_keeps_input = false;
  CHECK(activation_bytes(lt2).per_block == activation_bytes(ai).per_block - 2 * 4 * N * h);

  ActivationInputs mha = ai;
  mha.model.kv_heads = 0;
  CHECK(activation_bytes(mha).per_block == activation_bytes(ai).per_block);
  ActivationInputs wide = ai;
  wide.model.intermediate_size = 4 * h;
  CHECK(activation_bytes(wide).per_block - activation_bytes(ai).per_block == 4 * dt * N * (4 * h - f));

  // Measured with a counting CPU allocator on LibTorch 1.13 (Llama::block of
  // hidden 64, 4 heads, MLP 96, 32 tokens, micro-batch 3, materialised
  // attention): these bytes stay alive after the forward, the block input
  // included (fp32: x is the first RMSNorm's fp32 input).
  ActivationInputs tiny;
  tiny.model = ModelSpec{"t", 100, 32, 64, 1, 4};
  tiny.model.model_type = "llama";
  tiny.model.intermediate_size = 96;
  tiny.micro_batch = 3;
  tiny.seq_len = 32;
  tiny.attention = Attention::kMaterialized;
  tiny.mean_keeps_input = true;
  tiny.dtype_bytes = 4;
  CHECK(activation_bytes(tiny).per_block == 497408);
  tiny.dtype_bytes = 2;  // bf16
  CHECK(activation_bytes(tiny).per_block == 298752);
  tiny.model.model_type = "qwen2";  // q/k/v biases, head size 24 (query width 96 != hidden)
  tiny.model.attention_bias = true;
  tiny.model.head_dim = 24;
  tiny.model.kv_heads = 2;
  CHECK(activation_bytes(tiny).per_block == 324352);  // measured 324416: + repeat_interleave's two int64 index vectors
}

TEST_CASE("the engine's blocks follow the architecture: no position table for Llama, an untied head is its own block") {
  auto r4k = [](std::int64_t b) { return (b + 4095) / 4096 * 4096; };
  const ModelSpec m = llama_8b();
  const std::int64_t emb = m.vocab_size * m.hidden_size, blk = m.block_parameter_count(), head = m.hidden_size + emb;
  CHECK(m.embedding_parameter_count() == emb);
  CHECK(m.head_parameter_count() == head);
  CHECK(largest_block_params(m) == head);  // the untied head: V x h plus the final norm
  Inputs in = from_spec(m, 1);
  const Need n = estimate_option(in, find("infinity-nvme"));
  CHECK(item(n.nvme, "bf16 parameters") == r4k(2 * emb) + m.layers * r4k(2 * blk) + r4k(2 * head));
  // The head's call gathers the head alone: no embedding beside it.
  const std::int64_t gathered = item(n.gpu, "parameters gathered at the peak");
  CHECK(gathered <= 2 * (head + blk));
  // Tied, the head is the final norm and its call gathers the embedding too.
  ModelSpec tied = m;
  tied.tied_embeddings = true;
  CHECK(tied.head_parameter_count() == tied.hidden_size);
  CHECK(largest_block_params(tied) == emb);
  // GPT-2's embedding holds the whole position table, not seq_len rows of it.
  ModelSpec gpt2 = *find_model("gpt2-small");
  gpt2.max_positions = 1024;
  gpt2.seq_len = 128;
  CHECK(largest_block_params(gpt2) == (gpt2.vocab_size + 1024) * gpt2.hidden_size);
  CHECK(gpt2.embedding_parameter_count() + gpt2.layers * gpt2.block_parameter_count() + gpt2.head_parameter_count() ==
        gpt2.parameter_count());
  // An untied head's weight is added into its gradient as it arrives: one
  // V x h gradient at a time on the data-parallel path, two when tied.
  CHECK(item(estimate_option(in, find("zero1")).gpu, "backward temporaries: the largest weight's gradient") == 2 * emb);
  CHECK(item(estimate_option(from_spec(tied, 1), find("zero1")).gpu, "backward temporaries: 2 x the tied embedding") ==
        2 * 2 * emb);
}

TEST_CASE("loading pretrained weights adds the reader's piece to the initialisation, where the run reads a directory") {
  Inputs in = from_spec(llama_8b(), 1);
  const std::string load = "pretrained load";
  CHECK(item(estimate_option(in, find("infinity-cpu")).cpu, load) == -1);  // seeded weights: no reader
  in.pretrained = true;
  for (const char* option : {"none", "zero2", "zero3", "infinity-cpu", "infinity-nvme"}) {
    const Need n = estimate_option(in, find(option));
    INFO(option);
    CHECK(item(n.cpu, "pretrained load: safetensors read piece") == 2 * (std::int64_t(1) << 22));  // 16-bit, 4M elements
    CHECK(item(n.cpu, "initial fp32 weights of the largest block") >= 4 * largest_block_params(in.model));
    for (const Item& i : n.cpu)
      if (i.what.rfind(load, 0) == 0) CHECK(i.phase == Phase::kInit);
  }
  // GPT-2's Conv1D weights are stored [in, out]: the largest, mlp.c_fc
  // [h, 4h], is read whole in fp32 beside its 16-bit stored copy.
  Inputs g = gpt("gpt2-small", 1);
  g.pretrained = true;
  const std::int64_t h = g.model.hidden_size;
  CHECK(item(estimate_option(g, find("none")).cpu, "pretrained load: a Conv1D weight") == (4 + 2) * 4 * h * h);
  // The setting: a --from-pretrained directory, as zinf train and zinf estimate resolve it.
  config::Settings s;
  s.model = llama_8b();
  s.micro_batch = 1;
  s.grad_accum = 1;
  CHECK_FALSE(inputs_from(s, 1, 1, Target::kCuda).pretrained);
  s.from_pretrained = "/models/llama";
  CHECK(inputs_from(s, 1, 1, Target::kCuda).pretrained);
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

TEST_CASE("device gradient sums on auto: counted where the estimate with them fits the GPU, else left out") {
  Inputs in = gpt("6.7b", 1);
  in.grad_accum = 4;
  in.device_grad_accumulation = false;
  const Need host = estimate_option(in, find("infinity-cpu"));
  in.device_grad_accumulation = true;
  const Need dev = estimate_option(in, find("infinity-cpu"));
  REQUIRE(dev.device_sums);
  REQUIRE_FALSE(host.device_sums);
  REQUIRE(dev.gpu_bytes > host.gpu_bytes);
  in.device_grad_accumulation.reset();  // auto
  const auto with_capacity = [&](std::optional<std::int64_t> bytes) {
    Inputs a = in;
    a.gpu_capacity_bytes = bytes;
    return estimate_option(a, find("infinity-cpu"));
  };
  // Room for the sums with the 10% margin: the same need as asking for them.
  const auto room = static_cast<std::int64_t>(double(dev.gpu_bytes) / (1.0 - kSafetyMargin)) + 1;
  CHECK(with_capacity(room).device_sums);
  CHECK(with_capacity(room).gpu_bytes == dev.gpu_bytes);
  // One byte short of that, or an unknown GPU: the host path's need.
  CHECK_FALSE(with_capacity(room - 2).device_sums);
  CHECK(with_capacity(room - 2).gpu_bytes == host.gpu_bytes);
  CHECK_FALSE(with_capacity(std::nullopt).device_sums);
  // Never on the CPU, without accumulation, or with the optimizer on the GPU.
  Inputs cpu = in;
  cpu.target = Target::kCpu;
  cpu.gpu_capacity_bytes = std::int64_t(1) << 50;
  CHECK_FALSE(estimate_option(cpu, find("infinity-cpu")).device_sums);
  Inputs one = in;
  one.grad_accum = 1;
  one.gpu_capacity_bytes = std::int64_t(1) << 50;
  CHECK_FALSE(estimate_option(one, find("infinity-cpu")).device_sums);
  Inputs big = in;
  big.gpu_capacity_bytes = std::int64_t(1) << 50;
  CHECK_FALSE(estimate_option(big, find("zero3")).device_sums);
  CHECK(estimate_option(big, find("zero3+cpu-optimizer")).device_sums);
}

TEST_CASE("option_from names a configuration's stage and offload") {
  config::Settings s;
  s.zero_stage = 3;
  s.offload_param.device = Tier::kNvme;
  s.offload_optimizer.device = Tier::kNvme;
  CHECK(option_from(s).name == "infinity-nvme");
  s.zero_stage = 2;
  s.offload_param.device = Tier::kDevice;
  s.offload_optimizer.device = Tier::kCpu;
  const Option o = option_from(s);
  CHECK(o.name == "zero2+cpu-optimizer");
  CHECK(o.zero_stage == 2);
}

TEST_CASE("device gradient sums add 4 bytes per owned element on the GPU and leave no gradient waiting in a job") {
  Inputs in = gpt("6.7b", 1);  // its peak is a late block's backward, with jobs in flight
  in.grad_accum = 4;
  const Need host = estimate_option(in, find("infinity-cpu"));
  in.device_grad_accumulation = true;
  const Need dev = estimate_option(in, find("infinity-cpu"));
  const std::int64_t sums = item(dev.gpu, "fp32 gradient sums of the micro-batches");
  CHECK(sums == 4 * in.params);  // one rank owns every element
  CHECK(item(host.gpu, "fp32 gradient sums") == -1);
  CHECK(item(host.gpu, "gradients of the last blocks") > 0);
  CHECK(item(dev.gpu, "gradients of the last blocks") <= 0);
  CHECK(dev.cpu_bytes == host.cpu_bytes);  // the host accumulator stays
  // Without accumulation, or with the optimizer on the device, it changes nothing.
  in.grad_accum = 1;
  CHECK(item(estimate_option(in, find("infinity-cpu")).gpu, "fp32 gradient sums") == -1);
  in.grad_accum = 4;
  CHECK(item(estimate_option(in, find("zero3")).gpu, "fp32 gradient sums") == -1);
}
