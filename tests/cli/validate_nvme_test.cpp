// cli: `zinf validate-nvme` reports every outcome with the right exit code and reason.
#include <doctest/doctest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/model_spec.h"
#include "support/test_util.h"

using zinf::test::read_text;
using zinf::test::run_zinf;
using zinf::test::TempDir;
using zinf::test::write_text;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// A read-only directory: a read-only tmpfs mount as root, chmod 0555 otherwise.
struct ReadOnlyDir {
  std::string path;
  bool mounted = false;
  bool ok = false;
  explicit ReadOnlyDir(const std::string& p) : path(p) {
    std::filesystem::create_directory(path);
    if (::geteuid() == 0) {
      mounted = ::mount("tmpfs", path.c_str(), "tmpfs", MS_RDONLY, "size=1m") == 0;
      ok = mounted;
    } else {
      ok = ::chmod(path.c_str(), 0555) == 0;
    }
  }
  ~ReadOnlyDir() {
    if (mounted) ::umount2(path.c_str(), MNT_DETACH);
    ::chmod(path.c_str(), 0755);
  }
};

}  // namespace

TEST_CASE("validate-nvme on a usable directory prints the facts and exits 0") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path()});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "usable              yes"));
  CHECK(contains(r.out, "create, write, fsync, read back, delete"));
  CHECK(contains(r.out, "filesystem"));
  CHECK(contains(r.out, "O_DIRECT"));
  CHECK(contains(r.out, "io_uring            yes"));
  CHECK(std::filesystem::is_empty(dir.path()));  // the test file was deleted
}

TEST_CASE("validate-nvme --json has the machine-readable fields") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path(), "--json"});
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["ok"] == true);
  CHECK(j["free_bytes"].get<std::int64_t>() > 0);
  CHECK(j["required_bytes"] == 0);
  CHECK(j["filesystem"].is_string());
  CHECK((j["rotational"].is_boolean() || j["rotational"].is_null()));
  CHECK(j["o_direct"].is_boolean());
  CHECK(j["io_uring"] == true);
  CHECK(j["block_size"] == 1048576);
  CHECK(j["queue_depth"] == 8);
  CHECK_FALSE(j.contains("write_gbps"));
}

TEST_CASE("validate-nvme --bench reports write and read GB/s with the configured aio settings") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path(), "--bench", "--bench-size-mb", "16", "--json",
                           "--aio-block-size", "256KiB", "--aio-queue-depth", "4"});
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["write_gbps"].get<double>() > 0);
  CHECK(j["read_gbps"].get<double>() > 0);
  CHECK(j["bench_bytes"] == 16 * 1048576);
  CHECK(j["block_size"] == 262144);
  CHECK(j["queue_depth"] == 4);
  const auto t = run_zinf({"validate-nvme", dir.path(), "--bench", "--bench-size-mb", "8"});
  CHECK(t.exit_code == 0);
  CHECK(contains(t.out, "sequential write"));
  CHECK(contains(t.out, "sequential read"));
  CHECK(std::filesystem::is_empty(dir.path()));
}

TEST_CASE("validate-nvme --tune sweeps block sizes and queue depths and prints an aio snippet") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path(), "--tune", "--bench-size-mb", "4"});
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "Best aio settings"));
  CHECK(contains(r.out, "\"aio\": {\"block_size\": "));
  const auto j = nlohmann::json::parse(run_zinf({"validate-nvme", dir.path(), "--tune", "--bench-size-mb", "4",
                                                 "--json"}).out);
  CHECK(j["tune"].size() == 12);
  CHECK(j["best_aio"]["block_size"].get<std::int64_t>() >= 262144);
  CHECK(j["best_aio"]["queue_depth"].get<int>() >= 4);
}

TEST_CASE("validate-nvme creates a missing directory for the check and removes it again") {
  TempDir dir("zinf-vn");
  const std::string path = dir.path() + "/new/deeper";
  const auto r = run_zinf({"validate-nvme", path, "--json"});
  CHECK(r.exit_code == 0);
  CHECK(nlohmann::json::parse(r.out)["created"] == true);
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/new"));
}

TEST_CASE("validate-nvme on an uncreatable path exits 3 with one line saying why") {
  TempDir dir("zinf-vn");
  write_text(dir.file("file"), "x");
  const auto r = run_zinf({"validate-nvme", dir.file("file") + "/sub"});
  CHECK(r.exit_code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(contains(r.err, "error: "));
  CHECK(contains(r.err, dir.file("file")));
}

TEST_CASE("validate-nvme on a regular file exits 3: not a directory") {
  TempDir dir("zinf-vn");
  write_text(dir.file("plain"), "x");
  const auto r = run_zinf({"validate-nvme", dir.file("plain"), "--json"});
  CHECK(r.exit_code == 3);
  CHECK(r.err == "error: '" + dir.file("plain") + "' exists and is not a directory\n");
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["ok"] == false);
  CHECK(contains(j["reason"].get<std::string>(), "not a directory"));
}

