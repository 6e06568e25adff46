// zinf report — the environment a user needs to debug a run.
#include <iostream>
#include <memory>

#include "command.h"
#include "core/units.h"
#include "core/version.h"
#include "hw/disk.h"
#include "hw/machine.h"
#include "hw/probe.h"

namespace zinf::app {
namespace {

void row(const std::string& key, const std::string& value) {
  std::string k = key;
  k.resize(22, ' ');
  std::cout << "  " << k << value << "\n";
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

void run_report(const std::string& probe_dir) {
  const hw::Machine m = hw::detect();
  std::cout << "zinf " << version() << "\n";
  row("LibTorch", m.torch_version);
#ifdef ZINF_WITH_CUDA
  row("CUDA (build)", "yes, runtime " + m.cuda_version);
#else
  row("CUDA (build)", "no (LibTorch without CUDA)");
#endif
  row("NCCL", m.nccl_version.empty() ? "no" : m.nccl_version);
  row("cuFile / GDS", m.cufile ? "libcufile found" : "no");
  row("GPUs", std::to_string(m.gpus.size()));
  for (const auto& g : m.gpus)
    row("  cuda:" + std::to_string(g.index),
        g.name + ", " + format_bytes(double(g.total_bytes)) + ", sm_" + std::to_string(g.major) +
            std::to_string(g.minor) + (g.bf16 ? ", bf16" : ""));
  row("CPU", m.cpu.model + " (" + std::to_string(m.cpu.logical_cores) + " logical cores)");
  row("CPU features", std::string("AVX2 ") + yes_no(m.cpu.avx2) + ", AVX-512F " + yes_no(m.cpu.avx512f) +
                          ", FMA " + yes_no(m.cpu.fma));
  row("RAM", format_bytes(double(m.memory.total_bytes)) + " total, " +
                 format_bytes(double(m.memory.available_bytes)) + " available");
  const hw::IoSupport io = hw::probe_io(probe_dir);
  row("io_uring", io.io_uring ? "yes" : "no (" + io.io_uring_error + ")");
  row("O_DIRECT", std::string(io.o_direct ? "yes" : "no") + " in " + probe_dir +
                      (io.o_direct ? "" : " (" + io.o_direct_error + ")"));
  const hw::DiskInfo disk = hw::describe_disk(probe_dir);
  row("disk of " + probe_dir, disk.filesystem + (disk.block_device.empty() ? "" : " on " + disk.block_device) +
                                  (disk.rotational < 0 ? "" : disk.rotational ? ", rotational" : ", solid state") +
                                  ", " + format_gb(double(disk.free_bytes)) + " free");
}

void setup(CLI::App& app) {
  auto dir = std::make_shared<std::string>(".");
  CLI::App* cmd = app.add_subcommand(
      "report", "Print versions (zinf, LibTorch, CUDA, NCCL), GPUs and memory, CPU features, RAM, and\n"
                "io_uring / O_DIRECT / cuFile support: paste it into bug reports.");
  cmd->add_option("--dir", *dir, "directory to probe O_DIRECT in (default: the current directory)");
  cmd->callback([dir] { run_report(*dir); });
}

ZINF_REGISTER_COMMAND(60, setup);

}  // namespace
}  // namespace zinf::app
