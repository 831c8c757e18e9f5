// Loading a workspace for the viewer, file by file, each failure recorded instead of thrown, and
// the per-latent / per-image / per-group views the panels draw.
#include "viewer/model/workspace_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>

#include <Eigen/Dense>
#include <spdlog/spdlog.h>

#include "cbm/dataset.h"
#include "cbm/metrics.h"
#include "cbm/protocol.h"
#include "core/error.h"
#include "core/params.h"
#include "core/parse.h"
#include "core/vocab.h"
#include "core/workspace_layout.h"
#include "explain/contrib.h"
#include "explain/heatmap.h"
#include "explain/naming.h"

namespace fs = std::filesystem;

namespace cl::viewer {

namespace {

std::string in_dir(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

bool is_binary_value(const std::string& v) {
  double d;
  return v.empty() || (parse_number(v, d) && (d == 0 || d == 1));
}

}  // namespace

WorkspacePaths WorkspacePaths::from_workspace(const std::string& dir) {
  const std::string ws_json = in_dir(dir, workspace::kState);
  if (!fs::is_directory(dir)) throw_input("{}: not a folder (expected a workspace from `conceptlab run`)", dir);
  if (!fs::exists(ws_json)) throw_input("{}: no workspace.json (expected a workspace from `conceptlab run`)", dir);
  const nlohmann::json state = load_json_file(ws_json);
  if (!state.is_object() || state.value("format", std::string()) != "conceptlab.workspace")
    throw_input("{}: format '{}', expected conceptlab.workspace", ws_json,
                state.is_object() ? state.value("format", std::string()) : std::string("(not an object)"));
  WorkspacePaths p;
  p.dir = dir;
  const auto cfg = state.contains("config") && state["config"].is_object() ? state["config"] : nlohmann::json::object();
  const auto data = cfg.contains("data") && cfg["data"].is_object() ? cfg["data"] : nlohmann::json::object();
  if (state.contains("config") && !state["config"].is_object()) p.config_problems.push_back("config is not an object");
  const char* where = "config.data";
  auto str = [&](const nlohmann::json& j, const char* key, const std::string& fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_string()) {
      p.config_problems.push_back(fmt::format("{}.{} is {}, expected a string", where, key, j[key].dump()));
      return fallback;
    }
    return j[key].get<std::string>();
  };
  p.csv = str(data, "csv", "");
  p.image_root = str(data, "image_root", "");
  p.id_col = str(data, "id_col", kDefaultIdCol);
  p.label_col = str(data, "label_col", "label");
  p.split_col = str(data, "split_col", "");
  p.eval_split = p.split_col.empty() ? "" : str(data, "eval_split", "test");
  p.subgroup_col = str(data, "subgroup_col", "");
  p.vocab = str(data, "vocab", "");
  if (data.contains("concept_cols") && !data["concept_cols"].is_null()) {
    if (!data["concept_cols"].is_array()) p.config_problems.push_back("config.data.concept_cols is not a list of column names");
    else
      for (const auto& c : data["concept_cols"])
        if (c.is_string()) p.concept_cols.push_back(c.get<std::string>());
        else p.config_problems.push_back(fmt::format("config.data.concept_cols holds {}, expected column names", c.dump()));
  }
  const std::string emb = str(data, "embeddings", "");
  p.embeddings = emb.empty() ? in_dir(dir, workspace::kEmbeddings) : emb;
  where = "config.embed";
  const auto embed = cfg.contains("embed") && cfg["embed"].is_object() ? cfg["embed"] : nlohmann::json::object();
  p.encoder_model = str(embed, "model", "");
  p.preprocess_json = str(embed, "preprocess_json", "");
  p.activations = in_dir(dir, workspace::kActivations);
  p.cbm = in_dir(dir, workspace::kCbm);
  p.probe = in_dir(dir, workspace::kProbe);
  p.sae = in_dir(dir, workspace::kSae);
  p.report = in_dir(dir, workspace::kReport);
  p.classify = in_dir(dir, workspace::kClassify);
  p.curve = in_dir(dir, workspace::kCurve);
  p.patch_activations = in_dir(dir, workspace::kPatchActivations);
  p.fill_defaults();
  return p;
}

void WorkspacePaths::fill_defaults() {
  auto stem = [&](const std::string& suffix) {
    const fs::path a(activations);
    return (a.parent_path() / (a.stem().string() + suffix)).string();
  };
  if (index.empty() && !activations.empty()) index = stem(".index.h5");
  if (names.empty() && !activations.empty()) names = stem(".names.h5");
  if (image_root.empty() && !csv.empty()) image_root = fs::path(csv).parent_path().string();
}

const std::vector<std::string>& WorkspaceModel::classes() const {
  static const std::vector<std::string> none;
  return cbm_file ? cbm_file->classes : none;
}

LoadIssue load_issue(const std::string& file, const std::exception& e) {
  std::string msg = e.what();
  if (msg.rfind(file, 0) == 0 && msg.size() > file.size() + 2) msg = msg.substr(file.size() + 2);
  return {file, msg};
}

std::unique_ptr<WorkspaceModel> WorkspaceModel::load(const WorkspacePaths& paths, ProgressSink& progress,
                                                     bool open_patches) {
  auto m = std::make_unique<WorkspaceModel>();
  m->paths = paths;
  const auto t0 = std::chrono::steady_clock::now();
  m->load_all(progress, open_patches);
  m->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& i : m->issues) spdlog::warn("{}: {}", i.file, i.message);
  return m;
}

