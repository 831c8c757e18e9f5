// The cached pipeline (see pipeline.h): step keys, workspace.json, and the steps themselves as
// calls into embed / sae / cbm / explain.
#include "tools/pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

#include <opencv2/imgcodecs.hpp>
#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "core/activations.h"
#include "core/atomic_file.h"
#include "core/csv.h"
#include "core/embeddings.h"
#include "core/error.h"
#include "core/output_claim.h"
#include "core/latent_index.h"
#include "core/latent_names.h"
#include "core/linear_model.h"
#include "core/params.h"
#include "core/parse.h"
#include "core/random.h"
#include "core/sae_weights.h"
#include "core/vocab.h"
#include "core/workspace_layout.h"
#include "core/patches.h"
#include "explain/heatmap.h"
#include "explain/contrib.h"
#include "explain/data.h"
#include "explain/plot.h"
#include "explain/rules.h"
#include "tools/embed/run_checkpoint.h"

namespace fs = std::filesystem;

namespace cl::pipeline {

namespace {

// ---------------------------------------------------------------------------------------------
// Keys: a step's key hashes its settings and the keys of its inputs. External files are keyed by
// path, size and modification time; workspace files by the key of the step that wrote them.

std::string hex_key(const nlohmann::json& j) {
  const std::string s = j.dump();
  return fmt::format("{:016x}", embed::fnv1a(s.data(), s.size()));
}

std::string file_key(const std::string& path) {
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return "absent";
  const auto size = fs::file_size(path, ec);
  const auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
  return hex_key({fs::absolute(path).string(), static_cast<int64_t>(size), static_cast<int64_t>(mtime)});
}

// Masks as a file, or a folder of PNGs: its files' keys, so a changed mask re-runs localisation.
std::string masks_key(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return file_key(path);
  std::vector<std::string> keys;
  for (const auto& e : fs::recursive_directory_iterator(path, ec))
    if (e.is_regular_file(ec)) keys.push_back(file_key(e.path().string()));
  std::sort(keys.begin(), keys.end());
  return hex_key(keys);
}

void write_json(const std::string& path, const nlohmann::json& j) { write_file_atomic(path, j.dump(2) + "\n"); }

// The SAE a `sae sweep` picked: sweep_dir is the sweep's folder or its sweep.json.
std::string swept_sae_path(const std::string& sweep) {
  const fs::path json_path = fs::is_directory(sweep) ? fs::path(sweep) / "sweep.json" : fs::path(sweep);
  const nlohmann::json j = load_json_file(json_path.string());
  if (!j.is_object() || j.value("format", "") != "conceptlab.sae_sweep")
    throw_input("{}: not a sweep (format '{}', expected conceptlab.sae_sweep); sae_sweep names a `conceptlab sae "
                "sweep` folder",
                json_path.string(), j.is_object() ? j.value("format", "") : j.type_name());
  if (!j.contains("pick") || !j["pick"].contains("sae") || !j["pick"]["sae"].is_string())
    throw_input("{}: the sweep picked no SAE", json_path.string());
  const fs::path picked = json_path.parent_path() / j["pick"]["sae"].get<std::string>();
  if (!fs::is_regular_file(picked)) throw_input("{}: the sweep's pick {} is missing", json_path.string(), picked.string());
  return picked.string();
}

// ---------------------------------------------------------------------------------------------

struct Workspace {
  std::string dir;
  nlohmann::json state;  // workspace.json
  std::string file(const std::string& name) const { return (fs::path(dir) / name).string(); }
  std::string recorded_key(const std::string& step) const {
    return state["steps"].contains(step) ? state["steps"][step].value("key", std::string()) : "";
  }
  void save() const { write_json(file(workspace::kState), state); }
  // The step's files: `fixed` (step_outputs) and those it recorded when it last ran.
  std::vector<std::string> recorded_outputs(const std::string& step, std::vector<std::string> fixed) const {
    if (state["steps"].contains(step) && state["steps"][step].contains("outputs") && state["steps"][step]["outputs"].is_array())
      for (const auto& o : state["steps"][step]["outputs"])
        if (o.is_string() && std::find(fixed.begin(), fixed.end(), o.get<std::string>()) == fixed.end()) {
          // Only names inside the workspace (a plain name, or one in the bench folder):
          // workspace.json is not trusted to point elsewhere.
          const std::string name = o.get<std::string>();
          const std::string bench_prefix = std::string(workspace::kBenchDir) + "/";
          const bool in_bench = name.rfind(bench_prefix, 0) == 0 && name.size() > bench_prefix.size() &&
                                name.find('/', bench_prefix.size()) == std::string::npos;
          if (!name.empty() && (name.find('/') == std::string::npos || in_bench) && name.find("..") == std::string::npos &&
              name != workspace::kState)
            fixed.push_back(name);
        }
    return fixed;
  }
};

Workspace open_workspace(const std::string& dir, const PipelineParams& p) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_input("{}: cannot create the workspace folder ({})", dir, ec.message());
  Workspace w;
  w.dir = dir;
  const std::string path = w.file(workspace::kState);
  if (fs::exists(path)) {
    try {
      w.state = load_json_file(path);
    } catch (const InputError&) {
      spdlog::warn("{}: unreadable; every step runs again", path);
    }
    // A folder holding some other JSON named workspace.json is not ours to overwrite.
    if (w.state.is_object() && w.state.contains("format") && w.state["format"] != "conceptlab.workspace")
      throw_input("{}: format {}, expected \"conceptlab.workspace\"; choose another workspace folder", path,
                  w.state["format"].dump());
    if (!w.state.is_object() || w.state.value("format", std::string()) != "conceptlab.workspace") w.state = {};
  }
  if (w.state.is_null() || !w.state.contains("steps")) {
    w.state = {{"format", "conceptlab.workspace"}, {"schema_version", 1}, {"steps", nlohmann::json::object()}};
  }
  w.state["config"] = p;
  return w;
}

cbm::LoadParams load_params(const PipelineParams& p, const std::string& features) {
  return {features, p.data.csv, p.data.label_col, p.data.id_col, p.data.split_col, true};
}

std::string embeddings_path(const PipelineParams& p, const Workspace& w) {
  return p.data.embeddings.empty() ? w.file(workspace::kEmbeddings) : p.data.embeddings;
}

// Training rows of a split resampled so that P(subgroup | label) is the same for every label: the
// classifier then cannot use the subgroup as a shortcut. Rows without a subgroup value are kept.
std::vector<int64_t> unbiased_rows(const std::vector<int64_t>& train, const std::vector<int>& y,
                                   const std::vector<int>& group, uint64_t seed) {
  std::map<std::pair<int, int>, std::vector<int64_t>> cells;  // (label, group) -> rows
  std::map<int, int64_t> per_label;
  std::vector<int64_t> out;
  for (int64_t r : train) {
    const int g = group[static_cast<size_t>(r)];
    if (g < 0) {
      out.push_back(r);
      continue;
    }
    cells[{y[static_cast<size_t>(r)], g}].push_back(r);
    ++per_label[y[static_cast<size_t>(r)]];
  }
  // Target P(group = g) = the overall share; each label keeps as many rows per group as the
  // scarcest group allows at that share.
  std::map<int, double> share;
  int64_t total = 0;
  for (auto& [key, rows] : cells) share[key.second] += static_cast<double>(rows.size()), total += static_cast<int64_t>(rows.size());
  for (auto& [g, s] : share) s /= static_cast<double>(std::max<int64_t>(total, 1));
  Rng rng(splitmix64(seed + 7));
  for (auto& [label, n] : per_label) {
    double scale = 1e300;
    for (auto& [g, s] : share) {
      const auto it = cells.find({label, g});
      const double have = it == cells.end() ? 0.0 : static_cast<double>(it->second.size());
      scale = std::min(scale, s > 0 ? have / s : 1e300);
    }
    for (auto& [g, s] : share) {
      auto it = cells.find({label, g});
      if (it == cells.end()) continue;
      auto rows = it->second;
      rng.shuffle(rows);
      rows.resize(std::min(rows.size(), static_cast<size_t>(std::floor(scale * s + 1e-9))));
      out.insert(out.end(), rows.begin(), rows.end());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Steps. Each returns its settings-and-inputs key; run() writes its outputs.

struct Step {
  std::string name;
  std::function<std::string()> key;
  std::function<void()> run;
};

}  // namespace

void validate(const PipelineParams& p) {
  if (p.data.csv.empty()) throw_usage("pipeline: data.csv is required (the metadata CSV)");
  check_pool(p.pool);
  if (!p.embed.patch_out.empty()) throw_usage("pipeline: embed.patch_out stays empty (the workspace names the patch file)");
  if (p.embed.patches && !p.data.embeddings.empty())
    throw_usage("pipeline: embed.patches needs the embed step; data.embeddings skips it (give the images instead)");
  if (!p.data.masks.empty() && !p.embed.patches)
    throw_usage("pipeline: data.masks needs embed.patches (masks are compared with patch activations)");
  explain::validate(p.localize);
  if (p.data.label_col.empty()) throw_usage("pipeline: data.label_col is required");
  if (p.data.embeddings.empty() && p.embed.model.empty())
    throw_usage("pipeline: embed.model is required (or data.embeddings for precomputed embeddings)");
  if (!p.embed.csv.empty() || !p.embed.out.empty() || !p.embed.images_dir.empty() || !p.embed.image_root.empty())
    throw_usage("pipeline: set the images in data (csv, image_root); embed.csv/out/images_dir/image_root stay empty");
  if (!p.embed.shard.empty())
    throw_usage("pipeline: embed.shard is for `conceptlab embed` runs on several machines; merge their parts with "
                "merge-embeddings and set data.embeddings");
  sae::validate(p.sae);
  cbm::validate(p.cbm);
  cbm::validate(p.probe);
  explain::validate(p.stats);
  explain::validate(p.match);
  explain::validate(p.name);
  explain::validate(p.intervene);
  if (p.global_top < 1 || p.montage_top < 1) throw_usage("pipeline: global_top and montage_top must be >= 1");
  for (const auto& iv : p.interventions) {
    if (iv.concept_name.empty()) throw_usage("pipeline: an intervention needs concept_name");
    explain::validate(iv, "pipeline: intervention");
  }
  explain::validate(p.curve, "pipeline: curve");
  if (p.run_bench) {
    explain::validate(p.bench);
    if (p.data.concept_cols.empty()) throw_usage("pipeline: run_bench needs data.concept_cols (the columns it probes)");
    if (p.embed.patches)
      throw_usage("pipeline: run_bench scores an SAE of image embeddings; with embed.patches the workspace's SAE is a "
                  "patch SAE (run `conceptlab sae bench` on an SAE trained on embeddings.h5 instead)");
  }
}

void resolve_paths(PipelineParams& p, const std::string& base_dir) {
  for (std::string* s : {&p.data.csv, &p.data.image_root, &p.data.embeddings, &p.data.vocab, &p.data.masks, &p.embed.model,
                         &p.embed.preprocess_json, &p.sae_sweep})
    if (!s->empty() && fs::path(*s).is_relative()) *s = (fs::path(base_dir) / *s).lexically_normal().string();
}

const std::vector<std::string>& step_names() {
  static const std::vector<std::string> names = {"embed", "sae", "encode", "classify", "explain", "intervene", "bench", "report"};
  return names;
}

size_t step_index(const std::string& step) {
  const auto& names = step_names();
  const auto it = std::find(names.begin(), names.end(), step);
  if (it == names.end())
    throw_usage("step '{}': expected one of embed, sae, encode, classify, explain, intervene, bench, report", step);
  return static_cast<size_t>(it - names.begin());
}

std::vector<std::string> step_outputs(const std::string& step, const PipelineParams& p) {
  namespace ws = workspace;
  switch (step_index(step)) {
    case 0: {
      if (!p.data.embeddings.empty()) return {};
      if (p.embed.patches) return {ws::kEmbeddings, ws::kPatchEmbeddings};
      return {ws::kEmbeddings};
    }
    case 1: return p.sae_sweep.empty() ? std::vector<std::string>{ws::kSae, ws::kSaeLog} : std::vector<std::string>{ws::kSae};
    case 2: {
      if (p.embed.patches && p.data.embeddings.empty()) return {ws::kActivations, ws::kPatchActivations};
      return {ws::kActivations};
    }
    case 3: {
      std::vector<std::string> out = {ws::kCbm, ws::kProbe, ws::kClassify};
      if (!p.data.subgroup_col.empty() && !p.data.split_col.empty()) out.push_back(ws::kCbmUnbiased);
      return out;
    }
    case 4: {
      std::vector<std::string> out = {ws::kIndex, ws::kNames, ws::kMatch, ws::kGlobal, ws::kGlobalPng};
      if (!p.data.vocab.empty()) out.push_back(ws::kName);
      if (!p.data.masks.empty()) out.push_back(ws::kLocalize);
      return out;  // + a montage per concept that named a latent (recorded in workspace.json)
    }
    case 5: {
      std::vector<std::string> out = {ws::kInterventions};
      if (!p.curve.by.empty()) out.push_back(ws::kCurve), out.push_back(ws::kCurvePng);
      return out;
    }
    case 6: {
      if (!p.run_bench) return {};
      return {ws::kBench, ws::kBenchCsv, ws::kBenchMd};
    }
    default: return {ws::kReport, ws::kReportMd};
  }
}

namespace {

// Subgroup codes of the dataset's rows (-1 = empty), from a CSV column.
std::vector<int> subgroup_codes(const std::string& csv, const std::string& id_col, const std::string& col,
                                const std::vector<std::string>& ids) {
  const CsvTable t = read_csv(csv);
  const auto index = index_by(t, id_col);
  const size_t c = t.col(col);
  std::map<std::string, int> code;
  std::vector<int> out;
  for (const auto& id : ids) {
    const std::string v = trim_copy(t.rows[index.at(id)][c]);
    out.push_back(v.empty() ? -1 : code.emplace(v, static_cast<int>(code.size())).first->second);
  }
  return out;
}

struct Runner {
  const PipelineParams& p;
  Workspace& w;
  Device device;
  ProgressSink& progress;
  std::map<std::string, std::string> keys;  // step -> key (also the key of its outputs)
  bool resume = false;                      // the step being run was interrupted before with this key
  std::vector<std::string> extra_outputs;   // files the running step wrote beyond step_outputs (montages)

  std::string f(const std::string& name) const { return w.file(name); }
  std::string emb() const { return embeddings_path(p, w); }

  // With embed.patches (and the workspace's own embed step) the SAE works on the patch grid.
  bool patches() const { return p.embed.patches && p.data.embeddings.empty(); }
  std::string sae_input() const { return patches() ? f(workspace::kPatchEmbeddings) : emb(); }

  // ---- embed
  std::string embed_key() const {
    if (!p.data.embeddings.empty()) return file_key(p.data.embeddings);
    const std::string pre = p.embed.preprocess_json.empty() ? embed::default_preprocess_path(p.embed.model) : p.embed.preprocess_json;
    return hex_key({"embed", p.embed, p.data.csv, p.data.image_root, p.data.id_col, file_key(p.data.csv),
                    file_key(p.embed.model), file_key(pre)});
  }
  void run_embed() {
    if (!p.data.embeddings.empty()) return;
    embed::EmbedParams ep = p.embed;
    ep.csv = p.data.csv;
    ep.image_root = p.data.image_root;
    ep.image_col = p.data.id_col;
    ep.out = f(workspace::kEmbeddings);
    if (ep.patches) ep.patch_out = f(workspace::kPatchEmbeddings);
    ep.resume = resume;  // continue an interrupted embed of the same settings
    if (!resume) std::filesystem::remove(embed::partial_path(ep.out));
    embed::embed_images(ep, embed::resolve_preprocess(ep), device, progress, embed::resolve_output(ep));
  }

  // ---- sae
  std::string sae_key() const {
    if (!p.sae_sweep.empty()) return hex_key({"sae-from-sweep", file_key(swept_sae_path(p.sae_sweep)), keys.at("embed")});
    return hex_key({"sae", p.sae, keys.at("embed")});
  }
  void run_sae() {
    if (!p.sae_sweep.empty()) {
      const std::string picked = swept_sae_path(p.sae_sweep);
      const int64_t d_sae = read_sae_header(picked).d_in, d_emb = EmbeddingsReader(emb()).dim();
      if (d_sae != d_emb)
        throw_input("{}: the sweep's pick has input dim {}, the workspace's embeddings {} have {} (sweep these "
                    "embeddings)",
                    picked, d_sae, emb(), d_emb);
      AtomicOutput out(f(workspace::kSae), {picked});
      fs::copy_file(picked, out.temp_path(), fs::copy_options::overwrite_existing);
      out.commit();
      return;
    }
    EmbeddingsReader reader(sae_input());
    sae::TrainOptions opt;
    opt.out_path = f(workspace::kSae);
    opt.inputs = {sae_input()};
    if (resume && fs::exists(opt.out_path + ".ckpt")) opt.resume_path = opt.out_path + ".ckpt";
    write_sae(opt.out_path, sae::train(reader, p.sae, device, opt, progress), {sae_input()});
    fs::remove(opt.out_path + ".ckpt");  // only needed to resume this step; sae.h5 is complete
  }

  // ---- encode
  std::string encode_key() const { return hex_key({"encode", keys.at("sae"), keys.at("embed"), patches() ? p.pool : ""}); }
  void run_encode() {
    const sae::Model m = sae::Model::load(f(workspace::kSae), device);
    EmbeddingsReader reader(sae_input());
    sae::ApplyParams ap;
    ap.pool = p.pool;
    m.encode_file(reader, f(workspace::kActivations), ap, progress, patches() ? f(workspace::kPatchActivations) : "");
  }

  // ---- classify
  std::string classify_key() const {
    return hex_key({"classify", p.cbm, p.probe, p.data.label_col, p.data.split_col, p.data.id_col, p.data.subgroup_col,
                    keys.at("encode"), keys.at("embed"), file_key(p.data.csv)});
  }
  cbm::ProtocolResult fit(const cbm::Dataset& d, const cbm::ProtocolParams& pp, std::vector<int64_t>* train_out,
                          std::vector<int64_t>* test_out) {
    if (p.data.split_col.empty()) return cbm::run_repeated_splits(d, pp, progress);
    std::vector<int64_t> train, valid, test;
    cbm::rows_from_split_col(d, train, valid, test);
    if (train_out) *train_out = train;
    if (test_out) *test_out = test;
    return cbm::run_fixed_split(d, train, valid, test, pp);
  }
  void run_classify() {
    const auto feats = cbm::read_features(f(workspace::kActivations));
    const cbm::Dataset d = cbm::load_dataset(load_params(p, f(workspace::kActivations)), feats);
    std::vector<int64_t> train, test;
    const auto cbm_res = fit(d, p.cbm, &train, &test);
    const nlohmann::json cfg = {{"model", p.cbm.model}, {"labels", p.data.csv}, {"label_col", p.data.label_col}};
    write_linear(f(workspace::kCbm), cbm::to_linear_model(cbm_res.model, d, cbm_res.to_json(false), cfg), {f(workspace::kActivations)});
    const cbm::Dataset de = cbm::load_dataset(load_params(p, emb()));
    cbm::ProtocolParams pp = p.cbm;
    pp.model = p.probe;
    const auto probe_res = fit(de, pp, nullptr, nullptr);
    write_linear(f(workspace::kProbe), cbm::to_linear_model(probe_res.model, de, probe_res.to_json(false), {{"model", p.probe}}),
                 {emb()});
    nlohmann::json j = {{"cbm", cbm_res.to_json(false)}, {"probe", probe_res.to_json(false)}};
    if (!p.data.subgroup_col.empty() && !p.data.split_col.empty()) {
      // The same bottleneck fitted on training rows resampled so the subgroup says nothing about
      // the label: how much of the test score the shortcut costs.
      const auto group = subgroup_codes(p.data.csv, p.data.id_col, p.data.subgroup_col, d.ids);
      const auto rows = unbiased_rows(train, d.y, group, p.cbm.seed);
      const auto u = cbm::run_fixed_split(d, rows, {}, test, p.cbm);
      j["unbiased"] = {{"subgroup_col", p.data.subgroup_col},
                       {"n_train", rows.size()},
                       {"test", cbm::to_json(u.report.test, d.n_classes())}};
      write_linear(f(workspace::kCbmUnbiased), cbm::to_linear_model(u.model, d, u.to_json(false), cfg), {f(workspace::kActivations)});
    }
    write_json(f(workspace::kClassify), j);
  }

  // ---- explain
  std::string explain_key() const {
    return hex_key({"explain", p.stats, p.match, p.name, p.data.concept_cols, p.data.image_root, p.global_top,
                    p.montage_top, file_key(p.data.vocab), keys.at("encode"), keys.at("classify"), keys.at("sae"),
                    file_key(p.data.csv), p.data.masks.empty() ? "" : hex_key({masks_key(p.data.masks), p.localize})});
  }
  void run_explain() {
    const Activations acts = read_activations(f(workspace::kActivations));
    LatentIndex idx = explain::build_index(acts.acts, p.stats, progress);
    idx.config = {{"activations", f(workspace::kActivations)}, {"params", p.stats}};
    write_latent_index(f(workspace::kIndex), idx, {f(workspace::kActivations)});
    LatentNames names;
    nlohmann::json match = nlohmann::json::object();
    if (!p.data.concept_cols.empty()) {
      const auto ann = explain::read_annotations(p.data.csv, p.data.id_col, p.data.concept_cols, acts.ids);
      const CsrMatrix e = explain::embedding_rows_for_ids(emb(), acts.ids);
      const auto r = explain::match_concepts(acts.acts, ann.names, ann.labels, &e, p.match, progress);
      for (const auto& b : r.per_latent)
        if (b.named) names.set({b.latent, r.concepts[static_cast<size_t>(b.concept_index)].name, "annotation", b.auroc});
      match = explain::to_json(r);
    }
    write_json(f(workspace::kMatch), match);
    const auto model = cbm::from_linear_model(read_linear(f(workspace::kCbm)));
    if (!p.data.vocab.empty()) {
      const Vocab v = read_vocab(p.data.vocab);
      const SaeWeights sw = read_sae(f(workspace::kSae));
      if (v.dim != sw.d_in) throw_input("{}: vocabulary of dim {}, the SAE has dim {}", p.data.vocab, v.dim, sw.d_in);
      const auto rank = explain::importance_ranks(model);
      const auto r = explain::name_by_direction(sw.W_dec, sw.n_latents, sw.d_in, v.names, v.embeddings, {}, rank, {}, p.name);
      for (const auto& m : r.matches)
        if (m.latent >= 0 && !names.find(m.latent)) names.set({m.latent, m.concept_name, "direction", m.cosine});
      write_json(f(workspace::kName), explain::to_json(r));
    }
    names.config = {{"workspace", w.dir}};
    write_latent_names(f(workspace::kNames), names, {f(workspace::kActivations)});
    // Global explanations over the labelled rows.
    const auto lm = read_linear(f(workspace::kCbm));
    const auto feats = cbm::read_features(f(workspace::kActivations));
    const cbm::Dataset d = cbm::load_dataset(load_params(p, f(workspace::kActivations)), feats, &lm.classes);
    const auto g = explain::global_explanations(model, lm.classes, d.X, d.y, p.global_top);
    nlohmann::json gj = explain::to_json(g);
    std::vector<explain::BarPanel> panels;
    for (size_t k = 0; k < g.size(); ++k) {
      explain::BarPanel panel{fmt::format("{} = {}: top {} latents by weight", p.data.label_col, g[k].class_name, p.global_top), {}};
      for (auto& t : gj[k]["by_weight"]) {
        const LatentName* n = names.find(t["latent"].get<int64_t>());
        if (n) t["name"] = n->name;
        panel.bars.push_back({fmt::format("latent {}{}", t["latent"].get<int64_t>(), n ? " (" + n->name + ")" : ""),
                              t["weight"].get<double>()});
      }
      panels.push_back(std::move(panel));
    }
    write_json(f(workspace::kGlobal), gj);
    explain::write_bar_charts(f(workspace::kGlobalPng), panels, "weight");
    // One montage per concept that named a latent: its strongest images.
    const std::string root = p.data.image_root.empty() ? fs::path(p.data.csv).parent_path().string() : p.data.image_root;
    int64_t n_missing = 0;
    std::optional<explain::PatchMaps> maps;
    if (patches()) maps.emplace(f(workspace::kPatchActivations));
    for (const auto& c : p.data.concept_cols) {
      const auto named = names.latents_named(c);
      if (named.empty()) continue;
      std::vector<explain::Tile> tiles;
      std::vector<explain::HeatmapTile> heat_tiles;  // with patches: where the latent fires on each
      for (const auto& h : explain::top_images(idx, named[0], p.montage_top)) {
        const std::string& id = acts.ids[static_cast<size_t>(h.row)];
        const fs::path img = fs::path(root) / id;
        std::error_code ec;
        const bool found = fs::is_regular_file(img, ec);
        n_missing += !found;  // e.g. precomputed embeddings without their images
        const std::string caption = fmt::format("{:.3g}\n{}", h.value, id);
        cv::Mat bgr = found ? cv::imread(img.string()) : cv::Mat();
        if (maps) heat_tiles.push_back({caption, bgr, maps->map(id, named[0])});
        else tiles.push_back({bgr, caption});
      }
      extra_outputs.push_back(workspace::montage_file(c));
      const std::string title = fmt::format("latent {} ({}): its strongest images{}", named[0], c,
                                            maps ? ", where it fires" : "");
      if (maps) {
        explain::HeatmapParams hp;
        hp.cols = 5;
        hp.tile_px = 160;
        explain::write_heatmap_montage(f(workspace::montage_file(c)), title, heat_tiles, hp);
      } else {
        explain::write_montage(f(workspace::montage_file(c)), title, tiles, 5);
      }
    }
    if (n_missing) spdlog::warn("explain: {} montage image(s) not found under {}; their tiles are blank", n_missing, root);
    if (!p.data.masks.empty()) run_localize(match);
  }
  // Where each concept's best latent (the match table's, named or not) fires, against the
  // concept's masks (concepts the masks lack are listed as such).
  void run_localize(const nlohmann::json& match) {
    const explain::MaskSource masks(p.data.masks);
    const auto have = masks.concepts();
    std::vector<std::pair<std::string, int64_t>> latents;
    nlohmann::json skipped = nlohmann::json::array();
    if (match.contains("concepts"))
      for (const auto& c : match["concepts"]) {
        if (c["best"].empty()) continue;
        const std::string name = c["concept"].get<std::string>();
        if (std::find(have.begin(), have.end(), name) == have.end()) skipped.push_back(name);
        else latents.emplace_back(name, c["best"][0]["latent"].get<int64_t>());
      }
    const explain::PatchMaps maps(f(workspace::kPatchActivations));
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : explain::localize(maps.reader(), maps.geometry(), masks, latents, p.localize))
      rows.push_back(explain::to_json(row));
    write_json(f(workspace::kLocalize), {{"masks", p.data.masks}, {"params", p.localize}, {"concepts", rows},
                                         {"not_in_masks", skipped}});
  }

  // ---- intervene
  std::string intervene_key() const {
    return hex_key({"intervene", p.intervene, p.interventions, p.curve, p.data.eval_split, p.data.subgroup_col,
                    p.data.label_col, p.data.split_col, keys.at("explain"), keys.at("classify"), keys.at("encode"),
                    keys.at("sae"), file_key(p.data.vocab), file_key(p.data.csv)});
  }
  void run_intervene() {
    const auto feats = cbm::read_features(f(workspace::kActivations));
    const LinearModel lm = read_linear(f(workspace::kCbm));
    const auto model = cbm::from_linear_model(lm);
    const auto L = explain::load_labelled(feats, load_params(p, f(workspace::kActivations)), p.data.subgroup_col,
                                          p.data.split_col.empty() ? "" : p.data.eval_split, &lm.classes);
    const LatentNames names = read_latent_names(f(workspace::kNames));
    const explain::RuleInputs in{&L.data.X, &L.data.ids, &model, &names, p.data.csv, p.data.id_col, p.data.vocab,
                                 f(workspace::kSae), emb()};
    nlohmann::json list = nlohmann::json::array();
    for (const auto& spec : p.interventions) {
      const auto edits = explain::rule_edits(spec, in);
      std::vector<int64_t> latents;
      for (const auto& e : edits) latents.push_back(e.latent);
      nlohmann::json entry = {{"concept", spec.concept_name}, {"by", spec.by}, {"latents", latents}};
      if (edits.empty()) {
        entry["note"] = "no latent for this concept (none named after it)";
      } else {
        const auto r = explain::intervene(L.data.X, model, edits, L.eval, p.intervene, L.train_rows, L.train_y,
                                          p.cbm.model, progress);
        entry["report"] = explain::to_json(r);
      }
      list.push_back(entry);
    }
    // Curves: the metric as latents are edited, per ranking rule.
    const auto points = explain::intervention_curves(L.data.X, model, L.eval, in, p.curve);
    if (!p.curve.by.empty()) {
      write_csv(f(workspace::kCurve), explain::curve_table(points));
      explain::write_line_chart(f(workspace::kCurvePng), fmt::format("{}: AUROC as latents are zeroed", p.data.label_col),
                                "latents zeroed (k)", "AUROC", explain::curve_series(points));
    }
    write_json(f(workspace::kInterventions), {{"interventions", list}, {"curves", explain::to_json(points)}});
  }

  // ---- bench
  std::string bench_key() const {
    if (!p.run_bench) return hex_key({"bench-off"});
    return hex_key({"bench", p.bench, p.data.concept_cols, p.data.id_col, file_key(p.data.csv), keys.at("sae"),
                    keys.at("embed")});
  }
  void run_bench() {
    if (!p.run_bench) return;
    EmbeddingsReader reader(emb());
    std::vector<float> x(static_cast<size_t>(reader.rows() * reader.dim()));
    reader.read_rows(0, reader.rows(), x.data());
    explain::BenchData data;
    data.x_nd = x.data(), data.n = reader.rows(), data.d = reader.dim(), data.ids = reader.ids();
    data.embeddings_path = emb();
    data.columns = p.data.concept_cols;
    explain::read_bench_labels(data, p.data.csv, p.data.id_col, p.bench);
    explain::BenchInputs in;
    in.saes = {f(workspace::kSae)};
    const auto r = explain::bench_saes(data, in, p.bench, device, progress);
    fs::create_directories(f(workspace::kBenchDir));
    const auto fixed = step_outputs("bench", p);
    for (const auto& name : explain::write_bench_outputs(r, p.bench, f(workspace::kBenchDir), {emb(), f(workspace::kSae)})) {
      const std::string rel = std::string(workspace::kBenchDir) + "/" + name;
      if (std::find(fixed.begin(), fixed.end(), rel) == fixed.end()) extra_outputs.push_back(rel);
    }
  }

  // ---- report
  std::string report_key() const {
    return hex_key({"report", keys.at("embed"), keys.at("sae"), keys.at("encode"), keys.at("classify"),
                    keys.at("explain"), keys.at("intervene"), keys.at("bench")});
  }
  void run_report();
};

std::string png_line(const std::string& title, const std::string& file, const Workspace& w) {
  return fs::exists(w.file(file)) ? fmt::format("![{}]({})\n\n", title, file) : "";
}

void Runner::run_report() {
  nlohmann::json r = {{"format", "conceptlab.report"}, {"schema_version", 1}, {"config", p}, {"workspace", w.dir}};
  const SaeWeights sw = read_sae(f(workspace::kSae));
  r["sae"] = sw.metrics;
  r["sae"]["n_latents"] = sw.n_latents;
  r["sae"]["arch"] = sw.arch;
  if (!p.sae_sweep.empty()) r["sae"]["from_sweep"] = p.sae_sweep;
  r["embeddings"] = {{"path", emb()}, {"rows", EmbeddingsReader(emb()).rows()}, {"dim", EmbeddingsReader(emb()).dim()}};
  r["classify"] = load_json_file(f(workspace::kClassify));
  r["match"] = load_json_file(f(workspace::kMatch));
  if (fs::exists(f(workspace::kName))) r["name"] = load_json_file(f(workspace::kName));
  r["global"] = load_json_file(f(workspace::kGlobal));
  r["interventions"] = load_json_file(f(workspace::kInterventions))["interventions"];
  if (fs::exists(f(workspace::kLocalize))) r["localize"] = load_json_file(f(workspace::kLocalize));
  if (p.run_bench && fs::exists(f(workspace::kBench))) {
    // The table's rows, without the per-column detail (that stays in bench/bench.json).
    const nlohmann::json b = load_json_file(f(workspace::kBench));
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& e : b["entries"])
      rows.push_back({{"label", e["label"]}, {"kind", e["kind"]}, {"n_latents", e["n_latents"]},
                      {"fvu", e["reconstruction"]["fvu"]}, {"l0", e["reconstruction"]["l0"]},
                      {"probe_k", e["sparse_probing"]["k"]}, {"mean_probe_auroc", e["sparse_probing"]["mean_auroc"]},
                      {"tpp_n", e["tpp"]["n"]}, {"tpp", e["tpp"]["tpp"]}});
    r["bench"] = {{"file", workspace::kBench}, {"mean_dense_probe_auroc", b["mean_dense_probe_auroc"]}, {"entries", rows}};
  }
  write_json(f(workspace::kReport), r);

  std::string md = fmt::format("# conceptlab report: {}\n\nConfig: `{}` (resolved, in report.json). Label: `{}`.\n\n",
                               w.dir, workspace::kState, p.data.label_col);
  md += fmt::format("## SAE\n{} latents ({}): FVU {:.4f}, L0 {:.1f}, dead {:.1f}%.\n\n", sw.n_latents, sw.arch,
                    sw.metrics.value("fvu", 0.0), sw.metrics.value("l0", 0.0), 100 * sw.metrics.value("dead_fraction", 0.0));
  if (r["match"].contains("concepts")) {
    md += "## Concepts\n| concept | best latent | AUROC | K-latent set AUROC | probe AUROC |\n|---|---|---|---|---|\n";
    for (const auto& c : r["match"]["concepts"])
      md += fmt::format("| {} | {} | {} | {} | {} |\n", c["concept"].get<std::string>(),
                        c["best"].empty() ? "-" : c["best"][0]["latent"].dump(),
                        c["best"].empty() ? "-" : fmt::format("{:.3f}", c["best"][0]["auroc"].get<double>()),
                        c["set_auroc"].is_null() ? "-" : fmt::format("{:.3f}", c["set_auroc"].get<double>()),
                        c["probe_auroc"].is_null() ? "-" : fmt::format("{:.3f}", c["probe_auroc"].get<double>()));
    md += "\n";
    for (const auto& c : p.data.concept_cols) md += png_line(c, workspace::montage_file(c), w);
  }
  if (r.contains("localize")) {
    md += fmt::format("## Where the concept latents fire\nAgainst the masks `{}`: pointing game = the latent's most active "
                      "patch overlaps the concept's mask (over images that show it); patch AUROC = its activation "
                      "against \"the patch overlaps the mask\"; control = {} random latents.\n\n"
                      "| concept | latent | images | pointing game | control | patch AUROC | control |\n|---|---|---|---|---|---|---|\n",
                      p.data.masks, p.localize.random_latents);
    auto num = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : std::string("-"); };
    for (const auto& c : r["localize"]["concepts"])
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", c["concept"].get<std::string>(), c["latent"].dump(),
                        c["n_images"].dump(), num(c["pointing"]), num(c["control_pointing"]), num(c["patch_auroc"]),
                        num(c["control_auroc"]));
    md += "\n";
  }
  const auto& cl = r["classify"];
  auto auc = [](const nlohmann::json& rep) {
    if (rep.contains("test")) return rep["test"]["auroc"].is_null() ? std::string("-") : fmt::format("{:.3f}", rep["test"]["auroc"].get<double>());
    return rep["auroc"]["mean"].is_null() ? std::string("-") : fmt::format("{:.3f}", rep["auroc"]["mean"].get<double>());
  };
  md += fmt::format("## Classifiers ({})\n| model | AUROC |\n|---|---|\n| concept bottleneck (latents) | {} |\n| probe (embeddings) | {} |\n",
                    p.data.label_col, auc(cl["cbm"]), auc(cl["probe"]));
  if (cl.contains("unbiased"))
    md += fmt::format("| concept bottleneck fitted without the `{}` bias | {} |\n", p.data.subgroup_col, auc(cl["unbiased"]));
  md += "\n";
  md += png_line("global explanations", workspace::kGlobalPng, w);
  if (r.contains("bench")) {
    auto num = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : std::string("-"); };
    md += fmt::format("## SAE bench (held out; [{}]({}))\nSparse probing = mean AUROC of a probe on the top latent per "
                      "concept; dense probe on the embeddings: {}.\n\n| dictionary | latents | FVU | L0 | probing k={} | "
                      "TPP n={} |\n|---|---|---|---|---|---|\n",
                      workspace::kBenchMd, workspace::kBenchMd, num(r["bench"]["mean_dense_probe_auroc"]),
                      p.bench.probe_ks.front(), p.bench.tpp_ns.front());
    for (const auto& e : r["bench"]["entries"])
      md += fmt::format("| {} | {} | {} | {:.1f} | {} | {} |\n", e["label"].get<std::string>(), e["n_latents"].dump(),
                        num(e["fvu"]), e["l0"].get<double>(), num(e["mean_probe_auroc"][0]), num(e["tpp"][0]));
    md += "\n";
  }
  if (!r["interventions"].empty()) {
    md += "## Interventions\n| concept | latents | AUROC before | after | random control (95%) |\n|---|---|---|---|---|\n";
    for (const auto& iv : r["interventions"]) {
      if (!iv.contains("report")) {
        md += fmt::format("| {} | - | - | - | {} |\n", iv["concept"].get<std::string>(), iv.value("note", std::string()));
        continue;
      }
      const auto& rep = iv["report"];
      const std::string ctl = rep.contains("random_control")
                                  ? fmt::format("{:.3f} [{:.3f}, {:.3f}]", rep["random_control"]["auroc"]["mean"].get<double>(),
                                                rep["random_control"]["auroc"]["ci95"][0].get<double>(),
                                                rep["random_control"]["auroc"]["ci95"][1].get<double>())
                                  : "-";
      md += fmt::format("| {} | {} | {:.3f} | {:.3f} | {} |\n", iv["concept"].get<std::string>(), iv["latents"].dump(),
                        rep["before"]["auroc"].get<double>(), rep["after"]["auroc"].get<double>(), ctl);
    }
    md += "\n";
    md += png_line("intervention curves", workspace::kCurvePng, w);
  }
  write_file_atomic(f(workspace::kReportMd), md);
}

