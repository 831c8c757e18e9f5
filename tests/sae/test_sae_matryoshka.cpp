// Nested (Matryoshka) SAEs: one nested size equals the plain step, loss and gradients against an
// autograd re-implementation (bench/sae_matryoshka_ref.py), per-prefix FVU of eval against a
// float64 recompute, the early latents reconstructing alone, the file format and the checks.
#include "tests/torch_doctest.h"

#include <cmath>

#include "core/error.h"
#include "core/h5.h"
#include "core/sae_weights.h"
#include "sae/sae.h"
#include "sae/trainer.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

const torch::Device kCpu(torch::kCPU);

sae::TrainParams nested_params(const std::string& arch) {
  sae::TrainParams p;
  p.arch = arch;
  p.n_latents = 128;
  p.k = 6;
  p.batch = 256;
  p.epochs = 4;
  p.lr = 3e-3;
  p.dead_window = 512;
  p.checkpoint_every = 0;
  p.aux_k = 16;
  return p;
}

torch::Tensor rows_of(const test::GroundTruth& g, int64_t start, int64_t count) {
  return torch::from_blob(const_cast<float*>(g.x.data()) + start * g.d, {count, g.d}, torch::kFloat32).clone();
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST_CASE("sae matryoshka with the full size as its only nested size takes the plain steps") {
  auto g = test::make_ground_truth(2048, 32, 64, 81);
  for (const std::string plain : {"topk", "batchtopk"}) {
    CAPTURE(plain);
    sae::TrainParams p = nested_params(plain);
    sae::TrainParams q = p;
    q.arch = "matryoshka-" + plain;
    q.prefixes = {128};
    sae::Trainer a(p, g.d, g.n, kCpu), b(q, g.d, g.n, kCpu);
    REQUIRE(b.t.prefixes == std::vector<int64_t>{128});
    auto sample = rows_of(g, 0, 1024);
    a.init(sample);
    b.init(sample);
    const auto W0 = a.t.W_dec.clone();
    for (int64_t s = 0; s < 24; ++s) {  // 3 passes: dead latents appear, so AuxK takes part too
      auto x = rows_of(g, (s % 8) * 256, 256);
      a.step(x, 24);
      b.step(x, 24);
    }
    const double d = std::max({max_abs_diff(a.t.W_enc, b.t.W_enc), max_abs_diff(a.t.b_enc, b.t.b_enc),
                               max_abs_diff(a.t.W_dec, b.t.W_dec), max_abs_diff(a.t.b_dec, b.t.b_dec)});
    MESSAGE(plain << ": max |plain - nested| over the weights after 24 steps " << d);
    CHECK(d < 1e-5);
    CHECK(max_abs_diff(a.t.W_dec, W0) > 1e-3);  // the weights did move
    if (plain == "batchtopk") CHECK(a.threshold.item<double>() == doctest::Approx(b.threshold.item<double>()).epsilon(1e-5));
    const auto ma = a.epoch_metrics(), mb = b.epoch_metrics();
    CHECK(mb.fvu == doctest::Approx(ma.fvu).epsilon(1e-5));
    REQUIRE(mb.fvu_prefix.size() == 1);
    CHECK(mb.fvu_prefix[0] == doctest::Approx(mb.fvu).epsilon(1e-9));
  }
}

TEST_CASE("sae matryoshka step: loss and gradients equal an autograd re-implementation") {
  if (!test::python_has("torch, h5py, numpy")) {
    MESSAGE("skip: /usr/bin/python3 lacks torch, h5py or numpy");
    return;
  }
  auto g = test::make_ground_truth(2048, 32, 64, 82);
  for (const std::string arch : {"matryoshka-topk", "matryoshka-batchtopk"}) {
    CAPTURE(arch);
    sae::TrainParams p = nested_params(arch);
    p.prefixes = {8, 24, 64};
    p.aux_alpha = 0;  // the reference has no AuxK
    sae::Trainer tr(p, g.d, g.n, kCpu);
    tr.init(rows_of(g, 0, 1024));
    for (int64_t s = 0; s < 6; ++s) tr.step(rows_of(g, s * 256, 256), 100);  // away from the init
    sae::Tensors before = tr.t;  // the weights this step's gradients are taken at
    before.W_enc = tr.t.W_enc.clone();
    before.b_enc = tr.t.b_enc.clone();
    before.W_dec = tr.t.W_dec.clone();
    before.b_dec = tr.t.b_dec.clone();
    auto x = rows_of(g, 1536, 256);
    sae::StepGrads got;
    tr.capture = &got;
    tr.step(x, 100);

    test::TempDir t;
    {
      h5::File f = h5::create(t.file("in.h5"));
      const int64_t D = g.d, n = 128;
      h5::write_dataset<float>(f.get(), "W_enc", before.W_enc.data_ptr<float>(), {D, n});
      h5::write_dataset<float>(f.get(), "b_enc", before.b_enc.data_ptr<float>(), {n});
      h5::write_dataset<float>(f.get(), "W_dec", before.W_dec.data_ptr<float>(), {n, D});
      h5::write_dataset<float>(f.get(), "b_dec", before.b_dec.data_ptr<float>(), {D});
      h5::write_dataset<float>(f.get(), "x", x.data_ptr<float>(), {256, D});
      const std::vector<int64_t> sizes = tr.t.prefixes;
      h5::write_dataset<int64_t>(f.get(), "prefixes", sizes.data(), {static_cast<int64_t>(sizes.size())});
      h5::write_attr(f.get(), "arch", arch);
      h5::write_attr(f.get(), "k", p.k);
      h5::flush(f);
    }
    auto py = test::run_program("/usr/bin/python3", {std::string(CONCEPTLAB_SOURCE_DIR) + "/bench/sae_matryoshka_ref.py",
                                                     t.file("in.h5"), t.file("out.h5")});
    INFO(py.err);
    REQUIRE(py.exit_code == 0);
    h5::File f = h5::open_read(t.file("out.h5"));
    const double loss_ref = h5::read_dataset<double>(f, f.get(), "loss")[0];
    MESSAGE(arch << ": loss ours " << got.loss << ", autograd " << loss_ref);
    CHECK(got.loss == doctest::Approx(loss_ref).epsilon(1e-5));
    const std::pair<const char*, torch::Tensor*> grads[] = {
        {"gW_enc", &got.gW_enc}, {"gb_enc", &got.gb_enc}, {"gW_dec", &got.gW_dec}, {"gb_dec", &got.gb_dec}};
    for (const auto& [name, ours] : grads) {
      CAPTURE(name);
      std::vector<int64_t> dims;
      auto ref = h5::read_dataset<double>(f, f.get(), name, &dims);
      auto ref_t = torch::from_blob(ref.data(), dims, torch::kFloat64).clone();
      REQUIRE(ref_t.sizes() == ours->sizes());
      const double scale = ref_t.abs().max().item<double>();
      const double err = max_abs_diff(*ours, ref_t);
      MESSAGE(arch << " " << name << ": max |ours - autograd| " << err << " (max |grad| " << scale << ")");
      CHECK(scale > 0);
      CHECK(err <= 1e-4 * scale);
    }
  }
}

TEST_CASE("sae eval's per-prefix FVU equals a float64 recompute") {
  auto g = test::make_ground_truth(1500, 24, 48, 83);
  sae::TrainParams p = nested_params("matryoshka-topk");
  p.prefixes = {8, 32};
  p.epochs = 2;
  auto w = sae::train(g.x.data(), g.n, g.d, p, kCpu, sae::TrainOptions{});
  REQUIRE(w.prefixes == std::vector<int64_t>{8, 32, 128});
  sae::Model model(w, kCpu);
  const auto m = model.evaluate(g.x.data(), g.n, sae::ApplyParams{100});  // chunks of 100 rows
  REQUIRE(m.prefixes == w.prefixes);

  // Recompute: codes from the CSR encoding, prefix reconstructions and the variance in float64.
  const auto codes = model.encode(g.x.data(), g.n);
  const int64_t D = g.d;
  std::vector<double> mean(static_cast<size_t>(D), 0.0);
  for (int64_t i = 0; i < g.n; ++i)
    for (int64_t j = 0; j < D; ++j) mean[static_cast<size_t>(j)] += g.x[static_cast<size_t>(i * D + j)] / double(g.n);
  double var = 0;
  std::vector<double> sse(w.prefixes.size(), 0.0);
  for (int64_t i = 0; i < g.n; ++i) {
    for (size_t q = 0; q < w.prefixes.size(); ++q) {
      std::vector<double> xhat(w.b_dec.begin(), w.b_dec.end());
      for (auto e = codes.indptr[static_cast<size_t>(i)]; e < codes.indptr[static_cast<size_t>(i) + 1]; ++e) {
        const int64_t l = codes.indices[static_cast<size_t>(e)];
        if (l >= w.prefixes[q]) continue;
        for (int64_t j = 0; j < D; ++j)
          xhat[static_cast<size_t>(j)] += double(codes.values[static_cast<size_t>(e)]) * w.W_dec[static_cast<size_t>(l * D + j)];
      }
      for (int64_t j = 0; j < D; ++j) {
        const double r = g.x[static_cast<size_t>(i * D + j)] - xhat[static_cast<size_t>(j)];
        sse[q] += r * r;
      }
    }
    for (int64_t j = 0; j < D; ++j) {
      const double c = g.x[static_cast<size_t>(i * D + j)] - mean[static_cast<size_t>(j)];
      var += c * c;
    }
  }
  for (size_t q = 0; q < w.prefixes.size(); ++q) {
    CAPTURE(w.prefixes[q]);
    CHECK(m.fvu_prefix[q] == doctest::Approx(sse[q] / var).epsilon(1e-5));
  }
  CHECK(m.fvu_prefix.back() == doctest::Approx(m.fvu).epsilon(1e-5));
  CHECK(m.fvu_prefix[0] > m.fvu_prefix[1]);  // fewer latents reconstruct worse
  // Asked-for sizes on any SAE, and sizes beyond the SAE refused.
  const auto asked = model.evaluate(g.x.data(), g.n, sae::ApplyParams{512, sae::kDefaultDeadWindow, {32}});
  REQUIRE(asked.fvu_prefix.size() == 1);
  CHECK(asked.fvu_prefix[0] == doctest::Approx(m.fvu_prefix[1]).epsilon(1e-9));
  CHECK_THROWS_AS(model.evaluate(g.x.data(), g.n, sae::ApplyParams{512, sae::kDefaultDeadWindow, {500}}), UsageError);
}

TEST_CASE("sae matryoshka: the first latents alone reconstruct far better than a plain SAE's") {
  // The point of nesting: latents [0, m) are trained to reconstruct on their own. In a plain
  // top-k SAE the first m latents are an arbitrary subset.
  auto g = test::make_ground_truth(3000, 32, 64, 84);
  sae::TrainParams plain = nested_params("topk");
  plain.epochs = 6;
  sae::TrainParams nested = plain;
  nested.arch = "matryoshka-topk";
  nested.prefixes = {16};
  auto wp = sae::train(g.x.data(), g.n, g.d, plain, kCpu, sae::TrainOptions{});
  auto wn = sae::train(g.x.data(), g.n, g.d, nested, kCpu, sae::TrainOptions{});
  const sae::ApplyParams ap{8192, sae::kDefaultDeadWindow, {16}};
  const auto mp = sae::Model(wp, kCpu).evaluate(g.x.data(), g.n, ap);
  const auto mn = sae::Model(wn, kCpu).evaluate(g.x.data(), g.n, ap);
  MESSAGE("FVU of latents [0, 16): plain " << mp.fvu_prefix[0] << ", nested " << mn.fvu_prefix[0] << "; full: plain "
                                           << mp.fvu << ", nested " << mn.fvu);
  CHECK(mn.fvu_prefix[0] < mp.fvu_prefix[0] - 0.1);
  CHECK(mn.fvu < 0.5);  // the whole dictionary still reconstructs
}

TEST_CASE("sae matryoshka: nested sizes are checked, saved, and must match on resume") {
  auto bad = [](std::vector<int64_t> prefixes, const std::string& arch = "matryoshka-topk") {
    sae::TrainParams p = nested_params(arch);
    p.prefixes = std::move(prefixes);
    sae::validate(p);
  };
  CHECK_NOTHROW(bad({8, 32}));
  CHECK_NOTHROW(bad({8, 128}));  // the full size may be given
  CHECK_THROWS_WITH_AS(bad({32, 8}), doctest::Contains("ascending"), UsageError);
  CHECK_THROWS_WITH_AS(bad({0, 8}), doctest::Contains(">= 1"), UsageError);
  CHECK_THROWS_WITH_AS(bad({8, 256}), doctest::Contains("not below n_latents 128"), UsageError);
  CHECK_THROWS_WITH_AS(bad({8}, "topk"), doctest::Contains("matryoshka"), UsageError);
  sae::TrainParams dflt = nested_params("matryoshka-batchtopk");
  dflt.n_latents = 0;
  CHECK(sae::nested_sizes(dflt, 2048) == std::vector<int64_t>{16, 64, 256, 1024, 2048});
  CHECK(sae::nested_sizes(nested_params("topk"), 2048).empty());

  auto g = test::make_ground_truth(600, 16, 32, 85);
  test::TempDir t;
  sae::TrainParams p = nested_params("matryoshka-batchtopk");
  p.n_latents = 64;
  p.prefixes = {4, 16};
  p.epochs = 2;
  p.checkpoint_every = 1;
  sae::TrainOptions opt;
  opt.out_path = t.file("s.h5");
  auto w = sae::train(g.x.data(), g.n, g.d, p, kCpu, opt);
  write_sae(t.file("s.h5"), w);
  const SaeWeights r = read_sae(t.file("s.h5"));
  CHECK(r.arch == "matryoshka-batchtopk");
  CHECK(r.prefixes == std::vector<int64_t>{4, 16, 64});
  CHECK(r.threshold > 0);
  CHECK(r.metrics.contains("fvu_prefix"));

  SaeWeights no_sizes = w;
  no_sizes.prefixes.clear();
  CHECK_THROWS_WITH_AS(write_sae(t.file("x.h5"), no_sizes), doctest::Contains("prefixes"), InputError);
  SaeWeights plain = w;
  plain.arch = "topk";
  CHECK_THROWS_WITH_AS(write_sae(t.file("x.h5"), plain), doctest::Contains("only matryoshka"), InputError);

  sae::TrainParams other = p;
  other.prefixes = {4, 32};
  other.epochs = 3;
  sae::TrainOptions ro;
  ro.resume_path = t.file("s.h5.ckpt");
  CHECK_THROWS_WITH_AS(sae::train(g.x.data(), g.n, g.d, other, kCpu, ro), doctest::Contains("nested sizes [4, 16, 64]"),
                       InputError);
}
