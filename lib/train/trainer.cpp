// zinf::train — the loop over flat buffers, on one rank or several.
#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <cstring>
#include <optional>
#include <sstream>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "comm/communicator.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "data/prepare.h"
#include "data/sampler.h"
#include "data/token_file.h"
#include "hw/machine.h"
#include "io/checksum.h"
#include "log/log.h"
#include "model/gpt.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "optim/adamw_tensor.h"
#include "train/checkpoint.h"
#include "train/engine_report.h"
#include "train/data_parallel.h"
#include "train/device.h"
#include "train/distributed.h"
#include "monitor/peak_flops.h"
#include "train/metrics.h"
#include "train/weight_source.h"
#include "train/zero_gpt.h"

namespace zinf::train {

using config::Precision;
using config::Settings;

// ------------------------------------------------------------ what is supported

void check_supported(const Settings& s) {
  // Gradients on NVMe feed the CPU optimizer: the engine runs them with an
  // offloaded optimizer only.
  if (s.offload_gradients_nvme && s.offload_optimizer.device == Tier::kDevice)
    throw UsageError("zinf.offload.gradients = nvme (--nvme-offload-gradients) needs the optimizer offloaded too",
                     "add --nvme-offload-optimizer (or use --zero-stage infinity), or drop --nvme-offload-gradients");
}

bool uses_offload_engine(const Settings& s) { return runs_on_zero_engine(s.zero_stage, s.offload_optimizer.device); }

// ------------------------------------------------------------ helpers

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWarmupSteps = 2;  // steps left out of the mean tokens/s

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::int64_t peak_gpu_bytes(const torch::Device& d) {
#ifdef ZINF_WITH_CUDA
  if (d.is_cuda()) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index()).allocated_bytes[0].peak;
#endif
  return 0;
}

void reset_peak_gpu(const torch::Device& d) {
#ifdef ZINF_WITH_CUDA
  if (d.is_cuda()) {
    // The caching allocator starts lazily, and LibTorch >= 2.8 refuses the
    // statistics of a device it has not allocated on yet ("Invalid device
    // argument"): an offloaded run may not have touched the GPU by now.
    (void)torch::empty({1}, torch::TensorOptions().device(d));
    c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
  }
#endif
}

bool same_dims(const ModelSpec& a, const ModelSpec& b) {
  return a.vocab_size == b.vocab_size && a.seq_len == b.seq_len && a.hidden_size == b.hidden_size &&
         a.layers == b.layers && a.heads == b.heads;
}

std::string dims(const ModelSpec& s) {
  return "vocab " + std::to_string(s.vocab_size) + ", seq-len " + std::to_string(s.seq_len) + ", hidden " +
         std::to_string(s.hidden_size) + ", layers " + std::to_string(s.layers) + ", heads " + std::to_string(s.heads);
}

// The line metrics.jsonl logged for `step`, or null.
config::Json logged_step(const std::string& metrics_file, std::int64_t step) {
  if (!fs::exists(metrics_file)) return nullptr;
  std::istringstream in(fs::read_file(metrics_file));
  for (std::string line; std::getline(in, line);) {
    const config::Json j = config::Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.contains("step") && j["step"] == step) return j;
  }
  return nullptr;
}

