// zinf::train — the training loop.
// Implements: Trainer, which composes its parts — the token data and a
// resumable sampler (lib/data), the block-structured GPT over flat buffers
// (lib/model), its fp32 master weights, gradient and flat AdamW, whole or
// sharded across ranks (train/data_parallel.h) or in the ZeRO engine
// (train/zero_gpt.h), the LR schedule and fp16 loss scaler (lib/optim), checkpoints
// (train/checkpoint.h) and metrics (train/metrics.h) — and runs
// steps: accumulate micro-batches, unscale, clip, step, log, evaluate, save.
// Precision: fp32 on CPU; on CUDA bf16 (or fp16 with dynamic loss scaling)
// parameters, activations and gradients with fp32 master weights and moments.
// Several ranks (a comm::Communicator from train/distributed.h): every rank
// draws the same global batch and keeps its slice, gradients and optimizer
// states are partitioned by stage (train/data_parallel.h, or the engine for
// stage 3 / offload), checkpoints are sharded by rank.
// Outputs under settings.output_dir, from rank 0 only: metrics.jsonl,
// model/ (a Hugging Face model directory) and summary.json (ds_config.json is the caller's, written
// from the StartFacts once the run has started); every
// rank writes its checkpoint shard under checkpoints/.
// The header stays free of LibTorch; the parts live in trainer.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "config/json.h"
#include "config/settings.h"
#include "core/error.h"

namespace zinf::comm {
class Communicator;
}

namespace zinf::train {

// Refuses, with a UsageError (exit code 2), what the engine cannot train:
// gradients on NVMe without an offloaded optimizer. The one place that decides it.
void check_supported(const config::Settings& settings);

// True when the run trains through the ZeRO/offload engine (train/zero_gpt.h):
// stage 3, or an offloaded optimizer (ZeRO-Offload on stages 1-2). Stages 0-2
// without offload run the data-parallel loop (train/data_parallel.h).
bool uses_offload_engine(const config::Settings& settings);

// What the trainer decided at start that the configuration left open, for the
// caller to record in ds_config.json before the first step.
struct StartFacts {
  std::optional<std::string> nvme_fallback;             // why NVMe offload became CPU offload
  std::optional<bool> device_grad_accumulation;         // the engine's choice on "auto"
};

// An allocation failed: GPU memory, or host memory (LibTorch's allocator or
// std::bad_alloc). Thrown by Trainer::run in place of LibTorch's error; the
// caller, which has the planner's estimate, says what to change.
class OutOfMemory : public Error {
 public:
  OutOfMemory(std::string tier, std::string phase, std::int64_t step, std::string detail);
  const std::string& tier() const { return tier_; }    // "GPU" or "CPU"
  const std::string& phase() const { return phase_; }  // as plan::phase_name says it ("optimizer step")
  std::int64_t step() const { return step_; }          // the step being run (1-based; 0 at start)
  const std::string& detail() const { return detail_; }  // the allocator's words, without a backtrace

 private:
  std::string tier_, phase_;
  std::int64_t step_ = 0;
  std::string detail_;
};

struct TrainResult {
  bool interrupted = false;   // stopped by SIGINT/SIGTERM after saving
  std::int64_t steps = 0;     // optimizer steps completed (in total, resumed ones included)
  config::Json summary;       // what summary.json holds
};

class Trainer {
 public:
  // comm: the data-parallel group this process is one rank of (caller-owned,
  // outliving the trainer), or nullptr for a single process. local_rank
  // picks the GPU when the process sees several (train/distributed.h).
  explicit Trainer(const config::Settings& settings, comm::Communicator* comm = nullptr, int local_rank = 0);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs to settings.steps (or until *stop turns true after a step).
  // `started` runs on every rank once the model, data and engine are set up
  // (and a checkpoint resumed), before the first step. Throws OutOfMemory when
  // an allocation fails, and zinf::Error (never a LibTorch backtrace) for
  // LibTorch's other errors.
  TrainResult run(const std::atomic<bool>* stop = nullptr,
                  const std::function<void(const StartFacts&)>& started = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zinf::train
