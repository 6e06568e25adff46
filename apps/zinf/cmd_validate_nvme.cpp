// zinf validate-nvme — can this directory hold a run's NVMe swap, and how fast is it?
// Implements: the checks a user runs before a ZeRO-Infinity job: the path
// exists or can be created, is a directory, can be written, fsync'ed, read
// back and deleted; free space against what the run needs (--required-gb, or
// computed from the model/offload options); filesystem, block device,
// rotational, O_DIRECT and io_uring support; --bench (sequential GB/s with
// the configured aio block size and queue depth) and --tune (a sweep that
// prints the best "aio" settings). A table by default, --json for machines.
// Exit 0 when usable; 3 with a one-line reason on stderr when not.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "command.h"
#include "config/settings.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/units.h"
#include "hw/disk.h"
#include "hw/probe.h"
#include "io/bench.h"
#include "plan/estimate.h"

namespace zinf::app {
namespace {

struct ValidateCommand {
  ConfigOptions options;
  std::string path;
  double required_gb = -1;  // < 0: compute from the configuration
  bool bench = false;
  bool tune = false;
  std::int64_t bench_size_mb = 1024;
  bool json = false;
  // The run's precision and device decide the bytes of its parameter swap
  // file (bf16 halves it), so they are the run's flags here too.
  std::string precision = "auto", device = "auto";
};

struct Report {
  bool ok = true;
  std::string reason;  // one line, when !ok
  std::vector<std::string> warnings;
  bool created = false;
  bool writable = false;
  std::int64_t required_bytes = 0;
  std::string required_from;  // "--required-gb", "configuration: ...", "nothing offloaded to NVMe"
  hw::DiskInfo disk;
  hw::IoSupport io;
  std::int64_t block_size = 0;
  int queue_depth = 0;
  bool benched = false;
  io::BenchResult bench;
  bool tuned = false;
  io::TuneResult tune;
};

void unusable(Report& r, const std::string& reason) {
  if (r.ok) r.reason = reason;
  r.ok = false;
}

// NVMe bytes the resolved configuration keeps in swap files, from lib/plan's
// estimator: the engine's params.swp, optimizer.swp and grads.swp of one
// rank (each block and sub-group 4096-aligned), as `zinf estimate` reports
// them for the configured option.
std::int64_t required_from_settings(const config::Settings& s, std::string& from) {
  const plan::Target target = s.device == "cuda" ? plan::Target::kCuda : plan::Target::kCpu;
  const plan::Option option = plan::option_from(s);
  const plan::Need need = plan::estimate_option(plan::inputs_from(s, 1, 1, target), option);
  if (need.nvme_bytes == 0) {
    from = "nothing offloaded to NVMe by the configuration";
  } else {
    std::string parts;
    for (const auto& i : need.nvme)
      parts += (parts.empty() ? "" : " + ") + i.what + " " + format_bytes(double(i.bytes));
    from = "zinf estimate for " + option.name + ", model " + s.model.name + " (" +
           format_count(double(s.model.parameter_count())) + " params), one rank: " + parts;
  }
  return need.nvme_bytes;
}

Report validate(const ValidateCommand& c) {
  Report r;
  // Resolve the configuration: aio settings, and what the run keeps on NVMe.
  config::Sources sources = c.options.sources();
  bool path_given = false;
  for (const auto& f : sources.flags) path_given |= f.name == "nvme-offload-path";
  if (!path_given) sources.flags.insert(sources.flags.begin(), {"nvme-offload-path", c.path});
  if (c.precision != "auto") sources.flags.push_back({"precision", c.precision});
  if (c.device != "auto") sources.flags.push_back({"device", c.device});
  const config::Resolved resolved = config::build_config(sources, detect_machine_facts());
  const config::Settings settings = config::settings_from(resolved.config);
  r.block_size = settings.aio_block_size;
  r.queue_depth = static_cast<int>(settings.aio_queue_depth);
  if (c.required_gb >= 0) {
    r.required_bytes = static_cast<std::int64_t>(c.required_gb * 1e9);
    r.required_from = "--required-gb";
  } else {
    r.required_bytes = required_from_settings(settings, r.required_from);
  }

  // Exists, or can be created; is a directory.
  namespace sfs = std::filesystem;
  std::string created_root;  // the first directory we create, removed at the end
  if (!fs::exists(c.path)) {
    created_root = fs::nearest_existing(c.path);
    try {
      fs::make_dirs(c.path);
      r.created = true;
    } catch (const Error& e) {
      r.disk.path = c.path;
      unusable(r, e.what());
      return r;
    }
  } else if (!fs::is_directory(c.path)) {
    r.disk.path = c.path;
    unusable(r, "'" + c.path + "' exists and is not a directory");
    return r;
  }
  struct Cleanup {
    std::string path;
    bool active;
    ~Cleanup() {
      if (active) fs::remove_all(path);
    }
  } cleanup{c.path, r.created};
  if (r.created) {
    // Remove from the topmost directory we made, not just the leaf.
    sfs::path p = sfs::absolute(c.path);
    const sfs::path top = sfs::absolute(created_root);
    while (p.has_parent_path() && p.parent_path() != top && p.parent_path() != p) p = p.parent_path();
    cleanup.path = p.string();
  }

  r.disk = hw::describe_disk(c.path);
  const std::string write_failure = hw::check_writable(c.path);
  r.writable = write_failure.empty();
  if (!r.writable) {
    unusable(r, write_failure);
    return r;
  }
  r.io = hw::probe_io(c.path);
  if (!r.io.io_uring)
    r.warnings.push_back("io_uring is not available (" + r.io.io_uring_error +
                         "): swap I/O falls back to pread/pwrite, one request at a time, far below the disk's "
                         "speed (Linux >= 5.10 needed; containers may block io_uring with seccomp)");
  if (!r.io.o_direct)
    r.warnings.push_back("O_DIRECT is refused on " + r.disk.filesystem + " (" + r.io.o_direct_error +
                         "): swap I/O will be buffered through the page cache (more CPU and RAM, slower)");
  if (r.disk.rotational == 1)
    r.warnings.push_back("the disk behind " + c.path + " (" + r.disk.block_device +
                         ") reports itself as rotational: a hard disk will be very slow for offload "
                         "(virtual disks sometimes report this wrongly; --bench measures)");
  if (r.disk.filesystem == "tmpfs" || r.disk.filesystem == "ramfs")
    r.warnings.push_back(c.path + " is in memory (" + r.disk.filesystem +
                         "): swap files there take RAM, not disk");
  if (r.required_bytes > r.disk.free_bytes)
    unusable(r, "not enough space in " + c.path + ": " + format_gb(double(r.disk.free_bytes)) + " free, " +
                    format_gb(double(r.required_bytes)) + " needed (" + r.required_from + ")");
  if (!r.ok || (!c.bench && !c.tune)) return r;

  io::BenchOptions bo;
  bo.dir = c.path;
  bo.bytes = c.bench_size_mb * kMiB;
  bo.block_size = r.block_size;
  bo.queue_depth = r.queue_depth;
  if (bo.bytes > r.disk.free_bytes) {
    unusable(r, "not enough space in " + c.path + " for the benchmark: " + format_gb(double(r.disk.free_bytes)) +
                    " free, " + format_gb(double(bo.bytes)) + " needed (lower --bench-size-mb)");
    return r;
  }
  if (c.bench) {
    r.bench = io::bench_sequential(bo);
    r.benched = true;
  }
  if (c.tune) {
    r.tune = io::tune(bo, io::default_tune_block_sizes(), io::default_tune_queue_depths());
    r.tuned = true;
  }
  return r;
}

std::string gbps(double v) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << v << " GB/s";
  return s.str();
}

std::string aio_snippet(const io::TunePoint& best) {
  std::ostringstream s;
  s << "\"aio\": {\"block_size\": " << best.block_size << ", \"queue_depth\": " << best.queue_depth
    << ", \"single_submit\": false, \"overlap_events\": true, \"thread_count\": 1}";
  return s.str();
}

config::Json to_json(const ValidateCommand& c, const Report& r) {
  config::Json j;
  j["ok"] = r.ok;
  if (!r.ok) j["reason"] = r.reason;
  j["path"] = c.path;
  j["created"] = r.created;
  j["writable"] = r.writable;
  j["free_bytes"] = r.disk.free_bytes;
  j["total_bytes"] = r.disk.total_bytes;
  j["required_bytes"] = r.required_bytes;
  j["required_from"] = r.required_from;
  j["filesystem"] = r.disk.filesystem;
  j["mount_point"] = r.disk.mount_point;
  j["block_device"] = r.disk.block_device;
  j["rotational"] = r.disk.rotational < 0 ? config::Json(nullptr) : config::Json(r.disk.rotational == 1);
  j["logical_block_size"] = r.disk.logical_block_size;
  j["o_direct"] = r.io.o_direct;
  j["io_uring"] = r.io.io_uring;
  j["warnings"] = r.warnings;
  j["block_size"] = r.block_size;
  j["queue_depth"] = r.queue_depth;
  if (r.benched) {
    j["write_gbps"] = r.bench.write_gbps;
    j["read_gbps"] = r.bench.read_gbps;
    j["bench_bytes"] = r.bench.bytes;
    j["bench_direct"] = r.bench.direct;
  }
  if (r.tuned) {
    config::Json points = config::Json::array();
    for (const auto& p : r.tune.points)
      points.push_back({{"block_size", p.block_size}, {"queue_depth", p.queue_depth},
                        {"write_gbps", p.write_gbps}, {"read_gbps", p.read_gbps}});
    j["tune"] = points;
    j["best_aio"] = {{"block_size", r.tune.best.block_size}, {"queue_depth", r.tune.best.queue_depth},
                     {"single_submit", false}, {"overlap_events", true}, {"thread_count", 1}};
  }
  return j;
}

void row(const std::string& key, const std::string& value) {
  std::string k = key;
  k.resize(20, ' ');
  std::cout << "  " << k << value << "\n";
}

void print_table(const ValidateCommand& c, const Report& r) {
  const auto yes_no = [](bool b) { return std::string(b ? "yes" : "no"); };
  std::cout << "NVMe path " << c.path << (r.created ? " (created for the check, removed after)" : "") << "\n";
  row("usable", r.ok ? "yes" : "no: " + r.reason);
  row("writable", yes_no(r.writable) + (r.writable ? " (create, write, fsync, read back, delete)" : ""));
  row("filesystem", r.disk.filesystem + (r.disk.mount_point.empty() ? "" : " on " + r.disk.mount_point));
  row("block device", r.disk.block_device.empty() ? "none" : r.disk.block_device);
  row("rotational", r.disk.rotational < 0 ? "unknown" : yes_no(r.disk.rotational == 1));
  if (r.disk.logical_block_size > 0) row("logical block", std::to_string(r.disk.logical_block_size) + " B");
  row("free space", format_gb(double(r.disk.free_bytes)) + " of " + format_gb(double(r.disk.total_bytes)));
  row("required", format_gb(double(r.required_bytes)) + " (" + r.required_from + ")");
  if (r.writable) {
    row("O_DIRECT", r.io.o_direct ? "yes" : "no (" + r.io.o_direct_error + ")");
    row("io_uring", r.io.io_uring ? "yes" : "no (" + r.io.io_uring_error + ")");
  }
  if (r.benched) {
    const std::string how = format_bytes(double(r.bench.bytes)) + ", block " + format_bytes(double(r.block_size)) +
                            ", queue depth " + std::to_string(r.queue_depth) +
                            (r.bench.direct ? ", O_DIRECT" : ", buffered");
    row("sequential write", gbps(r.bench.write_gbps) + " (" + how + ", incl. fdatasync)");
    row("sequential read", gbps(r.bench.read_gbps) + " (" + how + ")");
  }
  if (r.tuned) {
    std::cout << "\n  block size   queue depth   write        read\n";
    for (const auto& p : r.tune.points) {
      std::string bs = format_bytes(double(p.block_size));
      bs.resize(13, ' ');
      std::string qd = std::to_string(p.queue_depth);
      qd.resize(14, ' ');
      std::string w = gbps(p.write_gbps);
      w.resize(13, ' ');
      std::cout << "  " << bs << qd << w << gbps(p.read_gbps) << "\n";
    }
    std::cout << "\nBest aio settings (add to your DeepSpeed/zinf config):\n  " << aio_snippet(r.tune.best) << "\n";
  }
  for (const auto& w : r.warnings) std::cout << "  warning: " << w << "\n";
}

void run_validate(const ValidateCommand& c) {
  if (c.bench_size_mb <= 0)
    throw UsageError("--bench-size-mb " + std::to_string(c.bench_size_mb) + " is not positive",
                     "give the benchmark file size in MiB, e.g. --bench-size-mb 1024");
  if (c.required_gb < 0 && c.required_gb != -1)
    throw UsageError("--required-gb must not be negative");
  const Report r = validate(c);
  if (c.json)
    std::cout << to_json(c, r).dump(2) << "\n";
  else
    print_table(c, r);
  if (!r.ok) {
    std::cerr << "error: " << r.reason << "\n";
    set_exit_code(static_cast<int>(ExitCode::kUnusable));
  }
}

void setup(CLI::App& app) {
  auto state = std::make_shared<ValidateCommand>();
  CLI::App* cmd = app.add_subcommand(
      "validate-nvme",
      "Check a directory for NVMe offload: exists or can be created, writable (create, write, fsync, read\n"
      "back, delete), free space against what the run needs, filesystem, block device, rotational,\n"
      "O_DIRECT and io_uring. --bench measures sequential GB/s; --tune finds the best aio settings.\n"
      "Exit 0 when usable, 3 with the reason on stderr when not.");
  cmd->add_option("PATH", state->path, "directory for swap files (the --nvme-offload-path of a run)")->required();
  cmd->add_option("--required-gb", state->required_gb,
                  "space the run needs in GB (1e9 bytes); default: zinf estimate's NVMe bytes for the model/offload options "
                  "(one rank)");
  cmd->add_flag("--bench", state->bench, "measure sequential write and read bandwidth (aio block size, queue depth)");
  cmd->add_flag("--tune", state->tune, "sweep block sizes (256K, 1M, 4M) x queue depths (4..32); print the best aio");
  cmd->add_option("--bench-size-mb", state->bench_size_mb, "benchmark file size in MiB (default 1024)");
  cmd->add_flag("--json", state->json, "print a JSON object instead of a table");
  cmd->add_option("--precision", state->precision,
                  "the run's precision, for the required space: auto (bf16 on GPUs that have it, else fp32; a "
                  "--config file's choice wins), fp32, bf16, fp16")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "fp16"}));
  cmd->add_option("--device", state->device, "the run's device, for the required space: auto, cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  state->options.add_to(*cmd, config::kSourceOptions | config::kZeroOptions | config::kModelOptions);
  cmd->callback([state] { run_validate(*state); });
}

ZINF_REGISTER_COMMAND(30, setup);

}  // namespace
}  // namespace zinf::app
