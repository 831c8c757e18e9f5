// Ground-truth dictionary recovery for each SAE architecture on generated sparse data.
#include "tests/torch_doctest.h"

#include <chrono>

#include "sae/sae.h"
#include "tests/sae/sae_test_data.h"

using namespace cl;

namespace {

struct Recovery {
  double cos = 0, fvu = 1, l0 = 0, seconds = 0;
};

Recovery recover(const sae::TrainParams& p, const test::GroundTruth& g) {
  sae::TrainOptions opt;
  const auto t0 = std::chrono::steady_clock::now();
  SaeWeights w = sae::train(g.x.data(), g.n, g.d, p, torch::Device(torch::kCPU), opt);
  Recovery r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.cos = test::mean_max_cosine(g, w);
  r.fvu = w.metrics.at("fvu").get<double>();
  r.l0 = w.metrics.at("l0").get<double>();
  MESSAGE(p.arch << ": mean max cosine " << r.cos << ", fvu " << r.fvu << ", l0 " << r.l0 << ", "
                 << r.seconds << " s");
  return r;
}

sae::TrainParams small_params(const std::string& arch) {
  sae::TrainParams p;
  p.arch = arch;
  p.expansion = 8;  // 1024 latents for 512 true directions in 128 dims
  p.batch = 512;
  p.epochs = 12;
  p.lr = 4e-3;
  p.k = 8;
  p.l1 = 1e-3;
  p.lr_decay_frac = 0.3;
  p.checkpoint_every = 0;
  p.dead_window = 4096;
  if (arch == "relu-l1") {
    // L1 needs a stronger push than top-k to reach a sparse code in a few hundred steps.
    p.batch = 256;
    p.lr = 1e-2;
    p.l1 = 2e-3;
    p.epochs = 24;
  } else if (arch == "batchtopk") {
    p.batch = 256;
  }
  return p;
}

}  // namespace

TEST_CASE("sae recovers a ground-truth dictionary: relu-l1") {
  auto g = test::make_ground_truth(16384, 128, 512, 7);
  auto r = recover(small_params("relu-l1"), g);
  CHECK(r.cos >= 0.9);
  CHECK(r.fvu <= 0.1);
}

TEST_CASE("sae recovers a ground-truth dictionary: topk") {
  auto g = test::make_ground_truth(16384, 128, 512, 8);
  auto r = recover(small_params("topk"), g);
  CHECK(r.cos >= 0.9);
  CHECK(r.fvu <= 0.1);
}

TEST_CASE("sae recovers a ground-truth dictionary: batchtopk") {
  auto g = test::make_ground_truth(16384, 128, 512, 9);
  auto r = recover(small_params("batchtopk"), g);
  CHECK(r.cos >= 0.9);
  CHECK(r.fvu <= 0.1);
}
