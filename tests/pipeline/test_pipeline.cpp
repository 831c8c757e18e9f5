// `conceptlab run` (tools/pipeline): what is cached and what re-runs, resuming after a real
// SIGKILL in the middle of SAE training, config files with relative paths, bad usage, and the
// derm7pt config end to end when ../shared is there.
#include "tests/torch_doctest.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/csv.h"
#include "core/activations.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/params.h"
#include "core/patches.h"
#include "core/sae_weights.h"
#include "core/random.h"
#include "core/workspace_layout.h"
#include "explain/data.h"
#include "explain/sweep.h"
#include "tests/test_util.h"
#include "tests/viewer_model/fixture.h"
#include "tools/pipeline/pipeline.h"

namespace fs = std::filesystem;
using cl::test::run_cli;
using cl::test::TempDir;
using namespace cl::pipeline;

namespace {

// Small, fast settings over precomputed embeddings (paths relative to the dataset folder).
PipelineParams test_params() {
  PipelineParams p = cl::test::planted_params();
  p.sae.checkpoint_every = 1;
  p.interventions = {{"grp", "annotation", 2, "zero", ""}, {"grp", "named", 2, "zero", ""}};
  p.curve.max_k = 3;
  return p;
}

std::map<std::string, bool> ran(const RunResult& r) {
  std::map<std::string, bool> m;
  for (const auto& s : r.steps) m[s.name] = s.ran;
  return m;
}

std::map<std::string, bool> all(bool v) {
  std::map<std::string, bool> m;
  for (const auto& s : step_names()) m[s] = v;
  return m;
}

bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("pipeline: deleting any file of a finished workspace re-runs exactly the step that writes it, same report") {
  TempDir t;
  cl::test::write_viewer_dataset(t.file("data"), 300, 24, 5);
  PipelineParams p = test_params();
  p.sae.epochs = 40;
  p.data.image_root = "images";
  p.run_bench = true;  // the bench step's folder too
  p.bench.baselines = {"pca"};
  p.bench.spurious = {"c0:grp"};
  resolve_paths(p, t.file("data"));
  RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";
  const auto first = run_pipeline(p, o);
  // Which step claims each file: step_outputs plus what the step recorded (the montages).
  const auto state = nlohmann::json::parse(cl::test::read_text(t.file("ws/workspace.json")));
  std::map<std::string, std::string> writer;
  for (const auto& s : step_names())
    for (const auto& f : state["steps"][s]["outputs"]) {
      CHECK_MESSAGE(writer.count(f.get<std::string>()) == 0, f);
      writer[f.get<std::string>()] = s;
    }
  for (const auto& f : step_outputs("explain", p)) CHECK(writer.at(f) == "explain");
  int n_montages = 0;
  for (const auto& e : fs::recursive_directory_iterator(t.file("ws"))) {
    if (e.is_directory()) continue;
    const std::string name = fs::relative(e.path(), t.file("ws")).string();
    if (name == "workspace.json") continue;
    n_montages += name.rfind("montage_", 0) == 0;
    INFO(name);
    REQUIRE_MESSAGE(writer.count(name) == 1, "a workspace file no step claims");  // every file has a writer
  }
  CHECK(n_montages >= 3);
  CHECK(writer.at("bench/scr_c0_grp.png") == "bench");  // a chart the step recorded
  CHECK(first.report["bench"]["entries"].size() == 2);   // the workspace's SAE and PCA
  CHECK(cl::test::read_text(t.file("ws/report.md")).find("## SAE bench") != std::string::npos);
  for (const auto& [name, step] : writer) {
    INFO(name);
    fs::remove(t.file("ws/" + name));
    const auto r = run_pipeline(p, o);
    auto want = all(false);
    want[step] = true;
    CHECK(ran(r) == want);
    CHECK(fs::exists(t.file("ws/" + name)));
    CHECK(r.report == first.report);
  }
}

TEST_CASE("pipeline: a second run is all cached, and a changed setting re-runs exactly its step and the later ones") {
  TempDir t;
  cl::test::write_viewer_dataset(t.file("data"), 600, 24, 5);
  PipelineParams p = test_params();
  resolve_paths(p, t.file("data"));
  CHECK(p.data.csv == t.file("data/meta.csv"));
  RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";

  auto r1 = run_pipeline(p, o);
  CHECK(ran(r1) == all(true));
  for (const auto& s : step_names())
    for (const auto& f : step_outputs(s, p)) CHECK_MESSAGE(fs::exists(t.file("ws/" + f)), f);
  CHECK_FALSE(fs::exists(t.file("ws/embeddings.h5")));  // precomputed embeddings are read in place
  CHECK(fs::exists(t.file("ws/cbm_unbiased.h5")));
  CHECK(fs::exists(t.file("ws/curve.png")));
  const auto& rep = r1.report;
  CHECK(rep["format"] == "conceptlab.report");
  CHECK(rep["sae"]["n_latents"] == 16);
  // The planted concepts are found: the best latent of each separates it well.
  REQUIRE(rep["match"]["concepts"].size() == 5);
  for (const auto& c : rep["match"]["concepts"]) {
    INFO(c["concept"]);
    REQUIRE(!c["best"].empty());
    CHECK(c["best"][0]["auroc"].get<double>() > 0.95);
  }
  CHECK(rep["classify"]["cbm"]["test"]["auroc"].get<double>() > 0.75);
  CHECK(rep["classify"]["probe"]["test"]["auroc"].get<double>() > 0.75);
  CHECK(rep["classify"].contains("unbiased"));
  REQUIRE(rep["interventions"].size() == 2);
  CHECK(rep["interventions"][0]["latents"].size() == 2);
  CHECK(rep["interventions"][0]["report"].contains("random_control"));
  const std::string md = cl::test::read_text(t.file("ws/report.md"));
  CHECK(md.find("## Concepts") != std::string::npos);
  CHECK(md.find("## Interventions") != std::string::npos);
  const auto wsj = nlohmann::json::parse(cl::test::read_text(t.file("ws/workspace.json")));
  CHECK(wsj["format"] == "conceptlab.workspace");
  CHECK_FALSE(wsj.contains("running"));

  // Nothing changed: nothing runs and no output is rewritten.
  const auto sae_time = fs::last_write_time(t.file("ws/sae.h5"));
  const auto report_time = fs::last_write_time(t.file("ws/report.json"));
  auto r2 = run_pipeline(p, o);
  CHECK(ran(r2) == all(false));
  CHECK(fs::last_write_time(t.file("ws/sae.h5")) == sae_time);
  CHECK(fs::last_write_time(t.file("ws/report.json")) == report_time);
  CHECK(r2.report == r1.report);

  // One CBM setting: classify and everything after it, nothing before.
  p.cbm.model.alpha = 3e-3;
  auto r3 = run_pipeline(p, o);
  auto want = all(true);
  want["embed"] = want["sae"] = want["encode"] = false;
  want["bench"] = false;  // off (run_bench false): its key does not depend on the classifiers
  CHECK(ran(r3) == want);
  CHECK(fs::last_write_time(t.file("ws/sae.h5")) == sae_time);
  CHECK(r3.report["config"]["cbm"]["model"]["alpha"] == 3e-3);
  // An explain-only setting leaves the classifiers alone.
  p.global_top = 3;
  want = all(false);
  want["explain"] = want["intervene"] = want["report"] = true;
  CHECK(ran(run_pipeline(p, o)) == want);
  // A deleted output re-runs its step even with a recorded key; the later steps stay cached,
  // since the same key gives the same file (their inputs are keyed by step keys, not mtimes).
  const auto acts_before = cl::read_activations(t.file("ws/activations.h5"));
  fs::remove(t.file("ws/activations.h5"));
  want = all(false);
  want["encode"] = true;
  CHECK(ran(run_pipeline(p, o)) == want);
  const auto acts_after = cl::read_activations(t.file("ws/activations.h5"));
  CHECK(acts_after.ids == acts_before.ids);
  CHECK(acts_after.acts.indices == acts_before.acts.indices);
  CHECK(same_floats(acts_after.acts.values, acts_before.acts.values));

  // --force, --from, --to.
  RunOptions of = o;
  of.force = "intervene";
  want = all(false);
  want["intervene"] = want["bench"] = want["report"] = true;
  CHECK(ran(run_pipeline(p, of)) == want);
  p.sae.seed = 9;  // the SAE and all after it are stale now
  RunOptions ot = o;
  ot.to = "encode";
  auto r4 = run_pipeline(p, ot);
  CHECK(r4.steps.size() == 3);
  CHECK(ran(r4) == std::map<std::string, bool>{{"embed", false}, {"sae", true}, {"encode", true}});
  RunOptions ofrom = o;
  ofrom.from = "explain";  // classify is stale for the new SAE
  CHECK_THROWS_WITH_AS(run_pipeline(p, ofrom), doctest::Contains("step classify is not complete"), cl::InputError);
  ofrom.from = "classify";
  want = all(false);
  for (auto s : {"classify", "explain", "intervene", "report"}) want[s] = true;
  CHECK(ran(run_pipeline(p, ofrom)) == want);

  // Bad usage is refused before anything runs.
  RunOptions bad = o;
  bad.force = "nope";
  CHECK_THROWS_WITH_AS(run_pipeline(p, bad), doctest::Contains("expected one of embed, sae"), cl::UsageError);
  bad = o;
  bad.from = "report", bad.to = "sae";
  CHECK_THROWS_AS(run_pipeline(p, bad), cl::UsageError);
  PipelineParams q = p;
  q.interventions[0].by = "vibes";
  CHECK_THROWS_WITH_AS(run_pipeline(q, o), doctest::Contains("vibes"), cl::UsageError);
  q = p;
  q.data.concept_cols = {"c0", "not_a_column"};
  CHECK_THROWS_WITH_AS(run_pipeline(q, o), doctest::Contains("not_a_column"), cl::InputError);
  // A misspelt column is found before minutes of embedding and training, with nothing written.
  q = p;
  q.data.label_col = "lable";
  RunOptions fresh = o;
  fresh.workspace += "_fresh";
  CHECK_THROWS_WITH_AS(run_pipeline(q, fresh), doctest::Contains("no column 'lable'"), cl::InputError);
  CHECK_FALSE(fs::exists(fresh.workspace));
}

TEST_CASE("conceptlab run: a SIGKILL in the middle of SAE training resumes to the same outputs") {
  TempDir t;
  cl::test::write_viewer_dataset(t.file("cfg"), 3000, 32, 11);
  PipelineParams p = test_params();
  p.sae.n_latents = 1024;
  p.sae.batch = 128;
  p.sae.epochs = 40;
  p.sae.k = 8;
  cl::test::write_text(t.file("cfg/run.json"), nlohmann::json(p).dump(2));  // relative paths: resolved from cfg/

  auto full = run_cli({"-q", "run", t.file("cfg/run.json"), "--workspace", t.file("full"), "--device", "cpu", "--json"});
  INFO(full.err);
  REQUIRE(full.exit_code == 0);
  auto fj = nlohmann::json::parse(full.out);
  CHECK(fj["steps"].size() == 8);

  std::vector<std::string> args = {"-q", "run", t.file("cfg/run.json"), "--workspace", t.file("ws"), "--device", "cpu"};
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> argv;
    std::string bin = CONCEPTLAB_BIN;
    argv.push_back(bin.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  // Kill once the SAE has checkpointed an epoch.
  const std::string ckpt = t.file("ws/sae.h5.ckpt");
  int status = 0;
  bool exited = false;
  for (int i = 0; i < 60000; ++i) {
    std::error_code ec;
    if (fs::exists(ckpt, ec)) break;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    ::usleep(500);
  }
  REQUIRE_MESSAGE(!exited, "the run finished before it could be killed");
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  CHECK_FALSE(fs::exists(t.file("ws/sae.h5")));
  CHECK_FALSE(fs::exists(t.file("ws/report.json")));
  const auto state = nlohmann::json::parse(cl::test::read_text(t.file("ws/workspace.json")));
  CHECK(state["running"]["step"] == "sae");

  auto res = run_cli({"run", t.file("cfg/run.json"), "--workspace", t.file("ws"), "--device", "cpu", "--json"});
  INFO(res.err);
  REQUIRE(res.exit_code == 0);
  CHECK(res.err.find("resuming an interrupted run") != std::string::npos);
  auto rj = nlohmann::json::parse(res.out);
  CHECK(rj["steps"][0]["ran"] == false);  // embed (precomputed)
  CHECK(rj["steps"][1]["ran"] == true);   // sae, from its checkpoint
  const auto a = cl::read_sae(t.file("full/sae.h5")), b = cl::read_sae(t.file("ws/sae.h5"));
  CHECK(same_floats(a.W_enc, b.W_enc));
  CHECK(same_floats(a.W_dec, b.W_dec));
  CHECK(same_floats(a.b_enc, b.b_enc));
  CHECK(rj["report"]["classify"] == fj["report"]["classify"]);
  CHECK(rj["report"]["match"] == fj["report"]["match"]);
  CHECK(rj["report"]["interventions"] == fj["report"]["interventions"]);

  // And now everything is cached.
  auto again = run_cli({"run", t.file("cfg/run.json"), "--workspace", t.file("ws"), "--device", "cpu"});
  REQUIRE(again.exit_code == 0);
  for (const auto& s : step_names()) CHECK(again.out.find(fmt::format("{:<10} cached", s)) != std::string::npos);

  // Bad configs (exit 1, input) and bad usage (exit 2): the reason, and nothing written.
  auto missing = run_cli({"run", t.file("cfg/none.json"), "--workspace", t.file("x")});
  CHECK(missing.exit_code != 0);
  CHECK(missing.err.find("none.json") != std::string::npos);
  cl::test::write_text(t.file("cfg/typo.json"), R"({"data": {"csv": "meta.csv", "lable_col": "x"}})");
  auto typo = run_cli({"run", t.file("cfg/typo.json"), "--workspace", t.file("x")});
  CHECK(typo.exit_code == 1);
  CHECK(typo.err.find("lable_col") != std::string::npos);
  auto force = run_cli({"run", t.file("cfg/run.json"), "--workspace", t.file("ws"), "--force", "nope"});
  CHECK(force.exit_code == 2);
  CHECK(force.err.find("nope") != std::string::npos);
  CHECK_FALSE(fs::exists(t.file("x")));
}

TEST_CASE("pipeline: sae_sweep makes the sae step take the SAE a sweep picked") {
  TempDir t;
  cl::test::write_viewer_dataset(t.file("data"), 300, 24, 5);
  // A real sweep over the dataset's embeddings (two small SAEs), as `conceptlab sae sweep` runs it.
  const cl::Embeddings e = cl::read_embeddings(t.file("data/emb.h5"));
  cl::explain::SweepData data{e.data.data(), e.n, e.dim, e.ids, {}, t.file("data/emb.h5")};
  data.annotations = cl::explain::read_annotations(t.file("data/meta.csv"), "ImageID", {"c0", "c1", "c2", "c3"}, e.ids);
  cl::explain::SweepParams sp;
  sp.train = test_params().sae;
  sp.train.epochs = 10;
  sp.train.checkpoint_every = 0;
  const auto grid = cl::explain::expand_grid(nlohmann::json::parse(R"({"k": [2, 4]})"), sp.train, "grid");
  const auto sw = cl::explain::sweep_saes(data, grid, sp, cl::Device(torch::kCPU), t.file("sweep"));
  cl::explain::write_sweep_outputs(sw, sp, t.file("sweep"), {});
  const std::string picked = sw.entries[static_cast<size_t>(sw.pick)].sae_path;

  PipelineParams p = test_params();
  p.sae_sweep = "../sweep";  // relative to the config's folder, like every path in a config
  resolve_paths(p, t.file("data"));
  CHECK(p.sae_sweep == t.file("sweep"));
  RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";
  o.to = "encode";
  auto r1 = run_pipeline(p, o);
  CHECK(ran(r1)["sae"]);
  CHECK(cl::test::read_bytes(t.file("ws/sae.h5")) == cl::test::read_bytes(picked));
  CHECK(ran(run_pipeline(p, o)) == std::map<std::string, bool>{{"embed", false}, {"sae", false}, {"encode", false}});
  // Another pick: the sae step and the later ones run again, with that SAE.
  auto j = nlohmann::json::parse(cl::test::read_text(t.file("sweep/sweep.json")));
  const std::string other = sw.pick == 0 ? "sae_01.h5" : "sae_00.h5";
  j["pick"]["sae"] = other;
  cl::test::write_text(t.file("sweep/sweep.json"), j.dump());
  CHECK(ran(run_pipeline(p, o)) == std::map<std::string, bool>{{"embed", false}, {"sae", true}, {"encode", true}});
  CHECK(cl::test::read_bytes(t.file("ws/sae.h5")) == cl::test::read_bytes(t.file("sweep/" + other)));
  // Not a sweep, or a sweep whose pick is gone: named.
  p.sae_sweep = t.file("data");
  CHECK_THROWS_WITH_AS(run_pipeline(p, o), doctest::Contains("sweep.json"), cl::InputError);
  p.sae_sweep = t.file("sweep");
  fs::remove(t.file("sweep/" + other));
  CHECK_THROWS_WITH_AS(run_pipeline(p, o), doctest::Contains("is missing"), cl::InputError);
}

TEST_CASE("conceptlab run configs/derm7pt.json (optional: needs ../shared)") {
  const std::string shared = cl::test::shared_dir();
  if (shared.empty() || !fs::exists(shared + "/derm7pt/meta.csv")) {
    MESSAGE("skipped: ../shared/derm7pt not found");
    return;
  }
  TempDir t;
  // The shipped config, its relative paths resolved from configs/ as `conceptlab run` does, with
  // fewer SAE steps: its 980 steps on 49,539 patches take about 5 minutes on 2 cores, and the
  // figures they give are the bench's (bench/patch_sae_derm7pt.sh); this checks the path.
  const std::string config = std::string(CONCEPTLAB_SOURCE_DIR) + "/configs/derm7pt.json";
  PipelineParams p = cl::load_params<PipelineParams>(config);
  resolve_paths(p, fs::path(config).parent_path().string());
  REQUIRE(p.embed.patches);
  CHECK(p.sae.arch == "matryoshka-topk");
  p.sae.epochs = 3;
  RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";
  const auto rep = run_pipeline(p, o).report;
  CHECK(rep["embeddings"]["rows"] == 1011);
  CHECK(rep["sae"]["fvu"].get<double>() < 0.8);  // 147 steps of a nested SAE on patches
  CHECK(fs::exists(t.file("ws/") + cl::workspace::kPatchActivations));
  CHECK(rep["match"]["concepts"].size() == 12);
  CHECK(rep["classify"]["cbm"]["test"]["auroc"].get<double>() > 0.65);
  CHECK(rep["classify"]["probe"]["test"]["auroc"].get<double>() > 0.7);
  REQUIRE(!rep["interventions"].empty());
  CHECK(rep["interventions"][0]["concept"] == "hair");
  for (auto f : {"report.md", "global.png", "curve.png"}) CHECK(fs::exists(t.file("ws/") + f));
}

TEST_CASE("pipeline with embed.patches: a patch SAE, pooled activations, patch activations, heatmap montages, cached") {
  TempDir t;
  cl::test::write_viewer_dataset(t.file("data"), 240, 24, 7);
  // A feature-map encoder: fixed random 3x3 filters -> relu -> 8 x 8 cells: [B, 12, 4, 4] on 32 x 32 inputs.
  {
    torch::manual_seed(3);
    torch::jit::Module m("map_encoder");
    m.register_buffer("w", torch::randn({12, 3, 3, 3}));
    m.define(R"JIT(
def forward(self, x):
    return torch.avg_pool2d(torch.relu(torch.conv2d(x, self.w, None, [1, 1], [1, 1])), [8, 8])
)JIT");
    m.save(t.file("data/map.pt"));
    cl::test::write_text(t.file("data/map.json"), R"({"image_size": 32, "resize": "direct", "mean": [0.5, 0.5, 0.5],
      "std": [0.5, 0.5, 0.5]})");
  }
  PipelineParams p = cl::test::planted_params();
  p.data.embeddings = "";
  p.data.image_root = "images";
  p.embed.model = "map.pt";
  p.embed.patches = true;
  p.sae.n_latents = 24;
  p.sae.epochs = 4;
  p.interventions = {{"grp", "named", 2, "zero", ""}};
  p.curve.max_k = 2;
  resolve_paths(p, t.file("data"));
  RunOptions o;
  o.workspace = t.file("ws");
  o.device = "cpu";
  const auto first = run_pipeline(p, o);
  namespace ws = cl::workspace;
  // The embed step writes the pooled file and the patch grid; the SAE trained on patches.
  cl::EmbeddingsReader pe(t.file("ws/" + std::string(ws::kPatchEmbeddings)));
  REQUIRE(pe.patches() != nullptr);
  CHECK(pe.patches_per_image() == 16);
  CHECK(pe.rows() == 240 * 16);
  CHECK(cl::read_sae_header(t.file("ws/" + std::string(ws::kSae))).d_in == 12);
  // Image activations pooled over patches (max), patch activations with the grid.
  const cl::Activations a = cl::read_activations(t.file("ws/" + std::string(ws::kActivations)));
  const cl::Activations pa = cl::read_activations(t.file("ws/" + std::string(ws::kPatchActivations)));
  REQUIRE(a.acts.n_rows == 240);
  REQUIRE(pa.acts.n_rows == 240 * 16);
  const cl::CsrMatrix pooled = cl::pool_patches(pa.acts, 16, "max");
  CHECK(pooled.values == a.acts.values);
  CHECK(pooled.indices == a.acts.indices);
  CHECK(cl::ActivationsReader(t.file("ws/" + std::string(ws::kPatchActivations))).patches()->grid_w == 4);
  CHECK(a.config["patch_activations"] == t.file("ws/" + std::string(ws::kPatchActivations)));
  // Deleting a patch file re-runs exactly its step.
  for (const auto& [name, step] : {std::pair{ws::kPatchEmbeddings, "embed"}, std::pair{ws::kPatchActivations, "encode"}}) {
    INFO(name);
    fs::remove(t.file("ws/" + std::string(name)));
    const auto r = run_pipeline(p, o);
    auto want = all(false);
    want[step] = true;
    CHECK(ran(r) == want);
    CHECK(r.report == first.report);
  }
  // Mean pooling is another encode (and what follows); bad pool names and patches without an embed step are refused.
  p.pool = "mean";
  const auto r = run_pipeline(p, o);
  CHECK(ran(r).at("embed") == false);
  CHECK(ran(r).at("sae") == false);
  CHECK(ran(r).at("encode") == true);
  p.pool = "median";
  CHECK_THROWS_AS(run_pipeline(p, o), cl::UsageError);
  p.pool = "max";
  p.data.embeddings = t.file("ws/embeddings.h5");
  CHECK_THROWS_AS(run_pipeline(p, o), cl::UsageError);
}
