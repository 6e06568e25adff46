// zinf::config — Settings from the resolved JSON.
#include "config/settings.h"

#include "config/model_keys.h"

namespace zinf::config {
namespace {

struct Reader {
  const Json& root;
  const Json& at(const std::string& path) const { return *find_path(root, path); }
  std::int64_t i(const std::string& path) const { return at(path).get<std::int64_t>(); }
  double d(const std::string& path) const { return at(path).get<double>(); }
  bool b(const std::string& path) const { return at(path).get<bool>(); }
  // Scheduler parameters are present only for the types that take them.
  double d_or(const std::string& path, double fallback) const {
    const Json* v = find_path(root, path);
    return v && v->is_number() ? v->get<double>() : fallback;
  }
  std::int64_t i_or(const std::string& path, std::int64_t fallback) const {
    const Json* v = find_path(root, path);
    return v && v->is_number() ? v->get<std::int64_t>() : fallback;
  }
  std::string s(const std::string& path) const {
    const Json* v = find_path(root, path);
    return v && v->is_string() ? v->get<std::string>() : std::string();
  }
};

Tier to_tier(const std::string& s) { return s == "cpu" ? Tier::kCpu : s == "nvme" ? Tier::kNvme : Tier::kDevice; }

}  // namespace

const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : p == Precision::kFp16 ? "fp16" : "fp32"; }

std::string Settings::swap_root() const {
  if (offload_param.device == Tier::kNvme && zero_stage >= 3 && !offload_param.nvme_path.empty())
    return offload_param.nvme_path;
  if (offload_optimizer.device == Tier::kNvme && !offload_optimizer.nvme_path.empty()) return offload_optimizer.nvme_path;
  return !offload_optimizer.nvme_path.empty() ? offload_optimizer.nvme_path : offload_param.nvme_path;
}

