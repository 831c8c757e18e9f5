// configs/*.json are the documentation of every params struct: each mirrors its struct field for
// field (same keys at every depth), the plain ones equal the member-initializer defaults, every
// file is parsed by the same reader the CLI's --config uses, and no file goes unchecked.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <set>

#include "cbm/protocol.h"
#include "core/npy_io.h"
#include "core/params.h"
#include "explain/bench.h"
#include "explain/heatmap.h"
#include "explain/localize.h"
#include "explain/experiment.h"
#include "explain/match.h"
#include "explain/naming.h"
#include "explain/rules.h"
#include "explain/stats.h"
#include "explain/sweep.h"
#include "sae/sae.h"
#include "tools/demo/demo.h"
#include "tools/pipeline/pipeline.h"
#include "tools/embed/embed.h"

using namespace cl;
namespace fs = std::filesystem;

namespace {

// The key tree of a JSON object (values replaced by null, objects kept).
nlohmann::json keys_of(const nlohmann::json& j) {
  if (!j.is_object()) return nullptr;
  nlohmann::json out = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) out[it.key()] = keys_of(it.value());
  return out;
}

std::set<std::string> g_checked;

template <typename P>
void check_config(const std::string& name, bool equals_defaults, const std::function<void(const P&)>& validate = {}) {
  CAPTURE(name);
  g_checked.insert(name);
  const std::string path = std::string(CONCEPTLAB_SOURCE_DIR) + "/configs/" + name;
  nlohmann::json j = load_json_file(path);
  j.erase("comment");
  const nlohmann::json defaults = P{};
  CHECK(keys_of(j) == keys_of(defaults));
  if (equals_defaults) CHECK(j == defaults);
  P p{};
  CHECK_NOTHROW(p = load_params<P>(path));
  if (validate) CHECK_NOTHROW(validate(p));
}

}  // namespace

TEST_CASE("every configs/*.json mirrors its params struct field for field") {
  check_config<sae::TrainParams>("sae.json", true, [](const auto& p) { sae::validate(p); });
  for (const char* v : {"sae-reference.json", "sae-topk.json", "sae-batchtopk.json"})
    check_config<sae::TrainParams>(v, false, [](const auto& p) { sae::validate(p); });
  check_config<sae::ApplyParams>("sae-apply.json", true, [](const auto& p) { sae::validate(p); });
  check_config<cbm::ProtocolParams>("cbm-fit.json", true, [](const auto& p) { cbm::validate(p); });
  check_config<cbm::ProbeParams>("probe-panderm.json", true, [](const auto& p) { cbm::validate(p); });
  check_config<embed::EmbedParams>("embed.json", true);
  check_config<embed::PreprocessParams>("preprocess.json", true);
  for (const char* v : {"embed-clip-vit.json", "embed-dinov2.json", "embed-panderm.json"})
    check_config<embed::PreprocessParams>(v, false, [&](const auto& p) { embed::validate(p, v); });
  check_config<demo::DemoParams>("demo.json", true);
  check_config<pipeline::PipelineParams>("pipeline.json", true);
  check_config<pipeline::PipelineParams>("derm7pt.json", false);
  check_config<demo::DemoWorldParams>("demo-data.json", true);
  check_config<ImportNpyParams>("import-npy.json", true);
  check_config<ExportNpyParams>("export-npy.json", true);
  check_config<explain::StatsParams>("explain-stats.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::MatchParams>("explain-match.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::NameParams>("explain-name.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::InterveneParams>("intervene.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::CurveParams>("explain-curve.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::HeatmapParams>("explain-heatmap.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::LocalizeParams>("explain-localize.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::SweepParams>("sae-sweep.json", true, [](const auto& p) { explain::validate(p); });
  check_config<explain::BenchParams>("sae-bench.json", true, [](const auto& p) { explain::validate(p); });
  {
    // Not a params struct: a grid (lists of TrainParams values), read the way `sae sweep --grid` reads it.
    const std::string grid = std::string(CONCEPTLAB_SOURCE_DIR) + "/configs/sae-sweep-grid.json";
    g_checked.insert("sae-sweep-grid.json");
    CHECK(explain::expand_grid(load_json_file(grid), sae::TrainParams{}, grid).size() == 8);
  }

  std::set<std::string> all;
  for (auto& e : fs::directory_iterator(fs::path(CONCEPTLAB_SOURCE_DIR) / "configs"))
    if (e.path().extension() == ".json") all.insert(e.path().filename().string());
  CHECK(all == g_checked);  // a new config file needs a line above
}

TEST_CASE("a config with an unknown key, at any depth, is an error naming the key") {
  CHECK_THROWS_WITH_AS(params_from_json<sae::TrainParams>(nlohmann::json{{"learning_rate", 1.0}}, "x.json"),
                       doctest::Contains("learning_rate"), InputError);
  CHECK_THROWS_WITH_AS(params_from_json<demo::DemoParams>(nlohmann::json::parse(R"({"pipeline": {"sae": {"kk": 3}}})"), "d.json"),
                       doctest::Contains("pipeline.sae.kk"), InputError);
  CHECK_THROWS_AS(params_from_json<cbm::ProtocolParams>(nlohmann::json{{"splits", "many"}}, "c.json"), InputError);
  CHECK_THROWS_AS(params_from_json<cbm::ProtocolParams>(nlohmann::json::array(), "c.json"), InputError);
  // A partial config keeps the other defaults, nested ones too.
  auto p = params_from_json<demo::DemoParams>(nlohmann::json::parse(R"({"pipeline": {"sae": {"k": 3}}, "comment": "x"})"), "d.json");
  CHECK(p.pipeline.sae.k == 3);
  CHECK(p.pipeline.sae.arch == demo::demo_pipeline_params().sae.arch);
  CHECK(p.world.n == demo::DemoWorldParams{}.n);
}
