// The patch formats: patch-embeddings write-read round trips (float32 exact, float16 rounded),
// read as patch rows by EmbeddingsReader, patch activations with their geometry, patch boxes, and
// max/mean/sum pooling against a direct computation.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include <fmt/format.h>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/inspect.h"
#include "core/manifest.h"
#include "core/h5.h"
#include "core/patches.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

struct PatchData {
  int64_t n = 3, gh = 2, gw = 3, d = 4;
  std::vector<std::string> ids = {"a.png", "b.png", "c.png"};
  std::vector<float> x;                          // [n, gh*gw, d]
  std::vector<int32_t> sizes = {40, 30, 64, 64, 100, 50};
  std::vector<float> boxes = {5, 0, 35, 30, 0, 0, 64, 64, 25, 0, 75, 50};
  PatchData() {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    x.resize(static_cast<size_t>(n * gh * gw * d));
    for (auto& v : x) v = nd(rng);
  }
  void write(const std::string& path, bool half) const {
    PatchEmbeddingsWriter w(path, gh, gw, d, half, {{"model", "unit-test"}});
    w.append(x.data(), 2, {ids[0], ids[1]}, sizes.data(), boxes.data());
    w.append(x.data() + 2 * gh * gw * d, 1, {ids[2]}, sizes.data() + 4, boxes.data() + 8);
    w.commit();
  }
};

}  // namespace

TEST_CASE("patch embeddings round trip: patch rows in image order, grid and geometry, float32 exact, float16 rounded") {
  test::TempDir t;
  PatchData pd;
  for (bool half : {false, true}) {
    const std::string path = t.file(half ? "p16.h5" : "p32.h5");
    pd.write(path, half);
    EmbeddingsReader r(path);
    const int64_t P = pd.gh * pd.gw;
    REQUIRE(r.patches() != nullptr);
    CHECK(r.patches_per_image() == P);
    CHECK(r.rows() == pd.n * P);
    CHECK(r.dim() == pd.d);
    CHECK(r.ids()[0] == "a.png#0");
    CHECK(r.ids()[P + 5] == "b.png#5");
    CHECK(r.config()["model"] == "unit-test");
    const PatchGeometry& g = *r.patches();
    CHECK(g.grid_h == 2);
    CHECK(g.grid_w == 3);
    CHECK(g.image_ids == pd.ids);
    CHECK(g.image_size == pd.sizes);
    CHECK(g.crop_box == pd.boxes);
    std::vector<float> all(static_cast<size_t>(r.rows() * r.dim()));
    r.read_rows(0, r.rows(), all.data());
    float worst = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      const float err = std::abs(all[i] - pd.x[i]);
      worst = std::max(worst, half ? err / std::max(1e-3f, std::abs(pd.x[i])) : err);
    }
    if (half) {
      CHECK(worst > 0);         // really stored in 16 bits
      CHECK(worst <= 4.9e-4f);  // half of float16's 2^-10 relative spacing
    } else {
      CHECK(worst == 0);
    }
    // A range that starts and ends inside images equals the same slice of the whole.
    std::vector<float> mid(static_cast<size_t>(7 * pd.d));
    r.read_rows(4, 7, mid.data());
    for (int64_t i = 0; i < 7 * pd.d; ++i) CHECK(mid[i] == all[4 * pd.d + i]);
    CHECK_THROWS_AS(r.read_rows(pd.n * P - 1, 2, mid.data()), InputError);
  }
  // inspect names the grid.
  const nlohmann::json s = inspect_file(t.file("p16.h5"));
  CHECK(s["format"] == "conceptlab.patch_embeddings");
  CHECK(s["patch_grid"] == nlohmann::json::array({2, 3}));
  CHECK(s["patch_images"] == 3);
  CHECK(s["datasets"]["embeddings"]["dtype"] == "float16");
  CHECK(inspect_text(s).find("patch_grid: [2,3]") != std::string::npos);
  // Each patch's box: cell (r, c) of the crop box divided grid_h x grid_w.
  PatchGeometry g = *read_patch_geometry(t.file("p32.h5"));
  const Box b = patch_box(g, 2, 4);  // image c: box [25, 0, 75, 50], cell r 1, c 1 of 2 x 3
  CHECK(b.x0 == doctest::Approx(25 + 50.0 / 3));
  CHECK(b.x1 == doctest::Approx(25 + 100.0 / 3));
  CHECK(b.y0 == doctest::Approx(25));
  CHECK(b.y1 == doctest::Approx(50));
}

