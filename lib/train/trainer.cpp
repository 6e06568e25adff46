// zinf::train — the loop over flat buffers, stage none.
#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

#ifdef ZINF_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "data/sampler.h"
#include "data/token_file.h"
#include "hw/machine.h"
#include "log/log.h"
#include "model/gpt.h"
#include "optim/loss_scaler.h"
#include "optim/lr_schedule.h"
#include "train/adamw_flat.h"
#include "train/checkpoint.h"
#include "train/engine_report.h"
#include "train/metrics.h"
#include "train/zero_gpt.h"

namespace zinf::train {

using config::Precision;
using config::Settings;

// ------------------------------------------------------------ what is supported

void check_supported(const Settings& s) {
  // Gradients on NVMe feed the CPU optimizer: the engine runs them with an
  // offloaded optimizer only.
  if (s.offload_gradients_nvme && s.offload_optimizer.device == config::Device::kNone)
    throw UsageError("zinf.offload.gradients = nvme (--nvme-offload-gradients) needs the optimizer offloaded too",
                     "add --nvme-offload-optimizer (or use --zero-stage infinity), or drop --nvme-offload-gradients");
}

// Stage 3 (and any offload) trains through the ZeRO engine; stages 1 and 2
// without offload are stage none on one rank (one partition = everything).
bool uses_offload_engine(const Settings& s) {
  return s.zero_stage >= 3 || s.offload_optimizer.device != config::Device::kNone;
}

// ------------------------------------------------------------ helpers

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWarmupSteps = 2;  // steps left out of the mean tokens/s

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

torch::Device pick_device(const Settings& s) {
  if (s.device != "cuda") return torch::kCPU;
  if (!torch::cuda::is_available())
    throw Error("--device cuda was asked for, but " +
                    std::string(
#ifdef ZINF_WITH_CUDA
                        "no CUDA device is visible"
#else
                        "this zinf was built with a CPU-only LibTorch"
#endif
                        ),
                "use --device cpu, or run on a GPU host with a CUDA build of zinf", ExitCode::kUnusable);
  int index = 0;
  if (!s.gpus.empty() && s.gpus != "none" && s.gpus != "auto") index = std::stoi(s.gpus.substr(0, s.gpus.find(',')));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::int64_t peak_gpu_bytes(const torch::Device& d) {
#ifdef ZINF_WITH_CUDA
  if (d.is_cuda()) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index()).allocated_bytes[0].peak;
#endif
  return 0;
}

void reset_peak_gpu(const torch::Device& d) {
#ifdef ZINF_WITH_CUDA
  if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(d.index());
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

}  // namespace

// ------------------------------------------------------------ the parts

struct StepResult {
  double loss = 0;        // mean over the step's micro-batches, unscaled
  double grad_norm = 0;   // global L2 norm before clipping, unscaled
  double lr = 0;
  double loss_scale = 1;  // fp16: the scale this step used
  bool applied = true;    // false: fp16 overflow, step skipped
};

struct Trainer::Impl {
  Settings settings;
  torch::Device device = torch::kCPU;
  torch::Dtype dtype = torch::kFloat32;
  // data
  data::Tokens tokens;
  data::DataSplit split;
  std::unique_ptr<data::Sampler> sampler;
  // model and optimizer state
  std::unique_ptr<model::Gpt> model;
  torch::Tensor master;   // [numel] fp32 master weights (the model's own buffer in fp32)
  torch::Tensor grad32;   // [numel] fp32 gradient (the model's own buffer in fp32)
  std::unique_ptr<AdamWFlat> optimizer;
  optim::LrSchedule schedule;
  std::optional<optim::LossScaler> scaler;
  // outputs
  std::unique_ptr<ZeroGpt> zero;  // ZeRO-3 / offload runs: model, master, optimizer live in the engine
  std::unique_ptr<EngineReport> report;  // the engine's per-step and per-run fields
  std::unique_ptr<CheckpointDir> checkpoints;
  std::unique_ptr<MetricsLog> metrics;
  TrainerState state;

