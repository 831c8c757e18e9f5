// SAE behaviour: metrics against float64 references, decoder unit norm after every step,
// exact top-k, the batchtopk threshold at inference, bitwise resume, streaming, encode files,
// configs, the CUDA path vs CPU, and the reference checkpoint import.
#include "tests/torch_doctest.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "core/activations.h"
#include "core/device.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/formats.h"
#include "core/h5.h"
#include "core/npy.h"
#include "sae/sae.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

const torch::Device kCpu(torch::kCPU);

sae::TrainParams tiny_params(const std::string& arch) {
  sae::TrainParams p;
  p.arch = arch;
  p.expansion = 4;
  p.k = 6;
  p.batch = 256;
  p.epochs = 4;
  p.lr = 3e-3;
  p.l1 = 1e-3;
  p.dead_window = 512;
  p.checkpoint_every = 1;
  p.aux_k = 16;
  return p;
}

// A random SAE with negative encoder biases so codes are sparse and some latents stay silent.
SaeWeights random_sae(const std::string& arch, int64_t d, int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  SaeWeights w;
  w.arch = arch;
  w.d_in = d;
  w.n_latents = n;
  w.k = 5;
  w.threshold = 0.3;
  for (int64_t i = 0; i < d * n; ++i) w.W_enc.push_back(static_cast<float>(nd(rng) / std::sqrt(double(d))));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    std::vector<double> row(static_cast<size_t>(d));
    for (auto& v : row) {
      v = nd(rng);
      s += v * v;
    }
    for (auto v : row) w.W_dec.push_back(static_cast<float>(v / std::sqrt(s)));
  }
  for (int64_t i = 0; i < n; ++i) w.b_enc.push_back(static_cast<float>(-0.9 - 0.6 * (i % 7 == 0)));
  for (int64_t i = 0; i < d; ++i) w.b_dec.push_back(static_cast<float>(0.1 * nd(rng)));
  return w;
}

