// The viewer's data model without a window: loading a workspace (and surviving broken files),
// the latent table, details, the linked subgroup view, renames the CLI sees, and interventions
// that give exactly the numbers `conceptlab intervene` gives for the saved edit file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/latent_names.h"
#include "core/params.h"
#include "explain/rules.h"
#include "tools/pipeline/pipeline.h"
#include "tests/test_util.h"
#include "tests/viewer_model/fixture.h"
#include "viewer/model/intervention_session.h"
#include "viewer/model/latent_table.h"
#include "viewer/model/thumbnails.h"
#include "viewer/model/workspace_model.h"

namespace fs = std::filesystem;
using namespace cl;
using namespace cl::viewer;

namespace {

// One shared workspace for the cases that only read it (the pipeline takes ~2 s).
const std::string& shared_workspace() {
  static test::TempDir dir;
  static const std::string ws = test::make_viewer_workspace(dir.path.string());
  return ws;
}

int64_t named(const WorkspaceModel& m, const std::string& name) {
  for (const auto& r : m.latents)
    if (r.name == name) return r.latent;
  return -1;
}

}  // namespace

TEST_CASE("viewer model: a workspace opens with every file, latents are named and found by search") {
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(shared_workspace()));
  CHECK(m->issues.empty());
  CHECK(m->n_images() == 600);
  CHECK(m->n_latents() == 16);
  REQUIRE(m->has_index());
  REQUIRE(m->has_cbm());
  REQUIRE(m->has_labels());
  CHECK(m->classes() == std::vector<std::string>{"benign", "malignant"});
  CHECK(m->labelled->eval.rows.size() < 600);  // the test split only
  CHECK(m->sae.has_value());
  REQUIRE(m->latents.size() == 16);
  // Every planted concept has a latent named after it (by the pipeline's annotation matching).
  for (auto c : {"c0", "c1", "c2", "c3", "grp"}) CHECK_MESSAGE(named(*m, c) >= 0, c);
  const int64_t g = named(*m, "grp");
  const auto& row = m->latents[static_cast<size_t>(g)];
  CHECK(row.origin == "annotation");
  CHECK(row.score > 0.95);
  CHECK(row.firing_rate > 0.1);
  CHECK(row.max > 0);
  REQUIRE(row.class_weight.size() == 2);
  CHECK(row.class_weight[0] == -row.class_weight[1]);

  LatentFilter f;
  f.query = "GRP";
  auto v = filter_latents(m->latents, f);
  REQUIRE(!v.empty());
  for (auto j : v) CHECK(m->latents[static_cast<size_t>(j)].name == "grp");
  f.query = fmt::format("#{}", g);
  v = filter_latents(m->latents, f);
  CHECK(std::find(v.begin(), v.end(), g) != v.end());
  f = {};
  f.sort = LatentColumn::firing_rate;
  f.ascending = false;
  v = filter_latents(m->latents, f);
  REQUIRE(v.size() == 16);
  for (size_t i = 1; i < v.size(); ++i)
    CHECK(m->latents[static_cast<size_t>(v[i - 1])].firing_rate >= m->latents[static_cast<size_t>(v[i])].firing_rate);
  f = {};
  f.sort = LatentColumn::rank;
  v = filter_latents(m->latents, f);
  CHECK(m->latents[static_cast<size_t>(v[0])].rank == 1);
  f.used_only = true;
  for (auto j : filter_latents(m->latents, f)) CHECK(m->latents[static_cast<size_t>(j)].rank > 0);
  f = {};
  f.named_only = true;
  CHECK(filter_latents(m->latents, f).size() < 16);
}