  explicit Impl(const Settings& s) : settings(s) {}
  void setup();
  void setup_engine();
  std::int64_t numel() const { return zero ? settings.model.parameter_count() : model->numel(); }
  torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) { return zero ? zero->loss(x, y) : model->loss(x, y); }
  bool resume();
  double evaluate();
  void save();
  StepResult train_step();
  StepResult engine_step();
  TrainResult loop(const std::atomic<bool>* stop);
  // The step's micro-batches as [grad_accum, rows, cols] inputs and targets
  // on the device: one copy per step, from pinned memory and asynchronous on
  // CUDA, so the GPU never waits for the host between micro-batches.
  std::pair<torch::Tensor, torch::Tensor> next_step_tokens() {
    const std::int64_t rows = settings.micro_batch, cols = settings.model.seq_len;
    const auto opts = torch::TensorOptions().dtype(torch::kInt64).pinned_memory(device.is_cuda());
    torch::Tensor in = torch::empty({settings.grad_accum, rows, cols}, opts), tg = torch::empty_like(in);
    const std::size_t bytes = std::size_t(rows * cols) * sizeof(std::int64_t);
    for (std::int64_t micro = 0; micro < settings.grad_accum; ++micro) {
      const data::Batch b = sampler->next(rows);
      std::memcpy(in[micro].data_ptr<std::int64_t>(), b.inputs.data(), bytes);
      std::memcpy(tg[micro].data_ptr<std::int64_t>(), b.targets.data(), bytes);
    }
    return {in.to(device, /*non_blocking=*/true), tg.to(device, /*non_blocking=*/true)};
  }
  torch::Tensor to_device(std::vector<std::int64_t>& v, std::int64_t rows, std::int64_t cols) const {
    return torch::from_blob(v.data(), {rows, cols}, torch::kInt64).to(device, torch::kInt64, /*non_blocking=*/false, /*copy=*/true);
  }
};

