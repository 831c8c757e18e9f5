// Intervention experiments (`conceptlab intervene`, `explain curve`): a set of latent edits
// evaluated before/after with bootstrap intervals, per subgroup (a column crossed with the label)
// with the worst-group accuracy, the number of flipped predictions, a random-latent control (the
// same number of latents the model uses, edited the same way, over several seeds), the
// reference's debiasing experiment (edit the training activations too, refit, evaluate), and the
// same edit in embedding space through the SAE decoder for a probe on embeddings.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "cbm/metrics.h"
#include "core/progress.h"
#include "core/sparse.h"
#include "explain/intervention.h"
#include "sae/sae.h"

namespace cl::explain {

struct InterveneParams {
  int bootstrap = 1000;       // bootstrap draws for the 95% intervals (0 = none)
  int random_control = 20;    // random-latent control seeds (0 = off, else at least 5)
  uint64_t seed = 0;
  bool refit = false;         // also refit on edited training activations (needs training rows)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(InterveneParams, bootstrap, random_control, seed, refit)
void validate(const InterveneParams& p);

// The rows an experiment scores: row indices into the activations, their class, and optionally a
// subgroup code per row (-1 = no subgroup value) with the subgroup names.
struct EvalSet {
  std::vector<int64_t> rows;
  std::vector<int> y;                      // per row
  std::vector<int> group;                  // per row, empty when no subgroup column
  std::vector<std::string> group_names;    // subgroup values
  std::vector<std::string> classes;
};

struct GroupScore {
  std::string group;  // "value | class"
  int64_t n = 0;
  double accuracy = 0;
};

struct SubgroupAuroc {
  std::string subgroup;  // "value"
  int64_t n = 0;
  double auroc = 0;      // within the subgroup, across labels (NaN when one class is absent)
};

struct Scored {
  cbm::Metrics metrics;
  cbm::BootstrapResult ci;
  bool has_ci = false;
  std::vector<GroupScore> groups;
  std::vector<SubgroupAuroc> subgroup_auroc;
  double worst_group_accuracy = std::numeric_limits<double>::quiet_NaN();
};

// Class probabilities [set.rows, C] of the model on the edited activations of the set's rows,
// from the unedited logits base (cbm::decision_function of set.rows); means: latent_means() of
// the set's rows when an edit needs them. The one path every experiment and the viewer take.
std::vector<double> edited_proba(const CsrMatrix& acts, const cbm::LogRegFit& m, const std::vector<LatentEdit>& edits,
                                 const std::vector<double>& base, const EvalSet& set, const std::vector<double>& means = {});

// Metrics of class probabilities proba [rows, C] on the set (bootstrap with seed).
Scored score(const EvalSet& set, const std::vector<double>& proba, int n_boot, uint64_t seed);

struct ControlSummary {
  int seeds = 0;
  int64_t n_latents = 0;           // latents edited per seed
  int64_t n_candidates = 0;        // latents drawn from (those the model uses, minus the edited ones)
  std::vector<double> auroc;       // after-edit AUROC per seed
  cbm::Summary auroc_summary, accuracy_summary, worst_group_summary;
  std::vector<cbm::Summary> subgroup_auroc;  // per subgroup value, over the seeds
};

struct InterventionReport {
  std::vector<LatentEdit> edits;
  Scored before, after;
  int64_t n_flipped = 0;            // images whose predicted class changes
  std::optional<ControlSummary> control;
  std::optional<Scored> refit;      // model refitted on edited training rows, on edited eval rows
  std::optional<Scored> probe_before, probe_after;  // embedding space
};

// The CBM-level experiment. train_rows/train_y and refit_params are used only with p.refit.
InterventionReport intervene(const CsrMatrix& acts, const cbm::LogRegFit& model, const std::vector<LatentEdit>& edits,
                             const EvalSet& set, const InterveneParams& p, const std::vector<int64_t>& train_rows = {},
                             const std::vector<int>& train_y = {}, const cbm::LogRegParams& refit_params = {},
                             ProgressSink& progress = silent_progress());

// Embedding-space edit: x' = x - decode(a - a') (the edited latents' decoded contribution,
// without the bias) for the rows of acts (codes of the same images). x_nd [acts.n_rows, D].
std::vector<float> edit_embeddings(const float* x_nd, const CsrMatrix& acts, const std::vector<LatentEdit>& edits,
                                   const sae::Model& sae, const std::vector<double>& means = {});

// Adds probe_before/probe_after to the report: probe (a linear model on embeddings) on x and on
// edit_embeddings(x) for the set's rows.
void intervene_embeddings(InterventionReport& r, const float* x_nd, int64_t dim, const CsrMatrix& acts,
                          const sae::Model& sae, const cbm::LogRegFit& probe, const EvalSet& set,
                          const InterveneParams& p);

// Intervention curve: metrics after editing the first k latents of a ranking, k = 0..max_k.
struct CurvePoint {
  std::string rule;
  int64_t k = 0;
  double auroc = 0, accuracy = 0, balanced_accuracy = 0, worst_group_accuracy = 0;
};
std::vector<CurvePoint> intervention_curve(const CsrMatrix& acts, const cbm::LogRegFit& model, const EvalSet& set,
                                           const std::string& rule, const std::vector<int64_t>& ranking, int64_t max_k,
                                           EditOp op = EditOp::zero, double value = 0);

nlohmann::json to_json(const Scored& s);
nlohmann::json to_json(const InterventionReport& r);
nlohmann::json to_json(const std::vector<CurvePoint>& c);

}  // namespace cl::explain