TEST_CASE("viewer model: latent and image details, the linked subgroup view, nearest images") {
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(shared_workspace()));
  CHECK_FALSE(m->compute_concept_directions().has_value());
  CHECK(m->concept_names.size() == 5);
  const int64_t g = named(*m, "grp");
  const auto d = latent_detail(*m, g, 10);
  REQUIRE(d.top.size() == 10);
  for (size_t i = 1; i < d.top.size(); ++i) CHECK(d.top[i - 1].second >= d.top[i].second);
  CHECK(fs::exists(m->image_path(d.top[0].first)));
  REQUIRE(!d.annotation_auroc.empty());
  CHECK(d.annotation_auroc[0].first == "grp");  // its own annotation first
  CHECK(d.annotation_auroc[0].second > 0.95);
  REQUIRE(!d.nearest_concepts.empty());
  CHECK(d.nearest_concepts[0].first == "grp");  // its decoder points at the grp direction
  CHECK(d.nearest_latents.size() == 8);
  CHECK(std::accumulate(d.hist.begin(), d.hist.end(), int64_t{0}) == m->index.fire_count[static_cast<size_t>(g)]);

  const int64_t row = d.top[0].first;
  const auto im = image_detail(*m, row);
  CHECK(im.id == m->acts.ids[static_cast<size_t>(row)]);
  REQUIRE(im.proba.size() == 2);
  CHECK(std::abs(im.proba[0] + im.proba[1] - 1) < 1e-9);
  REQUIRE(!im.top_latents.empty());
  CHECK(std::any_of(im.top_latents.begin(), im.top_latents.end(), [&](const auto& p) { return p.first == g; }));
  CHECK(!im.metadata.empty());
  CHECK(!im.label.empty());

  // Linked view: the images with the artifact light up its latent first.
  const auto gv = group_view(*m, "grp", "1", 5);
  CHECK(gv.n_in > 0);
  CHECK(gv.n_out > gv.n_in);
  REQUIRE(!gv.latents.empty());
  CHECK(gv.latents[0].latent == g);
  CHECK(gv.latents[0].mean_in > gv.latents[0].mean_out);

  // An image's own code finds itself first.
  const auto near = nearest_images(*m, im.top_latents, 5);
  REQUIRE(!near.empty());
  CHECK(near[0].first == row);
  CHECK(near[0].second == doctest::Approx(1.0));
}

