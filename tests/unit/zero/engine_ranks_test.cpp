// zero: the engine across ranks. Real processes (this test binary started
// again per rank, so no rank inherits another's threads) join a Gloo group
// on loopback, each trains on its slice of every batch, and the result must
// equal one rank training on the whole batch: the same losses, the same
// parameters, and owned ranges of optimizer state that tile the model and
// match the one-rank state. Covers parameters partitioned (stage 3) at every
// home, whole blocks on the device with the optimizer offloaded (stages 1-2),
// three ranks (uneven shards, a rank owning nothing of a small block),
// micro-batches summed on the device before the reduce-scatter's result goes
// to the host, weight decay exempting ranges that cross the shards, and a
// resume from per-rank state written by ranges.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "comm/communicator.h"
#include "core/error.h"
#include "support/test_util.h"
#include "support/toy_engine_model.h"
#include "zero/offload_engine.h"
#include "unit/model/torch_doctest.h"  // last: undoes glog's CHECK

extern char** environ;

using namespace zinf;
using namespace zinf::zero;

namespace {

constexpr std::int64_t kIn = 8, kHidden = 32, kRows = 6;
const test::ToyEngineModel kModel{kIn, kHidden};
const std::vector<EngineBlock> kBlocks = kModel.blocks();
const std::int64_t kNumel = kModel.numel();

torch::Tensor initial() {
  torch::manual_seed(11);
  return torch::randn({kNumel}) * 0.2;
}

torch::Tensor batch(int step) {
  torch::manual_seed(200 + step);
  return torch::randn({kRows, kIn});
}

// The same function on any slice of the batch's rows; the loss is the sum of
// squares over the slice divided by the whole batch's element count, so the
// ranks' losses (and gradients) add up to the one-rank loss.
torch::Tensor loss_of(OffloadEngine& e, const torch::Tensor& x) {
  return kModel.forward(e, x).pow(2).sum() / double(kRows * kIn);
}

// Cases ending in "-acc" take two micro-batches per step, summed on the device.
bool accumulates(const std::string& name) { return name.size() > 4 && name.compare(name.size() - 4, 4, "-acc") == 0; }

// Cases ending in "-nd" exempt elements from weight decay (zinf's recipe
// leaves norms, biases and embeddings alone): b0, a run of W1 that crosses
// the shards of two and three ranks and several sub-groups, and the scale block.
const std::vector<FlatRange> kNoDecay = {{kHidden * kIn, kHidden},
                                         {kHidden * kIn + kHidden + 500, 200},
                                         {kHidden * kIn + kHidden + kHidden * kHidden, kHidden}};

OffloadEngineOptions options_for(std::string name, const std::string& nvme) {
  OffloadEngineOptions o;
  if (name.size() > 3 && name.compare(name.size() - 3, 3, "-nd") == 0) {
    name.resize(name.size() - 3);
    o.no_decay = kNoDecay;
  }
  if (accumulates(name)) {
    name.resize(name.size() - 4);
    o.accumulate_on_device = true;
  }
  o.nvme_path = nvme;
  o.sub_group_size = 100;  // several sub-groups per shard
  o.buffer_count = 2;
  o.adam.weight_decay = 0.05;
  if (name == "device") {
  } else if (name == "cpu") {
    o.param_home = o.optimizer_home = Tier::kCpu;
  } else if (name == "nvme") {
    o.param_home = o.optimizer_home = Tier::kNvme;
    o.gradients_on_nvme = true;
  } else if (name == "device-nvme") {
    o.optimizer_home = Tier::kNvme;
  } else if (name == "replicated-cpu") {  // stages 1-2 with ZeRO-Offload: whole blocks on the device
    o.partition_params = false;
    o.optimizer_home = Tier::kCpu;
  } else {
    throw Error("unknown case " + name);
  }
  return o;
}

struct Result {
  std::vector<double> losses;
  std::vector<float> params, master;  // [kNumel]
};

std::string dump(const std::vector<float>& v) {
  std::ostringstream s;
  s.precision(9);
  for (float x : v) s << x << ' ';
  return s.str();
}

std::vector<float> parse(std::istream& in, std::int64_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) in >> x;
  return v;
}

// Trains steps [from, to) on rows [row0, row0 + rows) of each batch, in
// `micro` micro-batches per step (batches micro * s ... micro * s + micro - 1).
std::vector<double> train(OffloadEngine& e, int from, int to, std::int64_t row0, std::int64_t rows, int micro = 1) {
  std::vector<double> losses;
  for (int s = from; s < to; ++s) {
    double loss = 0;
    for (int m = 0; m < micro; ++m) {
      e.set_accumulation_boundary(m + 1 == micro);
      torch::Tensor l = loss_of(e, batch(micro * s + m).narrow(0, row0, rows)) * 2.0;  // a loss scale of 2
      l.backward();
      loss += l.item<double>() / 2.0;
    }
    losses.push_back(loss);
    e.step(0.03, 2.0, 0.4);
  }
  return losses;
}

