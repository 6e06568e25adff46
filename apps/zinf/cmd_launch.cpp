// zinf launch — start one process per GPU (or N CPU processes) with the
// torchrun-compatible rank environment, and supervise them (lib/launch).
#include <sched.h>
#include <unistd.h>

#include <memory>

#include "command.h"
#include "core/error.h"
#include "hw/machine.h"
#include "launch/plan.h"
#include "launch/supervisor.h"

namespace zinf::app {
namespace {

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error("cannot read /proc/self/exe: " + errno_text(errno));
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string current_dir() {
  char buf[4096];
  if (!::getcwd(buf, sizeof(buf))) throw Error("cannot read the working directory: " + errno_text(errno));
  return buf;
}

int usable_cores() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
}

void run_launch(CLI::App& root, CLI::App& cmd, launch::LaunchRequest request) {
  request.nproc_given = cmd.count("--nproc") > 0;
  launch::LaunchContext ctx;
  ctx.env = launch::current_environment();
  ctx.self_exe = self_exe();
  ctx.cwd = current_dir();
  ctx.cpu_cores = usable_cores();
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; }))
    ctx.subcommands.push_back(sub->get_name());
  // Only GPU runs need the GPU count (and only they should pay for asking CUDA).
  if (!request.nproc_given) ctx.visible_gpus = static_cast<int>(hw::detect_gpus().size());

  const launch::LaunchPlan plan = launch::make_plan(request, ctx);
  launch::RunOptions options;
  if (plan.nnodes > 1) options.who = "zinf launch (node " + std::to_string(plan.node_rank) + ")";
  launch::run(plan, options);
}

void setup(CLI::App& app) {
  auto request = std::make_shared<launch::LaunchRequest>();
  CLI::App* cmd = app.add_subcommand(
      "launch",
      "Start one process per GPU (--gpus 0,1) or N CPU processes (--nproc N) running the command\n"
      "after `--`, with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT set\n"
      "(torchrun-compatible). Output lines are prefixed with [rank N]; SIGINT/SIGTERM are forwarded;\n"
      "if any rank fails, the others are stopped and the launcher exits non-zero naming it.\n"
      "  zinf launch --nproc 2 -- train --zero-stage zero2 ...   (a zinf subcommand runs this binary)\n"
      "  zinf launch --gpus 0,1 -- python3 script.py\n"
      "  zinf launch --hostfile hosts -- train ...               (DeepSpeed hostfile; other nodes over ssh)");
  cmd->add_option("--gpus", request->gpus, "GPU ids to run one rank each on, e.g. 0,1 (default: every visible GPU)")
      ->type_name("IDS");
  cmd->add_option("--nproc", request->nproc, "run N CPU processes per node instead (CUDA_VISIBLE_DEVICES is emptied)")
      ->type_name("N");
  cmd->add_option("--master-port", request->master_port, "TCP port of rank 0's rendezvous store (checked free at start)")
      ->type_name("PORT")
      ->capture_default_str();
  cmd->add_option("--master-addr", request->master_addr,
                  "address of node 0 (default 127.0.0.1; the hostfile's first host with --hostfile)")
      ->type_name("HOST");
  cmd->add_option("--nnodes", request->nnodes, "nodes in the job; start the same command on each with its --node-rank")
      ->type_name("N")
      ->capture_default_str();
  cmd->add_option("--node-rank", request->node_rank, "this node's index, 0 .. nnodes-1 (RANK = node_rank * nproc + local)")
      ->type_name("K")
      ->capture_default_str();
  cmd->add_option("--hostfile", request->hostfile,
                  "DeepSpeed hostfile (`host slots=N` lines); run on its first host, the others are started over\n"
                  "ssh ($ZINF_SSH overrides the ssh program)")
      ->type_name("FILE");
  cmd->add_flag("--lifeline-stdin", request->lifeline_stdin,
                "stop every rank when stdin closes (set on launchers started over ssh)")
      ->group("");
  cmd->add_option("command", request->command, "the command each rank runs, after `--`")->type_name("-- COMMAND");
  CLI::App* root = &app;
  cmd->callback([root, cmd, request] { run_launch(*root, *cmd, *request); });
}

ZINF_REGISTER_COMMAND(70, setup);

}  // namespace
}  // namespace zinf::app