TEST_CASE("viewer model: interventions give exactly the numbers conceptlab intervene gives for the saved edits") {
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(shared_workspace()));
  InterventionSession s(*m);
  CHECK(s.subgroup_column() == "grp");
  const int64_t g = named(*m, "grp");
  const std::vector<explain::LatentEdit> edits = {{g, explain::EditOp::zero, 0}, {named(*m, "c2"), explain::EditOp::scale, 0.5}};
  const auto live = s.evaluate(edits);
  CHECK(live.n_edits == 2);
  CHECK(live.before.metrics.auroc != live.after.metrics.auroc);
  CHECK_FALSE(std::isnan(live.after.worst_group_accuracy));

  test::TempDir t;
  const std::string edits_path = t.file("edits.json");
  save_edits(edits_path, edits, m->paths, s.subgroup_column());
  CHECK(load_edits(edits_path).size() == 2);
  auto args = std::vector<std::string>{"intervene"};
  for (const auto& a : replay_arguments(m->paths, s.subgroup_column(), edits_path)) args.push_back(a);
  args.push_back("--json");
  const auto cli = test::run_cli(args);
  REQUIRE_MESSAGE(cli.exit_code == 0, cli.err);
  const auto j = nlohmann::json::parse(cli.out);
  // The live numbers (no intervals) are the CLI's, to the last bit.
  CHECK(j["after"]["auroc"].get<double>() == live.after.metrics.auroc);
  CHECK(j["after"]["accuracy"].get<double>() == live.after.metrics.accuracy);
  CHECK(j["after"]["balanced_accuracy"].get<double>() == live.after.metrics.balanced_accuracy);
  CHECK(j["before"]["auroc"].get<double>() == live.before.metrics.auroc);
  CHECK(j["after"]["worst_group_accuracy"].get<double>() == live.after.worst_group_accuracy);
  CHECK(j["n_flipped"].get<int64_t>() == live.n_flipped);
  // The full experiment (bootstrap intervals, random control) is the CLI's report exactly.
  auto full = explain::to_json(s.evaluate_full(edits));
  full["n_eval"] = s.eval_set().rows.size();
  full["label_col"] = m->paths.label_col;
  CHECK(full == j);

  // The selected image's probabilities move with the edits; a train image is not scored.
  const int64_t test_row = m->acts_row_of_labelled[static_cast<size_t>(s.eval_set().rows[0])];
  const auto sel = s.evaluate(edits, test_row);
  CHECK(sel.selected_before.size() == 2);
  CHECK(sel.selected_after.size() == 2);
  // A different subgroup column re-splits the groups.
  InterventionSession s2(*m);
  s2.set_subgroup_column("c0");
  CHECK(s2.evaluate(edits).after.groups.size() == 4);
  CHECK(s2.evaluate(edits).after.metrics.auroc == live.after.metrics.auroc);

  // The live evaluator answers the newest request with the same numbers.
  LiveEvaluator le(s);
  le.post({}, -1);
  le.post(edits, -1);
  for (int i = 0; i < 500 && !le.idle(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto latest = le.latest();
  REQUIRE(latest.has_value());
  CHECK(latest->after.metrics.auroc == live.after.metrics.auroc);

  // Bad edit files are refused naming the file.
  test::write_text(t.file("bad.json"), R"({"edits": [{"latent": 1, "op": "scale"}]})");
  CHECK_THROWS_WITH_AS(load_edits(t.file("bad.json")), doctest::Contains("bad.json"), InputError);
  test::write_text(t.file("bad2.json"), R"({"edits": [{"latent": -3}]})");
  CHECK_THROWS_AS(load_edits(t.file("bad2.json")), InputError);
  const std::map<std::string, std::string> bad = {
      {R"({"edits": [{"latent": 16}]})", "latent 16: expected 0..15"},
      {R"({"edits": [{"latent": 18446744073709551615}]})", "expected 0..15"},
      {R"({"edits": [{"latent": 2}, {"latent": 2, "op": "mean"}]})", "edited twice"},
      {R"({"edits": [{"latent": 2, "op": "bogus"}]})", "op 'bogus'"},
      {R"({"edits": [{"latent": 2, "op": 5}]})", "op 5"},
      {R"({"edits": [{"latent": 2, "op": "scale", "value": "NaN"}]})", "expected a finite number"},
      {R"({"edits": [{"latent": 2, "op": "scale", "value": 1e308}]})", "expected a finite number"},
      {R"({"format": "conceptlab.bogus", "edits": []})", "expected \"conceptlab.edits\""},
      {R"({"format": "conceptlab.edits", "schema_version": 2, "edits": []})", "schema_version 2"},
      {"not json", "not valid JSON"}};
  for (const auto& [text, why] : bad) {
    INFO(text);
    test::write_text(t.file("e.json"), text);
    CHECK_THROWS_WITH_AS(load_edits(t.file("e.json"), 16), doctest::Contains(why.c_str()), InputError);
    CHECK_THROWS_WITH_AS(load_edits(t.file("e.json"), 16), doctest::Contains("e.json"), InputError);
  }
  CHECK_THROWS_WITH_AS(load_edits(t.file("none.json")), doctest::Contains("no such edit file"), InputError);
  CHECK_THROWS_WITH_AS(load_edits(t.path.string()), doctest::Contains("is not a file"), InputError);
  // The CLI reads the same format with the same checks (exit 1, naming the edit file).
  test::write_text(t.file("e.json"), R"({"edits": [{"latent": 16}]})");
  auto cli_args = std::vector<std::string>{"intervene"};
  for (const auto& a : replay_arguments(m->paths, "", t.file("e.json"))) cli_args.push_back(a);
  const auto bad_cli = test::run_cli(cli_args);
  CHECK(bad_cli.exit_code == 1);
  CHECK(bad_cli.err.find("e.json: latent 16") != std::string::npos);
}

TEST_CASE("one home for the rules: the pipeline, the CLI and the viewer's model give the same curve and intervention") {
  const std::string ws = shared_workspace();
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
  REQUIRE(m->issues.empty());
  const auto p = params_from_json<pipeline::PipelineParams>(load_json_file(ws + "/workspace.json")["config"], "workspace.json");
  REQUIRE(p.curve.by == std::vector<std::string>{"weight", "annotation", "random"});
  test::TempDir t;
  const auto& d = p.data;
  const std::vector<std::string> data_args = {"--cbm", m->paths.cbm, "--activations", m->paths.activations, "--labels", d.csv,
                                              "--label-col", d.label_col, "--split-col", d.split_col, "--eval-split",
                                              d.eval_split, "--subgroup-col", d.subgroup_col, "-q"};
  // The curve: the pipeline's curve.csv, `explain curve --csv` and the viewer's session, byte for byte.
  auto curve_args = std::vector<std::string>{"explain", "curve", "--by", "weight,annotation,random", "--concept-col",
                                             p.curve.concept_col, "--max-k", std::to_string(p.curve.max_k), "--seeds",
                                             std::to_string(p.curve.seeds), "--csv", t.file("cli.csv")};
  curve_args.insert(curve_args.end(), data_args.begin(), data_args.end());
  const auto cli = test::run_cli(curve_args);
  REQUIRE_MESSAGE(cli.exit_code == 0, cli.err);
  InterventionSession s(*m);
  write_csv(t.file("viewer.csv"), explain::curve_table(s.curves(p.curve)));
  const std::string pipeline_csv = test::read_text(ws + "/curve.csv");
  CHECK(pipeline_csv.find("random:1") != std::string::npos);
  CHECK(pipeline_csv.find("annotation:grp") != std::string::npos);
  CHECK(test::read_text(t.file("cli.csv")) == pipeline_csv);
  CHECK(test::read_text(t.file("viewer.csv")) == pipeline_csv);
  CHECK(m->curves.size() == 3);  // weight, annotation, random (seeds folded)

  // One intervention with its random control: interventions.json, `intervene --json` and the
  // viewer's full experiment over the edits the same rule picks.
  REQUIRE(p.interventions.size() == 1);
  const auto& spec = p.interventions[0];
  const auto piped = load_json_file(ws + "/interventions.json")["interventions"][0];
  REQUIRE(piped.contains("report"));
  auto iv_args = std::vector<std::string>{"intervene", "--concept", spec.concept_name, "--by", spec.by, "--top-n",
                                          std::to_string(spec.top_n), "--random-control",
                                          std::to_string(p.intervene.random_control), "--json"};
  iv_args.insert(iv_args.end(), data_args.begin(), data_args.end());
  const auto iv = test::run_cli(iv_args);
  REQUIRE_MESSAGE(iv.exit_code == 0, iv.err);
  auto j = nlohmann::json::parse(iv.out);
  j.erase("n_eval");
  j.erase("label_col");
  CHECK(j == piped["report"]);
  const auto edits = explain::rule_edits(spec, m->rule_inputs());
  REQUIRE(edits.size() == piped["latents"].size());
  for (size_t i = 0; i < edits.size(); ++i) CHECK(edits[i].latent == piped["latents"][i].get<int64_t>());
  CHECK(explain::to_json(s.evaluate_full(edits, p.intervene)) == piped["report"]);
}

TEST_CASE("viewer model: a rename is saved in the workspace and used by the CLI") {
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string(), 300);
  auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
  const int64_t j = named(*m, "c3");
  REQUIRE(j >= 0);
  m->rename_latent(j, "black dot");
  CHECK(m->latents[static_cast<size_t>(j)].origin == "user");
  const LatentNames n = read_latent_names(ws + "/activations.names.h5");
  REQUIRE(n.find(j) != nullptr);
  CHECK(n.find(j)->name == "black dot");
  CHECK(n.find(j)->origin == "user");
  CHECK(std::isnan(n.find(j)->score));
  // The CLI picks the latent by its new name.
  const auto& p = m->paths;
  const auto r = test::run_cli({"intervene", "--cbm", p.cbm, "--activations", p.activations, "--labels", p.csv, "--label-col",
                                p.label_col, "--split-col", p.split_col, "--concept", "black dot", "--by", "named", "--json"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(nlohmann::json::parse(r.out)["edits"][0]["latent"] == j);
  // Reopened, the name is there; an empty name removes it.
  auto m2 = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
  CHECK(m2->latents[static_cast<size_t>(j)].name == "black dot");
  m2->rename_latent(j, "");
  CHECK(read_latent_names(ws + "/activations.names.h5").find(j) == nullptr);
}

TEST_CASE("viewer model: broken or missing files become problems, never a crash") {
  test::TempDir t;
  const std::string ws = test::make_viewer_workspace(t.path.string(), 300);
  // A corrupted CBM: everything else opens; interventions are unavailable with the reason.
  test::write_text(ws + "/cbm.h5", "this is not an HDF5 file");
  {
    const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
    REQUIRE(m->issues.size() == 1);
    CHECK(m->issues[0].file == ws + "/cbm.h5");
    CHECK(!m->issues[0].message.empty());
    CHECK(m->has_acts());
    CHECK(m->has_index());
    CHECK_FALSE(m->has_cbm());
    CHECK_THROWS_WITH_AS(InterventionSession{*m}, doctest::Contains("cbm.h5"), InputError);
  }
  fs::copy_file(ws + "/activations.h5", t.path.string() + "/ws_acts_backup.h5");
  // Truncated activations and an unreadable index: problems listed, nothing thrown.
  {
    std::ifstream in(ws + "/activations.h5", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(ws + "/activations.h5", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  fs::remove(ws + "/activations.index.h5");
  const auto m = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
  CHECK(m->issues.size() >= 2);
  CHECK_FALSE(m->has_acts());
  CHECK(m->latents.empty());
  // A names file of another SAE is refused whole, not applied to the wrong latents.
  {
    LatentNames other;
    other.set({40, "ink", "user", std::nan("")});
    write_latent_names(ws + "/activations.names.h5", other);
    test::write_text(ws + "/activations.h5", "");
    fs::copy_file(t.path.string() + "/ws_acts_backup.h5", ws + "/activations.h5", fs::copy_options::overwrite_existing);
    const auto m3 = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
    CHECK(m3->names.names.empty());
    CHECK(std::any_of(m3->issues.begin(), m3->issues.end(), [](const LoadIssue& i) { return i.message.find("another SAE") != std::string::npos; }));
  }
  // workspace.json fields of the wrong type are problems, not silent defaults.
  {
    auto j = nlohmann::json::parse(test::read_text(ws + "/workspace.json"));
    j["config"]["data"]["csv"] = 5;
    j["config"]["data"]["concept_cols"] = "hair";
    test::write_text(ws + "/workspace.json", j.dump());
    const auto m4 = WorkspaceModel::load(WorkspacePaths::from_workspace(ws));
    CHECK(std::any_of(m4->issues.begin(), m4->issues.end(), [](const LoadIssue& i) { return i.message.find("config.data.csv is 5") != std::string::npos; }));
    CHECK(std::any_of(m4->issues.begin(), m4->issues.end(), [](const LoadIssue& i) { return i.message.find("concept_cols") != std::string::npos; }));
  }
  // Not a workspace at all: one clear error.
  CHECK_THROWS_WITH_AS(WorkspacePaths::from_workspace(t.file("nope")), doctest::Contains("not a folder"), InputError);
  fs::create_directories(t.file("empty"));
  CHECK_THROWS_WITH_AS(WorkspacePaths::from_workspace(t.file("empty")), doctest::Contains("no workspace.json"), InputError);
  test::write_text(t.file("empty/workspace.json"), "{\"format\": \"something.else\"}");
  CHECK_THROWS_WITH_AS(WorkspacePaths::from_workspace(t.file("empty")), doctest::Contains("expected conceptlab.workspace"),
                       InputError);
}

TEST_CASE("viewer model: thumbnails decode off the frame thread, missing files are placeholders") {
  test::TempDir t;
  cv::Mat img(300, 200, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::imwrite(t.file("a.png"), img);
  test::write_text(t.file("b.png"), "not a png");
  ThumbnailLoader loader(2, 64);
  for (auto f : {"a.png", "b.png", "missing.png", "a.png"}) loader.request(t.file(f));
  std::vector<Thumbnail> got;
  for (int i = 0; i < 500 && got.size() < 3; ++i) {
    for (auto& th : loader.take_ready()) got.push_back(std::move(th));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(got.size() == 3);  // a.png requested twice, decoded once
  CHECK(loader.idle());
  for (const auto& th : got) {
    if (th.path == t.file("a.png")) {
      CHECK(th.error.empty());
      CHECK(th.height == 64);
      CHECK(th.width == 43);
      CHECK(th.rgba.size() == size_t(64 * 43 * 4));
      CHECK(int(th.rgba[0]) == 30);  // RGBA from OpenCV's BGR
    } else {
      CHECK(!th.error.empty());
    }
  }
}

TEST_CASE("viewer model: the Overview's bench rows come from report.json's bench, missing fields as NaN") {
  nlohmann::json report = {
      {"bench",
       {{"mean_dense_probe_auroc", 0.91},
        {"entries",
         {{{"label", "sae.h5"}, {"kind", "sae"}, {"n_latents", 64}, {"fvu", 0.12}, {"l0", 8.0}, {"probe_k", {2, 5}},
           {"mean_probe_auroc", {0.81, 0.86}}, {"tpp_n", {3}}, {"tpp", {0.2}}},
          {{"label", "PCA n24 L0 8"}, {"kind", "pca"}, {"n_latents", 24}, {"fvu", 0.05}, {"l0", 8.0},
           {"mean_probe_auroc", {nullptr}}, {"tpp", nlohmann::json::array()}}}}}}};
  const BenchSummary b = bench_summary(report);
  REQUIRE(b.rows.size() == 2);
  CHECK(b.probe_k == 2);
  CHECK(b.tpp_n == 3);
  CHECK(b.dense_probe_auroc == doctest::Approx(0.91));
  CHECK(b.rows[0].label == "sae.h5");
  CHECK(b.rows[0].kind == "sae");
  CHECK(b.rows[0].probe_auroc == doctest::Approx(0.81));
  CHECK(b.rows[0].tpp == doctest::Approx(0.2));
  CHECK(b.rows[1].fvu == doctest::Approx(0.05));
  CHECK(std::isnan(b.rows[1].probe_auroc));
  CHECK(std::isnan(b.rows[1].tpp));
  CHECK(bench_summary(nlohmann::json::object()).rows.empty());
  CHECK(bench_summary(nlohmann::json{{"bench", "junk"}}).rows.empty());
}