void WorkspaceModel::load_all(ProgressSink& progress, bool open_patches) {
  Progress prog(progress, "open workspace", 8, "files");
  // Each file on its own: a bad one is reported and the others still open.
  auto attempt = [&](const std::string& file, const auto& fn) {
    prog.check_cancel();
    try {
      fn();
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      issues.push_back(load_issue(file, e));
    }
    prog.add(1);
  };
  // A workspace from `conceptlab run` has every file; one missing is worth saying.
  if (!paths.dir.empty())
    for (const auto& [path, step] : {std::pair{paths.sae, "sae"}, {paths.names, "explain"}, {paths.report, "report"},
                                     {paths.classify, "classify"}, {paths.curve, "intervene"}})
      if (!path.empty() && !fs::exists(path))
        issues.push_back({path, fmt::format("not found (written by the {} step of `conceptlab run`)", step)});
  if (!paths.dir.empty() && fs::exists(in_dir(paths.dir, workspace::kState)))
    attempt(in_dir(paths.dir, workspace::kState), [&] { workspace_state = load_json_file(in_dir(paths.dir, workspace::kState)); });
  for (const auto& c : paths.config_problems) issues.push_back({in_dir(paths.dir, workspace::kState), c});
  if (paths.activations.empty()) issues.push_back({"activations", "no activations file given"});
  else attempt(paths.activations, [&] { acts = read_activations(paths.activations); });
  if (!paths.index.empty())
    attempt(paths.index, [&] {
      index = read_latent_index(paths.index);
      if (has_acts() && (index.n_rows != n_images() || index.n_latents != n_latents()))
        throw_input("{}: {} rows x {} latents, the activations have {} x {}", paths.index, index.n_rows, index.n_latents,
                    n_images(), n_latents());
    });
  if (!paths.names.empty() && fs::exists(paths.names))
    attempt(paths.names, [&] {
      LatentNames n = read_latent_names(paths.names);
      // Names of another SAE would label the wrong latents: refuse them whole.
      if (has_acts() && !n.names.empty() && n.names.back().latent >= n_latents())
        throw_input("{}: names latent {}, the activations have {} latents (from another SAE?)", paths.names,
                    n.names.back().latent, n_latents());
      names = std::move(n);
    });
  if (!paths.cbm.empty())
    attempt(paths.cbm, [&] {
      LinearModel lm = read_linear(paths.cbm);
      if (has_acts() && lm.n_features != n_latents())
        throw_input("{}: {} features, the activations have {} latents", paths.cbm, lm.n_features, n_latents());
      cbm = cbm::from_linear_model(lm);
      cbm_file = std::move(lm);
    });
  if (!paths.csv.empty())
    attempt(paths.csv, [&] {
      meta = read_csv(paths.csv);
      meta_row_of_id = index_by(meta, paths.id_col);
      subgroup_columns_ = find_subgroup_columns();  // a scan of the CSV: once, not every frame
    });
  if (has_acts() && has_cbm() && !meta.header.empty() && !paths.label_col.empty())
    attempt(paths.csv, [&] {
      cbm::Features f{"activations", acts.ids, acts.acts};
      const cbm::LoadParams lp{paths.activations, paths.csv, paths.label_col, paths.id_col, paths.split_col, true};
      labelled = explain::load_labelled(f, lp, paths.subgroup_col, paths.eval_split, &cbm_file->classes);
      std::unordered_map<std::string, int64_t> row_of;
      for (size_t i = 0; i < acts.ids.size(); ++i) row_of.emplace(acts.ids[i], static_cast<int64_t>(i));
      labelled_row_of_acts.assign(acts.ids.size(), -1);
      for (size_t i = 0; i < labelled->data.ids.size(); ++i) {
        const int64_t r = row_of.at(labelled->data.ids[i]);
        acts_row_of_labelled.push_back(r);
        labelled_row_of_acts[static_cast<size_t>(r)] = static_cast<int64_t>(i);
      }
      proba_all = cbm::predict_proba(labelled->data.X, cbm);
    });
  if (!paths.sae.empty() && fs::exists(paths.sae))
    attempt(paths.sae, [&] {
      SaeWeights w = read_sae(paths.sae);
      if (has_acts() && w.n_latents != n_latents())
        throw_input("{}: {} latents, the activations have {}", paths.sae, w.n_latents, n_latents());
      decoder_unit = w.W_dec;
      using RowMajorXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      Eigen::Map<RowMajorXf> U(decoder_unit.data(), w.n_latents, w.d_in);  // [n_latents, d_in]
      const Eigen::VectorXf norm = U.rowwise().norm();
      U = norm.unaryExpr([](float v) { return v > 0 ? 1.0f / v : 0.0f; }).asDiagonal() * U;
      sae = std::move(w);
    });
  for (const auto& [path, target] : {std::pair{paths.report, &report}, std::pair{paths.classify, &classify}})
    if (!path.empty() && fs::exists(path)) attempt(path, [&, p = path, t = target] { *t = load_json_file(p); });
  if (!paths.curve.empty() && fs::exists(paths.curve))
    attempt(paths.curve, [&] { curves = explain::curve_series(explain::curve_points(read_csv(paths.curve), paths.curve)); });
  // Patch activations are optional (embed.patches in the pipeline): absent, the overlays are off
  // and nothing is reported; present but unusable, a problem like any other file.
  if (has_acts() && paths.patch_activations.empty() && paths.dir.empty())
    paths.patch_activations = explain::patch_activations_for(paths.activations);
  if (open_patches && wants_patches())
    attempt(paths.patch_activations, [&] { set_patch_activations(open_patch_activations()); });
  build_latent_rows();
}

