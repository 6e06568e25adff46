// zinf::launch — turning `zinf launch` flags into the processes to start.
#include "launch/plan.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>

#include "core/error.h"
#include "core/text.h"

namespace zinf::launch {
namespace {

const char* kCountHint = "use --gpus 0,1 for one process per GPU, or --nproc N for N CPU processes";

std::string get(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

std::string visible_list(int visible) {
  std::vector<std::string> ids;
  for (int i = 0; i < visible; ++i) ids.push_back(std::to_string(i));
  return text::join(ids, ", ");
}

// A name with no slash is looked up in PATH, like execvp does; we do it up front
// so a typo is one clear error instead of N failing ranks.
void check_program(const std::string& program, const Environment& env) {
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) != 0)
      throw UsageError("cannot run '" + program + "': " + errno_text(errno),
                       "give the path of an executable (or a zinf subcommand) after `--`");
    return;
  }
  const std::string path = env.count("PATH") ? env.at("PATH") : "/usr/local/bin:/usr/bin:/bin";
  for (const std::string& dir : text::split(path, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return;
  }
  throw UsageError("cannot find '" + program + "' in PATH and it is not a zinf subcommand",
                   "give a program on PATH, a path, or a zinf subcommand (train, ...) after `--`");
}

ChildSpec rank_child(const LaunchPlan& plan, const LaunchContext& ctx, const std::vector<std::string>& argv,
                     int local_rank, const std::vector<int>& gpu_ids) {
  ChildSpec c;
  c.rank = plan.node_rank * plan.nproc_per_node + local_rank;
  c.label = "rank " + std::to_string(c.rank);
  if (plan.nnodes > 1) c.label += " (node " + std::to_string(plan.node_rank) + ")";
  c.prefix = "[rank " + std::to_string(c.rank) + "] ";
  c.argv = argv;
  c.env = ctx.env;
  c.env["RANK"] = std::to_string(c.rank);
  c.env["LOCAL_RANK"] = std::to_string(local_rank);
  c.env["WORLD_SIZE"] = std::to_string(plan.world_size);
  c.env["LOCAL_WORLD_SIZE"] = std::to_string(plan.nproc_per_node);
  c.env["GROUP_RANK"] = std::to_string(plan.node_rank);
  c.env["MASTER_ADDR"] = plan.master_addr;
  c.env["MASTER_PORT"] = std::to_string(plan.master_port);
  c.env["ZINF_LAUNCHER"] = "1";  // output is already prefixed with the rank
  // NVLink SHARP multicast hangs on some shared hosts; a user's value wins.
  if (get(ctx.env, "NCCL_NVLS_ENABLE").empty()) c.env["NCCL_NVLS_ENABLE"] = "0";
  // N ranks each spawning one thread per core oversubscribe the CPU (torchrun does the same).
  if (get(ctx.env, "OMP_NUM_THREADS").empty())
    c.env["OMP_NUM_THREADS"] = std::to_string(std::max(1, ctx.cpu_cores / plan.nproc_per_node));
  // CPU ranks see no GPU, so none of them grabs cuda:0 by accident.
  c.env["CUDA_VISIBLE_DEVICES"] = plan.gpu_mode ? cuda_device_for(gpu_ids[local_rank], ctx.env) : "";
  return c;
}

}  // namespace

// ---------------------------------------------------------------- GPU ids

std::vector<int> parse_gpu_list(const std::string& text_in, int visible, const Environment& env) {
  const std::string text = text::trim(text_in);
  if (visible == 0) {
    const std::string cvd = get(env, "CUDA_VISIBLE_DEVICES");
    throw UsageError("--gpus " + text + ": no GPUs visible" +
                         (env.count("CUDA_VISIBLE_DEVICES") ? " (CUDA_VISIBLE_DEVICES='" + cvd + "')" : std::string()) +
                         "; use --nproc N for CPU processes",
                     "on a GPU host, check `zinf report` and CUDA_VISIBLE_DEVICES");
  }
  if (text.empty()) throw UsageError("--gpus is empty", "give GPU ids like --gpus 0,1 (visible: " + visible_list(visible) + ")");
  std::vector<int> ids;
  for (const std::string& raw : text::split(text, ',')) {
    const std::string item = text::trim(raw);
    bool ok = !item.empty() && item.size() <= 4;
    int id = 0;
    for (char c : item) {
      if (!std::isdigit(static_cast<unsigned char>(c))) ok = false;
      else id = id * 10 + (c - '0');
    }
    if (!ok) throw UsageError("--gpus " + text + ": '" + item + "' is not a GPU id",
                              "give comma-separated ids like --gpus 0,1 (visible: " + visible_list(visible) + ")");
    if (std::find(ids.begin(), ids.end(), id) != ids.end())
      throw UsageError("--gpus " + text + ": GPU " + std::to_string(id) + " is listed twice",
                       "each GPU runs one rank; list each id once");
    ids.push_back(id);
  }
  std::vector<std::string> missing;
  for (int id : ids)
    if (id >= visible) missing.push_back(std::to_string(id));
  if (!missing.empty())
    throw UsageError("--gpus " + text + ": GPU " + text::join(missing, ", ") + (missing.size() > 1 ? " do" : " does") +
                         " not exist; visible GPUs: " + visible_list(visible) +
                         (env.count("CUDA_VISIBLE_DEVICES") ? " (CUDA_VISIBLE_DEVICES='" + get(env, "CUDA_VISIBLE_DEVICES") + "')"
                                                             : std::string()),
                     "ids count the GPUs this process sees, from 0");
  return ids;
}