// Rows [first, first + rows) of a token batch as a [rows, cols] tensor on `device`.
torch::Tensor rows_on(const std::vector<std::int64_t>& v, std::int64_t first, std::int64_t rows, std::int64_t cols,
                      const torch::Device& device) {
  return torch::from_blob(const_cast<std::int64_t*>(v.data()) + first * cols, {rows, cols}, torch::kInt64)
      .to(device, torch::kInt64, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

// ------------------------------------------------------------ the parts

struct StepResult {
  double loss = 0;        // mean per trained target over the step's micro-batches and ranks, unscaled
  double grad_norm = 0;   // global L2 norm before clipping, unscaled
  double lr = 0;
  double loss_scale = 1;  // fp16: the scale this step used
  bool applied = true;    // false: fp16 overflow, step skipped
  bool stop = false;      // some rank was asked to stop (agreed by all ranks)
};

struct Trainer::Impl {
  Settings settings;
  comm::Communicator* comm = nullptr;  // nullptr: one rank
  int local_rank = 0;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  std::unique_ptr<RankGroup> group;    // the ranks, and where their collectives run
  // data
  data::Tokens tokens;
  std::optional<data::Tokens> val_tokens;  // --val-dataset-file; split.val then counts in it
  data::DataSplit split;
  data::Windows windows = data::Windows::kStream;  // zinf.data.windows, resolved against the data
  std::unique_ptr<data::Sampler> sampler;
  // model and optimizer state (stages 0-2: the model holds the parameters,
  // DataParallel this rank's master weights, gradient and moments)
  std::unique_ptr<model::Gpt> model;
  std::unique_ptr<DataParallel> dp;
  optim::LrSchedule schedule;
  std::optional<optim::LossScaler> scaler;
  // outputs
  std::unique_ptr<ZeroGpt> zero;  // ZeRO-3 / offload runs: model, master, optimizer live in the engine
  std::unique_ptr<EngineReport> report;  // the engine's per-step and per-run fields
  std::unique_ptr<CheckpointDir> checkpoints;
  std::unique_ptr<MetricsLog> metrics;
  TrainerState state;
  StartFacts start_facts;      // what setup decided, for ds_config.json
  // What the run is doing, for an out-of-memory error (plan::phase_name's words).
  const char* phase = "initialisation";

  Impl(const Settings& s, comm::Communicator* c, int local) : settings(s), comm(c), local_rank(local) {}
  void setup();
  void setup_engine();
  // Where the first weights come from: --from-pretrained, else the seed; a
  // run resuming a checkpoint loads them all from it, so reads nothing here
  // (an HF directory of a 7B model is 14 GB read for nothing).
  std::unique_ptr<WeightSource> first_weights() const {
    std::unique_ptr<WeightSource> w = settings.resume && checkpoints->latest() ? placeholder_weights()
                                      : settings.from_pretrained.empty()
                                          ? random_weights(settings.model, std::uint64_t(settings.seed))
                                          : pretrained_weights(settings.model, settings.from_pretrained);
    if (group->rank() == 0) log::info("weights: " + w->describe());
    return w;
  }
  int world() const { return group->size(); }
  bool leader() const { return group->rank() == 0; }  // writes metrics, summary and the model
  std::int64_t numel() const { return zero ? settings.model.parameter_count() : model->numel(); }
  // Summed over the targets that train (not kIgnoreTarget); callers divide by their count.
  // positions: packed rows (model::Gpt::forward), else undefined.
  torch::Tensor loss_sum(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& positions) {
    return zero ? zero->loss_sum(x, y, positions) : model->loss_sum(x, y, positions);
  }
  bool resume();
  double evaluate();
  void save();
  void write_model();
  StepResult train_step(bool stop_requested);
  StepResult engine_step(bool stop_requested);
  TrainResult loop(const std::atomic<bool>* stop);
  // The step's micro-batches as [grad_accum, rows, cols] inputs and targets
  // on the device: one copy per step, from pinned memory and asynchronous on
  // CUDA, so the GPU never waits for the host between micro-batches. Every
  // rank draws the whole global micro-batch (rows x ranks) and keeps its own
  // rows, so the sampler's state is the same on every rank and N ranks see
  // exactly the rows one rank with an N times larger micro-batch would; it
  // also counts the step's trained targets on every rank, over all ranks'
  // rows, without a collective: the loss is their sum over that count (the
  // mean per token of the global batch, as with unmasked data, when prompts
  // and padding make micro-batches differ in how many targets they train).
  struct StepTokens {
    torch::Tensor inputs, targets;
    torch::Tensor positions;  // packed windows: each token's position in its document; else undefined
    double trained = 0;  // targets that are not kIgnoreTarget, all ranks and micro-batches
    torch::Tensor positions_of(std::int64_t micro) const {
      return positions.defined() ? positions[micro] : torch::Tensor();
    }
  };
  StepTokens next_step_tokens() {
    const std::int64_t rows = settings.micro_batch, cols = settings.model.seq_len;
    const auto opts = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(device.is_cuda());
    const bool packed = windows == data::Windows::kPacked;
    torch::Tensor in = torch::empty({settings.grad_accum, rows, cols}, opts), tg = torch::empty_like(in);
    torch::Tensor pos = packed ? torch::empty_like(in) : torch::Tensor();
    const std::size_t bytes = std::size_t(rows * cols) * sizeof(std::int64_t);
    const std::size_t first = std::size_t(group->rank() * rows * cols);
    std::int64_t trained = 0;
    for (std::int64_t micro = 0; micro < settings.grad_accum; ++micro) {
      const data::Batch b = sampler->next(rows * world());
      std::memcpy(in[micro].data_ptr<std::int64_t>(), b.inputs.data() + first, bytes);
      std::memcpy(tg[micro].data_ptr<std::int64_t>(), b.targets.data() + first, bytes);
      if (packed) std::memcpy(pos[micro].data_ptr<std::int64_t>(), b.positions.data() + first, bytes);
      trained += data::trained_targets(b);
    }
    // A step whose every target is a prompt or padding trains nothing (loss 0).
    return {in.to(device, /*non_blocking=*/true), tg.to(device, /*non_blocking=*/true),
            packed ? pos.to(device, /*non_blocking=*/true) : pos, double(std::max<std::int64_t>(trained, 1))};
  }
  // The step's learning rate and loss scale.
  StepResult step_start() const {
    StepResult r;
    r.lr = schedule.lr_at(state.step);
    r.loss_scale = scaler ? scaler->scale() : 1.0;
    return r;
  }
  // Forward and backward over the step's micro-batches, each rank's loss sum
  // scaled so the ranks' gradients sum to the gradient of the global mean per
  // trained token; before(micro) and after(micro) run around each (the
  // engine marks the accumulation boundary, DataParallel accumulates).
  // Returns the sum of the micro-batches' losses, on the device.
  torch::Tensor forward_backward(const StepTokens& step, double loss_scale,
                                 const std::function<void(std::int64_t)>& before,
                                 const std::function<void(std::int64_t)>& after) {
    torch::Tensor sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    const double backward_scale = loss_scale / step.trained;
    phase = "forward/backward";
    for (std::int64_t micro = 0; micro < settings.grad_accum; ++micro) {
      if (before) before(micro);
      const torch::Tensor loss = loss_sum(step.inputs[micro], step.targets[micro], step.positions_of(micro));
      (loss * backward_scale).backward();
      torch::NoGradGuard no_grad;
      sum += loss.detach();
      if (after) after(micro);
    }
    return sum;
  }
  Error diverged(const StepResult& r) const {
    return Error("the gradient norm is " + std::to_string(r.grad_norm) + " at step " + std::to_string(state.step + 1) +
                     " (loss " + std::to_string(r.loss) + "): the run diverged",
                 "lower --lr, keep --gradient-clipping on, or resume from the last checkpoint");
  }
};

void Trainer::Impl::setup() {
  const Settings& s = settings;
  check_supported(s);
  device = pick_device(s, comm && comm->world_size() > 1, local_rank);
  group = std::make_unique<RankGroup>(comm, device);
  dtype = model_dtype(s, device);
  // Output directory first: a bad path should fail before minutes of loading.
  fs::make_dirs(s.output_dir);
  checkpoints = std::make_unique<CheckpointDir>(s.output_dir + "/checkpoints", s.keep_checkpoints,
                                                CheckpointGroup{group->rank(), world(), [this] { group->barrier(); }});

  const data::TokenFormat format = data::parse_token_format(s.data_format);
  tokens = data::load_dataset(s.dataset_file, format, s.tokenizer, s.model.vocab_size);
  data::check_vocab(tokens, s.model.vocab_size);
  const bool examples = tokens.has_prompts();
  windows = data::resolve_windows(s.data_windows, tokens);
  if (s.val_dataset_file.empty()) {
    split = data::split_tokens(tokens, s.val_fraction, s.model.seq_len, windows);
  } else {  // all of the training data trains; validation reads its own files
    split = data::split_tokens(tokens, 0.0, s.model.seq_len, windows);
    val_tokens.emplace(data::load_dataset(s.val_dataset_file, format, s.tokenizer, s.model.vocab_size));
    data::check_vocab(*val_tokens, s.model.vocab_size);
    split.val = data::split_tokens(*val_tokens, 0.0, s.model.seq_len, windows).train;
  }
  sampler = std::make_unique<data::Sampler>(tokens, split.train, s.model.seq_len, std::uint64_t(s.seed), true, windows);
  if (group->rank() == 0 && (examples || windows != data::Windows::kStream))
    log::info(std::string("data: ") + std::to_string(sampler->windows_per_epoch()) + " windows per epoch, cut by " +
              data::windows_name(windows) +
              (windows == data::Windows::kPacked
                   ? " (" + std::to_string(int(std::lround(100 * sampler->packed_fill()))) + "% of positions hold tokens)"
                   : std::string()) +
              (examples ? "; fine-tuning examples: the loss counts completion tokens only" : ""));
  if (group->rank() == 0 && sampler->truncated_documents() > 0)
    log::warn(std::to_string(sampler->truncated_documents()) + " fine-tuning examples are longer than seq_len + 1 = " +
              std::to_string(s.model.seq_len + 1) + " tokens: only their first " + std::to_string(s.model.seq_len + 1) +
              " are trained on (raise --seq-len to keep them whole)");

  const bool device_sums_asked = s.device_grad_accumulation.value_or(false);
  if (device_sums_asked && (s.grad_accum == 1 || s.offload_optimizer.device == Tier::kDevice))
    log::warn_once("train.device_grad_accumulation",
                   std::string("zinf.offload.device_grad_accumulation has no effect: ") +
                       (s.grad_accum == 1 ? "gradient_accumulation_steps is 1, nothing accumulates"
                                          : "the optimizer is not offloaded, so gradients add up on the device already"));
  else if (device_sums_asked && !device.is_cuda())
    log::warn_once("train.device_grad_accumulation",
                   "zinf.offload.device_grad_accumulation on a CPU run keeps a second fp32 gradient buffer in host "
                   "memory (4 bytes per parameter) for no speed-up; it is meant for GPUs");
  if (uses_offload_engine(s)) {
    setup_engine();
  } else {
    // Same seed, same first weights on every rank: nothing to broadcast.
    const ShardPlan plan(s.model.parameter_count(), world());
    model = std::make_unique<model::Gpt>(
        model::GptOptions{s.model, dtype, device, s.activation_checkpointing, plan.padded_numel(),
                          DataParallel::wants_flat_grads(s.zero_stage, world(), dtype)});
    dp = std::make_unique<DataParallel>(*model, *group, s.zero_stage, s.reduce_bucket_size,
                                        optim::AdamWOptions{s.beta1, s.beta2, s.eps, s.weight_decay, s.adamw,
                                                     weight_decay_exempt(s)});
    dp->init(*first_weights());
  }

  schedule.type = s.scheduler;
  schedule.base_lr = s.lr;
  schedule.warmup_min_lr = s.warmup_min_lr;
  schedule.warmup_max_lr = s.warmup_max_lr;
  schedule.warmup_steps = s.warmup_steps;
  schedule.total_steps = s.total_steps;
  schedule.log_warmup = s.warmup_log;
  schedule.warmup_min_ratio = s.warmup_min_ratio;
  schedule.cos_min_ratio = s.cos_min_ratio;
  schedule.cycle_min_lr = s.cycle_min_lr;
  schedule.cycle_max_lr = s.cycle_max_lr;
  schedule.decay_lr_rate = s.decay_lr_rate;
  schedule.cycle_first_step_size = s.cycle_first_step_size;
  schedule.cycle_second_step_size = s.cycle_second_step_size;
  schedule.cycle_first_stair_count = s.cycle_first_stair_count;
  schedule.cycle_second_stair_count = s.cycle_second_stair_count;
  schedule.decay_step_size = s.decay_step_size;
  schedule.range_min_lr = s.lr_range_min_lr;
  schedule.range_step_rate = s.lr_range_step_rate;
  schedule.range_step_size = s.lr_range_step_size;
  schedule.range_staircase = s.lr_range_staircase;
  if (s.precision == Precision::kFp16) {
    optim::LossScalerOptions o;
    o.fixed_scale = s.fp16_loss_scale;
    o.initial_scale_power = s.fp16_initial_scale_power;
    o.scale_window = s.fp16_loss_scale_window;
    o.hysteresis = s.fp16_hysteresis;
    o.consecutive_hysteresis = s.fp16_consecutive_hysteresis;
    o.min_scale = s.fp16_min_loss_scale;
    scaler.emplace(o);
  }
  state.seed = std::uint64_t(s.seed);
  state.dataset_tokens = tokens.size();
}

// ZeRO-3 / offload: the engine holds parameters, master weights and moments
// at their homes. An NVMe fallback and the "auto" device sums go into the
// StartFacts, so ds_config.json shows what really runs.
void Trainer::Impl::setup_engine() {
  const Settings& s = settings;
  OffloadPlan plan = resolve_offload(s, device, dtype, world());
  plan.engine.comm = comm;
  plan.engine.rank = group->rank();
  bool& sums = plan.engine.accumulate_on_device;
  if (plan.device_sums_auto && world() > 1) {
    // Every rank must send its gradients the same way: on only where all chose it.
    torch::Tensor on = torch::full({1}, sums ? 1.0 : 0.0, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    group->sum(on);
    const bool all = on.to(torch::kCPU).item<double>() == double(world());
    if (sums && !all) plan.device_sums_why = "another rank's GPU has no room for them";
    sums = all;
  }
  if (plan.device_sums_auto && !plan.device_sums_why.empty() && leader())
    log::info(std::string("device gradient sums (zinf.offload.device_grad_accumulation auto): ") + (sums ? "on" : "off") +
              ", " + plan.device_sums_why);
  // ds_config.json shows what really runs: the NVMe fallback and the "auto" choice.
  if (plan.fell_back) start_facts.nvme_fallback = plan.reason;
  if (plan.device_sums_auto) start_facts.device_grad_accumulation = sums;
  zero = std::make_unique<ZeroGpt>(s.model, *first_weights(), plan.engine);
  report = std::make_unique<EngineReport>(zero->engine());
  if (world() > 1) {
    // The ranks' owned ranges must tile the model (checkpoint shards rely on it).
    torch::Tensor owned = torch::full({1}, total_count(zero->engine().owned_ranges()),
                                      torch::TensorOptions().dtype(torch::kInt64).device(device));
    group->sum(owned);
    const std::int64_t total = owned.to(torch::kCPU).item<std::int64_t>();
    if (total != s.model.parameter_count())
      throw Error("the ZeRO engine's " + std::to_string(world()) + " ranks own " + std::to_string(total) +
                      " elements of the model's " + std::to_string(s.model.parameter_count()) +
                      ": their partitions do not tile the model",
                  "this is a bug in zinf; please report it with the run's ds_config.json");
  }
  log::info(std::string("ZeRO engine: parameters on ") + tier_label(plan.engine.param_home) +
            ", optimizer on " + tier_label(plan.engine.optimizer_home) +
            (plan.engine.nvme_path.empty() ? "" : ", swap files in " + zero->engine().swap_dir()));
}

bool Trainer::Impl::resume() {
  // What the data position counts in, recorded in every checkpoint and
  // compared with the checkpoint's on resume.
  // Document and packed windows are other samples than the stream's: part of the shape.
  const std::string sample = tokens.fingerprint_bytes() +
                             (windows == data::Windows::kStream ? "" : std::string("windows=") + data::windows_name(windows));
  const DataShape shape{tokens.path(), io::crc32c(sample.data(), sample.size()),
                        settings.micro_batch, settings.grad_accum, world()};
  state.shape = shape;
  const auto latest = checkpoints->latest();
  if (!settings.resume) {
    if (latest)
      throw UsageError("'" + settings.output_dir + "' already holds a run (checkpoints/latest names " + *latest + ")",
                       "add --resume to continue it, or choose another --output-dir");
    return false;
  }
  if (!latest) {
    log::warn("--resume: no checkpoint in " + checkpoints->dir() + " yet; starting from step 0");
    return false;
  }
  const CheckpointReader reader(*latest);
  const CheckpointInfo& info = reader.info();
  if (!same_dims(info.spec, settings.model))
    throw UsageError("checkpoint " + info.path + " is for a model with " + dims(info.spec) + ", this run asks for " +
                         dims(settings.model),
                     "resume with the model options of the run that wrote it");
  if (const auto differ = resume_mismatches(info.state, state); !differ.empty()) {
    std::string what;
    for (const auto& d : differ) what += "; " + d;
    throw UsageError("checkpoint " + info.path + " belongs to another run: " + what.substr(2),
                     "resume with the --dataset-file and batch options of the run that wrote it (another number of "
                     "ranks is fine when micro-batch x grad-accum x ranks stays the same), or train in a new "
                     "--output-dir");
  }
  if (info.state.seed != std::uint64_t(settings.seed))
    log::warn("--seed " + std::to_string(settings.seed) + " differs from the checkpoint's " +
              std::to_string(info.state.seed) + "; the checkpoint's data order is kept");
  // Each rank reads only what it holds, from whichever shards have it: the
  // world size that wrote the checkpoint does not matter.
  if (zero) zero->engine().load_state(reader.source(), info.state.adam_steps);
  else dp->load_state(reader.source(), info.state.adam_steps);
  state = info.state;
  state.shape = shape;
  sampler = std::make_unique<data::Sampler>(tokens, split.train, settings.model.seq_len, state.seed, true, windows);
  sampler->restore(state.data);
  if (scaler && state.has_loss_scaler) scaler->restore(state.loss_scaler);
  log::info("resumed from " + info.path + " at step " + std::to_string(state.step) +
            (info.world_size != world() ? " (written by " + std::to_string(info.world_size) +
                                              (info.world_size == 1 ? " rank" : " ranks") + ", re-sliced for " +
                                              std::to_string(world()) + ")"
                                        : std::string()));
  if (state.step >= settings.steps && leader())
    log::warn("checkpoint " + info.path + " is at step " + std::to_string(state.step) + " and --steps is " +
              std::to_string(settings.steps) + ": nothing to train (raise --steps to train on); summary.json is kept");
  return true;
}

// Each validation batch is a global micro-batch: every rank evaluates its
// rows (ZeRO-3 needs every rank in every forward) and one all-reduce sums
// the ranks' losses; the mean is over every trained target of the batches.
double Trainer::Impl::evaluate() {
  if (split.val.count == 0) return -1;
  torch::NoGradGuard no_grad;
  data::Sampler val(val_tokens ? *val_tokens : tokens, split.val, settings.model.seq_len, 0, /*shuffle=*/false,
                    windows);
  torch::Tensor total = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  const std::int64_t rows = settings.micro_batch, first = group->rank() * rows;
  std::int64_t trained = 0;
  for (std::int64_t i = 0; i < settings.eval_batches; ++i) {
    const data::Batch b = val.next(rows * world());
    total += loss_sum(rows_on(b.inputs, first, rows, b.cols, device), rows_on(b.targets, first, rows, b.cols, device),
                      b.positions.empty() ? torch::Tensor() : rows_on(b.positions, first, rows, b.cols, device));
    trained += data::trained_targets(b);
  }
  group->sum(total);
  return total.to(torch::kCPU).item<double>() / double(std::max<std::int64_t>(trained, 1));
}

void Trainer::Impl::save() {
  state.data = sampler->state();
  state.adam_steps = zero ? zero->engine().step_count() : dp->step_count();
  state.precision = config::precision_name(settings.precision);  // the export's default dtype
  if (scaler) {
    state.has_loss_scaler = true;
    state.loss_scaler = scaler->state();
  }
  // Each rank streams only what it holds, in its own buffers' pieces.
  ShardContent shard;
  if (zero) {
    shard.ranges = zero->engine().owned_ranges();
    shard.stream = [this](const StateSink& sink) { zero->engine().save_state(sink); };
  } else {
    shard.ranges = dp->owned_ranges();
    shard.stream = [this](const StateSink& sink) { dp->save_state(sink); };
  }
  checkpoints->save(state, settings.model, shard);
}

// The run's model, OUTPUT_DIR/model/: a Hugging Face model directory in the
// run's precision from the final checkpoint's shards, streamed whatever the
// world size; the same files `zinf export` writes from it. A resumed run
// replaces the one an earlier run wrote.
void Trainer::Impl::write_model() {
  const auto latest = checkpoints->latest();
  if (!latest) throw Error("no checkpoint in " + checkpoints->dir() + " to write the model from");
  ExportOptions options;
  options.dtype = config::precision_name(settings.precision);
  options.replace = true;
  export_checkpoint(*latest, settings.output_dir + "/model", options);
}

// The step through the ZeRO engine: gradients flow to the engine block by
// block during backward; the reduction across ranks, unscale, clip, the
// overflow check and the optimizer run inside engine().step().
StepResult Trainer::Impl::engine_step(bool stop_requested) {
  const Settings& s = settings;
  StepResult r = step_start();
  const StepTokens step = next_step_tokens();
  const torch::Tensor loss_sum = forward_backward(step, r.loss_scale, [this, &s](std::int64_t micro) {
    zero->engine().set_accumulation_boundary(micro + 1 == s.grad_accum);  // the norm is summed then
  }, {});
  phase = "optimizer step";
  const zero::StepResult z = zero->engine().step(r.lr, r.loss_scale, s.gradient_clipping);
  // The optimizer runs on while the next step starts; the run's last step
  // waits for it, so its time includes it.
  if (state.step + 1 == s.steps) zero->engine().synchronize();
  if (scaler) r.applied = scaler->update(z.skipped);
  // One all-reduce per step: the ranks' losses and whether any must stop.
  torch::Tensor stats = torch::stack({loss_sum, torch::full({}, stop_requested ? 1.0 : 0.0, loss_sum.options())});
  group->sum(stats);
  const torch::Tensor host = stats.to(torch::kCPU);
  r.loss = host[0].item<double>() / step.trained;
  r.stop = host[1].item<double>() > 0;
  r.grad_norm = z.grad_norm;
  if (!scaler && z.skipped) throw diverged(r);
  return r;
}

// One optimizer step of stages 0-2: forward/backward over the step's
// micro-batches (DataParallel accumulates, and for zero2 reduce-scatters,
// after each), the reduction across ranks, unscale, clip by the global norm,
// AdamW on this rank's part, parameters refreshed. Reads the loss and the
// gradient norm back once.
StepResult Trainer::Impl::train_step(bool stop_requested) {
  if (zero) return engine_step(stop_requested);
  const Settings& s = settings;
  StepResult r = step_start();
  const StepTokens step = next_step_tokens();
  const torch::Tensor loss_sum = forward_backward(step, r.loss_scale, {}, [this](std::int64_t) { dp->accumulate(); });
  torch::NoGradGuard no_grad;
  phase = "optimizer step";
  torch::Tensor& grad = dp->reduce();
  if (r.loss_scale != 1.0) grad.mul_(1.0 / r.loss_scale);
  // One all-reduce per step: the ranks' losses, their parts of the squared
  // gradient norm (so clipping and fp16 overflow agree on every rank), and
  // whether any rank must stop.
  torch::Tensor stats =
      torch::stack({loss_sum, dp->square_sum(grad), torch::full({}, stop_requested ? 1.0 : 0.0, loss_sum.options())});
  group->sum(stats);
  const torch::Tensor norm = stats[1].sqrt();
  if (scaler) r.applied = scaler->update(!std::isfinite(norm.item<double>()));  // fp16 needs the answer now
  if (r.applied) {
    if (s.gradient_clipping > 0) grad.mul_((s.gradient_clipping / (norm + 1e-6)).clamp_max(1.0));
    dp->step(grad, r.lr);
  }
  dp->zero_grads();
  // One device-to-host copy per step: it also waits for the step's kernels.
  const torch::Tensor host = torch::stack({stats[0], norm, stats[2]}).to(torch::kCPU);
  r.loss = host[0].item<double>() / step.trained;
  r.grad_norm = host[1].item<double>();
  r.stop = host[2].item<double>() > 0;
  if (!scaler && !std::isfinite(r.grad_norm)) throw diverged(r);
  return r;
}

TrainResult Trainer::Impl::loop(const std::atomic<bool>* stop) {
  const Settings& s = settings;
  const std::int64_t tokens_per_step = s.micro_batch * s.grad_accum * world() * s.model.seq_len;  // all ranks
  const double flops_per_token = model::flops_per_token(s.model);
  // MFU: the model's TFLOP/s over every rank's peak (the leader's device stands for all).
  const DevicePeak peak = leader() ? device_peak(device.is_cuda(), device.is_cuda() ? device.index() : 0,
                                                 config::precision_name(s.precision))
                                   : DevicePeak{};
  if (leader()) {
    char pk[32];
    std::snprintf(pk, sizeof pk, "%.4g", peak.tflops);
    log::info(std::string("MFU peak: ") + pk + " TFLOP/s per device (" + peak.source + ")");
  }
  const std::int64_t first_step = state.step;
  reset_peak_gpu(device);
  log::info("training " + s.model.name + " (" + format_count(double(numel())) + " parameters, " +
            dims(s.model) + ") on " + device.str() + " in " + config::precision_name(s.precision) + ", " +
            std::to_string(tokens_per_step) + " tokens per step, steps " + std::to_string(first_step + 1) + ".." +
            std::to_string(s.steps) +
            (world() > 1 ? ", " + std::to_string(world()) + " ranks" +
                               (zero ? std::string(" through the ZeRO engine")
                                     : dp->stage() == 0 ? std::string(", data parallel")
                                                        : ", ZeRO-" + std::to_string(dp->stage()) + " shards of " +
                                                              format_count(double(dp->master_numel())) + " elements")
                         : std::string()));

  TrainResult result;
  double last_loss = NAN, last_val = -1, timed_s = 0, peak_tflops = 0;
  std::int64_t timed_tokens = 0, peak_gpu = 0;
  const auto run_start = Clock::now();
  while (state.step < s.steps) {
    const auto t0 = Clock::now();
    double untimed_s = 0;  // validation and checkpoint time in this iteration
    const StepResult r = train_step(stop && stop->load());
    last_loss = r.loss;
    const std::int64_t done = state.step + 1;
    const bool last = done == s.steps;
    const bool evaluating = (s.eval_every > 0 && done % s.eval_every == 0) || last;
    // Agreed by every rank in the step's all-reduce: they all save and stop here.
    const bool stopping = r.stop;
    const bool saving = s.save && ((s.save_every > 0 && done % s.save_every == 0) || last || stopping);
    // A step followed by validation or a checkpoint finishes its own optimizer
    // work first, inside its time, so its bytes and timeline are its own and
    // what validation and the checkpoint move is left out of every step. The
    // checkpoint needs the updated weights (synchronize); validation waits
    // without swapping in a delayed update, so it cannot change training.
    if (zero && saving) zero->engine().synchronize();
    else if (zero && evaluating) zero->engine().drain();
    const double dt = seconds_since(t0);
    ++state.step;
    state.tokens_seen += tokens_per_step;
    const double tokens_per_s = double(tokens_per_step) / dt;
    const double tflops = flops_per_token * tokens_per_s / 1e12;
    // The run's mean counts whole iterations (bookkeeping included) except
    // validation and checkpoint writes, and leaves out the warmup steps.
    const bool timed = state.step - first_step > kWarmupSteps || s.steps - first_step <= kWarmupSteps;
    if (timed) peak_tflops = std::max(peak_tflops, tflops);
    peak_gpu = std::max(peak_gpu, peak_gpu_bytes(device));

    config::Json line = {{"step", state.step},
                         {"loss", last_loss},
                         {"lr", r.lr},
                         {"grad_norm", r.grad_norm},
                         {"tokens_per_s", tokens_per_s},
                         {"tflops", tflops},
                         {"step_time_s", dt},
                         {"tokens", state.tokens_seen},
                         {"peak_gpu_bytes", peak_gpu},
                         {"rss_bytes", hw::rss_bytes()},
                         {"peak_rss_bytes", hw::peak_rss_bytes()},
                         {"nvme_read_bytes", 0},
                         {"nvme_write_bytes", 0}};
    if (report) report->add_step(line, dt);
    double val = -1;
    if (evaluating) {
      const auto te = Clock::now();
      phase = "validation";
      val = last_val = evaluate();
      untimed_s += seconds_since(te);
      if (report) report->skip_untimed();
    }
    if (val >= 0) line["val_loss"] = val;
    if (scaler) {
      line["loss_scale"] = r.loss_scale;
      line["skipped"] = !r.applied;
    }
    if (leader()) {
      const double mfu = monitor::mfu(tflops, peak.tflops * world());
      line["mfu"] = mfu;
      line["peak_tflops"] = peak.tflops;
      line["peak_source"] = peak.source;
      metrics->append(line, state.step * s.global_batch);
      const double eta = double(s.steps - state.step) * seconds_since(run_start) / double(state.step - first_step);
      const auto bytes = [&line](const char* k) { return line.value(k, 0.0); };
      report_progress({state.step, s.steps, r.loss, r.lr, tokens_per_s, eta, val, device.is_cuda() ? tflops : 0, mfu,
                       bytes("h2d_bytes"), bytes("d2h_bytes"), bytes("nvme_read_bytes_step"),
                       bytes("nvme_write_bytes_step")},
                      s.log_every);
    }

    if (saving) {
      const auto ts = Clock::now();
      phase = "checkpoint";
      save();
      untimed_s += seconds_since(ts);
      if (report) report->skip_untimed();
    }
    if (timed) {
      timed_s += seconds_since(t0) - untimed_s;
      timed_tokens += tokens_per_step;
    }
    if (stopping) {
      if (leader()) {
        finish_progress();
        log::warn("stopped by a signal after step " + std::to_string(state.step) +
                  (s.save ? "; checkpoint saved, resume with --resume" : "; nothing saved (--no-save)"));
      }
      result.interrupted = true;
      break;
    }
  }
  if (leader()) {
    finish_progress();
    phase = "checkpoint";
    if (s.save) write_model();
  }
  const double mean_tps = timed_s > 0 ? double(timed_tokens) / timed_s : 0;
  result.steps = state.step;
  // A resume with nothing left to train keeps the finished run's summary;
  // without one, its final numbers come from the metrics of its last step.
  const std::string summary_file = s.output_dir + "/summary.json";
  if (state.step == first_step && first_step > 0 && first_step >= s.steps) {
    const config::Json kept = fs::exists(summary_file)
                                  ? config::Json::parse(fs::read_file(summary_file), nullptr, /*allow_exceptions=*/false)
                                  : config::Json();
    if (kept.contains("steps") && kept["steps"] == state.step && kept.contains("final_loss")) {
      result.summary = kept;
      return result;
    }
    const config::Json logged = logged_step(s.output_dir + "/metrics.jsonl", state.step);
    if (logged.contains("loss") && logged["loss"].is_number()) last_loss = logged["loss"].get<double>();
    if (logged.contains("val_loss") && logged["val_loss"].is_number()) last_val = logged["val_loss"].get<double>();
  }
  result.summary = {{"steps", state.step},
                    {"steps_this_run", state.step - first_step},
                    {"resumed_from_step", first_step},
                    {"interrupted", result.interrupted},
                    {"final_loss", std::isfinite(last_loss) ? config::Json(last_loss) : config::Json(nullptr)},
                    {"final_val_loss", last_val >= 0 ? config::Json(last_val) : config::Json(nullptr)},
                    {"mean_tokens_per_s", mean_tps},
                    {"mean_tflops", mean_tps * flops_per_token / 1e12},
                    {"peak_tflops", peak_tflops},
                    {"flops_per_token", flops_per_token},
                    {"tokens_per_step", tokens_per_step},
                    {"tokens_seen", state.tokens_seen},
                    {"parameters", numel()},
                    {"model", s.model.name},
                    {"device", device.str()},
                    {"precision", config::precision_name(s.precision)},
                    {"world_size", world()},
                    {"wall_time_s", seconds_since(run_start)},
                    {"peak_rss_bytes", hw::peak_rss_bytes()},
                    {"peak_gpu_bytes", peak_gpu},
                    {"nvme_peak_bytes", 0},
                    {"nvme_read_bytes", 0},
                    {"nvme_write_bytes", 0}};
  if (report) report->add_summary(result.summary);
  if (leader()) fs::write_file_atomic(s.output_dir + "/summary.json", result.summary.dump(2) + "\n");
  return result;
}

// ------------------------------------------------------------ Trainer

Trainer::Trainer(const Settings& settings, comm::Communicator* comm, int local_rank)
    : impl_(std::make_unique<Impl>(settings, comm, local_rank)) {}
Trainer::~Trainer() = default;

OutOfMemory::OutOfMemory(std::string tier, std::string phase, std::int64_t step, std::string detail)
    : Error("out of " + tier + " memory in the " + phase + (step > 0 ? " of step " + std::to_string(step) : "") +
                ": " + detail,
            "see `zinf estimate` for what fits this machine", ExitCode::kUnusable),
      tier_(std::move(tier)),
      phase_(std::move(phase)),
      step_(step),
      detail_(std::move(detail)) {}

namespace {

// LibTorch's message without the C++ backtrace it appends in some builds.
std::string torch_message(const c10::Error& e) {
  std::string m = e.what_without_backtrace();
  if (const auto cut = m.find("\nException raised from"); cut != std::string::npos) m.resize(cut);
  // "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: ...": the words after the check.
  if (m.rfind("[enforce fail at", 0) == 0)
    if (const auto end = m.find("] "); end != std::string::npos) m.erase(0, end + 2);
  if (m.rfind("err == 0. ", 0) == 0) m.erase(0, 10);
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// The first line of an allocator's message, which says how much it asked for.
std::string first_line(const std::string& m) { return m.substr(0, m.find('\n')); }

bool host_allocation_failed(const std::string& m) {
  return m.find("DefaultCPUAllocator") != std::string::npos || m.find("can't allocate memory") != std::string::npos ||
         m.find("not enough memory") != std::string::npos;
}

}  // namespace

TrainResult Trainer::run(const std::atomic<bool>* stop, const std::function<void(const StartFacts&)>& started) {
  Impl& t = *impl_;
  const auto step_now = [&t] { return t.phase == std::string("initialisation") ? std::int64_t{0} : t.state.step + 1; };
  try {
    t.setup();
    const bool resumed = t.resume();
    if (started) started(t.start_facts);
    if (t.leader())
      t.metrics = std::make_unique<MetricsLog>(t.settings.output_dir + "/metrics.jsonl", resumed ? t.state.step : -1,
                                               monitor::MonitorOptions{t.settings.tensorboard_dir,
                                                                       t.settings.csv_monitor_dir});
    return t.loop(stop);
  } catch (const c10::OutOfMemoryError& e) {
    const std::string m = torch_message(e);
    throw OutOfMemory(host_allocation_failed(m) ? "CPU" : "GPU", t.phase, step_now(), first_line(m));
  } catch (const std::bad_alloc&) {
    throw OutOfMemory("CPU", t.phase, step_now(), "an allocation of host memory failed (std::bad_alloc)");
  } catch (const c10::Error& e) {
    const std::string m = torch_message(e);
    if (host_allocation_failed(m)) throw OutOfMemory("CPU", t.phase, step_now(), first_line(m));
    throw Error("LibTorch failed in the " + std::string(t.phase) +
                    (step_now() > 0 ? " of step " + std::to_string(step_now()) : "") + ": " + m,
                "this is most likely a bug in zinf; please report it with the run's ds_config.json and this message");
  }
}

}  // namespace zinf::train