TEST_CASE("validate-nvme on a read-only directory exits 3 naming the failure") {
  TempDir dir("zinf-vn");
  ReadOnlyDir ro(dir.file("ro"));
  if (!ro.ok) {
    MESSAGE("skipped: cannot make a read-only directory here (no mount, no chmod)");
    return;
  }
  const auto r = run_zinf({"validate-nvme", ro.path});
  CHECK(r.exit_code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(contains(r.err, "cannot create a file in '" + ro.path + "'"));
  CHECK((contains(r.err, "EROFS") || contains(r.err, "EACCES")));
}

TEST_CASE("validate-nvme with --required-gb beyond the free space exits 3 saying free and needed GB") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path(), "--required-gb", "1e9"});
  CHECK(r.exit_code == 3);
  CHECK(lines(r.err) == 1);
  CHECK(contains(r.err, "not enough space in " + dir.path()));
  CHECK(contains(r.err, "GB free, 1000000000.00 GB needed"));
  CHECK(contains(r.out, "usable              no: not enough space"));
}

TEST_CASE("validate-nvme requires the NVMe bytes zinf estimate plans for the configuration") {
  TempDir dir("zinf-vn");
  // A CPU run, so the bytes are the same on a GPU host (where auto means bf16).
  const std::vector<std::string> run = {"--zero-stage", "infinity", "--model", "tiny", "--device", "cpu"};
  std::vector<std::string> args = {"validate-nvme", dir.path(), "--json"};
  args.insert(args.end(), run.begin(), run.end());
  const auto r = run_zinf(args);
  REQUIRE(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  std::vector<std::string> est = {"estimate", "--json", "--nvme-offload-path", dir.path(), "--cpu-memory-gb", "16"};
  est.insert(est.end(), run.begin(), run.end());
  const auto e = run_zinf(est);
  REQUIRE(e.exit_code == 0);
  const auto plan = nlohmann::json::parse(e.out);
  const std::int64_t need = j["required_bytes"].get<std::int64_t>();
  CHECK(need == plan["selected"]["nvme_bytes"].get<std::int64_t>());
  // fp32 parameters, a separate fp32 master with m and v, and fp32 gradients
  // (they follow the optimizer): 20 B/param at least, in 4096-byte segments.
  const std::int64_t params = zinf::find_model("tiny")->parameter_count();
  CHECK(need >= 20 * params);
  CHECK(need < 20 * params + 4096 * 64);
  const std::string from = j["required_from"].get<std::string>();
  CHECK(contains(from, "zinf estimate for infinity-nvme"));
  for (const char* file : {"params.swp", "optimizer.swp", "grads.swp"}) CHECK_MESSAGE(contains(from, file), file);
  // bf16 parameters: 2 B/param less in params.swp, as the estimate plans it.
  const auto bf16 = run_zinf({"validate-nvme", dir.path(), "--zero-stage", "infinity", "--model", "tiny",
                              "--device", "cuda", "--precision", "bf16", "--json"});
  REQUIRE(bf16.exit_code == 0);
  const std::int64_t need_bf16 = nlohmann::json::parse(bf16.out)["required_bytes"].get<std::int64_t>();
  CHECK(need_bf16 >= 18 * params);
  CHECK(need_bf16 < 18 * params + 4096 * 64);
  const auto e16 = run_zinf({"estimate", "--json", "--nvme-offload-path", dir.path(), "--cpu-memory-gb", "16",
                             "--zero-stage", "infinity", "--model", "tiny", "--device", "cuda", "--precision", "bf16",
                             "--gpu-memory-gb", "80"});
  REQUIRE(e16.exit_code == 0);
  CHECK(need_bf16 == nlohmann::json::parse(e16.out)["selected"]["nvme_bytes"].get<std::int64_t>());
  const auto cpu = run_zinf({"validate-nvme", dir.path(), "--zero-stage", "infinity", "--model", "tiny",
                             "--no-nvme-offload-params", "--no-nvme-offload-optimizer", "--json"});
  CHECK(nlohmann::json::parse(cpu.out)["required_bytes"] == 0);
}

TEST_CASE("validate-nvme on a disk too small for the model exits 3 (small tmpfs)") {
  TempDir dir("zinf-vn");
  const std::string mnt = dir.file("small");
  std::filesystem::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0) {
    MESSAGE("skipped: cannot mount a tmpfs here; --required-gb covers the check");
    return;
  }
  const auto r = run_zinf({"validate-nvme", mnt, "--zero-stage", "infinity", "--model", "gpt2-small"});
  ::umount2(mnt.c_str(), MNT_DETACH);
  CHECK(r.exit_code == 3);
  CHECK(contains(r.err, "not enough space in " + mnt));
  CHECK(contains(r.err, "model gpt2-small"));
}

TEST_CASE("validate-nvme rejects a non-positive benchmark size as a usage error") {
  TempDir dir("zinf-vn");
  const auto r = run_zinf({"validate-nvme", dir.path(), "--bench", "--bench-size-mb", "0"});
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "--bench-size-mb 0"));
}