// Float64 codes of one row, straight from the definition of each architecture.
std::vector<double> codes_f64(const SaeWeights& w, const float* x) {
  auto pre = test::pre_acts_f64(w, x);
  std::vector<double> z(pre.size(), 0.0);
  if (w.arch == "relu-l1") {
    for (size_t j = 0; j < pre.size(); ++j) z[j] = std::max(0.0, pre[j]);
  } else if (w.arch == "batchtopk") {
    for (size_t j = 0; j < pre.size(); ++j) z[j] = pre[j] > std::max(w.threshold, 0.0) ? pre[j] : 0.0;
  } else {
    std::vector<size_t> order(pre.size());
    for (size_t j = 0; j < order.size(); ++j) order[j] = j;
    std::partial_sort(order.begin(), order.begin() + w.k, order.end(), [&](size_t a, size_t b) { return pre[a] > pre[b]; });
    for (int64_t a = 0; a < w.k; ++a) z[order[static_cast<size_t>(a)]] = std::max(0.0, pre[order[static_cast<size_t>(a)]]);
  }
  return z;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("sae eval metrics equal direct float64 computations") {
  for (const std::string arch : {"relu-l1", "topk", "batchtopk"}) {
    CAPTURE(arch);
    const int64_t n = 700, d = 24, nl = 64;
    auto g = test::make_ground_truth(n, d, 40, 3);
    auto w = random_sae(arch, d, nl, 11);
    const int64_t window = 300;
    auto m = sae::to_json(sae::Model(w, kCpu).evaluate(g.x.data(), n, {128, window}));

    double sse = 0, l0 = 0, l1 = 0;
    std::vector<double> mean(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < d; ++j) mean[static_cast<size_t>(j)] += g.x[static_cast<size_t>(r * d + j)] / double(n);
    double var = 0;
    std::vector<int64_t> last(static_cast<size_t>(nl), -1);
    for (int64_t r = 0; r < n; ++r) {
      const float* x = g.x.data() + r * d;
      auto z = codes_f64(w, x);
      for (int64_t j = 0; j < d; ++j) {
        double xh = w.b_dec[static_cast<size_t>(j)];
        for (int64_t l = 0; l < nl; ++l) xh += z[static_cast<size_t>(l)] * w.W_dec[static_cast<size_t>(l * d + j)];
        sse += (xh - x[j]) * (xh - x[j]);
        var += (x[j] - mean[static_cast<size_t>(j)]) * (x[j] - mean[static_cast<size_t>(j)]);
      }
      for (int64_t l = 0; l < nl; ++l)
        if (z[static_cast<size_t>(l)] != 0) {
          l0 += 1;
          l1 += std::abs(z[static_cast<size_t>(l)]);
          last[static_cast<size_t>(l)] = r;
        }
    }
    int64_t dead = 0;
    for (auto v : last) dead += v < n - window;
    CHECK(m["n"].get<int64_t>() == n);
    CHECK(m["mse"].get<double>() == doctest::Approx(sse / double(n * d)).epsilon(1e-4));
    CHECK(m["fvu"].get<double>() == doctest::Approx(sse / var).epsilon(1e-4));
    CHECK(m["l0"].get<double>() == doctest::Approx(l0 / double(n)).epsilon(1e-3));
    CHECK(m["l1"].get<double>() == doctest::Approx(l1 / double(n)).epsilon(1e-4));
    CHECK(m["n_dead"].get<int64_t>() == dead);
    CHECK(m["dead_fraction"].get<double>() == doctest::Approx(double(dead) / double(nl)));
    if (arch == "relu-l1") {
      CHECK(dead > 0);  // the test data must exercise the dead-latent window
      CHECK(dead < nl);
    }
  }
}

TEST_CASE("sae decoder rows have unit norm after every step") {
  auto g = test::make_ground_truth(1000, 16, 32, 5);
  for (const std::string arch : {"relu-l1", "topk", "batchtopk"}) {
    CAPTURE(arch);
    sae::TrainParams p = tiny_params(arch);
    p.epochs = 3;
    p.checkpoint_every = 0;
    p.resample_every = 5;
    sae::TrainOptions opt;
    int64_t calls = 0;
    double worst = 0;
    opt.on_step = [&](int64_t step, double dev) {
      ++calls;
      CHECK(step == calls);
      worst = std::max(worst, dev);
    };
    auto w = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
    CHECK(calls == 3 * 4);  // ceil(1000 / 256) steps per epoch, the last one partial
    CHECK(worst < 1e-5);
    CHECK(w.metrics["decoder_norm_max_dev"].get<double>() < 1e-5);
    CHECK(w.metrics["steps"].get<int64_t>() == calls);
  }
}

TEST_CASE("sae topk keeps exactly the k largest pre-activations") {
  auto g = test::make_ground_truth(2048, 32, 64, 21);
  sae::TrainParams p = tiny_params("topk");
  p.checkpoint_every = 0;
  sae::TrainOptions opt;
  auto w = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  CHECK(w.k == 6);
  auto acts = sae::Model(w, kCpu).encode(g.x.data(), 300);
  int64_t rows_with_k = 0;
  for (int64_t r = 0; r < 300; ++r) {
    auto pre = test::pre_acts_f64(w, g.x.data() + r * g.d);
    auto z = codes_f64(w, g.x.data() + r * g.d);
    std::set<int32_t> want;
    for (size_t l = 0; l < z.size(); ++l)
      if (z[l] > 0) want.insert(static_cast<int32_t>(l));
    std::set<int32_t> got(acts.indices.begin() + acts.indptr[r], acts.indices.begin() + acts.indptr[r + 1]);
    int64_t positive = 0;
    for (double v : pre) positive += v > 0;
    CHECK(static_cast<int64_t>(got.size()) == std::min<int64_t>(w.k, positive));
    CHECK(got == want);
    rows_with_k += static_cast<int64_t>(got.size()) == w.k;
  }
  CHECK(rows_with_k >= 290);  // a trained top-k SAE has k positive pre-activations almost always
}

TEST_CASE("sae batchtopk estimates a threshold and uses it at inference") {
  auto g = test::make_ground_truth(2048, 32, 64, 22);
  sae::TrainParams p = tiny_params("batchtopk");
  p.checkpoint_every = 0;
  sae::TrainOptions opt;
  auto w = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  CHECK(w.threshold > 0);
  const double l0 = w.metrics["l0"].get<double>();
  CHECK(l0 > 0.5 * p.k);
  CHECK(l0 < 2.0 * p.k);
  for (double scale : {1.0, 2.0}) {
    SaeWeights v = w;
    v.threshold = w.threshold * scale;
    auto acts = sae::Model(v, kCpu).encode(g.x.data(), 200);
    for (int64_t r = 0; r < 200; ++r) {
      auto pre = test::pre_acts_f64(v, g.x.data() + r * g.d);
      std::set<int32_t> want;
      for (size_t l = 0; l < pre.size(); ++l)
        if (pre[l] > v.threshold) want.insert(static_cast<int32_t>(l));
      std::set<int32_t> got(acts.indices.begin() + acts.indptr[r], acts.indices.begin() + acts.indptr[r + 1]);
      CHECK(got == want);
    }
  }
}

TEST_CASE("sae resumed training is bitwise identical on CPU") {
  auto g = test::make_ground_truth(1500, 16, 32, 31);
  for (const std::string arch : {"relu-l1", "topk", "batchtopk"}) {
    CAPTURE(arch);
    test::TempDir tmp;
    sae::TrainParams p = tiny_params(arch);
    p.resample_every = 3;
    p.normalize_input = true;
    p.lr_decay_frac = 0.5;
    sae::TrainOptions full;
    full.out_path = tmp.file("full.h5");
    auto a = sae::train(g.x.data(), g.n, g.d, p, kCpu, full);

    sae::TrainOptions part = full;
    part.out_path = tmp.file("part.h5");
    part.stop_after_epochs = 2;
    auto b = sae::train(g.x.data(), g.n, g.d, p, kCpu, part);
    CHECK(b.metrics["epochs_trained"].get<int64_t>() == 2);
    CHECK(!same_bits(a.W_dec, b.W_dec));

    sae::TrainOptions res = full;
    res.out_path = tmp.file("part.h5");
    res.resume_path = tmp.file("part.h5.ckpt");
    auto c = sae::train(g.x.data(), g.n, g.d, p, kCpu, res);
    CHECK(c.metrics["epochs_trained"].get<int64_t>() == 4);
    CHECK(same_bits(a.W_enc, c.W_enc));
    CHECK(same_bits(a.b_enc, c.b_enc));
    CHECK(same_bits(a.W_dec, c.W_dec));
    CHECK(same_bits(a.b_dec, c.b_dec));
    CHECK(a.threshold == c.threshold);
    // The log holds one line per epoch with the documented fields.
    std::ifstream log(tmp.file("full.h5.log.jsonl"));
    std::string line;
    int64_t lines = 0;
    while (std::getline(log, line)) {
      auto j = nlohmann::json::parse(line);
      ++lines;
      CHECK(j["epoch"].get<int64_t>() == lines);
      for (const char* key : {"loss", "mse", "fvu", "l0", "l1", "dead_fraction", "decoder_norm_max_dev", "step"})
        CHECK(j.contains(key));
    }
    CHECK(lines == 4);
  }
}

TEST_CASE("sae resume rejects a checkpoint of another shape") {
  auto g = test::make_ground_truth(600, 16, 32, 32);
  test::TempDir tmp;
  sae::TrainParams p = tiny_params("topk");
  p.epochs = 1;
  sae::TrainOptions opt;
  opt.out_path = tmp.file("a.h5");
  write_sae(tmp.file("a.h5"), sae::train(g.x.data(), g.n, g.d, p, kCpu, opt));
  p.expansion = 2;
  opt.resume_path = tmp.file("a.h5.ckpt");
  // Both sides named: 2 x 16 latents asked for, 4 x 16 saved.
  CHECK_THROWS_WITH_AS(sae::train(g.x.data(), g.n, g.d, p, kCpu, opt), doctest::Contains("64 latents"), InputError);
  p.expansion = 4;
  CHECK_THROWS_WITH_AS(sae::train(g.x.data(), 500, g.d, p, kCpu, opt), doctest::Contains("500 rows"), InputError);
  // Not a checkpoint (an SAE file, a TorchScript archive): refused by format, nothing executed.
  opt.resume_path = tmp.file("a.h5");
  opt.out_path = tmp.file("b.h5");  // resuming from OUT itself would be refused as overwriting an input
  CHECK_THROWS_WITH_AS(sae::train(g.x.data(), g.n, g.d, p, kCpu, opt), doctest::Contains("conceptlab.sae_checkpoint"),
                       InputError);
  torch::jit::Module m("not_a_checkpoint");
  m.define("def forward(self, x):\n    return x\n");
  m.save(tmp.file("module.pt"));
  opt.resume_path = tmp.file("module.pt");
  CHECK_THROWS_AS(sae::train(g.x.data(), g.n, g.d, p, kCpu, opt), InputError);
  // The checkpoint itself is an HDF5 file with the documented layout.
  h5::File f = h5::open_read(tmp.file("a.h5.ckpt"));
  h5::check_header(f, kSaeCheckpointFormat);
  CHECK(h5::read_attr_int(f.get(), "epoch").value() == 1);
  CHECK(h5::dataset_dims(f, f.get(), "W_dec") == std::vector<int64_t>{64, 16});
}

TEST_CASE("sae input normalisation is folded back into the saved weights") {
  auto g = test::make_ground_truth(1024, 16, 32, 71);
  std::vector<float> x10(g.x);
  for (auto& v : x10) v *= 10.0f;
  sae::TrainParams p = tiny_params("topk");
  p.checkpoint_every = 0;
  p.epochs = 2;
  p.normalize_input = true;
  sae::TrainOptions opt;
  auto w1 = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  auto w10 = sae::train(x10.data(), g.n, g.d, p, kCpu, opt);
  // Same scaled problem, so the same dictionary; biases and codes in input units.
  double dec = 0, bias = 0;
  for (size_t i = 0; i < w1.W_dec.size(); ++i) dec = std::max(dec, double(std::abs(w1.W_dec[i] - w10.W_dec[i])));
  for (size_t i = 0; i < w1.b_dec.size(); ++i) bias = std::max(bias, double(std::abs(10 * w1.b_dec[i] - w10.b_dec[i])));
  CHECK(dec < 1e-3);
  CHECK(bias < 1e-2);
  CHECK(w1.metrics["fvu"].get<double>() == doctest::Approx(w10.metrics["fvu"].get<double>()).epsilon(1e-3));
  CHECK(w10.metrics["mse"].get<double>() == doctest::Approx(100 * w1.metrics["mse"].get<double>()).epsilon(1e-3));
  auto a1 = sae::Model(w1, kCpu).encode(g.x.data(), 50);
  auto a10 = sae::Model(w10, kCpu).encode(x10.data(), 50);
  REQUIRE(a1.indices == a10.indices);
  for (size_t i = 0; i < a1.values.size(); ++i) CHECK(a10.values[i] == doctest::Approx(10 * a1.values[i]).epsilon(1e-3));
}

TEST_CASE("sae pre-bias starts at the geometric median or the mean") {
  auto g = test::make_ground_truth(2000, 8, 16, 81);
  // Skew the data so mean and geometric median differ clearly.
  for (int64_t r = 0; r < 100; ++r) g.x[static_cast<size_t>(r * 8)] += 40.0f;
  sae::TrainParams p = tiny_params("relu-l1");
  p.epochs = 0;
  p.checkpoint_every = 0;
  sae::TrainOptions opt;
  auto med = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  p.pre_bias_init = "mean";
  auto mean = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  // Optimality of the geometric median m: sum_i (x_i - m) / ||x_i - m|| = 0.
  std::vector<double> grad(8, 0.0), mu(8, 0.0);
  for (int64_t r = 0; r < g.n; ++r) {
    double nrm = 0;
    for (int64_t j = 0; j < 8; ++j) nrm += std::pow(g.x[static_cast<size_t>(r * 8 + j)] - med.b_dec[static_cast<size_t>(j)], 2);
    nrm = std::sqrt(nrm);
    for (int64_t j = 0; j < 8; ++j) {
      grad[static_cast<size_t>(j)] += (g.x[static_cast<size_t>(r * 8 + j)] - med.b_dec[static_cast<size_t>(j)]) / nrm;
      mu[static_cast<size_t>(j)] += g.x[static_cast<size_t>(r * 8 + j)] / double(g.n);
    }
  }
  double gnorm = 0, mean_err = 0;
  for (int j = 0; j < 8; ++j) {
    gnorm += grad[static_cast<size_t>(j)] * grad[static_cast<size_t>(j)];
    mean_err = std::max(mean_err, std::abs(mean.b_dec[static_cast<size_t>(j)] - mu[static_cast<size_t>(j)]));
  }
  CHECK(std::sqrt(gnorm) / double(g.n) < 1e-3);
  CHECK(mean_err < 1e-4);
  CHECK(std::abs(mean.b_dec[0] - med.b_dec[0]) > 1.0);
}

TEST_CASE("sae bf16 matmuls follow the float32 run") {
  auto g = test::make_ground_truth(1024, 16, 32, 72);
  sae::TrainParams p = tiny_params("relu-l1");
  p.checkpoint_every = 0;
  sae::TrainOptions opt;
  auto w32 = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  p.bf16 = true;
  auto w16 = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  const double f32 = w32.metrics["fvu"].get<double>(), f16 = w16.metrics["fvu"].get<double>();
  MESSAGE("fvu float32 " << f32 << ", bf16 " << f16);
  CHECK(std::isfinite(f16));
  CHECK(std::abs(f16 - f32) < 0.05);
  CHECK(w16.metrics["decoder_norm_max_dev"].get<double>() < 1e-5);
}

TEST_CASE("sae streams files larger than the memory budget") {
  test::TempDir tmp;
  auto g = test::make_ground_truth(3000, 16, 32, 41);
  Embeddings e;
  e.n = g.n;
  e.dim = g.d;
  e.data = g.x;
  for (int64_t i = 0; i < g.n; ++i) e.ids.push_back("img" + std::to_string(i));
  write_embeddings(tmp.file("e.h5"), e);
  EmbeddingsReader reader(tmp.file("e.h5"));
  sae::TrainParams p = tiny_params("topk");
  p.checkpoint_every = 0;
  p.memory_gb = 1000.0 * 16 * 4 / 1073741824.0;  // a 500-row buffer (half the budget): six refills per epoch
  sae::TrainOptions opt;
  int64_t steps = 0;
  opt.on_step = [&](int64_t, double) { ++steps; };
  auto w = sae::train(reader, p, kCpu, opt);
  CHECK(steps == p.epochs * 12);  // every row seen once per epoch: ceil(3000 / 256) batches
  CHECK(w.metrics["n"].get<int64_t>() == 3000);
  sae::TrainParams pm = p;
  pm.memory_gb = 4.0;
  auto wm = sae::train(reader, pm, kCpu, opt);
  // Different orders, similar quality.
  CHECK(w.metrics["fvu"].get<double>() < 2.0 * wm.metrics["fvu"].get<double>() + 0.05);
}

TEST_CASE("sae encode_file writes the same activations as encode_rows") {
  test::TempDir tmp;
  auto g = test::make_ground_truth(1200, 24, 40, 51);
  Embeddings e;
  e.n = g.n;
  e.dim = g.d;
  e.data = g.x;
  for (int64_t i = 0; i < g.n; ++i) e.ids.push_back("id" + std::to_string(i));
  write_embeddings(tmp.file("e.h5"), e);
  auto w = random_sae("relu-l1", 24, 96, 52);
  EmbeddingsReader reader(tmp.file("e.h5"));
  sae::Model(w, kCpu).encode_file(reader, tmp.file("a.h5"), {500});
  auto a = read_activations(tmp.file("a.h5"));
  auto direct = sae::Model(w, kCpu).encode(g.x.data(), g.n);
  CHECK(a.ids == e.ids);
  CHECK(a.acts.n_rows == g.n);
  CHECK(a.acts.n_cols == 96);
  CHECK(a.acts.indptr == direct.indptr);
  CHECK(a.acts.indices == direct.indices);
  // Chunk sizes differ (500 vs 8192 rows), so matmul blocking may move the last bit.
  REQUIRE(a.acts.values.size() == direct.values.size());
  double worst = 0;
  for (size_t i = 0; i < direct.values.size(); ++i)
    worst = std::max(worst, double(std::abs(a.acts.values[i] - direct.values[i])));
  CHECK(worst < 1e-5);
  CHECK(direct.nnz() > 0);
  CHECK(direct.nnz() < g.n * 96 / 2);

  auto bad = random_sae("relu-l1", 20, 40, 53);
  CHECK_THROWS_AS(sae::Model(bad, kCpu).encode_file(reader, tmp.file("b.h5"), {500}), InputError);
}

TEST_CASE("sae params validation refuses out-of-range values") {
  sae::TrainParams bad;
  bad.arch = "gated";
  CHECK_THROWS_AS(sae::validate(bad), UsageError);
  for (auto edit : std::vector<std::function<void(sae::TrainParams&)>>{
           [](auto& p) { p.n_latents = -1; }, [](auto& p) { p.arch = "topk", p.n_latents = 8, p.k = 16; },
           [](auto& p) { p.lr = std::nan(""); }, [](auto& p) { p.l1 = INFINITY; }, [](auto& p) { p.dead_window = 0; },
           [](auto& p) { p.batch = 0; }, [](auto& p) { p.checkpoint_every = -1; }}) {
    sae::TrainParams p;
    edit(p);
    CHECK_THROWS_AS(sae::validate(p), UsageError);
  }
  CHECK_NOTHROW(sae::validate(sae::TrainParams{}));
  CHECK_THROWS_AS(sae::validate(sae::ApplyParams{0, 10}), UsageError);
}

TEST_CASE("sae import of the reference checkpoint reproduces its activations") {
  const std::string shared = test::shared_dir();
  if (shared.empty()) {
    MESSAGE("skip: ../shared absent");
    return;
  }
  const std::string dir = shared + "/fixtures/seed_sae/";
  auto w = sae::import_reference_pth(dir + "autoencoder.pth");
  CHECK(w.d_in == 64);
  CHECK(w.n_latents == 512);
  CHECK(w.arch == "relu-l1");
  auto x = read_npy(dir + "inputs.npy");
  auto want = read_npy(dir + "activations.npy").as<float>();
  auto want_rec = read_npy(dir + "reconstructions.npy").as<float>();
  REQUIRE(x.shape == std::vector<int64_t>{32, 64});
  auto xf = x.as<float>();
  auto acts = sae::Model(w, kCpu).encode(xf.data(), 32);
  double worst = 0;
  int64_t nnz = 0;
  for (int64_t r = 0; r < 32; ++r) {
    std::vector<float> dense(512, 0.0f);
    for (int64_t q = acts.indptr[r]; q < acts.indptr[r + 1]; ++q) dense[acts.indices[q]] = acts.values[q];
    for (int64_t l = 0; l < 512; ++l) {
      worst = std::max(worst, double(std::abs(dense[l] - want[r * 512 + l])));
      nnz += want[r * 512 + l] != 0;
    }
  }
  CHECK(nnz > 0);
  CHECK(worst <= 1e-5);
  auto rec = sae::Model(w, kCpu).reconstruct(xf.data(), 32);
  double worst_rec = 0;
  for (size_t i = 0; i < rec.size(); ++i) worst_rec = std::max(worst_rec, double(std::abs(rec[i] - want_rec[i])));
  CHECK(worst_rec <= 1e-5);
  MESSAGE("import: max |activation diff| " << worst << ", max |reconstruction diff| " << worst_rec);
}

TEST_CASE("sae import rejects files that are not torch checkpoints") {
  test::TempDir tmp;
  test::write_text(tmp.file("x.pth"), "not a zip file at all, just text that is long enough");
  CHECK_THROWS_AS(sae::import_reference_pth(tmp.file("x.pth")), InputError);
  CHECK_THROWS_AS(sae::import_reference_pth(tmp.file("missing.pth")), InputError);
}

TEST_CASE("sae CUDA path matches the CPU path") {
  if (!cuda_available()) {
    MESSAGE("skip: no CUDA");
    return;
  }
  auto g = test::make_ground_truth(2048, 32, 64, 61);
  for (const std::string arch : {"relu-l1", "topk", "batchtopk", "matryoshka-topk", "matryoshka-batchtopk"}) {
    CAPTURE(arch);
    sae::TrainParams p = tiny_params(arch);
    p.checkpoint_every = 0;
    p.epochs = 2;
    sae::TrainOptions opt;
    auto c = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
    auto u = sae::train(g.x.data(), g.n, g.d, p, torch::Device(torch::kCUDA, 0), opt);
    double worst = 0;
    for (size_t i = 0; i < c.W_dec.size(); ++i) worst = std::max(worst, double(std::abs(c.W_dec[i] - u.W_dec[i])));
    MESSAGE(arch << ": max |W_dec cpu - cuda| " << worst);
    CHECK(worst < 2e-2);
    CHECK(u.metrics["fvu"].get<double>() == doctest::Approx(c.metrics["fvu"].get<double>()).epsilon(0.05));
    auto m_cpu = sae::to_json(sae::Model(c, kCpu).evaluate(g.x.data(), g.n));
    auto m_gpu = sae::to_json(sae::Model(c, torch::Device(torch::kCUDA, 0)).evaluate(g.x.data(), g.n));
    CHECK(m_gpu["fvu"].get<double>() == doctest::Approx(m_cpu["fvu"].get<double>()).epsilon(1e-4));
    CHECK(m_gpu["l0"].get<double>() == doctest::Approx(m_cpu["l0"].get<double>()).epsilon(1e-3));
  }
}
