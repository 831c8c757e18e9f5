// The patch formats: patch-embeddings write-read round trips (float32 exact, float16 rounded),
// read as patch rows by EmbeddingsReader, patch activations with their geometry, patch boxes, and
// max/mean/sum pooling against a direct computation.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/inspect.h"
#include "core/manifest.h"
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
