// SAE speed figures: one training step (D = 768 and 1024, expansion 8, batch 4096) per
// architecture (matryoshka-topk with its default nested sizes 16, 64, 256, ...) vs the time of
// that step's matrix multiplications alone, an autograd (eager)
// version of the relu-l1 step as the PyTorch-style baseline, and the top-k decode crossover
// between the dense product and gathering only the k active decoder rows.
// --precision fp32|tf32|bf16|all: the step's matmuls in float32, TF32 (CUDA only) or bfloat16
// inputs (TrainParams tf32/bf16); the matmul-only time uses the same precision, so the
// matmul/step ratio is the fraction of the GEMM bound the step reaches.
// Usage: sae_bench [--device cpu|cuda] [--reps N] [--dims 768,1024] [--batch 4096] [--precision fp32]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/device.h"
#include "sae/sae.h"
#include "sae/tensors.h"
#include "sae/trainer.h"

using namespace cl;
using Clock = std::chrono::steady_clock;

namespace {

void sync(torch::Device dev) {
#ifdef CONCEPTLAB_WITH_CUDA
  if (dev.is_cuda()) torch::cuda::synchronize();
#else
  (void)dev;
#endif
}

// Fastest of reps runs after a warm-up: the machine is shared, and the minimum is the figure
// least disturbed by other load.
template <typename F>
double time_s(torch::Device dev, int reps, F&& f) {
  f();
  sync(dev);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    sync(dev);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Embedding-like inputs: non-negative, a few large coordinates.
torch::Tensor fake_embeddings(int64_t b, int64_t d, torch::Device dev) {
  torch::manual_seed(1);
  return torch::relu(torch::randn({b, d}) * 0.8 + 0.3).to(dev);
}

// The same relu-l1 step written the PyTorch way: autograd + torch::optim::Adam.
double autograd_step_time(int64_t D, int64_t B, torch::Device dev, int reps) {
  torch::AutoGradMode grad_on(true);
  const int64_t n = 8 * D;
  auto o = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  auto W_enc = (torch::randn({D, n}, o) / std::sqrt(double(D))).requires_grad_();
  auto b_enc = torch::zeros({n}, o).requires_grad_();
  auto W_dec = torch::randn({n, D}, o);
  W_dec = (W_dec / W_dec.norm(2, {1}, true)).requires_grad_();
  auto b_dec = torch::zeros({D}, o).requires_grad_();
  torch::optim::Adam opt({W_enc, b_enc, W_dec, b_dec}, torch::optim::AdamOptions(5e-4));
  auto x = fake_embeddings(B, D, dev);
  return time_s(dev, reps, [&] {
    opt.zero_grad();
    auto z = torch::relu(torch::addmm(b_enc, x - b_dec, W_enc));
    auto xhat = torch::addmm(b_dec, z, W_dec);
    auto loss = (xhat - x).pow(2).mean() + 3e-5 * z.abs().sum(1).mean();
    loss.backward();
    {
      torch::NoGradGuard ng;
      auto g = W_dec.grad();
      g.sub_((g * W_dec).sum(1, true) * W_dec);
    }
    opt.step();
    {
      torch::NoGradGuard ng;
      W_dec.div_(W_dec.norm(2, {1}, true));
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::string device_flag = "auto";
  int reps = 3;
  int64_t B = 4096;
  std::vector<int64_t> dims = {768, 1024};
  std::vector<std::string> precisions = {"fp32"};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--precision"))
      precisions = std::strcmp(argv[i + 1], "all") ? std::vector<std::string>{argv[i + 1]}
                                                    : std::vector<std::string>{"fp32", "tf32", "bf16"};
    if (!std::strcmp(argv[i], "--device")) device_flag = argv[i + 1];
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--batch")) B = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dims")) {
      dims.clear();
      std::stringstream ss(argv[i + 1]);
      std::string tok;
      while (std::getline(ss, tok, ',')) dims.push_back(std::stoll(tok));
    }
  }
  for (const auto& prec : precisions)
    if (prec != "fp32" && prec != "tf32" && prec != "bf16") {
      std::fprintf(stderr, "sae_bench: --precision %s, expected fp32, tf32, bf16 or all\n", prec.c_str());
      return 2;
    }
  init_torch_threads();
  const torch::Device dev = pick_device(device_flag);
  torch::NoGradGuard ng;
  std::printf("sae_bench on %s, %d threads, batch %lld, expansion 8, k 32, %d reps\n", dev.str().c_str(),
              torch::get_num_threads(), static_cast<long long>(B), reps);
  std::printf("%-6s %-16s %-5s %12s %9s %14s %18s %16s\n", "D", "arch", "prec", "step_ms", "steps/s", "matmul_only_ms",
              "matmul/step ratio", "GFLOP/s (5 mm)");

  for (int64_t D : dims) {
    const int64_t n = 8 * D;
    auto x = fake_embeddings(B, D, dev);
    for (const std::string& prec : precisions) {
      if (prec == "tf32" && !dev.is_cuda()) continue;  // TF32 is a CUDA tensor-core mode
#ifdef CONCEPTLAB_WITH_CUDA
      if (dev.is_cuda()) at::globalContext().setAllowTF32CuBLAS(prec == "tf32");
#endif
      const auto mm_dtype = prec == "bf16" ? torch::kBFloat16 : torch::kFloat32;
      for (const std::string arch : {"relu-l1", "topk", "batchtopk", "matryoshka-topk"}) {
        sae::TrainParams p;
        p.arch = arch;
        p.batch = B;
        p.tf32 = prec == "tf32";
        p.bf16 = prec == "bf16";
        sae::Trainer tr(p, D, 1'000'000'000, dev);  // huge dead window: AuxK stays idle (no dead latents)
        tr.init(x.slice(0, 0, 1024));
        const double step = time_s(dev, reps, [&] { tr.step(x, 1000); });

        // The step's five matrix products alone, same shapes, operand layouts and precision.
        auto xc = (x - tr.t.b_dec).to(mm_dtype);
        auto W_enc = tr.t.W_enc.to(mm_dtype), W_dec = tr.t.W_dec.to(mm_dtype);
        auto b_enc = tr.t.b_enc.to(mm_dtype), b_dec = tr.t.b_dec.to(mm_dtype);
        auto z = torch::relu(torch::addmm(b_enc, xc, W_enc));
        auto g = torch::randn({B, D}, x.options()).to(mm_dtype);
        auto dpre = torch::randn({B, n}, x.options()).to(mm_dtype);
        const double mm = time_s(dev, reps, [&] {
          auto a = torch::addmm(b_enc, xc, W_enc);
          auto b = torch::addmm(b_dec, z, W_dec);
          auto c = torch::mm(z.t(), g);
          auto d = torch::mm(g, W_dec.t());
          auto e = torch::mm(xc.t(), dpre);
        });
        const double gflop = 5.0 * 2.0 * double(B) * double(D) * double(n) / 1e9;
        std::printf("%-6lld %-16s %-5s %12.1f %9.1f %14.1f %18.3f %16.1f\n", static_cast<long long>(D), arch.c_str(),
                    prec.c_str(), step * 1e3, 1.0 / step, mm * 1e3, mm / step, gflop / step);
        std::fflush(stdout);
      }
    }
#ifdef CONCEPTLAB_WITH_CUDA
    if (dev.is_cuda()) at::globalContext().setAllowTF32CuBLAS(false);
#endif
    const double ag = autograd_step_time(D, B, dev, reps);
    std::printf("%-6lld %-10s %12.1f   (LibTorch autograd + torch::optim::Adam, the eager-PyTorch design)\n",
                static_cast<long long>(D), "relu-eager", ag * 1e3);
    std::fflush(stdout);
  }

  // Top-k decode: dense z W_dec (z scattered into [B, n]) vs gathering the k active rows.
  const int64_t D = 768, k = 32;
  std::printf("\ntop-k decode, D %lld, k %lld, batch %lld\n%-10s %-8s %12s %12s %10s %12s\n", static_cast<long long>(D),
              static_cast<long long>(k), static_cast<long long>(B), "n_latents", "expand", "dense_ms", "sparse_ms",
              "winner", "max|diff|");
  for (int64_t n : {64, 128, 256, 512, 768, 1536, 3072, 6144, 12288, 24576}) {
    const double e = double(n) / double(D);
    sae::Tensors t;
    auto o = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
    t.W_dec = torch::randn({n, D}, o);
    t.b_dec = torch::zeros({D}, o);
    auto idx = std::get<1>(torch::rand({B, n}, o).topk(k, 1));  // k distinct latents per row
    auto vals = torch::rand({B, k}, o);
    const double dense = time_s(dev, reps, [&] {
      auto zd = torch::zeros({B, n}, o).scatter_(1, idx, vals);
      auto r = sae::decode_dense(t, zd);
    });
    const double sparse = time_s(dev, reps, [&] { auto r = sae::decode_sparse(t, vals, idx); });
    const double err = (sae::decode_sparse(t, vals, idx) -
                        sae::decode_dense(t, torch::zeros({B, n}, o).scatter_(1, idx, vals)))
                           .abs()
                           .max()
                           .item<double>();
    std::printf("%-10lld %-8.3g %12.2f %12.2f %10s %12.2g\n", static_cast<long long>(n), e, dense * 1e3, sparse * 1e3,
                sparse < dense ? "sparse" : "dense", err);
    std::fflush(stdout);
  }
  return 0;
}
