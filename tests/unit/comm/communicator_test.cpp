// comm: real multi-process collectives over Gloo on loopback, and a clear
// time-out when the master is unreachable.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/torch.h>

#include <chrono>
#include <functional>

#include "comm/communicator.h"
#include "support/test_util.h"
#include "core/error.h"

using namespace zinf::comm;

using zinf::test::free_port;

namespace {

// Runs `body(rank)` in `world` forked processes; returns how many failed.
int run_ranks(int world, const std::function<bool(Communicator&)>& body) {
  if (!gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend (LibTorch's Gloo headers not found)");
    return 0;
  }
  const int port = free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      bool ok = false;
      try {
        Rendezvous rdv;
        rdv.rank = r;
        rdv.world_size = world;
        rdv.master_port = port;
        rdv.timeout = std::chrono::seconds(30);
        auto comm = Communicator::create(rdv, Backend::kGloo);
        ok = body(*comm);
        comm->barrier();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
      ::_exit(ok ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

}  // namespace

TEST_CASE("all-reduce, all-gather, reduce-scatter and broadcast give the right values on 3 ranks") {
  const int failed = run_ranks(3, [](Communicator& c) {
    const int r = c.rank(), w = c.world_size();
    // all-reduce: sum of (rank+1) * [1, 2, ..., 10]
    at::Tensor x = torch::arange(1, 11, torch::kFloat32) * float(r + 1);
    c.all_reduce_sum(x);
    bool ok = torch::allclose(x, torch::arange(1, 11, torch::kFloat32) * 6.0f);
    // all-gather: shard of rank r is [r*10 .. r*10+4]
    at::Tensor shard = torch::arange(0, 5, torch::kFloat32) + float(r * 10);
    at::Tensor full = torch::empty({5 * w});
    c.all_gather(shard, full);
    for (int k = 0; k < w; ++k) ok = ok && torch::equal(full.narrow(0, k * 5, 5), torch::arange(0, 5, torch::kFloat32) + float(k * 10));
    // reduce-scatter: every rank contributes ones * (rank+1); each shard is 6s
    at::Tensor contrib = torch::ones({4 * w}) * float(r + 1);
    at::Tensor mine = torch::empty({4});
    c.reduce_scatter_sum(contrib, mine);
    ok = ok && torch::allclose(mine, torch::full({4}, 6.0f));
    // broadcast from rank 2
    at::Tensor b = torch::full({3}, float(r));
    c.broadcast(b, 2);
    ok = ok && torch::allclose(b, torch::full({3}, 2.0f));
    return ok;
  });
  CHECK(failed == 0);
}

TEST_CASE("mismatched buffer sizes are a clear error, not a hang") {
  const int failed = run_ranks(2, [](Communicator& c) {
    at::Tensor shard = torch::zeros({3});
    at::Tensor full = torch::zeros({5});
    try {
      c.all_gather(shard, full);
    } catch (const zinf::Error& e) {
      return std::string(e.what()).find("5 elements, the shard 3 x 2 ranks") != std::string::npos;
    }
    return false;
  });
  CHECK(failed == 0);
}

TEST_CASE("an unreachable master times out with a message naming it") {
  if (!gloo_available()) {
    MESSAGE("skipped: no Gloo backend in this build");
    return;
  }
  Rendezvous rdv;
  rdv.rank = 1;
  rdv.world_size = 2;
  rdv.master_port = free_port();
  rdv.timeout = std::chrono::seconds(2);
  const auto start = std::chrono::steady_clock::now();
  std::string msg;
  try {
    Communicator::create(rdv, Backend::kGloo);
  } catch (const zinf::Error& e) {
    msg = std::string(e.what()) + " | " + e.hint();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(msg.find("rendezvous at 127.0.0.1:" + std::to_string(rdv.master_port)) != std::string::npos);
  CHECK(msg.find("MASTER_ADDR") != std::string::npos);
  CHECK(seconds < 20);
}

TEST_CASE("a rank outside the world is refused") {
  Rendezvous rdv;
  rdv.rank = 2;
  rdv.world_size = 2;
  CHECK_THROWS_AS(Communicator::create(rdv, Backend::kGloo), zinf::Error);
}