void Trainer::Impl::setup() {
  const Settings& s = settings;
  check_supported(s);
  device = pick_device(s);
  // LibTorch's CPU kernels lack fp16 for much of the model; bf16 works (slowly)
  // and runs the same master-weight code path as CUDA, which is how CI tests it.
  if (s.precision == Precision::kFp16 && !device.is_cuda())
    throw UsageError("--precision fp16 trains on CUDA only; on CPU zinf trains in fp32 (or bf16)",
                     "use --precision fp32 (or auto) with --device cpu");
  if (s.precision == Precision::kBf16 && !device.is_cuda())
    log::warn("--precision bf16 on CPU: bf16 parameters and activations with fp32 master weights; "
              "expect it to be slower than fp32 on most CPUs");
  dtype = s.precision == Precision::kBf16 ? torch::kBFloat16 : s.precision == Precision::kFp16 ? torch::kFloat16
                                                                                                : torch::kFloat32;
  // Output directory first: a bad path should fail before minutes of loading.
  fs::make_dirs(s.output_dir);
  checkpoints = std::make_unique<CheckpointDir>(s.output_dir + "/checkpoints", s.keep_checkpoints);

  tokens = data::load_tokens(s.dataset_file);
  data::check_vocab(tokens, s.model.vocab_size);
  split = data::split_tokens(tokens, s.val_fraction, s.model.seq_len);
  sampler = std::make_unique<data::Sampler>(tokens.ids, split.train, s.model.seq_len, std::uint64_t(s.seed), true);

  if (uses_offload_engine(s)) {
    setup_engine();
  } else {
  model = std::make_unique<model::Gpt>(model::GptOptions{s.model, dtype, device, s.activation_checkpointing});
  if (dtype == torch::kFloat32) {
    master = model->params();
    grad32 = model->grads();
  } else {
    master = torch::zeros({model->numel()}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    grad32 = torch::zeros_like(master);
  }
  {
    torch::NoGradGuard no_grad;
    master.copy_(model::Gpt::initial_weights(s.model, std::uint64_t(s.seed)));
  }
  if (dtype != torch::kFloat32) model->load_flat(master);
  optimizer = std::make_unique<AdamWFlat>(master, AdamWOptions{s.beta1, s.beta2, s.eps, s.weight_decay, s.adamw});
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
  if (s.precision == Precision::kFp16) {
    optim::LossScalerOptions o;
    o.fixed_scale = s.fp16_loss_scale;
    o.initial_scale_power = s.fp16_initial_scale_power;
    o.scale_window = s.fp16_loss_scale_window;
    o.hysteresis = s.fp16_hysteresis;
    o.min_scale = s.fp16_min_loss_scale;
    scaler.emplace(o);
  }
  state.seed = std::uint64_t(s.seed);
  state.dataset_tokens = std::int64_t(tokens.ids.size());
}

// ZeRO-3 / offload: the engine holds parameters, master weights and moments
// at their homes. An NVMe fallback is recorded in config.json, which then
// shows what really runs.
void Trainer::Impl::setup_engine() {
  const Settings& s = settings;
  const OffloadPlan plan = resolve_offload(s, device, dtype);
  if (plan.fell_back) {
    const std::string path = s.output_dir + "/config.json";
    config::Json cfg = fs::exists(path) ? config::Json::parse(fs::read_file(path)) : config::Json::object();
    auto& zo = cfg["zero_optimization"];
    for (const char* key : {"offload_param", "offload_optimizer"})
      if (zo.contains(key) && zo[key].is_object() && zo[key].value("device", "none") == "nvme") {
        zo[key]["device"] = "cpu";
        zo[key].erase("nvme_path");
      }
    cfg["zinf"]["offload"]["nvme_fallback"] = plan.reason;
    fs::write_file_atomic(path, cfg.dump(2) + "\n");
  }
  zero = std::make_unique<ZeroGpt>(s.model, model::Gpt::initial_weights(s.model, std::uint64_t(s.seed)), plan.engine);
  report = std::make_unique<EngineReport>(zero->engine());
  log::info(std::string("ZeRO engine: parameters on ") + offload::tier_name(plan.engine.param_home) +
            ", optimizer on " + offload::tier_name(plan.engine.optimizer_home) +
            (plan.engine.nvme_path.empty() ? "" : ", swap files in " + zero->engine().swap_dir()));
}

bool Trainer::Impl::resume() {
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
  const CheckpointInfo info = read_checkpoint_info(*latest);
  if (!same_dims(info.spec, settings.model))
    throw UsageError("checkpoint " + info.path + " is for a model with " + dims(info.spec) + ", this run asks for " +
                         dims(settings.model),
                     "resume with the model options of the run that wrote it");
  if (info.state.dataset_tokens != std::int64_t(tokens.ids.size()))
    throw UsageError("checkpoint " + info.path + " was trained on a dataset of " +
                         std::to_string(info.state.dataset_tokens) + " tokens, '" + tokens.path + "' has " +
                         std::to_string(tokens.ids.size()),
                     "resume with the same --dataset-file");
  if (info.state.seed != std::uint64_t(settings.seed))
    log::warn("--seed " + std::to_string(settings.seed) + " differs from the checkpoint's " +
              std::to_string(info.state.seed) + "; the checkpoint's data order is kept");
  std::vector<float> buf(static_cast<std::size_t>(info.numel));
  auto load = [&](torch::Tensor& dst, int which) {  // one tensor at a time through one host buffer
    float* ptrs[3] = {nullptr, nullptr, nullptr};
    ptrs[which] = buf.data();
    read_checkpoint_tensors(info, ptrs[0], ptrs[1], ptrs[2]);
    torch::NoGradGuard no_grad;
    dst.copy_(torch::from_blob(buf.data(), {info.numel}, torch::kFloat32));
  };
  if (zero) {
    zero::EngineState es;
    for (torch::Tensor* t : {&es.master, &es.exp_avg, &es.exp_avg_sq}) *t = torch::empty({info.numel}, torch::kFloat32);
    read_checkpoint_tensors(info, es.master.data_ptr<float>(), es.exp_avg.data_ptr<float>(),
                            es.exp_avg_sq.data_ptr<float>());
    es.step = info.state.adam_steps;
    zero->engine().load_state(es);
  } else {
  load(master, 0);
  load(optimizer->exp_avg(), 1);
  load(optimizer->exp_avg_sq(), 2);
  if (dtype != torch::kFloat32) model->load_flat(master);
  optimizer->set_step_count(info.state.adam_steps);
  }
  state = info.state;
  sampler = std::make_unique<data::Sampler>(tokens.ids, split.train, settings.model.seq_len, state.seed, true);
  sampler->restore(state.data);
  if (scaler && state.has_loss_scaler) scaler->restore(state.loss_scaler);
  log::info("resumed from " + info.path + " at step " + std::to_string(state.step));
  return true;
}

double Trainer::Impl::evaluate() {
  if (split.val.count == 0) return -1;
  torch::NoGradGuard no_grad;
  data::Sampler val(tokens.ids, split.val, settings.model.seq_len, 0, /*shuffle=*/false);
  torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  for (std::int64_t i = 0; i < settings.eval_batches; ++i) {
    data::Batch b = val.next(settings.micro_batch);
    total += loss(to_device(b.inputs, b.rows, b.cols), to_device(b.targets, b.rows, b.cols));
  }
  return total.item<double>() / double(settings.eval_batches);
}

void Trainer::Impl::save() {
  state.data = sampler->state();
  state.adam_steps = zero ? zero->engine().step_count() : optimizer->step_count();
  if (scaler) {
    state.has_loss_scaler = true;
    state.loss_scaler = scaler->state();
  }
  if (zero) {  // the full state, wherever it lives (NVMe is read back through the pipeline)
    const zero::EngineState es = zero->engine().state();
    checkpoints->save(state, settings.model, {es.master.data_ptr<float>(), es.exp_avg.data_ptr<float>(),
                                              es.exp_avg_sq.data_ptr<float>(), es.master.numel()});
    return;
  }
  const torch::Tensor p = master.to(torch::kCPU).contiguous();
  const torch::Tensor m = optimizer->exp_avg().to(torch::kCPU).contiguous();
  const torch::Tensor v = optimizer->exp_avg_sq().to(torch::kCPU).contiguous();
  checkpoints->save(state, settings.model, {p.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), p.numel()});
}

// One optimizer step: forward/backward over the step's micro-batches (grads
// summed in fp32), unscale, clip, AdamW on the fp32 master, refresh the
// low-precision copy. Reads the loss and the gradient norm back once.
// The step through the ZeRO engine: gradients flow to the engine block by
// block during backward; unscale, clip, the overflow check and the optimizer
// run inside engine().step().
StepResult Trainer::Impl::engine_step() {
  const Settings& s = settings;
  StepResult r;
  r.lr = schedule.lr_at(state.step);
  r.loss_scale = scaler ? scaler->scale() : 1.0;
  double loss_sum = 0;
  const auto [inputs, targets] = next_step_tokens();
  for (std::int64_t micro = 0; micro < s.grad_accum; ++micro) {
    const torch::Tensor loss = zero->loss(inputs[micro], targets[micro]);
    (loss * (r.loss_scale / double(s.grad_accum))).backward();
    loss_sum += loss.detach().item<double>();
  }
  const zero::StepResult z = zero->engine().step(r.lr, r.loss_scale, s.gradient_clipping);
  // The optimizer runs on while the next step starts; the run's last step
  // waits for it, so its time includes it.
  if (state.step + 1 == s.steps) zero->engine().synchronize();
  if (scaler) r.applied = scaler->update(z.skipped);
  r.loss = loss_sum / double(s.grad_accum);
  r.grad_norm = z.grad_norm;
  if (!scaler && z.skipped)
    throw Error("the gradient norm is " + std::to_string(r.grad_norm) + " at step " + std::to_string(state.step + 1) +
                    " (loss " + std::to_string(r.loss) + "): the run diverged",
                "lower --lr, keep --gradient-clipping on, or resume from the last checkpoint");
  return r;
}

StepResult Trainer::Impl::train_step() {
  if (zero) return engine_step();
  const Settings& s = settings;
  StepResult r;
  r.lr = schedule.lr_at(state.step);
  r.loss_scale = scaler ? scaler->scale() : 1.0;
  torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  const auto [inputs, targets] = next_step_tokens();
  for (std::int64_t micro = 0; micro < s.grad_accum; ++micro) {
    const torch::Tensor loss = model->loss(inputs[micro], targets[micro]);
    (loss * (r.loss_scale / double(s.grad_accum))).backward();
    torch::NoGradGuard no_grad;
    loss_sum += loss.detach();
    if (dtype != torch::kFloat32) {  // accumulate in fp32, one op per micro-batch
      if (micro == 0) grad32.copy_(model->grads());
      else grad32.add_(model->grads());
      model->zero_grads();
    }
  }
  torch::NoGradGuard no_grad;
  if (r.loss_scale != 1.0) grad32.mul_(1.0 / r.loss_scale);
  const torch::Tensor norm = grad32.norm();
  if (scaler) r.applied = scaler->update(!std::isfinite(norm.item<double>()));  // fp16 needs the answer now
  if (r.applied) {
    if (s.gradient_clipping > 0) grad32.mul_((s.gradient_clipping / (norm + 1e-6)).clamp_max(1.0));
    optimizer->step(grad32, r.lr);
    if (dtype != torch::kFloat32) model->load_flat(master);
  }
  if (dtype == torch::kFloat32) model->zero_grads();
  // One device-to-host copy per step: it also waits for the step's kernels.
  const torch::Tensor host = torch::stack({loss_sum / double(s.grad_accum), norm}).to(torch::kCPU);
  r.loss = host[0].item<double>();
  r.grad_norm = host[1].item<double>();
  if (!scaler && !std::isfinite(r.grad_norm))
    throw Error("the gradient norm is " + std::to_string(r.grad_norm) + " at step " + std::to_string(state.step + 1) +
                    " (loss " + std::to_string(r.loss) + "): the run diverged",
                "lower --lr, keep --gradient-clipping on, or resume from the last checkpoint");
  return r;
}

TrainResult Trainer::Impl::loop(const std::atomic<bool>* stop) {
  const Settings& s = settings;
  const std::int64_t tokens_per_step = s.micro_batch * s.grad_accum * s.model.seq_len;
  const double flops_per_token = model::flops_per_token(s.model);
  const std::int64_t first_step = state.step;
  reset_peak_gpu(device);
  log::info("training " + s.model.name + " (" + format_count(double(numel())) + " parameters, " +
            dims(s.model) + ") on " + device.str() + " in " + config::precision_name(s.precision) + ", " +
            std::to_string(tokens_per_step) + " tokens per step, steps " + std::to_string(first_step + 1) + ".." +
            std::to_string(s.steps));

  TrainResult result;
  double last_loss = NAN, last_val = -1, timed_s = 0, peak_tflops = 0;
  std::int64_t timed_tokens = 0, peak_gpu = 0;
  const auto run_start = Clock::now();
  while (state.step < s.steps) {
    const auto t0 = Clock::now();
    double untimed_s = 0;  // validation and checkpoint time in this iteration
    const StepResult r = train_step();
    last_loss = r.loss;
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

    double val = -1;
    const bool last = state.step == s.steps;
    if ((s.eval_every > 0 && state.step % s.eval_every == 0) || last) {
      const auto te = Clock::now();
      val = last_val = evaluate();
      untimed_s += seconds_since(te);
    }

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
                         {"nvme_read_bytes", 0},
                         {"nvme_write_bytes", 0}};
    if (report) report->add_step(line, dt);  // bytes per tier, GB/s, the step's timeline
    if (val >= 0) line["val_loss"] = val;
    if (scaler) {
      line["loss_scale"] = r.loss_scale;
      line["skipped"] = !r.applied;
    }
    metrics->append(line);
    const double eta = double(s.steps - state.step) * seconds_since(run_start) / double(state.step - first_step);
    report_progress({state.step, s.steps, r.loss, r.lr, tokens_per_s, eta, val, device.is_cuda() ? tflops : 0},
                    s.log_every);

    const bool stopping = stop && stop->load();
    if (s.save && ((s.save_every > 0 && state.step % s.save_every == 0) || last || stopping)) {
      const auto ts = Clock::now();
      save();
      untimed_s += seconds_since(ts);
    }
    if (timed) {
      timed_s += seconds_since(t0) - untimed_s;
      timed_tokens += tokens_per_step;
    }
    if (stopping) {
      finish_progress();
      log::warn("stopped by a signal after step " + std::to_string(state.step) +
                (s.save ? "; checkpoint saved, resume with --resume" : "; nothing saved (--no-save)"));
      result.interrupted = true;
      break;
    }
  }
  finish_progress();

  if (s.save) {
    const torch::Tensor weights = zero ? zero->engine().master_weights() : master.to(torch::kCPU).contiguous();
    write_model_safetensors(s.output_dir + "/model.safetensors", s.model, weights.data_ptr<float>());
  }
  const double mean_tps = timed_s > 0 ? double(timed_tokens) / timed_s : 0;
  result.steps = state.step;
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
                    {"wall_time_s", seconds_since(run_start)},
                    {"peak_rss_bytes", hw::peak_rss_bytes()},
                    {"peak_gpu_bytes", peak_gpu},
                    {"nvme_peak_bytes", 0},
                    {"nvme_read_bytes", 0},
                    {"nvme_write_bytes", 0}};
  if (report) report->add_summary(result.summary);
  fs::write_file_atomic(s.output_dir + "/summary.json", result.summary.dump(2) + "\n");
  return result;
}

// ------------------------------------------------------------ Trainer

Trainer::Trainer(const Settings& settings) : impl_(std::make_unique<Impl>(settings)) {}
Trainer::~Trainer() = default;

TrainResult Trainer::run(const std::atomic<bool>* stop) {
  Impl& t = *impl_;
  t.setup();
  const bool resumed = t.resume();
  t.metrics = std::make_unique<MetricsLog>(t.settings.output_dir + "/metrics.jsonl", resumed ? t.state.step : -1);
  return t.loop(stop);
}

}  // namespace zinf::train
