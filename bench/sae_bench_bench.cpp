// sae_bench_bench: the speed of `sae bench` scoring (explain::bench_saes) on generated data:
// n x d embeddings (ReLU'd Gaussian plus one planted direction per concept column), C binary
// columns, and a top-k SAE file of L latents (random unit decoder rows, the encoder their
// transpose) scored `--dicts` times as separate dictionaries. Prints the split and dense-probe
// time, each dictionary's time with its encode alone measured apart, and the total.
// Target (issue 30): 10 dictionaries of 8,192 latents on 100,000 x 1,024 with 20 columns < 2 min.
// Usage: sae_bench_bench [--n 100000] [--d 1024] [--latents 8192] [--k 32] [--columns 20] [--dicts 10]
//                        [--baselines pca,kmeans] [--dir /tmp]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

#include "core/device.h"
#include "core/random.h"
#include "core/sae_weights.h"
#include "explain/bench.h"
#include "sae/dictionary.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int64_t n = 100000, d = 1024, L = 8192, k = 32, C = 20, n_dicts = 10;
  std::string dir = std::filesystem::temp_directory_path().string(), baselines;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--n") n = std::stoll(argv[i + 1]);
    else if (a == "--d") d = std::stoll(argv[i + 1]);
    else if (a == "--latents") L = std::stoll(argv[i + 1]);
    else if (a == "--k") k = std::stoll(argv[i + 1]);
    else if (a == "--columns") C = std::stoll(argv[i + 1]);
    else if (a == "--dicts") n_dicts = std::stoll(argv[i + 1]);
    else if (a == "--baselines") baselines = argv[i + 1];
    else if (a == "--dir") dir = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: sae_bench_bench [--n N] [--d D] [--latents L] [--k K] [--columns C] [--dicts M] "
                           "[--baselines pca,nmf,kmeans] [--dir DIR]\n");
      return 2;
    }
  }
  cl::init_torch_threads();
  const auto secs = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  cl::Rng rng(3);
  // Concept directions and the embeddings.
  std::vector<float> u(static_cast<size_t>(C * d));
  for (auto& v : u) v = static_cast<float>(rng.normal() / std::sqrt(static_cast<double>(d)));
  cl::explain::BenchData data;
  std::vector<float> x(static_cast<size_t>(n * d));
  data.annotations.labels.assign(static_cast<size_t>(C), cl::explain::ConceptLabels(static_cast<size_t>(n)));
  for (int64_t c = 0; c < C; ++c) data.annotations.names.push_back(fmt::format("c{}", c));
  data.columns = data.annotations.names;
  for (int64_t i = 0; i < n; ++i) {
    float* row = x.data() + i * d;
    for (int64_t j = 0; j < d; ++j) row[j] = static_cast<float>(std::max(0.0, rng.normal()) * 0.1);
    for (int64_t c = 0; c < C; ++c) {
      const bool on = rng.bernoulli(0.2);
      data.annotations.labels[static_cast<size_t>(c)][static_cast<size_t>(i)] = on;
      if (on)
        for (int64_t j = 0; j < d; ++j) row[j] += 3.0f * u[static_cast<size_t>(c * d + j)];
    }
    data.ids.push_back(std::to_string(i));
  }
  data.x_nd = x.data(), data.n = n, data.d = d, data.embeddings_path = "generated";
  // One SAE file: random unit decoder rows, some of them the concept directions.
  cl::SaeWeights w;
  w.arch = "topk", w.k = k, w.d_in = d, w.n_latents = L;
  w.W_dec.resize(static_cast<size_t>(L * d));
  for (int64_t l = 0; l < L; ++l) {
    double nrm = 0;
    for (int64_t j = 0; j < d; ++j) {
      const float v = l < C ? u[static_cast<size_t>(l * d + j)] : static_cast<float>(rng.normal());
      w.W_dec[static_cast<size_t>(l * d + j)] = v, nrm += double(v) * v;
    }
    for (int64_t j = 0; j < d; ++j) w.W_dec[static_cast<size_t>(l * d + j)] /= static_cast<float>(std::sqrt(nrm));
  }
  w.W_enc.resize(static_cast<size_t>(d * L));
  for (int64_t j = 0; j < d; ++j)
    for (int64_t l = 0; l < L; ++l) w.W_enc[static_cast<size_t>(j * L + l)] = w.W_dec[static_cast<size_t>(l * d + j)];
  w.b_enc.assign(static_cast<size_t>(L), 0.f);
  w.b_dec.assign(static_cast<size_t>(d), 0.f);
  const std::string sae_path = (std::filesystem::path(dir) / "sae_bench_bench_sae.h5").string();
  cl::write_sae(sae_path, w);
  const cl::Device cpu(c10::kCPU);

  cl::explain::BenchParams p;
  p.baselines.clear();
  for (size_t s = 0; s < baselines.size();) {
    const size_t e = std::min(baselines.find(',', s), baselines.size());
    if (e > s) p.baselines.push_back(baselines.substr(s, e - s));
    s = e + 1;
  }
  auto t0 = Clock::now();
  const auto split = cl::explain::split_rows(n, p.holdout, p.seed);
  const auto bs = cl::explain::make_bench_split(data, split, p);
  const double split_s = secs(t0);
  t0 = Clock::now();
  const auto dict = cl::sae::load_sae_dictionary(sae_path, cpu);
  const auto acts = dict->encode(x.data(), n);
  const double encode_s = secs(t0);
  fmt::print("sae_bench_bench: {} x {} embeddings, {} columns, {} dictionaries of {} latents (top-k {}), baselines [{}]\n",
             n, d, C, n_dicts, L, k, baselines);
  fmt::print("split + dense probes: {:.1f} s; one dictionary's encode of every row: {:.1f} s ({:.0f} rows/s, L0 {:.1f})\n",
             split_s, encode_s, static_cast<double>(n) / encode_s, static_cast<double>(acts.nnz()) / static_cast<double>(n));
  cl::explain::BenchInputs in;
  in.saes.assign(static_cast<size_t>(n_dicts), sae_path);
  t0 = Clock::now();
  const auto r = cl::explain::bench_saes(data, in, p, cpu);
  const double total = secs(t0);
  for (const auto& e : r.entries)
    fmt::print("  {:<28} {:6.1f} s (scoring without the encode ~{:.1f} s)  k=1 AUROC {:.3f}  TPP {:.3f}\n", e.label,
               e.seconds, e.kind == "sae" ? e.seconds - encode_s : e.seconds, e.mean_probe_auroc[0], e.tpp.tpp[0]);
  fmt::print("total bench_saes: {:.1f} s for {} dictionaries (target < 120 s for 10 x 8,192 latents on 100,000 x 1,024)\n",
             total, r.entries.size());
  std::filesystem::remove(sae_path);
  return 0;
}
