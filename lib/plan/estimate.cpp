// zinf::plan — the per-tier byte model of zinf's engine (see estimate.h and
// docs/estimates.md for what is counted and why).
#include "plan/estimate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/text.h"
#include "core/units.h"

namespace zinf::plan {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

enum class Tier { kAccel, kCpu, kNvme };

Tier tier_of(config::Device d) {
  return d == config::Device::kCpu ? Tier::kCpu : d == config::Device::kNvme ? Tier::kNvme : Tier::kAccel;
}

// Items per rank on each tier, summed into per-node totals at the end.
struct RankItems {
  std::vector<Item> accel, cpu, nvme;
  std::int64_t model_state_accel = 0, model_state_cpu = 0;

  void add(Tier t, std::string what, std::int64_t bytes, bool model_state, std::int64_t nvme_block) {
    if (bytes <= 0) return;
    switch (t) {
      case Tier::kAccel:
        accel.push_back({std::move(what), bytes});
        if (model_state) model_state_accel += bytes;
        break;
      case Tier::kCpu:
        cpu.push_back({std::move(what), bytes});
        if (model_state) model_state_cpu += bytes;
        break;
      case Tier::kNvme:  // one swap file per rank and kind, in whole aio blocks
        nvme.push_back({std::move(what), round_up(bytes, nvme_block)});
        break;
    }
  }
};

std::int64_t sum(const std::vector<Item>& items) {
  std::int64_t total = 0;
  for (const auto& i : items) total += i.bytes;
  return total;
}

// Per-rank items as per-node items: n ranks share a node.
std::vector<Item> times(std::vector<Item> items, int n) {
  for (auto& i : items) {
    i.bytes *= n;
    if (n > 1) i.what += ", x " + std::to_string(n) + " ranks";
  }
  return items;
}

}  // namespace

const char* target_name(Target t) { return t == Target::kCuda ? "cuda" : "cpu"; }

std::int64_t largest_block_params(const ModelSpec& m) {
  return std::max(m.block_parameter_count(), (m.vocab_size + m.seq_len) * m.hidden_size);
}

ModelSpec shape_for_params(std::int64_t params, std::int64_t vocab_size, std::int64_t seq_len) {
  // 12*h^2 per block dominates: params ~ 12 * layers * h^2 with h = 128 * layers.
  const double h_exact = std::cbrt(static_cast<double>(params) * 128.0 / 12.0);
  const std::int64_t h = std::max<std::int64_t>(128, std::llround(h_exact / 128.0) * 128);
  ModelSpec m{"custom", vocab_size, seq_len, h, 1, h / 128};
  const double rest = static_cast<double>(params - (vocab_size + seq_len) * h);
  m.layers = std::max<std::int64_t>(1, std::llround(rest / static_cast<double>(m.block_parameter_count())));
  return m;
}

std::optional<std::int64_t> parse_param_count(const std::string& raw) {
  std::string t = text::trim(raw);
  if (t.empty()) return std::nullopt;
  double scale = 1;
  switch (std::toupper(static_cast<unsigned char>(t.back()))) {
    case 'K': scale = 1e3; break;
    case 'M': scale = 1e6; break;
    case 'B': scale = 1e9; break;
    case 'T': scale = 1e12; break;
    default: break;
  }
  if (scale != 1) {
    t.pop_back();
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !std::isfinite(v) || v <= 0 || v * scale > 9e18) return std::nullopt;
    return static_cast<std::int64_t>(std::llround(v * scale));
  }
  const auto n = parse_integer(t);
  if (!n || *n <= 0) return std::nullopt;
  return n;
}

Inputs inputs_from(const config::Settings& s, int gpus_per_node, int nodes, Target target) {
  Inputs in;
  in.model = s.model;
  in.params = s.model.parameter_count();
  in.micro_batch = s.micro_batch;
  in.seq_len = s.model.seq_len;
  in.activation_checkpointing = s.activation_checkpointing;
  in.precision = s.precision;
  in.target = target;
  in.attention = target == Target::kCuda ? Attention::kFlash : Attention::kMaterialized;
  in.gpus_per_node = gpus_per_node;
  in.nodes = nodes;
  in.reduce_bucket_size = s.reduce_bucket_size;
  in.param_buffer_count = s.offload_param.buffer_count;
  in.param_buffer_size = s.offload_param.buffer_size;
  in.sub_group_size = s.sub_group_size;
  in.aio_block_size = s.aio_block_size;
  in.offload_gradients_nvme = s.offload_gradients_nvme;
  return in;
}

