// Streamed SAE training vs the same run in memory: one epoch of a small SAE (so the input, not
// the matrix products, is a visible share of the time) over an N x D embeddings file, with a
// buffer budget that forces streaming. The file's pages are dropped from the cache before each
// run; a streamed run's first pass (the data mean) reads it from the disk, the epoch then reads
// what the page cache kept. Prints the time to the end of the epoch, rows/s and the stream's
// input figures: seconds spent reading (on the prefetch thread) and seconds the training thread
// waited for rows (without prefetch it would wait them all).
// Usage: sae_stream_bench [--rows 200000] [--dim 768] [--expansion 1] [--k 32] [--batch 4096]
//                         [--budget-gb 0.25] [--dir /tmp]
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <torch/torch.h>

#include "core/embeddings.h"
#include "sae/sae.h"

using namespace cl;
using clk = std::chrono::steady_clock;

namespace {

void evict_from_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double seconds_since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

}  // namespace

int main(int argc, char** argv) {
  int64_t rows = 200000, dim = 768, expansion = 1, k = 32, batch = 4096;
  double budget_gb = 0.25;
  std::string dir = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rows") rows = std::stoll(argv[i + 1]);
    else if (a == "--dim") dim = std::stoll(argv[i + 1]);
    else if (a == "--expansion") expansion = std::stoll(argv[i + 1]);
    else if (a == "--k") k = std::stoll(argv[i + 1]);
    else if (a == "--batch") batch = std::stoll(argv[i + 1]);
    else if (a == "--budget-gb") budget_gb = std::stod(argv[i + 1]);
    else if (a == "--dir") dir = argv[i + 1];
  }
  torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::string path = dir + "/sae_stream_bench.h5";
  {
    std::mt19937 rng(0);
    std::normal_distribution<float> nd(0.f, 1.f);
    const int64_t chunk = 8192;
    std::vector<float> block(static_cast<size_t>(chunk * dim));
    std::vector<std::string> ids;
    EmbeddingsWriter w(path, dim, {{"bench", "sae_stream_bench"}});
    for (int64_t s = 0; s < rows; s += chunk) {
      const int64_t c = std::min(chunk, rows - s);
      for (auto& v : block) v = std::max(0.f, 0.8f * nd(rng) + 0.3f);
      ids.clear();
      for (int64_t i = 0; i < c; ++i) ids.push_back("img_" + std::to_string(s + i));
      w.append(block.data(), c, ids);
    }
    w.commit();
  }
  std::printf("%lld x %lld float32 embeddings (%.0f MB), topk SAE %lld latents k %lld, batch %lld, 1 epoch, %d threads\n",
              static_cast<long long>(rows), static_cast<long long>(dim), rows * dim * 4 / 1e6,
              static_cast<long long>(expansion * dim), static_cast<long long>(k), static_cast<long long>(batch),
              torch::get_num_threads());
  sae::TrainParams p;
  p.arch = "topk";
  p.expansion = expansion;
  p.k = k;
  p.batch = batch;
  p.epochs = 1;
  p.checkpoint_every = 0;
  const torch::Device cpu(torch::kCPU);
  for (const bool streamed : {false, true}) {
    p.memory_gb = streamed ? budget_gb : 64.0;
    EmbeddingsReader reader(path);
    evict_from_cache(path);
    const auto t0 = clk::now();
    const SaeWeights w = sae::train(reader, p, cpu, sae::TrainOptions{});
    const double total = seconds_since(t0);
    // last_epoch.time_s: from the run's start (sample, data mean) to the end of the epoch;
    // total adds loading (in memory) and the final evaluation pass.
    const double train_s = w.metrics["last_epoch"]["time_s"].get<double>();
    if (!streamed) {
      std::printf("  in memory: %.2f s to the end of the epoch, %.0f rows/s (%.2f s with loading and the final eval)\n",
                  train_s, rows / train_s, total);
      continue;
    }
    const auto& in = w.metrics["input"];
    std::printf("  streamed, %.2f GB budget: %.2f s to the end of the epoch, %.0f rows/s (%.2f s with the final eval)\n", budget_gb,
                train_s, rows / train_s, total);
    std::printf("    read %lld rows in %.2f s on the prefetch thread (%.0f MB/s); training waited %.2f s (%.0f%% of the "
                "read time)\n",
                static_cast<long long>(in["rows_read"].get<int64_t>()), in["read_s"].get<double>(),
                in["rows_read"].get<int64_t>() * dim * 4 / 1e6 / in["read_s"].get<double>(), in["wait_s"].get<double>(),
                100.0 * in["wait_s"].get<double>() / in["read_s"].get<double>());
  }
  std::filesystem::remove(path);
  return 0;
}