Settings settings_from(const Json& resolved) {
  const Reader r{resolved};
  Settings s;
  s.model = model_spec_of(resolved);
  // The catalogue name only while every dimension is the named model's.
  if (const auto named = find_model(r.s("zinf.model.name"))) {
    const ModelSpec& n = *named;
    const ModelSpec& m = s.model;
    if (n.vocab_size == m.vocab_size && n.seq_len == m.seq_len && n.hidden_size == m.hidden_size &&
        n.layers == m.layers && n.heads == m.heads && n.model_type == m.model_type &&
        n.kv_head_count() == m.kv_head_count() && n.ffn_size() == m.ffn_size() && n.head_size() == m.head_size() &&
        n.position_count() == m.position_count() && n.norm_eps == m.norm_eps && n.rope_theta == m.rope_theta &&
        n.tied_embeddings == m.tied_embeddings && n.attention_bias == m.attention_bias)
      s.model.name = n.name;
  }
  s.from_pretrained = r.s("zinf.model.from_pretrained");
  s.activation_checkpointing = r.b("zinf.model.activation_checkpointing");
  s.micro_batch = r.i("train_micro_batch_size_per_gpu");
  s.grad_accum = r.i("gradient_accumulation_steps");
  s.global_batch = r.i("train_batch_size");
  s.adamw = r.s("optimizer.type") == "AdamW" || r.b("optimizer.params.adam_w_mode");
  s.lr = r.d("optimizer.params.lr");
  s.beta1 = r.at("optimizer.params.betas")[0].get<double>();
  s.beta2 = r.at("optimizer.params.betas")[1].get<double>();
  s.eps = r.d("optimizer.params.eps");
  s.weight_decay = r.d("optimizer.params.weight_decay");
  s.weight_decay_all = r.s("zinf.optimizer.weight_decay_on") == "all";
  s.gradient_clipping = r.d("gradient_clipping");
  s.scheduler = r.s("scheduler.type");
  s.warmup_min_lr = r.d_or("scheduler.params.warmup_min_lr", 0);
  s.warmup_max_lr = r.d_or("scheduler.params.warmup_max_lr", s.lr);
  s.warmup_steps = r.i_or("scheduler.params.warmup_num_steps", 0);
  s.total_steps = r.i_or("scheduler.params.total_num_steps", 1);
  s.warmup_log = r.s("scheduler.params.warmup_type") == "log";
  s.warmup_min_ratio = r.d_or("scheduler.params.warmup_min_ratio", 0);
  s.cos_min_ratio = r.d_or("scheduler.params.cos_min_ratio", 1e-4);
  s.cycle_min_lr = r.d_or("scheduler.params.cycle_min_lr", 0);
  s.cycle_max_lr = r.d_or("scheduler.params.cycle_max_lr", 0);
  s.decay_lr_rate = r.d_or("scheduler.params.decay_lr_rate", 0);
  s.cycle_first_step_size = r.i_or("scheduler.params.cycle_first_step_size", 2000);
  s.cycle_second_step_size = r.i_or("scheduler.params.cycle_second_step_size", s.cycle_first_step_size);
  s.cycle_first_stair_count = r.i_or("scheduler.params.cycle_first_stair_count", 0);
  s.cycle_second_stair_count = r.i_or("scheduler.params.cycle_second_stair_count", s.cycle_first_stair_count);
  s.decay_step_size = r.i_or("scheduler.params.decay_step_size", 0);
  s.lr_range_min_lr = r.d_or("scheduler.params.lr_range_test_min_lr", 1e-3);
  s.lr_range_step_size = r.i_or("scheduler.params.lr_range_test_step_size", 2000);
  s.lr_range_step_rate = r.d_or("scheduler.params.lr_range_test_step_rate", 1.0);
  const Json* staircase = find_path(resolved, "scheduler.params.lr_range_test_staircase");
  s.lr_range_staircase = staircase && staircase->is_boolean() && staircase->get<bool>();
  s.precision = r.b("bf16.enabled") ? Precision::kBf16 : r.b("fp16.enabled") ? Precision::kFp16 : Precision::kFp32;
  s.fp16_loss_scale = r.d("fp16.loss_scale");
  s.fp16_initial_scale_power = static_cast<int>(r.i("fp16.initial_scale_power"));
  s.fp16_loss_scale_window = r.i("fp16.loss_scale_window");
  s.fp16_hysteresis = r.i("fp16.hysteresis");
  s.fp16_consecutive_hysteresis = r.b("fp16.consecutive_hysteresis");
  s.fp16_min_loss_scale = r.d("fp16.min_loss_scale");
  s.zero_stage = static_cast<int>(r.i("zero_optimization.stage"));
  for (auto [name, out] : {std::pair<const char*, OffloadSettings*>{"offload_param", &s.offload_param},
                           {"offload_optimizer", &s.offload_optimizer}}) {
    const std::string base = std::string("zero_optimization.") + name;
    out->device = to_tier(r.s(base + ".device"));
    out->nvme_path = r.s(base + ".nvme_path");
    out->pin_memory = r.b(base + ".pin_memory");
    out->buffer_count = r.i(base + ".buffer_count");
  }
  s.offload_param.buffer_size = r.i("zero_optimization.offload_param.buffer_size");
  s.offload_param.max_in_cpu = r.i("zero_optimization.offload_param.max_in_cpu");
  s.offload_gradients_nvme = r.s("zinf.offload.gradients") == "nvme";
  s.optimizer_max_in_cpu = r.i("zinf.offload.optimizer_max_in_cpu");
  s.sub_group_size = r.i("zero_optimization.sub_group_size");
  s.reduce_bucket_size = r.i("zero_optimization.reduce_bucket_size");
  s.allgather_bucket_size = r.i("zero_optimization.allgather_bucket_size");
  s.prefetch_bucket_size = r.i("zero_optimization.stage3_prefetch_bucket_size");
  s.overlap_comm = r.b("zero_optimization.overlap_comm");
  s.contiguous_gradients = r.b("zero_optimization.contiguous_gradients");
  s.strict_nvme = r.b("zinf.offload.strict_nvme");
  s.keep_swap_files = r.b("zinf.offload.keep_swap_files");
  s.checksums = r.b("zinf.offload.checksums");
  s.delayed_param_update = r.b("zinf.offload.delayed_param_update");
  if (const Json& v = r.at("zinf.offload.device_grad_accumulation"); v.is_boolean())
    s.device_grad_accumulation = v.get<bool>();  // else "auto": unset
  s.aio_block_size = r.i("aio.block_size");
  s.aio_queue_depth = r.i("aio.queue_depth");
  s.aio_thread_count = r.i("aio.thread_count");
  s.aio_single_submit = r.b("aio.single_submit");
  s.aio_overlap_events = r.b("aio.overlap_events");
  s.dataset_file = r.s("zinf.data.dataset_file");
  s.data_format = r.s("zinf.data.format");
  s.data_windows = r.s("zinf.data.windows");
  s.tokenizer = r.s("zinf.data.tokenizer");
  s.val_fraction = r.d("zinf.data.val_fraction");
  s.val_dataset_file = r.s("zinf.data.val_dataset_file");
  s.eval_every = r.i("zinf.data.eval_every");
  s.eval_batches = r.i("zinf.data.eval_batches");
  s.steps = r.i("zinf.train.steps");
  s.seed = r.i("zinf.train.seed");
  s.save_every = r.i("zinf.train.save_every");
  s.keep_checkpoints = r.i("zinf.train.keep_checkpoints");
  s.save = r.b("zinf.train.save");
  s.log_every = r.i("zinf.train.log_every");
  s.device = r.s("zinf.train.device");
  s.gpus = r.s("zinf.train.gpus");
  s.comm_timeout_s = r.i("zinf.train.comm_timeout");
  s.output_dir = r.s("zinf.train.output_dir");
  const auto monitor_dir = [&](const std::string& section, const char* fallback) -> std::string {
    if (!r.b(section + ".enabled")) return "";
    const std::string base = r.s(section + ".output_path");
    return (base.empty() ? s.output_dir + "/" + fallback : base) + "/" + r.s(section + ".job_name");
  };
  s.tensorboard_dir = r.s("zinf.train.tensorboard_dir");
  if (s.tensorboard_dir.empty()) s.tensorboard_dir = monitor_dir("tensorboard", "tensorboard");
  s.csv_monitor_dir = monitor_dir("csv_monitor", "csv_monitor");
  s.resume = r.b("zinf.train.resume");
  s.optimize = r.b("zinf.optimize");
  return s;
}

}  // namespace zinf::config
