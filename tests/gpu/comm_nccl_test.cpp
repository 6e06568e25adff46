// GPU: the NCCL communicator on CUDA tensors (world size 1 on a single-GPU
// host: the collectives must still run through NCCL and give exact values).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/torch.h>

#include "comm/communicator.h"
#include "support/test_util.h"

using namespace zinf::comm;

using zinf::test::free_port;


TEST_CASE("NCCL collectives on one GPU give exact values") {
  REQUIRE(torch::cuda::is_available());
  Rendezvous rdv;
  rdv.master_port = free_port();
  auto comm = Communicator::create(rdv, Backend::kNccl);
  const auto opts = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kBFloat16);
  at::Tensor x = torch::arange(0, 1024, opts);
  at::Tensor expected = x.clone();
  comm->all_reduce_sum(x);
  CHECK(torch::equal(x, expected));
  at::Tensor full = torch::empty({1024}, opts);
  comm->all_gather(x, full);
  CHECK(torch::equal(full, expected));
  at::Tensor shard = torch::empty({1024}, opts);
  comm->reduce_scatter_sum(full, shard);
  CHECK(torch::equal(shard, expected));
  comm->broadcast(shard, 0);
  comm->barrier();
  CHECK(torch::equal(shard, expected));
}