// A misspelt column would otherwise surface only after embedding and SAE training (minutes).
void check_csv_columns(const PipelineParams& p) {
  const CsvTable t = read_csv(p.data.csv);
  std::vector<std::string> cols = {p.data.id_col, p.data.label_col};
  if (!p.data.split_col.empty()) cols.push_back(p.data.split_col);
  if (!p.data.subgroup_col.empty()) cols.push_back(p.data.subgroup_col);
  if (p.data.embeddings.empty()) cols.push_back(p.embed.image_col);
  for (const auto& c : p.data.concept_cols) cols.push_back(c);
  for (const auto& c : cols) t.col(c);  // throws naming the file, the column and those available
}

}  // namespace

RunResult run_pipeline(const PipelineParams& p, const RunOptions& o, ProgressSink& progress) {
  validate(p);
  if (o.workspace.empty()) throw_usage("run: a workspace folder is required (--workspace)");
  const auto& names = step_names();
  auto index_of = [&](const std::string& s, size_t fallback) { return s.empty() ? fallback : step_index(s); };
  const size_t force = index_of(o.force, names.size()), from = index_of(o.from, 0), to = index_of(o.to, names.size() - 1);
  if (from > to) throw_usage("run: --from {} comes after --to {}", o.from, o.to);
  check_csv_columns(p);
  Workspace w = open_workspace(o.workspace, p);
  OutputLock lock(w.file(workspace::kState));  // two runs on one workspace would race on every step
  Runner r{p, w, pick_device(o.device), progress, {}, false, {}};
  const std::vector<Step> steps = {
      {"embed", [&] { return r.embed_key(); }, [&] { r.run_embed(); }},
      {"sae", [&] { return r.sae_key(); }, [&] { r.run_sae(); }},
      {"encode", [&] { return r.encode_key(); }, [&] { r.run_encode(); }},
      {"classify", [&] { return r.classify_key(); }, [&] { r.run_classify(); }},
      {"explain", [&] { return r.explain_key(); }, [&] { r.run_explain(); }},
      {"intervene", [&] { return r.intervene_key(); }, [&] { r.run_intervene(); }},
      {"bench", [&] { return r.bench_key(); }, [&] { r.run_bench(); }},
      {"report", [&] { return r.report_key(); }, [&] { r.run_report(); }}};
  RunResult out;
  out.workspace = o.workspace;
  for (size_t i = 0; i < steps.size() && i <= to; ++i) {
    const auto& s = steps[i];
    const std::string key = s.key();
    r.keys[s.name] = key;
    // Every file the step writes, including those it recorded (a deleted one re-runs it).
    bool outputs_there = true;
    for (const auto& file : w.recorded_outputs(s.name, step_outputs(s.name, p)))
      if (!fs::exists(w.file(file))) outputs_there = false;
    const bool cached = outputs_there && w.recorded_key(s.name) == key;
    if (i < from) {
      if (!cached) throw_input("{}: step {} is not complete for this config; run it first (without --from)", o.workspace, s.name);
      out.steps.push_back({s.name, false, 0});
      continue;
    }
    if (cached && i < force) {
      spdlog::info("run: {} cached", s.name);
      out.steps.push_back({s.name, false, 0});
      continue;
    }
    const auto& running = w.state.contains("running") ? w.state["running"] : nlohmann::json();
    r.resume = running.is_object() && running.value("step", std::string()) == s.name && running.value("key", std::string()) == key;
    w.state["running"] = {{"step", s.name}, {"key", key}};
    w.state["steps"].erase(s.name);
    w.save();
    spdlog::info("run: {}{}", s.name, r.resume ? " (resuming an interrupted run)" : "");
    const auto t0 = std::chrono::steady_clock::now();
    r.extra_outputs.clear();
    s.run();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto outputs = step_outputs(s.name, p);
    outputs.insert(outputs.end(), r.extra_outputs.begin(), r.extra_outputs.end());
    w.state.erase("running");
    w.state["steps"][s.name] = {{"key", key}, {"seconds", secs}, {"outputs", outputs}};
    w.save();
    out.steps.push_back({s.name, true, secs});
  }
  if (fs::exists(w.file(workspace::kReport))) out.report = load_json_file(w.file(workspace::kReport));
  return out;
}

}  // namespace cl::pipeline
