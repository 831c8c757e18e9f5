// The viewer's data model: everything the panels show, loaded from a pipeline workspace (or
// explicit files) without any GUI code, so the CLI, tests and benches can drive it too (as
// Tracy's Worker is to its views). A file that is missing or malformed becomes a LoadIssue shown
// in the error panel; the rest of the workspace still opens.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "cbm/logreg.h"
#include "core/activations.h"
#include "core/csv.h"
#include "core/latent_index.h"
#include "core/latent_names.h"
#include "core/linear_model.h"
#include "core/progress.h"
#include "core/sae_weights.h"
#include "explain/data.h"
#include "explain/rules.h"

namespace cl::explain {
class PatchMaps;
}

namespace cl::viewer {

// Where the files are. from_workspace() fills them from DIR/workspace.json (the pipeline's fixed
// names and its resolved data config); explicit paths can replace any of them.
struct WorkspacePaths {
  std::string dir;                                   // the workspace ("" with explicit files)
  std::string activations, index, names, cbm, probe, sae, embeddings;
  // Patch activations for heatmap overlays (optional: absent turns overlays off). Explicit files:
  // "" finds them through the activations' config (explain::patch_activations_for).
  std::string patch_activations;
  std::string csv, image_root, report, classify, curve;
  std::string id_col = kDefaultIdCol, label_col, split_col, eval_split = "test", subgroup_col;
  std::vector<std::string> concept_cols;
  std::string vocab, encoder_model, preprocess_json;  // query by example: the workspace's encoder
  std::vector<std::string> config_problems;  // workspace.json fields of the wrong type (shown as problems)

  // InputError when DIR has no readable workspace.json.
  static WorkspacePaths from_workspace(const std::string& dir);
  // The names file written by renames: index/names beside the activations when not given.
  void fill_defaults();
};

struct LoadIssue {
  std::string file, message;
};
// The problem an exception reports about a file (its message without the leading "FILE: ").
LoadIssue load_issue(const std::string& file, const std::exception& e);

// Patch activations opened for the heatmap overlays (see WorkspaceModel::open_patch_activations).
struct PatchActivations {
  std::shared_ptr<const explain::PatchMaps> maps;
  std::vector<int64_t> image_of_row;  // acts row -> image in maps (-1: not there)
};

// One row of the latent browser.
struct LatentRow {
  int64_t latent = -1;
  std::string name, origin;              // "" when unnamed
  double score = 0;                      // of the name (AUROC or cosine; NaN for user names)
  double firing_rate = 0, mean = 0, mean_active = 0;
  float max = 0;
  std::vector<double> class_weight;      // per class (binary: -w, w)
  int64_t rank = 0;                      // importance rank in the CBM (0 = unused)
};

class WorkspaceModel {
 public:
  // Never throws for a bad file: each failure is a LoadIssue. Throws Cancelled when asked.
  // open_patches false leaves the patch activations to open_patch_activations(): the viewer opens
  // them after its first frame (reading a patch file's (image, patch) row ids takes seconds for
  // 100,000 images).
  static std::unique_ptr<WorkspaceModel> load(const WorkspacePaths& paths, ProgressSink& progress = silent_progress(),
                                              bool open_patches = true);

  WorkspacePaths paths;
  std::vector<LoadIssue> issues;
  double load_seconds = 0;

  // What loaded (check has_*() before use).
  Activations acts;                     // acts_nl [n_images, n_latents]
  LatentIndex index;
  LatentNames names;
  std::optional<LinearModel> cbm_file;  // as stored
  cbm::LogRegFit cbm;                   // the same, in double precision
  std::optional<explain::Labelled> labelled;  // eval set (label, split, subgroup) over acts' rows
  CsvTable meta;                        // the metadata CSV
  std::unordered_map<std::string, size_t> meta_row_of_id;
  std::vector<int64_t> acts_row_of_labelled;  // labelled.data row -> acts row
  std::vector<int64_t> labelled_row_of_acts;  // acts row -> labelled.data row (-1 if unlabelled)
  nlohmann::json report, classify, workspace_state;
  std::vector<LatentRow> latents;       // one per latent, in latent order
  std::vector<double> proba_all;        // CBM probabilities of every labelled row [n, C]
  std::optional<SaeWeights> sae;        // for decoder directions and query by example
  std::vector<float> decoder_unit;      // W_dec rows scaled to unit norm [n_latents, D]
  // Concept directions in embedding space [n_concepts, D]: the vocabulary's text embeddings, or
  // concept activation vectors of the annotated columns (compute_concept_directions()).
  std::vector<std::string> concept_names;
  std::vector<float> concept_vectors;
  // curve.csv (the pipeline's intervention curves), as plot series: one per rule, the random
  // orders folded into their mean (explain::curve_series).
  std::vector<explain::Series> curves;
  // Patch activations (the spatial path), opened once: the heatmap overlays (overlays.h) read an
  // image's patch rows from it on the thumbnail threads (HDF5 is built thread-safe).
  std::shared_ptr<const explain::PatchMaps> patch_maps;
  std::vector<int64_t> patch_image_of_row;  // acts row -> image in patch_maps (-1: not there)

