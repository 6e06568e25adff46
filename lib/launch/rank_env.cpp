// zinf::launch — reading and validating the rank environment (torchrun, Slurm).
#include "launch/rank_env.h"

#include <cctype>
#include <climits>
#include <vector>

#include "core/error.h"
#include "core/text.h"

extern char** environ;

namespace zinf::launch {
namespace {

// ---------------------------------------------------------------- helpers

const std::string* lookup(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end() || text::trim(it->second).empty()) return nullptr;
  return &it->second;
}

bool parse_nonneg(const std::string& raw, int* out) {
  const std::string s = text::trim(raw);
  if (s.empty() || s.size() > 9) return false;
  long v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  *out = static_cast<int>(v);
  return true;
}

int int_var(const Environment& env, const std::string& name, const std::string& source) {
  const std::string* v = lookup(env, name);
  if (!v) throw UsageError(name + " is not set, but the " + source + " needs it",
                           "set " + name + " or unset the other rank variables to run as a single process");
  int out = 0;
  if (!parse_nonneg(*v, &out))
    throw UsageError(name + "='" + *v + "' is not a non-negative integer", "set " + name + " to a whole number like 0, 1, 2");
  return out;
}

int int_var_or(const Environment& env, const std::string& name, int fallback) {
  const std::string* v = lookup(env, name);
  if (!v) return fallback;
  int out = 0;
  if (!parse_nonneg(*v, &out))
    throw UsageError(name + "='" + *v + "' is not a non-negative integer", "set " + name + " to a whole number like 0, 1, 2");
  return out;
}

// SLURM_TASKS_PER_NODE: "2(x3),1" -> {2, 2, 2, 1}.
std::vector<int> expand_tasks_per_node(const std::string& value) {
  std::vector<int> out;
  for (const std::string& part : text::split(value, ',')) {
    const std::string p = text::trim(part);
    const auto paren = p.find('(');
    int count = 0, repeat = 1;
    bool ok = parse_nonneg(p.substr(0, paren), &count);
    if (ok && paren != std::string::npos) {
      ok = p.size() > paren + 3 && p[paren + 1] == 'x' && p.back() == ')' &&
           parse_nonneg(p.substr(paren + 2, p.size() - paren - 3), &repeat);
    }
    if (!ok) throw UsageError("SLURM_TASKS_PER_NODE='" + value + "' is not a list like '2(x3),1'");
    for (int i = 0; i < repeat; ++i) out.push_back(count);
  }
  return out;
}

void validate(const RankEnv& e, const std::string& rank_var, const std::string& world_var,
              const std::string& local_var, const std::string& local_world_var) {
  const std::string where = describe(e.source);
  if (e.world_size < 1)
    throw UsageError(world_var + "=" + std::to_string(e.world_size) + " must be at least 1 (" + where + ")");
  if (e.rank >= e.world_size)
    throw UsageError(rank_var + "=" + std::to_string(e.rank) + " must be less than " + world_var + "=" +
                         std::to_string(e.world_size) + " (" + where + ")",
                     "ranks are numbered 0 .. world size - 1");
  if (e.local_world_size < 1 || e.local_world_size > e.world_size)
    throw UsageError(local_world_var + "=" + std::to_string(e.local_world_size) + " must be in 1.." + world_var + "=" +
                     std::to_string(e.world_size) + " (" + where + ")");
  if (e.local_rank >= e.local_world_size)
    throw UsageError(local_var + "=" + std::to_string(e.local_rank) + " must be less than " + local_world_var + "=" +
                     std::to_string(e.local_world_size) + " (" + where + ")");
  if (e.master_port < 1 || e.master_port > 65535)
    throw UsageError("MASTER_PORT=" + std::to_string(e.master_port) + " is not a TCP port (1..65535)");
}

}  // namespace

std::string describe(RankSource source) {
  switch (source) {
    case RankSource::kTorchrun: return "torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, ...)";
    case RankSource::kSlurm: return "Slurm environment (SLURM_PROCID, SLURM_NTASKS, ...)";
    case RankSource::kSingle: break;
  }
  return "single process";
}

