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
// model.safetensors and summary.json (config.json is the caller's); every
// rank writes its checkpoint shard under checkpoints/.
// The header stays free of LibTorch; the parts live in trainer.cpp.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "config/json.h"
#include "config/settings.h"

namespace zinf::comm {
class Communicator;
}

namespace zinf::train {

// Refuses, with a UsageError (exit code 2), what this build cannot train yet:
// --optimize and gradients on NVMe. The one place that decides it.
void check_supported(const config::Settings& settings);

// True when the run trains through the ZeRO/offload engine (train/zero_gpt.h):
// stage 3, or an offloaded optimizer (ZeRO-Offload on stages 1-2). Stages 0-2
// without offload run the data-parallel loop (train/data_parallel.h).
bool uses_offload_engine(const config::Settings& settings);

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
  TrainResult run(const std::atomic<bool>* stop = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zinf::train