std::string cuda_device_for(int index, const Environment& env) {
  auto it = env.find("CUDA_VISIBLE_DEVICES");
  if (it == env.end() || text::trim(it->second).empty()) return std::to_string(index);
  const std::vector<std::string> entries = text::split(it->second, ',');
  if (index < static_cast<int>(entries.size())) return text::trim(entries[index]);
  return std::to_string(index);
}

// ---------------------------------------------------------------- ssh

std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                              "_-./=:,+@%") == std::string::npos)
    return word;
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::vector<std::string> ssh_program(const Environment& env) {
  const std::string custom = text::trim(get(env, "ZINF_SSH"));
  if (custom.empty()) return {"ssh", "-o", "BatchMode=yes"};
  std::vector<std::string> words;
  for (const std::string& w : text::split(custom, ' '))
    if (!w.empty()) words.push_back(w);
  return words;
}

std::string remote_command(const LaunchRequest& request, const LaunchContext& ctx, int nnodes, int node_rank,
                           const std::string& master_addr, int per_node, bool gpu_mode) {
  std::vector<std::string> words = {"cd", shell_quote(ctx.cwd), "&&", "exec", "env"};
  for (const auto& [name, value] : ctx.env) {
    const bool forward = text::starts_with(name, "NCCL_") || text::starts_with(name, "ZINF_") ||
                         name == "PYTHONPATH" || name == "LD_LIBRARY_PATH" || name == "PATH" ||
                         name == "OMP_NUM_THREADS";
    if (forward && name != "ZINF_SSH") words.push_back(shell_quote(name + "=" + value));
  }
  words.push_back(shell_quote(ctx.self_exe));
  words.push_back("launch");
  words.insert(words.end(), {"--nnodes", std::to_string(nnodes), "--node-rank", std::to_string(node_rank),
                             "--master-addr", shell_quote(master_addr), "--master-port",
                             std::to_string(request.master_port)});
  if (gpu_mode) {
    std::vector<std::string> ids;
    if (!request.gpus.empty()) {
      ids = {request.gpus};
    } else {
      for (int i = 0; i < per_node; ++i) ids.push_back(std::to_string(i));
    }
    words.insert(words.end(), {"--gpus", shell_quote(text::join(ids, ","))});
  } else {
    words.insert(words.end(), {"--nproc", std::to_string(per_node)});
  }
  words.push_back("--lifeline-stdin");
  words.push_back("--");
  for (const std::string& w : request.command) words.push_back(shell_quote(w));
  return text::join(words, " ");
}

// ---------------------------------------------------------------- plan

