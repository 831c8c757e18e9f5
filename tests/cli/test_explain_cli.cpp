// `conceptlab explain ...` and `conceptlab intervene` end to end on a generated world where latent 3
// tracks hair, latent 5 tracks ruler and the label leans on latent 7 and on hair: every command's
// --json output, the files it writes, and the one-line errors for bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/latent_index.h"
#include "core/latent_names.h"
#include "core/sae_weights.h"
#include "core/vocab.h"
#include "tests/test_util.h"

using cl::test::run_cli;
namespace fs = std::filesystem;

namespace {

struct World {
  cl::test::TempDir t;
  std::string acts, emb, labels, sae, cbm, probe, vocab;
};

nlohmann::json run_json(const std::vector<std::string>& args) {
  auto r = run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.out);
}

void make_world(World& w) {
  const int n = 240, L = 16, D = 8;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> U(0, 1);
  cl::Activations a;
  a.acts.n_cols = L;
  cl::Embeddings e;
  e.n = n;
  e.dim = D;
  cl::CsvTable meta;
  meta.header = {"ImageID", "label", "hair", "ruler", "bad", "split", "site"};
  for (int i = 0; i < n; ++i) {
    const int hair = U(rng) < 0.4, ruler = U(rng) < 0.3, l7 = U(rng) < 0.5;
    const int label = (1.2 * l7 + 0.9 * hair + 0.4 * U(rng)) > 1.0;
    std::vector<int32_t> c;
    std::vector<float> v;
    for (int32_t j = 0; j < L; ++j) {
      float val = 0;
      if (j == 3 && hair) val = 1.0f + float(U(rng));
      else if (j == 5 && ruler) val = 0.5f + float(U(rng));
      else if (j == 7 && l7) val = 1.0f + float(U(rng));
      else if (j != 3 && j != 5 && j != 7 && U(rng) < 0.2) val = float(U(rng));
      if (val > 0) c.push_back(j), v.push_back(val);
    }
    a.acts.append_row_sorted(c.data(), v.data(), static_cast<int64_t>(c.size()));
    const std::string id = "img_" + std::to_string(i) + ".png";
    a.ids.push_back(id);
    e.ids.push_back(id);
    for (int d = 0; d < D; ++d) e.data.push_back(float(U(rng) + (d == 0 ? 2.0 * hair : 0) + (d == 1 ? 2.0 * l7 : 0)));
    meta.rows.push_back({id, std::to_string(label), i % 10 == 0 ? "" : std::to_string(hair), std::to_string(ruler),
                         i == 17 ? "2" : "0", i % 4 == 0 ? "test" : "train", i % 3 ? "a" : "b"});
  }
  w.acts = w.t.file("A.h5");
  w.emb = w.t.file("E.h5");
  w.labels = w.t.file("meta.csv");
  cl::write_activations(w.acts, a);
  cl::write_embeddings(w.emb, e);
  cl::write_csv(w.labels, meta);
  cl::SaeWeights s;
  s.arch = "relu-l1";
  s.d_in = D;
  s.n_latents = L;
  for (int q = 0; q < D * L; ++q) s.W_enc.push_back(float(U(rng) - 0.5));
  for (int j = 0; j < L; ++j)
    for (int d = 0; d < D; ++d) s.W_dec.push_back(j == 3 ? (d == 0 ? 1.0f : 0.0f) : float(U(rng) - 0.5));
  s.b_enc.assign(L, 0.0f);
  s.b_dec.assign(D, 0.0f);
  w.sae = w.t.file("S.h5");
  cl::write_sae(w.sae, s);
  cl::Vocab voc;
  voc.names = {"hair", "ruler"};
  voc.dim = D;
  for (int d = 0; d < D; ++d) voc.embeddings.push_back(d == 0 ? 1.0f : 0.0f);
  for (int d = 0; d < D; ++d) voc.embeddings.push_back(d == 2 ? 1.0f : 0.1f);
  w.vocab = w.t.file("V.h5");
  cl::write_vocab(w.vocab, voc);
  w.cbm = w.t.file("M.h5");
  w.probe = w.t.file("P.h5");
  REQUIRE(run_cli({"-q", "cbm", "fit", "--features", w.acts, "--labels", w.labels, "--label-col", "label", "--split-col",
                   "split", "--out", w.cbm, "--penalty", "l2", "--alpha", "1e-3"})
              .exit_code == 0);
  REQUIRE(run_cli({"-q", "cbm", "fit", "--features", w.emb, "--labels", w.labels, "--label-col", "label", "--split-col",
                   "split", "--out", w.probe, "--penalty", "l2", "--alpha", "1e-3"})
              .exit_code == 0);
}

}  // namespace