bool WorkspaceModel::wants_patches() const {
  return has_acts() && !paths.patch_activations.empty() && fs::exists(paths.patch_activations);
}

PatchActivations WorkspaceModel::open_patch_activations() const {
  const std::string& path = paths.patch_activations;
  PatchActivations p;
  auto maps = std::make_shared<explain::PatchMaps>(path);  // InputError for image activations
  if (maps->reader().n_latents() != n_latents())
    throw_input("{}: {} latents, the activations have {} (patches of another SAE?)", path, maps->reader().n_latents(),
                n_latents());
  p.image_of_row.assign(acts.ids.size(), -1);
  int64_t found = 0;
  for (size_t r = 0; r < acts.ids.size(); ++r) found += (p.image_of_row[r] = maps->image_of(acts.ids[r])) >= 0;
  if (found == 0)
    throw_input("{}: none of its {} images is among the {} images of {}", path, maps->geometry().n_images(), n_images(),
                paths.activations);
  p.maps = std::move(maps);
  return p;
}

void WorkspaceModel::set_patch_activations(PatchActivations p) {
  patch_maps = std::move(p.maps);
  patch_image_of_row = std::move(p.image_of_row);
}

int64_t WorkspaceModel::patch_image(int64_t row) const {
  if (!patch_maps || row < 0 || row >= static_cast<int64_t>(patch_image_of_row.size())) return -1;
  return patch_image_of_row[static_cast<size_t>(row)];
}