LaunchPlan make_plan(const LaunchRequest& req, const LaunchContext& ctx) {
  if (req.command.empty())
    throw UsageError("nothing to run: put the command after `--`",
                     "e.g. zinf launch --nproc 2 -- train --steps 10, or zinf launch --gpus 0,1 -- python3 script.py");
  if (!req.gpus.empty() && req.nproc_given)
    throw UsageError("--gpus and --nproc were both given", kCountHint);
  if (req.nproc_given && req.nproc < 1)
    throw UsageError("--nproc " + std::to_string(req.nproc) + " must be at least 1", kCountHint);
  if (req.master_port < 1 || req.master_port > 65535)
    throw UsageError("--master-port " + std::to_string(req.master_port) + " is not a TCP port (1..65535)",
                     "the default is " + std::to_string(kDefaultMasterPort));

  LaunchPlan plan;
  plan.master_port = req.master_port;
  plan.lifeline_stdin = req.lifeline_stdin;

  // What runs: a zinf subcommand runs this binary; anything else as given.
  std::vector<std::string> argv = req.command;
  const bool is_subcommand =
      std::find(ctx.subcommands.begin(), ctx.subcommands.end(), argv.front()) != ctx.subcommands.end();
  if (is_subcommand) {
    if (argv.front() == "launch")
      throw UsageError("`zinf launch -- launch ...` would start launchers from a launcher",
                       "give the command each rank runs, e.g. -- train --steps 10");
    argv.insert(argv.begin(), ctx.self_exe);
  }

  std::vector<int> gpu_ids;
  std::vector<Host> hosts;
  if (!req.hostfile.empty()) {
    if (req.nnodes != 1 || req.node_rank != 0)
      throw UsageError("--hostfile and --nnodes/--node-rank were both given",
                       "the hostfile decides the nodes; run on its first host without --nnodes/--node-rank");
    hosts = read_hostfile(req.hostfile);
    plan.nnodes = static_cast<int>(hosts.size());
    plan.node_rank = 0;
    plan.master_addr = req.master_addr.empty() ? hosts.front().name : req.master_addr;
    plan.hostfile_first_host = hosts.front().name;
    if (req.nproc_given) {
      plan.nproc_per_node = req.nproc;
    } else if (!req.gpus.empty()) {
      gpu_ids = parse_gpu_list(req.gpus, ctx.visible_gpus, ctx.env);
      plan.nproc_per_node = static_cast<int>(gpu_ids.size());
      plan.gpu_mode = true;
    } else {
      for (const Host& h : hosts)
        if (h.slots != hosts.front().slots)
          throw UsageError(req.hostfile + ": hosts have different slots (" + hosts.front().name + ": " +
                               std::to_string(hosts.front().slots) + ", " + h.name + ": " + std::to_string(h.slots) +
                               "); zinf runs the same number of ranks on every node",
                           "pass --gpus or --nproc to pick how many ranks each node runs");
      plan.nproc_per_node = hosts.front().slots;
      plan.gpu_mode = true;
      std::vector<std::string> ids;
      for (int i = 0; i < plan.nproc_per_node; ++i) ids.push_back(std::to_string(i));
      gpu_ids = parse_gpu_list(text::join(ids, ","), ctx.visible_gpus, ctx.env);
    }
    for (const Host& h : hosts)
      if (h.slots < plan.nproc_per_node)
        throw UsageError(req.hostfile + ":" + std::to_string(h.line) + ": host " + h.name + " has slots=" +
                             std::to_string(h.slots) + " but each node runs " + std::to_string(plan.nproc_per_node) +
                             " ranks",
                         "raise its slots, or ask for fewer ranks per node with --gpus/--nproc");
  } else {
    if (req.nnodes < 1) throw UsageError("--nnodes " + std::to_string(req.nnodes) + " must be at least 1");
    if (req.node_rank < 0 || req.node_rank >= req.nnodes)
      throw UsageError("--node-rank " + std::to_string(req.node_rank) + " must be in 0.." + std::to_string(req.nnodes - 1) +
                       " for --nnodes " + std::to_string(req.nnodes));
    if (req.nnodes > 1 && req.master_addr.empty())
      throw UsageError("--nnodes " + std::to_string(req.nnodes) + " needs --master-addr, the address of node 0",
                       "run the same command on every node with its own --node-rank, or use --hostfile");
    plan.nnodes = req.nnodes;
    plan.node_rank = req.node_rank;
    plan.master_addr = req.master_addr.empty() ? "127.0.0.1" : req.master_addr;
    if (req.nproc_given) {
      plan.nproc_per_node = req.nproc;
    } else {
      std::string gpus = req.gpus;
      if (gpus.empty()) {
        // No count given: every visible GPU, one rank each.
        if (ctx.visible_gpus == 0)
          throw UsageError("no GPUs visible and no --nproc given", "use --nproc N for N CPU processes");
        std::vector<std::string> ids;
        for (int i = 0; i < ctx.visible_gpus; ++i) ids.push_back(std::to_string(i));
        gpus = text::join(ids, ",");
      }
      gpu_ids = parse_gpu_list(gpus, ctx.visible_gpus, ctx.env);
      plan.nproc_per_node = static_cast<int>(gpu_ids.size());
      plan.gpu_mode = true;
    }
  }
  if (!is_subcommand) check_program(argv.front(), ctx.env);
  plan.world_size = plan.nnodes * plan.nproc_per_node;
  plan.check_port = plan.node_rank == 0;

  for (int local = 0; local < plan.nproc_per_node; ++local)
    plan.children.push_back(rank_child(plan, ctx, argv, local, gpu_ids));

  for (int node = 1; node < static_cast<int>(hosts.size()); ++node) {
    ChildSpec c;
    c.label = "node " + std::to_string(node) + " (" + hosts[node].name + ")";
    c.argv = ssh_program(ctx.env);
    c.argv.push_back(hosts[node].name);
    c.argv.push_back(remote_command(req, ctx, plan.nnodes, node, plan.master_addr, plan.nproc_per_node, plan.gpu_mode));
    c.env = ctx.env;
    c.lifeline = true;
    plan.children.push_back(std::move(c));
  }
  if (hosts.size() > 1) check_program(plan.children.back().argv.front(), ctx.env);
  return plan;
}

}  // namespace zinf::launch
