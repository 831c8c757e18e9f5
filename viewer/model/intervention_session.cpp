// Live re-evaluation of latent edits (see intervention_session.h), and the edit file format.
#include "viewer/model/intervention_session.h"

#include <chrono>
#include <fstream>

#include "cbm/dataset.h"
#include "cbm/metrics.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/params.h"
#include "explain/intervention.h"

namespace cl::viewer {

InterventionSession::InterventionSession(const WorkspaceModel& m) : m_(m) {
  if (!m.has_cbm()) throw_input("{}: no concept bottleneck loaded; interventions need it", m.paths.cbm);
  if (!m.has_labels()) throw_input("{}: no labels joined (label column '{}'); interventions need them", m.paths.csv, m.paths.label_col);
  subgroup_col_ = m.paths.subgroup_col;
  set_ = m.labelled->eval;
  base_ = cbm::decision_function(m.labelled->data.X, m.cbm, set_.rows);
  p_before_ = cbm::proba_from_logits(base_, m.cbm.n_rows, m.cbm.n_classes);
  before_ = explain::score(set_, p_before_, 0, 0);
  for (size_t i = 0; i < set_.rows.size(); ++i)
    eval_pos_of_acts_row_.emplace(m.acts_row_of_labelled[static_cast<size_t>(set_.rows[i])], i);
}

void InterventionSession::set_subgroup_column(const std::string& column) {
  if (column == subgroup_col_) return;
  cbm::Features f{"activations", m_.acts.ids, m_.acts.acts};
  const cbm::LoadParams lp{m_.paths.activations, m_.paths.csv, m_.paths.label_col, m_.paths.id_col, m_.paths.split_col, true};
  const auto L = explain::load_labelled(f, lp, column, m_.paths.eval_split, &m_.classes());
  CL_ASSERT(L.eval.rows == set_.rows, "the same CSV gives the same eval rows");
  set_ = L.eval;
  subgroup_col_ = column;
  before_ = explain::score(set_, p_before_, 0, 0);
}

LiveResult InterventionSession::evaluate(const std::vector<explain::LatentEdit>& edits, int64_t selected_row) const {
  const auto t0 = std::chrono::steady_clock::now();
  LiveResult r;
  r.n_edits = static_cast<int64_t>(edits.size());
  r.before = before_;
  const auto& X = m_.labelled->data.X;
  const auto means = explain::needs_means(edits) ? explain::latent_means(X, set_.rows) : std::vector<double>{};
  const auto p1 = explain::edited_proba(X, m_.cbm, edits, base_, set_, means);
  r.after = explain::score(set_, p1, 0, 0);
  const int C = m_.cbm.n_classes;
  const auto pred0 = cbm::argmax_rows(p_before_, C), pred1 = cbm::argmax_rows(p1, C);
  for (size_t i = 0; i < pred0.size(); ++i) r.n_flipped += pred0[i] != pred1[i];
  const auto it = eval_pos_of_acts_row_.find(selected_row);
  if (it != eval_pos_of_acts_row_.end()) {
    const size_t i = it->second;
    r.selected_before.assign(p_before_.begin() + static_cast<std::ptrdiff_t>(i * C), p_before_.begin() + static_cast<std::ptrdiff_t>((i + 1) * C));
    r.selected_after.assign(p1.begin() + static_cast<std::ptrdiff_t>(i * C), p1.begin() + static_cast<std::ptrdiff_t>((i + 1) * C));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

explain::InterventionReport InterventionSession::evaluate_full(const std::vector<explain::LatentEdit>& edits,
                                                               const explain::InterveneParams& p, ProgressSink& progress) const {
  cbm::LogRegParams refit;
  if (m_.cbm_file->config.contains("model"))
    refit = params_from_json<cbm::LogRegParams>(m_.cbm_file->config["model"], m_.paths.cbm);
  const auto& L = *m_.labelled;
  return explain::intervene(L.data.X, m_.cbm, edits, set_, p, L.train_rows, L.train_y, refit, progress);
}

std::vector<explain::CurvePoint> InterventionSession::curves(const explain::CurveParams& p) const {
  return explain::intervention_curves(m_.labelled->data.X, m_.cbm, set_, m_.rule_inputs(), p);
}

// ---------------------------------------------------------------------------------------------

LiveEvaluator::LiveEvaluator(const InterventionSession& s) : s_(s), thread_([this] { loop(); }) {}

LiveEvaluator::~LiveEvaluator() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LiveEvaluator::post(const std::vector<explain::LatentEdit>& edits, int64_t selected_row) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.emplace(edits, selected_row);
    ++posted_;
  }
  cv_.notify_all();
}

std::optional<LiveResult> LiveEvaluator::latest(uint64_t* request_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (request_id) *request_id = answered_;
  return result_;
}

std::string LiveEvaluator::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

bool LiveEvaluator::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !busy_ && !pending_ && answered_ == posted_;
}

void LiveEvaluator::loop() {
  for (;;) {
    std::pair<std::vector<explain::LatentEdit>, int64_t> req;
    uint64_t id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || pending_.has_value(); });
      if (stop_) return;
      req = std::move(*pending_);
      pending_.reset();
      id = posted_;
      busy_ = true;
    }
    std::optional<LiveResult> r;
    std::string error;
    try {
      r = s_.evaluate(req.first, req.second);
    } catch (const std::exception& e) {  // an exception leaving this thread would terminate the process
      error = e.what();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (r) result_ = std::move(*r);
    error_ = error;
    answered_ = id;
    busy_ = false;
  }
}

std::vector<std::string> replay_arguments(const WorkspacePaths& p, const std::string& subgroup_col,
                                          const std::string& edits_path) {
  std::vector<std::string> a = {"--cbm", p.cbm, "--activations", p.activations, "--labels", p.csv,
                                "--label-col", p.label_col, "--id-col", p.id_col};
  if (!p.split_col.empty()) a.insert(a.end(), {"--split-col", p.split_col, "--eval-split", p.eval_split});
  if (!subgroup_col.empty()) a.insert(a.end(), {"--subgroup-col", subgroup_col});
  a.insert(a.end(), {"--edits", edits_path});
  return a;
}

nlohmann::json edits_to_json(const std::vector<explain::LatentEdit>& edits, const WorkspacePaths& p,
                             const std::string& subgroup_col, const std::string& edits_path) {
  nlohmann::json j = explain::edits_to_json(edits);
  std::string cmd = "conceptlab intervene";
  for (const auto& arg : replay_arguments(p, subgroup_col, edits_path))
    cmd += " " + (arg.find_first_of(" '\"") == std::string::npos ? arg : "'" + arg + "'");
  j["replay"] = cmd;
  return j;
}

void save_edits(const std::string& path, const std::vector<explain::LatentEdit>& edits, const WorkspacePaths& p,
                const std::string& subgroup_col) {
  // Never over a file the workspace reads (a typo in the path box).
  write_file_atomic(path, edits_to_json(edits, p, subgroup_col, path).dump(2) + "\n",
                    {p.cbm, p.activations, p.csv, p.sae, p.index, p.names, p.embeddings});
}

std::vector<explain::LatentEdit> load_edits(const std::string& path, int64_t n_latents) {
  return explain::read_edits(path, n_latents);
}

}  // namespace cl::viewer