TEST_CASE("explain stats, retrieve, match, name: outputs and files") {
  World w;
  make_world(w);
  auto s = run_json({"-q", "explain", "stats", "--activations", w.acts, "--json"});
  CHECK(s["n_latents"] == 16);
  CHECK(s["alive"] == 16);
  CHECK(fs::exists(w.t.file("A.index.h5")));
  CHECK(cl::read_latent_index(w.t.file("A.index.h5")).n_rows == 240);

  auto r = run_json({"-q", "explain", "retrieve", "--activations", w.acts, "--latent", "3", "--top", "4", "--json",
                     "--montage", w.t.file("m.png")});
  REQUIRE(r["images"].size() == 4);
  for (size_t k = 1; k < 4; ++k) CHECK(r["images"][k - 1]["activation"] >= r["images"][k]["activation"]);
  CHECK(fs::file_size(w.t.file("m.png")) > 1000);
  auto ri = run_json({"-q", "explain", "retrieve", "--activations", w.acts, "--image", "img_3.png", "--json"});
  CHECK(ri["latents"].size() >= 1);

  auto m = run_json({"-q", "explain", "match", "--activations", w.acts, "--labels", w.labels, "--columns",
                     "hair,ruler", "--embeddings", w.emb, "--json"});
  REQUIRE(m["concepts"].size() == 2);
  CHECK(m["concepts"][0]["best"][0]["latent"] == 3);
  CHECK(m["concepts"][0]["best"][0]["auroc"].get<double>() > 0.95);
  CHECK(m["concepts"][1]["best"][0]["latent"] == 5);
  CHECK(m["concepts"][0]["n_pos"].get<int>() + m["concepts"][0]["n_neg"].get<int>() == 216);  // 24 unannotated
  CHECK(m["concepts"][0]["set_auroc"].get<double>() > 0.9);
  CHECK(m["concepts"][0]["probe_auroc"].get<double>() > 0.9);
  CHECK(m["coverage"]["named"].get<int>() >= 2);
  const auto names = cl::read_latent_names(w.t.file("A.names.h5"));
  REQUIRE(names.find(3));
  CHECK(names.find(3)->name == "hair");
  // Retrieval by concept name now works.
  auto rc = run_json({"-q", "explain", "retrieve", "--activations", w.acts, "--concept", "hair", "--json"});
  CHECK(rc["latent"] == 3);

  auto nv = run_json({"-q", "explain", "name", "--sae", w.sae, "--vocab", w.vocab, "--json"});
  CHECK(nv["matches"][0]["concept"] == "hair");
  CHECK(nv["matches"][0]["latent"] == 3);
  CHECK(nv["matches"][0]["cosine"].get<double>() == doctest::Approx(1.0));
  auto na = run_json({"-q", "explain", "name", "--sae", w.sae, "--embeddings", w.emb, "--labels", w.labels,
                      "--columns", "hair", "--activations", w.acts, "--cbm", w.cbm, "--min-similarity", "-1", "--json"});
  CHECK(na["matches"][0]["annotation_latent"] == 3);
  CHECK(na["matches"][0].contains("agrees_with_annotation"));
}

