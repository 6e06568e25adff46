// zinf::comm — collectives over data-parallel ranks.
// Implements: Communicator, one process group (Gloo for CPU tensors, NCCL for
// CUDA tensors, both through LibTorch's c10d) created from a TCP rendezvous,
// with the four collectives ZeRO needs on flat buffers: all-reduce (sum),
// all-gather into one flat buffer, reduce-scatter (sum) of a flat buffer into
// this rank's shard, broadcast; plus barrier. Every call is synchronous from the
// caller's view; errors and time-outs become zinf::Error naming the peer setup.
// Never touches the environment: the launcher/app passes the Rendezvous.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <string>

namespace zinf::comm {

enum class Backend { kGloo, kNccl };

struct Rendezvous {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};  // connect + each collective
};

class Communicator {
 public:
  // Connects to (rank 0: hosts) the TCP store at master_addr:master_port and
  // creates the process group. Throws zinf::Error when the master cannot be
  // reached within the timeout, or the port cannot be bound.
  static std::unique_ptr<Communicator> create(const Rendezvous& rdv, Backend backend);
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual Backend backend() const = 0;

  // flat <- sum over ranks of flat.
  virtual void all_reduce_sum(at::Tensor& flat) = 0;
  // full[r*n : (r+1)*n] <- shard of rank r; full.numel() == world * shard.numel().
  virtual void all_gather(const at::Tensor& shard, at::Tensor& full) = 0;
  // shard <- (sum over ranks of full)[rank*n : (rank+1)*n]; full.numel() == world * n.
  virtual void reduce_scatter_sum(const at::Tensor& full, at::Tensor& shard) = 0;
  // flat <- root's flat.
  virtual void broadcast(at::Tensor& flat, int root) = 0;
  virtual void barrier() = 0;
};

const char* backend_name(Backend b);

// True when this build can create Gloo (CPU) process groups.
bool gloo_available();

}  // namespace zinf::comm