int micro_batches(const std::string& name) { return accumulates(name) ? 2 : 1; }

// One rank, the whole batch; micro-batches summed on the host.
Result reference(const std::string& name, const std::string& nvme, int steps) {
  OffloadEngineOptions o = options_for(name, nvme);
  o.accumulate_on_device = false;
  OffloadEngine e(o, kBlocks, initial());
  Result r;
  r.losses = train(e, 0, steps, 0, kRows, micro_batches(name));
  const torch::Tensor p = e.parameters(), m = e.master_weights();
  r.params.assign(p.data_ptr<float>(), p.data_ptr<float>() + kNumel);
  r.master.assign(m.data_ptr<float>(), m.data_ptr<float>() + kNumel);
  return r;
}

// Starts this binary once per rank, running the rank body below; returns how many failed.
int launch_ranks(int world, const std::string& name, const std::string& out, int steps, bool resume) {
  const int port = test::free_port();
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.push_back(*e);
    for (const std::string& kv : {"ZINF_ENGINE_RANK=" + std::to_string(r), "ZINF_ENGINE_WORLD=" + std::to_string(world),
                                  "ZINF_ENGINE_PORT=" + std::to_string(port), "ZINF_ENGINE_CASE=" + name,
                                  "ZINF_ENGINE_OUT=" + out, "ZINF_ENGINE_STEPS=" + std::to_string(steps),
                                  "ZINF_ENGINE_RESUME=" + std::string(resume ? "1" : "0")})
      env_s.push_back(kv);
    std::vector<char*> envp, argv;
    for (auto& s : env_s) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string self = "/proc/self/exe", filter = "-tc=engine rank body*", quiet = "--no-version=true";
    char buf[4096];
    const ssize_t len = ::readlink(self.c_str(), buf, sizeof buf - 1);
    REQUIRE(len > 0);
    std::string exe(buf, std::size_t(len));
    argv = {exe.data(), filter.data(), quiet.data(), nullptr};
    pid_t pid = 0;
    posix_spawn_file_actions_t quiet_out;  // the rank's doctest summary is noise; its stderr stays
    posix_spawn_file_actions_init(&quiet_out);
    posix_spawn_file_actions_addopen(&quiet_out, 1, "/dev/null", O_WRONLY, 0);
    REQUIRE(::posix_spawn(&pid, exe.c_str(), &quiet_out, nullptr, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&quiet_out);
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

// The ranks' slice losses, step by step, added up: the whole batch's losses.
std::vector<double> summed_losses(const std::string& out, int world, int steps) {
  std::vector<double> sum(static_cast<std::size_t>(steps), 0.0);
  for (int r = 0; r < world; ++r) {
    std::ifstream in(out + "/losses." + std::to_string(r));
    for (auto& s : sum) {
      double x = 0;
      in >> x;
      s += x;
    }
  }
  return sum;
}

}  // namespace

// The body each rank runs (does nothing in a normal test run).
TEST_CASE("engine rank body (runs only inside launch_ranks)") {
  const char* rank_s = std::getenv("ZINF_ENGINE_RANK");
  if (!rank_s) return;
  const int rank = std::atoi(rank_s), world = std::atoi(std::getenv("ZINF_ENGINE_WORLD"));
  const std::string name = std::getenv("ZINF_ENGINE_CASE"), out = std::getenv("ZINF_ENGINE_OUT");
  const int steps = std::atoi(std::getenv("ZINF_ENGINE_STEPS"));
  const bool resume = std::string(std::getenv("ZINF_ENGINE_RESUME")) == "1";
  comm::Rendezvous rdv;
  rdv.rank = rank;
  rdv.world_size = world;
  rdv.master_port = std::atoi(std::getenv("ZINF_ENGINE_PORT"));
  rdv.timeout = std::chrono::seconds(60);
  auto comm = comm::Communicator::create(rdv, comm::Backend::kGloo);
  OffloadEngineOptions o = options_for(name, out + "/swap");
  o.comm = comm.get();
  const std::int64_t rows = kRows / world, row0 = rank * rows;
  REQUIRE(kRows % world == 0);
  std::vector<double> losses;
  if (!resume) {
    OffloadEngine e(o, kBlocks, initial());
    CHECK(e.world_size() == world);
    losses = train(e, 0, steps, row0, rows, micro_batches(name));
    // This rank's optimizer state by range, for the parent to tile and compare.
    std::ofstream state(out + "/state." + std::to_string(rank));
    e.save_state([&](const FlatRange& r, const float* w, const float* m, const float* v) {
      state << r.begin << ' ' << r.count << ' ' << dump(std::vector<float>(w, w + r.count)) << '\n';
      (void)m;
      (void)v;
    });
    const torch::Tensor p = e.parameters();  // every rank gathers
    if (rank == 0) {
      std::ofstream params(out + "/params");
      params << dump(std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + kNumel));
    }
  } else {
    // Train half the steps, save each rank's state by range, resume a fresh
    // engine from it and finish: the losses must continue as if uninterrupted.
    std::vector<std::vector<float>> saved;  // [w | m | v] per range
    std::vector<FlatRange> ranges;
    {
      OffloadEngine e(o, kBlocks, initial());
      losses = train(e, 0, steps / 2, row0, rows);
      e.save_state([&](const FlatRange& r, const float* w, const float* m, const float* v) {
        ranges.push_back(r);
        std::vector<float> all(w, w + r.count);
        all.insert(all.end(), m, m + r.count);
        all.insert(all.end(), v, v + r.count);
        saved.push_back(all);
      });
    }
    OffloadEngine e(o, kBlocks, torch::zeros({kNumel}));
    e.load_state(
        [&](const FlatRange& want, float* w, float* m, float* v) {
          for (std::size_t i = 0; i < ranges.size(); ++i) {
            const FlatRange& r = ranges[i];
            if (want.begin < r.begin || want.end() > r.end()) continue;
            const std::int64_t at = want.begin - r.begin;
            std::copy_n(saved[i].begin() + at, want.count, w);
            std::copy_n(saved[i].begin() + r.count + at, want.count, m);
            std::copy_n(saved[i].begin() + 2 * r.count + at, want.count, v);
            return;
          }
          throw Error("range not saved");
        },
        steps / 2);
    const auto rest = train(e, steps / 2, steps, row0, rows);
    losses.insert(losses.end(), rest.begin(), rest.end());
  }
  // The losses of this rank's slice; the parent adds them up over ranks.
  std::ofstream l(out + "/losses." + std::to_string(rank));
  l.precision(17);
  for (double x : losses) l << x << '\n';
  comm->barrier();
}