TEST_CASE("explain global, local, curve and intervene: outputs") {
  World w;
  make_world(w);
  auto g = run_json({"-q", "explain", "global", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels,
                     "--label-col", "label", "--top", "3", "--plot", w.t.file("g.png"), "--json"});
  REQUIRE(g["classes"].size() == 2);
  CHECK(g["classes"][1]["by_weight"][0]["latent"] == 7);  // the label's main latent
  CHECK(fs::file_size(w.t.file("g.png")) > 1000);
  auto l = run_json({"-q", "explain", "local", "--cbm", w.cbm, "--activations", w.acts, "--id", "img_5.png", "--json"});
  for (const auto& c : l["classes"]) {
    double s = 0;
    for (const auto& t : c["contributions"]) s += t["contribution"].get<double>();
    CHECK(s == doctest::Approx(c["logit"].get<double>() - c["bias"].get<double>()).epsilon(1e-9));
  }
  auto cv = run_json({"-q", "explain", "curve", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels,
                      "--label-col", "label", "--split-col", "split", "--by", "weight,annotation,random",
                      "--concept-col", "hair", "--max-k", "4", "--seeds", "3", "--csv", w.t.file("c.csv"), "--plot",
                      w.t.file("c.png"), "--json"});
  CHECK(cv["curves"].size() == 5 * 5);  // weight + annotation + 3 random seeds, k = 0..4
  CHECK(cl::read_csv(w.t.file("c.csv")).n_rows() == 25);
  CHECK(fs::file_size(w.t.file("c.png")) > 1000);

  auto iv = run_json({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col",
                      "label", "--split-col", "split", "--zero", "7", "--subgroup-col", "site", "--bootstrap", "100",
                      "--random-control", "5", "--refit", "--sae", w.sae, "--probe", w.probe, "--embeddings", w.emb,
                      "--out", w.t.file("iv.json"), "--json"});
  CHECK(iv["n_eval"] == 60);
  CHECK(iv["after"]["auroc"].get<double>() < iv["before"]["auroc"].get<double>());
  CHECK(iv["random_control"]["seeds"] == 5);
  CHECK(iv["before"]["groups"].size() == 4);
  CHECK(iv.contains("refit"));
  CHECK(iv.contains("embedding_space"));
  CHECK(nlohmann::json::parse(cl::test::read_text(w.t.file("iv.json"))) == iv);
  auto ir = run_json({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col",
                      "label", "--concept", "hair", "--top-n", "1", "--by", "annotation", "--json"});
  CHECK(ir["edits"][0]["latent"] == 3);
  cl::test::write_text(w.t.file("edits.json"), R"({"edits": [{"latent": 7, "op": "scale", "value": 0.5}]})");
  auto ie = run_json({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col",
                      "label", "--edits", w.t.file("edits.json"), "--random-control", "0", "--json"});
  CHECK(ie["edits"][0]["op"] == "scale");
  CHECK(!ie.contains("random_control"));
}

TEST_CASE("explain and intervene: bad input exits 1 (or 2 for usage) with one line naming the value") {
  World w;
  make_world(w);
  auto expect = [](const std::vector<std::string>& args, int code, const std::string& needle) {
    auto r = run_cli(args);
    INFO(r.err);
    CHECK(r.exit_code == code);
    CHECK(r.err.find(needle) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= 2);
  };
  expect({"-q", "explain", "retrieve", "--activations", w.acts, "--latent", "99"}, 1, "latent 99");
  expect({"-q", "explain", "retrieve", "--activations", w.acts, "--concept", "dust"}, 1, "dust");
  expect({"-q", "explain", "retrieve", "--activations", w.acts, "--image", "nope.png"}, 1, "nope.png");
  expect({"-q", "explain", "match", "--activations", w.acts, "--labels", w.labels, "--columns", "missing_col"}, 1,
         "missing_col");
  expect({"-q", "explain", "match", "--activations", w.acts, "--labels", w.labels, "--columns", "bad"}, 1, "'2'");
  expect({"-q", "explain", "match", "--activations", w.acts, "--labels", w.labels, "--columns", "hair", "--id-col",
          "site"},
         1, "site");
  expect({"-q", "explain", "name", "--sae", w.sae, "--vocab", w.vocab, "--embeddings", w.emb}, 2, "--vocab");
  expect({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col", "label",
          "--zero", "40"},
         1, "latent 40");
  expect({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col", "label",
          "--zero", "x,1"},
         2, "--zero");
  expect({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col", "label"}, 2,
         "no edit");
  expect({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col", "label",
          "--zero", "3", "--random-control", "2"},
         2, "random_control");
  // An SAE of another size than the activations' latents.
  cl::SaeWeights s = cl::read_sae(w.sae);
  s.d_in = 4;
  s.W_enc.resize(4 * 16);
  s.W_dec.resize(16 * 4);
  s.b_dec.resize(4);
  cl::write_sae(w.t.file("S4.h5"), s);
  expect({"-q", "explain", "name", "--sae", w.t.file("S4.h5"), "--vocab", w.vocab}, 1, "dim");
  expect({"-q", "intervene", "--cbm", w.cbm, "--activations", w.acts, "--labels", w.labels, "--label-col", "label",
          "--zero", "3", "--sae", w.t.file("S4.h5"), "--probe", w.probe, "--embeddings", w.emb},
         1, "dim");
}
