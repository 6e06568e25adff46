// zinf::launch — the rank environment of the current process.
// Implements: RankEnv (rank, world size, local rank, master address and port)
// read from torchrun-compatible variables (RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT) or, when those are
// absent, from Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID,
// SLURM_NTASKS_PER_NODE / SLURM_TASKS_PER_NODE, SLURM_NODEID, and the first
// host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST for MASTER_ADDR); validated
// with errors that name the variable, its value and the rule it broke.
// lib/comm reads this to rendezvous; `zinf launch` writes these variables.
#pragma once

#include <map>
#include <string>

namespace zinf::launch {

constexpr int kDefaultMasterPort = 29500;

enum class RankSource { kSingle, kTorchrun, kSlurm };

struct RankEnv {
  int rank = 0;                        // global rank, [0, world_size)
  int world_size = 1;                  // processes in the job
  int local_rank = 0;                  // rank on this node, [0, local_world_size)
  int local_world_size = 1;            // processes on this node
  int node_rank = 0;                   // GROUP_RANK / SLURM_NODEID
  std::string master_addr = "127.0.0.1";  // host of rank 0's rendezvous store
  int master_port = kDefaultMasterPort;   // TCP port of that store
  RankSource source = RankSource::kSingle;

  bool distributed() const { return world_size > 1; }
};

// "torchrun environment (RANK, WORLD_SIZE, ...)", "Slurm (SLURM_PROCID, ...)", "single process".
std::string describe(RankSource source);

using Environment = std::map<std::string, std::string>;

// This process's environment as a map.
Environment current_environment();

// Reads the rank environment from `env`. torchrun variables win when RANK or
// WORLD_SIZE is set (torchrun inside a Slurm allocation); else Slurm's when
// SLURM_PROCID is set; else a single process (rank 0 of 1). Throws UsageError
// naming the variable for a missing partner variable, a non-integer, a rank
// outside [0, world size), a port outside 1..65535.
RankEnv read_rank_env(const Environment& env);

// read_rank_env(current_environment()).
RankEnv current_rank_env();

// The first host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03",
// "a,b" -> "a", "node-[1,3]" -> "node-1". Throws UsageError on a malformed list.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace zinf::launch
