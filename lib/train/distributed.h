// zinf::train — joining the data-parallel group.
// Implements: join_group(), which picks this rank's device and creates its
// comm::Communicator (Gloo for --device cpu, NCCL for cuda) from the
// Rendezvous the app built from the rank environment; check_same_config(),
// which has rank 0 broadcast its resolved configuration so that every rank
// stops, before any training, when one was started differently; and
// first_difference(), the comparison behind it. Torch-free header: the app
// calls it with what it parsed.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "config/json.h"
#include "config/settings.h"

namespace zinf::comm {
class Communicator;
struct Rendezvous;
}  // namespace zinf::comm

namespace zinf::train {

// The CUDA device index of a rank: LOCAL_RANK when this process sees several
// GPUs (torchrun, srun), else 0 (`zinf launch --gpus` shows each rank only
// its own). Throws when LOCAL_RANK has no GPU of its own.
int cuda_device_for_rank(int local_rank);

// Selects this rank's CUDA device (for --device cuda) and connects to the
// group. Throws zinf::Error naming MASTER_ADDR:PORT when the peers do not all
// arrive within rdv.timeout.
std::unique_ptr<comm::Communicator> join_group(const config::Settings& settings, const comm::Rendezvous& rdv,
                                               int local_rank);

struct ConfigDifference {
  std::string path;       // "zero_optimization.stage"; "" for the root
  std::string reference;  // rank 0's value as JSON, or "(not set)"
  std::string ours;       // this rank's
};

// The first key path (in `reference`'s order, then keys only `ours` has)
// whose values differ; nullopt when the two are equal.
std::optional<ConfigDifference> first_difference(const config::Json& reference, const config::Json& ours);

// Collective: rank 0 broadcasts `resolved`; every other rank compares. When
// any rank differs, every rank throws the same UsageError: the lowest
// differing rank's first differing key path with both values, and the list
// of the ranks that differ.
void check_same_config(comm::Communicator& comm, const config::Json& resolved);

}  // namespace zinf::train
