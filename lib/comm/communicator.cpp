// zinf::comm — Communicator on c10d (TCPStore + ProcessGroupGloo / ProcessGroupNCCL).
#include "comm/communicator.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifdef ZINF_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef ZINF_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "core/error.h"

namespace zinf::comm {
namespace {

// LibTorch 2.0 split ProcessGroup into a dispatcher and per-device Backends;
// ProcessGroupGloo/NCCL derive from Backend since then, from ProcessGroup before.
#if TORCH_VERSION_MAJOR >= 2
using GroupBase = ::c10d::Backend;
#else
using GroupBase = ::c10d::ProcessGroup;
#endif

std::string where(const Rendezvous& r) {
  return r.master_addr + ":" + std::to_string(r.master_port) + " (rank " + std::to_string(r.rank) + " of " +
         std::to_string(r.world_size) + ")";
}

template <class Fn>
void checked(const char* what, const Rendezvous& r, Fn fn) {
  try {
    fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    throw Error(std::string(what) + " failed at " + where(r) + ": " + msg,
                "a peer rank may have died or timed out; check every rank's log");
  }
}

class C10dCommunicator final : public Communicator {
 public:
  C10dCommunicator(const Rendezvous& rdv, Backend backend) : rdv_(rdv), backend_(backend) {
    if (rdv.world_size < 1 || rdv.rank < 0 || rdv.rank >= rdv.world_size)
      throw UsageError("invalid rank " + std::to_string(rdv.rank) + " for world size " +
                           std::to_string(rdv.world_size),
                       "RANK must be in [0, WORLD_SIZE)");
    try {
      ::c10d::TCPStoreOptions opts;
      opts.port = static_cast<std::uint16_t>(rdv.master_port);
      opts.isServer = rdv.rank == 0;
      opts.numWorkers = static_cast<std::size_t>(rdv.world_size);
      opts.waitWorkers = true;
      opts.timeout = rdv.timeout;
      store_ = c10::make_intrusive<::c10d::TCPStore>(rdv.master_addr, opts);
    } catch (const std::exception& e) {
      std::string msg = e.what();
      msg = msg.substr(0, msg.find('\n'));
      throw Error("rendezvous at " + where(rdv) + " failed: " + msg,
                  rdv.rank == 0 ? "is MASTER_PORT free on this host? pick another with --master-port"
                                : "is MASTER_ADDR reachable and rank 0 running? it must start within the timeout (" +
                                      std::to_string(rdv.timeout.count() / 1000) + " s)");
    }
    auto prefixed = c10::make_intrusive<::c10d::PrefixStore>("zinf", store_);
    checked("creating the process group", rdv, [&] {
      if (backend == Backend::kGloo) {
#ifdef ZINF_WITH_GLOO
        auto options = ::c10d::ProcessGroupGloo::Options::create();
        options->timeout = rdv.timeout;
        options->devices.push_back(::c10d::ProcessGroupGloo::createDefaultDevice());
        group_ = c10::make_intrusive<::c10d::ProcessGroupGloo>(prefixed, rdv.rank, rdv.world_size, options);
#else
        throw UsageError("this build of zinf has no Gloo backend (LibTorch's Gloo headers were not found)",
                         "install libgloo-dev (Debian) and rebuild, or run on GPUs with NCCL");
#endif
      } else {
#ifdef ZINF_WITH_NCCL
        auto options = ::c10d::ProcessGroupNCCL::Options::create();
        options->timeout = rdv.timeout;
        group_ = c10::make_intrusive<::c10d::ProcessGroupNCCL>(prefixed, rdv.rank, rdv.world_size, options);
#else
        throw UsageError("the NCCL backend needs a CUDA build of zinf", "use the Gloo backend on CPU");
#endif
      }
    });
  }

  int rank() const override { return rdv_.rank; }
  int world_size() const override { return rdv_.world_size; }
  Backend backend() const override { return backend_; }

  void all_reduce_sum(at::Tensor& flat) override {
    checked("all_reduce", rdv_, [&] {
      std::vector<at::Tensor> tensors{flat};
      group_->allreduce(tensors)->wait();
    });
  }

  void all_gather(const at::Tensor& shard, at::Tensor& full) override {
    check_sizes("all_gather", shard, full);
    checked("all_gather", rdv_, [&] {
      // Outputs are views into `full`, so the gathered shards land in place.
      std::vector<at::Tensor> outputs;
      const int64_t n = shard.numel();
      for (int r = 0; r < rdv_.world_size; ++r) outputs.push_back(full.narrow(0, r * n, n));
      std::vector<std::vector<at::Tensor>> out{outputs};
      std::vector<at::Tensor> in{shard};
      group_->allgather(out, in)->wait();
    });
  }

  void reduce_scatter_sum(const at::Tensor& full, at::Tensor& shard) override {
    check_sizes("reduce_scatter", shard, full);
    const int64_t n = shard.numel();
    checked("reduce_scatter", rdv_, [&] {
      if (backend_ == Backend::kGloo) {
        // Gloo has no reduce-scatter: all-reduce a copy and keep our slice.
        // Twice the traffic of a true reduce-scatter; CPU runs are for tests.
        at::Tensor sum = full.clone();
        std::vector<at::Tensor> tensors{sum};
        group_->allreduce(tensors)->wait();
        shard.copy_(sum.narrow(0, rdv_.rank * n, n));
      } else {
        std::vector<at::Tensor> inputs;
        for (int r = 0; r < rdv_.world_size; ++r) inputs.push_back(full.narrow(0, r * n, n));
        std::vector<std::vector<at::Tensor>> in{inputs};
        std::vector<at::Tensor> out{shard};
        group_->reduce_scatter(out, in)->wait();
      }
    });
  }

  void broadcast(at::Tensor& flat, int root) override {
    checked("broadcast", rdv_, [&] {
      std::vector<at::Tensor> tensors{flat};
      ::c10d::BroadcastOptions opts;
      opts.rootRank = root;
      group_->broadcast(tensors, opts)->wait();
    });
  }

  void barrier() override {
    checked("barrier", rdv_, [&] { group_->barrier()->wait(); });
  }

 private:
  void check_sizes(const char* what, const at::Tensor& shard, const at::Tensor& full) const {
    if (full.numel() != shard.numel() * rdv_.world_size || !full.is_contiguous() || !shard.is_contiguous())
      throw Error(std::string(what) + ": the full buffer has " + std::to_string(full.numel()) +
                      " elements, the shard " + std::to_string(shard.numel()) + " x " +
                      std::to_string(rdv_.world_size) + " ranks; both must be contiguous",
                  "pad flat buffers to a multiple of the world size");
  }

  Rendezvous rdv_;
  Backend backend_;
  c10::intrusive_ptr<::c10d::Store> store_;
  c10::intrusive_ptr<GroupBase> group_;
};

}  // namespace

bool gloo_available() {
#ifdef ZINF_WITH_GLOO
  return true;
#else
  return false;
#endif
}

const char* backend_name(Backend b) { return b == Backend::kNccl ? "nccl" : "gloo"; }

std::unique_ptr<Communicator> Communicator::create(const Rendezvous& rdv, Backend backend) {
  return std::make_unique<C10dCommunicator>(rdv, backend);
}

}  // namespace zinf::comm
