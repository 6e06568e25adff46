// zinf::launch — what `zinf launch` will start, before anything is started.
// Implements: LaunchRequest (the flags, as given) -> LaunchPlan (one ChildSpec
// per process this node starts: argv, environment overrides, output prefix).
// Validates GPU ids (duplicates, ids beyond the visible ones, CUDA_VISIBLE_DEVICES
// mapping), --nproc, multi-node flags and the hostfile; resolves the child
// program (a zinf subcommand runs this binary); builds the ssh command lines
// that start the launchers of the other hostfile nodes. Pure functions of the
// request and the environment passed in, so tests check them directly.
#pragma once

#include <string>
#include <vector>

#include "launch/hostfile.h"
#include "launch/rank_env.h"

namespace zinf::launch {

struct LaunchRequest {
  std::string gpus;                  // "0,1" (indices into the visible GPUs); "" when not given
  int nproc = 0;                     // CPU processes per node; 0 when not given
  bool nproc_given = false;          // --nproc was on the command line (so 0 is an error)
  int nnodes = 1;                    // nodes in the job
  int node_rank = 0;                 // this node's index, [0, nnodes)
  std::string master_addr;           // "" = 127.0.0.1 (single node) or the hostfile's first host
  int master_port = kDefaultMasterPort;
  std::string hostfile;              // DeepSpeed hostfile path; "" when not given
  bool lifeline_stdin = false;       // (started over ssh) stop everything when stdin closes
  std::vector<std::string> command;  // the words after `--`
};

// Facts about this process the plan depends on; filled by the caller.
struct LaunchContext {
  int visible_gpus = 0;                    // hw::detect_gpus().size() in the launcher
  std::string self_exe;                    // absolute path of the zinf binary (/proc/self/exe)
  std::vector<std::string> subcommands;    // zinf's subcommand names ("train", "config", ...)
  std::string cwd;                         // working directory remote nodes cd into
  Environment env;                         // the launcher's environment
  int cpu_cores = 1;                       // logical cores, for OMP_NUM_THREADS
};

struct ChildSpec {
  std::string label;                 // "rank 3" or "node 1 (host-b)", for messages
  std::string prefix;                // "[rank 3] " put before each output line; "" for ssh children
  std::vector<std::string> argv;     // argv[0] is a path or a name looked up in PATH
  Environment env;                   // full environment of the child
  int rank = -1;                     // global rank; -1 for an ssh child
  bool lifeline = false;             // give it a stdin pipe the launcher holds open (ssh children)
};

struct LaunchPlan {
  std::vector<ChildSpec> children;   // this node's ranks, then ssh children for other nodes
  int world_size = 1;
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  bool gpu_mode = false;             // one process per GPU (else CPU processes)
  std::string master_addr;
  int master_port = kDefaultMasterPort;
  bool check_port = false;           // this launcher is node 0 and must find the port free
  bool lifeline_stdin = false;
  std::string hostfile_first_host;   // with --hostfile: the host this launcher must run on; else ""
};

// Parses "0,1,3" into ids; throws UsageError for empty items, non-numbers,
// duplicates (naming them) and ids >= visible (naming the visible ones).
std::vector<int> parse_gpu_list(const std::string& text, int visible_gpus, const Environment& env);

// The CUDA_VISIBLE_DEVICES value a child on visible GPU `index` gets: the
// launcher's own CUDA_VISIBLE_DEVICES entry at that index when set ("GPU-uuid"
// or a physical id), else the index.
std::string cuda_device_for(int index, const Environment& env);

// Builds the plan; throws UsageError for every inconsistent combination.
LaunchPlan make_plan(const LaunchRequest& request, const LaunchContext& context);

// The ssh program and its options: $ZINF_SSH split on spaces when set, else
// {"ssh", "-o", "BatchMode=yes"}.
std::vector<std::string> ssh_program(const Environment& env);

// The shell command line run on `node_rank` over ssh: cd to the working
// directory, export the forwarded variables (NCCL_*, ZINF_*, PYTHONPATH,
// LD_LIBRARY_PATH, PATH, OMP_NUM_THREADS), and exec this zinf binary's
// launcher for that node with --lifeline-stdin.
std::string remote_command(const LaunchRequest& request, const LaunchContext& context, int nnodes,
                           int node_rank, const std::string& master_addr, int per_node, bool gpu_mode);

// POSIX shell quoting: abc -> abc, "a b" -> 'a b', "it's" -> 'it'\''s'.
std::string shell_quote(const std::string& word);

}  // namespace zinf::launch