  bool has_acts() const { return acts.acts.n_rows > 0 || !acts.ids.empty(); }
  bool has_index() const { return index.n_latents > 0; }
  bool has_cbm() const { return cbm_file.has_value(); }
  bool has_labels() const { return labelled.has_value(); }
  bool has_patches() const { return patch_maps != nullptr; }
  int64_t patch_image(int64_t row) const;  // the row's image in patch_maps; -1 when none
  int64_t n_images() const { return static_cast<int64_t>(acts.ids.size()); }
  int64_t n_latents() const { return acts.acts.n_cols; }
  const std::vector<std::string>& classes() const;

  // The image file of an activations row ("" when no image root is known).
  std::string image_path(int64_t row) const;
  // Metadata (column, value) pairs of an activations row, in CSV order.
  std::vector<std::pair<std::string, std::string>> metadata(int64_t row) const;
  // 0/1 annotation columns of the CSV (the configured concept columns, else every 0/1 column).
  std::vector<std::string> annotation_columns() const;
  // Categorical columns usable as subgroups (2..20 distinct values), found when the CSV loads.
  const std::vector<std::string>& subgroup_columns() const { return subgroup_columns_; }

  // Whether paths.patch_activations names a file to open (absent: overlays off, no problem).
  bool wants_patches() const;
  // Opens paths.patch_activations and checks them against the activations. InputError naming
  // the file when they are image activations, another SAE's (latent count) or hold none of the
  // images. Only reads the model, so a worker thread may run it while the frame thread draws;
  // set_patch_activations installs the result (frame thread).
  PatchActivations open_patch_activations() const;
  void set_patch_activations(PatchActivations p);

  // Fills concept_names/concept_vectors (minutes for huge sets: run it on a worker thread).
  // Returns the problem ("" when none) instead of recording it, so the caller's thread does.
  std::optional<LoadIssue> compute_concept_directions(ProgressSink& progress = silent_progress());

  // The latent a panel shows before any choice: the CBM's most important one (rank 1), else the
  // one that fires on the most images, else 0.
  int64_t default_latent() const;

  // What the latent ranking rules read, from this workspace (valid while the model lives).
  explain::RuleInputs rule_inputs() const;

  // Renames a latent (origin "user"), saves the names file atomically; the CLI reads it too.
  void rename_latent(int64_t latent, const std::string& name);

 private:
  void load_all(ProgressSink& progress, bool open_patches);
  std::vector<std::string> find_subgroup_columns() const;
  std::vector<std::string> subgroup_columns_;
  void build_latent_rows();
};

// Per latent: what its detail panel shows beyond the table row (computed on a worker thread).
struct LatentDetail {
  int64_t latent = -1;
  std::vector<std::pair<int64_t, float>> top;           // (acts row, activation), strongest first
  std::vector<int64_t> hist;                            // counts per bin of index.hist_edges
  std::vector<std::pair<std::string, double>> annotation_auroc;  // per annotated column
  std::vector<std::pair<std::string, double>> nearest_concepts;  // cosine with concept directions
  std::vector<std::pair<int64_t, double>> nearest_latents;       // decoder cosine, best first
};
LatentDetail latent_detail(const WorkspaceModel& m, int64_t latent, int64_t n_top = 64);

// The class whose logit the image panel's contributions and the attribution heatmap explain:
// binary models the positive class (class 0's logit is its negation), else the most probable.
int logit_class(const std::vector<double>& proba);

// Per image: probabilities and the latents behind each class logit.
struct ImageDetail {
  int64_t row = -1;
  std::string id, label;
  std::vector<double> proba;                              // per class ("" when no CBM)
  std::vector<std::pair<int64_t, float>> top_latents;     // activation, strongest first
  std::vector<std::pair<int64_t, double>> contributions;  // activation x weight of logit_class(proba)
  std::vector<std::pair<std::string, std::string>> metadata;
};
ImageDetail image_detail(const WorkspaceModel& m, int64_t row, int64_t n_top = 20);

// Linked view: the latents that fire most on a subgroup (column == value) of the labelled rows,
// compared with the other rows, and their CBM weights.
struct GroupLatent {
  int64_t latent = -1;
  double mean_in = 0, mean_out = 0;  // mean activation inside / outside the group
  double lift = 0;                   // mean_in - mean_out
  double weight = 0;                 // binary: the positive class's; else the largest |class weight|, signed
};
struct GroupView {
  std::string column, value;
  int64_t n_in = 0, n_out = 0;
  double accuracy_in = 0, accuracy_out = 0;  // CBM accuracy on the eval rows of each side
  std::vector<GroupLatent> latents;          // by lift, largest first
};
GroupView group_view(const WorkspaceModel& m, const std::string& column, const std::string& value, int64_t top = 20);

// The SAE bench rows of the report (the pipeline's bench step): the workspace's SAE and the
// baselines at its L0, each with its held-out FVU, L0, mean sparse-probing AUROC at the first k
// and TPP at the first n. Empty without a bench in report.json.
struct BenchRow {
  std::string label, kind;
  int64_t n_latents = 0;
  double fvu = 0, l0 = 0, probe_auroc = 0, tpp = 0;  // NaN where the report has none
};
struct BenchSummary {
  int probe_k = 1, tpp_n = 1;
  double dense_probe_auroc = 0;  // the ceiling (NaN: none)
  std::vector<BenchRow> rows;
};
BenchSummary bench_summary(const nlohmann::json& report);

// Nearest images to an embedding through the workspace's SAE: cosine of activation vectors.
std::vector<std::pair<int64_t, double>> nearest_images(const WorkspaceModel& m, const std::vector<std::pair<int64_t, float>>& code,
                                                        int64_t top = 16);

}  // namespace cl::viewer
