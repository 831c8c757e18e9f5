// `conceptlab manifest` and the commands that read a manifest in place of one file: sae train
// (bitwise the SAE of the whole file), sae encode, sae eval, cbm fit, explain stats and inspect;
// parts that do not fit together leave no manifest.
#include "tests/torch_doctest.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/activations.h"
#include "core/embeddings.h"
#include "core/sae_weights.h"
#include "tests/sae/sae_test_data.h"
#include "tests/test_util.h"

using namespace cl;

namespace {

// Rows [lo, hi) of e as their own file.
void write_rows(const Embeddings& e, int64_t lo, int64_t hi, const std::string& path) {
  Embeddings p;
  p.n = hi - lo;
  p.dim = e.dim;
  p.ids.assign(e.ids.begin() + lo, e.ids.begin() + hi);
  p.data.assign(e.data.begin() + lo * e.dim, e.data.begin() + hi * e.dim);
  write_embeddings(path, p);
}

nlohmann::json run_json(const std::vector<std::string>& args) {
  auto r = test::run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.out);
}

}  // namespace

TEST_CASE("manifest cli: every reader takes a manifest and reads what one file would give") {
  test::TempDir tmp;
  const Embeddings e = test::ground_truth_embeddings(test::make_ground_truth(500, 16, 24, 8));
  const auto whole = tmp.file("whole.h5"), p0 = tmp.file("p0.h5"), p1 = tmp.file("p1.h5"), p2 = tmp.file("p2.h5");
  write_embeddings(whole, e);
  write_rows(e, 0, 170, p0);
  write_rows(e, 170, 333, p1);
  write_rows(e, 333, 500, p2);
  const auto m = tmp.file("emb.json");
  auto j = run_json({"manifest", p0, p1, p2, "--out", m, "--json"});
  CHECK(j["kind"] == "embeddings");
  CHECK(j["rows"] == 500);
  CHECK(j["parts"] == 3);

  const std::vector<std::string> train = {"-q", "sae", "train", "--arch", "topk", "--k", "4", "--expansion", "2",
                                          "--epochs", "3", "--batch", "64", "--device", "cpu", "--seed", "2"};
  auto args = train;
  args.insert(args.end(), {"--embeddings", whole, "--out", tmp.file("s_whole.h5")});
  REQUIRE(test::run_cli(args).exit_code == 0);
  args = train;
  args.insert(args.end(), {"--embeddings", m, "--out", tmp.file("s_man.h5")});
  auto r = test::run_cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto sw = read_sae(tmp.file("s_whole.h5")), sm = read_sae(tmp.file("s_man.h5"));
  CHECK(sw.W_enc == sm.W_enc);  // the same rows in the same order: bitwise the same SAE
  CHECK(sw.W_dec == sm.W_dec);
  CHECK(sm.config["inputs"][0] == m);

  // sae eval and encode on the manifest; activations of the parts, joined by a manifest of their own.
  auto ev_w = run_json({"sae", "eval", "--sae", tmp.file("s_whole.h5"), "--embeddings", whole, "--device", "cpu", "--json"});
  auto ev_m = run_json({"sae", "eval", "--sae", tmp.file("s_whole.h5"), "--embeddings", m, "--device", "cpu", "--json"});
  CHECK(ev_m["fvu"].get<double>() == doctest::Approx(ev_w["fvu"].get<double>()).epsilon(1e-12));
  CHECK(ev_m["n"] == 500);
  REQUIRE(test::run_cli({"-q", "sae", "encode", "--sae", tmp.file("s_whole.h5"), "--embeddings", m, "--out",
                         tmp.file("a_man.h5"), "--device", "cpu"}).exit_code == 0);
  REQUIRE(test::run_cli({"-q", "sae", "encode", "--sae", tmp.file("s_whole.h5"), "--embeddings", whole, "--out",
                         tmp.file("a_whole.h5"), "--device", "cpu"}).exit_code == 0);
  const auto aw = read_activations(tmp.file("a_whole.h5")), am = read_activations(tmp.file("a_man.h5"));
  CHECK(am.ids == aw.ids);
  CHECK(am.acts.values == aw.acts.values);
  // The whole file's activations cut into 3 files (encoding each part alone would round
  // differently: other batch shapes), joined again by a manifest.
  std::vector<std::string> act_parts;
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{0, 100}, {100, 420}, {420, 500}}) {
    Activations part;
    part.ids.assign(aw.ids.begin() + lo, aw.ids.begin() + hi);
    part.acts.n_cols = aw.acts.n_cols;
    for (int64_t i = lo; i < hi; ++i) {
      const auto a0 = aw.acts.indptr[static_cast<size_t>(i)], a1 = aw.acts.indptr[static_cast<size_t>(i + 1)];
      part.acts.append_row(aw.acts.indices.data() + a0, aw.acts.values.data() + a0, a1 - a0);
    }
    act_parts.push_back(tmp.file("acts" + std::to_string(lo) + ".h5"));
    write_activations(act_parts.back(), part);
  }
  const auto am2 = tmp.file("acts.json");
  auto margs = std::vector<std::string>{"manifest"};
  margs.insert(margs.end(), act_parts.begin(), act_parts.end());
  margs.insert(margs.end(), {"--out", am2, "--json"});
  j = run_json(margs);
  CHECK(j["kind"] == "activations");
  auto st_w = run_json({"-q", "explain", "stats", "--activations", tmp.file("a_whole.h5"), "--json"});
  auto st_m = run_json({"-q", "explain", "stats", "--activations", am2, "--json"});
  st_m.erase("index");
  st_w.erase("index");
  CHECK(st_m.dump() == st_w.dump());

  // cbm fit on the activations manifest: the same model as on the one file.
  std::string csv = "ImageID,dx\n";
  for (int64_t i = 0; i < e.n; ++i) csv += e.ids[static_cast<size_t>(i)] + (e.data[static_cast<size_t>(i * 16)] > 0 ? ",a\n" : ",b\n");
  test::write_text(tmp.file("meta.csv"), csv);
  for (const auto& [feat, out] : {std::pair{tmp.file("a_whole.h5"), tmp.file("cw.h5")}, std::pair{am2, tmp.file("cm.h5")}}) {
    r = test::run_cli({"-q", "cbm", "fit", "--features", feat, "--labels", tmp.file("meta.csv"), "--label-col", "dx",
                       "--out", out, "--splits", "2", "--json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  CHECK(test::read_bytes(tmp.file("cw.h5")).size() > 0);
  auto iw = run_json({"inspect", tmp.file("cw.h5"), "--json"}), im = run_json({"inspect", tmp.file("cm.h5"), "--json"});
  im["metrics"].erase("wall_s");
  iw["metrics"].erase("wall_s");
  CHECK(im["metrics"].dump() == iw["metrics"].dump());

  auto ins = run_json({"inspect", m, "--json"});
  CHECK(ins["format"] == "conceptlab.manifest");
  CHECK(ins["kind"] == "embeddings");
  CHECK(ins["datasets"]["embeddings"]["shape"] == nlohmann::json::array({500, 16}));
  r = test::run_cli({"inspect", am2});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("kind: \"activations\"") != std::string::npos);

  // Parts that do not fit together: exit 1, the file named, no manifest written.
  Embeddings other = e;
  other.dim = 8;
  other.data.resize(static_cast<size_t>(500 * 8));
  for (auto& id : other.ids) id = "x" + id;
  write_embeddings(tmp.file("d8.h5"), other);
  r = test::run_cli({"manifest", p0, tmp.file("d8.h5"), "--out", tmp.file("bad.json")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("d8.h5 has dim 8") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp.file("bad.json")));
  r = test::run_cli({"manifest", p0, p0, "--out", tmp.file("bad.json")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("duplicate id") != std::string::npos);
  r = test::run_cli({"manifest", p0, "--out", p0});
  CHECK(r.exit_code != 0);
  CHECK(std::filesystem::exists(p0));
  test::write_text(tmp.file("broken.json"), "{\"format\": \"conceptlab.manifest\"}");
  args = train;
  args.insert(args.end(), {"--embeddings", tmp.file("broken.json"), "--out", tmp.file("s_bad.h5")});
  r = test::run_cli(args);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("broken.json: 'schema_version' is missing, expected 1") != std::string::npos);
}

TEST_CASE("manifest cli: no command overwrites a part of a manifest it reads") {
  test::TempDir tmp;
  const Embeddings e = test::ground_truth_embeddings(test::make_ground_truth(200, 8, 12, 4));
  const auto p0 = tmp.file("p0.h5"), p1 = tmp.file("p1.h5"), m = tmp.file("emb.json");
  write_rows(e, 0, 120, p0);
  write_rows(e, 120, 200, p1);
  REQUIRE(test::run_cli({"-q", "manifest", p0, p1, "--out", m}).exit_code == 0);
  const auto s = tmp.file("s.h5"), a = tmp.file("a.h5"), am = tmp.file("acts.json");
  REQUIRE(test::run_cli({"-q", "sae", "train", "--embeddings", m, "--out", s, "--arch", "topk", "--k", "2",
                         "--expansion", "2", "--epochs", "1", "--batch", "50", "--device", "cpu"}).exit_code == 0);
  REQUIRE(test::run_cli({"-q", "sae", "encode", "--sae", s, "--embeddings", m, "--out", a, "--device", "cpu"})
              .exit_code == 0);
  REQUIRE(test::run_cli({"-q", "manifest", a, "--out", am}).exit_code == 0);
  std::string csv = "ImageID,dx\n";
  for (int64_t i = 0; i < e.n; ++i) csv += e.ids[static_cast<size_t>(i)] + (i % 2 ? ",a\n" : ",b\n");
  test::write_text(tmp.file("meta.csv"), csv);
  const auto before_p1 = test::read_bytes(p1), before_a = test::read_bytes(a);
  const std::vector<std::vector<std::string>> cmds = {
      {"-q", "sae", "encode", "--sae", s, "--embeddings", m, "--out", p1, "--device", "cpu"},
      {"-q", "sae", "train", "--embeddings", m, "--out", p1, "--epochs", "1", "--batch", "50", "--device", "cpu"},
      {"-q", "explain", "stats", "--activations", am, "--out", a},
      {"-q", "cbm", "fit", "--features", am, "--labels", tmp.file("meta.csv"), "--label-col", "dx", "--out", a,
       "--splits", "2"}};
  for (const auto& args : cmds) {
    CAPTURE(args[2]);
    const auto r = test::run_cli(args);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("a part of input") != std::string::npos);
  }
  CHECK(test::read_bytes(p1) == before_p1);
  CHECK(test::read_bytes(a) == before_a);
}