void check_inputs(const Inputs& in) {
  auto positive = [](std::int64_t v, const std::string& what, const std::string& allowed) {
    if (v < 1)
      throw UsageError(what + " is " + std::to_string(v) + ": must be at least 1", "allowed: " + allowed);
  };
  positive(in.gpus_per_node, "GPUs per node (--gpus)", "a whole number of GPUs per node, 1 or more");
  positive(in.nodes, "nodes (--nodes)", "a whole number of nodes, 1 or more");
  if (in.ranks() > kMaxRanks)
    throw UsageError(std::to_string(in.gpus_per_node) + " GPUs per node x " + std::to_string(in.nodes) + " nodes = " +
                         std::to_string(in.ranks()) + " ranks: more than " + std::to_string(kMaxRanks),
                     "allowed: at most " + std::to_string(kMaxRanks) + " GPUs in all");
  positive(in.micro_batch, "micro-batch (--batch-size)", "samples per GPU per forward, 1 or more");
  positive(in.seq_len, "sequence length (--seq-len)", "tokens per sample, 1 or more");
  positive(in.params, "parameter count (--params)", "a positive count such as 124439808, 1.3e9 or 175B");
  const ModelSpec& m = in.model;
  positive(m.hidden_size, "hidden size (--hidden-size)", "1 or more");
  positive(m.layers, "layers (--layers)", "1 or more");
  positive(m.heads, "heads (--heads)", "1 or more");
  if (m.hidden_size % m.heads != 0)
    throw UsageError("hidden size " + std::to_string(m.hidden_size) + " is not divisible by " +
                         std::to_string(m.heads) + " heads",
                     "choose heads that divide the hidden size");
}

const std::vector<Option>& standard_options() {
  using config::Device;
  static const std::vector<Option> options = {
      {"none", 0, Device::kNone, Device::kNone},
      {"zero1", 1, Device::kNone, Device::kNone},
      {"zero2", 2, Device::kNone, Device::kNone},
      {"zero3", 3, Device::kNone, Device::kNone},
      {"zero3+cpu-optimizer", 3, Device::kNone, Device::kCpu},
      {"infinity-cpu", 3, Device::kCpu, Device::kCpu},
      {"infinity-nvme-optimizer", 3, Device::kCpu, Device::kNvme},
      {"infinity-nvme", 3, Device::kNvme, Device::kNvme},
  };
  return options;
}

Option option_from(const config::Settings& s) {
  Option o{"", s.zero_stage, s.zero_stage == 3 ? s.offload_param.device : config::Device::kNone,
           s.offload_optimizer.device};
  for (const auto& std_option : standard_options())
    if (std_option.zero_stage == o.zero_stage && std_option.offload_param == o.offload_param &&
        std_option.offload_optimizer == o.offload_optimizer)
      return std_option;
  o.name = o.zero_stage == 0 ? "none" : "zero" + std::to_string(o.zero_stage);
  if (o.offload_param != config::Device::kNone)
    o.name += std::string("+") + config::device_name(o.offload_param) + "-params";
  if (o.offload_optimizer != config::Device::kNone)
    o.name += std::string("+") + config::device_name(o.offload_optimizer) + "-optimizer";
  return o;
}

