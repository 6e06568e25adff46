// Tests: reading the rank environment from torchrun and Slurm variables.
#include <doctest/doctest.h>

#include "core/error.h"
#include "launch/rank_env.h"

using namespace zinf;
using launch::Environment;
using launch::RankSource;

namespace {
std::string error_of(const Environment& env) {
  try {
    launch::read_rank_env(env);
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("no rank variables means a single process, rank 0 of 1") {
  const auto e = launch::read_rank_env({{"HOME", "/root"}});
  CHECK(e.source == RankSource::kSingle);
  CHECK(e.rank == 0);
  CHECK(e.world_size == 1);
  CHECK(e.local_rank == 0);
  CHECK_FALSE(e.distributed());
  CHECK(e.master_port == 29500);
}

TEST_CASE("torchrun variables are read as given") {
  const auto e = launch::read_rank_env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                        {"LOCAL_WORLD_SIZE", "4"}, {"GROUP_RANK", "1"},
                                        {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "1234"}});
  CHECK(e.source == RankSource::kTorchrun);
  CHECK(e.rank == 5);
  CHECK(e.world_size == 8);
  CHECK(e.local_rank == 1);
  CHECK(e.local_world_size == 4);
  CHECK(e.node_rank == 1);
  CHECK(e.master_addr == "node0");
  CHECK(e.master_port == 1234);
  CHECK(e.distributed());
}

TEST_CASE("torchrun variables win over Slurm's inside an allocation") {
  const auto e = launch::read_rank_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"},
                                        {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  CHECK(e.source == RankSource::kTorchrun);
  CHECK(e.rank == 1);
}

TEST_CASE("rank at or past the world size is refused, naming both variables") {
  const std::string msg = error_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "x"}});
  CHECK(msg.find("RANK=2") != std::string::npos);
  CHECK(msg.find("WORLD_SIZE=2") != std::string::npos);
}

TEST_CASE("RANK without WORLD_SIZE names the missing variable") {
  CHECK(error_of({{"RANK", "0"}}).find("WORLD_SIZE is not set") != std::string::npos);
}

TEST_CASE("a non-integer rank variable is refused with its value") {
  const std::string msg = error_of({{"RANK", "one"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "x"}});
  CHECK(msg.find("RANK='one'") != std::string::npos);
  CHECK(error_of({{"RANK", "-1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "x"}}).find("RANK='-1'") != std::string::npos);
}

TEST_CASE("several ranks without MASTER_ADDR are refused") {
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("MASTER_ADDR is not set") != std::string::npos);
}

TEST_CASE("local rank must be below the local world size, and ports must be TCP ports") {
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}, {"MASTER_ADDR", "x"}})
            .find("LOCAL_RANK=2") != std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_WORLD_SIZE", "3"}, {"MASTER_ADDR", "x"}})
            .find("LOCAL_WORLD_SIZE=3") != std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_PORT", "70000"}}).find("MASTER_PORT=70000") !=
        std::string::npos);
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE=0") != std::string::npos);
}

TEST_CASE("Slurm variables give rank, world, local rank and the first node as master") {
  const auto e = launch::read_rank_env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "1"},
                                        {"SLURM_NTASKS_PER_NODE", "2"}, {"SLURM_NODEID", "1"},
                                        {"SLURM_JOB_NODELIST", "gpu[07-08]"}});
  CHECK(e.source == RankSource::kSlurm);
  CHECK(e.rank == 3);
  CHECK(e.world_size == 4);
  CHECK(e.local_rank == 1);
  CHECK(e.local_world_size == 2);
  CHECK(e.node_rank == 1);
  CHECK(e.master_addr == "gpu07");
  CHECK(e.master_port == 29500);
}

TEST_CASE("Slurm: the step node list wins over the job's, MASTER_ADDR over both") {
  Environment env = {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_NODELIST", "b1,b2"},
                     {"SLURM_JOB_NODELIST", "a[1-4]"}};
  CHECK(launch::read_rank_env(env).master_addr == "b1");
  env["MASTER_ADDR"] = "10.0.0.1";
  env["MASTER_PORT"] = "6000";
  CHECK(launch::read_rank_env(env).master_addr == "10.0.0.1");
  CHECK(launch::read_rank_env(env).master_port == 6000);
}

TEST_CASE("Slurm: SLURM_TASKS_PER_NODE gives this node's task count") {
  const auto e = launch::read_rank_env({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "7"}, {"SLURM_LOCALID", "0"},
                                        {"SLURM_NODEID", "3"}, {"SLURM_TASKS_PER_NODE", "2(x3),1"},
                                        {"SLURM_JOB_NODELIST", "n[1-4]"}});
  CHECK(e.local_world_size == 1);
  CHECK(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_TASKS_PER_NODE", "2(3)"},
                  {"SLURM_JOB_NODELIST", "n1"}})
            .find("SLURM_TASKS_PER_NODE") != std::string::npos);
}

TEST_CASE("Slurm: procid past the task count is refused naming the Slurm variables") {
  const std::string msg = error_of({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_NODELIST", "n1"}});
  CHECK(msg.find("SLURM_PROCID=4") != std::string::npos);
  CHECK(msg.find("SLURM_NTASKS=4") != std::string::npos);
}

TEST_CASE("Slurm with several tasks and no node list or MASTER_ADDR is refused") {
  CHECK(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}).find("MASTER_ADDR") != std::string::npos);
}

TEST_CASE("first host of a Slurm node list") {
  CHECK(launch::first_slurm_host("gpu[03-05,07],cpu1") == "gpu03");
  CHECK(launch::first_slurm_host("a,b") == "a");
  CHECK(launch::first_slurm_host("node-[1,3]") == "node-1");
  CHECK(launch::first_slurm_host("single") == "single");
  CHECK(launch::first_slurm_host("rack[2]-n[5-6]") == "rack2-n5");
  CHECK_THROWS_AS(launch::first_slurm_host("gpu[01-02"), Error);
  CHECK_THROWS_AS(launch::first_slurm_host("[1-2]"), Error);
  CHECK_THROWS_AS(launch::first_slurm_host(""), Error);
}
