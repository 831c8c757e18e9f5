// embed_bench MODEL.pt IMAGE_DIR [N]: speed of the embedding exporter's two halves on this
// machine: decode+preprocess per image (one thread) and model forward per image (batch 32).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/torch.h>

#include "core/device.h"
#include "tools/embed/embed.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: embed_bench MODEL.pt IMAGE_DIR [N]\n");
    return 2;
  }
  cl::init_torch_threads();
  const std::string model = argv[1], dir = argv[2];
  const size_t n_max = argc > 3 ? std::stoul(argv[3]) : 256;
  auto pre = cl::embed::load_preprocess(cl::embed::default_preprocess_path(model));
  std::vector<std::string> paths;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file() && cl::embed::is_image_extension(e.path().string())) paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  if (paths.size() > n_max) paths.resize(n_max);
  const int64_t S = pre.image_size;
  std::vector<float> buf(3 * S * S);
  auto t0 = std::chrono::steady_clock::now();
  for (auto& p : paths) cl::embed::preprocess_file(p, pre, buf.data());
  double t_pre = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("preprocess: %zu images, %.2f ms/image (one thread)\n", paths.size(), 1e3 * t_pre / paths.size());

  auto m = torch::jit::load(model);
  m.eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({32, 3, S, S});
  m.forward({x});  // warm-up
  const int reps = 4;
  t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) m.forward({x});
  double t_fwd = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("forward: batch 32, %.2f ms/image, %.1f images/s (%d torch threads)\n", 1e3 * t_fwd / (reps * 32),
              reps * 32 / t_fwd, torch::get_num_threads());
  return 0;
}
