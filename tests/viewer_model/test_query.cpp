// Query by example: an image embedded with the workspace's own encoder and encoded with its SAE
// finds itself among the workspace's images (the same code, cosine 1), with the CBM's
// probabilities; a workspace without an encoder, or an unreadable image, is a clear error.
#include <doctest/doctest.h>

#include <fstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "core/activations.h"
#include "core/error.h"
#include "tests/test_util.h"
#include "tests/viewer_model/fixture.h"
#include "viewer/model/query.h"

using namespace cl;

namespace {

// conv -> relu -> 3x3 pooled grid -> linear -> tanh: [B,3,24,24] -> [B,12].
void write_encoder(const std::string& dir) {
  torch::manual_seed(3);
  torch::jit::Module m("query_encoder");
  m.register_buffer("w_conv", torch::randn({6, 3, 3, 3}) * 0.5);
  m.register_buffer("b_conv", torch::randn({6}) * 0.1);
  m.register_buffer("w_lin", torch::randn({54, 12}) * 0.3);
  m.define(R"JIT(
def forward(self, x):
    h = torch.relu(torch.conv2d(x, self.w_conv, self.b_conv, [1, 1], [1, 1]))
    g = torch.adaptive_avg_pool2d(h, [3, 3]).flatten(1)
    return torch.tanh(torch.matmul(g, self.w_lin))
)JIT");
  m.save(dir + "/enc.pt");
  std::ofstream(dir + "/enc.json") << R"J({"image_size": 24, "resize": "shorter_side_center_crop",
    "interpolation": "bilinear_antialias", "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]})J";
}

}  // namespace

TEST_CASE("viewer model: query by example embeds with the workspace's encoder and finds the image itself") {
  test::TempDir t;
  test::write_viewer_dataset(t.file("data"), 200, 24, 9);
  write_encoder(t.file("data"));
  pipeline::PipelineParams p;
  p.data.csv = "meta.csv";
  p.data.image_root = "images";
  p.data.concept_cols = {"c0", "grp"};
  p.embed.model = "enc.pt";
  p.sae.arch = "topk";
  p.sae.k = 4;
  p.sae.n_latents = 24;
  p.sae.batch = 50;
  p.sae.epochs = 10;
  p.match.splits = 2;
  p.intervene.random_control = 0;
  p.interventions.clear();
  p.curve.by = {"weight"};
  p.curve.max_k = 2;
  pipeline::resolve_paths(p, t.file("data"));
  pipeline::RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";
  pipeline::run_pipeline(p, o);

  const auto m = viewer::WorkspaceModel::load(viewer::WorkspacePaths::from_workspace(o.workspace));
  REQUIRE(m->issues.empty());
  CHECK(m->paths.encoder_model == t.file("data/enc.pt"));
  const int64_t row = 17;
  const auto q = viewer::query_by_example(*m, m->image_path(row), Device(c10::kCPU));
  REQUIRE(!q.nearest.empty());
  // The fixture draws from 32 possible pictures, so pixel-identical duplicates of the image tie
  // with it at cosine 1 (up to the float noise of batched encoding): the image itself must be
  // among the ties, and every tie must be a duplicate.
  bool found = false;
  for (const auto& [r, cos] : q.nearest) {
    if (cos < 1.0 - 1e-5) break;
    found = found || r == row;
    CHECK(test::read_text(m->image_path(r)) == test::read_text(m->image_path(row)));
  }
  CHECK(found);
  CHECK(q.nearest[0].second == doctest::Approx(1.0).epsilon(1e-5));
  REQUIRE(q.proba.size() == 2);
  // Its code is the workspace's activations row (same encoder, same SAE).
  const auto& A = m->acts.acts;
  std::vector<std::pair<int64_t, float>> stored;
  for (auto i = A.indptr[row]; i < A.indptr[row + 1]; ++i) stored.emplace_back(A.indices[static_cast<size_t>(i)], A.values[static_cast<size_t>(i)]);
  REQUIRE(q.latents.size() == stored.size());
  CHECK(q.latents.size() >= 2);
  for (const auto& [j, v] : q.latents) {
    const auto it = std::find_if(stored.begin(), stored.end(), [&](const auto& s) { return s.first == j; });
    REQUIRE(it != stored.end());
    CHECK(v == doctest::Approx(it->second).epsilon(1e-4));
  }
  // Bad inputs name the file at fault.
  test::write_text(t.file("broken.png"), "not an image");
  CHECK_THROWS_WITH_AS(viewer::query_by_example(*m, t.file("broken.png"), Device(c10::kCPU)), doctest::Contains("broken.png"),
                       InputError);
  auto no_encoder = viewer::WorkspacePaths::from_workspace(o.workspace);
  no_encoder.encoder_model.clear();
  const auto m2 = viewer::WorkspaceModel::load(no_encoder);
  CHECK_THROWS_WITH_AS(viewer::query_by_example(*m2, m->image_path(row), Device(c10::kCPU)), doctest::Contains("encoder"),
                       InputError);
}
