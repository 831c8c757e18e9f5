// Data-parallel SAE training speed: steps/s of 1..W processes on this machine (c10d Gloo over
// loopback, a file store), each rank computing its share of one global batch, and the per-step
// all-reduce of the gradients alone (2 D n + 2 n + D floats) timed apart. Ranks split the
// machine's cores (torch threads = cores / W), so on one machine the figures show the cost of
// the reduction, not a speed-up; across machines each rank brings its own cores or GPU.
// Usage: sae_dist_bench [--dim 768] [--expansion 8] [--batch 1024] [--arch topk] [--k 32]
//                       [--steps 5] [--max-world 2] [--reps 5]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "sae/dist.h"
#include "sae/sae.h"
#include "sae/trainer.h"

extern char** environ;

using namespace cl;
using Clock = std::chrono::steady_clock;

namespace {

struct Opts {
  int64_t dim = 768, expansion = 8, batch = 1024, k = 32, steps = 5, reps = 5;
  int max_world = 2;
  std::string arch = "topk";
  // child mode
  int rank = -1, world = 1, threads = 1;
  std::string store, result;
};

Opts parse(int argc, char** argv) {
  Opts o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--dim") o.dim = std::stoll(v);
    else if (a == "--expansion") o.expansion = std::stoll(v);
    else if (a == "--batch") o.batch = std::stoll(v);
    else if (a == "--k") o.k = std::stoll(v);
    else if (a == "--steps") o.steps = std::stoll(v);
    else if (a == "--reps") o.reps = std::stoll(v);
    else if (a == "--max-world") o.max_world = std::stoi(v);
    else if (a == "--arch") o.arch = v;
    else if (a == "--rank") o.rank = std::stoi(v);
    else if (a == "--world") o.world = std::stoi(v);
    else if (a == "--threads") o.threads = std::stoi(v);
    else if (a == "--store") o.store = v;
    else if (a == "--result") o.result = v;
    else {
      fmt::print(stderr, "sae_dist_bench: unknown option {}\n", a);
      std::exit(2);
    }
  }
  return o;
}

// One rank: its share of every global batch, `steps` timed optimizer steps, then the all-reduce
// of a gradient-sized buffer alone.
int child(const Opts& o) {
  torch::set_num_threads(o.threads);
  std::unique_ptr<sae::Comm> comm;
  if (o.world > 1) {
    sae::DistParams dp;
    dp.rank = o.rank;
    dp.world_size = o.world;
    dp.init = "file://" + o.store;
    comm = sae::connect(dp, torch::Device(torch::kCPU));
  }
  sae::TrainParams p;
  p.arch = o.arch;
  p.expansion = o.expansion;
  p.k = o.k;
  p.batch = o.batch;
  const int64_t D = o.dim, n = D * o.expansion;
  sae::Trainer tr(p, D, 1 << 20, torch::Device(torch::kCPU));
  tr.comm = comm.get();
  torch::manual_seed(1);  // the same global batch on every rank; each takes its rows
  const int64_t lo = o.batch * o.rank / o.world, hi = o.batch * (o.rank + 1) / o.world;
  auto x_all = torch::relu(torch::randn({o.batch, D}) * 0.8 + 0.3);
  auto x = x_all.slice(0, lo, hi).contiguous();
  tr.init(x_all);
  tr.step(x, 1000, o.batch);  // warm-up: buffers, thread pools
  double best = 1e30;
  for (int64_t s = 0; s < o.steps; ++s) {
    if (comm) comm->barrier();
    const auto t0 = Clock::now();
    tr.step(x, 1000, o.batch);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double reduce_s = 0;
  const int64_t floats = 2 * D * n + 2 * n + D;
  if (comm) {
    auto buf = torch::randn({floats});
    comm->all_reduce(buf);
    reduce_s = 1e30;
    for (int64_t r = 0; r < o.reps; ++r) {
      comm->barrier();
      const auto t0 = Clock::now();
      comm->all_reduce(buf);
      reduce_s = std::min(reduce_s, std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  if (o.rank == 0) {
    std::ofstream(o.result) << nlohmann::json{{"step_s", best},       {"reduce_s", reduce_s}, {"bytes", floats * 4},
                                              {"steps", o.steps + 1}, {"full_offers", tr.full_offers}}
                                   .dump();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Opts o = parse(argc, argv);
  if (o.rank >= 0) return child(o);
  if (!sae::dist_available(torch::Device(torch::kCPU))) {
    fmt::print("sae_dist_bench: no c10d backend in this build ({})\n", sae::dist_backends());
    return 1;
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("sae_dist_bench_{}", ::getpid());
  std::filesystem::create_directories(dir);
  fmt::print("SAE {} D {} n {} (expansion {}), k {}, global batch {}, CPU, {} cores, Gloo over loopback\n", o.arch,
             o.dim, o.dim * o.expansion, o.expansion, o.k, o.batch, cores);
  fmt::print("{:>5} {:>14} {:>10} {:>9} {:>10} {:>16} {:>14}\n", "ranks", "threads/rank", "step ms", "steps/s",
             "rows/s", "all-reduce ms", "reduce/step");
  for (int w = 1; w <= o.max_world; ++w) {
    const int threads = std::max(1, cores / w);
    const std::string store = (dir / fmt::format("store{}", w)).string(), result = (dir / "result.json").string();
    std::filesystem::remove(result);
    std::vector<pid_t> pids;
    for (int r = 0; r < w; ++r) {
      std::vector<std::string> args = {"/proc/self/exe", "--rank", std::to_string(r), "--world", std::to_string(w),
                                       "--threads", std::to_string(threads), "--store", store, "--result", result,
                                       "--dim", std::to_string(o.dim), "--expansion", std::to_string(o.expansion),
                                       "--batch", std::to_string(o.batch), "--k", std::to_string(o.k),
                                       "--steps", std::to_string(o.steps), "--reps", std::to_string(o.reps),
                                       "--arch", o.arch};
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      pid_t pid = 0;
      if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, av.data(), environ) != 0) {
        fmt::print(stderr, "sae_dist_bench: cannot start rank {}\n", r);
        return 1;
      }
      pids.push_back(pid);
    }
    bool ok = true;
    for (pid_t pid : pids) {
      int st = 0;
      waitpid(pid, &st, 0);
      ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    if (!ok || !std::filesystem::exists(result)) {
      fmt::print(stderr, "sae_dist_bench: a rank of the {}-rank run failed\n", w);
      return 1;
    }
    std::ifstream in(result);
    const auto j = nlohmann::json::parse(in);
    const double step = j["step_s"], reduce = j["reduce_s"];
    fmt::print("{:>5} {:>14} {:>10.1f} {:>9.2f} {:>10.0f} {:>16} {:>14}\n", w, threads, step * 1e3, 1.0 / step,
               static_cast<double>(o.batch) / step,
               w == 1 ? std::string("-") : fmt::format("{:.1f} ({:.0f} MB)", reduce * 1e3, j["bytes"].get<double>() / 1e6),
               w == 1 ? std::string("-") : fmt::format("{:.0f}%", 100.0 * reduce / step));
    if (w > 1 && o.arch.find("batchtopk") != std::string::npos)
      fmt::print("      batchtopk cut: {} of {} steps needed every rank's best k B values (the rest: ~1.25 k B / W)\n",
                 j["full_offers"].get<int64_t>(), j["steps"].get<int64_t>());
  }
  std::filesystem::remove_all(dir);
  return 0;
}