int64_t WorkspaceModel::default_latent() const {
  int64_t best = latents.empty() ? 0 : latents[0].latent;
  for (const auto& r : latents)
    if (r.rank == 1) return r.latent;
  for (const auto& r : latents)
    if (r.firing_rate > latents[static_cast<size_t>(best)].firing_rate) best = r.latent;
  return best;
}

explain::RuleInputs WorkspaceModel::rule_inputs() const {
  explain::RuleInputs in;
  if (labelled) in.acts = &labelled->data.X, in.ids = &labelled->data.ids;
  if (has_cbm()) in.model = &cbm;
  in.names = &names;
  in.labels_csv = paths.csv;
  in.id_col = paths.id_col;
  in.vocab = paths.vocab;
  in.sae = paths.sae;
  in.embeddings = paths.embeddings;
  return in;
}

void WorkspaceModel::build_latent_rows() {
  latents.clear();
  if (!has_acts()) return;
  const auto ranks = has_cbm() ? explain::importance_ranks(cbm) : std::vector<int64_t>{};
  const int n_cls = static_cast<int>(classes().size());
  latents.resize(static_cast<size_t>(n_latents()));
  for (int64_t j = 0; j < n_latents(); ++j) {
    LatentRow& r = latents[static_cast<size_t>(j)];
    r.latent = j;
    if (const LatentName* n = names.find(j)) r.name = n->name, r.origin = n->origin, r.score = n->score;
    if (has_index()) {
      r.firing_rate = index.firing_rate(j);
      r.mean = index.mean[static_cast<size_t>(j)];
      r.mean_active = index.mean_active[static_cast<size_t>(j)];
      r.max = index.max[static_cast<size_t>(j)];
    }
    if (has_cbm()) {
      for (int k = 0; k < n_cls; ++k) r.class_weight.push_back(explain::class_weight(cbm, k, j));
      r.rank = ranks[static_cast<size_t>(j)];
    }
  }
}

std::optional<LoadIssue> WorkspaceModel::compute_concept_directions(ProgressSink& progress) {
  if (!sae) return std::nullopt;
  Progress prog(progress, "concept directions", 1, "steps");
  try {
    if (!paths.vocab.empty()) {
      const Vocab v = read_vocab(paths.vocab);
      if (v.dim != sae->d_in) throw_input("{}: dim {}, the SAE expects {}", paths.vocab, v.dim, sae->d_in);
      concept_names = v.names;
      concept_vectors = v.embeddings;
    } else if (!paths.embeddings.empty() && fs::exists(paths.embeddings) && !meta.header.empty()) {
      const auto cols = annotation_columns();
      const auto ann = explain::read_annotations(paths.csv, paths.id_col, cols, acts.ids);
      const CsrMatrix x = explain::embedding_rows_for_ids(paths.embeddings, acts.ids);
      concept_vectors = explain::concept_vectors(x, ann.labels);
      concept_names = cols;
    }
  } catch (const Cancelled&) {
    throw;
  } catch (const std::exception& e) {
    return LoadIssue{paths.vocab.empty() ? paths.embeddings : paths.vocab, e.what()};
  }
  prog.add(1);
  return std::nullopt;
}

std::string WorkspaceModel::image_path(int64_t row) const {
  if (row < 0 || row >= n_images() || paths.image_root.empty()) return "";
  return (fs::path(paths.image_root) / acts.ids[static_cast<size_t>(row)]).string();
}

std::vector<std::pair<std::string, std::string>> WorkspaceModel::metadata(int64_t row) const {
  std::vector<std::pair<std::string, std::string>> out;
  if (row < 0 || row >= n_images()) return out;
  const auto it = meta_row_of_id.find(acts.ids[static_cast<size_t>(row)]);
  if (it == meta_row_of_id.end()) return out;
  for (size_t c = 0; c < meta.header.size(); ++c) out.emplace_back(meta.header[c], meta.rows[it->second][c]);
  return out;
}

