// Tests: turning `zinf launch` flags into child processes, environments and
// ssh command lines.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include "core/error.h"
#include "launch/plan.h"
#include "support/test_util.h"

using namespace zinf;
using launch::LaunchContext;
using launch::LaunchRequest;

namespace {

// A PATH directory holding an executable `ssh`, so plans that start other
// nodes over ssh can be built on hosts without an ssh client (the GPU host).
const std::string& fake_ssh_dir() {
  static const std::string dir = [] {
    static test::TempDir holder("zinf-fake-ssh");
    test::write_text(holder.file("ssh"), "#!/bin/sh\nexit 0\n");
    ::chmod(holder.file("ssh").c_str(), 0755);
    return holder.path();
  }();
  return dir;
}

LaunchContext context(int gpus = 0) {
  LaunchContext ctx;
  ctx.visible_gpus = gpus;
  ctx.self_exe = "/opt/zinf/bin/zinf";
  ctx.subcommands = {"config", "report", "train", "launch"};
  ctx.cwd = "/home/u/run 1";
  ctx.env = {{"PATH", "/usr/bin:/bin:" + fake_ssh_dir()}, {"HOME", "/home/u"}, {"NCCL_DEBUG", "INFO"}, {"SECRET", "x"}};
  ctx.cpu_cores = 8;
  return ctx;
}

LaunchRequest request(std::vector<std::string> command = {"/bin/sh", "-c", "true"}) {
  LaunchRequest r;
  r.command = std::move(command);
  return r;
}

std::string usage_error(const LaunchRequest& r, const LaunchContext& ctx) {
  try {
    launch::make_plan(r, ctx);
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::kUsage);
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("--nproc 2 gives two CPU ranks with the torchrun variables") {
  LaunchRequest r = request();
  r.nproc = 2;
  r.nproc_given = true;
  const auto plan = launch::make_plan(r, context());
  REQUIRE(plan.children.size() == 2);
  CHECK(plan.world_size == 2);
  CHECK_FALSE(plan.gpu_mode);
  CHECK(plan.check_port);
  for (int i = 0; i < 2; ++i) {
    const auto& c = plan.children[i];
    CHECK(c.rank == i);
    CHECK(c.prefix == "[rank " + std::to_string(i) + "] ");
    CHECK(c.env.at("RANK") == std::to_string(i));
    CHECK(c.env.at("LOCAL_RANK") == std::to_string(i));
    CHECK(c.env.at("WORLD_SIZE") == "2");
    CHECK(c.env.at("LOCAL_WORLD_SIZE") == "2");
    CHECK(c.env.at("MASTER_ADDR") == "127.0.0.1");
    CHECK(c.env.at("MASTER_PORT") == "29500");
    CHECK(c.env.at("CUDA_VISIBLE_DEVICES") == "");
    CHECK(c.env.at("NCCL_NVLS_ENABLE") == "0");
    CHECK(c.env.at("OMP_NUM_THREADS") == "4");
    CHECK(c.env.at("HOME") == "/home/u");  // the rest of the environment is inherited
    CHECK(c.argv == std::vector<std::string>{"/bin/sh", "-c", "true"});
  }
}

TEST_CASE("--gpus maps each rank to one GPU through CUDA_VISIBLE_DEVICES") {
  LaunchRequest r = request();
  r.gpus = "2,0";
  auto ctx = context(4);
  const auto plan = launch::make_plan(r, ctx);
  REQUIRE(plan.children.size() == 2);
  CHECK(plan.gpu_mode);
  CHECK(plan.children[0].env.at("CUDA_VISIBLE_DEVICES") == "2");
  CHECK(plan.children[1].env.at("CUDA_VISIBLE_DEVICES") == "0");
  CHECK(plan.children[1].env.at("LOCAL_RANK") == "1");
}

TEST_CASE("--gpus indexes the launcher's own CUDA_VISIBLE_DEVICES") {
  LaunchRequest r = request();
  r.gpus = "0,1";
  auto ctx = context(2);
  ctx.env["CUDA_VISIBLE_DEVICES"] = "5,GPU-abc";
  const auto plan = launch::make_plan(r, ctx);
  CHECK(plan.children[0].env.at("CUDA_VISIBLE_DEVICES") == "5");
  CHECK(plan.children[1].env.at("CUDA_VISIBLE_DEVICES") == "GPU-abc");
}

TEST_CASE("no --gpus and no --nproc runs one rank per visible GPU") {
  const auto plan = launch::make_plan(request(), context(3));
  CHECK(plan.children.size() == 3);
  CHECK(plan.children[2].env.at("CUDA_VISIBLE_DEVICES") == "2");
}

TEST_CASE("a user's NCCL_NVLS_ENABLE and OMP_NUM_THREADS are kept") {
  LaunchRequest r = request();
  r.nproc = 1;
  r.nproc_given = true;
  auto ctx = context();
  ctx.env["NCCL_NVLS_ENABLE"] = "1";
  ctx.env["OMP_NUM_THREADS"] = "3";
  const auto plan = launch::make_plan(r, ctx);
  CHECK(plan.children[0].env.at("NCCL_NVLS_ENABLE") == "1");
  CHECK(plan.children[0].env.at("OMP_NUM_THREADS") == "3");
}

TEST_CASE("a zinf subcommand runs this zinf binary; other programs run as given") {
  LaunchRequest r = request({"train", "--steps", "5"});
  r.nproc = 1;
  r.nproc_given = true;
  CHECK(launch::make_plan(r, context()).children[0].argv ==
        std::vector<std::string>{"/opt/zinf/bin/zinf", "train", "--steps", "5"});
  r.command = {"sh", "-c", "echo"};
  CHECK(launch::make_plan(r, context()).children[0].argv.front() == "sh");
}

TEST_CASE("bad GPU lists are refused: none visible, duplicates, ids that do not exist") {
  LaunchRequest r = request();
  r.gpus = "0";
  CHECK(usage_error(r, context(0)).find("no GPUs visible; use --nproc N for CPU processes") != std::string::npos);
  r.gpus = "0,1,0";
  CHECK(usage_error(r, context(2)).find("GPU 0 is listed twice") != std::string::npos);
  r.gpus = "1,3";
  const std::string msg = usage_error(r, context(2));
  CHECK(msg.find("GPU 3 does not exist") != std::string::npos);
  CHECK(msg.find("visible GPUs: 0, 1") != std::string::npos);
  r.gpus = "0,x";
  CHECK(usage_error(r, context(2)).find("'x' is not a GPU id") != std::string::npos);
  r.gpus = "0,,1";
  CHECK(usage_error(r, context(2)).find("'' is not a GPU id") != std::string::npos);
}

TEST_CASE("bad counts and combinations are usage errors") {
  LaunchRequest r = request();
  r.nproc = 0;
  r.nproc_given = true;
  CHECK(usage_error(r, context()).find("--nproc 0 must be at least 1") != std::string::npos);
  r.nproc = 2;
  r.gpus = "0";
  CHECK(usage_error(r, context(1)).find("--gpus and --nproc were both given") != std::string::npos);
  CHECK(usage_error(request(), context(0)).find("no GPUs visible and no --nproc") != std::string::npos);
  LaunchRequest empty;
  empty.nproc = 1;
  empty.nproc_given = true;
  CHECK(usage_error(empty, context()).find("nothing to run") != std::string::npos);
  LaunchRequest bad_port = request();
  bad_port.nproc_given = true;
  bad_port.nproc = 1;
  bad_port.master_port = 0;
  CHECK(usage_error(bad_port, context()).find("--master-port 0") != std::string::npos);
  LaunchRequest missing = request({"no-such-program-zinf"});
  missing.nproc_given = true;
  missing.nproc = 1;
  CHECK(usage_error(missing, context()).find("cannot find 'no-such-program-zinf' in PATH") != std::string::npos);
  LaunchRequest nested = request({"launch", "--nproc", "2"});
  nested.nproc_given = true;
  nested.nproc = 1;
  CHECK(usage_error(nested, context()).find("launchers from a launcher") != std::string::npos);
}

TEST_CASE("multi-node: ranks are node_rank * nproc + local rank, and only node 0 checks the port") {
  LaunchRequest r = request();
  r.nproc = 2;
  r.nproc_given = true;
  r.nnodes = 3;
  r.node_rank = 2;
  r.master_addr = "node0";
  const auto plan = launch::make_plan(r, context());
  REQUIRE(plan.children.size() == 2);
  CHECK(plan.world_size == 6);
  CHECK_FALSE(plan.check_port);
  CHECK(plan.children[0].env.at("RANK") == "4");
  CHECK(plan.children[1].env.at("RANK") == "5");
  CHECK(plan.children[1].env.at("LOCAL_RANK") == "1");
  CHECK(plan.children[1].env.at("GROUP_RANK") == "2");
  CHECK(plan.children[1].env.at("MASTER_ADDR") == "node0");
  r.master_addr.clear();
  CHECK(usage_error(r, context()).find("needs --master-addr") != std::string::npos);
  r.master_addr = "node0";
  r.node_rank = 3;
  CHECK(usage_error(r, context()).find("--node-rank 3 must be in 0..2") != std::string::npos);
}

TEST_CASE("a hostfile starts the other nodes over ssh with a launcher for each") {
  test::TempDir dir;
  test::write_text(dir.file("hosts"), "alpha slots=2\nbeta slots=4\n");
  LaunchRequest r = request({"train", "--steps", "5", "--run-name", "it's"});
  r.nproc = 2;
  r.nproc_given = true;
  r.hostfile = dir.file("hosts");
  r.master_port = 29600;
  const auto plan = launch::make_plan(r, context());
  REQUIRE(plan.children.size() == 3);
  CHECK(plan.world_size == 4);
  CHECK(plan.master_addr == "alpha");
  CHECK(plan.hostfile_first_host == "alpha");
  CHECK(plan.children[1].env.at("MASTER_ADDR") == "alpha");
  const auto& ssh = plan.children[2];
  CHECK(ssh.rank == -1);
  CHECK(ssh.prefix.empty());
  CHECK(ssh.lifeline);
  CHECK(ssh.label == "node 1 (beta)");
  REQUIRE(ssh.argv.size() == 5);
  CHECK(ssh.argv[0] == "ssh");
  CHECK(ssh.argv[1] == "-o");
  CHECK(ssh.argv[2] == "BatchMode=yes");
  CHECK(ssh.argv[3] == "beta");
  CHECK(ssh.argv[4] ==
        "cd '/home/u/run 1' && exec env NCCL_DEBUG=INFO PATH=/usr/bin:/bin:" + fake_ssh_dir() + " /opt/zinf/bin/zinf launch "
        "--nnodes 2 --node-rank 1 --master-addr alpha --master-port 29600 --nproc 2 --lifeline-stdin -- "
        "train --steps 5 --run-name 'it'\\''s'");
}

TEST_CASE("ZINF_SSH replaces the ssh program and its options") {
  test::TempDir dir;
  test::write_text(dir.file("hosts"), "a slots=1\nb slots=1\n");
  LaunchRequest r = request();
  r.nproc = 1;
  r.nproc_given = true;
  r.hostfile = dir.file("hosts");
  auto ctx = context();
  ctx.env["ZINF_SSH"] = "/bin/sh -c";  // any executable; checked to exist
  const auto plan = launch::make_plan(r, ctx);
  CHECK(plan.children[1].argv[0] == "/bin/sh");
  CHECK(plan.children[1].argv[1] == "-c");
  CHECK(plan.children[1].argv[2] == "b");
}

TEST_CASE("hostfile nodes: uniform slots decide GPU ranks; too few slots are refused") {
  test::TempDir dir;
  test::write_text(dir.file("hosts"), "a slots=2\nb slots=2\n");
  LaunchRequest r = request();
  r.hostfile = dir.file("hosts");
  const auto plan = launch::make_plan(r, context(2));
  CHECK(plan.gpu_mode);
  CHECK(plan.world_size == 4);
  CHECK(plan.children[2].argv.back().find("--gpus 0,1") != std::string::npos);

  test::write_text(dir.file("uneven"), "a slots=2\nb slots=1\n");
  r.hostfile = dir.file("uneven");
  CHECK(usage_error(r, context(2)).find("different slots") != std::string::npos);
  r.nproc = 2;
  r.nproc_given = true;
  CHECK(usage_error(r, context()).find(":2: host b has slots=1") != std::string::npos);
  r.nnodes = 2;
  CHECK(usage_error(r, context()).find("--hostfile and --nnodes") != std::string::npos);
}

TEST_CASE("shell quoting keeps words intact for the remote shell") {
  CHECK(launch::shell_quote("abc-1.2/x=y") == "abc-1.2/x=y");
  CHECK(launch::shell_quote("") == "''");
  CHECK(launch::shell_quote("a b") == "'a b'");
  CHECK(launch::shell_quote("$HOME") == "'$HOME'");
  CHECK(launch::shell_quote("it's") == "'it'\\''s'");
}