Environment current_environment() {
  Environment env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

std::string first_slurm_host(const std::string& nodelist) {
  const std::string list = text::trim(nodelist);
  // The first entry ends at the first comma outside brackets.
  std::string entry;
  int depth = 0;
  for (char c : list) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (depth < 0) break;
    if (c == ',' && depth == 0) break;
    entry += c;
  }
  if (entry.empty() || depth != 0)
    throw UsageError("Slurm node list '" + nodelist + "' is malformed", "expected a list like 'gpu[01-04],cpu7'");
  // Every bracket group contributes its first value, zero padding kept: [03-05] -> 03.
  std::string host;
  std::size_t pos = 0;
  while (pos < entry.size()) {
    const auto open = entry.find('[', pos);
    if (open == std::string::npos) {
      host += entry.substr(pos);
      break;
    }
    const auto close = entry.find(']', open);
    std::string first = entry.substr(open + 1, close - open - 1);
    first = first.substr(0, first.find_first_of(",-"));
    int ignored = 0;
    if (open == 0 || !parse_nonneg(first, &ignored))
      throw UsageError("Slurm node list '" + nodelist + "' is malformed", "expected a list like 'gpu[01-04],cpu7'");
    host += entry.substr(pos, open - pos) + first;
    pos = close + 1;
  }
  return host;
}

RankEnv read_rank_env(const Environment& env) {
  RankEnv e;
  if (lookup(env, "RANK") || lookup(env, "WORLD_SIZE")) {
    const std::string src = describe(RankSource::kTorchrun);
    e.source = RankSource::kTorchrun;
    e.rank = int_var(env, "RANK", src);
    e.world_size = int_var(env, "WORLD_SIZE", src);
    // torchrun always sets these; other launchers (mpirun wrappers) may not.
    e.local_rank = int_var_or(env, "LOCAL_RANK", e.world_size == 1 ? 0 : e.rank);
    e.local_world_size = int_var_or(env, "LOCAL_WORLD_SIZE", e.world_size);
    e.node_rank = int_var_or(env, "GROUP_RANK", e.local_world_size > 0 ? e.rank / e.local_world_size : 0);
    if (e.world_size > 1) {
      const std::string* addr = lookup(env, "MASTER_ADDR");
      if (!addr) throw UsageError("MASTER_ADDR is not set, but WORLD_SIZE=" + std::to_string(e.world_size) +
                                      " needs the address of rank 0 (" + src + ")",
                                  "set MASTER_ADDR (and MASTER_PORT), or start the ranks with `zinf launch`");
      e.master_addr = text::trim(*addr);
    } else if (const std::string* addr = lookup(env, "MASTER_ADDR")) {
      e.master_addr = text::trim(*addr);
    }
    e.master_port = int_var_or(env, "MASTER_PORT", kDefaultMasterPort);
    validate(e, "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE");
    return e;
  }
  if (lookup(env, "SLURM_PROCID")) {
    const std::string src = describe(RankSource::kSlurm);
    e.source = RankSource::kSlurm;
    e.rank = int_var(env, "SLURM_PROCID", src);
    e.world_size = int_var(env, "SLURM_NTASKS", src);
    e.local_rank = int_var_or(env, "SLURM_LOCALID", 0);
    e.node_rank = int_var_or(env, "SLURM_NODEID", 0);
    if (lookup(env, "SLURM_NTASKS_PER_NODE")) {
      e.local_world_size = int_var(env, "SLURM_NTASKS_PER_NODE", src);
    } else if (const std::string* tpn = lookup(env, "SLURM_TASKS_PER_NODE")) {
      const std::vector<int> per_node = expand_tasks_per_node(*tpn);
      if (e.node_rank >= static_cast<int>(per_node.size()))
        throw UsageError("SLURM_NODEID=" + std::to_string(e.node_rank) + " is past SLURM_TASKS_PER_NODE='" + *tpn +
                         "' (" + std::to_string(per_node.size()) + " nodes)");
      e.local_world_size = per_node[e.node_rank];
    } else {
      e.local_world_size = e.world_size;
    }
    if (const std::string* addr = lookup(env, "MASTER_ADDR")) {
      e.master_addr = text::trim(*addr);
    } else if (const std::string* nl = lookup(env, "SLURM_STEP_NODELIST")) {
      e.master_addr = first_slurm_host(*nl);
    } else if (const std::string* jl = lookup(env, "SLURM_JOB_NODELIST")) {
      e.master_addr = first_slurm_host(*jl);
    } else if (e.world_size > 1) {
      throw UsageError("cannot tell rank 0's host: none of MASTER_ADDR, SLURM_STEP_NODELIST, SLURM_JOB_NODELIST is set (" +
                           src + ")",
                       "export MASTER_ADDR=<first node's hostname> in the job script");
    }
    e.master_port = int_var_or(env, "MASTER_PORT", kDefaultMasterPort);
    validate(e, "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE");
    return e;
  }
  return e;
}

RankEnv current_rank_env() { return read_rank_env(current_environment()); }

}  // namespace zinf::launch