std::vector<std::string> WorkspaceModel::annotation_columns() const {
  if (!paths.concept_cols.empty()) return paths.concept_cols;
  std::vector<std::string> out;
  for (size_t c = 0; c < meta.header.size(); ++c) {
    const auto& h = meta.header[c];
    if (h == paths.id_col || h == paths.label_col || h == paths.split_col) continue;
    bool binary = true, any = false;
    for (const auto& row : meta.rows) {
      binary = binary && is_binary_value(row[c]);
      any = any || !row[c].empty();
      if (!binary) break;
    }
    if (binary && any) out.push_back(h);
  }
  return out;
}

std::vector<std::string> WorkspaceModel::find_subgroup_columns() const {
  std::vector<std::string> out;
  for (size_t c = 0; c < meta.header.size(); ++c) {
    if (meta.header[c] == paths.id_col) continue;
    std::set<std::string> values;
    for (const auto& row : meta.rows) {
      values.insert(row[c]);
      if (values.size() > 20) break;
    }
    if (values.size() >= 2 && values.size() <= 20) out.push_back(meta.header[c]);
  }
  return out;
}

void WorkspaceModel::rename_latent(int64_t latent, const std::string& name) {
  CL_ASSERT(latent >= 0 && latent < n_latents(), "latent out of range");
  if (paths.names.empty()) throw_input("no names file to save to (open a workspace or pass the activations)");
  LatentNames updated = names;
  if (name.empty()) {
    updated.names.erase(std::remove_if(updated.names.begin(), updated.names.end(),
                                       [&](const LatentName& n) { return n.latent == latent; }),
                        updated.names.end());
  } else {
    updated.set({latent, name, "user", std::numeric_limits<double>::quiet_NaN()});
  }
  if (updated.config.is_null() || updated.config.empty()) updated.config = {{"activations", paths.activations}};
  write_latent_names(paths.names, updated);  // atomic: the old file stays on failure
  names = std::move(updated);
  LatentRow& r = latents[static_cast<size_t>(latent)];
  r.name = name, r.origin = name.empty() ? "" : "user", r.score = std::numeric_limits<double>::quiet_NaN();
}

// ---------------------------------------------------------------------------------------------

