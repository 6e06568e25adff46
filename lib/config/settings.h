// zinf::config — a typed view of the resolved configuration.
// Implements: Settings, the plain struct the engine reads (no JSON lookups in
// hot code), built once from the resolved JSON. Field names follow the JSON
// keys they come from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "config/json.h"
#include "core/model_spec.h"
#include "core/tier.h"

namespace zinf::config {

enum class Precision { kFp32, kBf16, kFp16 };

struct OffloadSettings {
  Tier device = Tier::kDevice;    // offload_*.device: "none" is the device
  std::string nvme_path;           // as configured, whatever the device (see Settings::swap_root)
  bool pin_memory = true;
  std::int64_t buffer_count = 0;
  std::int64_t buffer_size = 0;    // elements (offload_param only)
  std::int64_t max_in_cpu = 0;     // elements (offload_param only)
};

struct Settings {
  // model
  ModelSpec model;
  std::string from_pretrained;  // zinf.model.from_pretrained: HF model directory, "" = from random weights
  bool activation_checkpointing = false;
  // batch
  std::int64_t micro_batch = 1;    // samples per rank per forward
  std::int64_t grad_accum = 1;     // micro batches per optimizer step
  std::int64_t global_batch = 1;   // samples per optimizer step, all ranks
  // optimizer and schedule
  bool adamw = true;               // decoupled weight decay
  double lr = 3e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool weight_decay_all = false;   // zinf.optimizer.weight_decay_on "all"; else matrices only
  double gradient_clipping = 1.0;  // 0 = off
  std::string scheduler;           // WarmupLR | WarmupDecayLR | WarmupCosineLR | OneCycle | LRRangeTest
  double warmup_min_lr = 0, warmup_max_lr = 0, warmup_min_ratio = 0, cos_min_ratio = 0;
  std::int64_t warmup_steps = 0, total_steps = 0;
  bool warmup_log = false;         // warmup_type == "log"
  // OneCycle (beta1 is not cycled: zinf's Adam keeps it for the run)
  double cycle_min_lr = 0, cycle_max_lr = 0, decay_lr_rate = 0;
  std::int64_t cycle_first_step_size = 2000, cycle_second_step_size = 2000;  // steps
  std::int64_t cycle_first_stair_count = 0, cycle_second_stair_count = 0, decay_step_size = 0;
  // LRRangeTest
  double lr_range_min_lr = 1e-3, lr_range_step_rate = 1.0;
  std::int64_t lr_range_step_size = 2000;  // steps
  bool lr_range_staircase = false;
  // precision
  Precision precision = Precision::kFp32;
  double fp16_loss_scale = 0;      // 0 = dynamic
  int fp16_initial_scale_power = 16;
  std::int64_t fp16_loss_scale_window = 1000, fp16_hysteresis = 2;
  bool fp16_consecutive_hysteresis = false;
  double fp16_min_loss_scale = 1;
  // ZeRO
  int zero_stage = 0;
  OffloadSettings offload_param, offload_optimizer;
  bool offload_gradients_nvme = false;
  std::int64_t optimizer_max_in_cpu = 0;       // elements of NVMe optimizer state kept in CPU memory
  std::int64_t sub_group_size = 0;            // elements
  std::int64_t reduce_bucket_size = 0;        // elements
  std::int64_t allgather_bucket_size = 0;     // elements
  std::int64_t prefetch_bucket_size = 0;      // elements
  bool overlap_comm = true, contiguous_gradients = true;
  bool strict_nvme = false, keep_swap_files = false, checksums = true, delayed_param_update = false;
  // Micro-batches summed on the device (offloaded optimizer, grad_accum > 1);
  // unset: "auto", decided by the trainer from the estimate and the GPU.
  std::optional<bool> device_grad_accumulation;
  // aio
  std::int64_t aio_block_size = 1 << 20;      // bytes, multiple of 4096
  std::int64_t aio_queue_depth = 8;
  std::int64_t aio_thread_count = 1;
  bool aio_single_submit = false, aio_overlap_events = true;
  // data and loop
  std::string dataset_file;
  std::string data_format = "detect";  // zinf.data.format: detect, bytes, llmc, nanogpt
  std::string data_windows = "detect"; // zinf.data.windows: detect, stream, documents, packed
  std::string tokenizer;  // zinf.data.tokenizer: encodes text datasets; "" = bytes
  double val_fraction = 0.1;
  std::string val_dataset_file;  // zinf.data.val_dataset_file: "" = hold out val_fraction
  std::int64_t eval_every = 0, eval_batches = 4;
  std::int64_t steps = 1, seed = 0, save_every = 0, keep_checkpoints = 2, log_every = 1;
  std::string device;              // "cpu" | "cuda"
  std::string gpus;                // "0,1" or "none"
  std::int64_t comm_timeout_s = 600;  // seconds: rendezvous and each collective across ranks
  std::string output_dir;
  // Monitors, "" = off: TensorBoard events (zinf.train.tensorboard_dir, else
  // tensorboard.output_path/job_name when enabled, output_path "" meaning
  // <output_dir>/tensorboard) and DeepSpeed CSV files (csv_monitor, likewise).
  std::string tensorboard_dir, csv_monitor_dir;
  bool resume = false;
  bool save = true;                // checkpoints and the final model (model/)
  bool optimize = false;

  // The one directory the run's swap files go under: the parameters' nvme_path
  // when they are on NVMe, else the optimizer's when it is, else the
  // optimizer's or the parameters' configured path (what --optimize and the fit check measure); "" when
  // none is. The engine, the planner's hardware check and every command use it.
  std::string swap_root() const;
};

Settings settings_from(const Json& resolved);

const char* precision_name(Precision p);

}  // namespace zinf::config