TEST_CASE("two and three ranks train like one rank on the whole batch, at every home") {
  if (!comm::gloo_available()) {
    MESSAGE("skipped: this build has no Gloo backend (LibTorch's Gloo headers not found)");
    return;
  }
  test::TempDir dir("zinf-engine-ranks");
  constexpr int kSteps = 6;
  struct Case {
    std::string name;
    int world;
  };
  for (const Case& c : {Case{"device", 2}, Case{"cpu", 2}, Case{"nvme", 2}, Case{"device-nvme", 2},
                        Case{"replicated-cpu", 2}, Case{"cpu", 3}, Case{"cpu-acc", 2}, Case{"replicated-cpu-acc", 2},
                        Case{"device-nd", 2}, Case{"nvme-nd", 3}, Case{"replicated-cpu-nd", 2}}) {
    const std::string label = c.name + " x" + std::to_string(c.world);
    CAPTURE(label);
    const std::string out = dir.file(c.name + std::to_string(c.world));
    std::system(("mkdir -p " + out).c_str());
    const Result want = reference(c.name, out + "/swap-ref", kSteps);
    REQUIRE(launch_ranks(c.world, c.name, out, kSteps, false) == 0);
    // Losses: the ranks' slice losses add up to the whole batch's.
    const std::vector<double> sum = summed_losses(out, c.world, kSteps);
    for (int s = 0; s < kSteps; ++s) CHECK(sum[s] == doctest::Approx(want.losses[s]).epsilon(1e-5));
    // Parameters gathered by every rank equal the one-rank run's.
    std::ifstream pin(out + "/params");
    const std::vector<float> got = parse(pin, kNumel);
    double diff = 0;
    for (std::int64_t i = 0; i < kNumel; ++i) diff = std::max(diff, double(std::abs(got[i] - want.params[i])));
    CHECK(diff < 1e-5);
    // Owned ranges tile [0, numel) exactly once and hold the one-rank master weights.
    std::vector<int> covered(kNumel, 0);
    double master_diff = 0;
    for (int r = 0; r < c.world; ++r) {
      std::ifstream in(out + "/state." + std::to_string(r));
      std::int64_t begin = 0, count = 0;
      while (in >> begin >> count) {
        const std::vector<float> w = parse(in, count);
        for (std::int64_t i = 0; i < count; ++i) {
          ++covered[begin + i];
          master_diff = std::max(master_diff, double(std::abs(w[i] - want.master[begin + i])));
        }
      }
    }
    CHECK(std::count(covered.begin(), covered.end(), 1) == kNumel);
    CHECK(master_diff < 1e-5);
  }
}

TEST_CASE("a two-rank run resumed from its ranges continues exactly") {
  if (!comm::gloo_available()) return;
  test::TempDir dir("zinf-engine-ranks");
  constexpr int kSteps = 6;
  for (const std::string name : {"nvme", "replicated-cpu", "cpu-nd"}) {
    CAPTURE(name);
    const std::string out = dir.file(name);
    std::system(("mkdir -p " + out).c_str());
    const Result want = reference(name, out + "/swap-ref", kSteps);
    REQUIRE(launch_ranks(2, name, out, kSteps, true) == 0);
    const std::vector<double> sum = summed_losses(out, 2, kSteps);
    for (int s = 0; s < kSteps; ++s) CHECK(sum[s] == doctest::Approx(want.losses[s]).epsilon(1e-5));
  }
}