Need estimate_option(const Inputs& in, const Option& o) {
  check_inputs(in);
  const bool mixed = in.precision != config::Precision::kFp32;
  const std::int64_t bw = mixed ? 2 : 4;  // bytes per element of parameters, gradients, activations
  const std::string prec = config::precision_name(in.precision);
  const int n = in.gpus_per_node;
  const std::int64_t P = in.params;
  const std::int64_t Pn = ceil_div(P, in.ranks());  // one rank's partition, elements
  const std::int64_t L = std::min(P, largest_block_params(in.model));
  const int stage = o.zero_stage;
  const std::int64_t block = in.aio_block_size;
  const std::int64_t h = in.model.hidden_size;
  const std::int64_t reduce_bucket = in.reduce_bucket_size > 0 ? in.reduce_bucket_size : h * h;
  const std::int64_t param_buffer = in.param_buffer_size > 0 ? in.param_buffer_size : largest_block_params(in.model);
  const std::int64_t sub_group_size = in.sub_group_size > 0 ? in.sub_group_size : 1000000000;

  const Tier param_home = stage == 3 ? tier_of(o.offload_param) : Tier::kAccel;
  const Tier opt_home = tier_of(o.offload_optimizer);
  // On a CPU run the accelerator's memory is host memory: "offload to cpu"
  // moves nothing, so it counts as the same tier.
  auto same_memory = [&](Tier a, Tier b) {
    auto physical = [&](Tier t) { return in.target == Target::kCpu && t == Tier::kAccel ? Tier::kCpu : t; };
    return physical(a) == physical(b);
  };
  const std::int64_t opt_numel = stage == 0 ? P : Pn;  // elements this rank's optimizer updates
  const std::string part = stage == 0 ? "" : " (partition)";

  RankItems r;
  // ---------------------------------------------------------- model states
  const std::int64_t param_numel = stage < 3 ? P : Pn;
  r.add(param_home, prec + " parameters" + (stage < 3 ? "" : " (partition)") +
                        (param_home == Tier::kCpu ? ", pinned" : ""),
        param_numel * bw, true, block);
  // Stages 0 and 1 keep one flat gradient buffer for the whole model, reduced
  // at the end of accumulation; stages 2 and 3 reduce-scatter block by block
  // into the fp32 partition and keep no full 16-bit copy.
  if (stage < 2) r.add(Tier::kAccel, prec + " gradients", P * bw, true, block);
  // The optimizer's fp32 gradient: micro-batches accumulate into it in mixed
  // precision; at fp32 with stage < 2 on the GPU it is the flat buffer itself.
  const bool grad32 = mixed || stage >= 2 || !same_memory(opt_home, Tier::kAccel);
  if (grad32) {
    const Tier t = opt_home == Tier::kNvme && !in.offload_gradients_nvme ? Tier::kCpu : opt_home;
    r.add(t, "fp32 gradients" + part + (t == Tier::kCpu ? ", pinned" : ""), opt_numel * 4, true, block);
  }
  // A separate fp32 master copy unless the parameters are fp32 and live where
  // the optimizer runs (then they are the master).
  if (mixed || !same_memory(param_home, opt_home)) r.add(opt_home, "fp32 master weights" + part, opt_numel * 4, true, block);
  r.add(opt_home, "Adam moments m, v (fp32)" + part, opt_numel * 8, true, block);

  // --------------------------------------------------------------- buffers
  if (stage == 3) {
    r.add(Tier::kAccel, "gathered block parameters (current + prefetched)", 2 * L * bw, false, block);
    r.add(Tier::kAccel, "block gradients before reduce-scatter", L * bw, false, block);
  }
  if (stage >= 2)
    r.add(Tier::kAccel, "gradient reduce buckets (2, overlapped)", 2 * std::min(reduce_bucket, P) * bw, false,
          block);
  if (param_home == Tier::kNvme)
    r.add(Tier::kCpu, "parameter swap buffers, pinned (" + std::to_string(in.param_buffer_count) + " x " +
                          format_count(double(param_buffer)) + ")",
          in.param_buffer_count * param_buffer * bw, false, block);
  if (opt_home == Tier::kNvme) {
    const std::int64_t group = std::min(sub_group_size, opt_numel);
    const std::int64_t in_flight = std::min(kOptimizerSubGroupsInFlight, ceil_div(opt_numel, group));
    r.add(Tier::kCpu, "optimizer sub-group buffers, pinned (" + std::to_string(in_flight) + " x " +
                          format_count(double(group)) + " x 16 B)",
          in_flight * group * 16, false, block);
  }

  // ----------------------------------------------------------- activations
  // Stage 3 runs every block through the gather/recompute function, which
  // keeps only the block's input: checkpointing whatever the flag says.
  ActivationInputs ai{in.model, in.micro_batch, in.seq_len, bw, in.attention, in.activation_checkpointing || stage == 3};
  const ActivationBytes act = activation_bytes(ai);
  r.add(Tier::kAccel, std::string("activations (") + (ai.checkpointing ? "block inputs + one recomputed block" : "all blocks") + ")",
        act.blocks + act.recompute, false, block);
  r.add(Tier::kAccel, "LM head: logits, fp32 log-softmax and gradient", act.head, false, block);

  // ------------------------------------------------------ fixed overheads
  if (in.target == Target::kCuda) {
    r.add(Tier::kAccel, "CUDA context and LibTorch kernels", kCudaContextBytes, false, block);
    r.add(Tier::kCpu, "LibTorch runtime (host, CUDA build)", kHostRuntimeBytesCuda, false, block);
  } else {
    r.add(Tier::kCpu, "LibTorch runtime (host)", kHostRuntimeBytesCpu, false, block);
  }

  Need need;
  need.activations = act;
  if (in.target == Target::kCpu) {  // the CPU is the accelerator: its tier is host memory
    r.cpu.insert(r.cpu.begin(), r.accel.begin(), r.accel.end());
    r.model_state_cpu += r.model_state_accel;
    r.accel.clear();
    r.model_state_accel = 0;
  }
  need.gpu = r.accel;
  need.cpu = times(r.cpu, n);
  need.nvme = times(r.nvme, n);
  need.gpu_bytes = sum(need.gpu);
  need.cpu_bytes = sum(need.cpu);
  need.nvme_bytes = sum(need.nvme);
  need.model_state_gpu_bytes = r.model_state_accel;
  need.model_state_cpu_bytes = r.model_state_cpu * n;
  return need;
}

std::string describe_need(const Need& need, Target target) {
  std::string out;
  auto tier = [&](const std::string& title, std::int64_t total, const std::vector<Item>& items) {
    if (items.empty()) return;
    out += "  " + title + ": " + format_bytes(double(total)) + "\n";
    for (const auto& i : items) {
      std::string what = i.what;
      if (what.size() < 66) what.resize(66, ' ');
      out += "    " + what + " " + format_bytes(double(i.bytes)) + "\n";
    }
  };
  if (target == Target::kCuda) tier("GPU, per rank", need.gpu_bytes, need.gpu);
  tier("CPU memory, per node", need.cpu_bytes, need.cpu);
  tier("NVMe, per node", need.nvme_bytes, need.nvme);
  return out;
}

Estimate estimate(const Inputs& in) {
  check_inputs(in);
  Estimate e;
  e.inputs = in;
  e.largest_block_params = std::min(in.params, largest_block_params(in.model));
  for (const auto& o : standard_options()) e.rows.push_back({o, estimate_option(in, o)});
  return e;
}

}  // namespace zinf::plan