LatentDetail latent_detail(const WorkspaceModel& m, int64_t latent, int64_t n_top) {
  LatentDetail d;
  d.latent = latent;
  if (latent < 0 || latent >= m.n_latents()) return d;
  std::vector<double> column(static_cast<size_t>(m.n_images()), 0.0);
  if (m.has_index()) {
    const auto b = m.index.indptr[static_cast<size_t>(latent)], e = m.index.indptr[static_cast<size_t>(latent) + 1];
    for (auto i = b; i < e; ++i) {
      if (static_cast<int64_t>(d.top.size()) < n_top) d.top.emplace_back(m.index.rows[static_cast<size_t>(i)], m.index.values[static_cast<size_t>(i)]);
      column[static_cast<size_t>(m.index.rows[static_cast<size_t>(i)])] = m.index.values[static_cast<size_t>(i)];
    }
    const int64_t B = m.index.n_bins();
    d.hist.assign(m.index.hist.begin() + latent * B, m.index.hist.begin() + (latent + 1) * B);
  }
  if (m.sae) {
    const int64_t D = m.sae->d_in;
    const float* u = m.decoder_unit.data() + latent * D;
    auto cosine = [&](const float* v) {
      double dot = 0, n2 = 0;
      for (int64_t k = 0; k < D; ++k) dot += double(u[k]) * v[k], n2 += double(v[k]) * v[k];
      return n2 > 0 ? dot / std::sqrt(n2) : 0.0;
    };
    for (size_t c = 0; c < m.concept_names.size(); ++c)
      d.nearest_concepts.emplace_back(m.concept_names[c], cosine(m.concept_vectors.data() + c * static_cast<size_t>(D)));
    std::stable_sort(d.nearest_concepts.begin(), d.nearest_concepts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (d.nearest_concepts.size() > 8) d.nearest_concepts.resize(8);
    for (int64_t j = 0; j < m.n_latents(); ++j)
      if (j != latent) d.nearest_latents.emplace_back(j, cosine(m.decoder_unit.data() + j * D));
    const size_t k = std::min<size_t>(8, d.nearest_latents.size());
    std::partial_sort(d.nearest_latents.begin(), d.nearest_latents.begin() + static_cast<std::ptrdiff_t>(k), d.nearest_latents.end(),
                      [](const auto& a, const auto& b) { return a.second > b.second; });
    d.nearest_latents.resize(k);
  }
  if (!m.meta.header.empty()) {
    for (const auto& col : m.annotation_columns()) {
      if (!m.meta.has_col(col)) continue;
      const size_t c = m.meta.col(col);
      std::vector<double> s;
      std::vector<int> y;
      for (int64_t r = 0; r < m.n_images(); ++r) {
        const auto it = m.meta_row_of_id.find(m.acts.ids[static_cast<size_t>(r)]);
        double v;
        if (it == m.meta_row_of_id.end() || !parse_number(m.meta.rows[it->second][c], v) || std::isnan(v)) continue;
        s.push_back(column[static_cast<size_t>(r)]);
        y.push_back(v > 0.5);
      }
      d.annotation_auroc.emplace_back(col, cbm::auroc(s, y));
    }
    std::stable_sort(d.annotation_auroc.begin(), d.annotation_auroc.end(), [](const auto& a, const auto& b) {
      const double x = std::isnan(a.second) ? -1 : a.second, y = std::isnan(b.second) ? -1 : b.second;
      return x > y;
    });
  }
  return d;
}

int logit_class(const std::vector<double>& proba) {
  if (proba.size() == 2) return 1;
  return static_cast<int>(std::max_element(proba.begin(), proba.end()) - proba.begin());
}

ImageDetail image_detail(const WorkspaceModel& m, int64_t row, int64_t n_top) {
  ImageDetail d;
  d.row = row;
  if (row < 0 || row >= m.n_images()) return d;
  d.id = m.acts.ids[static_cast<size_t>(row)];
  d.metadata = m.metadata(row);
  for (const auto& [k, v] : d.metadata)
    if (k == m.paths.label_col) d.label = v;
  const auto& A = m.acts.acts;
  std::vector<std::pair<int64_t, float>> all;
  for (const auto [j, v] : A.row(row)) all.emplace_back(j, v);
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  d.top_latents.assign(all.begin(), all.begin() + std::min<int64_t>(n_top, static_cast<int64_t>(all.size())));
  if (m.has_cbm()) {
    const auto local = explain::local_explanation(m.cbm, m.classes(), A, row);
    for (const auto& c : local) d.proba.push_back(c.probability);
    const auto& cls = local[static_cast<size_t>(logit_class(d.proba))];
    for (const auto& t : cls.terms) {
      if (static_cast<int64_t>(d.contributions.size()) >= n_top) break;
      d.contributions.emplace_back(t.latent, t.mean_contribution);
    }
  }
  return d;
}

GroupView group_view(const WorkspaceModel& m, const std::string& column, const std::string& value, int64_t top) {
  GroupView g;
  g.column = column, g.value = value;
  if (!m.has_labels() || !m.meta.has_col(column)) return g;
  const size_t c = m.meta.col(column);
  const auto& L = *m.labelled;
  const int64_t J = m.n_latents();
  std::vector<double> sum_in(static_cast<size_t>(J), 0), sum_out(static_cast<size_t>(J), 0);
  const int C = static_cast<int>(m.classes().size());
  int64_t correct_in = 0, correct_out = 0;
  for (size_t e = 0; e < L.eval.rows.size(); ++e) {
    const int64_t lr = L.eval.rows[e];
    const auto it = m.meta_row_of_id.find(L.data.ids[static_cast<size_t>(lr)]);
    if (it == m.meta_row_of_id.end()) continue;
    const bool in = m.meta.rows[it->second][c] == value;
    auto& sums = in ? sum_in : sum_out;
    (in ? g.n_in : g.n_out)++;
    const auto& X = L.data.X;
    for (const auto [j, v] : X.row(lr)) sums[static_cast<size_t>(j)] += v;
    int pred = 0;
    for (int k = 1; k < C; ++k)
      if (m.proba_all[static_cast<size_t>(lr * C + k)] > m.proba_all[static_cast<size_t>(lr * C + pred)]) pred = k;
    (in ? correct_in : correct_out) += pred == L.data.y[static_cast<size_t>(lr)];
  }
  g.accuracy_in = g.n_in ? double(correct_in) / double(g.n_in) : std::nan("");
  g.accuracy_out = g.n_out ? double(correct_out) / double(g.n_out) : std::nan("");
  for (int64_t j = 0; j < J; ++j) {
    GroupLatent gl;
    gl.latent = j;
    gl.mean_in = g.n_in ? sum_in[static_cast<size_t>(j)] / double(g.n_in) : 0;
    gl.mean_out = g.n_out ? sum_out[static_cast<size_t>(j)] / double(g.n_out) : 0;
    gl.lift = gl.mean_in - gl.mean_out;
    const auto& cw = m.latents[static_cast<size_t>(j)].class_weight;
    if (cw.size() == 2) gl.weight = cw[1];  // binary: the positive class's weight
    else
      for (double w : cw)
        if (std::abs(w) > std::abs(gl.weight)) gl.weight = w;
    if (gl.lift > 0) g.latents.push_back(gl);
  }
  std::stable_sort(g.latents.begin(), g.latents.end(), [](const auto& a, const auto& b) { return a.lift > b.lift; });
  if (static_cast<int64_t>(g.latents.size()) > top) g.latents.resize(static_cast<size_t>(top));
  return g;
}

std::vector<std::pair<int64_t, double>> nearest_images(const WorkspaceModel& m, const std::vector<std::pair<int64_t, float>>& code,
                                                        int64_t top) {
  std::vector<double> q(static_cast<size_t>(m.n_latents()), 0.0);
  double qn = 0;
  for (auto [j, v] : code)
    if (j >= 0 && j < m.n_latents()) q[static_cast<size_t>(j)] = v, qn += double(v) * v;
  std::vector<std::pair<int64_t, double>> out;
  if (qn <= 0) return out;
  const auto& A = m.acts.acts;
  for (int64_t r = 0; r < A.n_rows; ++r) {
    double dot = 0, n2 = 0;
    for (const auto [j, v] : A.row(r)) dot += double(v) * q[static_cast<size_t>(j)], n2 += double(v) * v;
    if (n2 > 0 && dot > 0) out.emplace_back(r, dot / std::sqrt(n2 * qn));
  }
  const size_t k = std::min(out.size(), static_cast<size_t>(top));
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k), out.end(),
                    [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
  out.resize(k);
  return out;
}

BenchSummary bench_summary(const nlohmann::json& report) {
  BenchSummary b;
  const auto num = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
  const auto first = [&](const nlohmann::json& e, const char* key) {
    return e.contains(key) && e[key].is_array() && !e[key].empty() ? num(e[key][0]) : std::nan("");
  };
  if (!report.is_object() || !report.contains("bench") || !report["bench"].is_object()) return b;
  const nlohmann::json& j = report["bench"];
  b.dense_probe_auroc = j.contains("mean_dense_probe_auroc") ? num(j["mean_dense_probe_auroc"]) : std::nan("");
  if (!j.contains("entries") || !j["entries"].is_array()) return b;
  for (const auto& e : j["entries"]) {
    if (!e.is_object()) continue;
    BenchRow r;
    r.label = e.value("label", std::string());
    r.kind = e.value("kind", std::string());
    r.n_latents = e.contains("n_latents") && e["n_latents"].is_number_integer() ? e["n_latents"].get<int64_t>() : 0;
    r.fvu = e.contains("fvu") ? num(e["fvu"]) : std::nan("");
    r.l0 = e.contains("l0") ? num(e["l0"]) : std::nan("");
    r.probe_auroc = first(e, "mean_probe_auroc");
    r.tpp = first(e, "tpp");
    if (e.contains("probe_k") && e["probe_k"].is_array() && !e["probe_k"].empty() && e["probe_k"][0].is_number_integer())
      b.probe_k = e["probe_k"][0].get<int>();
    if (e.contains("tpp_n") && e["tpp_n"].is_array() && !e["tpp_n"].empty() && e["tpp_n"][0].is_number_integer())
      b.tpp_n = e["tpp_n"][0].get<int>();
    b.rows.push_back(std::move(r));
  }
  return b;
}

}  // namespace cl::viewer