namespace {

// The float16 nearest to v by search over every finite half (ties to the even bit pattern), the
// independent reference for the conversion.
float nearest_half(float v) {
  float best = 0;
  double best_err = INFINITY;
  uint16_t best_bits = 0;
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    if ((bits & 0x7c00u) == 0x7c00u) continue;  // Inf / NaN
    const float h = h5::half_bits_to_float(bits);
    const double err = std::abs(static_cast<double>(h) - v);
    if (err < best_err || (err == best_err && (bits & 1u) == 0 && (best_bits & 1u) == 1))
      best = h, best_err = err, best_bits = bits;
  }
  return best;
}

}  // namespace

TEST_CASE("float16 storage: every half value round-trips and float32 rounds to the nearest half, carries included") {
  test::TempDir t;
  // Values just under a power of two round up into the next binade; HDF5 1.10's own conversion
  // stored 0.99992 as 0.5, which moved a 7 x 7 patch mean by 0.01.
  std::vector<float> x = {0.999915f, 1.99983f, 3.99966f, 0.49996f, 5.9999f, -0.999915f, 65519.f, 1e-8f, 3e-5f,
                          6.1e-5f, -2.9802322e-8f, 0.1f, 1.0f / 3, 65520.f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> expo(-20.f, 16.f);
  for (int i = 0; i < 200; ++i) x.push_back((i % 2 ? -1.f : 1.f) * std::exp2(expo(rng)));
  for (float v : x) {
    CAPTURE(v);
    const float got = h5::half_bits_to_float(h5::float_to_half_bits(v));
    if (std::abs(v) >= 65520.f) CHECK(std::isinf(got));
    else CHECK(got == nearest_half(v));
  }
  CHECK(h5::half_bits_to_float(h5::float_to_half_bits(0.999915f)) == 1.0f);
  CHECK(std::isnan(h5::half_bits_to_float(h5::float_to_half_bits(NAN))));
  // Through the file: every finite half written as float32 reads back unchanged, and the values
  // above read back as their nearest half.
  std::vector<float> all;
  for (uint32_t b = 0; b < 0x10000u; ++b)
    if ((b & 0x7c00u) != 0x7c00u) all.push_back(h5::half_bits_to_float(static_cast<uint16_t>(b)));
  for (float v : x)
    if (std::abs(v) < 65520.f) all.push_back(v);
  const int64_t d = 16, n = (static_cast<int64_t>(all.size()) + d - 1) / d;
  all.resize(static_cast<size_t>(n * d), 0.f);
  std::vector<std::string> ids;
  std::vector<int32_t> sizes;
  std::vector<float> boxes;
  for (int64_t i = 0; i < n; ++i) {
    ids.push_back(fmt::format("i{}", i));
    sizes.insert(sizes.end(), {8, 8});
    boxes.insert(boxes.end(), {0.f, 0.f, 8.f, 8.f});
  }
  {
    PatchEmbeddingsWriter w(t.file("h.h5"), 1, 1, d, true, {});
    w.append(all.data(), n, ids, sizes.data(), boxes.data());
    w.commit();
  }
  EmbeddingsReader r(t.file("h.h5"));
  std::vector<float> back(all.size());
  r.read_rows(0, n, back.data());
  int64_t wrong = 0;
  for (size_t i = 0; i < all.size(); ++i) wrong += back[i] != h5::half_bits_to_float(h5::float_to_half_bits(all[i]));
  CHECK(wrong == 0);
  CHECK(back[0x3c00] == 1.0f);
}

TEST_CASE("patch formats refuse bad geometry, duplicate ids and manifests of patch files") {
  test::TempDir t;
  PatchData pd;
  {
    PatchEmbeddingsWriter w(t.file("bad.h5"), pd.gh, pd.gw, pd.d, false, {});
    std::vector<float> box = {5, 0, 50, 30};  // wider than the 40-pixel image
    w.append(pd.x.data(), 1, {"a"}, pd.sizes.data(), box.data());
    CHECK_THROWS_WITH_AS(w.commit(), doctest::Contains("expected a box inside the image"), InputError);
  }
  CHECK(!std::filesystem::exists(t.file("bad.h5")));
  {
    PatchEmbeddingsWriter w(t.file("dup.h5"), pd.gh, pd.gw, pd.d, false, {});
    w.append(pd.x.data(), 1, {"a"}, pd.sizes.data(), pd.boxes.data());
    CHECK_THROWS_WITH_AS(w.append(pd.x.data(), 1, {"a"}, pd.sizes.data(), pd.boxes.data()),
                         doctest::Contains("duplicate id 'a'"), InputError);
  }
  pd.write(t.file("p.h5"), true);
  write_manifest(t.file("m.json"), "embeddings", {t.file("p.h5")});
  CHECK_THROWS_WITH_AS(EmbeddingsReader(t.file("m.json")), doctest::Contains("a manifest lists image embeddings"),
                       InputError);
}

TEST_CASE("patch activations carry their geometry, and max, mean and sum pooling equal a direct computation") {
  test::TempDir t;
  const int64_t n_images = 5, P = 6, L = 7;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 2);
  std::bernoulli_distribution on(0.3);
  std::vector<float> dense(static_cast<size_t>(n_images * P * L), 0.0f);
  CsrMatrix acts;
  acts.n_cols = L;
  for (int64_t r = 0; r < n_images * P; ++r) {
    std::vector<int32_t> cols;
    std::vector<float> vals;
    for (int32_t c = 0; c < L; ++c)
      if (on(rng)) {
        const float v = u(rng);  // negative values too: absent entries must count as 0 in max
        cols.push_back(c);
        vals.push_back(v);
        dense[r * L + c] = v;
      }
    acts.append_row_sorted(cols.data(), vals.data(), static_cast<int64_t>(cols.size()));
  }
  for (const std::string pool : {"max", "mean", "sum"}) {
    const CsrMatrix pooled = pool_patches(acts, P, pool);
    REQUIRE(pooled.n_rows == n_images);
    std::vector<float> got(static_cast<size_t>(n_images * L), 0.0f);
    for (int64_t i = 0; i < n_images; ++i)
      for (const auto [c, v] : pooled.row(i)) got[i * L + c] = v;
    for (int64_t i = 0; i < n_images; ++i)
      for (int64_t c = 0; c < L; ++c) {
        double want = pool == "max" ? -1e9 : 0;
        for (int64_t p = 0; p < P; ++p) {
          const float v = dense[(i * P + p) * L + c];
          want = pool == "max" ? std::max<double>(want, v) : want + v;
        }
        if (pool == "mean") want /= P;
        CHECK(got[i * L + c] == doctest::Approx(want).epsilon(1e-6));
      }
  }
  CHECK_THROWS_AS(pool_patches(acts, P, "median"), UsageError);

  PatchGeometry g;
  g.grid_h = 2;
  g.grid_w = 3;
  for (int64_t i = 0; i < n_images; ++i) {
    g.image_ids.push_back("img" + std::to_string(i));
    g.image_size.insert(g.image_size.end(), {32, 32});
    g.crop_box.insert(g.crop_box.end(), {0, 0, 32, 32});
  }
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n_images; ++i)
    for (int64_t p = 0; p < P; ++p) ids.push_back(patch_row_id(g.image_ids[i], p));
  ActivationsWriter w(t.file("pa.h5"), L, {{"pool", "max"}});
  w.set_patches(g);
  w.append(ids, acts);
  w.commit();
  ActivationsReader r(t.file("pa.h5"));
  auto back = r.patches();
  REQUIRE(back.has_value());
  CHECK(back->image_ids == g.image_ids);
  CHECK(back->grid_w == 3);
  CHECK(r.read_all().values == acts.values);
  write_activations(t.file("plain.h5"), Activations{{"x"}, acts.slice_rows(0, 1), {}});
  CHECK(!ActivationsReader(t.file("plain.h5")).patches().has_value());
}
